// make bench: run the benchmark guests under the hypervisor on Bochs with ONE
// CPU (with several, Bochs's RDTSC is no longer an exact instruction count)
// and report their figures: a table on stdout and bench/results.json. The
// figures are measured in the guests with RDTSC; on Bochs with
// `clock: sync=none` they are exact instruction counts.
//  - tests/guests/bench.c: round trips of exits the hypervisor handles.
//  - tests/guests/bench.c with `snap` (the `snapshots` section): the snapshot
//    hypercalls, take and restore with 0, 16 and 1,024 pages written; and
//    bench.c under snapshot=1, whose CPUID round trip minus the plain one is
//    a vCPU's save + destroy + restore (kernel/snapshot/cycle.ts).
//  - tests/guests/ramsnap.c (the `ramSnapshot` section): take() and restore()
//    of a guest's RAM snapshot with 0, 16 and 1,024 dirty pages, with the
//    processor's EPT accessed/dirty flags and with write protection.
//  - tests/guests/l1bench.c (the `nested` section): a minimal L1 hypervisor
//    under nested=on, on the Hyper-V enlightened VMCS (hyperv=on, the guest's
//    args=evmcs), with VMCS shadowing as configured (on, the default) and
//    with shadow-vmcs=off (neither); and once on bare Bochs, where the same
//    L1 is the OS and Bochs's own VMX handles L2's exits: the reference.
//  - turtles (the `turtles` section): this hypervisor as L1 on itself with
//    bench.c as L2, plain, with hyperv=on (L1 on the enlightened VMCS) and
//    with hyperv=on but L1 evmcs=off.
//  - tests/guests/bench.c with `apic` (the `apic` section): a self-IPI and its
//    EOI, a TPR write, an EOI write, with APIC virtualization (apicv=on, the
//    default) and without (apicv=off) (bench.elf is Multiboot 1, which the
//    bare-Bochs ISO's GRUB entry does not boot); and tests/guests/smp.c's
//    IPI round trip between two vCPUs (vcpus=2), apicv on and off, sharing
//    one processor, and on two processors (spread=on; those runs use two
//    Bochs CPUs, whose RDTSC advances per quantum round: their figures are
//    within a quantum, not exact); and (the `smp` section) what a vcpus=2
//    guest's exit costs: bench.c's CPUID round trip with one vCPU, with two
//    sharing one processor and with two on two processors (the kernel's
//    lock, boot/smp/threads.c).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runBochs } from './emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from './emu/runner.ts';

const GUESTS = path.join(REPO, 'build', 'guests');
const HV = path.join(REPO, 'build', 'hv.elf');

interface RunOptions {
  /** The guest's file in build/guests/ (default bench.elf). */
  guest?: string;
  /** More words for the hypervisor's command line, after guest=. */
  options?: string;
  /** Boot the guest itself on bare Bochs (no hypervisor): `elf` is ignored. */
  bare?: boolean;
  /** Bochs CPUs (default 1: only then is RDTSC an exact instruction count). */
  cpus?: number;
}

// One Bochs run of a benchmark guest under image `elf` (or on bare Bochs).
async function run(name: string, elf: string, o: RunOptions = {}) {
  const guestFile = o.guest ?? 'bench.elf';
  const guest = path.join(GUESTS, guestFile);
  const runDir = freshRunDir(name);
  const iso = path.join(runDir, 'hv.iso');
  for (const f of o.bare ? [guest] : [elf, guest]) {
    if (!fs.existsSync(f)) throw new Error(`${path.relative(REPO, f)} is missing: run make bench`);
  }
  const isoArgs = o.bare
    ? [guest, iso]
    : [elf, iso, '--cmdline', `caps=off guest=/${guestFile}${o.options ? ` ${o.options}` : ''}`, '--module', guest, `/${guestFile}`];
  execFileSync('bash', [path.join(REPO, 'tools', 'mkiso.sh'), ...isoArgs], { stdio: ['ignore', 'ignore', 'inherit'] });
  const r = await runBochs({ name, boot: 'bios-cdrom', image: iso, runDir, cpus: o.cpus ?? 1, timeoutMs: 300_000, progress: true });
  if (o.bare) {
    // No hypervisor, so no status line: the guest prints its result and
    // ends Bochs itself (magic breakpoint: 0, port 8900H: 1).
    if (r.timedOut || r.exitCode !== 0 || !/^RESULT: PASS$/m.test(r.serial)) {
      throw new Error(`run ${name} (bare Bochs) failed: exit code ${r.exitCode}${r.timedOut ? ', timed out' : ''}; ` +
        `serial ${r.serialPath}; reproduce: ${r.command}\n${r.serial.split('\n').slice(-15).join('\n')}`);
    }
  } else {
    expectRun(r, { status: 0, exitCode: 0, lines: [/^L1\| RESULT: PASS$/] });
  }
  return r;
}

interface Figure { min: number; median: number; n: number }
// `bench: <op> min=N median=N n=N` lines (with the hypervisor's `L1| ` prefix
// when under it).
function parseFigures(serial: string): Record<string, Figure> {
  const figures: Record<string, Figure> = {};
  for (const m of serial.matchAll(/^(?:L1\| )?bench: (\S+) min=(\d+) median=(\d+) n=(\d+)$/gm)) {
    figures[m[1]] = { min: Number(m[2]), median: Number(m[3]), n: Number(m[4]) };
  }
  return figures;
}

// The nested runs: label (as printed), run name, options, what the column is;
// mayskip: the figures the guest reports as `skipped` in that mode (a skipped
// line must then be there; any other missing figure is an error).
const EVMCS_SKIPS = ['l1-vmread-guest-rip', 'l1-vmread-exit-reason', 'l1-vmwrite-guest-rip', 'l2-vmfunc-switch-cached',
  'l2-vmfunc-switch-cold'];
const NESTED = [
  { key: 'hv-evmcs', label: 'hv eVMCS', name: 'bench-nested-evmcs', options: 'nested=on hyperv=on args=evmcs',
    what: 'L1 under this hypervisor, nested=on hyperv=on: L2\'s VMCS is a Hyper-V enlightened VMCS in L1\'s memory ' +
      '(args=evmcs: no VMREAD/VMWRITE, entries through the VP assist page, clean bits)', mayskip: EVMCS_SKIPS },
  { key: 'hv', label: 'hv nested=on', name: 'bench-nested', options: 'nested=on',
    what: 'L1 under this hypervisor, nested=on: L2\'s VMCS VMPTRLD\'ed, L1\'s VMREAD/VMWRITE through VMCS shadowing', mayskip: [] },
  { key: 'hv-shadow-off', label: 'hv shadow-vmcs=off', name: 'bench-nested-noshadow', options: 'nested=on shadow-vmcs=off',
    what: 'L1 under this hypervisor, neither eVMCS nor shadowing: every VMREAD/VMWRITE of L1 exits to L0', mayskip: [] },
  { key: 'bare', label: 'bare Bochs (ref.)', name: 'bench-nested-bare', options: '', bare: true,
    what: 'no hypervisor: L1 is the OS on Bochs, whose own VMX handles L2\'s exits (the reference)', mayskip: [] },
] as const;

// Turtles: this hypervisor as L0 running itself as L1 (nested=on), which
// runs bench.elf as L2: L2's round trips go L2 -> L0 -> L1 -> L0 -> L2. Three
// ways: plain (L1 on VMCS shadowing), hyperv=on (L1 on the enlightened VMCS
// its parent recommends: its VMREAD/VMWRITE are memory accesses, each VMRESUME
// an enlightened entry), and hyperv=on with L1 evmcs=off (the same interface
// without the eVMCS, which tells the eVMCS's share from the interface's).
const TURTLES = [
  { key: 'turtles', name: 'bench-turtles', l0: '', l1: '' },
  { key: 'turtlesEvmcs', name: 'bench-turtles-evmcs', l0: ' hyperv=on', l1: '' },
  { key: 'turtlesHypervNoEvmcs', name: 'bench-turtles-hyperv-noevmcs', l0: ' hyperv=on', l1: 'evmcs=off,' },
] as const;
const turtlesCmdline = (t: (typeof TURTLES)[number]) =>
  `caps=off guest=hvl1.elf mem=160M nested=on${t.l0} args=caps=off,${t.l1}guest=bench.elf module=bench.elf`;
async function turtles(t: (typeof TURTLES)[number]) {
  const runDir = freshRunDir(t.name);
  const l1 = path.join(runDir, 'hvl1.elf');
  fs.copyFileSync(HV, l1);
  const iso = path.join(runDir, 'hv.iso');
  const cmdline = turtlesCmdline(t);
  execFileSync('bash', [path.join(REPO, 'tools', 'mkiso.sh'), HV, iso, '--cmdline', cmdline, '--module', l1, 'hvl1.elf',
    '--module', path.join(GUESTS, 'bench.elf'), 'bench.elf'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const r = await runBochs({ name: t.name, boot: 'bios-cdrom', image: iso, runDir, cpus: 1, timeoutMs: 300_000, progress: true });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [/^L1\| L2\| RESULT: PASS$/, ...(t.key === 'turtlesEvmcs' ? [/^L1\| hv: vmx: enlightened VMCS \(Hyper-V eVMCS v1\) in use/] : [])],
  });
  if (t.key !== 'turtlesEvmcs' && /enlightened VMCS \(Hyper-V eVMCS v1\) in use/.test(r.serial)) throw new Error(`${t.name}: L1 used the eVMCS`);
  return r;
}

// The figures come from the ordinary image; the profile (where a CPUID
// round trip's ticks go) from the profiling build, whose stamps add ticks.
// The RAM snapshot: the same guest twice, one per way of finding dirty pages.
const RAMSNAP_OPTIONS = 'ramsnap=on args=mode=ad,bench guest=/ramsnap.elf ramsnap=wp args=mode=wp,bench';

let r, p, rs, snap1;
const turtleRuns: Record<string, Awaited<ReturnType<typeof turtles>>> = {};
const nestedRuns: Record<string, Awaited<ReturnType<typeof run>>> = {};
const apicRuns: Record<string, Awaited<ReturnType<typeof run>>> = {};
const ipiRuns: Record<string, Awaited<ReturnType<typeof run>>> = {};
const smpRuns: Record<string, Awaited<ReturnType<typeof run>>> = {};
try {
  apicRuns['apicv=on'] = await run('bench-apic', HV, { options: 'args=apic,n=200' });
  apicRuns['apicv=off'] = await run('bench-apic-off', HV, { options: 'apicv=off args=apic,n=200' });
  ipiRuns['apicv=on'] = await run('bench-ipi', HV, { guest: 'smp.elf', options: 'vcpus=2' });
  ipiRuns['apicv=off'] = await run('bench-ipi-off', HV, { guest: 'smp.elf', options: 'vcpus=2 apicv=off' });
  ipiRuns['spread apicv=on'] = await run('bench-ipi-spread', HV, { guest: 'smp.elf', options: 'vcpus=2', cpus: 2 });
  ipiRuns['spread apicv=off'] = await run('bench-ipi-spread-off', HV, { guest: 'smp.elf', options: 'vcpus=2 apicv=off', cpus: 2 });
  smpRuns['vcpus=2 shared'] = await run('bench-smp-shared', HV, { options: 'vcpus=2 args=n=50' });
  smpRuns['vcpus=2 spread'] = await run('bench-smp-spread', HV, { options: 'vcpus=2 args=n=50', cpus: 2 });
  r = await run('bench', HV, { options: 'args=snap' });
  snap1 = await run('bench-snapshot1', HV, { options: 'args=n=100 snapshot=1' });
  p = await run('bench-profile', path.join(REPO, 'build', 'prof', 'hv.elf'));
  rs = await run('bench-ramsnap', HV, { guest: 'ramsnap.elf', options: RAMSNAP_OPTIONS });
  for (const n of NESTED) {
    nestedRuns[n.key] = await run(n.name, HV, { guest: 'l1bench.elf', options: n.options, bare: 'bare' in n && n.bare });
  }
  for (const t of TURTLES) turtleRuns[t.key] = await turtles(t);
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}

const figures: Record<string, Figure> = {};
for (const m of r.serial.matchAll(/^L1\| bench: (\S+) min=(\d+) median=(\d+) n=(\d+)$/gm)) {
  figures[m[1]] = { min: Number(m[2]), median: Number(m[3]), n: Number(m[4]) };
}
if (Object.keys(figures).length === 0) throw new Error('the benchmark guest printed no figures');

// Snapshots: the hypercalls' figures come out of `figures` into their own
// section; the snapshot=1 cycle is the difference of two CPUID round trips.
const SNAP_FIGURES = ['snapshot-take', 'snapshot-restore-0', 'snapshot-restore-16', 'snapshot-restore-1024'] as const;
const snapFigures: Record<string, Figure> = {};
for (const k of SNAP_FIGURES) {
  if (!figures[k]) throw new Error(`bench.elf with snap printed no ${k} figure`);
  snapFigures[k] = figures[k];
  delete figures[k];
}
const cpuidSnap1 = parseFigures(snap1.serial)['cpuid'];
if (!cpuidSnap1) throw new Error('bench-snapshot1: no cpuid figure');
// snapshot=N stops L1's TSC while it saves and restores (restore.ts): the
// cycle's cost is the hypervisor's own count of host ticks per cycle.
const cycleLine = /^hv: snapshot cycles: (\d+) ticks each/m.exec(snap1.serial);
if (!cycleLine) throw new Error('bench-snapshot1: no snapshot cycles line');
const snapshots = {
  what: 'tests/guests/bench.c with snap (32 MiB of RAM): snapshot-take = the VMCALL round trip of function 3 (the ' +
    'vCPU blob, the RAM pages written since the last take through the RAM snapshot, kernel/snapshot/ram.ts, the ' +
    'devices; median of 8: the first, which makes the RAM snapshot and copies all of the RAM, is the max); ' +
    'snapshot-restore-<D> = one round of D page writes and function 4 (from the ' +
    'take to the 4th restore, less the take, over 4). cycle = host ticks per snapshot=1 cycle as the hypervisor ' +
    'counts them (save, destroy and restore of the vCPU, validation included, no RAM; L1\'s TSC stands still ' +
    'meanwhile, so the guest\'s CPUID under snapshot=1 shows only what is left).',
  figures: snapFigures,
  cycle: Number(cycleLine[1]),
  cpuidWithSnapshot1: cpuidSnap1,
};

// Nested figures per run, and what follows from them. "L0 ticks" = the
// L2 round trip minus L1's own handler: the VM exit reflected to L1 and
// L1's VMRESUME (on bare Bochs: Bochs's VMX transitions, no L0 at all).
const NESTED_FIGURES = ['l1-vmread-guest-rip', 'l1-vmread-exit-reason', 'l1-vmwrite-guest-rip', 'l2-cpuid-via-l1',
  'l1-handler', 'l2-exit-to-l1-handler', 'l1-vmresume-to-l2', 'l2-vmfunc-switch-cached', 'l2-vmfunc-switch-cold', 'l2-ept-violation-via-l1'] as const;
interface NestedResult {
  label: string;
  hypervisorCmdline: string | null;
  figures: Record<string, Figure>;
  /** The figures the mode cannot measure, with the guest's reason (only where there are any). */
  skipped?: Record<string, string>;
  l0ExitsPerL2Cpuid: number | null;
  l0TicksPerNestedCpuid: number;
}
// `bench: <op> skipped (<reason>)` lines; `l2-vmfunc-switch` covers both of its figures.
function parseSkipped(serial: string): Record<string, string> {
  const skipped: Record<string, string> = {};
  for (const m of serial.matchAll(/^(?:L1\| )?bench: (\S+) skipped \((.*)\)$/gm)) skipped[m[1]] = m[2];
  return skipped;
}
// The number of instructions of L1's timed handler body (its `# l1-handler:` line).
const handlerInstructions = (serial: string) => Number(/# l1-handler: the (\d+) instructions between the stamps/.exec(serial)?.[1] ?? NaN);
const nested: Record<string, NestedResult> = {};
for (const n of NESTED) {
  const serial = nestedRuns[n.key].serial;
  const f = parseFigures(serial);
  const sk = parseSkipped(serial);
  if (n.key === 'hv-evmcs' && !/L2's VMCS an enlightened VMCS \(Hyper-V eVMCS v1\)$/m.test(serial)) {
    throw new Error(`${n.name}: l1bench.elf did not run on the eVMCS`);
  }
  const skipped: Record<string, string> = {};
  for (const k of NESTED_FIGURES) {
    if (f[k]) continue;
    const reason = sk[k] ?? (k.startsWith('l2-vmfunc-switch-') ? sk['l2-vmfunc-switch'] : undefined);
    if (!(n.mayskip as readonly string[]).includes(k) || reason === undefined) throw new Error(`${n.name}: l1bench.elf printed no ${k} figure`);
    skipped[k] = reason;
  }
  const ex = /^(?:L1\| )?bench: l0-exits-per-l2-cpuid value=(\d+\.\d+)/m.exec(serial);
  const isBare = 'bare' in n && n.bare;
  if (!isBare && !ex) throw new Error(`${n.name}: l1bench.elf printed no l0-exits-per-l2-cpuid figure`);
  nested[n.key] = {
    label: n.label,
    hypervisorCmdline: isBare ? null : `caps=off guest=/l1bench.elf ${n.options}`,
    figures: f,
    ...(Object.keys(skipped).length ? { skipped } : {}),
    l0ExitsPerL2Cpuid: ex ? Number(ex[1]) : null,
    l0TicksPerNestedCpuid: f['l2-cpuid-via-l1'].min - f['l1-handler'].min,
  };
}

// The hypervisor's own profile of a CPUID round trip, when it printed one.
const profile: Record<string, number> = {};
for (const m of p.serial.matchAll(/^hv: profile: (\S+) (\d+)$/gm)) profile[m[1]] = Number(m[2]);
const cpuid = figures['cpuid']?.min;
if (cpuid !== undefined && Object.keys(profile).length) {
  // What the software parts leave of the ordinary build's round trip is the
  // processor's VM exit + VM entry (and the guest's CPUID/RDTSC placement).
  profile['vm-exit+entry (rest)'] = cpuid - (profile['stub'] ?? 0) - (profile['c'] ?? 0) - (profile['assemblyscript'] ?? 0);
}

let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO }).toString().trim();
} catch {
  /* not a git checkout */
}
// Turtles: L2's figures (bench.elf under this hypervisor as L1 under itself).
function turtleFiguresOf(serial: string, name: string): Record<string, Figure> {
  const f: Record<string, Figure> = {};
  for (const m of serial.matchAll(/^L1\| L2\| bench: (\S+) min=(\d+) median=(\d+) n=(\d+)$/gm)) {
    f[m[1]] = { min: Number(m[2]), median: Number(m[3]), n: Number(m[4]) };
  }
  if (!f['cpuid']) throw new Error(`${name}: no L2 cpuid figure`);
  return f;
}
const turtleFigures = turtleFiguresOf(turtleRuns['turtles'].serial, 'bench-turtles');
const turtleEvmcsFigures = turtleFiguresOf(turtleRuns['turtlesEvmcs'].serial, 'bench-turtles-evmcs');
const turtleNoEvmcsFigures = turtleFiguresOf(turtleRuns['turtlesHypervNoEvmcs'].serial, 'bench-turtles-hyperv-noevmcs');

// RAM snapshot figures: ramsnap-<ad|wp>-<take|restore|write>-<pages>.
const ramFigures = parseFigures(rs.serial);
const RAM_OPS = ['take-full', 'take-0', 'take-16', 'take-1024', 'restore-0', 'restore-16', 'restore-1024', 'write-16'];
for (const mode of ['ad', 'wp']) {
  for (const op of RAM_OPS) if (!ramFigures[`ramsnap-${mode}-${op}`]) throw new Error(`bench-ramsnap: no ramsnap-${mode}-${op} figure`);
}

// The local APIC: bench.c's figures per run, smp.c's IPI round trip.
const APIC_OPS = ['self-ipi-eoi', 'tpr-write', 'eoi-write', 'x2-self-ipi-eoi', 'x2-tpr-write', 'x2-eoi-write'] as const;
const apicFigures: Record<string, Record<string, Figure>> = {};
for (const [k, run1] of Object.entries(apicRuns)) {
  const f = parseFigures(run1.serial);
  for (const op of APIC_OPS) if (!f[op]) throw new Error(`bench-apic (${k}): no ${op} figure`);
  apicFigures[k] = Object.fromEntries(APIC_OPS.map((op) => [op, f[op]]));
}
const ipiRoundTrip: Record<string, number> = {};
for (const [k, run1] of Object.entries(ipiRuns)) {
  const m = /^L1\| # smp: IPI round trip BSP -> AP -> BSP \(mailbox\): (\d+) ticks/m.exec(run1.serial);
  if (!m) throw new Error(`bench-ipi (${k}): no IPI round trip line`);
  ipiRoundTrip[k] = Number(m[1]);
}

// What a vcpus=2 guest's exits cost: the CPUID round trip of vCPU 0 (the
// AP waits for SIPI meanwhile), against the one-vCPU figure of the main run.
const smpCpuid: Record<string, number> = {};
for (const [k, run1] of Object.entries(smpRuns)) {
  const f = parseFigures(run1.serial);
  if (!f['cpuid']) throw new Error(`bench-smp (${k}): no cpuid figure`);
  smpCpuid[k] = f['cpuid'].min;
}

const result = {
  what: 'round trips measured in the guest with RDTSC; Bochs 2.7, cpu: model=tigerlake, count=1, clock: sync=none (1 tick = 1 emulated instruction)',
  commit,
  date: new Date().toISOString(),
  figures,
  profile,
  nested: {
    what: 'tests/guests/l1bench.c, a minimal 32-bit L1 hypervisor: L1 VMREAD/VMWRITE of the current VMCS; an L2 CPUID ' +
      'round trip timed in L2, handled by L1 with VMREAD exit reason, VMREAD exit-instruction length, VMREAD GUEST_RIP, ' +
      'VMWRITE GUEST_RIP (16 instructions), VMRESUME; that handler timed by L1 (l1-handler); the two legs of the round ' +
      'trip (l2-exit-to-l1-handler, l1-vmresume-to-l2: raw stamp-to-stamp ticks, the bare-Bochs values are the ' +
      'instructions around the stamps); L0 VM exits per L2 CPUID from the exit-count hypercall (not on bare Bochs). ' +
      'l0TicksPerNestedCpuid = l2-cpuid-via-l1 - l1-handler (on bare Bochs: Bochs\'s own VMX transitions). Runs: ' +
      NESTED.map((n) => `${n.key} = ${n.what}`).join('; ') + '. With the eVMCS the handler loads exit reason, ' +
      'exit-instruction length and guest RIP from the eVMCS, stores the new RIP there and sets every clean bit (12 ' +
      'instructions), then VMRESUME; the figures it cannot measure are under `skipped` with the reason.',
    runs: nested,
  },
  snapshots,
  apic: {
    what: 'tests/guests/bench.c with apic (n=200): self-ipi-eoi = ICR low write (fixed, self, vector 70H) with IF = 1, ' +
      'the handler (through the guest library\'s IDT stub) writes EOI and returns; tpr-write = MOV 0 to the TPR; ' +
      'eoi-write = an EOI with nothing in service; x2-self-ipi-eoi, x2-tpr-write, x2-eoi-write = the same in x2APIC mode through ' +
      'WRMSR of SELF IPI (83FH), TPR (808H) and EOI (80BH). apicv=on: the processor\'s APIC virtualization runs the guest\'s APIC ' +
      '(in x2APIC mode with "virtualize x2APIC mode") ' +
      '(kernel/vm/apicv.ts), apicv=off: the software APIC (an exit per APIC write, the interrupt injected). ipiRoundTrip: tests/guests/smp.c (vcpus=2 sharing one processor; spread: on two processors, two Bochs CPUs), a fixed IPI BSP -> AP and the AP\'s IPI back, ' +
      'least of 16.',
    figures: apicFigures,
    ipiRoundTrip,
  },
  smp: {
    what: 'the CPUID round trip (tests/guests/bench.c, min of 50) of vCPU 0 of a vcpus=2 guest whose AP waits for SIPI: ' +
      '"vcpus=2 shared" both vCPUs on one processor (every exit tests the slice: a TSC read), "vcpus=2 spread" one per ' +
      'processor on two Bochs CPUs (the kernel lock taken after each exit and let go of before the entry, and the test ' +
      'for posted messages; RDTSC advances per Bochs quantum round with two CPUs: within a quantum); cpuidOneVcpu: the ' +
      'one-vCPU figure of the main run (one kernel thread: no lock taken).',
    cpuidOneVcpu: figures['cpuid'].min,
    cpuid: smpCpuid,
  },
  ramSnapshot: {
    what: 'tests/guests/ramsnap.c, 32 MiB guests: a VMCALL to the RAM snapshot\'s test hypercall timed in the guest ' +
      '(so each figure includes one VMCALL round trip, see vmcall-query), after writing N pages since the last take: ' +
      'take-N copies them into the snapshot, restore-N copies them back; take-full is the first take (all 8,192 pages); ' +
      'write-16 is the guest\'s first writes to 16 pages after a take (no exit with the EPT flags, 16 EPT violations ' +
      'with write protection). ad = EPT accessed/dirty flags (EPTP bit 6), wp = write protection.',
    hypervisorCmdline: `caps=off guest=/ramsnap.elf ${RAMSNAP_OPTIONS}`,
    figures: ramFigures,
  },
  turtles: {
    what: 'L0 = this hypervisor, L1 = this hypervisor as its guest (nested=on, shadow VMCS, shadow EPT), L2 = ' +
      'tests/guests/bench.c: each L2 round trip goes L2 -> L0 -> L1 (this hypervisor\'s exit handler) -> L0 -> L2',
    hypervisorCmdline: turtlesCmdline(TURTLES[0]),
    figures: turtleFigures,
    evmcs: {
      what: 'the same with hyperv=on for L1: L1 (this hypervisor) uses the enlightened VMCS its parent recommends ' +
        '(VMREAD/VMWRITE memory accesses, each VMRESUME an enlightened entry that reads the groups whose clean bit is 0, ' +
        'each reflected exit written back into the eVMCS); hypervNoEvmcs: hyperv=on with L1 evmcs=off',
      hypervisorCmdline: turtlesCmdline(TURTLES[1]),
      figures: turtleEvmcsFigures,
      hypervNoEvmcsCmdline: turtlesCmdline(TURTLES[2]),
      hypervNoEvmcsFigures: turtleNoEvmcsFigures,
    },
  },
};
fs.mkdirSync(path.join(REPO, 'bench'), { recursive: true });
fs.writeFileSync(path.join(REPO, 'bench', 'results.json'), JSON.stringify(result, null, 2) + '\n');

const w = Math.max(...Object.keys(figures).map((k) => k.length), 9);
console.log(`\n${'operation'.padEnd(w)}  ${'min'.padStart(8)}  ${'median'.padStart(8)}  ${'n'.padStart(6)}`);
for (const [k, f] of Object.entries(figures)) {
  console.log(`${k.padEnd(w)}  ${String(f.min).padStart(8)}  ${String(f.median).padStart(8)}  ${String(f.n).padStart(6)}`);
}
if (Object.keys(profile).length) {
  console.log('\nCPUID round trip, where the ticks go (hypervisor profile):');
  for (const [k, v] of Object.entries(profile)) console.log(`  ${k.padEnd(24)} ${v}`);
}

// Nested VMX: the three runs side by side.
const cell = (f: Figure | undefined) => (f === undefined ? '-' : f.median === f.min ? `${f.min}` : `${f.min} (med ${f.median})`);
const nw = Math.max(...NESTED_FIGURES.map((k) => k.length), 'l0-exits-per-l2-cpuid'.length);
const cw = Math.max(...NESTED.map((n) => n.label.length), 12);
console.log('\nNested VMX (tests/guests/l1bench.c as L1, 1 CPU), min ticks (median if different), one column per run:');
for (const n of NESTED) console.log(`  ${n.label.padEnd(cw)}  ${n.what}`);
console.log(`${'operation'.padEnd(nw)}  ${NESTED.map((n) => n.label.padStart(cw)).join('  ')}`);
const nestedCell = (n: (typeof NESTED)[number], k: string) =>
  nested[n.key].skipped?.[k] !== undefined ? 'skipped' : cell(nested[n.key].figures[k]);
for (const k of NESTED_FIGURES) {
  console.log(`${k.padEnd(nw)}  ${NESTED.map((n) => nestedCell(n, k).padStart(cw)).join('  ')}`);
}
const exitsCell = (v: number | null) => (v === null ? 'n/a' : v.toFixed(2));
console.log(`${'l0-exits-per-l2-cpuid'.padEnd(nw)}  ${NESTED.map((n) => exitsCell(nested[n.key].l0ExitsPerL2Cpuid).padStart(cw)).join('  ')}`);
console.log('  (l0-exits-per-l2-cpuid: from the hypervisor\'s exit-count hypercall, absent on bare Bochs; goal with shadowing and with the eVMCS: 2)');
for (const n of NESTED) {
  const byReason = new Map<string, string[]>();
  for (const [k, why] of Object.entries(nested[n.key].skipped ?? {})) byReason.set(why, [...(byReason.get(why) ?? []), k]);
  for (const [why, ks] of byReason) console.log(`  (${n.label}: ${ks.join(', ')} skipped: ${why})`);
}

const bare = nested['bare'];
console.log('\nL0 ticks per nested CPUID round trip = l2-cpuid-via-l1 - l1-handler (targets: issue 4 at most 1000, issue 11 at most 2000 with the eVMCS and with shadowing):');
for (const n of NESTED) {
  const x = nested[n.key];
  const f = x.figures;
  const what = n.key === 'bare' ? '   (no L0: Bochs\'s own VM exit and VMRESUME)' : '';
  console.log(`  ${n.label.padEnd(cw)}  ${f['l2-cpuid-via-l1'].min} - ${f['l1-handler'].min} = ${x.l0TicksPerNestedCpuid}${what}`);
}
console.log('Where they go (under the hypervisor minus the same stamps on bare Bochs):');
for (const n of NESTED) {
  if (n.key === 'bare') continue;
  const f = nested[n.key].figures;
  const b = bare.figures;
  const leg = (k: string) => `${f[k].min} - ${b[k].min} = ${f[k].min - b[k].min}`;
  // The eVMCS handler is another body (memory accesses, no exits), which bare Bochs
  // cannot run: its own instruction count is the reference.
  const count = handlerInstructions(nestedRuns[n.key].serial);
  const inside = n.key === 'hv-evmcs'
    ? `(its eVMCS loads/stores) ${f['l1-handler'].min} - ${count} instructions = ${f['l1-handler'].min - count}`
    : `(its VMREAD/VMWRITE exits) ${leg('l1-handler')}`;
  console.log(`  ${n.label}: L2 exit reflected to L1 ${leg('l2-exit-to-l1-handler')}; L1's VMRESUME back to L2 ` +
    `${leg('l1-vmresume-to-l2')}; and inside L1's handler ${inside}`);
}

console.log('\nEmulated VMFUNC EPTP switch in L2, with the reads of 16 pages (target: cached at most 500, cold at least 10x cached):');
for (const n of NESTED) {
  const f = nested[n.key].figures;
  const why = nested[n.key].skipped?.['l2-vmfunc-switch-cached'];
  if (why !== undefined) {
    console.log(`  ${n.label.padEnd(cw)}  skipped: ${why}`);
    continue;
  }
  const c = f['l2-vmfunc-switch-cached'].min, k = f['l2-vmfunc-switch-cold'].min;
  console.log(`  ${n.label.padEnd(cw)}  cached ${c}, cold ${k}: cold/cached = ${(k / c).toFixed(1)}`);
}

console.log('\nSnapshots (bench.elf, 32 MiB of RAM), ticks:');
console.log(`  take (vCPU blob + RAM written since + devices)    ${cell(snapFigures['snapshot-take'])}`);
for (const d of [0, 16, 1024]) console.log(`  restore, ${String(d).padStart(4)} pages written since              ${cell(snapFigures[`snapshot-restore-${d}`])}`);
console.log('  (the RAM through its RAM snapshot, kernel/snapshot/ram.ts: the first take copies all of it, the others and the restores what was written)');
console.log(`  snapshot=1 cycle: save + destroy + restore of the vCPU, no RAM  ${snapshots.cycle} (hidden from L1's TSC: CPUID under snapshot=1 ${cpuidSnap1.min}, without ${figures['cpuid'].min})`);

console.log('\nThe local APIC (bench.c apic), min ticks (median if different):');
console.log(`  ${'operation'.padEnd(14)} ${Object.keys(apicFigures).map((k) => k.padStart(16)).join(' ')}`);
for (const op of APIC_OPS) console.log(`  ${op.padEnd(14)} ${Object.values(apicFigures).map((f) => cell(f[op]).padStart(16)).join(' ')}`);
console.log(`  IPI round trip between two vCPUs (smp.c): ${Object.entries(ipiRoundTrip).map(([k, v]) => `${k} ${v}`).join(', ')}`);
console.log(`  CPUID round trip of a vcpus=2 guest's vCPU 0: one vCPU ${result.smp.cpuidOneVcpu}, ${Object.entries(smpCpuid).map(([k, v]) => `${k} ${v}`).join(', ')}`);

console.log('\nRAM snapshot of a 32 MiB guest (tests/guests/ramsnap.c), ticks of one take/restore VMCALL after N written pages:');
console.log(`  ${'operation'.padEnd(14)} ${'EPT A/D flags'.padStart(16)} ${'write protection'.padStart(18)}`);
for (const op of RAM_OPS) {
  console.log(`  ${op.padEnd(14)} ${cell(ramFigures[`ramsnap-ad-${op}`]).padStart(16)} ${cell(ramFigures[`ramsnap-wp-${op}`]).padStart(18)}`);
}

console.log('\nTurtles (L0 = L1 = this hypervisor, L2 = bench.elf), L2 round trips:');
console.log(`  ${'operation'.padEnd(16)} ${'plain'.padStart(14)} ${'hyperv=on eVMCS'.padStart(18)} ${'hyperv, evmcs=off'.padStart(18)}`);
for (const [k, f] of Object.entries(turtleFigures)) {
  console.log(`  ${k.padEnd(16)} ${cell(f).padStart(14)} ${cell(turtleEvmcsFigures[k]).padStart(18)} ${cell(turtleNoEvmcsFigures[k]).padStart(18)}`);
}

console.log(`\nwritten: bench/results.json (commit ${commit})`);

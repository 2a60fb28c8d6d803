// Boot media for runs of the test guests (tests/guests/) under the
// hypervisor: shared by tests/qemu/guests.test.ts and smp.test.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO } from '../../tools/emu/runner.ts';

const G = path.join(REPO, 'build', 'guests');
const ELF = path.join(REPO, 'build', 'hv.elf');

// The command line and modules of the all-guests boot.
// snapshot=N (docs/snapshot.md): each of the first six guests has its vCPU
// saved, destroyed and restored every N exits, each with another N.
export const GUESTS_CMDLINE = [
  'caps=off',
  'guest=suite.elf args=mods=1,tag=suite-args-ok module=module.txt snapshot=7',
  'guest=mb2.elf args=mods=1,tag=mb2-args-ok module=module.txt snapshot=1',
  'guest=triple.elf expect=triple-fault snapshot=2',
  'guest=unbacked.elf expect=ept-violation snapshot=3',
  'guest=badmsr.elf expect=triple-fault snapshot=4',
  'guest=halt.elf expect=halt snapshot=6',
  'guest=spin.elf max-ticks=20000000 expect=timeout',
  'guest=bench.elf args=n=50',
].join(' ');
const MODULES = ['suite', 'mb2', 'triple', 'unbacked', 'badmsr', 'halt', 'spin', 'bench'].flatMap((g) => ['--module', path.join(G, `${g}.elf`), `${g}.elf`]);

// A GRUB ISO (tools/mkiso.sh) booting `kernel` with mkiso's `args` (--cmdline, --module):
// runDir/boot.iso. Every file it needs must have been built (make all).
export function isoOf(runDir: string, kernel: string, args: string[], needs: string[] = []): string {
  for (const f of [kernel, ...needs]) if (!fs.existsSync(f)) throw new Error(`${path.relative(REPO, f)} does not exist: run make all first`);
  const out = path.join(runDir, 'boot.iso');
  execFileSync('bash', [path.join(REPO, 'tools', 'mkiso.sh'), kernel, out, ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

// This hypervisor with `cmdline` and the modules [file, name].
// The Linux guests' kernel command line (args=: `,` is a space, `,,` a
// comma): the serial console, the TSC as the clock (CPUID 15H gives its
// rate), no PCI (there is none), /init from the initramfs, quiet
// (tests/qemu/linux.test.ts, tools/stress/linux-smp.ts).
export const LINUX_ARGS = 'console=ttyS0,,115200,tsc=reliable,clocksource=tsc,pci=off,rdinit=/init,quiet';

export function hvIso(runDir: string, cmdline: string, modules: [string, string][]): string {
  return isoOf(runDir, ELF, ['--cmdline', cmdline, ...modules.flatMap(([f, name]) => ['--module', f, name])],
    modules.map(([f]) => f));
}

// A guest's TAP lines (`ok N - ...` / `not ok N - ...`) with `prefix` ("L1| " for an L0 guest's
// console, "" for a guest on bare Bochs) removed.
export function tapLines(serial: string, prefix: string): string[] {
  return serial.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length)).filter((l) => /^(not )?ok \d+ /.test(l));
}

export function guestIso(runDir: string, cmdline: string): string {
  for (const f of [ELF, path.join(G, 'suite.elf'), path.join(G, 'module.txt')])
    if (!fs.existsSync(f)) throw new Error(`${path.relative(REPO, f)} does not exist: run make all first`);
  const iso = path.join(runDir, 'hv.iso');
  execFileSync('bash', [path.join(REPO, 'tools', 'mkiso.sh'), ELF, iso, '--cmdline', cmdline, ...MODULES,
    '--module', path.join(G, 'module.txt'), 'module.txt modarg=1'], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
  return iso;
}

// Each guest's "ended" line, in order: [guest, how it ended, as expected?].
export function endings(serial: string): [string, string, boolean][] {
  return [...serial.matchAll(/^hv: guest \d+ \((\S+)\) ended: (.*?): (as expected|NOT as expected)$/gm)]
    .map((m) => [m[1], m[2], m[3] === 'as expected']);
}


// Each guest's snapshot=N line (kernel/vm/guest.ts), by guest number:
// snapshots taken, of those in VMX operation, with a current vmcs12 not yet
// launched, in L2, in a nested VM entry, with an enlightened VMCS in use (the
// NESTED EVMCS flag); every N exits, processors.
export type SnapshotLine = { taken: number; inVmx: number; beforeLaunch: number; inL2: number; runPending: number; evmcs: number; every: number; cpus: number };
export const SNAPSHOT_LINE = /^hv: snapshots: (\d+) taken \(in VMX operation (\d+), with a current vmcs12 not launched (\d+), in L2 (\d+), in a nested VM entry (\d+), with an eVMCS (\d+)\); every (\d+) exits, (\d+) processor\(s\)$/;
export function snapshotLine(line: string): SnapshotLine | null {
  const m = SNAPSHOT_LINE.exec(line);
  if (!m) return null;
  const [taken, inVmx, beforeLaunch, inL2, runPending, evmcs, every, cpus] = m.slice(1).map(Number);
  return { taken, inVmx, beforeLaunch, inL2, runPending, evmcs, every, cpus };
}
export function snapshotLines(serial: string): Map<number, SnapshotLine> {
  const out = new Map<number, SnapshotLine>();
  let guest = 0;
  for (const line of serial.split('\n')) {
    const g = /^hv: guest (\d+) \(\S+\) ended: /.exec(line);
    if (g) guest = Number(g[1]);
    const s = snapshotLine(line);
    if (s) out.set(guest, s);
  }
  return out;
}

// A stress run for two processors (the issue-12 hang, README "Status"):
// Debian's Linux with vcpus=2 on two Bochs processors, KVM's modules
// loaded, then /init (tools/stress/linux-smp-init.sh) runs 200 rounds of a
// short process pinned to alternate CPUs and the dmesg | grep pipeline of
// linux.test.ts's /init — a burst of console output, serial interrupts and
// IPIs between the vCPUs. Not part of `make test` (about 7 minutes alone).
// Before apicv.ts's guard (a VM spread over processors never runs a vCPU
// where Bochs 2.7 could deliver a virtual interrupt with IF = 0) it hung
// within the first 80 rounds in each of 3 runs: vCPU 0 deadlocked on its
// runqueue lock, inside an interrupt delivered with IF = 0.
//
//   node --import tsx tools/stress/linux-smp.ts [name] [extra hv options]
//
// Needs `make linux-initrd`. Passes when /init prints "STRESS done". A hang
// is 240 s without serial output (STALL=seconds to change it; 30 minutes at
// most in all): Bochs then gets SIGINT, and its debugger runs the rest of
// the rc file: both processors' registers, control registers and 100 stack
// entries, into the run dir's bochs.out (a guest's interrupted frames on its
// stack show the RFLAGS each interrupt found; symbols from Debian's
// linux-image-*-dbg vmlinux). tools/stress/sched-report.patch adds a
// periodic report of both vCPUs (APIC state, guest RIP, code and stack) to
// vm/sched.ts for a look from inside the hypervisor.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bochsConfig } from '../emu/bochs.ts';
import { freshRunDir, REPO } from '../emu/runner.ts';
import { hvIso, LINUX_ARGS as ARGS } from '../../tests/qemu/guestboot.ts';

const name = process.argv[2] ?? 'stress-linux-smp';
const extra = process.argv.slice(3).join(' ');
const stallMs = Number(process.env.STALL ?? 240) * 1000;
const L = path.join(REPO, 'build', 'linux');
const initrd = path.join(L, 'initrd-stress.cpio');
execFileSync('bash', [path.join(REPO, 'tools', 'mkinitramfs.sh'), initrd], {
  stdio: 'inherit', env: { ...process.env, INIT: path.join(REPO, 'tools', 'stress', 'linux-smp-init.sh') },
});
const runDir = freshRunDir(name);
const cmdline = `guest=vmlinuz mem=256M vcpus=2 nested=on ${extra} initrd=initrd.cpio expect=exit:165 args=${ARGS}`;
const image = hvIso(runDir, cmdline, [[path.join(L, 'vmlinuz'), 'vmlinuz'], [initrd, 'initrd.cpio']]);
const rc = path.join(runDir, 'bochsrc');
fs.writeFileSync(rc, bochsConfig({ name, boot: 'bios-cdrom', image, cpus: 2, megs: 512 }, runDir, image));
// After `c` returns (the magic breakpoint at the end, or our SIGINT): the
// state of both processors, then quit.
const dump = ['ptime', ...[0, 1].flatMap((c) => [`set $cpu = ${c}`, 'r', 'sreg', 'creg', 'print-stack 100'])];
const debuggerRc = path.join(runDir, 'debugger.rc');
fs.writeFileSync(debuggerRc, ['c', ...dump, 'quit', ''].join('\n'));
const serialPath = path.join(runDir, 'serial.txt');
const outPath = path.join(runDir, 'bochs.out');
const out = fs.openSync(outPath, 'w');
const argv = ['-q', '-f', rc, '-rc', debuggerRc];
const child = spawn('bochs', argv, { env: { ...process.env, SDL_VIDEODRIVER: 'dummy' }, stdio: ['ignore', out, out] });
const serial = () => (fs.existsSync(serialPath) ? fs.readFileSync(serialPath, 'latin1').replace(/\r/g, '') : '');
const t0 = Date.now();
let size = -1;
let changed = Date.now();
let stalled = false;
const timer = setInterval(() => {
  const s = serial();
  if (s.length !== size) { size = s.length; changed = Date.now(); }
  const last = s.trimEnd().split('\n').pop() ?? '';
  const secs = Math.round((Date.now() - t0) / 1000);
  if (secs % 30 < 5) console.log(`[${name}] ${secs}s, serial: ${last.slice(0, 100)}`);
  if (!stalled && (Date.now() - changed > stallMs || Date.now() - t0 > 1_800_000)) {
    stalled = true;
    console.log(`[${name}] no serial output for ${Math.round((Date.now() - changed) / 1000)} s: SIGINT to Bochs for the debugger's dump`);
    child.kill('SIGINT');
    setTimeout(() => child.kill('SIGKILL'), 120_000).unref();
  }
}, 5000);
const code: number | null = await new Promise((resolve) => child.on('exit', (c) => resolve(c)));
clearInterval(timer);
const s = serial();
const ok = !stalled && code === 0 && /^L1\| STRESS done/m.test(s);
const last = s.split('\n').filter((l) => l.startsWith('L1| STRESS ')).pop() ?? '(none)';
console.log(`${name}: ${ok ? 'passed' : stalled ? 'HUNG' : 'FAILED'} (Bochs exit ${code}); last iteration line: ${last}`);
if (!ok) console.log(s.trimEnd().split('\n').slice(-15).join('\n'));
if (stalled) console.log(`${name}: both processors' state after the stall: ${outPath} (after "ptime")`);
console.log(`reproduce: cd ${REPO} && SDL_VIDEODRIVER=dummy bochs ${argv.join(' ')} </dev/null`);
process.exit(ok ? 0 : 1);

// A stress run for two processors (the issue-12 hang, README "Status"):
// Debian's Linux with vcpus=2 on two Bochs processors, KVM's modules
// loaded, then /init (tools/stress/linux-smp-init.sh) runs 200 rounds of a
// short process pinned to alternate CPUs and the dmesg | grep pipeline of
// linux.test.ts's /init — a burst of console output, serial interrupts and
// IPIs between the vCPUs. Not part of `make test` (about 12 minutes).
// Before apicv.ts's guard (a VM spread over processors never runs a vCPU
// where Bochs 2.7 could deliver a virtual interrupt with IF = 0) it hung
// within the first 80 rounds in each of 3 runs: vCPU 0 deadlocked on its
// runqueue lock, inside an interrupt delivered with IF = 0.
//
//   node --import tsx tools/stress/linux-smp.ts [name] [extra hv options]
//
// Needs `make linux-initrd`. Passes when /init prints "STRESS done"; a hang
// shows as the time limit (20 minutes). tools/stress/sched-report.patch adds
// a periodic report of both vCPUs (APIC state, guest RIP, code and stack)
// to vm/sched.ts for looking at such a hang. Bochs's debugger helps too:
// SIGINT to bochs-bin runs the rc file's commands after `c` (`set $cpu = 0`,
// `r`, `print-stack 100`, ...); a guest's interrupted frames on its stack
// show the RFLAGS each interrupt found.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { runBochs } from '../emu/bochs.ts';
import { freshRunDir, REPO } from '../emu/runner.ts';
import { hvIso, LINUX_ARGS as ARGS } from '../../tests/qemu/guestboot.ts';

const name = process.argv[2] ?? 'stress-linux-smp';
const extra = process.argv.slice(3).join(' ');
const L = path.join(REPO, 'build', 'linux');
const initrd = path.join(L, 'initrd-stress.cpio');
execFileSync('bash', [path.join(REPO, 'tools', 'mkinitramfs.sh'), initrd], {
  stdio: 'inherit', env: { ...process.env, INIT: path.join(REPO, 'tools', 'stress', 'linux-smp-init.sh') },
});
const runDir = freshRunDir(name);
const cmdline = `guest=vmlinuz mem=256M vcpus=2 nested=on ${extra} initrd=initrd.cpio expect=exit:165 args=${ARGS}`;
const image = hvIso(runDir, cmdline, [[path.join(L, 'vmlinuz'), 'vmlinuz'], [initrd, 'initrd.cpio']]);
const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 2, megs: 512, timeoutMs: 1_200_000 });
const ok = /^L1\| STRESS done/m.test(r.serial);
const last = r.serial.replace(/\r/g, '').split('\n').filter((l) => l.startsWith('L1| STRESS ')).pop() ?? '(none)';
console.log(`${name}: ${ok ? 'passed' : 'FAILED'}; last iteration line: ${last}; serial ${r.serialPath}; reproduce: ${r.command}`);
process.exit(ok ? 0 : 1);

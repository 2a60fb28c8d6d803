// A stress run for the open SMP hang (README "Status"; the session-12 note
// of issue 12): Debian's Linux with vcpus=2 on two Bochs processors, KVM's
// modules loaded, then /init (tools/stress/linux-smp-init.sh) forks 3,000
// short processes pinned to alternate CPUs, with a dmesg | grep pipeline
// every 25 — the burst of console output after which linux.test.ts's
// vcpus=2 boot once hung in CI. Not part of `make test` (about 10 minutes).
//
//   node --import tsx tools/stress/linux-smp.ts [name] [extra hv options]
//
// Needs `make linux-initrd`. Passes when /init prints "STRESS done"; a hang
// shows as the time limit (20 minutes). tools/stress/sched-report.patch adds
// a periodic report of both vCPUs (APIC state, guest RIP, code and stack)
// to vm/sched.ts for looking at such a hang; runs with it are repeatable
// as long as the image is the same.
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

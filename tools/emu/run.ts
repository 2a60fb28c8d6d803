// The demo: boot the already-built hypervisor in an emulator and show its
// serial console live.
//
//   node --import tsx tools/emu/run.ts bochs-mb|bochs-efi|qemu-efi|kvm-efi
//        [--cpus N] [--cmdline "..."] [--megs N] [--timeout SECONDS] [--expect-status N]
//        [--module PATH NAME]...
//
//   bochs-mb   Bochs + legacy BIOS + GRUB ISO (tools/mkiso.sh) + build/hv.elf
//   bochs-efi  Bochs + OVMF + FAT image (tools/mkesp.sh) of build/esp
//   qemu-efi   QEMU (TCG) + OVMF + build/esp: no VT-x there, so the
//              hypervisor stops with status 2 (pass --expect-status 2)
//   kvm-efi    QEMU -enable-kvm -cpu host: needs an Intel host with nested VMX
//
// --module PATH NAME (bochs-mb): one more boot file, PATH loaded as the module
// NAME next to build/guests/* (e.g. a Linux bzImage and its initrd: guest=NAME).
//
// Exits 0 only when the run passed: the hypervisor's final line reports the
// expected status (default 0) AND the emulator's exit code agrees with it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runBochs } from './bochs.ts';
import { copyEsp, kvmUnusableReason, runQemu } from './qemu.ts';
import { describeFailure, freshRunDir, REPO, runProblems, type Expectation, type RunResult } from './runner.ts';

const MODES = ['bochs-mb', 'bochs-efi', 'qemu-efi', 'kvm-efi'] as const;
type Mode = (typeof MODES)[number];

function usage(msg?: string): never {
  if (msg) console.error(`run: ${msg}`);
  console.error(`usage: node --import tsx tools/emu/run.ts ${MODES.join('|')} [--cpus N] [--cmdline "..."] [--megs N] [--timeout SECONDS] [--expect-status N] [--module PATH NAME]...`);
  process.exit(2);
}

function parseArgs(argv: string[]) {
  const mode = argv[0] as Mode;
  if (!MODES.includes(mode)) usage(argv[0] ? `unknown mode ${argv[0]}` : 'no mode given');
  const opts: { mode: Mode; cpus: number; cmdline?: string; megs?: number; timeoutMs?: number; expectStatus: number; modules: [string, string][] } = { mode, cpus: 1, expectStatus: 0, modules: [] };
  const num = (flag: string, v: string | undefined): number => {
    if (v === undefined || !/^\d+$/.test(v)) usage(`${flag} needs a number`);
    return Number(v);
  };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--cpus') opts.cpus = num(a, argv[++i]);
    else if (a === '--cmdline') {
      if (argv[i + 1] === undefined) usage('--cmdline needs a value');
      opts.cmdline = argv[++i];
    } else if (a === '--megs') opts.megs = num(a, argv[++i]);
    else if (a === '--timeout') opts.timeoutMs = num(a, argv[++i]) * 1000;
    else if (a === '--expect-status') opts.expectStatus = num(a, argv[++i]);
    else if (a === '--module') {
      if (argv[i + 1] === undefined || argv[i + 2] === undefined) usage('--module needs PATH NAME');
      opts.modules.push([argv[++i], argv[++i]]);
    }
    else usage(`unknown argument ${a}`);
  }
  if (opts.cpus < 1) usage('--cpus must be at least 1');
  if (opts.modules.length > 0 && opts.mode !== 'bochs-mb') usage('--module is for bochs-mb only');
  return opts;
}

function need(file: string): void {
  if (!fs.existsSync(path.join(REPO, file))) {
    console.error(`run: ${file} does not exist: build it first (make all)`);
    process.exit(1);
  }
}

function tool(script: string, args: string[]): void {
  execFileSync('bash', [path.join(REPO, 'tools', script), ...args], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const name = o.mode;
  let result: RunResult;
  let exitCode: number;

  if (o.mode === 'kvm-efi') {
    const why = kvmUnusableReason();
    if (why) {
      console.error(`run: cannot use KVM here: ${why}.`);
      console.error('run: kvm-efi needs an Intel host with VT-x, nested virtualization (kvm_intel nested=1) and access to /dev/kvm; use bochs-efi or bochs-mb on this machine.');
      process.exit(1);
    }
  }

  const runDir = freshRunDir(name);
  if (o.mode === 'bochs-mb') {
    need('build/hv.elf');
    const iso = path.join(runDir, 'hv.iso');
    // The test guests ride along as modules named by their file names
    // (guest=suite.elf ...), so any command line can run them.
    const guests = fs.existsSync(path.join(REPO, 'build/guests'))
      ? fs.readdirSync(path.join(REPO, 'build/guests')).filter((f) => /\.(elf|txt)$/.test(f)).sort() : [];
    const modules = guests.flatMap((f) => ['--module', path.join('build/guests', f), f]);
    for (const [file, name] of o.modules) modules.push('--module', file, name);
    tool('mkiso.sh', ['build/hv.elf', iso, ...(o.cmdline !== undefined ? ['--cmdline', o.cmdline] : []), ...modules]);
    exitCode = o.expectStatus === 0 ? 0 : 1;
    console.error(`run: Bochs + legacy BIOS + GRUB, ${o.cpus} CPU(s); serial log ${path.relative(REPO, path.join(runDir, 'serial.txt'))}`);
    result = await runBochs({ name, boot: 'bios-cdrom', image: iso, cpus: o.cpus, megs: o.megs, timeoutMs: o.timeoutMs, live: true, runDir });
  } else if (o.mode === 'bochs-efi') {
    need('build/esp/EFI/BOOT/BOOTX64.EFI');
    const esp = path.join(runDir, 'esp');
    copyEsp(path.join(REPO, 'build/esp'), esp, o.cmdline);
    const img = path.join(runDir, 'disk.img');
    tool('mkesp.sh', [esp, img]);
    exitCode = o.expectStatus === 0 ? 0 : 1;
    console.error(`run: Bochs + OVMF (about 15 s of firmware first), ${o.cpus} CPU(s); serial log ${path.relative(REPO, path.join(runDir, 'serial.txt'))}`);
    result = await runBochs({ name, boot: 'ovmf-disk', image: img, cpus: o.cpus, megs: o.megs, timeoutMs: o.timeoutMs, live: true, runDir });
  } else {
    need('build/esp/EFI/BOOT/BOOTX64.EFI');
    const kvm = o.mode === 'kvm-efi';
    exitCode = o.expectStatus * 2 + 1;
    console.error(`run: QEMU ${kvm ? 'KVM' : 'TCG'} + OVMF, ${o.cpus} CPU(s); serial log ${path.relative(REPO, path.join(runDir, 'serial.txt'))}`);
    result = await runQemu({ name, espDir: path.join(REPO, 'build/esp'), cmdline: o.cmdline, kvm, cpus: o.cpus, megs: o.megs, timeoutMs: o.timeoutMs, live: true, runDir });
  }

  const expect: Expectation = { status: o.expectStatus, exitCode };
  const problems = runProblems(result, expect);
  const secs = (result.durationMs / 1000).toFixed(1);
  if (problems.length === 0) {
    console.error(`run: PASS ${name}: status ${result.status} (${result.statusName}), emulator exit code ${result.exitCode}, ${secs}s`);
    process.exit(0);
  }
  console.error(describeFailure(result, expect, problems));
  if (o.mode === 'qemu-efi' && result.status === 2 && o.expectStatus === 0) {
    console.error('run: (QEMU TCG has no VMX: status 2 is the expected outcome there; pass --expect-status 2 to check it)');
  }
  process.exit(1);
}

main().catch((e: unknown) => {
  console.error(`run: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});

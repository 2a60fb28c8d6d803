// Boot tests: one emulator boot each, each under its own time limit.
//   (a) QEMU 7.2 TCG + OVMF + build/BOOTX64.EFI: no VMX there, so the
//       hypervisor must say so and stop with status 2 (QEMU exit code 5).
//   (b) Bochs + OVMF + the same BOOTX64.EFI on a FAT disk: reaches VMXON.
//   (c) Bochs + legacy BIOS + GRUB + build/hv.elf (multiboot2): reaches VMXON.
// Each Bochs test reports its tick counts (clock: sync=none, so RDTSC counts
// emulated instructions since reset): reset -> the kernel's first line, and
// first line -> VMXON. They go to stdout and to build/boot-ticks.json.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runBochs } from '../../tools/emu/bochs.ts';
import { runQemu } from '../../tools/emu/qemu.ts';
import { expectRun, freshRunDir, REPO, tscOf, type RunResult } from '../../tools/emu/runner.ts';

const EFI = path.join(REPO, 'build', 'BOOTX64.EFI');
const ELF = path.join(REPO, 'build', 'hv.elf');
const HV_CFG = path.join(REPO, 'tests', 'qemu', 'hv.cfg');
const TICKS = path.join(REPO, 'build', 'boot-ticks.json');

const KERNEL_START = /^hv: kernel start tsc=\d+/;
const VMXON_OK = /^hv: vmxon ok\b.*\btsc=\d+/;

function need(file: string): void {
  if (!fs.existsSync(file)) throw new Error(`${path.relative(REPO, file)} does not exist: run make all first`);
}

/** An ESP directory in the run dir: BOOTX64.EFI and the default hv.cfg. */
function makeEsp(runDir: string): string {
  need(EFI);
  const boot = path.join(runDir, 'esp', 'EFI', 'BOOT');
  fs.mkdirSync(boot, { recursive: true });
  fs.copyFileSync(EFI, path.join(boot, 'BOOTX64.EFI'));
  fs.copyFileSync(HV_CFG, path.join(boot, 'hv.cfg'));
  return path.join(runDir, 'esp');
}

function sh(script: string, args: string[]): void {
  execFileSync('bash', [path.join(REPO, 'tools', script), ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
}

interface Ticks {
  /** RDTSC at the kernel's first line (Bochs: instructions since reset). */
  resetToKernel: number | null;
  /** Ticks from the first line to VMXON. */
  kernelToVmxon: number | null;
  kernelStartTsc: number | null;
  vmxonTsc: number | null;
  durationMs: number;
  note: string;
}

/** Report a run's ticks and merge them into build/boot-ticks.json. */
function recordTicks(key: string, r: RunResult, bochs: boolean): Ticks {
  const kernelStartTsc = tscOf(r.serial, /^hv: kernel start /);
  const vmxonTsc = tscOf(r.serial, /^hv: vmxon ok\b/);
  const note = bochs ? 'Bochs clock sync=none: ticks are emulated instructions since reset'
    : 'QEMU TCG: the TSC follows host time, so no reset->kernel figure';
  const t: Ticks = {
    resetToKernel: bochs ? kernelStartTsc : null,
    kernelToVmxon: kernelStartTsc !== null && vmxonTsc !== null ? vmxonTsc - kernelStartTsc : null,
    kernelStartTsc,
    vmxonTsc,
    durationMs: r.durationMs,
    note,
  };
  let all: Record<string, Ticks> = {};
  try {
    all = JSON.parse(fs.readFileSync(TICKS, 'utf8'));
  } catch {
    /* first measurement */
  }
  all[key] = t;
  fs.mkdirSync(path.dirname(TICKS), { recursive: true });
  fs.writeFileSync(TICKS, JSON.stringify(all, null, 2) + '\n');
  const fmt = (n: number | null): string => (n === null ? '-' : n.toLocaleString('en-US'));
  console.log(`\n  ${key}: reset->kernel ${fmt(t.resetToKernel)} ticks, kernel->vmxon ${fmt(t.kernelToVmxon)} ticks, ` +
    `run ${(r.durationMs / 1000).toFixed(1)}s`);
  return t;
}

function checkVmxonTicks(t: Ticks): void {
  assert.ok(t.kernelStartTsc !== null && t.kernelStartTsc > 0, 'kernel start tsc is a positive number');
  assert.ok(t.kernelToVmxon !== null && t.kernelToVmxon > 0, `vmxon tsc (${t.vmxonTsc}) is after kernel start tsc (${t.kernelStartTsc})`);
}

test('QEMU TCG + OVMF boots BOOTX64.EFI and reports no VT-x (status 2)', async () => {
  const name = 'test-qemu-efi';
  const runDir = freshRunDir(name);
  const esp = makeEsp(runDir);
  const r = await runQemu({ name, espDir: esp, runDir, timeoutMs: 120_000 });
  expectRun(r, { status: 2, exitCode: 5, lines: [KERNEL_START, /^hv: no VT-x/] });
  recordTicks('qemu-efi', r, false);
});

test('Bochs + OVMF boots BOOTX64.EFI, reaches VMXON, and runs a guest loaded from the ESP', async () => {
  const name = 'test-bochs-efi';
  const runDir = freshRunDir(name);
  const esp = makeEsp(runDir);
  // The UEFI front-end reads the files the configuration names from the ESP.
  const boot = path.join(esp, 'EFI', 'BOOT');
  for (const f of ['suite.elf', 'module.txt']) {
    const src = path.join(REPO, 'build', 'guests', f);
    need(src);
    fs.copyFileSync(src, path.join(boot, f));
  }
  fs.writeFileSync(path.join(boot, 'hv.cfg'), '# boot.test.ts: the guest suite from the ESP\n' +
    'guest=/EFI/BOOT/suite.elf args=mods=1,tag=suite-args-ok module=/EFI/BOOT/module.txt\n');
  const img = path.join(runDir, 'disk.img');
  sh('mkesp.sh', [esp, img]);
  const r = await runBochs({ name, boot: 'ovmf-disk', image: img, runDir, timeoutMs: 300_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [KERNEL_START, VMXON_OK, /^hv: file \/EFI\/BOOT\/suite\.elf: \d+ bytes/, /^L1\| RESULT: PASS$/,
      /^hv: guest 1 \(\/EFI\/BOOT\/suite\.elf\) ended: exit via isa-debug-exit, code 1, .*: as expected$/],
  });
  assert.not.match(r.serial, /^L1\| not ok /m);
  checkVmxonTicks(recordTicks('bochs-efi', r, true));
});

test('Bochs + legacy BIOS + GRUB boots hv.elf (multiboot2) and reaches VMXON', async () => {
  const name = 'test-bochs-mb';
  const runDir = freshRunDir(name);
  need(ELF);
  const iso = path.join(runDir, 'hv.iso');
  sh('mkiso.sh', [ELF, iso]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image: iso, runDir, timeoutMs: 180_000 });
  expectRun(r, { status: 0, exitCode: 0, lines: [KERNEL_START, VMXON_OK] });
  checkVmxonTicks(recordTicks('bochs-mb', r, true));
});

// The failure paths of the real image (boot/rt, boot/common/cpu.c): each
// must print what happened and stop with its status, never hang or reset.
async function crashRun(kind: string) {
  const name = `test-bochs-mb-crash-${kind}`;
  const runDir = freshRunDir(name);
  need(ELF);
  const iso = path.join(runDir, 'hv.iso');
  sh('mkiso.sh', [ELF, iso, '--cmdline', `caps=off crash=${kind}`]);
  return runBochs({ name, boot: 'bios-cdrom', image: iso, runDir, timeoutMs: 180_000 });
}

test('Bochs + GRUB, crash=trap: the wasm runtime reports the trap and stops (status 5)', async () => {
  const r = await crashRun('trap');
  expectRun(r, { status: 5, exitCode: 1, lines: [/^hv: trap: wasm out-of-bounds linear memory or table access$/] });
});

test('Bochs + GRUB, crash=exception: #GP in the hypervisor prints a register dump (status 6)', async () => {
  const r = await crashRun('exception');
  expectRun(r, {
    status: 6,
    exitCode: 1,
    lines: [
      /^hv: exception: #GP general protection \(vector 13\) error 0x0 in the hypervisor$/,
      /^hv: regs: rip=0x[0-9a-f]+ cs=0x8 rflags=0x[0-9a-f]+ rsp=0x[0-9a-f]+ ss=0x10 cr2=0x[0-9a-f]+ cr3=0x[0-9a-f]+$/,
      /^hv: regs: rax=0x0 .*rcx=0xc0000100 rdx=0x80000000 /,
    ],
  });
});

test.run();

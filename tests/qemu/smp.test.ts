// Multiprocessor start-up (boot/smp) on Bochs with `cpu: count=N`:
//   - legacy BIOS + GRUB + build/hv.elf with 1, 2 and 4 CPUs: the ACPI MADT
//     (Bochs's BIOS builds one) lists N processors, every application
//     processor is started with INIT-SIPI-SIPI and reaches its idle loop, and
//     the boot processor still goes on to VMXON and a clean exit; with one
//     CPU nothing is started and one line is printed;
//   - OVMF + build/BOOTX64.EFI with 2 CPUs: OVMF on Bochs installs no ACPI
//     tables, so the processors are found by the broadcast INIT-SIPI-SIPI,
//     after ExitBootServices (OVMF has started and parked the second CPU
//     itself before).
// Each run must print `hv: smp: N CPUs online (LAPIC IDs ...)` before the
// kernel's first line, and nothing about processors that failed to start.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO, type RunResult } from '../../tools/emu/runner.ts';

const EFI = path.join(REPO, 'build', 'BOOTX64.EFI');
const ELF = path.join(REPO, 'build', 'hv.elf');
const HV_CFG = path.join(REPO, 'tests', 'qemu', 'hv.cfg');

const KERNEL_START = /^hv: kernel start tsc=\d+/;
const VMXON_OK = /^hv: vmxon ok\b/;
const SMP_TROUBLE = /^hv: smp: .*(did not start|left out|parked|did not reach|alone)/;

function need(file: string): void {
  if (!fs.existsSync(file)) throw new Error(`${path.relative(REPO, file)} does not exist: run make all first`);
}

function sh(script: string, args: string[]): void {
  execFileSync('bash', [path.join(REPO, 'tools', script), ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
}

/** `hv: smp: N CPU(s) online (LAPIC ID(s) 0, 1, ...)` for ids. */
function onlineLine(ids: number[]): RegExp {
  const n = ids.length;
  return new RegExp(`^hv: smp: ${n} ${n === 1 ? 'CPU online \\(LAPIC ID' : 'CPUs online \\(LAPIC IDs'} ${ids.join(', ')}\\)$`);
}

/** The SMP line comes before the kernel starts, and nothing went wrong. */
function checkOrder(r: RunResult): void {
  const lines = r.serial.split('\n');
  const online = lines.findIndex((l) => /^hv: smp: \d+ CPUs? online/.test(l));
  const kernel = lines.findIndex((l) => KERNEL_START.test(l));
  assert.ok(online >= 0 && kernel > online, 'the smp line precedes "hv: kernel start"');
  const trouble = lines.filter((l) => SMP_TROUBLE.test(l));
  assert.equal(trouble, [], 'no processor failed to start');
}

async function grubRun(cpus: number): Promise<RunResult> {
  const name = `test-bochs-mb-smp${cpus}`;
  const runDir = freshRunDir(name);
  need(ELF);
  const iso = path.join(runDir, 'hv.iso');
  sh('mkiso.sh', [ELF, iso]);
  return runBochs({ name, boot: 'bios-cdrom', image: iso, runDir, cpus, timeoutMs: 180_000 });
}

test('Bochs + GRUB, 1 CPU: one line, nothing started', async () => {
  const r = await grubRun(1);
  expectRun(r, { status: 0, exitCode: 0, lines: [onlineLine([0]), KERNEL_START, VMXON_OK] });
  checkOrder(r);
  // A uniprocessor costs no start-up: the count is all it prints.
  assert.equal(r.serial.split('\n').filter((l) => l.startsWith('hv: smp: ')).length, 1, 'one smp line');
});

for (const cpus of [2, 4]) {
  test(`Bochs + GRUB, ${cpus} CPUs: INIT-SIPI-SIPI brings every processor to its idle loop`, async () => {
    const r = await grubRun(cpus);
    const ids = Array.from({ length: cpus }, (_, i) => i);
    expectRun(r, {
      status: 0,
      exitCode: 0,
      lines: [
        new RegExp(`^hv: smp: ACPI MADT \\(RSDP 0x[0-9a-f]+\\) lists ${cpus} processors; TSC \\d+ kHz \\(PIT\\); ` +
          'start-up code at 0x[0-9a-f]+, per-CPU blocks at 0x[0-9a-f]+$'),
        onlineLine(ids),
        KERNEL_START,
        VMXON_OK,
      ],
    });
    checkOrder(r);
  });
}

test('Bochs + OVMF, 2 CPUs: the second processor is started again after ExitBootServices', async () => {
  const name = 'test-bochs-efi-smp2';
  const runDir = freshRunDir(name);
  need(EFI);
  const boot = path.join(runDir, 'esp', 'EFI', 'BOOT');
  fs.mkdirSync(boot, { recursive: true });
  fs.copyFileSync(EFI, path.join(boot, 'BOOTX64.EFI'));
  fs.copyFileSync(HV_CFG, path.join(boot, 'hv.cfg'));
  const img = path.join(runDir, 'disk.img');
  sh('mkesp.sh', [path.join(runDir, 'esp'), img]);
  const r = await runBochs({ name, boot: 'ovmf-disk', image: img, runDir, cpus: 2, timeoutMs: 300_000 });
  expectRun(r, {
    status: 0,
    exitCode: 0,
    lines: [/^hv: smp: (ACPI MADT .* lists 2 processors|.*: broadcast INIT-SIPI-SIPI); TSC /, onlineLine([0, 1]), KERNEL_START, VMXON_OK],
  });
  checkOrder(r);
});

test.run();

// QEMU runs of the UEFI image: TCG (no VMX at all: the hypervisor must say
// "no VT-x" and stop with status 2) and KVM (-enable-kvm -cpu host, for hosts
// with VT-x and nested virtualization; only `make run-kvm` uses it).
//
// QEMU boots OVMF from -bios and the application from a virtual FAT drive
// built from a directory (fat:rw:DIR). The directory is a copy in the run
// dir: the drive is writable (QEMU refuses a read-only IDE disk) and OVMF may
// write to it, which must never reach build/esp. isa-debug-exit at 0xf4 turns
// the status the hypervisor writes there into QEMU's exit code (N*2+1).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freshRunDir, runEmulator, type RunResult } from './runner.ts';

export const OVMF = '/usr/share/ovmf/OVMF.fd';

export interface QemuOptions {
  name: string;
  /** ESP directory (EFI/BOOT/BOOTX64.EFI, EFI/BOOT/hv.cfg, ...). */
  espDir: string;
  /** Command line: replaces EFI/BOOT/hv.cfg in the run's copy when given. */
  cmdline?: string;
  kvm?: boolean;
  cpus?: number;
  megs?: number;
  timeoutMs?: number;
  live?: boolean;
  progress?: boolean;
  runDir?: string;
}

/** The hypervisor's config file format (tests/qemu/hv.cfg): `#` lines are
 * comments, the other lines joined by spaces are the command line. */
export function hvCfgText(cmdline: string): string {
  return `# hv.cfg: lines starting with # are comments; the rest, joined by spaces, is the hypervisor's command line\n${cmdline}\n`;
}

/** Copy an ESP directory into dest, optionally with a new hv.cfg. */
export function copyEsp(src: string, dest: string, cmdline?: string): void {
  if (!fs.existsSync(path.join(src, 'EFI', 'BOOT', 'BOOTX64.EFI'))) {
    throw new Error(`${src}/EFI/BOOT/BOOTX64.EFI does not exist (run make all)`);
  }
  fs.rmSync(dest, { recursive: true, force: true });
  fs.cpSync(src, dest, { recursive: true });
  if (cmdline !== undefined) fs.writeFileSync(path.join(dest, 'EFI', 'BOOT', 'hv.cfg'), hvCfgText(cmdline));
}

/** Why KVM cannot run this hypervisor here, or null when it looks usable. */
export function kvmUnusableReason(): string | null {
  if (!fs.existsSync('/dev/kvm')) return '/dev/kvm does not exist (no KVM on this host)';
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return '/dev/kvm is not readable and writable by this user';
  }
  let flags = '';
  try {
    const m = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    flags = m ? ` ${m[1]} ` : '';
  } catch {
    return null; // cannot tell: let QEMU try
  }
  if (!flags.includes(' vmx ')) {
    const what = flags.includes(' svm ') ? 'an AMD CPU (svm)' : 'a CPU without the vmx flag';
    return `the host has ${what}: -cpu host gives the guest no VT-x, which this hypervisor needs (nested VMX on an Intel host)`;
  }
  return null;
}

export async function runQemu(o: QemuOptions): Promise<RunResult> {
  const runDir = o.runDir ?? freshRunDir(o.name);
  const esp = path.join(runDir, 'esp');
  if (path.resolve(o.espDir) !== esp) copyEsp(o.espDir, esp, o.cmdline);
  else if (o.cmdline !== undefined) fs.writeFileSync(path.join(esp, 'EFI', 'BOOT', 'hv.cfg'), hvCfgText(o.cmdline));
  const serialPath = path.join(runDir, 'serial.txt');
  const argv = [
    'qemu-system-x86_64',
    ...(o.kvm ? ['-enable-kvm', '-cpu', 'host'] : []),
    '-machine', 'q35',
    '-m', String(o.megs ?? 256),
    '-smp', String(o.cpus ?? 1),
    '-bios', OVMF,
    '-drive', `format=raw,file=fat:rw:${esp}`,
    '-display', 'none',
    '-monitor', 'none',
    '-serial', `file:${serialPath}`,
    '-nic', 'none',
    '-no-reboot',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
  ];
  return runEmulator({
    name: o.name,
    argv,
    runDir,
    serialPath,
    timeoutMs: o.timeoutMs ?? (o.kvm ? 60_000 : 90_000),
    live: o.live,
    progress: o.progress,
    // After a KVM internal error QEMU stops the VM and waits forever.
    abortOn: o.kvm ? [
      { pattern: /KVM internal error[^\n]*/, reason: 'QEMU reported "KVM internal error" (KVM cannot run this guest here; see emulator.out)' },
      { pattern: /failed to initialize kvm|Could not access KVM kernel module/i, reason: 'QEMU could not initialise KVM (see emulator.out)' },
    ] : undefined,
  });
}

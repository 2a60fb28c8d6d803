// A scripted guest for exit-handler tests: kernel.wasm runs one guest (a
// tiny multiboot kernel whose bytes never execute) on the model, and every
// VM entry plays the next scripted VM exit. Each step's `check` runs at the
// following entry, so it sees what the handler did with that exit
// (registers, RIP, injected events, console); `before` runs just before the
// step's exit is produced (e.g. to put data in guest memory).
import { tigerlake, runKernel, type Machine } from '../model/index.ts';
import * as V from '../model/vmx-consts.ts';

export const GUEST_BASE = 0x100000;
export const ENTRY = GUEST_BASE + 0x20;

// A Multiboot 1 kernel in a.out-kludge form (header flags bit 16): the
// smallest image the loader accepts; its bytes are never executed here.
export function tinyKernel(): Uint8Array {
  const img = new Uint8Array(0x1000);
  const dv = new DataView(img.buffer);
  const flags = 0x00010003;
  const words = [0x1badb002, flags, (-(0x1badb002 + flags)) >>> 0, GUEST_BASE, GUEST_BASE, 0, 0, ENTRY];
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return img;
}

export interface Exit {
  reason: number;
  qual?: bigint;
  len?: number;
  regs?: Record<number, bigint>;
  fields?: Record<number, bigint>;
}

// Produce exit `exit` on the model: the guest's registers, the exit
// reason, qualification, instruction length (defaultLen when the step gives
// none) and the step's other fields; no IDT-vectoring information, and the
// VM-entry interruption information consumed by the entry (26.6, 28.2:
// every exit clears its valid bit).
export function produceExit(m: Machine, vmx: { setField(f: number, v: bigint): void }, exit: Exit, defaultLen: number): void {
  for (const [r, v] of Object.entries(exit.regs ?? {})) m.setGuestReg(Number(r), v);
  vmx.setField(V.VM_EXIT_REASON, BigInt(exit.reason));
  vmx.setField(V.EXIT_QUALIFICATION, exit.qual ?? 0n);
  vmx.setField(V.VM_EXIT_INSTRUCTION_LENGTH, BigInt(exit.len ?? defaultLen));
  vmx.setField(V.IDT_VECTORING_INFO, 0n);
  vmx.setField(V.VM_ENTRY_INTERRUPTION_INFO, 0n);
  for (const [f, v] of Object.entries(exit.fields ?? {})) vmx.setField(Number(f), v);
}

export interface Snapshot { rip: bigint }
export type Step = { exit: Exit; before?: (m: Machine) => void; check?: (m: Machine, before: Snapshot) => void };

export const RAX = 0, RCX = 1, RDX = 2, RBX = 3;

// Run the kernel with one guest whose exits are `steps`; after the last
// step the guest writes 0 to isa-debug-exit. Returns the run result.
export function play(steps: Step[], cmdline = '', opts: { noFinalExit?: boolean; machine?: Machine } = {}) {
  const m = opts.machine ?? tigerlake();
  let i = 0;
  let prev: Snapshot = { rip: 0n };
  m.vmx.guest = (vmx) => {
    if (i > 0 && steps[i - 1].check) steps[i - 1].check!(m, prev);
    const rip = vmx.field(V.GUEST_RIP);
    prev = { rip };
    // Each entry starts with no event pending unless the handler injected.
    let exit: Exit;
    if (i < steps.length) {
      steps[i].before?.(m);
      exit = steps[i].exit;
    } else if (opts.noFinalExit) throw new Error('script ran out of exits');
    else exit = { reason: V.EXIT_REASON_IO_INSTRUCTION, qual: (0xf4n << 16n) | 3n, len: 1, regs: { [RAX]: 0n } };
    i++;
    produceExit(m, vmx, exit, 2);
  };
  const r = runKernel(m, { boot: { cmdline: `caps=off guest=/g ${cmdline}`, files: [{ name: '/g', data: tinyKernel() }] } });
  return { ...r, steps: i };
}

export const injected = (m: Machine) => m.vmx.field(V.VM_ENTRY_INTERRUPTION_INFO);
export const GP = 0x80000b0dn; // valid, hardware exception, deliver error code, vector 13
export const UD = 0x80000306n; // valid, hardware exception, vector 6

// The host-physical address of the guest's (L1's) physical address gpa:
// through the EPT of the current VMCS (vmcs01), as the guest's accesses go.
export function guestHpa(m: Machine, gpa: number): number {
  const mask = 0x000ffffffffff000n;
  const g = BigInt(gpa);
  let table = m.vmx.field(V.EPT_POINTER) & mask;
  for (let level = 4; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const e = m.phys.read64(Number(table + ((g >> shift) & 511n) * 8n));
    if ((e & 7n) === 0n) throw new Error(`guest-physical 0x${gpa.toString(16)} is not mapped by EPT`);
    if (level === 1 || (level <= 3 && (e & 0x80n) !== 0n)) {
      const page = (1n << shift) - 1n;
      return Number((e & mask & ~page) | (g & page));
    }
    table = e & mask;
  }
  throw new Error('unreachable');
}

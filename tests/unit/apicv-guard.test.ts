// The guard of kernel/vm/apicv.ts: a VM whose vCPUs run on several
// processors never runs a vCPU with APIC virtualization where a virtual
// interrupt could become pending while RFLAGS.IF = 0 without an exit first
// (Bochs 2.7 delivers such an interrupt when a physical one — another
// processor's kick — arrives; SDM Vol. 3C 30.2.2 says it must wait for
// IF = 1). On the model, with vmcs01 current: the test plays the processor
// (vIRR, vISR and VTPR on the virtual-APIC page; RVI/SVI in the guest
// interrupt status; RFLAGS) and runs the L1 entry's interrupt step
// (vm/irq.ts deliver), then reads what vmcs01 asks of the processor:
//   - entering with IF = 0 and a vector that VPPR lets through: interrupt-
//     window exiting (no virtual interrupt is pending with it, 30.2.1);
//   - a vector waiting behind another (behind the one delivered first, or
//     behind the one in service): the EOI that would let it through exits
//     (EOI-exit bitmap, 30.1.4);
//   - nothing of it while vIRR is empty, nor for a VM on one processor.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tigerlake, loadKernel, buildBootInfo } from '../model/index.ts';
import * as V from '../model/vmx-consts.ts';

const TPR = 0x080, ISR = 0x100, IRR = 0x200;
const IF = 1n << 9n;

function setup(spread: boolean) {
  const m = tigerlake();
  m.cpuCount = 2;
  const layout = buildBootInfo(m);
  const k = loadKernel(m);
  const call = <T = number>(name: string, ...args: unknown[]): T => {
    const r = k.call<T>(name, ...args);
    assert.not.ok(r.ended, `${name} ended the run: ${r.trap ?? r.faults.join('; ')}`);
    return r.value as T;
  };
  assert.is(call<number>('boot_parse', layout.bootinfo), 1, 'boot info parses');
  call('pages_init');
  assert.is(call<number>('smp_setup', 2, spread ? 1 : 0), spread ? 2 : 1);
  assert.is(call<number>('smp_vmcsSetup', 0), 1, 'vCPU 0 has a vmcs01 with APIC virtualization');
  const page = (off: number, v: number) => call('smp_vapicWrite', 0, off, v >>> 0);
  /** vCPU 0's APIC takes vector v from the bus (L0: into the model and vIRR). */
  const accept = (...vs: number[]) => { for (const v of vs) assert.is(call<number>('smp_accept', 0, v), 1); };
  /** What the processor left at the exit: vIRR and vISR (vector lists; it
   * only moves vectors out of vIRR, 30.2.2), VTPR, RVI/SVI (the highest of
   * each), RFLAGS.IF. */
  const processor = (irr: number[], isr: number[], tpr: number, ifSet: boolean) => {
    for (let w = 0; w < 8; w++) {
      page(IRR + w * 16, irr.filter((v) => v >> 5 === w).reduce((a, v) => a | (1 << (v & 31)), 0));
      page(ISR + w * 16, isr.filter((v) => v >> 5 === w).reduce((a, v) => a | (1 << (v & 31)), 0));
    }
    page(TPR, tpr);
    const rvi = irr.length ? Math.max(...irr) : 0;
    const svi = isr.length ? Math.max(...isr) : 0;
    call('smp_vmwrite', V.GUEST_INTERRUPT_STATUS, BigInt(rvi | (svi << 8)));
    call('smp_vmwrite', V.GUEST_RFLAGS, 2n | (ifSet ? IF : 0n));
  };
  /** An EOI-induced exit for v (the processor took it out of vISR first). */
  const eoiExit = (v: number) => call('smp_virtualEoi', 0, v);
  const window = () => call<number>('smp_deliver', 0) !== 0;
  const windowControl = () => (call<bigint>('smp_vmread', V.PRIMARY_PROC_BASED_VM_EXEC_CONTROL) & BigInt(V.PROC_INTERRUPT_WINDOW_EXITING)) !== 0n;
  /** The vectors whose EOI exits (vmcs01's EOI-exit bitmap). */
  const eoiExits = () => {
    const out: number[] = [];
    for (let w = 0; w < 4; w++) {
      const b = call<bigint>('smp_vmread', V.EOI_EXIT_BITMAP_0 + 2 * w);
      for (let i = 0; i < 64; i++) if ((b >> BigInt(i)) & 1n) out.push(w * 64 + i);
    }
    return out;
  };
  return { call, accept, processor, eoiExit, window, windowControl, eoiExits };
}

test('spread VM, IF = 0 at entry, vIRR holds a vector VPPR lets through: interrupt-window exiting', () => {
  const s = setup(true);
  s.accept(0xfb);
  s.processor([0xfb], [], 0x10, false);
  assert.ok(s.window(), 'the entry waits for the interrupt window');
  assert.ok(s.windowControl(), 'vmcs01 has interrupt-window exiting');
  assert.equal(s.eoiExits(), [], 'one vector, nothing behind it: no EOI exits');
  // The window exit came: IF = 1, the processor may deliver (30.2.1).
  s.processor([0xfb], [], 0x10, true);
  assert.not.ok(s.window(), 'IF = 1: the processor delivers, no window');
  assert.not.ok(s.windowControl());
});

test('spread VM, a vector blocked by TPR only: no window, no EOI exit (no EOI can let it through)', () => {
  const s = setup(true);
  s.accept(0x31);
  s.processor([0x31], [], 0x40, false);
  assert.not.ok(s.window());
  assert.equal(s.eoiExits(), []);
});

test('spread VM, two vectors in vIRR: the EOI of the one delivered first exits', () => {
  const s = setup(true);
  s.accept(0xfb, 0x21);
  s.processor([0xfb, 0x21], [], 0x10, true);
  assert.not.ok(s.window(), 'IF = 1: delivered at entry');
  assert.equal(s.eoiExits(), [0xfb], 'the EOI of 0xFB would make 0x21 pending inside its handler (IF = 0)');
});

test('spread VM, a vector behind the one in service: that EOI exits, and the next entry waits for IF = 1', () => {
  const s = setup(true);
  s.accept(0xfb, 0x21);
  // The entry that gives both to the processor (IF = 1).
  s.processor([0xfb, 0x21], [], 0x10, true);
  assert.not.ok(s.window());
  // The processor delivered 0xFB; its handler runs (IF = 0) and exits.
  s.processor([0x21], [0xfb], 0x10, false);
  assert.not.ok(s.window(), 'blocked by vISR: nothing can be delivered yet');
  assert.equal(s.eoiExits(), [0xfb], 'the EOI of 0xFB exits');
  // The handler's EOI: an EOI-induced exit, 0xFB out of vISR, still IF = 0.
  s.processor([0x21], [], 0x10, false);
  s.eoiExit(0xfb);
  assert.ok(s.window(), '0x21 is deliverable with IF = 0: interrupt window');
  assert.equal(s.eoiExits(), [], 'nothing behind 0x21: the guard asks for no EOI exit any more');
  // IF = 1 again: delivered.
  s.processor([], [0x21], 0x10, true);
  assert.not.ok(s.window());
  assert.equal(s.eoiExits(), []);
});

test('spread VM: the I/O APIC\'s level-triggered vectors stay in the EOI-exit bitmap with the guard\'s', () => {
  const s = setup(true);
  // Redirection entry 5: vector 0x45, level-triggered, masked, physical destination 0 (vCPU 0).
  s.call('smp_ioapicWrite', 0x00, 0x10 + 2 * 5);
  s.call('smp_ioapicWrite', 0x10, 0x45 | (1 << 15) | (1 << 16));
  s.call('smp_ioapicWrite', 0x00, 0x11 + 2 * 5);
  s.call('smp_ioapicWrite', 0x10, 0);
  s.accept(0x61, 0x21);
  s.processor([0x61, 0x21], [], 0x10, true);
  s.window();
  assert.equal(s.eoiExits(), [0x45, 0x61]);
  s.processor([], [], 0x10, true);
  s.window();
  assert.equal(s.eoiExits(), [0x45], 'vIRR empty: only the I/O APIC\'s vector');
});

test('a VM on one processor gets no guard (no physical interrupt arrives while it runs)', () => {
  const s = setup(false);
  s.accept(0xfb, 0x21);
  s.processor([0xfb, 0x21], [], 0x10, false);
  assert.not.ok(s.window());
  assert.equal(s.eoiExits(), []);
});

test.run();

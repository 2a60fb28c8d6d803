// tests/guests/l1bench.c, the minimal L1 of `make bench` (tools/bench.ts), on Bochs under this
// hypervisor, with few samples: its enlightened-VMCS mode (args=evmcs with hyperv=on nested=on:
// TLFS "Enlightened VMCS"; docs/guest-interface.md "Enlightened VM entry"), its VMCS mode on VMCS
// shadowing (nested=on), and args=evmcs without the Hyper-V interface, which must fail with the
// reason instead of measuring something else. On Bochs (clock: sync=none) a tick is an
// instruction, so the handler's figure says whether it ran without exits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from '../../tools/emu/runner.ts';
import { endings, hvIso } from './guestboot.ts';

const G = path.join(REPO, 'build', 'guests');

// Each guest's own lines (L1| prefix removed), by the hypervisor's "ended" line after them.
function perGuest(serial: string): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  for (const line of serial.split('\n')) {
    if (line.startsWith('L1| ')) cur.push(line.slice(4));
    if (/^hv: guest \d+ \(\S+\) ended: /.test(line)) {
      out.push(cur.join('\n'));
      cur = [];
    }
  }
  return out;
}
const figure = (text: string, op: string) => {
  const m = new RegExp(`^bench: ${op} min=(\\d+) median=(\\d+) n=(\\d+)$`, 'm').exec(text);
  return m ? { min: Number(m[1]), median: Number(m[2]), n: Number(m[3]) } : undefined;
};

test('Bochs: l1bench.elf on the eVMCS (hyperv=on, args=evmcs), on VMCS shadowing, and args=evmcs without Hyper-V', async () => {
  const name = 'test-l1bench';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off guest=l1bench.elf nested=on hyperv=on args=evmcs,n=20 guest=l1bench.elf nested=on args=n=20 ' +
    'guest=l1bench.elf nested=on args=evmcs,n=20 expect=exit:3';
  const image = hvIso(runDir, cmdline, [[path.join(G, 'l1bench.elf'), 'l1bench.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 400_000 });
  expectRun(r, { status: 0, exitCode: 0, lines: [/^hv: guests: 3 run, all as expected$/] });
  assert.equal(endings(r.serial).map((e) => e[2]), [true, true, true]);
  const [ev, vmcs, none] = perGuest(r.serial);

  // eVMCS mode: it ran on the eVMCS and measured every figure it can express.
  assert.match(ev, /^bench: nested VMX .*L2's VMCS an enlightened VMCS \(Hyper-V eVMCS v1\)$/m);
  assert.match(ev, /^RESULT: PASS$/m);
  for (const op of ['l2-cpuid-via-l1', 'l1-handler', 'l2-exit-to-l1-handler', 'l1-vmresume-to-l2', 'l2-ept-violation-via-l1']) {
    assert.is(figure(ev, op)?.n, 20, `${op} measured`);
  }
  // The handler's 12 instructions are loads and stores of the eVMCS: no VM exit among them (a
  // VMREAD/VMWRITE would have been one, or a failure: TLFS, no VMREAD/VMWRITE while in use).
  assert.match(ev, /^# l1-handler: the 12 instructions between the stamps/m);
  assert.is(figure(ev, 'l1-handler')?.min, 12);
  // Per L2 CPUID, L0 takes L2's CPUID exit and L1's VMRESUME: nothing else.
  assert.match(ev, /^bench: l0-exits-per-l2-cpuid value=2\.00 /m);
  // The round trip costs more than the handler (it went through L0).
  assert.ok(figure(ev, 'l2-cpuid-via-l1')!.min > 1000, ev);
  // What eVMCS v1 cannot express is reported as skipped, with the reason, not measured.
  for (const op of ['l1-vmread-guest-rip', 'l1-vmread-exit-reason', 'l1-vmwrite-guest-rip']) {
    assert.match(ev, new RegExp(`^bench: ${op} skipped \\(eVMCS: L1 reads and writes L2's VMCS in memory, no VMREAD/VMWRITE\\)$`, 'm'));
    assert.is(figure(ev, op), undefined);
  }
  assert.match(ev, /^bench: l2-vmfunc-switch skipped \(eVMCS v1 has no VM-function controls or EPTP-list address\)$/m);

  // VMCS mode on VMCS shadowing: VMREAD/VMWRITE do not exit (1 instruction each), the handler
  // is its 16 instructions, and L0 again takes 2 exits per L2 CPUID.
  assert.match(vmcs, /^RESULT: PASS$/m);
  assert.not.match(vmcs, /enlightened VMCS/);
  for (const op of ['l1-vmread-guest-rip', 'l1-vmread-exit-reason', 'l1-vmwrite-guest-rip']) assert.is(figure(vmcs, op)?.min, 1, op);
  assert.is(figure(vmcs, 'l1-handler')?.min, 16);
  assert.match(vmcs, /^bench: l0-exits-per-l2-cpuid value=2\.00 /m);
  for (const op of ['l2-cpuid-via-l1', 'l2-vmfunc-switch-cached', 'l2-vmfunc-switch-cold', 'l2-ept-violation-via-l1']) {
    assert.is(figure(vmcs, op)?.n, 20, `${op} measured`);
  }

  // args=evmcs without hyperv=on: no "Microsoft Hv" at 40000000H, so no eVMCS: a failure with
  // the reason (isa-debug-exit value 1: code 3), and no figure of another mode.
  assert.match(none, /^l1bench: args=evmcs: the Hyper-V enlightened VMCS v1 is not offered: CPUID 40000000H is not "Microsoft Hv"$/m);
  assert.match(none, /^RESULT: FAIL$/m);
  assert.not.match(none, /min=/);
});

test.run();

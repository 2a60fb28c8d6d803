// The Hyper-V interface (hyperv=on; issue 11 item 1, docs/guest-interface.md "Hyper-V
// interface") on Bochs: tests/guests/hyperv.c checks the CPUID leaves, every synthetic MSR
// with its #GP cases, the hypercall page and hypercalls through it against the TLFS, once
// with hyperv=on and once without (leaves as before, the MSRs #GP). Then turtles with
// hyperv=on: this hypervisor as L1 must find its parent's leaves at 40000100H (L1's lines
// marked "L1| ", its guest's "L1| L2| ", and the L2 guest told level 2), and run its L2 on
// the enlightened VMCS its parent recommends (or, with evmcs=off, not).
// Both with snapshot=N on the hyperv=on guest (docs/snapshot.md "HYPERV"): the guest's vCPU is
// saved, destroyed and restored every N exits, its synthetic MSRs with it (hyperv.c reads back
// what it wrote across those cycles), and for turtles L1's nested state too, in VMX operation and
// while L2 runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from '../../tools/emu/runner.ts';
import { endings, snapshotLines, hvIso, tapLines } from './guestboot.ts';

const G = path.join(REPO, 'build', 'guests');



test('Bochs: the Hyper-V interface with hyperv=on, and the same guest without it', async () => {
  const name = 'test-hyperv';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off guest=hyperv.elf hyperv=on snapshot=3 args=hv=on guest=hyperv.elf args=hv=off';
  const image = hvIso(runDir, cmdline, [[path.join(G, 'hyperv.elf'), 'hyperv.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 120_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [
      /^hv: guest 1 \(hyperv\.elf\): 32 MiB, vpid on, Hyper-V interface, expecting pass$/,
      /^hv: guest 2 \(hyperv\.elf\): 32 MiB, vpid on, expecting pass$/,
      // Four hypercalls reached the page (the first, our function numbers, the locked page,
      // the page at another linear address).
      /^hv: hyper-v: 4 hypercalls \(every call code answered HV_STATUS_INVALID_HYPERCALL_CODE\)$/,
      /^hv: guests: 2 run, all as expected$/,
    ],
  });
  assert.equal(endings(r.serial).map((x) => [x[0], x[2]]), [['hyperv.elf', true], ['hyperv.elf', true]]);
  const lines = tapLines(r.serial, 'L1| ');
  assert.equal(lines.filter((l) => l.startsWith('not ok')), []);
  // Both halves ran their checks (no SKIP, a line for each).
  assert.ok(lines.filter((l) => l.includes('hyperv=off:')).length >= 10, 'the hyperv=off checks ran');
  assert.ok(lines.some((l) => /hypercall through the page answers HV_STATUS_INVALID_HYPERCALL_CODE/.test(l)));
  assert.ok(lines.some((l) => /VMCALL at offset 0 of another page is ours/.test(l)));
  assert.not.match(r.serial, /# SKIP/);
  assert.is((r.serial.match(/^L1\| RESULT: PASS$/gm) ?? []).length, 2);
  // The hyperv=on guest went through snapshots (outside VMX operation: it has no nested=on).
  const snaps = snapshotLines(r.serial.replace(/\r/g, ''));
  const s = snaps.get(1);
  assert.ok(s, 'the snapshot line of guest 1');
  assert.ok(s!.taken >= 10, `${s!.taken} snapshots`);
  assert.equal([s!.inVmx, s!.evmcs, s!.every], [0, 0, 3]);
  assert.not.ok(snaps.has(2), 'guest 2 has no snapshot=');
});

// L0's exit table (the lines after "hv: exits: N in all" up to the next non-table line).
function l0Exits(serial: string): Map<string, number> {
  const out = new Map<string, number>();
  const lines = serial.split('\n');
  let i = lines.findIndex((l) => /^hv: exits: \d+ in all/.test(l));
  assert.ok(i >= 0, "L0's exit table");
  for (i++; i < lines.length; i++) {
    const m = /^hv: {3}(\S+)\s+(\d+)$/.exec(lines[i]);
    if (!m) break;
    out.set(m[1], Number(m[2]));
  }
  return out;
}

// Turtles with hyperv=on: this hypervisor as L1 finds its parent's own leaves at 40000100H
// and, since the parent recommends the enlightened VMCS (40000004H bit 14, version 1 in
// 4000000AH), uses it (issue 11 item 4; docs/guest-interface.md "This hypervisor as L1 on an
// enlightened VMCS"): its VMCS for L2 is an eVMCS made current through its VP assist page, so
// L0 sees no VMPTRLD, VMREAD or VMWRITE from it (TLFS: with an eVMCS active they are not
// used), every L2 exit reaches L1 through the eVMCS and every L1 VMRESUME goes through
// enlightened entry. With evmcs=off the same L1 declines it and uses VMPTRLD/VMREAD/VMWRITE.
for (const evmcs of [true, false]) {
test(`Bochs: turtles with hyperv=on${evmcs ? '' : ', L1 evmcs=off'}: L1 finds its parent at 40000100H${evmcs ? ' and runs L2 on an enlightened VMCS' : ''}`, async () => {
  const name = evmcs ? 'test-hyperv-turtles' : 'test-hyperv-turtles-noevmcs';
  const runDir = freshRunDir(name);
  const cmdline = `caps=off guest=hvl1.elf mem=96M nested=on hyperv=on args=caps=off,${evmcs ? '' : 'evmcs=off,'}guest=hyperv.elf,args=level=2 ` +
    'module=hyperv.elf';
  const image = hvIso(runDir, cmdline, [[path.join(G, 'hvl1.elf'), 'hvl1.elf'], [path.join(G, 'hyperv.elf'), 'hyperv.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 240_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [
      /^L1\| hv: cpu: .*under hypervisor "Microsoft Hv"$/,
      evmcs ? /^L1\| hv: vmx: enlightened VMCS \(Hyper-V eVMCS v1\) in use: / : /^L1\| hv: vmx: the parent recommends the enlightened VMCS; not used \(evmcs=off\)$/,
      evmcs ? /^L1\| hv: guest 1 \(hyperv\.elf\): 32 MiB, vpid on, enlightened VMCS, expecting pass$/ : /^L1\| hv: guest 1 \(hyperv\.elf\): 32 MiB, vpid on, expecting pass$/,
      /^L1\| L2\| ok \d+ - hyperv=off: 40000001H = version 2, level 2$/,
      /^L1\| L2\| RESULT: PASS$/,
      /^L1\| hv: guests: 1 run, all as expected$/,
      /^hv: guest 1 \(hvl1\.elf\) ended: exit via isa-debug-exit, code 1, .*: as expected$/,
    ],
  });
  assert.not.match(r.serial, /not ok /);
  const ex = l0Exits(r.serial);
  const reflected = /^hv: L2 exits: (\d+) reflected to L1/m.exec(r.serial);
  assert.ok(reflected && Number(reflected[1]) > 100, 'L2 exits reached L1');
  // One VMLAUNCH, then a VMRESUME per reflected exit but the last (L2 ends by exiting to L1).
  assert.is((ex.get('VMLAUNCH') ?? 0) + (ex.get('VMRESUME') ?? 0), Number(reflected![1]), 'an L1 entry per reflected exit');
  if (evmcs) {
    for (const insn of ['VMPTRLD', 'VMREAD', 'VMWRITE', 'VMPTRST']) assert.is(ex.get(insn), undefined, `L1 executed ${insn}`);
    assert.match(r.serial, /^L1\| hv: exits: \d+ in all \(the guest's VMCS an enlightened one: exit information read from memory\)$/m);
  } else {
    assert.ok((ex.get('VMPTRLD') ?? 0) >= 1, 'L1 loads its VMCS with VMPTRLD');
    assert.not.match(r.serial, /enlightened VMCS \(Hyper-V eVMCS v1\) in use/);
  }
});
}

// Four levels: L0, this hypervisor as L1 on the eVMCS with nested=on for its guest, the test L1
// (tests/guests/l1, demo part) as L2 hypervisor, and its guest as L3 under its EPT. The L2
// hypervisor's vmcs02 in L1 is an eVMCS too. L1 offers it neither VMCS shadowing nor VM
// functions (eVMCS v1 cannot express them, docs/guest-interface.md "This hypervisor as L1 on an
// enlightened VMCS"), so the test L1's two checks that expect them fail and it ends with
// value 1 (code 3: expect=exit:3); everything else it checks passes.
test('Bochs: four levels: the test L1 as L2 hypervisor under this hypervisor as L1 on the eVMCS', async () => {
  const name = 'test-hyperv-evmcs-l3';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off guest=hvl1.elf mem=160M nested=on hyperv=on ' +
    'args=caps=off,guest=l1.elf,nested=on,args=demo,expect=exit:3 module=l1.elf';
  const image = hvIso(runDir, cmdline, [[path.join(G, 'hvl1.elf'), 'hvl1.elf'], [path.join(G, 'l1.elf'), 'l1.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 600_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [
      /^L1\| hv: vmx: enlightened VMCS \(Hyper-V eVMCS v1\) in use: /,
      /^L1\| hv: guest 1 \(l1\.elf\): 32 MiB, vpid on, nested VMX, enlightened VMCS, expecting exit:3$/,
      /^L1\| L2\| ok \d+ - L2 runs under L1's EPT \(2-MByte and 4-KByte pages\): VMCALL exits to L1$/,
      /^L1\| hv: guest 1 \(l1\.elf\) ended: exit via isa-debug-exit, code 3, .*: as expected$/,
      /^hv: guest 1 \(hvl1\.elf\) ended: exit via isa-debug-exit, code 1, .*: as expected$/,
    ],
  });
  const notOk = r.serial.split('\n').filter((l) => /^L1\| L2\| not ok /.test(l));
  assert.is(notOk.length, 2, notOk.join('\n'));
  assert.match(notOk[0], /offers EPT, unrestricted guest, VPID, VMFUNC, VMCS shadowing/);
  assert.match(notOk[1], /VMFUNC EPTP switching offered to L1 .*\(VMFUNC MSR 0x0\)$/);
  assert.ok(r.serial.split('\n').filter((l) => /^L1\| L2\| ok \d+ /.test(l)).length >= 70, 'the rest of the demo part passed');
  // Without VMCS shadowing L1 emulates every VMREAD/VMWRITE of its L2 hypervisor.
  assert.match(r.serial, /^L1\| hv: {3}VMWRITE\s+\d+$/m);
  assert.match(r.serial, /^L1\| hv: {3}VMREAD\s+\d+$/m);
});

test('Bochs: turtles with hyperv=on and snapshot=7: L1 (this hypervisor, on the eVMCS) is snapshotted in VMX operation and while its L2 runs', async () => {
  const name = 'test-hyperv-turtles-snapshot';
  const runDir = freshRunDir(name);
  const cmdline = 'caps=off guest=hvl1.elf mem=96M nested=on hyperv=on snapshot=7 args=caps=off,guest=hyperv.elf,args=level=2 ' +
    'module=hyperv.elf';
  const image = hvIso(runDir, cmdline, [[path.join(G, 'hvl1.elf'), 'hvl1.elf'], [path.join(G, 'hyperv.elf'), 'hyperv.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 240_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [
      /^L1\| hv: cpu: .*under hypervisor "Microsoft Hv"$/,
      /^L1\| L2\| RESULT: PASS$/,
      /^L1\| hv: guests: 1 run, all as expected$/,
      /^hv: guest 1 \(hvl1\.elf\) ended: exit via isa-debug-exit, code 1, .*: as expected$/,
    ],
  });
  assert.not.match(r.serial, /not ok /);
  assert.not.match(r.serial, /snapshot rejected|cannot be mapped/);
  const s = snapshotLines(r.serial.replace(/\r/g, '')).get(1);
  assert.ok(s, 'the snapshot line');
  assert.is(s!.every, 7);
  assert.ok(s!.taken > 100, `${s!.taken} snapshots`);
  assert.ok(s!.inVmx > 50 && s!.inVmx <= s!.taken, `${s!.inVmx} of them in VMX operation`);
  assert.ok(s!.inL2 > 10, `${s!.inL2} of them while L1's guest ran`);
  // L1 runs its L2 on the enlightened VMCS (item 4), so snapshots land with it in use too.
  assert.match(r.serial, /^L1\| hv: vmx: enlightened VMCS \(Hyper-V eVMCS v1\) in use: /m);
  assert.ok(s!.evmcs > 10 && s!.evmcs <= s!.inVmx, `${s!.evmcs} with an eVMCS`);
  console.log(`  turtles, hyperv=on, snapshot=7: ${JSON.stringify(s)}`);
});

test.run();

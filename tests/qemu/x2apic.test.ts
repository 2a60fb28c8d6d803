// x2APIC mode (issue 12; SDM Vol. 3A 11.12; docs/guest-interface.md "Local
// APIC"): tests/guests/x2apic.c switches its local APIC to x2APIC mode and
// checks the mode transitions of 11.12.5, the registers by MSR (Table 11-6)
// and their #GP cases, self-IPIs by SELF IPI and by the 64-bit ICR, EOI,
// TPR and the timer by MSR; with a second processor, INIT/SIPI and IPIs
// with 32-bit destinations (physical, logical cluster, broadcast). First on
// bare Bochs with two CPUs (tigerlake has x2APIC), whose APICs validate the
// test itself, then under the hypervisor with vcpus=2 and vcpus=1.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { runBochs } from '../../tools/emu/bochs.ts';
import { expectRun, freshRunDir, REPO } from '../../tools/emu/runner.ts';
import { isoOf, hvIso, tapLines, snapshotLines } from './guestboot.ts';

const GUEST = path.join(REPO, 'build', 'guests', 'x2apic.elf');

const CHECKS = 36; // the guest's checks with two processors (every one must run and pass)
const AP_CHECKS = 8; // of which the second processor's (one SKIP line with one vCPU)
// What Bochs 2.7 does otherwise than the SDM (x2apic.c SDM_CHECK): SKIPs
// on bare Bochs, checked under the hypervisor.
const BOCHS_DEVIATES = [
  'LDR 00000001H (cluster 0, bit 0: 11.12.10.2)',
  'ICR reads back as one 64-bit register',
  'AP: LDR 00000002H (cluster 0, bit 1)',
  'BSP -> AP fixed IPI, logical 00000002H (cluster 0, bit 1)',
  'disabled -> x2APIC: #GP',
  'disabled -> xAPIC: the page decodes again (ID 0)',
];

test('Bochs: x2APIC mode on bare Bochs, two processors (reference)', async () => {
  const name = 'test-x2apic-bare';
  const runDir = freshRunDir(name);
  const r = await runBochs({ name, boot: 'bios-cdrom', image: isoOf(runDir, GUEST, []), runDir, cpus: 2, timeoutMs: 240_000 });
  const where = `(reproduce: ${r.command}; serial ${r.serialPath})`;
  assert.not.ok(r.timedOut, `timed out ${where}`);
  assert.is(r.exitCode, 0, `Bochs exit code ${where}`);
  const lines = tapLines(r.serial, '');
  assert.equal(lines.filter((l) => l.startsWith('not ok')), []);
  assert.is(lines.length, CHECKS, `${lines.length} checks`);
  const skips = lines.filter((l) => / # SKIP/.test(l)).map((l) => l.replace(/^ok \d+ - /, '').replace(/ # SKIP.*$/, ''));
  assert.equal(skips, BOCHS_DEVIATES, 'SKIPs: exactly where Bochs deviates from the SDM');
  assert.match(r.serial, /^RESULT: PASS\r?$/m);
});

// WRMSR exits of each run below (the hypervisor's exit table), by run name.
const wrmsrExits = new Map<string, number>();
function countWrmsr(name: string, serial: string): void {
  const m = /^hv:   WRMSR\s+(\d+)\r?$/m.exec(serial);
  wrmsrExits.set(name, m ? Number(m[1]) : 0);
}

// vcpus=2 on one physical CPU (sharing it) and on two (at once: the x2APIC
// IPIs between them are posted to the other processor, vm/ipi.ts).
for (const [vcpus, apicv, cpus] of [[2, 'on', 1], [2, 'on', 2], [1, 'on', 1], [1, 'off', 1]] as const) {
  test(`Bochs: x2APIC mode under the hypervisor, vcpus=${vcpus}, apicv=${apicv}, ${cpus} physical CPU(s)`, async () => {
    const name = `test-x2apic-hv-vcpus${vcpus}${apicv == 'off' ? '-apicv-off' : ''}${cpus == 2 ? '-cpus2' : ''}`;
    const runDir = freshRunDir(name);
    const image = hvIso(runDir, `caps=off guest=x2apic.elf vcpus=${vcpus} apicv=${apicv}`, [[GUEST, 'x2apic.elf']]);
    const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus, timeoutMs: 240_000 });
    expectRun(r, {
      status: 0, exitCode: 0,
      lines: [
        /^hv: guest 1 \(x2apic\.elf\) ended: exit via hypercall, status 0, \d+ exits, .*: as expected$/,
        /^hv: guests: 1 run, all as expected$/,
      ],
    });
    countWrmsr(name, r.serial);
    const lines = tapLines(r.serial, 'L1| ');
    assert.equal(lines.filter((l) => l.startsWith('not ok')), []);
    if (vcpus == 2) {
      assert.match(r.serial, cpus == 2 ? /^hv: vcpus: 2 on 2 processors, 0 switches\r?$/m : /^hv: vcpus: 2 sharing one processor, \d+ switches\r?$/m);
      assert.is(lines.length, CHECKS, `${lines.length} checks`);
      assert.not.match(r.serial, /# SKIP/);
    } else {
      assert.is(lines.length, CHECKS - AP_CHECKS + 1, `${lines.length} checks`);
      assert.equal(lines.filter((l) => / # SKIP/.test(l)).length, 1, 'the second processor\'s checks: one SKIP');
    }
  });
}

// With APIC virtualization (apicv=on) an x2APIC-mode vCPU runs with "virtualize x2APIC mode"
// (SDM 30.5; kernel/vm/apicv.ts): its WRMSRs of TPR (808H), EOI (80BH) and SELF IPI (83FH)
// do not exit; with the software APIC every one does. The guest makes at least 8 such writes
// (x2apic.c: TPR 70H, 0 and the #GP cases, the EOIs of its self-IPIs and timer interrupts).
test('apicv=on: x2APIC TPR, EOI and SELF IPI writes are virtualized (fewer WRMSR exits than apicv=off)', () => {
  const on = wrmsrExits.get('test-x2apic-hv-vcpus1');
  const off = wrmsrExits.get('test-x2apic-hv-vcpus1-apicv-off');
  assert.ok(on !== undefined && off !== undefined, 'both runs counted');
  assert.ok(on! + 8 <= off!, `WRMSR exits: apicv=on ${on}, apicv=off ${off}`);
});

// snapshot=2: the vCPU is saved, destroyed and restored after every second
// exit (docs/snapshot.md), so nearly every x2APIC access runs on a vCPU
// restored from a blob: x2APIC mode (IA32_APIC_BASE EXTD) and the 32-bit
// ICR destination must come through, or the next MSR access is #GP.
test('Bochs: x2APIC mode under the hypervisor with snapshot=2 (vcpus=1)', async () => {
  const name = 'test-x2apic-hv-snapshot';
  const runDir = freshRunDir(name);
  const image = hvIso(runDir, 'caps=off guest=x2apic.elf snapshot=2', [[GUEST, 'x2apic.elf']]);
  const r = await runBochs({ name, boot: 'bios-cdrom', image, runDir, cpus: 1, timeoutMs: 240_000 });
  expectRun(r, {
    status: 0, exitCode: 0,
    lines: [/^hv: guest 1 \(x2apic\.elf\) ended: exit via hypercall, status 0, \d+ exits, .*: as expected$/],
  });
  const lines = tapLines(r.serial, 'L1| ');
  assert.equal(lines.filter((l) => l.startsWith('not ok')), []);
  assert.is(lines.length, CHECKS - AP_CHECKS + 1, `${lines.length} checks`);
  const s = snapshotLines(r.serial).get(1);
  assert.ok(s && s.taken > 50, `snapshots taken: ${JSON.stringify(s)}`);
});

test.run();

#!/usr/bin/env bash
# mkinitramfs.sh [OUT]: the Linux guest's initramfs (issue 13), default build/linux/initrd.cpio.
#
# An uncompressed cpio "newc" archive (Linux's Documentation/driver-api/early-userspace/
# buffer-format.rst) written by the small Node script below, so no cpio package is
# needed: busybox-static as /bin/busybox with /bin/sh, the device nodes Linux's init
# needs before any devtmpfs is mounted (/dev/console: the kernel opens it for init's
# stdin/stdout/stderr; /dev/kmsg so init can print through printk, which reaches the
# polled serial console even without a UART interrupt) and /init (tools/linux-init.sh).
# KVM's modules from the same package (irqbypass, kvm, kvm-intel: plain .ko in 6.1) go
# to /lib/modules for /init to insmod; /bin/vmm is tests/linux/vmm.c (the L2 runner). Needs build/linux from tools/linux-fetch.sh. Every mtime is 0: same inputs, same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/linux/initrd.cpio}
init=${INIT:-tools/linux-init.sh} # /init (tools/stress/linux-smp.ts gives its own)
[ -x build/linux/busybox ] || { echo "mkinitramfs: build/linux/busybox missing (make linux-fetch)" >&2; exit 1; }
[ -x build/linux/vmm ] || { echo "mkinitramfs: build/linux/vmm missing (make build/linux/vmm)" >&2; exit 1; }
node - "$out" build/linux/busybox "$init" build/linux/modules build/linux/vmm <<'JS'
const fs = require('node:fs');
const [out, busybox, init, modules, vmm] = process.argv.slice(2);
const parts = [];
let ino = 1;
// One newc entry: "070701", 13 eight-digit hex fields, the name (NUL-ended),
// header+name padded to 4 bytes, the data padded to 4 bytes.
function entry(name, mode, data = Buffer.alloc(0), rdev = [0, 0], nlink = 1) {
  const hex = (n) => n.toString(16).padStart(8, '0');
  const f = [ino++, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0], rdev[1], name.length + 1, 0];
  const head = Buffer.from('070701' + f.map(hex).join('') + name + '\0', 'latin1');
  parts.push(head, Buffer.alloc((4 - (head.length % 4)) % 4), data, Buffer.alloc((4 - (data.length % 4)) % 4));
}
const DIR = 0o040755, REG = 0o100755, LNK = 0o120777, CHR = 0o020600;
for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'etc']) entry(d, DIR, undefined, undefined, 2);
entry('bin/busybox', REG, fs.readFileSync(busybox));
entry('bin/vmm', REG, fs.readFileSync(vmm));
for (const l of ['bin/sh', 'sbin/reboot', 'sbin/poweroff']) entry(l, LNK, Buffer.from('/bin/busybox'));
entry('dev/console', CHR, undefined, [5, 1]);
entry('dev/kmsg', CHR, undefined, [1, 11]);
entry('dev/null', 0o020666, undefined, [1, 3]);
entry('dev/ttyS0', CHR, undefined, [4, 64]);
entry('init', REG, fs.readFileSync(init));
entry('lib', DIR, undefined, undefined, 2);
entry('lib/modules', DIR, undefined, undefined, 2);
for (const m of ['virt/lib/irqbypass.ko', 'arch/x86/kvm/kvm.ko', 'arch/x86/kvm/kvm-intel.ko']) {
  entry('lib/modules/' + m.split('/').pop(), 0o100644, fs.readFileSync(`${modules}/kernel/${m}`));
}
entry('TRAILER!!!', 0);
fs.writeFileSync(out, Buffer.concat(parts));
JS
echo "mkinitramfs: $out ($(stat -c %s "$out") bytes)"

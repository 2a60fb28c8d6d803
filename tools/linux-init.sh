#!/bin/sh
# /init of the Linux guest's initramfs (tools/mkinitramfs.sh). Says it got here
# through /dev/kmsg (printk reaches the polled serial console without a UART
# interrupt) and through /dev/console (the 8250 driver's interrupt-driven
# path: COM1's IRQ 4 through the I/O APIC), reports what it can see of the
# platform, then ends the guest: `reboot -f` makes Linux restart the machine
# (exit code 165 here: the ACPI reset register or the reset-vector stub, both
# OUT 0xF4 with 0x52, docs/guest-interface.md).
export PATH=/bin:/sbin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
echo "INIT: reached" > /dev/kmsg
echo "INIT: reached (console)"
echo "INIT: console write status $?" > /dev/kmsg
kmsg() { while read -r l; do echo "INIT: $1: $l" > /dev/kmsg; done; }
kmsg interrupts < /proc/interrupts
kmsg serial < /proc/tty/driver/serial
echo "INIT: uptime $(busybox cat /proc/uptime)" > /dev/kmsg
# KVM (issue 13's next step; VMX is offered with the hypervisor's nested=on).
for m in irqbypass kvm kvm-intel; do
    busybox insmod /lib/modules/$m.ko 2>/dev/kmsg
    echo "INIT: insmod $m: status $?" > /dev/kmsg
done
[ -e /sys/module/kvm_intel ] && echo "INIT: kvm_intel loaded" > /dev/kmsg
echo "INIT: uptime $(busybox cat /proc/uptime)" > /dev/kmsg
busybox reboot -f

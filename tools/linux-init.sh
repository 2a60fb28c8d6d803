#!/bin/sh
# /init of the Linux guest's initramfs (tools/mkinitramfs.sh). Everything it
# says goes to /dev/console, its stdout: the 8250 driver's interrupt-driven
# path (COM1's IRQ 4 through the I/O APIC), printed whatever the kernel's
# loglevel (`quiet`). It reports what it sees of the platform, loads KVM from
# the kernel's own package, runs the VMM (tests/linux/vmm.c) that starts an L2
# guest and prints RESULT: PASS or FAIL, then ends the guest: `reboot -f`
# makes Linux restart the machine (exit code 165 here: the ACPI reset
# register or the reset-vector stub, both OUT 0xF4 with 0x52,
# docs/guest-interface.md). tests/qemu/linux.test.ts reads these lines.
export PATH=/bin:/sbin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
echo "INIT: reached, uptime $(busybox cat /proc/uptime), TSC $(/bin/vmm tsc)"
say() { while read -r l; do echo "INIT: $1: $l"; done; }
say cpus < /sys/devices/system/cpu/online
busybox grep -e '^IO-APIC\|ttyS0\|LOC' /proc/interrupts | say interrupts
busybox grep -e '^0:' /proc/tty/driver/serial | say serial
# KVM (VMX is offered with the hypervisor's nested=on).
for m in irqbypass kvm kvm-intel; do
    busybox insmod /lib/modules/$m.ko
    echo "INIT: insmod $m: status $?"
done
[ -e /sys/module/kvm_intel ] && echo "INIT: kvm_intel loaded"
# What the kernel said about the platform and KVM (with `quiet` only
# warnings reach the console): the Hyper-V and eVMCS lines with hyperv=on,
# the CPUs brought up, any refusal.
busybox dmesg | busybox grep -i -e kvm -e hyper-v -e vmx -e 'smp: ' -e 'x86/fpu' | say dmesg
# /dev/kvm (misc device 10:232) appears in devtmpfs.
busybox mount -t devtmpfs devtmpfs /dev
echo "INIT: uptime $(busybox cat /proc/uptime), starting L2"
busybox taskset 1 /bin/vmm
echo "INIT: vmm status $?, uptime $(busybox cat /proc/uptime)"
# With a second CPU the L2 runs again there (KVM's VMXON on every CPU,
# nested VMX on an AP).
if [ "$(busybox nproc)" -gt 1 ]; then
    busybox taskset 2 /bin/vmm
    echo "INIT: vmm on CPU 1 status $?, uptime $(busybox cat /proc/uptime)"
fi
busybox reboot -f

#!/bin/sh
# /init of the Linux guest's initramfs (tools/mkinitramfs.sh). Says it got here
# through /dev/kmsg (printk reaches the polled serial console without a UART
# interrupt) and through /dev/console, then ends the guest: `reboot -f` makes
# Linux reset the machine through the FADT's reset register (port 0xF4, value
# 0x52 here: the hypervisor's isa-debug-exit, guest status 165).
export PATH=/bin:/sbin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
echo "INIT: reached" > /dev/kmsg
echo "INIT: reached (console)"
echo "INIT: uptime $(busybox cat /proc/uptime)" > /dev/kmsg
busybox reboot -f

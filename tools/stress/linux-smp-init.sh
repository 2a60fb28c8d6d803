#!/bin/sh
export PATH=/bin:/sbin
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
echo "INIT: reached, uptime $(busybox cat /proc/uptime)"
say() { while read -r l; do echo "INIT: $1: $l"; done; }
for m in irqbypass kvm kvm-intel; do busybox insmod /lib/modules/$m.ko; echo "INIT: insmod $m: status $?"; done
busybox mount -t devtmpfs devtmpfs /dev
i=0
while [ $i -lt 200 ]; do
  busybox taskset $((i % 2 + 1)) busybox true
  x=$(busybox cat /proc/uptime)
  echo "STRESS $i $x"
  busybox dmesg | busybox grep -i -e kvm -e hyper-v -e vmx -e 'smp: ' -e 'x86/fpu' | say dmesg
  i=$((i + 1))
done
busybox grep -e 'LOC\|RES\|CAL\|TLB\|ttyS0' /proc/interrupts
echo "STRESS done"
busybox reboot -f

#!/usr/bin/env bash
# mkesp.sh DIR OUT.img
#
# Builds a FAT disk image holding DIR's tree (EFI/BOOT/BOOTX64.EFI,
# EFI/BOOT/hv.cfg and any other files) with mtools: no loop device, no root.
#
# Layout, measured on Bochs 2.7 + OVMF (the 2 MiB OVMF.fd at 0xffe00000,
# i440fx): OVMF boots a *partitionless* FAT image attached as an ATA hard
# disk ("BdsDxe: starting Boot0001 "UEFI Generic 1234 BXHD00011" from
# PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)"), taking
# EFI/BOOT/BOOTX64.EFI as the removable-media default, so no MBR/GPT
# partition table and no El Torito ISO is needed. The whole disk is the
# file system ("superfloppy"); the same image also works as
# `qemu -drive format=raw,file=OUT.img`.
#
# Geometry: Bochs wants cylinders/heads/sectors for an ATA disk. The image
# size is a whole number of 16-head, 63-sector cylinders (516096 bytes), and
# the FAT boot sector carries the same geometry, so the runner attaches it as
#   ata0-master: type=disk, mode=flat, path=OUT.img, cylinders=SIZE/516096, heads=16, spt=63
# (tools/emu/bochs.ts derives the cylinder count from the file size).
#
# Deterministic: fixed volume serial number, file times from
# SOURCE_DATE_EPOCH (fixed below unless the caller sets it), files and
# directories created in sorted order.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 DIR OUT.img" >&2; exit 2; }
dir=$1
out=$2
[ -d "$dir" ] || { echo "mkesp: no such directory: $dir" >&2; exit 1; }
[ -f "$dir/EFI/BOOT/BOOTX64.EFI" ] || echo "mkesp: warning: $dir/EFI/BOOT/BOOTX64.EFI missing: OVMF will not boot this image" >&2
for tool in mformat mcopy mmd; do
    command -v $tool >/dev/null || { echo "mkesp: $tool missing (apt-get install mtools)" >&2; exit 1; }
done

export LC_ALL=C
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-946681200}
export MTOOLS_SKIP_CHECK=1

heads=16
spt=63
cyl_bytes=$((heads * spt * 512))

# Size: the files plus a quarter plus 4 MiB for FAT, directories and cluster
# slack; at least 16 MiB; whole cylinders.
content=$(du -s -B1 --apparent-size "$dir" | cut -f1)
want=$((content + content / 4 + 4 * 1024 * 1024))
[ $want -ge $((16 * 1024 * 1024)) ] || want=$((16 * 1024 * 1024))
cyls=$(((want + cyl_bytes - 1) / cyl_bytes))

tmp="$out.tmp"
mkdir -p "$(dirname "$out")"
rm -f "$tmp"
truncate -s $((cyls * cyl_bytes)) "$tmp"
mformat -i "$tmp" -t $cyls -h $heads -s $spt -N 48560001 -v HVESP ::

# Directories first (parents before children), then files, each in sorted
# order so the directory entries come out the same on every host.
(cd "$dir" && find . -mindepth 1 -type d | sort) | while IFS= read -r d; do
    mmd -i "$tmp" "::/${d#./}"
done
(cd "$dir" && find . -type f | sort) | while IFS= read -r f; do
    mcopy -i "$tmp" "$dir/${f#./}" "::/${f#./}"
done
mv -f "$tmp" "$out"
echo "mkesp: $out ($((cyls * cyl_bytes)) bytes, CHS $cyls/$heads/$spt)"

// Builds a struct hv_bootinfo (boot/include/bootinfo.h) in the model's
// physical memory, the way a boot front-end hands it to hv_start():
//
//   [imageBase, +imageSize)  the hypervisor image: code, stacks, page tables
//                            (CR3 points here), the wasm linear memory. Marked
//                            HV_MEM_HYPERVISOR and refused to mem.* entirely.
//   [dataBase, +n pages)     the boot data: struct hv_bootinfo (80 bytes), the
//                            memory map (24-byte entries), the file table
//                            (32-byte entries), the command line and the file
//                            names (NUL-terminated). Marked HV_MEM_BOOTDATA so
//                            the page allocator leaves it alone; readable
//                            through mem.* (the kernel parses it); the model also
//                            refuses writes to it (the kernel has no reason to).
//   files                    each page-aligned, marked HV_MEM_BOOTFILE.
//
// The memory map handed over is the firmware's (spec.mmap, default: a PC with
// the low 640 KiB, the legacy hole and RAM from 1 MiB to the top) followed by
// the entries above, which overlap it and take precedence (as in
// boot/uefi/memmap.c). boot/common/protect.c refuses the image and every
// HV_MEM_HYPERVISOR range; protectBootData: 'none' makes the model refuse
// reads of the boot data too (a front-end that marked it HYPERVISOR).
import type { Machine } from './machine.ts';

export const HV_BOOTINFO_MAGIC = 0x49425648; // "HVBI"
export const HV_BOOTINFO_VERSION = 1;
export const HV_BOOT_SOURCE_UEFI = 1;
export const HV_BOOT_SOURCE_MULTIBOOT = 2;
export const HV_MEM = { AVAILABLE: 1, RESERVED: 2, ACPI: 3, NVS: 4, BAD: 5, HYPERVISOR: 0x100, BOOTFILE: 0x101, BOOTDATA: 0x102 } as const;

export interface MmapEntry { base: number | bigint; length: number | bigint; type: number }
export interface BootFile { name: string; data: Uint8Array; args?: string }

export interface BootSpec {
  mmap?: MmapEntry[];
  cmdline?: string;
  files?: BootFile[];
  tsc?: bigint; // tsc_at_entry, default: the machine's TSC now
  source?: 'uefi' | 'multiboot'; // default multiboot
  cpuCount?: number; // default 1
  imageBase?: number; // default 1 MiB
  imageSize?: number; // default 8 MiB
  dataBase?: number; // default: right after the image
  protectBootData?: 'read' | 'none'; // default 'read'
}

export interface BootLayout {
  bootinfo: bigint;
  image: { base: number; end: number };
  data: { base: number; end: number };
  files: { base: number; length: number }[];
  mmap: { base: bigint; length: bigint; type: number }[];
}

const PAGE = 4096;
const up = (n: number, a: number): number => Math.ceil(n / a) * a;

export function defaultMmap(memSize: number): MmapEntry[] {
  return [
    { base: 0, length: 0x9fc00, type: HV_MEM.AVAILABLE },
    { base: 0x9fc00, length: 0x100000 - 0x9fc00, type: HV_MEM.RESERVED },
    { base: 0x100000, length: memSize - 0x100000, type: HV_MEM.AVAILABLE },
  ];
}

function ascii(s: string, what: string): Uint8Array {
  const b = new Uint8Array(s.length + 1);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c > 0x7e) throw new Error(`${what}: only printable ASCII can be handed over (${JSON.stringify(s)})`);
    b[i] = c;
  }
  return b; // NUL-terminated
}

export function buildBootInfo(m: Machine, spec: BootSpec = {}): BootLayout {
  const fw = (spec.mmap ?? defaultMmap(m.phys.size)).map((e) => ({ base: BigInt(e.base), length: BigInt(e.length), type: e.type }));
  const files = spec.files ?? [];
  const imageBase = spec.imageBase ?? 0x100000;
  const imageSize = spec.imageSize ?? 0x800000;
  const dataBase = spec.dataBase ?? up(imageBase + imageSize, PAGE);

  // Sizes: struct, map, file table, then strings.
  const mmapCount = fw.length + 2 + files.length;
  const mmapOff = 80;
  const filesOff = mmapOff + mmapCount * 24;
  const stringsOff = filesOff + files.length * 32;
  const cmd = ascii(spec.cmdline ?? '', 'cmdline');
  // struct hv_file.name: the file name, then its arguments after a space
  // (a multiboot module string), NUL-terminated; name_len counts it all.
  const names = files.map((f) => {
    const text = f.args !== undefined ? `${f.name} ${f.args}` : f.name;
    return { bytes: ascii(text, 'file name'), nameLen: text.length };
  });
  const dataSize = up(stringsOff + cmd.length + names.reduce((s, n) => s + n.bytes.length, 0), PAGE);
  let next = dataBase + dataSize;
  const fileRanges = files.map((f) => {
    const base = next;
    next = up(base + f.data.length, PAGE);
    if (next === base) next += PAGE; // an empty file still gets its own page
    return { base, length: f.data.length };
  });

  // Everything placed must be ordinary RAM of the firmware map.
  const inRam = (b: number, e: number): boolean =>
    e <= m.phys.size && fw.some((r) => r.type === HV_MEM.AVAILABLE && BigInt(b) >= r.base && BigInt(e) <= r.base + r.length);
  const place = (what: string, b: number, e: number): void => {
    if (!inRam(b, e)) throw new Error(`bootinfo: ${what} [0x${b.toString(16)}, 0x${e.toString(16)}) is not inside available memory`);
  };
  place('hypervisor image', imageBase, imageBase + imageSize);
  place('boot data', dataBase, dataBase + dataSize);
  fileRanges.forEach((r, i) => place(`file ${files[i].name}`, r.base, r.base + Math.max(r.length, 1)));

  const mmap = [
    ...fw,
    { base: BigInt(imageBase), length: BigInt(imageSize), type: HV_MEM.HYPERVISOR },
    { base: BigInt(dataBase), length: BigInt(dataSize), type: HV_MEM.BOOTDATA },
    ...fileRanges.map((r) => ({ base: BigInt(r.base), length: BigInt(r.length), type: HV_MEM.BOOTFILE })),
  ];

  // Write it all (raw physical writes: the front-end, not the kernel).
  const p = m.phys;
  const bi = dataBase;
  p.fill(dataBase, dataSize, 0);
  let s = bi + stringsOff;
  const cmdAddr = s;
  p.write(s, cmd);
  s += cmd.length;
  mmap.forEach((e, i) => {
    const a = bi + mmapOff + i * 24;
    p.write64(a, e.base);
    p.write64(a + 8, e.length);
    p.write32(a + 16, e.type);
    p.write32(a + 20, 0);
  });
  names.forEach((n, i) => {
    const a = bi + filesOff + i * 32;
    p.write64(a, BigInt(fileRanges[i].base));
    p.write64(a + 8, BigInt(fileRanges[i].length));
    p.write64(a + 16, BigInt(s));
    p.write32(a + 24, n.nameLen);
    p.write32(a + 28, 0); // reserved
    p.write(s, n.bytes);
    s += n.bytes.length;
    p.write(fileRanges[i].base, files[i].data);
  });
  p.write32(bi + 0, HV_BOOTINFO_MAGIC);
  p.write32(bi + 4, HV_BOOTINFO_VERSION);
  p.write32(bi + 8, spec.source === 'uefi' ? HV_BOOT_SOURCE_UEFI : HV_BOOT_SOURCE_MULTIBOOT);
  p.write32(bi + 12, mmap.length);
  p.write64(bi + 16, BigInt(bi + mmapOff));
  p.write64(bi + 24, BigInt(cmdAddr));
  p.write32(bi + 32, cmd.length - 1); // without the NUL
  p.write32(bi + 36, files.length);
  p.write64(bi + 40, files.length ? BigInt(bi + filesOff) : 0n);
  p.write64(bi + 48, spec.tsc ?? m.tsc);
  p.write64(bi + 56, BigInt(imageBase + 0x400000)); // linear memory: the image's upper part
  p.write64(bi + 64, BigInt(Math.max(imageSize - 0x400000, 0)));
  p.write32(bi + 72, spec.cpuCount ?? 1);
  p.write32(bi + 76, 0);

  p.protect(imageBase, imageSize, 'hypervisor image, stacks, page tables, linear memory', 'none');
  p.protect(dataBase, dataSize, 'boot data', spec.protectBootData ?? 'read');
  m.bootInfo = BigInt(bi);
  return {
    bootinfo: BigInt(bi),
    image: { base: imageBase, end: imageBase + imageSize },
    data: { base: dataBase, end: dataBase + dataSize },
    files: fileRanges,
    mmap,
  };
}

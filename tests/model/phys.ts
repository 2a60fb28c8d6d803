// Physical memory of the model machine: sparse 4 KiB pages (untouched pages
// read as zero, so a machine of any size costs only what is written), plus the
// ranges the mem.* imports refuse.
//
// The C implementation (boot/imports/mem.c + boot/common/protect.c) stops the
// machine when an access lies beyond mapped physical memory or overlaps a
// protected range. The model records the same cases as faults (see
// machine.ts). Protected ranges come in two strengths here:
//   - 'none':  no access at all (the hypervisor's image, stacks, page tables,
//              linear memory: what protect.c refuses);
//   - 'read':  readable, not writable (the boot data the kernel must read:
//              struct hv_bootinfo, its memory map, file table, strings).
// bootinfo.ts decides which ranges get which strength.

export const PAGE = 4096;

export interface ProtectedRange {
  base: number;
  end: number; // exclusive
  what: string;
  allow: 'none' | 'read';
}

// Something that wants to know when physical memory is written through the
// kernel's imports (the VMX model: VMXON region and VMCS regions).
export type WriteWatcher = (base: number, len: number) => string | null;

export class PhysMem {
  readonly size: number;
  private pages = new Map<number, Uint8Array>();
  readonly protectedRanges: ProtectedRange[] = [];
  readonly watchers: WriteWatcher[] = [];

  constructor(size: number) {
    if (size <= 0 || size % PAGE !== 0 || size > 2 ** 52) throw new Error(`bad memory size ${size}`);
    this.size = size;
  }

  protect(base: number, len: number, what: string, allow: 'none' | 'read' = 'none'): void {
    this.protectedRanges.push({ base, end: base + len, what, allow });
  }

  // The reason an access through the mem.* imports is refused, or null.
  // pa and len arrive as u64 (bigint); the sum is checked without wrapping.
  check(op: string, pa: bigint, len: bigint, write: boolean, watch = true): string | null {
    const top = BigInt(this.size);
    if (len > top || pa > top - len) {
      return `mem.${op} of ${len} bytes at 0x${pa.toString(16)} is beyond physical memory ` +
        `(top 0x${this.size.toString(16)})`;
    }
    if (len === 0n) return null;
    const b = Number(pa);
    const e = b + Number(len);
    for (const r of this.protectedRanges) {
      if (b < r.end && e > r.base && (write || r.allow === 'none')) {
        return `mem.${op} of ${len} bytes at 0x${pa.toString(16)} touches the hypervisor's own memory ` +
          `(${r.what} [0x${r.base.toString(16)}, 0x${r.end.toString(16)})` +
          `${r.allow === 'read' ? ', read-only' : ''})`;
      }
    }
    if (write && watch) {
      for (const w of this.watchers) {
        const why = w(b, e - b);
        if (why) return `mem.${op} of ${len} bytes at 0x${pa.toString(16)}: ${why}`;
      }
    }
    return null;
  }

  // ---- raw access: no checks (the model itself, boot-info builder, tests) --

  private page(n: number, create: boolean): Uint8Array | undefined {
    let p = this.pages.get(n);
    if (!p && create) {
      p = new Uint8Array(PAGE);
      this.pages.set(n, p);
    }
    return p;
  }

  private bounds(pa: number, len: number): void {
    if (!Number.isInteger(pa) || !Number.isInteger(len) || pa < 0 || len < 0 || pa + len > this.size) {
      throw new RangeError(`physical access [0x${pa.toString(16)}, +${len}) outside memory of 0x${this.size.toString(16)}`);
    }
  }

  read(pa: number, len: number): Uint8Array {
    this.bounds(pa, len);
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const a = pa + done;
      const off = a % PAGE;
      const n = Math.min(PAGE - off, len - done);
      const p = this.page(Math.floor(a / PAGE), false);
      if (p) out.set(p.subarray(off, off + n), done);
      done += n;
    }
    return out;
  }

  write(pa: number, bytes: Uint8Array): void {
    this.bounds(pa, bytes.length);
    let done = 0;
    while (done < bytes.length) {
      const a = pa + done;
      const off = a % PAGE;
      const n = Math.min(PAGE - off, bytes.length - done);
      this.page(Math.floor(a / PAGE), true)!.set(bytes.subarray(done, done + n), off);
      done += n;
    }
  }

  fill(pa: number, len: number, value = 0): void {
    this.bounds(pa, len);
    let done = 0;
    while (done < len) {
      const a = pa + done;
      const off = a % PAGE;
      const n = Math.min(PAGE - off, len - done);
      const idx = Math.floor(a / PAGE);
      if (value === 0 && n === PAGE) this.pages.delete(idx);
      else this.page(idx, true)!.fill(value, off, off + n);
      done += n;
    }
  }

  // Little-endian integers of 1, 2, 4 or 8 bytes, as bigint.
  readInt(pa: number, size: number): bigint {
    const b = this.read(pa, size);
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    return v;
  }

  writeInt(pa: number, size: number, value: bigint): void {
    const b = new Uint8Array(size);
    let v = BigInt.asUintN(size * 8, value);
    for (let i = 0; i < size; i++) {
      b[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    this.write(pa, b);
  }

  read32(pa: number): number {
    return Number(this.readInt(pa, 4));
  }
  read64(pa: number): bigint {
    return this.readInt(pa, 8);
  }
  write32(pa: number, v: number): void {
    this.writeInt(pa, 4, BigInt(v >>> 0));
  }
  write64(pa: number, v: bigint): void {
    this.writeInt(pa, 8, v);
  }

  // Pages that hold data (for tests that want to see what was touched).
  touchedPages(): number[] {
    return [...this.pages.keys()].sort((a, b) => a - b).map((n) => n * PAGE);
  }
}

/* Finding the processors: ACPI (spec 6.5) RSDP -> XSDT or RSDT -> MADT.
 *
 * The RSDP (5.2.5) comes from the boot information when the front-end knows
 * it (UEFI: the ACPI entry of the EFI configuration table), otherwise from
 * the legacy BIOS search (5.2.5.1): the first KiB of the EBDA, then
 * 0xE0000-0xFFFFF, on 16-byte boundaries. Every table is checked (signature,
 * length within the identity map, checksum) before use.
 *
 * MADT (5.2.12): after the 44-byte header, variable-length entries
 * [type, length, ...]. Processors are type 0 (Processor Local APIC: UID u8,
 * APIC ID u8, flags u32) and type 9 (Processor Local x2APIC: x2APIC ID u32,
 * flags u32, UID u32), enabled when flags bit 0 is set (bit 1 "online
 * capable" means hot-pluggable later: not started). Type 1 is an I/O APIC
 * (ID u8, reserved u8, address u32, GSI base u32). */
#include "smp.h"

static u32 rd32(const u8 *p) { u32 v; __builtin_memcpy(&v, p, 4); return v; }
static u64 rd64(const u8 *p) { u64 v; __builtin_memcpy(&v, p, 8); return v; }

static bool mapped(u64 pa, u64 len) {
    return pa != 0 && pa + len > pa && pa + len <= hv_paging_top();
}

static bool checksum_ok(const u8 *p, u32 len) {
    u8 sum = 0;
    for (u32 i = 0; i < len; i++) sum += p[i];
    return sum == 0;
}

/* An RSDP at pa: signature, the ACPI 1.0 checksum over 20 bytes and, from
 * revision 2 on, the extended checksum over its Length bytes. */
static bool rsdp_ok(u64 pa) {
    if (!mapped(pa, 36)) return false;
    const u8 *p = (const u8 *)pa;
    if (memcmp(p, "RSD PTR ", 8) != 0 || !checksum_ok(p, 20)) return false;
    if (p[15] >= 2) {
        u32 len = rd32(p + 20);
        if (len < 36 || len > 4096 || !mapped(pa, len) || !checksum_ok(p, len)) return false;
    }
    return true;
}

static u64 rsdp_scan(u64 base, u64 len) {
    const u64 sig = 0x2052545020445352ull; /* "RSD PTR " read as a little-endian u64 */
    for (u64 off = 0; off + 20 <= len; off += 16)
        if (rd64((const u8 *)(base + off)) == sig && rsdp_ok(base + off)) return base + off;
    return 0;
}

static u64 find_rsdp(const struct hv_bootinfo *bi) {
    if (bi->rsdp && rsdp_ok(bi->rsdp)) return bi->rsdp;
    /* BDA word 0x40E: the EBDA's real-mode segment. */
    u16 ebda_seg;
    __builtin_memcpy(&ebda_seg, (const void *)(u64)0x40e, 2);
    u64 ebda = (u64)ebda_seg << 4;
    if (ebda >= 0x80000 && ebda < 0xa0000) {
        u64 r = rsdp_scan(ebda, 1024);
        if (r) return r;
    }
    return rsdp_scan(0xe0000, 0x20000);
}

/* A system description table header at pa with this signature, mapped and
 * with a good checksum; returns its length, 0 if not. */
static u32 table_ok(u64 pa, const char *sig, u32 min_len) {
    if (!mapped(pa, 36)) return 0;
    const u8 *h = (const u8 *)pa;
    u32 len = rd32(h + 4);
    if (memcmp(h, sig, 4) != 0 || len < min_len || len > (1u << 20) || !mapped(pa, len)) return 0;
    return checksum_ok(h, len) ? len : 0;
}

/* The MADT through the XSDT (64-bit entries) or, failing that, the RSDT. */
static const u8 *find_madt(u64 rsdp, u32 *madt_len) {
    const u8 *r = (const u8 *)rsdp;
    for (int pass = 0; pass < 2; pass++) {
        bool x = pass == 0;
        if (x && r[15] < 2) continue;
        u64 sdt = x ? rd64(r + 24) : rd32(r + 16);
        u32 len = table_ok(sdt, x ? "XSDT" : "RSDT", 36);
        if (!len) continue;
        u32 esize = x ? 8 : 4;
        for (u32 off = 36; off + esize <= len; off += esize) {
            const u8 *e = (const u8 *)sdt + off;
            u64 t = x ? rd64(e) : rd32(e);
            u32 tl = table_ok(t, "APIC", 44);
            if (tl) {
                *madt_len = tl;
                return (const u8 *)t;
            }
        }
    }
    return 0;
}

static void add_cpu(struct smp_madt *out, u32 apic_id) {
    for (u32 i = 0; i < out->cpus; i++)
        if (out->apic_id[i] == apic_id) return; /* a type 9 twin of a type 0 entry */
    if (out->cpus == SMP_MADT_MAX) {
        out->more++;
        return;
    }
    out->apic_id[out->cpus++] = apic_id;
}

bool smp_madt_read(const struct hv_bootinfo *bi, struct smp_madt *out) {
    memset(out, 0, sizeof *out);
    out->rsdp = find_rsdp(bi);
    if (!out->rsdp) return false;
    u32 len;
    const u8 *m = find_madt(out->rsdp, &len);
    if (!m) return false;
    for (u32 off = 44; off + 2 <= len;) {
        const u8 *e = m + off;
        u8 type = e[0], elen = e[1];
        if (elen < 2 || off + elen > len) break;
        if (type == 0 && elen >= 8) {
            if ((rd32(e + 4) & 1) && e[3] != 0xff) add_cpu(out, e[3]);
        } else if (type == 9 && elen >= 16) {
            if ((rd32(e + 8) & 1) && rd32(e + 4) != 0xffffffffu) add_cpu(out, rd32(e + 4));
        } else if (type == 1 && elen >= 12) {
            if (out->ioapics < sizeof out->ioapic / sizeof out->ioapic[0])
                out->ioapic[out->ioapics++] = rd32(e + 4);
        }
        off += elen;
    }
    return true;
}

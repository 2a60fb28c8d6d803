// vmm: the small VMM that the Linux guest's /init runs (issue 13). It uses
// Linux KVM's ioctl interface (Documentation/virt/kvm/api.rst) to run the L2
// guest of tests/linux/l2.asm on one vCPU and checks every trace it leaves.
// Run under this hypervisor, Linux is L1 and KVM's VMLAUNCH/VMRESUME are
// nested entries: every exit of L2 goes L2 -> L0 -> L1 (KVM) and, for the
// exits below, on to this process and back.
//
// `vmm tsc` prints the TSC and ends (for /init's timeline).
//
// Prints one line per check and ends with "RESULT: PASS" or
// "RESULT: FAIL (<first failure>)"; exit status 0 or 1. With the figures it
// prints the TSC (RDTSC: Bochs's instruction count under this hypervisor) at
// start, at L2's first exit and at the end, and the mean TSC ticks of one
// L2 port-write round trip through user space.
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_SIZE   0x80000u   // L2's RAM: 0-512 KiB, one memory slot
#define CODE_AT    0x1000u
#define SUM_AT     0x2000u
#define FILL_AT    0x3000u
#define ALIAS_AT   0x3800u
#define MMIO_AT    0xe0000u   // outside the slot: KVM_EXIT_MMIO
#define LOOPS      1000u

extern const uint8_t l2_start[], l2_end[];
__asm__(".section .rodata\n.balign 16\nl2_start:\n.incbin \"" L2_BIN "\"\nl2_end:\n.previous");

static int failures;
static char first_failure[160];

static void check(int ok, const char *fmt, ...) {
  char line[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  printf("VMM: %s %s\n", ok ? "ok" : "FAIL", line);
  if (!ok && failures++ == 0) snprintf(first_failure, sizeof first_failure, "%s", line);
}

static uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}

static int finish(void) {
  if (failures == 0) printf("RESULT: PASS\n");
  else printf("RESULT: FAIL (%d checks failed, first: %s)\n", failures, first_failure);
  fflush(stdout);
  return failures == 0 ? 0 : 1;
}

#define DIE(...) do { check(0, __VA_ARGS__); return finish(); } while (0)

// One KVM_RUN; returns the exit reason (or -1 with errno printed).
static int run(int vcpu, struct kvm_run *r) {
  if (ioctl(vcpu, KVM_RUN, 0) < 0) {
    perror("VMM: KVM_RUN");
    return -1;
  }
  return (int)r->exit_reason;
}

static const char *describe(struct kvm_run *r, char *buf, size_t n) {
  switch (r->exit_reason) {
  case KVM_EXIT_IO:
    snprintf(buf, n, "IO %s port %#x size %u", r->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
             r->io.port, r->io.size);
    break;
  case KVM_EXIT_MMIO:
    snprintf(buf, n, "MMIO %s %#llx len %u", r->mmio.is_write ? "write" : "read",
             (unsigned long long)r->mmio.phys_addr, r->mmio.len);
    break;
  case KVM_EXIT_FAIL_ENTRY:
    snprintf(buf, n, "FAIL_ENTRY reason %#llx",
             (unsigned long long)r->fail_entry.hardware_entry_failure_reason);
    break;
  case KVM_EXIT_INTERNAL_ERROR:
    snprintf(buf, n, "INTERNAL_ERROR suberror %u", r->internal.suberror);
    break;
  default:
    snprintf(buf, n, "exit reason %u", r->exit_reason);
  }
  return buf;
}

// The next exit must be a port access of `size` bytes to `port` in the
// given direction; returns a pointer to its data in the kvm_run page.
static uint8_t *expect_io(int vcpu, struct kvm_run *r, int dir, uint16_t port, uint8_t size) {
  char what[96];
  if (run(vcpu, r) != KVM_EXIT_IO || r->io.direction != dir || r->io.port != port ||
      r->io.size != size || r->io.count != 1) {
    check(0, "expected IO %s port %#x size %u, got %s", dir == KVM_EXIT_IO_OUT ? "out" : "in", port,
          size, describe(r, what, sizeof what));
    return NULL;
  }
  return (uint8_t *)r + r->io.data_offset;
}

static uint32_t out32(int vcpu, struct kvm_run *r, uint16_t port, int *ok) {
  uint32_t v = 0;
  uint8_t *d = expect_io(vcpu, r, KVM_EXIT_IO_OUT, port, 4);
  if (d) memcpy(&v, d, 4);
  else *ok = 0;
  return v;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  uint64_t t_start = rdtsc();
  // `vmm tsc`: only the TSC, for /init's timeline (under this hypervisor
  // the guest's TSC offset is 0: Bochs ticks since reset).
  if (argc > 1 && strcmp(argv[1], "tsc") == 0) {
    printf("%llu\n", (unsigned long long)t_start);
    return 0;
  }
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) DIE("open /dev/kvm: %m");
  int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
  check(api == KVM_API_VERSION, "KVM API version %d", api);
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) DIE("KVM_CREATE_VM: %m");
  // Without unrestricted guest KVM runs real mode in virtual-8086 mode and
  // needs three pages for its TSS; give them as every VMM does.
  if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) DIE("KVM_SET_TSS_ADDR: %m");

  uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) DIE("mmap guest memory: %m");
  struct kvm_userspace_memory_region slot = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0) DIE("KVM_SET_USER_MEMORY_REGION: %m");
  size_t code = (size_t)(l2_end - l2_start);
  memcpy(mem + CODE_AT, l2_start, code);
  uint32_t sum = 0;
  for (uint32_t i = 0; i < 1024; i++) {
    uint32_t v = i * 0x9e3779b9u ^ (i << 7);
    memcpy(mem + SUM_AT + 4 * i, &v, 4);
    sum += v;
  }

  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) DIE("KVM_CREATE_VCPU: %m");
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < (int)sizeof(struct kvm_run)) DIE("KVM_GET_VCPU_MMAP_SIZE %d", run_size);
  struct kvm_run *r = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (r == MAP_FAILED) DIE("mmap kvm_run: %m");

  // CPUID as L2 sees it: one leaf 0 with a vendor string of ours.
  static uint64_t cpuid_buf[(sizeof(struct kvm_cpuid2) + sizeof(struct kvm_cpuid_entry2)) / 8 + 1];
  struct kvm_cpuid2 *cpuid = (struct kvm_cpuid2 *)cpuid_buf;
  cpuid->nent = 1;
  cpuid->entries[0].function = 0;
  memcpy(&cpuid->entries[0].ebx, "L2Te", 4);
  memcpy(&cpuid->entries[0].edx, "stVe", 4);
  memcpy(&cpuid->entries[0].ecx, "ndor", 4);
  if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0) DIE("KVM_SET_CPUID2: %m");

  // Real mode at 0:1000H, every segment based at 0.
  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) DIE("KVM_GET_SREGS: %m");
  struct kvm_segment *segs[] = {&sregs.cs, &sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss};
  for (unsigned i = 0; i < 6; i++) {
    segs[i]->base = 0;
    segs[i]->selector = 0;
  }
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) DIE("KVM_SET_SREGS: %m");
  struct kvm_regs regs = {.rip = CODE_AT, .rflags = 2, .rsp = 0x8000};
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) DIE("KVM_SET_REGS: %m");
  printf("VMM: L2 ready: %zu bytes of code at %#x, TSC %llu\n", code, CODE_AT,
         (unsigned long long)t_start);

  int ok = 1;
  uint8_t *d = expect_io(vcpu, r, KVM_EXIT_IO_OUT, 0x10, 1);
  uint64_t t_first = rdtsc();
  check(d && *d == 'L', "first exit: L2 wrote 'L' to port 10H (TSC %llu, %llu after start)",
        (unsigned long long)t_first, (unsigned long long)(t_first - t_start));
  if (!d) return finish();

  uint32_t got = out32(vcpu, r, 0x11, &ok);
  check(ok && got == sum, "L2's sum of 1,024 dwords: %#x (expected %#x)", got, sum);

  uint32_t vendor[3];
  vendor[0] = out32(vcpu, r, 0x12, &ok);
  vendor[1] = out32(vcpu, r, 0x12, &ok);
  vendor[2] = out32(vcpu, r, 0x12, &ok);
  check(ok && memcmp(vendor, "L2TestVendor", 12) == 0,
        "CPUID leaf 0 in L2: EBX EDX ECX %#x %#x %#x (\"L2TestVendor\": %#x %#x %#x)", vendor[0],
        vendor[1], vendor[2], cpuid->entries[0].ebx, cpuid->entries[0].edx, cpuid->entries[0].ecx);
  if (!ok) return finish();

  d = expect_io(vcpu, r, KVM_EXIT_IO_IN, 0x13, 4);
  if (!d) return finish();
  uint32_t n = 0x01234567;
  memcpy(d, &n, 4);
  got = out32(vcpu, r, 0x14, &ok);
  check(ok && got == n * 3 + 1, "IN answered: L2 computed %#x (expected %#x)", got, n * 3 + 1);
  if (!ok) return finish();

  char what[96];
  int reason = run(vcpu, r);
  uint32_t wv = 0;
  if (reason == KVM_EXIT_MMIO) memcpy(&wv, r->mmio.data, 4);
  check(reason == KVM_EXIT_MMIO && r->mmio.is_write && r->mmio.phys_addr == MMIO_AT &&
            r->mmio.len == 4 && wv == 0xcafef00d,
        "MMIO write at %#x: %s data %#x", MMIO_AT, describe(r, what, sizeof what), wv);
  reason = run(vcpu, r);
  check(reason == KVM_EXIT_MMIO && !r->mmio.is_write && r->mmio.phys_addr == MMIO_AT + 4 &&
            r->mmio.len == 4,
        "MMIO read at %#x: %s", MMIO_AT + 4, describe(r, what, sizeof what));
  if (reason != KVM_EXIT_MMIO) return finish();
  uint32_t mv = 0x600dcafe;
  memcpy(r->mmio.data, &mv, 4);
  got = out32(vcpu, r, 0x15, &ok);
  check(ok && got == mv, "MMIO read answered: L2 got %#x", got);
  if (!ok) return finish();

  uint64_t t_loop = rdtsc();
  uint32_t i;
  for (i = 0; i < LOOPS; i++) {
    got = out32(vcpu, r, 0x16, &ok);
    if (!ok || got != i) break;
  }
  uint64_t t_loop_end = rdtsc();
  check(i == LOOPS, "%u port writes in a row, in order (stopped at %u, value %u)", LOOPS, i, got);
  if (i != LOOPS) return finish();
  printf("VMM: one L2 port-write round trip through user space: %llu TSC ticks (mean of %u)\n",
         (unsigned long long)((t_loop_end - t_loop) / LOOPS), LOOPS);

  got = out32(vcpu, r, 0x17, &ok);
  check(ok && got == 0x5a5aa5a5, "paging in L2: write through the alias read back %#x", got);
  if (!ok) return finish();

  reason = run(vcpu, r);
  check(reason == KVM_EXIT_HLT, "L2 ended with HLT: %s", describe(r, what, sizeof what));
  uint32_t bad = 0;
  for (uint32_t k = 0; k < 256; k++) {
    uint32_t v;
    memcpy(&v, mem + FILL_AT + 4 * k, 4);
    if (v != 7 * k + 0x11) bad++;
  }
  check(bad == 0, "L2's pattern in memory at %#x: %u of 256 dwords wrong", FILL_AT, bad);
  uint32_t alias;
  memcpy(&alias, mem + ALIAS_AT, 4);
  check(alias == 0x5a5aa5a5, "alias write visible to the VMM at %#x: %#x", ALIAS_AT, alias);
  if (ioctl(vcpu, KVM_GET_REGS, &regs) == 0)
    check((uint32_t)regs.rip > CODE_AT && (uint32_t)regs.rip < CODE_AT + code,
          "L2's RIP after HLT inside its code: %#llx", (unsigned long long)regs.rip);
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) == 0)
    check((sregs.cr0 & 0x80000001u) == 0x80000001u && sregs.cr3 == 0x10000,
          "L2 in paged protected mode: CR0 %#llx CR3 %#llx", (unsigned long long)sregs.cr0,
          (unsigned long long)sregs.cr3);
  uint64_t t_end = rdtsc();
  printf("VMM: TSC at end %llu (%llu after start)\n", (unsigned long long)t_end,
         (unsigned long long)(t_end - t_start));
  return finish();
}

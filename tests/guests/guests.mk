# Test guests (tests/guests/README.md): multiboot kernels the hypervisor runs
# in its tests, built with the project's toolchain (clang-16, nasm, ld.lld-16).
#
#   make guests                       (from the repository root, once the top-level
#                                      Makefile has `include tests/guests/guests.mk`)
#   make -f tests/guests/guests.mk guests      (on its own)
#
# Output: build/guests/{suite,mb2,triple,unbacked,badmsr,halt,bench,ramsnap,l1,l1bench,snapfuzz,hyperv,ioapic,evmcs,smp,initsipi,x2apic}.elf
# (ELF32, loaded at 1 MiB; mb2.elf, l1.elf, l1bench.elf, snapfuzz.elf, ioapic.elf and evmcs.elf are Multiboot 2,
# the others Multiboot 1; l1.elf, the minimal L1 hypervisor, is built from the files in l1/;
# l1bench.elf, the nested-VMX benchmark L1, from l1bench.c, l1bench_evmcs.c and l1/vmx.c; snapfuzz.elf,
# the snapshot fuzzing L1, from snapfuzz.c and l1/'s setup.c, vmx.c, run.asm; evmcs.elf, the
# L1 on the Hyper-V enlightened VMCS, likewise from evmcs.c)
# and build/guests/module.txt (the data module the suite and mb2 check).
# Paths are relative to the repository root, where make runs.
# Every variable and target here starts with GUEST/guest(s) so that the
# fragment does not collide with the top-level Makefile's names.

# Keep the including Makefile's default goal (this fragment's first rule
# would otherwise become it when included before `all`).
GUEST_SAVED_GOAL := $(.DEFAULT_GOAL)

GUEST_SRC  := tests/guests
GUEST_OUT  ?= build/guests
GUEST_CC   ?= clang-16
GUEST_LD   ?= ld.lld-16
GUEST_NASM ?= nasm

GUEST_CFLAGS := --target=i386-unknown-none-elf -m32 -std=gnu11 -O2 -ffreestanding -nostdlib \
  -fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables \
  -mno-sse -mno-mmx -mno-80387 -Wall -Wextra -Wno-unused-parameter -I$(GUEST_SRC)/lib
GUEST_NASMFLAGS := -f elf32 -I$(GUEST_SRC)/data/
GUEST_LDFLAGS := -m elf_i386 -nostdlib -static -z max-page-size=0x1000 -T $(GUEST_SRC)/lib/guest.ld

GUEST_NAMES := suite mb2 triple unbacked badmsr halt spin bench ramsnap l1 l1bench snapfuzz hyperv ioapic evmcs smp initsipi x2apic
GUEST_ELFS  := $(GUEST_NAMES:%=$(GUEST_OUT)/%.elf)
GUEST_LIB_C := $(wildcard $(GUEST_SRC)/lib/*.c)
GUEST_LIB_O := $(GUEST_LIB_C:$(GUEST_SRC)/lib/%.c=$(GUEST_OUT)/obj/lib/%.o) $(GUEST_OUT)/obj/lib/start.o
GUEST_HDRS  := $(wildcard $(GUEST_SRC)/lib/*.h)
GUEST_MB1   := $(GUEST_OUT)/obj/lib/mb1hdr.o
GUEST_MB2   := $(GUEST_OUT)/obj/lib/mb2hdr.o
GUEST_MODREF := $(GUEST_OUT)/obj/lib/modref.o
# l1.elf: several sources of its own in l1/ (C and nasm), with its own header.
GUEST_L1_C  := $(wildcard $(GUEST_SRC)/l1/*.c)
GUEST_L1_O  := $(GUEST_L1_C:$(GUEST_SRC)/l1/%.c=$(GUEST_OUT)/obj/l1/%.o) $(GUEST_OUT)/obj/l1/run.o
GUEST_L1_HDRS := $(wildcard $(GUEST_SRC)/l1/*.h)

.PHONY: guests guests-clean
guests: $(GUEST_ELFS) $(GUEST_OUT)/module.txt

$(GUEST_OUT)/obj/lib/%.o: $(GUEST_SRC)/lib/%.c $(GUEST_HDRS) $(GUEST_SRC)/guests.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@
$(GUEST_OUT)/obj/lib/%.o: $(GUEST_SRC)/lib/%.asm
	@mkdir -p $(dir $@)
	$(GUEST_NASM) $(GUEST_NASMFLAGS) $< -o $@
$(GUEST_MODREF): $(GUEST_SRC)/data/module.txt
$(GUEST_OUT)/obj/l1/%.o: $(GUEST_SRC)/l1/%.c $(GUEST_HDRS) $(GUEST_L1_HDRS) $(GUEST_SRC)/guests.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@
$(GUEST_OUT)/obj/l1/%.o: $(GUEST_SRC)/l1/%.asm
	@mkdir -p $(dir $@)
	$(GUEST_NASM) $(GUEST_NASMFLAGS) $< -o $@
$(GUEST_OUT)/obj/%.o: $(GUEST_SRC)/%.c $(GUEST_HDRS) $(GUEST_SRC)/guests.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

# One link per guest: its header (Multiboot 1 or 2), its own object, the library.
$(GUEST_OUT)/mb2.elf: $(GUEST_MB2) $(GUEST_OUT)/obj/mb2.o $(GUEST_MODREF)
$(GUEST_OUT)/suite.elf: $(GUEST_MB1) $(GUEST_OUT)/obj/suite.o $(GUEST_MODREF)
# Multiboot 2, so that GRUB's multiboot2 command (tools/mkiso.sh) boots it on bare Bochs too.
$(GUEST_OUT)/l1.elf: $(GUEST_MB2) $(GUEST_L1_O)
# The benchmark L1 (make bench): its own object, its eVMCS mode's (l1bench_evmcs.c, which takes
# the eVMCS layout from the generated boot/include/vmx-consts.h: tools/vmx/table.mjs declares it
# once) and l1/'s VMX instruction wrappers.
$(GUEST_OUT)/l1bench.elf: $(GUEST_MB2) $(GUEST_OUT)/obj/l1bench.o $(GUEST_OUT)/obj/l1bench_evmcs.o $(GUEST_OUT)/obj/l1/vmx.o
$(GUEST_OUT)/obj/l1bench.o: $(GUEST_L1_HDRS)
$(GUEST_OUT)/obj/l1bench_evmcs.o: GUEST_CFLAGS += -Iboot/include
$(GUEST_OUT)/obj/l1bench_evmcs.o: boot/include/vmx-consts.h
# The snapshot fuzzing L1: l1/'s set-up, VMX wrappers and VM entry/exit path.
GUEST_SNAPFUZZ_O := $(GUEST_OUT)/obj/snapfuzz.o $(addprefix $(GUEST_OUT)/obj/l1/,setup.o vmx.o run.o)
$(GUEST_OUT)/snapfuzz.elf: $(GUEST_MB2) $(GUEST_SNAPFUZZ_O)
$(GUEST_OUT)/obj/snapfuzz.o: $(GUEST_L1_HDRS)
# The I/O APIC guest: Multiboot 2 as well, to run on bare Bochs (its reference run).
$(GUEST_OUT)/ioapic.elf: $(GUEST_MB2) $(GUEST_OUT)/obj/ioapic.o
# The two-processor guest (vcpus=2): Multiboot 2, to run on bare Bochs with two CPUs too.
$(GUEST_OUT)/smp.elf: $(GUEST_MB2) $(GUEST_OUT)/obj/smp.o
# The x2APIC guest: Multiboot 2, to run on bare Bochs with two CPUs too.
$(GUEST_OUT)/x2apic.elf: $(GUEST_MB2) $(GUEST_OUT)/obj/x2apic.o
# The L1 on the enlightened VMCS (hyperv=on): the same parts of l1/.
GUEST_EVMCS_O := $(GUEST_OUT)/obj/evmcs.o $(addprefix $(GUEST_OUT)/obj/l1/,setup.o vmx.o run.o)
$(GUEST_OUT)/evmcs.elf: $(GUEST_MB2) $(GUEST_EVMCS_O)
$(GUEST_OUT)/obj/evmcs.o: $(GUEST_L1_HDRS)
# INIT and SIPI for a processor in VMX operation (vcpus=2 nested=on; two CPUs on bare Bochs): l1/'s
# set-up, VMX wrappers and VM entry/exit path, Multiboot 2.
GUEST_INITSIPI_O := $(GUEST_OUT)/obj/initsipi.o $(addprefix $(GUEST_OUT)/obj/l1/,setup.o vmx.o run.o)
$(GUEST_OUT)/initsipi.elf: $(GUEST_MB2) $(GUEST_INITSIPI_O)
$(GUEST_OUT)/obj/initsipi.o: $(GUEST_L1_HDRS)
$(filter-out $(GUEST_OUT)/mb2.elf $(GUEST_OUT)/suite.elf $(GUEST_OUT)/l1.elf $(GUEST_OUT)/l1bench.elf $(GUEST_OUT)/snapfuzz.elf $(GUEST_OUT)/ioapic.elf $(GUEST_OUT)/evmcs.elf $(GUEST_OUT)/smp.elf $(GUEST_OUT)/initsipi.elf $(GUEST_OUT)/x2apic.elf,$(GUEST_ELFS)): $(GUEST_OUT)/%.elf: $(GUEST_MB1) $(GUEST_OUT)/obj/%.o
$(GUEST_ELFS): $(GUEST_LIB_O) $(GUEST_SRC)/lib/guest.ld
	$(GUEST_LD) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^)

$(GUEST_OUT)/module.txt: $(GUEST_SRC)/data/module.txt
	@mkdir -p $(dir $@)
	cp $< $@

guests-clean:
	rm -rf $(GUEST_OUT)

.DEFAULT_GOAL := $(GUEST_SAVED_GOAL)

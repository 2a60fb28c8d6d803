# The pipeline (see ARCHITECTURE.md):
#   kernel/**/*.ts --asc--> kernel.wasm --wasm2c--> kernel.c --clang--> objects
#   boot/**/*.{c,S,asm} --clang/nasm--> objects
#   objects --lld-link--> BOOTX64.EFI      objects --ld.lld + linker.ld--> hv.elf
# The C sources are compiled twice, once per object format (COFF for UEFI,
# ELF for multiboot); the kernel.c both link is generated from the one kernel.wasm
# the Node tests load.

B        := build
CLANG    := clang-16
LLDLINK  := lld-link-16
LDLLD    := ld.lld-16
NASM     := nasm
WASM2C   := wasm2c
ASC      := node_modules/.bin/asc
RESINC   := $(shell $(CLANG) -print-resource-dir 2>/dev/null)/include

KERNEL_TS := $(shell find kernel -name '*.ts' 2>/dev/null)
COMMON_C  := $(wildcard boot/common/*.c boot/rt/*.c boot/imports/*.c boot/smp/*.c)
COMMON_S  := $(wildcard boot/common/*.S boot/entry/*.S)
UEFI_C    := $(wildcard boot/uefi/*.c)
MB_C      := $(wildcard boot/multiboot/*.c)
MB_ASM    := $(wildcard boot/multiboot/*.asm)
HEADERS   := $(wildcard boot/include/*.h boot/rt/include/*.h boot/uefi/*.h boot/multiboot/*.h)

CFLAGS_BASE := -std=gnu11 -O2 -flto -ffreestanding -nostdinc -isystem $(RESINC) \
  -Iboot/include -Iboot/rt/include -I$(B)/gen -fno-stack-protector -mno-red-zone \
  -fno-exceptions -fno-asynchronous-unwind-tables -Wall -Wextra -Wno-unused-parameter \
  -DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0 -DWASM_RT_USE_STACK_DEPTH_COUNT=0 $(EXTRA_CFLAGS)
CFLAGS_EFI  := $(CFLAGS_BASE) --target=x86_64-unknown-windows-gnu -mno-stack-arg-probe -DHV_UEFI=1
CFLAGS_ELF  := $(CFLAGS_BASE) --target=x86_64-unknown-none-elf -fno-pic -fno-pie -DHV_MULTIBOOT=1
# wasm2c output: generated code, warnings are not ours to fix
KCFLAGS     := -Wno-unused-function -Wno-unused-variable -Wno-unused-but-set-variable -Wno-sign-compare

# Linear memory is all of HV_LINEAR_MAX (16 MiB = 256 pages) from the start
# and never grows, so that its bound is a constant: see the RANGE_CHECK edit
# below.
ASCFLAGS := --runtime stub -O3 --initialMemory 256 --maximumMemory 256

.PHONY: all wasm efi elf iso esp setup run run-qemu run-kvm test test-unit test-emu bench gen check-gen clean linux-fetch linux-initrd run-linux test-linux
# Every build target first makes sure the tools are there (tools/setup.sh:
# apt packages, npm ci), once per change of the set-up script or the lock
# file, so that a plain `make` works on a fresh clone as `make run` does.
SETUP_DONE := $(B)/.setup-done
all: $(SETUP_DONE) $(B)/kernel.wasm $(B)/BOOTX64.EFI $(B)/hv.elf $(B)/esp.img $(B)/hv.iso guests $(B)/guests/hvl1.elf

# Test guests (tests/guests/): multiboot kernels built by the same toolchain.
include tests/guests/guests.mk
guests: | $(SETUP_DONE)

wasm: $(B)/kernel.wasm
efi: $(B)/BOOTX64.EFI
elf: $(B)/hv.elf

# ---- kernel: AssemblyScript -> wasm -> C ----------------------------------
$(B)/kernel.wasm: $(KERNEL_TS) package.json | $(B) $(SETUP_DONE)
	$(ASC) kernel/main.ts -o $@ -t $(B)/kernel.wat $(ASCFLAGS)

$(B)/gen/kernel.c $(B)/gen/kernel.h $(B)/gen/instantiate.h: $(B)/kernel.wasm
	@mkdir -p $(B)/gen
	@$(WASM2C) --version | grep -qx '1.0.32' || { echo "wasm2c 1.0.32 required (Debian 12 wabt): the C API changed after it"; exit 1; }
	$(WASM2C) $< -n kernel -o $(B)/gen/kernel.c
	@# Every linear-memory access is checked against the memory's size. The
	@# size never changes (initial = maximum, ASCFLAGS), so compare with the
	@# constant instead of loading mem->size: clang then folds the check into
	@# the address arithmetic (CPUID round trip -N ticks, see ARCHITECTURE.md).
	@# boot/rt/wasm-rt.c refuses a memory whose size is not that constant.
	sed -i 's/^  if (UNLIKELY(offset + (uint64_t)len > mem->size)) \\$$/  if (UNLIKELY(offset + (uint64_t)len > HV_LINEAR_BYTES)) \\/' $(B)/gen/kernel.c
	@grep -q 'len > HV_LINEAR_BYTES' $(B)/gen/kernel.c || { echo "wasm2c output: RANGE_CHECK not found to make constant"; exit 1; }
	@# Loads and stores address the memory at its fixed virtual address
	@# (boot/include/linear.h HV_LINEAR_VA), a constant, instead of mem->data,
	@# which the compiler must reload after every store (a byte store may
	@# alias it); and a load or store checks its address against the bound
	@# less its own size, one compare (the sum cannot wrap: a wasm address is
	@# below 2^33). wasm-rt.c refuses a memory that is not at that address.
	sed -i -e 's/^    wasm_rt_memcpy(&result, &mem->data\[addr\], sizeof(t1)); \\$$/    wasm_rt_memcpy(\&result, \&((u8 *)HV_LINEAR_VA)[addr], sizeof(t1)); \\/' \
	  -e 's/^    wasm_rt_memcpy(&mem->data\[addr\], &wrapped, sizeof(t1));  *\\$$/    wasm_rt_memcpy(\&((u8 *)HV_LINEAR_VA)[addr], \&wrapped, sizeof(t1)); \\/' \
	  -e 's/^#define MEMCHECK(mem, a, t) RANGE_CHECK(mem, a, sizeof(t))$$/#define MEMCHECK(mem, a, t) if (UNLIKELY((a) > HV_LINEAR_BYTES - sizeof(t))) TRAP(OOB);/' $(B)/gen/kernel.c
	@test $$(grep -c 'HV_LINEAR_VA)\[addr\]' $(B)/gen/kernel.c) = 2 || { echo "wasm2c output: LINEAR_BASE edit (load/store addresses) not found"; exit 1; }
	@grep -q 'UNLIKELY((a) > HV_LINEAR_BYTES - sizeof(t))' $(B)/gen/kernel.c || { echo "wasm2c output: MEMCHECK edit not found"; exit 1; }
	@# Each function checks RSP against the running thread's stack bound
	@# (boot/include/stack.h) where wasm2c would count the call depth
	@# (WASM_RT_USE_STACK_DEPTH_COUNT=0 above leaves its prologue empty).
	sed -i 's/^#define FUNC_PROLOGUE$$/#define FUNC_PROLOGUE HV_STACK_CHECK()/' $(B)/gen/kernel.c
	@grep -q '^#define FUNC_PROLOGUE HV_STACK_CHECK()$$' $(B)/gen/kernel.c || { echo "wasm2c output: FUNC_PROLOGUE edit not found"; exit 1; }
	@sed -i '1i #include "stack.h" /* HV_STACK_CHECK */' $(B)/gen/kernel.c
	@sed -i '1i #include "linear.h" /* HV_LINEAR_VA */' $(B)/gen/kernel.c
	@sed -i '1i #define HV_LINEAR_BYTES (256ull * 65536ull) /* = HV_LINEAR_MAX = ASCFLAGS --maximumMemory, checked by wasm-rt.c */' $(B)/gen/kernel.c
	cp /usr/include/wasm-rt.h $(B)/gen/wasm-rt.h
	@# Z_kernel_instantiate takes one (unused) instance pointer per import
	@# module; count them from the generated prototype.
	n=$$(grep -o 'Z_kernel_instantiate(Z_kernel_instance_t\*[^;]*' $(B)/gen/kernel.h | grep -o 'struct Z_' | wc -l); \
	  args=$$(for k in $$(seq $$n); do printf ', NULL'; done); \
	  echo "#define HV_INSTANTIATE(inst) Z_kernel_instantiate(inst$$args)" > $(B)/gen/instantiate.h

# ---- C objects, two flavours --------------------------------------------------
$(B)/efi/%.o: %.c $(HEADERS) $(B)/gen/kernel.h
	@mkdir -p $(dir $@)
	$(CLANG) $(CFLAGS_EFI) -c $< -o $@
$(B)/efi/%.o: %.S $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) $(CFLAGS_EFI) -c $< -o $@
$(B)/elf/%.o: %.c $(HEADERS) $(B)/gen/kernel.h
	@mkdir -p $(dir $@)
	$(CLANG) $(CFLAGS_ELF) -c $< -o $@
$(B)/elf/%.o: %.S $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) $(CFLAGS_ELF) -c $< -o $@
$(B)/elf/%.o: %.asm
	@mkdir -p $(dir $@)
	$(NASM) -f elf64 $< -o $@
# The PE build compiles kernel.c with every function in the one .text
# section: lld-link's LTO gives each function a COMDAT section of its own,
# and the eVMCS patch records of boot/imports/vmx.c (inlined here) go back to
# .text after writing their record (LLVM's COFF assembler has no
# .pushsection/.popsection; the ELF build uses them).
$(B)/gen/kernel-efi.c: $(B)/gen/kernel.c
	printf '%s\n' '/* GENERATED by the Makefile: kernel.c with its functions in .text (see there) */' \
	  '#pragma clang attribute push (__attribute__((section(".text"))), apply_to = function)' \
	  '#include "kernel.c"' '#pragma clang attribute pop' > $@
$(B)/efi/kernel.o: $(B)/gen/kernel-efi.c $(HEADERS)
	$(CLANG) $(CFLAGS_EFI) $(KCFLAGS) -c $< -o $@
$(B)/elf/kernel.o: $(B)/gen/kernel.c $(HEADERS)
	@mkdir -p $(B)/elf
	$(CLANG) $(CFLAGS_ELF) $(KCFLAGS) -c $< -o $@

EFI_OBJS := $(patsubst %.c,$(B)/efi/%.o,$(COMMON_C) $(UEFI_C)) $(patsubst %.S,$(B)/efi/%.o,$(COMMON_S)) $(B)/efi/kernel.o
ELF_OBJS := $(patsubst %.asm,$(B)/elf/%.o,$(MB_ASM)) $(patsubst %.c,$(B)/elf/%.o,$(COMMON_C) $(MB_C)) \
            $(patsubst %.S,$(B)/elf/%.o,$(COMMON_S)) $(B)/elf/kernel.o

$(B)/BOOTX64.EFI: $(EFI_OBJS)
	$(LLDLINK) /subsystem:efi_application /entry:efi_main /nodefaultlib /out:$@ $^

# The profiling build for make bench: the same image with RDTSC stamps at
# the edges of the VM entry/exit stub and its C wrapper (-DHV_PROFILE).
$(B)/prof/%.o: %.c $(HEADERS) $(B)/gen/kernel.h
	@mkdir -p $(dir $@)
	$(CLANG) $(CFLAGS_ELF) -DHV_PROFILE=1 -c $< -o $@
$(B)/prof/%.o: %.S $(HEADERS)
	@mkdir -p $(dir $@)
	$(CLANG) $(CFLAGS_ELF) -DHV_PROFILE=1 -c $< -o $@
$(B)/prof/%.o: %.asm
	@mkdir -p $(dir $@)
	$(NASM) -f elf64 $< -o $@
$(B)/prof/kernel.o: $(B)/gen/kernel.c $(HEADERS)
	@mkdir -p $(B)/prof
	$(CLANG) $(CFLAGS_ELF) $(KCFLAGS) -c $< -o $@
PROF_OBJS := $(patsubst $(B)/elf/%,$(B)/prof/%,$(ELF_OBJS))
$(B)/prof/hv.elf: $(PROF_OBJS) linker.ld
	$(LDLLD) -T linker.ld -nostdlib -z max-page-size=0x1000 -o $@ $(PROF_OBJS)

$(B)/hv.elf: $(ELF_OBJS) linker.ld
	$(LDLLD) -T linker.ld -nostdlib -z max-page-size=0x1000 -o $@ $(ELF_OBJS)

# The hypervisor itself as a guest (turtles: L1 = this image), under the
# name the demo and tests give it among the guests (a boot ISO cannot hold
# two files named hv.elf).
$(B)/guests/hvl1.elf: $(B)/hv.elf
	@mkdir -p $(dir $@)
	cp $< $@

# ---- boot media ------------------------------------------------------------
# ESP directory (QEMU's fat:rw: drive) and a FAT disk image (Bochs) holding
# EFI/BOOT/BOOTX64.EFI and the configuration file EFI/BOOT/hv.cfg.
HV_CFG ?= tests/qemu/hv.cfg
$(B)/esp/EFI/BOOT/BOOTX64.EFI: $(B)/BOOTX64.EFI $(HV_CFG) guests
	@mkdir -p $(dir $@)
	cp $(B)/BOOTX64.EFI $@
	cp $(HV_CFG) $(B)/esp/EFI/BOOT/hv.cfg
	cp $(GUEST_ELFS) $(GUEST_OUT)/module.txt $(B)/esp/EFI/BOOT/
$(B)/esp.img: $(B)/esp/EFI/BOOT/BOOTX64.EFI tools/mkesp.sh
	bash tools/mkesp.sh $(B)/esp $@
$(B)/hv.iso: $(B)/hv.elf tools/mkiso.sh
	bash tools/mkiso.sh $(B)/hv.elf $@

$(B):
	@mkdir -p $(B)

# ---- generated VMX constants -------------------------------------------------
gen:
	node tools/vmx/gen.mjs
check-gen:
	node tools/vmx/gen.mjs --check

# ---- set-up, demo, tests ---------------------------------------------------------
setup:
	bash tools/setup.sh
	@mkdir -p $(B) && touch $(SETUP_DONE)
$(SETUP_DONE): tools/setup.sh package-lock.json
	bash tools/setup.sh
	@mkdir -p $(B) && touch $@

# The demo, the nested story on Bochs: this hypervisor (L0) runs
# (1) itself as L1 (hvl1.elf) with the Hyper-V interface (hyperv=on), so
# that L1 keeps its VMCS for L2 in an enlightened VMCS ("L1| hv: vmx:
# enlightened VMCS ... in use") and runs the benchmark guest as L2 on it, and
# (2) the minimal test L1 hypervisor, whose L2 runs under L1's EPT and
# switches EPT views with VMFUNC (emulated by L0); each level ends with its
# exit counts.
DEMO ?= guest=hvl1.elf mem=160M nested=on hyperv=on args=caps=off,guest=bench.elf,args=n=50 module=bench.elf guest=l1.elf nested=on args=demo
run: setup
	$(MAKE) all
	node --import tsx tools/emu/run.ts bochs-mb --cmdline "$(DEMO)"

run-qemu: setup
	$(MAKE) all
	@# QEMU TCG has no VMX: the expected end is "no VT-x", status 2
	node --import tsx tools/emu/run.ts qemu-efi --expect-status 2

run-kvm: setup
	$(MAKE) all
	node --import tsx tools/emu/run.ts kvm-efi

# Debian 12's own kernel and busybox-static (tools/linux-fetch.sh, cached in
# build/linux) and the initramfs built from them (tools/mkinitramfs.sh);
# run-linux boots that kernel as a guest on Bochs with nested=on (issue 13;
# tests/qemu/linux.test.ts in `make test` boots it with `quiet`). Its /init
# loads kvm and kvm_intel, runs the VMM that starts an L2 (RESULT: PASS) and
# ends the guest with a restart: exit code 165. With the Hyper-V interface
# (kvm_intel then says "using Hyper-V Enlightened VMCS"):
#   make run-linux LINUX_HV='nested=on hyperv=on'
linux-fetch:
	bash tools/linux-fetch.sh
linux-initrd: linux-fetch $(B)/linux/vmm
	bash tools/mkinitramfs.sh
# The VMM /init runs (tests/linux/vmm.c: Linux KVM's ioctls, static) with the
# L2 guest it starts (tests/linux/l2.asm) built in.
$(B)/linux/l2.bin: tests/linux/l2.asm | $(SETUP_DONE)
	@mkdir -p $(@D)
	$(NASM) -f bin -o $@ $<
$(B)/linux/vmm: tests/linux/vmm.c $(B)/linux/l2.bin | $(SETUP_DONE)
	$(CLANG) -O2 -static -s -Wall -Wextra -DL2_BIN='"$(B)/linux/l2.bin"' -o $@ $<
LINUX_ARGS ?= console=ttyS0,,115200,earlyprintk=serial,,ttyS0,,115200,tsc=reliable,clocksource=tsc,pci=off,rdinit=/init,loglevel=8
LINUX_HV ?= nested=on
LINUX_GUEST ?= guest=vmlinuz mem=256M vcpus=1 $(LINUX_HV) initrd=initrd.cpio expect=exit:165 args=$(LINUX_ARGS)
run-linux: setup linux-initrd
	$(MAKE) all
	node --import tsx tools/emu/run.ts bochs-mb --megs 512 --timeout 2400 --cmdline "$(LINUX_GUEST)" \
	  --module $(B)/linux/vmlinuz vmlinuz --module $(B)/linux/initrd.cpio initrd.cpio

test: setup
	$(MAKE) check-gen all linux-initrd
	node --import tsx tools/test.ts

bench: setup
	$(MAKE) all $(B)/prof/hv.elf
	node --import tsx tools/bench.ts

# The Linux boots alone (tests/qemu/linux.test.ts, three boots, about 6 minutes).
test-linux: setup
	$(MAKE) all linux-initrd
	node --import tsx tools/test.ts tests/qemu/linux.test.ts

test-unit: all
	node --import tsx tools/test.ts tests/unit

clean:
	rm -rf $(B)

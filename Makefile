# Common commands. `make test` is the one test command: host tests of the
# portable code, then every test kernel under QEMU; it ends with `N passed, N failed`.

TOOLCHAIN := $(shell sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
KERNEL_TARGET := x86_64-unknown-none

.PHONY: all setup toolchain run test gdb clippy fmt check image bench usb

all: image

## Install whatever is missing: the pinned toolchain, QEMU, OVMF, Bochs
## (apt-get, with sudo when not root; otherwise it names what to install).
setup:
	@bash .ci/setup

## Install the pinned toolchain with everything the build needs.
toolchain:
	rustup toolchain install $(TOOLCHAIN) --profile minimal \
		--component rust-src,llvm-tools-preview,rustfmt,clippy --target $(KERNEL_TARGET)

## Boot the kernel in QEMU (pass options with ARGS="--uefi --headless").
run: setup
	cargo run -- $(ARGS)

## Build bios.img and uefi.img (target/images/kernel/).
image:
	cargo run -q -- image $(ARGS)

## Debug in GDB: QEMU paused (serial in target/gdb-serial.log), GDB attached
## with the kernel's symbols, stopped at kernel_main (ARGS="--uefi" etc.).
gdb: setup
	cargo run -q -- gdb $(ARGS)

## Every test: host unit and property tests, then every test kernel in QEMU.
test: setup
	cargo run -q -- test $(ARGS)

## Lints, warnings denied: host crates, then the kernel and test kernels.
clippy:
	cargo clippy -p boot -p kernel -p abi -p user -p words --lib --tests -- -D warnings
	cargo clippy -p kernel -p kernel-tests -p user -p words --target $(KERNEL_TARGET) --lib --bins -- -D warnings

fmt:
	cargo fmt --all

## Formatting and lints, as CI checks them.
check:
	cargo fmt --all -- --check
	$(MAKE) clippy

## Write the image to a USB stick: make usb DEVICE=/dev/sdX [UEFI=1] (asks first).
usb:
	@test -n "$(DEVICE)" || { echo "usage: make usb DEVICE=/dev/sdX [UEFI=1]"; exit 2; }
	cargo run -q -- usb $(DEVICE) $(if $(UEFI),--uefi)

## Benchmarks: boots the release kernel with 512 MiB, prints `R name ns=... cyc=...` lines
## and draws target/bench/scale.svg (ARGS="--anchor LINUX.log" adds Linux's figures).
bench:
	cargo run -q -- bench $(ARGS)

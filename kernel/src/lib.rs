//! A small x86_64 kernel built around a portable virtual memory system.
//!
//! The library holds everything; `main.rs` and the test kernels under `tests/` are
//! thin entry points. The portable VM (`vm`), the swap pool's logic (`swap`) and
//! the command-line parser build on the host too, so that their unit and property
//! tests run with a plain `cargo test -p kernel --lib`; everything that touches the
//! machine is compiled only for the bare-metal target.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(target_os = "none", feature(abi_x86_interrupt))]
#![feature(allocator_ext)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod cmdline;
pub mod collections;
pub mod fixed_text;
pub mod monitor;
pub mod power;
pub mod process;
pub mod ramdisk;
pub mod screen;
pub mod swap;
pub mod symbols;
pub mod vm;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod drivers;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod lockstat;
#[cfg(target_os = "none")]
pub mod memory;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
pub mod testing;

#[cfg(target_os = "none")]
pub use boot::BOOTLOADER_CONFIG;

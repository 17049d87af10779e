//! A small x86_64 kernel built around a portable virtual memory system.
//!
//! The library holds everything; `main.rs` and the test kernels under `tests/` are
//! thin entry points. The portable VM (`vm`) builds on the host too, so that its unit
//! and property tests run with a plain `cargo test`; everything that touches the
//! machine is compiled only for the bare-metal target.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod vm;

//! The portable virtual memory system.
//!
//! Nothing in this module knows how the machine translates addresses: it talks to
//! the MMU only through a documented contract, and it builds and runs its tests on
//! the host. It must never import `crate::arch`.

pub mod error;

pub use error::VmError;

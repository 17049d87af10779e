//! The one entry point to machine-dependent code.
//!
//! Everything above this module reaches the machine through the names re-exported
//! here. Each architecture module exposes the same names; today there is one.

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("this kernel supports only x86_64");

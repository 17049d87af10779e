//! Host simulation of the VM: a simulated MMU, a reference model, and a seeded
//! random driver that issues the same operations to both and compares.
//!
//! The default test run covers 600 seeds of 500 operations each, on one to
//! four simulated processors, and checks that it issued every kind of
//! operation, met refused activations and moved spaces between processors
//! often enough to mean something (a count that is never checked cannot show
//! a kind the driver stopped reaching). Set `VM_SOAK_SEEDS` and `VM_SOAK_OPS` (and
//! `VM_SOAK_FIRST`, the first seed) for a long soak, or `VM_SEED` (and optionally
//! `VM_SOAK_OPS`) to rerun one seed that failed; a failure prints its seed and the
//! operations that led to it.
#![deny(unsafe_code)]

pub mod driver;
pub mod invariants;
pub mod machine;
pub mod model;
pub mod ops;
pub mod rng;
pub mod swap;

#[cfg(test)]
mod tests;

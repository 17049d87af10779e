//! Host simulation of the VM: a simulated MMU, a reference model, and a seeded
//! random driver that issues the same operations to both and compares.
//!
//! The default test run covers many seeds with a few hundred operations each. Set
//! `VM_SOAK_SEEDS` and `VM_SOAK_OPS` for a long soak, or `VM_SEED` (and optionally
//! `VM_SOAK_OPS`) to rerun one seed that failed.

pub mod driver;
pub mod invariants;
pub mod machine;
pub mod model;
pub mod ops;
pub mod rng;

#[cfg(test)]
mod tests;

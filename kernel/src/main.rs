//! The kernel binary: boots, runs its start-up work and idles.
#![no_std]
#![no_main]

fn main() {}

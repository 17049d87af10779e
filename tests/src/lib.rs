//! Shared helpers for the test kernels.
#![no_std]

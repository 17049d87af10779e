//! The VM's error type.
//!
//! Every fallible VM operation returns [`VmError`]. None of these is a kernel bug:
//! each is the result of a request (a user's, or the kernel's on a user's behalf)
//! that cannot be met, and the caller turns it into an error code or, for a fault,
//! into killing the faulting process.

use core::fmt;

/// Why a VM operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    /// No free frame (or no contiguous block) was left; nothing was changed.
    OutOfMemory,
    /// The address or range is not mapped, not page aligned, or outside the
    /// space's limits.
    BadAddress,
    /// The access is not allowed by the region's protection.
    Protection,
    /// The request itself is malformed (zero length, overflow, unknown handle, ...).
    InvalidArgument,
    /// The frame is not in a state that allows the operation (for example freeing
    /// a frame that is already free, or still referenced).
    BadFrame,
    /// Everything the operation needs is in use by other processors for now
    /// (every page-table slot is loaded elsewhere); nothing was changed, and
    /// trying again later may succeed.
    Busy,
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            VmError::OutOfMemory => "out of memory",
            VmError::BadAddress => "bad address",
            VmError::Protection => "protection violation",
            VmError::InvalidArgument => "invalid argument",
            VmError::BadFrame => "frame in wrong state",
            VmError::Busy => "in use by other processors",
        };
        f.write_str(text)
    }
}

//! Memory accesses and exceptions whose faults come back as values, for the self-tests.

use arch::aarch64::exception;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeFault {
    pub name: &'static str,
    /// A data abort (translation or permission fault).
    pub is_page_fault: bool,
    pub address: u64,
}

fn convert(f: exception::Fault) -> ProbeFault {
    ProbeFault {
        name: exception::class_name(f.class),
        is_page_fault: f.class == exception::EC_DATA_ABORT_SAME_EL,
        address: f.address,
    }
}

/// Reads a u64 at `va`.
///
/// # Safety
/// A successful read must not alias a live `&mut` or have side effects the caller does not own.
pub unsafe fn read(va: u64) -> Result<u64, ProbeFault> {
    // SAFETY: the caller vouches for the access.
    unsafe { exception::probe_read(va) }.map_err(convert)
}

/// Writes a u64 at `va`.
///
/// # Safety
/// A successful write must not corrupt memory that Rust code owns.
pub unsafe fn write(va: u64, value: u64) -> Result<(), ProbeFault> {
    // SAFETY: the caller vouches for the access.
    unsafe { exception::probe_write(va, value) }.map_err(convert)
}

/// Raises an exception (BRK) and returns what the handler reported.
pub fn raise_exception() -> Result<(), ProbeFault> {
    exception::probe_breakpoint().map_err(convert)
}

/// The name of the exception [`raise_exception`] raises.
pub const RAISED: &str = "BRK";

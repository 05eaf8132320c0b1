//! Memory accesses and exceptions whose faults come back as values, for the self-tests.

use arch::x86_64::trap;

/// A fault a probe took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeFault {
    pub name: &'static str,
    /// A page fault (translation or permission).
    pub is_page_fault: bool,
    pub address: u64,
}

fn convert(f: trap::Fault) -> ProbeFault {
    ProbeFault {
        name: trap::exception_name(u64::from(f.vector)),
        is_page_fault: f.vector == trap::PAGE_FAULT,
        address: f.address,
    }
}

/// Reads a u64 at `va`.
///
/// # Safety
/// A successful read must not alias a live `&mut` or have side effects the caller does not own.
pub unsafe fn read(va: u64) -> Result<u64, ProbeFault> {
    // SAFETY: the caller vouches for the access.
    unsafe { trap::probe_read(va) }.map_err(convert)
}

/// Writes a u64 at `va`.
///
/// # Safety
/// A successful write must not corrupt memory that Rust code owns.
pub unsafe fn write(va: u64, value: u64) -> Result<(), ProbeFault> {
    // SAFETY: the caller vouches for the access.
    unsafe { trap::probe_write(va, value) }.map_err(convert)
}

/// Raises an exception (#UD) and returns what the handler reported.
pub fn raise_exception() -> Result<(), ProbeFault> {
    trap::probe_invalid_opcode().map_err(convert)
}

/// The name of the exception [`raise_exception`] raises.
pub const RAISED: &str = "#UD";

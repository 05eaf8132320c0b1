//! The subset of the Hyper-V Top Level Functional Specification (TLFS) that a VTL2 paravisor
//! and a VMM emulating that interface share: CPUID leaves, synthetic MSRs, the hypercall ABI,
//! status codes, VSM registers, SynIC messages and intercept message layouts (x64).
//!
//! One definition for both sides (vmm-lite and the firmware): nobody else spells these
//! constants. Citations: "TLFS §x" is the v6.0b PDF; "TLFS web: page" is the current online
//! edition; where the TLFS gives no number, the value is what Hyper-V and its open-source
//! clients use, and the doc comment says so.
#![cfg_attr(not(test), no_std)]

pub mod cpuid;
pub mod hypercall;
pub mod intercept;
pub mod message;
pub mod msr;
pub mod registers;
pub mod status;
pub mod vtl;

pub const PAGE_SIZE: usize = 4096;

/// Little-endian field access on byte buffers, for the fixed layouts below. Reads return `None`
/// past the end; nothing here panics on short input.
pub(crate) mod bytes {
    pub fn u8_at(b: &[u8], at: usize) -> Option<u8> {
        b.get(at).copied()
    }
    pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(
            b.get(at..at.checked_add(2)?)?.try_into().ok()?,
        ))
    }
    pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(
            b.get(at..at.checked_add(4)?)?.try_into().ok()?,
        ))
    }
    pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(
            b.get(at..at.checked_add(8)?)?.try_into().ok()?,
        ))
    }
    /// Writes `value` at `at`; returns false (writing nothing) if it does not fit.
    pub fn put(b: &mut [u8], at: usize, value: &[u8]) -> bool {
        match at
            .checked_add(value.len())
            .and_then(|end| b.get_mut(at..end))
        {
            Some(dst) => {
                dst.copy_from_slice(value);
                true
            }
            None => false,
        }
    }
}

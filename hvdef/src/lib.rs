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
pub mod register_page;
pub mod registers;
pub mod status;
pub mod vtl;

pub const PAGE_SIZE: usize = 4096;

/// Field access for the fixed layouts below.
pub(crate) use le as bytes;

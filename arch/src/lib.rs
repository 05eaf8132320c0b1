//! Parapet's architecture layer.
//!
//! Pure logic (page-table formats, firmware-table parsing) builds everywhere and is tested on
//! the host; everything that executes a privileged instruction is compiled only for the
//! bare-metal target it belongs to, as tiny `unsafe fn` wrappers with a `# Safety` section.
#![cfg_attr(not(test), no_std)]

pub mod aarch64;
pub mod memory_map;
pub mod paging;
pub mod phys;
pub mod x86_64;

/// How a run of the firmware ends, as the machine's exit status tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
}

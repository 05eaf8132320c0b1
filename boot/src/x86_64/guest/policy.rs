//! What the guest is told about the machine, the same on every backend: MSRs no backend owns,
//! and the CPUID leaves Parapet edits.
//!
//! An MSR Parapet does not offer reads 0 and ignores writes, with a log line; hardware would
//! raise #GP, which waits for exception injection on every backend.

use super::Names;
use crate::guest::log_budget::LogBudget;

static MSR_LOGS: LogBudget = LogBudget::new("accesses to MSRs not offered");

/// The guest's rdmsr of an MSR nobody offers.
pub fn unoffered_msr_read(names: Names, msr: u32) -> u64 {
    if MSR_LOGS.take() {
        log::info!(
            "{}: {} read MSR {msr:#x}, which is not offered; it reads 0",
            names.backend,
            names.guest
        );
    }
    0
}

/// The guest's wrmsr of an MSR nobody offers.
pub fn unoffered_msr_write(names: Names, msr: u32, value: u64) {
    if MSR_LOGS.take() {
        log::info!(
            "{}: {} wrote {value:#x} to MSR {msr:#x}, which is not offered; ignored",
            names.backend,
            names.guest
        );
    }
}

// SVM (leaf 0x8000_0001 ECX bit 2, described by leaf 0x8000_000A) is hidden: the guest runs
// on Parapet's virtualization and may not nest its own.
use isolation::{ECX_SVM, EXTENDED_FEATURES, SVM_FEATURES};

/// The guest's CPUID answer for `leaf`.`subleaf`, from what the hardware or hypervisor
/// answered (`default`: EAX, EBX, ECX, EDX).
pub fn cpuid(leaf: u32, _subleaf: u32, default: [u32; 4]) -> [u32; 4] {
    let [eax, ebx, ecx, edx] = default;
    match leaf {
        EXTENDED_FEATURES => [eax, ebx, ecx & !ECX_SVM, edx],
        SVM_FEATURES => [0; 4],
        _ => default,
    }
}

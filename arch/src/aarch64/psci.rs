//! PSCI calls (Arm DEN 0022, Power State Coordination Interface, §5).

use super::devicetree::PsciConduit;

pub const VERSION: u32 = 0x8400_0000;
pub const CPU_ON_64: u32 = 0xc400_0003;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const SYSTEM_RESET: u32 = 0x8400_0009;

/// PSCI return codes (DEN 0022 table 5-2).
pub const SUCCESS: i64 = 0;
pub const ALREADY_ON: i64 = -4;

/// Makes a PSCI call through `conduit`.
///
/// # Safety
/// The call must be one whose effect the caller owns (powering CPUs or the system).
pub unsafe fn call(conduit: PsciConduit, function: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = u64::from(function);
    // SAFETY: the firmware implements PSCI on this conduit (the device tree says so); SMCCC
    // preserves x4-x17 for SMC64/HVC64 calls, and we declare x0-x3 clobbered.
    unsafe {
        match conduit {
            PsciConduit::Smc => {
                core::arch::asm!("smc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _, options(nostack))
            }
            PsciConduit::Hvc => {
                core::arch::asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _, options(nostack))
            }
        }
    }
    x0 as i64
}

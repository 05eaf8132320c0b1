//! The system counter as EL1 reads it (Arm ARM D11: CNTVCT_EL0, CNTFRQ_EL0); no timer
//! interrupts.

use core::arch::asm;

/// Counter ticks per second, as firmware (or the hypervisor) programmed CNTFRQ_EL0.
pub fn frequency() -> u64 {
    let value: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effect.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    value
}

/// The virtual count, read after earlier instructions (ISB).
pub fn ticks() -> u64 {
    let value: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effect; the ISB only orders.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack)) };
    value
}

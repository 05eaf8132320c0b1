//! The EL2 physical timer (CNTHP) as a periodic tick, and the system counter as the clock
//! (Arm ARM D11 "The Generic Timer").

use core::sync::atomic::{AtomicU64, Ordering};

use super::registers::{self as reg, isb};

const CTL_ENABLE: u64 = 1 << 0;

static PERIOD: AtomicU64 = AtomicU64::new(0);

/// Counter ticks per second.
pub fn frequency() -> u64 {
    reg::counter_frequency()
}

/// Starts this CPU's periodic tick at `hz`.
///
/// # Safety
/// The timer's interrupt must be handled (enabled at the GIC with working vectors).
pub unsafe fn start_tick(hz: u64) {
    let period = (frequency() / hz.max(1)).max(1);
    PERIOD.store(period, Ordering::Relaxed);
    // SAFETY: programming this CPU's own EL2 timer.
    unsafe {
        reg::set_cnthp_cval(reg::counter() + period);
        reg::set_cnthp_ctl(CTL_ENABLE);
    }
    isb();
}

/// Re-arms the tick one period after its last deadline (not after now, so it does not drift).
pub fn rearm() {
    let period = PERIOD.load(Ordering::Relaxed);
    let now = reg::counter();
    let mut next = reg::cnthp_cval() + period;
    if next <= now {
        // Missed ticks (a long stall): skip ahead rather than fire a burst.
        next = now + period;
    }
    // SAFETY: moving this CPU's own timer deadline.
    unsafe { reg::set_cnthp_cval(next) };
    isb();
}

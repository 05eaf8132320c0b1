//! Log lines about what a guest does at will (touching memory it may not, unknown MSRs, odd
//! port widths) come from a budget: the first few are logged, then one line says the rest
//! are not, so a guest cannot flood Parapet's console or slow it with logging.

use core::sync::atomic::{AtomicU32, Ordering};

pub struct LogBudget {
    what: &'static str,
    left: AtomicU32,
}

/// Lines per kind of event.
const LINES: u32 = 64;

impl LogBudget {
    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            left: AtomicU32::new(LINES),
        }
    }

    /// Whether this occurrence may be logged; the last one allowed also says that later ones
    /// will not be.
    pub fn take(&self) -> bool {
        match self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        {
            Ok(1) => {
                log::warn!("the guest's {} are no longer logged", self.what);
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }
}

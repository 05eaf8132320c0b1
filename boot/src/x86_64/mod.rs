//! The x86_64 boot path: PVH entry, CPU tables, APIC, SMP.

mod entry;
pub mod hv;
// The selftest build does not host VTL0 (its tests enable VTL0 themselves), so much of the
// backend is unused there; it is still compiled, so both builds check it.
#[cfg_attr(feature = "selftest", allow(dead_code))]
pub mod guest;
#[cfg_attr(feature = "selftest", allow(dead_code))]
pub mod hv_vtl;
mod igvm_entry;
#[cfg(feature = "selftest")]
pub mod probe;

pub mod percpu;
pub mod platform;
pub mod serial;
mod smp;
pub mod start;
#[cfg_attr(feature = "selftest", allow(dead_code))]
pub mod svm;
pub mod time;

//! The aarch64 boot path: EL2 entry, device tree, GICv3, generic timer, PSCI secondaries.

#[cfg_attr(feature = "selftest", allow(dead_code))]
pub mod el2;
mod entry;
pub mod percpu;
pub mod platform;
#[cfg(feature = "selftest")]
pub mod probe;
pub mod serial;
pub mod start;

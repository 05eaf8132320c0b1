//! The x86_64 boot path: PVH entry, CPU tables, APIC, SMP.

mod entry;
pub mod hv;
mod igvm_entry;
#[cfg(feature = "selftest")]
pub mod probe;

pub mod percpu;
pub mod platform;
pub mod serial;
mod smp;
pub mod start;
pub mod time;

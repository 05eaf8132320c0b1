//! Device register models, drivers and emulators shared by the firmware and vmm-lite.
//!
//! Nothing here touches hardware or guest memory directly: drivers reach registers through
//! small traits, so every device is built and tested on the host.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod gpio_spi;
pub mod ioapic;
pub mod pit;
pub mod pl011;
pub mod pl061;
pub mod psci;
pub mod pvclock;
pub mod spi_wires;
pub mod text_output;
#[cfg(feature = "tpm")]
pub mod tpm;
pub mod uart16550;
pub mod vgic;
pub mod x2apic;

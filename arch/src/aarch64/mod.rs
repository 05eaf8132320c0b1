//! aarch64: descriptor formats and device-tree reading (pure, host-tested) and, on bare metal,
//! the EL2 CPU: system registers, vectors, GICv3, timer, PSCI.

pub mod devicetree;
pub mod fdt;
pub mod page_format;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod exception;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod gic;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod guest_entry;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod power;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod psci;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod registers;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod timer;

//! x86_64: boot ABI and firmware tables (pure, host-tested) and, on bare metal, the CPU.

pub mod acpi;
pub mod page_format;
pub mod pvh;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod apic;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod gdt;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod instructions;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod pic;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod pit;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod power;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod trap;

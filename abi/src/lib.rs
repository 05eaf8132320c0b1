//! Binary contracts Parapet shares with the code around it, defined once so no two sides can
//! disagree:
//! - with whoever loads Parapet (the IGVM image builder, vmm-lite, Hyper-V): where things are
//!   in guest-physical memory and how parameters are encoded (`igvm_layout`,
//!   `igvm_memory_map`), used by `image/` and `vmm-lite/` on the host and `boot/` in the
//!   firmware;
//! - with the guests Parapet hosts: the ACPI tables an x86 guest reads (`acpi_tables`), the
//!   Linux x86 boot protocol (`linux_boot`; `vmlinux` for an uncompressed kernel), the arm64
//!   Linux boot protocol and the device tree an aarch64 guest reads (`arm64_boot`, written
//!   with `fdt_writer`), pure builders and parsers that produce and check bytes, tested on the
//!   host, for the firmware to place in guest RAM (and for host tools that boot the same
//!   guests);
//! - with the tools that hand Parapet a guest to boot: the guest bundle (`guest_bundle`), a
//!   kernel, initrd and command line in the one blob a boot module or vmm-lite carries.
#![no_std]

extern crate alloc;

pub mod acpi_tables;
pub mod arm64_boot;
pub mod fdt_writer;
pub mod guest_bundle;
#[cfg(feature = "igvm-checksum")]
pub mod igvm_checksum;
pub mod igvm_layout;
pub mod igvm_memory_map;
pub mod linux_boot;
pub mod vmlinux;

//! GICv2 (Arm GIC Architecture Specification v2.0, IHI 0048B): distributor and the
//! memory-mapped CPU interface. QEMU virt's default interrupt controller.
//!
//! Without the Security Extensions in use, every interrupt is Group 0 and signalled as IRQ.

use core::ptr::{read_volatile, write_volatile};

use super::GicCpu;

/// Register frame sizes (IHI 0048B §4.1.2, table 4-1: 4 KiB each; QEMU maps 64 KiB).
pub const DISTRIBUTOR_SIZE: u64 = 0x1000;
pub const CPU_INTERFACE_SIZE: u64 = 0x2000;

/// Distributor registers (IHI 0048B §4.3).
const GICD_CTLR: u64 = 0x000;
const GICD_ISENABLER0: u64 = 0x100;
const GICD_ICENABLER0: u64 = 0x180;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_ITARGETSR0: u64 = 0x800;
const GICD_SGIR: u64 = 0xf00;
/// CPU interface registers (IHI 0048B §4.4).
const GICC_CTLR: u64 = 0x000;
const GICC_PMR: u64 = 0x004;
const GICC_IAR: u64 = 0x00c;
const GICC_EOIR: u64 = 0x010;

/// # Safety
/// `address` must be a mapped device register.
unsafe fn read32(address: u64) -> u32 {
    // SAFETY: the caller guarantees a mapped device register; MMIO needs volatile.
    unsafe { read_volatile(address as *const u32) }
}

/// # Safety
/// `address` must be a mapped device register whose write the caller owns.
unsafe fn write32(address: u64, value: u32) {
    // SAFETY: as above.
    unsafe { write_volatile(address as *mut u32, value) }
}

/// # Safety
/// `distributor` must be the mapped GICD base; once, on the boot CPU.
pub unsafe fn init_distributor(distributor: u64) {
    // SAFETY: the caller gives us the distributor; bit 0 enables forwarding.
    unsafe { write32(distributor + GICD_CTLR, 1) };
}

/// Enables this CPU's interface; returns its CPU-interface bit, read from the banked
/// GICD_ITARGETSR0 (IHI 0048B §4.3.12: its SGI bytes read as this CPU's own mask).
///
/// # Safety
/// Both frames must be mapped; once per CPU with IRQs masked.
pub unsafe fn init_cpu(distributor: u64, cpu_interface: u64) -> Option<GicCpu> {
    // SAFETY: banked per-CPU registers of a mapped controller.
    unsafe {
        let mask = read32(distributor + GICD_ITARGETSR0) & 0xff;
        write32(cpu_interface + GICC_PMR, 0xff);
        write32(cpu_interface + GICC_CTLR, 1);
        (mask != 0).then_some(GicCpu {
            sgi_target: u64::from(mask),
            redistributor: 0,
        })
    }
}

/// # Safety
/// As [`super::Gic::disable_private`].
pub unsafe fn disable_private(distributor: u64, intid: u32) {
    if intid >= 32 {
        return;
    }
    // SAFETY: the banked SGI/PPI enable register of this CPU.
    unsafe { write32(distributor + GICD_ICENABLER0, 1 << intid) };
}

/// # Safety
/// As [`super::Gic::enable_private`].
pub unsafe fn enable_private(distributor: u64, intid: u32) {
    if intid >= 32 {
        return;
    }
    // SAFETY: the banked SGI/PPI registers of this CPU.
    unsafe {
        write_volatile(
            (distributor + GICD_IPRIORITYR + u64::from(intid)) as *mut u8,
            0x80,
        );
        write32(distributor + GICD_ISENABLER0, 1 << intid);
    }
}

/// # Safety
/// As [`super::Gic::acknowledge`].
pub unsafe fn acknowledge(cpu_interface: u64) -> u32 {
    // SAFETY: reading IAR acknowledges; the caller ends the interrupt.
    unsafe { read32(cpu_interface + GICC_IAR) & 0x3ff }
}

pub fn end_of_interrupt(cpu_interface: u64, intid: u32) {
    // SAFETY: EOI of an interrupt this CPU acknowledged, on its mapped CPU interface.
    unsafe { write32(cpu_interface + GICC_EOIR, intid) };
}

/// # Safety
/// As [`super::Gic::send_sgi`].
pub unsafe fn send_sgi(distributor: u64, target_mask: u64, intid: u32) {
    // Target list filter 0 (use the list), CPU target list in bits 23:16 (IHI 0048B §4.3.15).
    let value = ((target_mask as u32 & 0xff) << 16) | (intid & 0xf);
    // SAFETY: the caller guarantees the SGI is handled; the barrier publishes earlier writes.
    unsafe {
        core::arch::asm!("dsb ishst", options(nostack, preserves_flags));
        write32(distributor + GICD_SGIR, value);
    }
}

//! GICv3 (Arm GIC Architecture Specification v3/v4, IHI 0069): the distributor, this CPU's
//! redistributor, and the system-register CPU interface.
//!
//! Parapet runs with one security state (QEMU virt without `secure=on`, GICD_CTLR.DS = 1) and
//! uses Group 1 interrupts only.

use core::ptr::{read_volatile, write_volatile};

use super::GicCpu;
use crate::aarch64::registers::{self as reg, isb};

/// Distributor frame size (IHI 0069 §12.9: 64 KiB).
pub const DISTRIBUTOR_SIZE: u64 = 0x1_0000;

/// GICD_CTLR and its bits for a single security state (IHI 0069 §12.9.4).
const GICD_CTLR: u64 = 0x0000;
const GICD_CTLR_RWP: u32 = 1 << 31;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_ENABLE_GRP0: u32 = 1 << 0;

/// Redistributor frames: RD_base, then SGI_base 64 KiB above (§12.10).
const GICR_FRAME: u64 = 0x1_0000;
/// GICv3: RD_base + SGI_base. GICv4 with direct virtual LPIs (TYPER.VLPIS) adds VLPI_base and
/// a reserved frame (§9.10).
const GICR_STRIDE_V3: u64 = 2 * GICR_FRAME;
const GICR_STRIDE_V4: u64 = 4 * GICR_FRAME;
const GICR_TYPER_VLPIS: u64 = 1 << 1;
const GICR_WAKER: u64 = 0x0014;
const GICR_TYPER: u64 = 0x0008;
const GICR_TYPER_LAST: u64 = 1 << 4;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const GICR_IGROUPR0: u64 = GICR_FRAME + 0x0080;
const GICR_ISENABLER0: u64 = GICR_FRAME + 0x0100;
const GICR_ICENABLER0: u64 = GICR_FRAME + 0x0180;
const GICR_IPRIORITYR: u64 = GICR_FRAME + 0x0400;

/// ICC_SRE_EL2: SRE (use system registers) and Enable (let EL1 use them too).
const SRE_SRE: u64 = 1 << 0;
const SRE_ENABLE: u64 = 1 << 3;

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

/// Enables the distributor with affinity routing and both groups.
///
/// # Safety
/// `distributor` must be the mapped GICD base; call once, on the boot CPU.
pub unsafe fn init_distributor(distributor: u64) {
    // SAFETY: the caller gives us the distributor; RWP polling is the documented handshake.
    unsafe {
        write32(
            distributor + GICD_CTLR,
            GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1 | GICD_CTLR_ENABLE_GRP0,
        );
        while read32(distributor + GICD_CTLR) & GICD_CTLR_RWP != 0 {
            core::hint::spin_loop();
        }
    }
}

/// The affinity GICR_TYPER reports for the CPU with this MPIDR (Aff3.Aff2.Aff1.Aff0).
pub fn affinity_of(mpidr: u64) -> u32 {
    ((((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff)) as u32
}

/// Finds this CPU's redistributor in the region, wakes it, and enables the CPU interface.
/// Returns this CPU's handle (SGI target: its MPIDR), or `None` if no redistributor matches.
///
/// # Safety
/// The region must be mapped; call once per CPU with IRQs masked.
pub unsafe fn init_cpu(redistributors: (u64, u64)) -> Option<GicCpu> {
    let me = affinity_of(reg::mpidr());
    let (base, size) = redistributors;
    let end = base.checked_add(size)?;
    let mut rd = base;
    let mut found = None;
    while rd
        .checked_add(GICR_STRIDE_V3)
        .is_some_and(|frame_end| frame_end <= end)
    {
        // SAFETY: rd is inside the mapped region; TYPER is a 64-bit read-only register.
        let typer = unsafe { read_volatile((rd + GICR_TYPER) as *const u64) };
        if (typer >> 32) as u32 == me {
            found = Some(rd);
            break;
        }
        if typer & GICR_TYPER_LAST != 0 {
            break;
        }
        rd += if typer & GICR_TYPER_VLPIS != 0 {
            GICR_STRIDE_V4
        } else {
            GICR_STRIDE_V3
        };
    }
    let rd = found?;
    // SAFETY: rd is this CPU's redistributor; waking it is the documented sequence (§9.2.5),
    // and the system-register enables only affect this CPU.
    unsafe {
        let waker = read32(rd + GICR_WAKER);
        write32(rd + GICR_WAKER, waker & !WAKER_PROCESSOR_SLEEP);
        while read32(rd + GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {
            core::hint::spin_loop();
        }
        // All SGIs and PPIs in Group 1.
        write32(rd + GICR_IGROUPR0, u32::MAX);
        reg::set_icc_sre_el2(reg::icc_sre_el2() | SRE_SRE | SRE_ENABLE);
        isb();
        reg::set_icc_pmr(0xff);
        reg::set_icc_igrpen1(1);
        isb();
    }
    Some(GicCpu {
        sgi_target: reg::mpidr() & 0xff_00ff_ffff,
        redistributor: rd,
    })
}

/// Enables SGI/PPI `intid` (0-31) at the middle priority on the redistributor `rd`.
///
/// # Safety
/// `rd` must be this CPU's redistributor, and the vectors must handle the interrupt.
pub unsafe fn enable_private(rd: u64, intid: u32) {
    if intid >= 32 {
        return;
    }
    // SAFETY: both registers belong to this CPU's redistributor.
    unsafe {
        write_volatile((rd + GICR_IPRIORITYR + u64::from(intid)) as *mut u8, 0x80);
        write32(rd + GICR_ISENABLER0, 1 << intid);
    }
}

/// Disables SGI/PPI `intid` (0-31) on the redistributor `rd`.
///
/// # Safety
/// `rd` must be this CPU's redistributor.
pub unsafe fn disable_private(rd: u64, intid: u32) {
    if intid >= 32 {
        return;
    }
    // SAFETY: a register of this CPU's redistributor.
    unsafe { write32(rd + GICR_ICENABLER0, 1 << intid) };
}

/// Acknowledges the pending interrupt: its INTID, or [`super::SPURIOUS`].
///
/// # Safety
/// The caller must pass the INTID to [`end_of_interrupt`] once handled (unless spurious).
pub unsafe fn acknowledge() -> u32 {
    // SAFETY: forwarded to the caller.
    (unsafe { reg::icc_iar1() } & 0xff_ffff) as u32
}

/// Ends interrupt `intid` (drops priority and deactivates it).
pub fn end_of_interrupt(intid: u32) {
    // SAFETY: EOI of an interrupt this CPU acknowledged.
    unsafe { reg::set_icc_eoir1(u64::from(intid)) };
}

/// Sends SGI `intid` (0-15) to the CPU with affinity `mpidr`.
///
/// # Safety
/// The target's vectors must handle the SGI.
pub unsafe fn send_sgi(mpidr: u64, intid: u32) {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    // Target list: one bit per Aff0 within a group of 16 that RS selects (§12.11.28; RS needs
    // GICD_TYPER.RSS for Aff0 above 15).
    let target_list = 1u64 << (aff0 % 16);
    let range_selector = aff0 / 16;
    let value = target_list
        | (aff1 << 16)
        | (u64::from(intid & 0xf) << 24)
        | (aff2 << 32)
        | (range_selector << 44)
        | (aff3 << 48);
    // SAFETY: the caller guarantees the SGI is handled.
    unsafe {
        core::arch::asm!("dsb ishst", options(nostack, preserves_flags));
        reg::set_icc_sgi1r(value);
    }
    isb();
}

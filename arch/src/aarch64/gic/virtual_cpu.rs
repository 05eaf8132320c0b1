//! The hypervisor's side of the GICv3 virtual CPU interface (Arm IHI 0069, §11 "Virtual
//! interrupt handling and prioritization", §12.4 the ICH_* registers): list registers, each
//! holding one virtual interrupt for the guest's EL1, which acknowledges and ends it through
//! its own ICC_* system registers without leaving the guest.
//!
//! A guest CPU that stays on one physical CPU owns that CPU's interface: nothing needs saving
//! across its exits.

use core::arch::asm;

/// List register fields (ICH_LR<n>_EL2): State in 63:62, HW 61, Group 60, Priority 55:48,
/// vINTID 31:0.
pub const LR_STATE_SHIFT: u32 = 62;
pub const LR_STATE_MASK: u64 = 0b11 << LR_STATE_SHIFT;
pub const LR_STATE_INVALID: u64 = 0;
pub const LR_STATE_PENDING: u64 = 0b01 << LR_STATE_SHIFT;
pub const LR_GROUP1: u64 = 1 << 60;
const LR_PRIORITY_SHIFT: u32 = 48;
/// ICH_HCR_EL2.En: the virtual CPU interface is on.
const HCR_EN: u64 = 1 << 0;
/// The most list registers the architecture has.
pub const MAX_LIST_REGISTERS: usize = 16;

/// A pending Group 1 virtual interrupt, for a list register.
pub fn pending_lr(intid: u32, priority: u8) -> u64 {
    LR_STATE_PENDING | LR_GROUP1 | (u64::from(priority) << LR_PRIORITY_SHIFT) | u64::from(intid)
}

/// The vINTID a list register holds.
pub fn lr_intid(lr: u64) -> u32 {
    lr as u32
}

macro_rules! list_register {
    ($n:expr, $value:ident, $op:ident) => {
        match $n {
            0 => list_register!(@ $op, "S3_4_C12_C12_0", $value),
            1 => list_register!(@ $op, "S3_4_C12_C12_1", $value),
            2 => list_register!(@ $op, "S3_4_C12_C12_2", $value),
            3 => list_register!(@ $op, "S3_4_C12_C12_3", $value),
            4 => list_register!(@ $op, "S3_4_C12_C12_4", $value),
            5 => list_register!(@ $op, "S3_4_C12_C12_5", $value),
            6 => list_register!(@ $op, "S3_4_C12_C12_6", $value),
            7 => list_register!(@ $op, "S3_4_C12_C12_7", $value),
            8 => list_register!(@ $op, "S3_4_C12_C13_0", $value),
            9 => list_register!(@ $op, "S3_4_C12_C13_1", $value),
            10 => list_register!(@ $op, "S3_4_C12_C13_2", $value),
            11 => list_register!(@ $op, "S3_4_C12_C13_3", $value),
            12 => list_register!(@ $op, "S3_4_C12_C13_4", $value),
            13 => list_register!(@ $op, "S3_4_C12_C13_5", $value),
            14 => list_register!(@ $op, "S3_4_C12_C13_6", $value),
            15 => list_register!(@ $op, "S3_4_C12_C13_7", $value),
            _ => {}
        }
    };
    (@ read, $reg:literal, $value:ident) => {
        // SAFETY: reading a list register has no side effects; the caller checked that it
        // exists (ICH_VTR_EL2).
        unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) $value, options(nomem, nostack, preserves_flags)) }
    };
    (@ write, $reg:literal, $value:ident) => {
        // SAFETY: the caller's contract (`write_lr`).
        unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) $value, options(nostack, preserves_flags)) }
    };
}

/// How many list registers this CPU has (ICH_VTR_EL2.ListRegs + 1).
pub fn list_register_count() -> usize {
    let vtr: u64;
    // SAFETY: ICH_VTR_EL2 is read-only and readable at EL2 with a GICv3 CPU interface.
    unsafe {
        asm!("mrs {}, S3_4_C12_C11_1", out(reg) vtr, options(nomem, nostack, preserves_flags))
    };
    ((vtr & 0x1f) as usize + 1).min(MAX_LIST_REGISTERS)
}

/// List register `n` (0 for one that does not exist).
pub fn read_lr(n: usize) -> u64 {
    let mut value: u64 = 0;
    if n < list_register_count() {
        list_register!(n, value, read);
    }
    value
}

/// Writes list register `n` (ignored for one that does not exist).
///
/// # Safety
/// The value must describe a virtual interrupt the guest of this CPU may take; Parapet's own
/// interrupts never go through list registers.
pub unsafe fn write_lr(n: usize, value: u64) {
    if n < list_register_count() {
        list_register!(n, value, write);
    }
}

/// Turns the virtual CPU interface on (ICH_HCR_EL2.En) with every list register empty.
///
/// # Safety
/// EL2 must be the hypervisor of this CPU's guest, with a GICv3 system-register interface.
pub unsafe fn enable() {
    for n in 0..list_register_count() {
        // SAFETY: an empty list register holds nothing for the guest.
        unsafe { write_lr(n, 0) };
    }
    // SAFETY: the caller's contract; En only lets the guest's EL1 see what list registers
    // hold.
    unsafe {
        asm!("msr S3_4_C12_C11_0, {}", "isb", in(reg) HCR_EN, options(nostack, preserves_flags))
    };
}

//! Running a guest at EL1 from EL2 as a function call: [`enter`] loads the guest's registers
//! and returns to it with ERET; the guest's next exception to EL2 (the lower-EL vectors in
//! `exception.rs`) stores its registers and the syndrome back into the same context and
//! returns from [`enter`] with the vector taken (Arm ARM D1.3.1 for the vector layout).
//!
//! The guest's EL1 system registers (SCTLR_EL1, TTBR*_EL1, VBAR_EL1, SP_EL1, ...) are its
//! own on this CPU: Parapet runs at EL2 and never uses them, so they are not switched.

use core::arch::global_asm;

/// A guest VCPU's state while it is not running, and what ended its last run.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestContext {
    pub x: [u64; 31],
    /// ELR_EL2: where the guest resumes.
    pub pc: u64,
    /// SPSR_EL2: the PSTATE it resumes with.
    pub pstate: u64,
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
    /// The vector the exit came through: 8 synchronous, 9 IRQ, 10 FIQ, 11 SError from
    /// AArch64; 12-15 the same from AArch32 (the guest's EL0 may run AArch32 code).
    pub vector: u64,
}

/// Vectors taken from a lower EL using AArch64 (8-11) and AArch32 (12-15): synchronous,
/// IRQ, FIQ, SError in each group.
pub const VECTOR_SYNC: u64 = 8;
pub const VECTOR_IRQ: u64 = 9;
pub const VECTOR_FIQ: u64 = 10;
pub const VECTOR_SERROR: u64 = 11;
pub const VECTOR_SYNC_AARCH32: u64 = 12;
pub const VECTOR_IRQ_AARCH32: u64 = 13;

const _: () = assert!(core::mem::size_of::<GuestContext>() == 37 * 8);

extern "C" {
    fn parapet_guest_enter(context: *mut GuestContext) -> u64;
}

/// Runs the guest of `context` until it next takes an exception to EL2; returns the vector
/// (also left in `context.vector` with the syndrome). All of DAIF is masked on return (as
/// exception entry leaves it); an IRQ that ended the run is taken when the caller unmasks
/// IRQs, and Parapet never unmasks the others.
///
/// # Safety
/// HCR_EL2, the stage-2 tables (VTTBR_EL2/VTCR_EL2) and the lower-EL vectors must be set up
/// so that nothing the guest does reaches memory or state Parapet owns; `context.pstate`
/// must name EL1 or EL0 (never EL2).
pub unsafe fn enter(context: &mut GuestContext) -> u64 {
    // SAFETY: the caller's contract; the routine saves and restores the callee-saved
    // registers, and ELR/SPSR are loaded with interrupts masked.
    unsafe { parapet_guest_enter(context) }
}

global_asm!(
    r#"
    .section .text.parapet_guest, "ax"
    .global parapet_guest_enter
parapet_guest_enter:
    msr daifset, #0xf
    stp x29, x30, [sp, #-16]!
    stp x27, x28, [sp, #-16]!
    stp x25, x26, [sp, #-16]!
    stp x23, x24, [sp, #-16]!
    stp x21, x22, [sp, #-16]!
    stp x19, x20, [sp, #-16]!
    stp x0, xzr, [sp, #-16]!
    ldp x2, x3, [x0, #248]
    msr elr_el2, x2
    msr spsr_el2, x3
    ldp x2, x3, [x0, #16]
    ldp x4, x5, [x0, #32]
    ldp x6, x7, [x0, #48]
    ldp x8, x9, [x0, #64]
    ldp x10, x11, [x0, #80]
    ldp x12, x13, [x0, #96]
    ldp x14, x15, [x0, #112]
    ldp x16, x17, [x0, #128]
    ldp x18, x19, [x0, #144]
    ldp x20, x21, [x0, #160]
    ldp x22, x23, [x0, #176]
    ldp x24, x25, [x0, #192]
    ldp x26, x27, [x0, #208]
    ldp x28, x29, [x0, #224]
    ldr x30, [x0, #240]
    ldp x0, x1, [x0, #0]
    eret

    // From a lower-EL vector: x0 = the vector, the guest's x0/x1 at [sp], the context
    // pointer above them where parapet_guest_enter left it.
    .global parapet_guest_exit
parapet_guest_exit:
    ldr x1, [sp, #16]
    stp x2, x3, [x1, #16]
    stp x4, x5, [x1, #32]
    stp x6, x7, [x1, #48]
    stp x8, x9, [x1, #64]
    stp x10, x11, [x1, #80]
    stp x12, x13, [x1, #96]
    stp x14, x15, [x1, #112]
    stp x16, x17, [x1, #128]
    stp x18, x19, [x1, #144]
    stp x20, x21, [x1, #160]
    stp x22, x23, [x1, #176]
    stp x24, x25, [x1, #192]
    stp x26, x27, [x1, #208]
    stp x28, x29, [x1, #224]
    str x30, [x1, #240]
    ldp x2, x3, [sp], #16
    stp x2, x3, [x1, #0]
    mrs x2, elr_el2
    mrs x3, spsr_el2
    stp x2, x3, [x1, #248]
    mrs x2, esr_el2
    mrs x3, far_el2
    stp x2, x3, [x1, #264]
    mrs x2, hpfar_el2
    stp x2, x0, [x1, #280]
    add sp, sp, #16
    ldp x19, x20, [sp], #16
    ldp x21, x22, [sp], #16
    ldp x23, x24, [sp], #16
    ldp x25, x26, [sp], #16
    ldp x27, x28, [sp], #16
    ldp x29, x30, [sp], #16
    ret
    "#
);

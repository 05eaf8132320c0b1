//! EL1's exception vectors (Arm ARM D1.3.1: 16 entries of 0x80 bytes, the table 2 KiB
//! aligned). A synchronous exception taken while [`probe`] runs is recorded and the
//! instruction that took it skipped, so a guest can try what a platform may refuse (an
//! undefined SMC, a device access of an odd width) and print what happened. Any other
//! exception prints its syndrome and ends the run as a failure.

use core::sync::atomic::{compiler_fence, Ordering};

use crate::{exit, println, EXIT_FAILURE};

/// ESR_EL1 bits 63:56 are RES0, so no syndrome reads as this.
const NO_EXCEPTION: u64 = u64::MAX;

/// Non-zero while [`probe`] runs (read by the vectors).
static mut PROBING: u32 = 0;
/// ESR_EL1 of the exception the vectors caught during [`probe`].
static mut CAUGHT_ESR: u64 = NO_EXCEPTION;

core::arch::global_asm!(
    ".macro parapet_guest_unexpected_entry kind",
    ".balign 0x80",
    "mov x0, #\\kind",
    "b parapet_guest_unexpected",
    ".endm",
    ".section .text.vectors, \"ax\"",
    ".balign 2048",
    ".global parapet_guest_vectors",
    "parapet_guest_vectors:",
    // Current EL with SP_EL0: sync, IRQ, FIQ, SError.
    "parapet_guest_unexpected_entry 0",
    "parapet_guest_unexpected_entry 1",
    "parapet_guest_unexpected_entry 2",
    "parapet_guest_unexpected_entry 3",
    // Current EL with SP_EL1: sync (probed), IRQ, FIQ, SError.
    ".balign 0x80",
    "b parapet_guest_sync",
    "parapet_guest_unexpected_entry 5",
    "parapet_guest_unexpected_entry 6",
    "parapet_guest_unexpected_entry 7",
    // Lower EL, AArch64 then AArch32: nothing runs below EL1 here.
    "parapet_guest_unexpected_entry 8",
    "parapet_guest_unexpected_entry 9",
    "parapet_guest_unexpected_entry 10",
    "parapet_guest_unexpected_entry 11",
    "parapet_guest_unexpected_entry 12",
    "parapet_guest_unexpected_entry 13",
    "parapet_guest_unexpected_entry 14",
    "parapet_guest_unexpected_entry 15",
    "",
    "parapet_guest_sync:",
    "stp x0, x1, [sp, #-16]!",
    "adrp x0, {probing}",
    "ldr w1, [x0, :lo12:{probing}]",
    "cbz w1, 1f",
    "mrs x1, esr_el1",
    "adrp x0, {caught}",
    "str x1, [x0, :lo12:{caught}]",
    "mrs x0, elr_el1",
    "add x0, x0, #4",
    "msr elr_el1, x0",
    "ldp x0, x1, [sp], #16",
    "eret",
    "1:",
    "ldp x0, x1, [sp], #16",
    "mov x0, #4",
    "parapet_guest_unexpected:",
    "mrs x1, esr_el1",
    "mrs x2, elr_el1",
    "mrs x3, far_el1",
    "bl {unexpected}",
    probing = sym PROBING,
    caught = sym CAUGHT_ESR,
    unexpected = sym unexpected,
);

/// Runs `access` with synchronous exceptions caught: its result, or ESR_EL1 of the exception
/// an instruction in it took (that instruction skipped: a load that took one leaves its
/// destination register as it was). `access` should be one instruction that may fault (a
/// volatile access, an HVC, an SMC), nothing that could fault halfway through a larger job.
pub fn probe<T>(access: impl FnOnce() -> T) -> Result<T, u64> {
    // SAFETY: one CPU probes at a time (the guests probe on their boot CPU only); the vectors
    // read these with plain loads and stores, as here.
    unsafe {
        (&raw mut CAUGHT_ESR).write_volatile(NO_EXCEPTION);
        (&raw mut PROBING).write_volatile(1);
    }
    compiler_fence(Ordering::SeqCst);
    let value = access();
    compiler_fence(Ordering::SeqCst);
    // SAFETY: as above.
    let esr = unsafe {
        (&raw mut PROBING).write_volatile(0);
        (&raw const CAUGHT_ESR).read_volatile()
    };
    if esr == NO_EXCEPTION {
        Ok(value)
    } else {
        Err(esr)
    }
}

/// An exception nothing expected: say which, and end the run as a failure.
extern "C" fn unexpected(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    println!("guest exception: vector {kind}, ESR {esr:#x}, ELR {elr:#x}, FAR {far:#x}");
    exit(EXIT_FAILURE)
}

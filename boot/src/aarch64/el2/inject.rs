//! Exceptions Parapet hands the guest's EL1, taken as the hardware would take them (Arm ARM
//! D1.3.2 "Exception entry", D1.3.1 the vector offsets): ELR_EL1 and SPSR_EL1 keep where the
//! guest was, ESR_EL1 says why, and the guest continues at its own vector in EL1h with every
//! interrupt masked.

use arch::aarch64::guest_entry::GuestContext;
use arch::aarch64::registers;

/// ESR_EL1 for an instruction the guest may not execute: EC 0 ("unknown reason"), IL (a
/// 32-bit instruction).
const ESR_UNKNOWN: u64 = 1 << 25;
/// PSTATE.M values (D1.4): EL0t, EL1t, EL1h; bit 4 set means AArch32.
const MODE_MASK: u64 = 0x1f;
const EL1T: u64 = 0x4;
const EL1H: u64 = 0x5;
const AARCH32: u64 = 0x10;
/// Vector offsets of a synchronous exception taken to EL1: from EL1 on SP_EL0, from EL1 on
/// SP_EL1, from a lower EL in AArch64, from a lower EL in AArch32.
const FROM_EL1_SP0: u64 = 0x000;
const FROM_EL1_SPX: u64 = 0x200;
const FROM_EL0_AARCH64: u64 = 0x400;
const FROM_EL0_AARCH32: u64 = 0x600;
/// EL1h with D, A, I and F masked.
const ENTRY_PSTATE: u64 = 0x3c0 | EL1H;

/// The guest's instruction at its PC is undefined for it: an Undefined Instruction
/// exception at its EL1.
pub fn undefined_instruction(vcpu: &mut GuestContext) {
    let mode = vcpu.pstate & MODE_MASK;
    let offset = match mode {
        m if m & AARCH32 != 0 => FROM_EL0_AARCH32,
        EL1H => FROM_EL1_SPX,
        EL1T => FROM_EL1_SP0,
        _ => FROM_EL0_AARCH64,
    };
    // SAFETY: the guest's EL1 exception registers, which Parapet at EL2 does not use.
    unsafe {
        registers::set_elr_el1(vcpu.pc);
        registers::set_spsr_el1(vcpu.pstate);
        registers::set_esr_el1(ESR_UNKNOWN);
    }
    vcpu.pc = registers::vbar_el1().wrapping_add(offset);
    vcpu.pstate = ENTRY_PSTATE;
}

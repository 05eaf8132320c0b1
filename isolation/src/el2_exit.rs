//! Exceptions a guest at EL1 takes to EL2, decoded from their syndrome into the
//! platform-neutral [`GuestExit`] (Arm ARM D23.2.41 ESR_EL2; the data-abort ISS in
//! D24.2.41 "ISS encoding for an exception from a Data Abort"; HPFAR_EL2 D23.2.56).
//!
//! The backend reads the syndrome registers and the guest's registers once into an
//! [`El2ExitState`]; everything here works on that copy.

use crate::exit::{ExitSite, GuestExit, MmioAccess};

/// ESR_EL2.EC values for exceptions from a lower EL.
pub mod class {
    pub const WFI_WFE: u8 = 0x01;
    pub const HVC64: u8 = 0x16;
    pub const SMC64: u8 = 0x17;
    pub const SYSTEM_REGISTER: u8 = 0x18;
    pub const INSTRUCTION_ABORT: u8 = 0x20;
    pub const DATA_ABORT: u8 = 0x24;
}

/// Data-abort ISS fields.
const ISV: u64 = 1 << 24;
const SAS_SHIFT: u64 = 22;
const SSE: u64 = 1 << 21;
const SRT_SHIFT: u64 = 16;
const SF: u64 = 1 << 15;
/// A cache-maintenance or address-translation instruction, not a load or store.
const CM: u64 = 1 << 8;
/// The fault hit the guest's own stage-1 table walk.
const S1PTW: u64 = 1 << 7;
const WNR: u64 = 1 << 6;
/// DFSC 0b0001xx: a translation fault at level xx, what a hole in stage 2 gives.
const DFSC_MASK: u64 = 0x3f;
const DFSC_TRANSLATION: u64 = 0b00_0100;
/// ESR_EL2.IL: the trapped instruction is 32 bits (A64 always is).
const IL: u64 = 1 << 25;

/// What the backend read at the exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct El2ExitState {
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
    /// ELR_EL2: the trapped instruction's address (for HVC, the one after it).
    pub pc: u64,
    /// The guest's x0-x30 as the exit left them.
    pub x: [u64; 31],
    /// SPSR_EL2: the guest's PSTATE.
    pub pstate: u64,
}

impl El2ExitState {
    pub fn class(&self) -> u8 {
        ((self.esr >> 26) & 0x3f) as u8
    }

    /// The faulting intermediate physical address of a stage-2 abort: HPFAR_EL2.FIPA (bits
    /// 43:4, address bits 51:12) and the page offset from FAR_EL2.
    pub fn fault_ipa(&self) -> u64 {
        let fipa = (self.hpfar >> 4) & ((1 << 40) - 1);
        (fipa << 12) | (self.far & 0xfff)
    }
}

/// Decodes a synchronous exception from the guest; `None` for what the backend answers
/// itself or cannot hand to devices (system-register traps, instruction aborts, unknown
/// classes).
pub fn decode(state: &El2ExitState, vp: u32) -> Option<(GuestExit, ExitSite)> {
    let site = ExitSite {
        vp,
        rip: state.pc,
        instruction_length: if state.esr & IL != 0 { 4 } else { 2 },
        rax: 0,
        rflags: state.pstate,
        // EL0 is the guest's user mode (PSTATE.M[3:2] = 0).
        user_mode: (state.pstate >> 2) & 3 == 0,
        instruction_bytes: [0; 16],
    };
    let exit = match state.class() {
        class::DATA_ABORT => data_abort(state),
        class::HVC64 | class::SMC64 => GuestExit::FirmwareCall {
            function: state.x[0] as u32,
            args: [state.x[1], state.x[2], state.x[3]],
        },
        class::WFI_WFE => GuestExit::Halt,
        _ => return None,
    };
    Some((exit, site))
}

/// A stage-2 data abort: with a valid syndrome (ISV) the access is fully described; without
/// it (load/store pair, writeback forms) it can only be reported. Cache maintenance by
/// address on something that is not RAM has nothing to maintain: completed as done. Other
/// fault kinds (not a stage-2 translation fault of the access itself) are reported only;
/// HPFAR is not defined for them.
fn data_abort(state: &El2ExitState) -> GuestExit {
    let iss = state.esr;
    let gpa = state.fault_ipa();
    let write = iss & WNR != 0;
    if iss & CM != 0 {
        return GuestExit::Memory {
            gpa,
            write,
            completed: true,
        };
    }
    let translation = iss & DFSC_MASK & !0b11 == DFSC_TRANSLATION;
    if iss & ISV == 0 || iss & S1PTW != 0 || !translation {
        return GuestExit::Memory {
            gpa,
            write,
            completed: false,
        };
    }
    let size = 1u8 << ((iss >> SAS_SHIFT) & 3);
    let register = ((iss >> SRT_SHIFT) & 0x1f) as u8;
    let access = if write {
        // Register 31 in a store is the zero register.
        let value = match register {
            31 => 0,
            r => state.x[usize::from(r)],
        };
        let mask = u64::MAX >> (64 - 8 * u32::from(size));
        MmioAccess::Write(value & mask)
    } else {
        MmioAccess::Read {
            register,
            sign_extend: iss & SSE != 0,
            wide: iss & SF != 0,
        }
    };
    GuestExit::Mmio { gpa, size, access }
}

/// A trapped MSR or MRS (exception class 0x18), from its syndrome (Arm ARM D24.2.41,
/// "ISS encoding for an exception from MSR, MRS, or System instruction execution").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemRegisterAccess {
    /// The register's encoding: op0, op1, CRn, CRm, op2.
    pub encoding: SystemRegister,
    /// The general-purpose register moved (31: the zero register).
    pub register: u8,
    /// MRS (a read into `register`) rather than MSR.
    pub read: bool,
}

/// A system register's encoding (op0, op1, CRn, CRm, op2), as in its `S<op0>_<op1>_C<n>_C<m>_<op2>` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemRegister(pub u8, pub u8, pub u8, pub u8, pub u8);

impl SystemRegister {
    /// ICC_SGI1R_EL1 (S3_0_C12_C11_5): a Group 1 SGI, which EL1 writes trap to EL2 when
    /// HCR_EL2.IMO is set (GICv3 architecture, IHI 0069, §12.2.21).
    pub const ICC_SGI1R_EL1: Self = Self(3, 0, 12, 11, 5);
    /// ICC_ASGI1R_EL1 and ICC_SGI0R_EL1: SGIs to the other Security state, Group 0.
    pub const ICC_ASGI1R_EL1: Self = Self(3, 0, 12, 11, 6);
    pub const ICC_SGI0R_EL1: Self = Self(3, 0, 12, 11, 7);
}

/// The access an exception of class [`class::SYSTEM_REGISTER`] reports in `esr`.
pub fn system_register(esr: u64) -> SystemRegisterAccess {
    let field = |shift: u32, bits: u32| ((esr >> shift) & ((1 << bits) - 1)) as u8;
    SystemRegisterAccess {
        encoding: SystemRegister(
            field(20, 2),
            field(14, 3),
            field(10, 4),
            field(1, 4),
            field(17, 3),
        ),
        register: field(5, 5),
        read: esr & 1 != 0,
    }
}

/// The value a load of `size` bytes leaves in its 64-bit register: extended per the
/// syndrome's SSE and SF bits (a 32-bit destination is zero-extended to 64).
pub fn loaded_value(value: u64, size: u8, sign_extend: bool, wide: bool) -> u64 {
    let bits = 8 * u32::from(size.clamp(1, 8));
    let value = value & (u64::MAX >> (64 - bits));
    let extended = if sign_extend && bits < 64 {
        (((value << (64 - bits)) as i64) >> (64 - bits)) as u64
    } else {
        value
    };
    if wide {
        extended
    } else {
        extended & 0xffff_ffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_icc_sgi1r_write_decodes_from_its_syndrome() {
        // EC 0x18, IL, then op0 3, op2 5, op1 0 (no bits), CRn 12, Rt 3, CRm 11, write.
        let esr = (0x18u64 << 26) | IL | (3 << 20) | (5 << 17) | (12 << 10) | (3 << 5) | (11 << 1);
        let access = system_register(esr);
        assert_eq!(access.encoding, SystemRegister::ICC_SGI1R_EL1);
        assert_eq!(access.register, 3);
        assert!(!access.read);
        assert!(system_register(esr | 1).read);
        // Every bit pattern decodes to something, without a panic.
        assert_eq!(system_register(u64::MAX).register, 31);
    }

    fn abort(iss: u64, hpfar: u64, far: u64) -> El2ExitState {
        El2ExitState {
            esr: (u64::from(class::DATA_ABORT) << 26) | IL | DFSC_TRANSLATION | iss,
            far,
            hpfar,
            pc: 0x4400_1000,
            ..Default::default()
        }
    }

    #[test]
    fn a_word_store_to_the_uart() {
        // str w3, [x1] to 0x0900_0000: ISV, SAS=2 (4 bytes), SRT=3, WnR.
        let mut state = abort(
            ISV | (2 << SAS_SHIFT) | (3 << SRT_SHIFT) | WNR,
            0x0009_0000,
            0,
        );
        state.x[3] = 0xdead_beef_0000_0041;
        let (exit, site) = decode(&state, 0).unwrap();
        assert_eq!(
            exit,
            GuestExit::Mmio {
                gpa: 0x0900_0000,
                size: 4,
                access: MmioAccess::Write(0x41)
            }
        );
        assert_eq!((site.rip, site.instruction_length), (0x4400_1000, 4));
    }

    #[test]
    fn loads_say_where_and_how_the_value_goes() {
        // ldrsh x5, [x0, #0x18]: SAS=1, SSE, SRT=5, SF; the IPA's page offset from FAR.
        let state = abort(
            ISV | (1 << SAS_SHIFT) | SSE | (5 << SRT_SHIFT) | SF,
            0x0009_0000,
            0x18,
        );
        assert_eq!(
            decode(&state, 0).unwrap().0,
            GuestExit::Mmio {
                gpa: 0x0900_0018,
                size: 2,
                access: MmioAccess::Read {
                    register: 5,
                    sign_extend: true,
                    wide: true
                }
            }
        );
        assert_eq!(loaded_value(0x8001, 2, true, true), 0xffff_ffff_ffff_8001);
        assert_eq!(loaded_value(0x8001, 2, true, false), 0xffff_8001);
        assert_eq!(loaded_value(0x1_2345_6789, 4, false, true), 0x2345_6789);
        assert_eq!(loaded_value(u64::MAX, 8, false, true), u64::MAX);
    }

    #[test]
    fn an_abort_without_a_syndrome_is_only_reported() {
        // stp x0, x1, [x2]: no ISV.
        let state = abort(WNR, 0x0040_0000, 0x10);
        assert_eq!(
            decode(&state, 0).unwrap().0,
            GuestExit::Memory {
                gpa: 0x4000_0010,
                write: true,
                completed: false
            }
        );
    }

    #[test]
    fn walks_permission_faults_and_cache_maintenance() {
        // The guest's own page walk faulted: not the access, only reported.
        let walk = abort(ISV | S1PTW | (2 << SAS_SHIFT), 0x0009_0000, 0);
        assert!(matches!(
            decode(&walk, 0).unwrap().0,
            GuestExit::Memory {
                completed: false,
                ..
            }
        ));
        // A permission fault (DFSC 0b001111) is not a hole in stage 2.
        let mut permission = abort(ISV | (2 << SAS_SHIFT), 0x0009_0000, 0);
        permission.esr = (permission.esr & !DFSC_MASK) | 0b00_1111;
        assert!(matches!(
            decode(&permission, 0).unwrap().0,
            GuestExit::Memory { .. }
        ));
        // dc civac on the UART: nothing to maintain.
        let maintenance = abort(CM | WNR, 0x0009_0000, 0);
        assert!(matches!(
            decode(&maintenance, 0).unwrap().0,
            GuestExit::Memory {
                completed: true,
                ..
            }
        ));
    }

    #[test]
    fn calls_and_waits() {
        let mut state = El2ExitState {
            esr: u64::from(class::HVC64) << 26 | IL,
            ..Default::default()
        };
        state.x[..4].copy_from_slice(&[0xc400_0003, 1, 0x4400_2000, 7]);
        assert_eq!(
            decode(&state, 0).unwrap().0,
            GuestExit::FirmwareCall {
                function: 0xc400_0003,
                args: [1, 0x4400_2000, 7]
            }
        );
        state.esr = u64::from(class::WFI_WFE) << 26 | IL;
        assert_eq!(decode(&state, 0).unwrap().0, GuestExit::Halt);
        state.esr = u64::from(class::SYSTEM_REGISTER) << 26 | IL;
        assert!(decode(&state, 0).is_none());
    }

    #[test]
    fn every_syndrome_decodes_without_panicking() {
        for ec in 0..64u64 {
            for iss in [
                0,
                ISV,
                ISV | (3 << SAS_SHIFT) | (31 << SRT_SHIFT),
                u64::MAX >> 39,
            ] {
                let state = El2ExitState {
                    esr: (ec << 26) | iss,
                    hpfar: u64::MAX,
                    far: u64::MAX,
                    ..Default::default()
                };
                let _ = decode(&state, 0);
            }
        }
        for size in 0..=9 {
            let _ = loaded_value(u64::MAX, size, true, false);
        }
    }
}

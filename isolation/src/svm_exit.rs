//! AMD-V #VMEXITs decoded into the platform-neutral [`GuestExit`] (AMD64 APM Vol. 2, §15.7
//! and Appendix C for the exit codes, §15.10.2 for IOIO's EXITINFO1, §15.25.6 for nested page
//! faults).
//!
//! The backend reads the VMCB once into an [`SvmExitState`]; everything here works on that
//! copy, so a guest cannot change what is decoded while it is decoded.

use crate::exit::{ExitSite, GuestExit, PortAccess, PortDirection, StringOp};
use crate::x86_insn::{self, CodeMode};

/// Exit codes (APM Vol. 2, Appendix C).
pub mod code {
    pub const EXCEPTION_BASE: u64 = 0x40;
    pub const INTR: u64 = 0x60;
    pub const NMI: u64 = 0x61;
    /// The interrupt window V_IRQ asked for is open.
    pub const VINTR: u64 = 0x64;
    pub const CPUID: u64 = 0x72;
    pub const INVD: u64 = 0x76;
    pub const HLT: u64 = 0x78;
    pub const INVLPGA: u64 = 0x7a;
    pub const IOIO: u64 = 0x7b;
    pub const MSR: u64 = 0x7c;
    pub const SHUTDOWN: u64 = 0x7f;
    pub const VMRUN: u64 = 0x80;
    pub const VMMCALL: u64 = 0x81;
    pub const VMLOAD: u64 = 0x82;
    pub const VMSAVE: u64 = 0x83;
    pub const STGI: u64 = 0x84;
    pub const CLGI: u64 = 0x85;
    pub const SKINIT: u64 = 0x86;
    pub const NPF: u64 = 0x400;
    /// VMRUN refused the VMCB's state (a consistency check failed).
    pub const INVALID: u64 = u64::MAX;
}

/// IOIO EXITINFO1 fields (APM Vol. 2, §15.10.2, Figure 15-2).
mod ioio {
    pub const TYPE_IN: u64 = 1 << 0;
    pub const STRING: u64 = 1 << 2;
    pub const REP: u64 = 1 << 3;
    pub const SIZE8: u64 = 1 << 4;
    pub const SIZE16: u64 = 1 << 5;
    pub const ADDRESS16: u64 = 1 << 7;
    pub const ADDRESS32: u64 = 1 << 8;
    pub const ADDRESS64: u64 = 1 << 9;
    pub const SEGMENT_SHIFT: u64 = 10;
    pub const PORT_SHIFT: u64 = 16;
}

/// Nested page fault EXITINFO1 bits: the access was a write; the fault hit the guest's own
/// page-table walk rather than the final access (APM Vol. 2, §15.25.6).
const NPF_WRITE: u64 = 1 << 1;
pub const NPF_IN_PAGE_WALK: u64 = 1 << 33;
/// RFLAGS.DF.
const RFLAGS_DF: u64 = 1 << 10;
/// Segment register numbers in the SDM's order, as IOIO's segment field uses them.
const SEGMENT_ES: usize = 0;
const SEGMENT_DS: usize = 3;
const SEGMENT_COUNT: usize = 6;

/// What the backend read from the VMCB (and its own register save) at the exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct SvmExitState {
    pub code: u64,
    pub info1: u64,
    pub info2: u64,
    pub rip: u64,
    pub rflags: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub cpl: u8,
    /// ES, CS, SS, DS, FS, GS bases: string I/O addresses are segment-relative.
    pub segment_bases: [u64; SEGMENT_COUNT],
    /// The code's mode (EFER.LMA and CS.L; else CS.D): in 64-bit mode bases other than
    /// FS/GS count as zero.
    pub mode: CodeMode,
    /// The exiting instruction's length when the backend knows it (NRIPS, or decoded from
    /// its bytes); 0 if not. IOIO exits carry their own.
    pub instruction_length: u8,
    /// The instruction's first bytes, as far as they could be fetched (`byte_count`): string
    /// I/O takes its segment and address size from their prefixes when the CPU (or an
    /// emulator such as QEMU TCG) leaves EXITINFO1's segment and address-size fields zero.
    pub bytes: [u8; 15],
    pub byte_count: u8,
    /// The host's CPUID answer for the leaf in EAX/ECX, for CPUID exits.
    pub cpuid: [u32; 4],
}

/// Decodes the exits a guest causes; `None` for exits that are the host's business (a
/// physical interrupt, an NMI) or that the backend answers itself (VMMCALL, exceptions).
pub fn decode(state: &SvmExitState, vp: u32) -> Option<(GuestExit, ExitSite)> {
    let site = ExitSite {
        vp,
        rip: state.rip,
        instruction_length: state.instruction_length,
        rax: state.rax,
        rflags: state.rflags,
        user_mode: state.cpl == 3,
        instruction_bytes: [0; 16],
    };
    let exit = match state.code {
        code::IOIO => {
            // EXITINFO2 holds the next RIP for IOIO even without NRIPS (APM §15.10.2).
            let length = u8::try_from(state.info2.wrapping_sub(state.rip))
                .ok()
                .filter(|length| (1..=15).contains(length))
                .unwrap_or(0);
            return Some((
                port(state),
                ExitSite {
                    instruction_length: length,
                    ..site
                },
            ));
        }
        code::MSR if state.info1 == 0 => GuestExit::MsrRead {
            msr: state.rcx as u32,
        },
        code::MSR => GuestExit::MsrWrite {
            msr: state.rcx as u32,
            value: (state.rdx << 32) | (state.rax & 0xffff_ffff),
        },
        code::CPUID => GuestExit::Cpuid {
            leaf: state.rax as u32,
            subleaf: state.rcx as u32,
            default: state.cpuid,
        },
        code::HLT => GuestExit::Halt,
        code::NPF => GuestExit::Memory {
            gpa: state.info2,
            write: state.info1 & NPF_WRITE != 0,
            completed: false,
        },
        code::SHUTDOWN | code::INVALID => GuestExit::Unrecoverable,
        _ => return None,
    };
    Some((exit, site))
}

/// An IOIO exit: port, size and direction from EXITINFO1, the string operand's address from
/// the segment it names and RSI (OUTS) or ES:RDI (INS) at the address size it names.
fn port(state: &SvmExitState) -> GuestExit {
    let info = state.info1;
    let size: u8 = if info & ioio::SIZE8 != 0 {
        1
    } else if info & ioio::SIZE16 != 0 {
        2
    } else {
        4
    };
    // Hardware sets exactly one address-size bit; none set means the reporter did not fill
    // the field (QEMU TCG), and the instruction's own prefixes tell.
    let reported = info & (ioio::ADDRESS16 | ioio::ADDRESS32 | ioio::ADDRESS64) != 0;
    let (override_segment, prefix_67) =
        x86_insn::prefixes(&state.bytes[..usize::from(state.byte_count).min(15)]);
    let mask = if reported {
        if info & ioio::ADDRESS16 != 0 {
            0xffff
        } else if info & ioio::ADDRESS32 != 0 {
            0xffff_ffff
        } else {
            u64::MAX
        }
    } else {
        match (state.mode, prefix_67) {
            (CodeMode::Bits64, false) => u64::MAX,
            (CodeMode::Bits64, true) | (CodeMode::Bits32, false) | (CodeMode::Bits16, true) => {
                0xffff_ffff
            }
            (CodeMode::Bits32, true) | (CodeMode::Bits16, false) => 0xffff,
        }
    };
    let is_in = info & ioio::TYPE_IN != 0;
    let string = (info & ioio::STRING != 0).then(|| {
        let (segment, index) = if is_in {
            (SEGMENT_ES, state.rdi)
        } else if reported {
            (((info >> ioio::SEGMENT_SHIFT) & 7) as usize, state.rsi)
        } else {
            (
                usize::from(override_segment.unwrap_or(SEGMENT_DS as u8)),
                state.rsi,
            )
        };
        // 64-bit code uses only FS's and GS's bases (SDM Vol. 3A §3.4.4); outside it the
        // linear address wraps at 4 GiB.
        let long_mode = state.mode == CodeMode::Bits64;
        let base = match segment {
            4 | 5 => state.segment_bases[segment],
            s if s < SEGMENT_COUNT && !long_mode => state.segment_bases[s],
            _ => 0,
        };
        let linear_mask = if long_mode { u64::MAX } else { 0xffff_ffff };
        StringOp {
            rep: info & ioio::REP != 0,
            count: state.rcx & mask,
            address: base.wrapping_add(index & mask) & linear_mask,
            down: state.rflags & RFLAGS_DF != 0,
            mask,
        }
    });
    let size_mask = (1u64 << (8 * u32::from(size))) - 1;
    let direction = if is_in {
        PortDirection::In
    } else {
        PortDirection::Out((state.rax & size_mask) as u32)
    };
    GuestExit::Port(PortAccess {
        port: (info >> ioio::PORT_SHIFT) as u16,
        size,
        direction,
        string,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ioio(info1: u64, rip: u64, next: u64) -> SvmExitState {
        SvmExitState {
            code: code::IOIO,
            info1,
            info2: next,
            rip,
            rax: 0x1122_3344_5566_7788,
            rcx: 3,
            rsi: 0x5000,
            rdi: 0x6000,
            mode: CodeMode::Bits64,
            ..Default::default()
        }
    }

    #[test]
    fn a_byte_out_to_com1() {
        // out dx, al with DX = 0x3f8: port 0x3f8, SZ8, A64, one byte long.
        let state = ioio((0x3f8 << 16) | ioio::SIZE8 | (1 << 9), 0x1000, 0x1001);
        let (exit, site) = decode(&state, 0).unwrap();
        assert_eq!(
            exit,
            GuestExit::Port(PortAccess {
                port: 0x3f8,
                size: 1,
                direction: PortDirection::Out(0x88),
                string: None
            })
        );
        assert_eq!((site.rip, site.instruction_length), (0x1000, 1));
    }

    #[test]
    fn string_forms_take_their_operand_from_the_named_segment() {
        // rep insb (ES:RDI) in 64-bit code: ES's base does not count.
        let mut state = ioio(
            (0x3fd << 16) | ioio::TYPE_IN | ioio::STRING | ioio::REP | ioio::SIZE8 | (1 << 9),
            0x1000,
            0x1002,
        );
        state.segment_bases = [0x100, 0, 0, 0, 0x7000_0000, 0];
        let (GuestExit::Port(access), site) = decode(&state, 0).unwrap() else {
            panic!("not a port exit");
        };
        assert_eq!(access.direction, PortDirection::In);
        let op = access.string.unwrap();
        assert_eq!(
            (op.rep, op.count, op.address, op.down),
            (true, 3, 0x6000, false)
        );
        assert_eq!(site.instruction_length, 2);
        // outsw with an FS override (segment 4) in 32-bit code: FS's base counts, RSI and
        // the count are 32 bits, the address wraps at 4 GiB.
        state.info1 = (0x3f8 << 16)
            | ioio::STRING
            | ioio::SIZE16
            | ioio::ADDRESS32
            | (4 << ioio::SEGMENT_SHIFT);
        state.mode = CodeMode::Bits32;
        state.rsi = 0xffff_ffff_9000_0000;
        state.rflags = RFLAGS_DF;
        let (GuestExit::Port(access), _) = decode(&state, 0).unwrap() else {
            panic!("not a port exit");
        };
        let op = access.string.unwrap();
        assert_eq!(access.size, 2);
        assert_eq!(op.address, (0x7000_0000u64 + 0x9000_0000) & 0xffff_ffff);
        assert!(op.down && !op.rep);
        assert_eq!(op.mask, 0xffff_ffff);
    }

    #[test]
    fn without_reported_fields_the_prefixes_say_segment_and_address_size() {
        // QEMU TCG leaves SEG and A16/A32/A64 zero: `fs outsb` in 64-bit code, then
        // `67 outsb` in 32-bit code.
        let mut state = ioio((0x3f8 << 16) | ioio::STRING | ioio::SIZE8, 0x1000, 0x1002);
        state.segment_bases = [0x100, 0, 0, 0x200, 0x7000_0000, 0];
        state.bytes[..2].copy_from_slice(&[0x64, 0x6e]);
        state.byte_count = 2;
        let (GuestExit::Port(access), _) = decode(&state, 0).unwrap() else {
            panic!("not a port exit");
        };
        let op = access.string.unwrap();
        assert_eq!((op.address, op.mask), (0x7000_0000 + 0x5000, u64::MAX));
        state.mode = CodeMode::Bits32;
        state.bytes[..2].copy_from_slice(&[0x67, 0x6e]);
        state.rsi = 0x1_0000_5000;
        let (GuestExit::Port(access), _) = decode(&state, 0).unwrap() else {
            panic!("not a port exit");
        };
        let op = access.string.unwrap();
        // DS by default, SI only (16-bit addressing).
        assert_eq!((op.address, op.mask), (0x200 + 0x5000, 0xffff));
    }

    #[test]
    fn a_next_rip_that_makes_no_sense_gives_no_length() {
        let state = ioio((0x80 << 16) | ioio::SIZE8, 0x1000, 0x0fff);
        assert_eq!(decode(&state, 0).unwrap().1.instruction_length, 0);
    }

    #[test]
    fn msr_cpuid_halt_and_nested_faults() {
        let msr = |info1| SvmExitState {
            code: code::MSR,
            info1,
            rcx: 0xffff_ffff_c000_0080,
            rax: 0xdead_beef_0000_0d01,
            rdx: 0x1,
            ..Default::default()
        };
        assert_eq!(
            decode(&msr(0), 0).unwrap().0,
            GuestExit::MsrRead { msr: 0xc000_0080 }
        );
        assert_eq!(
            decode(&msr(1), 0).unwrap().0,
            GuestExit::MsrWrite {
                msr: 0xc000_0080,
                value: 0x1_0000_0d01
            }
        );
        let cpuid = SvmExitState {
            code: code::CPUID,
            rax: 0x8000_0001,
            rcx: 0,
            cpuid: [1, 2, 3, 4],
            ..Default::default()
        };
        assert_eq!(
            decode(&cpuid, 0).unwrap().0,
            GuestExit::Cpuid {
                leaf: 0x8000_0001,
                subleaf: 0,
                default: [1, 2, 3, 4]
            }
        );
        let halt = SvmExitState {
            code: code::HLT,
            ..Default::default()
        };
        assert_eq!(decode(&halt, 0).unwrap().0, GuestExit::Halt);
        let npf = SvmExitState {
            code: code::NPF,
            info1: NPF_WRITE | 1,
            info2: 0x10_0000,
            ..Default::default()
        };
        assert_eq!(
            decode(&npf, 0).unwrap().0,
            GuestExit::Memory {
                gpa: 0x10_0000,
                write: true,
                completed: false
            }
        );
        for host_business in [
            code::INTR,
            code::NMI,
            code::VMMCALL,
            code::EXCEPTION_BASE + 6,
        ] {
            let state = SvmExitState {
                code: host_business,
                ..Default::default()
            };
            assert!(decode(&state, 0).is_none());
        }
        let invalid = SvmExitState {
            code: code::INVALID,
            ..Default::default()
        };
        assert_eq!(decode(&invalid, 0).unwrap().0, GuestExit::Unrecoverable);
    }
}

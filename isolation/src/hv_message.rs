//! Decoding the intercept messages Hyper-V's VTL interface delivers to VTL2 (SINT0 of the
//! SynIC message page; layouts in hvdef::message) into the platform-neutral `GuestExit`.
//!
//! The message page is guest-visible memory the hypervisor writes: the caller copies the
//! 256-byte slot once, and everything here reads only that copy.

use hvdef::intercept::AccessType;
use hvdef::message::{
    message_type, CpuidIntercept, HvMessage, InterceptHeader, IoPortIntercept, MemoryIntercept,
    MsrIntercept,
};

use crate::exit::{ExitSite, GuestExit, PortAccess, PortDirection, StringOp};
use crate::x86_insn::CodeMode;

/// RFLAGS.DF.
const RFLAGS_DF: u64 = 1 << 10;

fn site(h: &InterceptHeader, rax: u64, bytes: Option<([u8; 16], u8)>) -> ExitSite {
    let (instruction_bytes, _) = bytes.unwrap_or(([0; 16], 0));
    ExitSite {
        vp: h.vp_index,
        rip: h.rip,
        instruction_length: h.instruction_length,
        rax,
        rflags: h.rflags,
        user_mode: h.execution_state & 3 == 3,
        instruction_bytes,
    }
}

/// EFER.LMA in the execution state, and the L and D/B bits of a segment's attributes.
const EXECUTION_STATE_LMA: u16 = 1 << 4;
const SEGMENT_L: u16 = 1 << 13;
const SEGMENT_DB: u16 = 1 << 14;

fn long_mode(h: &InterceptHeader) -> bool {
    h.execution_state & EXECUTION_STATE_LMA != 0 && h.cs.attributes & SEGMENT_L != 0
}

/// The base `segment` adds and the mask on RSI/RDI/RCX, by the code's mode and default
/// address size (no 0x67 override is known here): 64-bit mode uses no DS/ES base (Intel SDM
/// Vol. 1 §3.4.2.1); 32- and 16-bit code use the low 32 or 16 bits.
fn addressing(h: &InterceptHeader, segment: &hvdef::registers::SegmentRegister) -> (u64, u64) {
    if long_mode(h) {
        (0, u64::MAX)
    } else if h.cs.attributes & SEGMENT_DB != 0 {
        (segment.base, 0xffff_ffff)
    } else {
        (segment.base, 0xffff)
    }
}

/// The code an intercepted instruction runs in, from its message's header: the decoder's
/// mode (CS.L under EFER.LMA, else CS.D/B) and CS's base (none in 64-bit mode), for fetching
/// the instruction behind a memory access. `None` for a message with no intercept header.
pub fn code(message: &HvMessage) -> Option<(CodeMode, u64)> {
    let h = InterceptHeader::parse(message.payload())?;
    Some(if long_mode(&h) {
        (CodeMode::Bits64, 0)
    } else if h.cs.attributes & SEGMENT_DB != 0 {
        (CodeMode::Bits32, h.cs.base)
    } else {
        (CodeMode::Bits16, h.cs.base)
    })
}

/// Linear addresses outside 64-bit mode wrap at 4 GiB.
fn linear_mask(h: &InterceptHeader) -> u64 {
    if long_mode(h) {
        u64::MAX
    } else {
        0xffff_ffff
    }
}

/// The exit a message reports, and where; `None` for a message that is malformed (a wrong
/// size, an access size other than 1, 2 or 4). `Call` and `Unrecoverable` have no site
/// in their message, so a default one comes back.
pub fn decode(message: &HvMessage) -> Option<(GuestExit, ExitSite)> {
    let payload = message.payload();
    match message.message_type() {
        message_type::X64_IO_PORT_INTERCEPT => {
            let m = IoPortIntercept::parse(payload)?;
            let direction = match m.header.access_type {
                AccessType::Read => PortDirection::In,
                AccessType::Write => PortDirection::Out(m.rax as u32),
                AccessType::Execute => return None,
            };
            let down = m.header.rflags & RFLAGS_DF != 0;
            let (segment, offset) = match direction {
                PortDirection::In => (m.es, m.rdi),
                PortDirection::Out(_) => (m.ds, m.rsi),
            };
            let string = m.string_op.then(|| {
                let (base, mask) = addressing(&m.header, &segment);
                StringOp {
                    rep: m.rep_prefix,
                    count: m.rcx & mask,
                    address: base.wrapping_add(offset & mask) & linear_mask(&m.header),
                    down,
                    mask,
                }
            });
            let access = PortAccess {
                port: m.port,
                size: m.access_size,
                direction,
                string,
            };
            Some((
                GuestExit::Port(access),
                site(
                    &m.header,
                    m.rax,
                    Some((m.instruction_bytes, m.instruction_byte_count)),
                ),
            ))
        }
        message_type::X64_MSR_INTERCEPT => {
            let m = MsrIntercept::parse(payload)?;
            let exit = match m.header.access_type {
                AccessType::Read => GuestExit::MsrRead { msr: m.msr },
                AccessType::Write => GuestExit::MsrWrite {
                    msr: m.msr,
                    value: (m.rdx << 32) | (m.rax & 0xffff_ffff),
                },
                AccessType::Execute => return None,
            };
            Some((exit, site(&m.header, m.rax, None)))
        }
        message_type::X64_CPUID_INTERCEPT => {
            let m = CpuidIntercept::parse(payload)?;
            let [eax, ecx, edx, ebx] = m.default_result.map(|v| v as u32);
            let exit = GuestExit::Cpuid {
                leaf: m.rax as u32,
                subleaf: m.rcx as u32,
                default: [eax, ebx, ecx, edx],
            };
            Some((exit, site(&m.header, m.rax, None)))
        }
        message_type::GPA_INTERCEPT | message_type::UNMAPPED_GPA => {
            let m = MemoryIntercept::parse(payload)?;
            let exit = GuestExit::Memory {
                gpa: m.gpa,
                write: match m.header.access_type {
                    AccessType::Write => true,
                    AccessType::Read | AccessType::Execute => false,
                },
                completed: m.is_completed_notice(),
            };
            let bytes = (m.instruction_bytes, m.instruction_byte_count);
            Some((exit, site(&m.header, 0, Some(bytes))))
        }
        message_type::UNRECOVERABLE_EXCEPTION => {
            Some((GuestExit::Unrecoverable, ExitSite::default()))
        }
        kind => Some((GuestExit::Unknown { kind }, ExitSite::default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvdef::registers::SegmentRegister;

    fn header(access_type: AccessType) -> InterceptHeader {
        InterceptHeader {
            vp_index: 0,
            instruction_length: 2,
            access_type,
            execution_state: 0x10,
            cs: SegmentRegister::default(),
            rip: 0x1_0040,
            rflags: 0x2 | RFLAGS_DF,
        }
    }

    #[test]
    fn port_messages_become_port_exits_with_their_string_side() {
        let m = IoPortIntercept {
            header: header(AccessType::Read),
            port: 0x3f8,
            access_size: 1,
            string_op: true,
            rep_prefix: true,
            instruction_byte_count: 2,
            rax: 0xaa,
            instruction_bytes: [0xf3, 0x6c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ds: SegmentRegister::default(),
            es: SegmentRegister {
                base: 0x1000,
                ..Default::default()
            },
            rcx: 5,
            rsi: 0x10,
            rdi: 0x20,
        };
        let (exit, site) = decode(&m.to_message()).unwrap();
        let GuestExit::Port(access) = exit else {
            panic!("{exit:?}")
        };
        assert_eq!(access.direction, PortDirection::In);
        assert_eq!(
            access.string,
            Some(StringOp {
                rep: true,
                count: 5,
                address: 0x1020,
                down: true,
                mask: 0xffff,
            })
        );
        assert_eq!(
            (site.rip, site.instruction_length, site.rax),
            (0x1_0040, 2, 0xaa)
        );
        let out = IoPortIntercept {
            header: header(AccessType::Write),
            string_op: false,
            ..m
        };
        let (exit, _) = decode(&out.to_message()).unwrap();
        assert!(matches!(
            exit,
            GuestExit::Port(PortAccess {
                direction: PortDirection::Out(0xaa),
                string: None,
                ..
            })
        ));
    }

    #[test]
    fn string_addresses_follow_the_code_mode() {
        let long = InterceptHeader {
            cs: SegmentRegister {
                attributes: 0xa09b,
                ..Default::default()
            },
            ..header(AccessType::Read)
        };
        let m = IoPortIntercept {
            header: long,
            port: 0x3f8,
            access_size: 1,
            string_op: true,
            rep_prefix: true,
            instruction_byte_count: 2,
            rax: 0,
            instruction_bytes: [0; 16],
            ds: SegmentRegister::default(),
            es: SegmentRegister {
                base: 0x1000,
                ..Default::default()
            },
            rcx: 0x1_0000_0003,
            rsi: 0,
            rdi: 0x1_2345_6789,
        };
        let address = |m: IoPortIntercept| match decode(&m.to_message()).unwrap().0 {
            GuestExit::Port(PortAccess {
                string: Some(op), ..
            }) => (op.address, op.count),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            address(m),
            (0x1_2345_6789, 0x1_0000_0003),
            "64-bit: no ES base"
        );
        let protected32 = InterceptHeader {
            execution_state: 0,
            cs: SegmentRegister {
                attributes: 0xc09b,
                ..Default::default()
            },
            ..long
        };
        assert_eq!(
            address(IoPortIntercept {
                header: protected32,
                ..m
            }),
            (0x2345_7789, 3),
            "32-bit: ES base, EDI and ECX"
        );
    }

    #[test]
    fn msr_and_cpuid_messages_decode() {
        let w = MsrIntercept {
            header: header(AccessType::Write),
            msr: 0x4000_0000,
            rdx: 0x1234,
            rax: 0xffff_ffff_5678_9abc,
        };
        assert_eq!(
            decode(&w.to_message()).unwrap().0,
            GuestExit::MsrWrite {
                msr: 0x4000_0000,
                value: 0x1234_5678_9abc
            }
        );
        let c = CpuidIntercept {
            header: header(AccessType::Read),
            rax: 1,
            rcx: 0,
            rdx: 0,
            rbx: 0,
            default_result: [10, 30, 40, 20],
        };
        assert_eq!(
            decode(&c.to_message()).unwrap().0,
            GuestExit::Cpuid {
                leaf: 1,
                subleaf: 0,
                default: [10, 20, 30, 40]
            }
        );
    }

    #[test]
    fn memory_notices_decode_as_completed() {
        let m = MemoryIntercept {
            header: InterceptHeader {
                instruction_length: 0,
                ..header(AccessType::Write)
            },
            cache_type: 0,
            instruction_byte_count: 0,
            access_info: 0,
            gva: 0,
            gpa: 0x10_0000,
            instruction_bytes: [0; 16],
        };
        let (exit, _) = decode(&m.to_message(message_type::GPA_INTERCEPT)).unwrap();
        assert_eq!(
            exit,
            GuestExit::Memory {
                gpa: 0x10_0000,
                write: true,
                completed: true
            }
        );
        let to_emulate = MemoryIntercept {
            instruction_byte_count: 3,
            header: header(AccessType::Read),
            ..m
        };
        let (exit, _) = decode(&to_emulate.to_message(message_type::UNMAPPED_GPA)).unwrap();
        assert!(matches!(
            exit,
            GuestExit::Memory {
                completed: false,
                write: false,
                ..
            }
        ));
    }

    #[test]
    fn hostile_messages_decode_to_none_or_unknown() {
        let short = HvMessage::new(message_type::X64_IO_PORT_INTERCEPT, &[0; 20]);
        assert_eq!(decode(&short), None);
        let mut odd_size = HvMessage::new(message_type::X64_IO_PORT_INTERCEPT, &[0; 128]);
        odd_size.0[16 + 42] = 3; // access size 3
        assert_eq!(decode(&odd_size), None);
        let junk = HvMessage::new(0x1234, &[0xff; 240]);
        assert_eq!(
            decode(&junk).unwrap().0,
            GuestExit::Unknown { kind: 0x1234 }
        );
    }
}

//! SynIC messages (TLFS §11.10; web: datatypes/hv_message) and the x64 intercept messages a
//! lower VTL's exits become (TLFS §13.2, v2.0 §16; layouts as Hyper-V delivers them).
//!
//! The message page holds 16 slots of 256 bytes, one per SINT; intercepts arrive in SINT0.

use crate::bytes::{put, u16_at, u32_at, u64_at, u8_at};
use crate::intercept::AccessType;
use crate::registers::SegmentRegister;

pub const MESSAGE_SIZE: usize = 256;
pub const HEADER_SIZE: usize = 16;
pub const PAYLOAD_SIZE: usize = MESSAGE_SIZE - HEADER_SIZE;
/// The SINT intercept messages are delivered to.
pub const INTERCEPT_SINT: usize = 0;
/// MessageFlags bit 0: another message is queued behind this one (write EOM after freeing).
pub const FLAG_MESSAGE_PENDING: u8 = 1 << 0;

/// `HV_MESSAGE_TYPE` values.
pub mod message_type {
    pub const NONE: u32 = 0x0000_0000;
    pub const UNMAPPED_GPA: u32 = 0x8000_0000;
    pub const GPA_INTERCEPT: u32 = 0x8000_0001;
    pub const UNRECOVERABLE_EXCEPTION: u32 = 0x8000_0021;
    pub const X64_IO_PORT_INTERCEPT: u32 = 0x8001_0000;
    pub const X64_MSR_INTERCEPT: u32 = 0x8001_0001;
    pub const X64_CPUID_INTERCEPT: u32 = 0x8001_0002;
    pub const EXCEPTION_INTERCEPT: u32 = 0x8001_0003;
    pub const X64_HALT: u32 = 0x8001_0007;
}

/// One 256-byte message slot.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HvMessage(pub [u8; MESSAGE_SIZE]);

impl core::fmt::Debug for HvMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "HvMessage {{ type: {:#x}, payload: {} bytes }}",
            self.message_type(),
            self.payload_size()
        )
    }
}

impl HvMessage {
    /// A message of `message_type` whose payload is `payload` (at most 240 bytes; longer is
    /// cut).
    pub fn new(message_type: u32, payload: &[u8]) -> Self {
        let mut b = [0u8; MESSAGE_SIZE];
        let n = payload.len().min(PAYLOAD_SIZE);
        b[0..4].copy_from_slice(&message_type.to_le_bytes());
        b[4] = n as u8;
        b[HEADER_SIZE..HEADER_SIZE + n].copy_from_slice(&payload[..n]);
        Self(b)
    }

    pub fn message_type(&self) -> u32 {
        u32_at(&self.0, 0).unwrap_or(0)
    }

    /// Payload bytes the header claims, capped at the slot's 240.
    pub fn payload_size(&self) -> usize {
        usize::from(self.0[4]).min(PAYLOAD_SIZE)
    }

    pub fn flags(&self) -> u8 {
        self.0[5]
    }

    pub fn payload(&self) -> &[u8] {
        &self.0[HEADER_SIZE..HEADER_SIZE + self.payload_size()]
    }
}

/// `HV_X64_INTERCEPT_MESSAGE_HEADER` (40 bytes at the start of every intercept payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterceptHeader {
    pub vp_index: u32,
    /// Bytes of the intercepted instruction (0 if unknown).
    pub instruction_length: u8,
    pub access_type: AccessType,
    /// 1:0 CPL, 2 CR0.PE, 3 CR0.AM, 4 EFER.LMA, 5 debug active, 6 interruption pending,
    /// 10:7 VTL.
    pub execution_state: u16,
    pub cs: SegmentRegister,
    pub rip: u64,
    pub rflags: u64,
}

impl InterceptHeader {
    pub const SIZE: usize = 40;

    pub fn write(&self, p: &mut [u8]) -> bool {
        p.len() >= Self::SIZE
            && put(p, 0, &self.vp_index.to_le_bytes())
            && put(
                p,
                4,
                &[self.instruction_length & 0xf, self.access_type as u8],
            )
            && put(p, 6, &self.execution_state.to_le_bytes())
            && put(p, 8, &self.cs.to_bytes())
            && put(p, 24, &self.rip.to_le_bytes())
            && put(p, 32, &self.rflags.to_le_bytes())
    }

    pub fn parse(p: &[u8]) -> Option<Self> {
        let access_type = match u8_at(p, 5)? {
            0 => AccessType::Read,
            1 => AccessType::Write,
            2 => AccessType::Execute,
            _ => return None,
        };
        Some(Self {
            vp_index: u32_at(p, 0)?,
            instruction_length: u8_at(p, 4)? & 0xf,
            access_type,
            execution_state: u16_at(p, 6)?,
            cs: SegmentRegister::parse(p.get(8..24)?)?,
            rip: u64_at(p, 24)?,
            rflags: u64_at(p, 32)?,
        })
    }
}

/// `HV_X64_IO_PORT_INTERCEPT_MESSAGE` (128 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoPortIntercept {
    pub header: InterceptHeader,
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub access_size: u8,
    pub string_op: bool,
    pub rep_prefix: bool,
    /// For string operations only.
    pub instruction_byte_count: u8,
    /// The value written (OUT); for IN, the register the result merges into.
    pub rax: u64,
    pub instruction_bytes: [u8; 16],
    pub ds: SegmentRegister,
    pub es: SegmentRegister,
    pub rcx: u64,
    pub rsi: u64,
    pub rdi: u64,
}

impl IoPortIntercept {
    pub const SIZE: usize = 128;

    pub fn to_message(&self) -> HvMessage {
        let mut p = [0u8; Self::SIZE];
        self.header.write(&mut p);
        let info = (self.access_size & 0x7)
            | (u8::from(self.string_op) << 3)
            | (u8::from(self.rep_prefix) << 4);
        put(&mut p, 40, &self.port.to_le_bytes());
        put(&mut p, 42, &[info, self.instruction_byte_count]);
        put(&mut p, 48, &self.rax.to_le_bytes());
        put(&mut p, 56, &self.instruction_bytes);
        put(&mut p, 72, &self.ds.to_bytes());
        put(&mut p, 88, &self.es.to_bytes());
        put(&mut p, 104, &self.rcx.to_le_bytes());
        put(&mut p, 112, &self.rsi.to_le_bytes());
        put(&mut p, 120, &self.rdi.to_le_bytes());
        HvMessage::new(message_type::X64_IO_PORT_INTERCEPT, &p)
    }

    /// Decodes a payload; `None` if short or if the access size is not 1, 2 or 4.
    pub fn parse(p: &[u8]) -> Option<Self> {
        let info = u8_at(p, 42)?;
        let access_size = info & 0x7;
        if !matches!(access_size, 1 | 2 | 4) {
            return None;
        }
        Some(Self {
            header: InterceptHeader::parse(p)?,
            port: u16_at(p, 40)?,
            access_size,
            string_op: info & (1 << 3) != 0,
            rep_prefix: info & (1 << 4) != 0,
            instruction_byte_count: u8_at(p, 43)?,
            rax: u64_at(p, 48)?,
            instruction_bytes: p.get(56..72)?.try_into().ok()?,
            ds: SegmentRegister::parse(p.get(72..88)?)?,
            es: SegmentRegister::parse(p.get(88..104)?)?,
            rcx: u64_at(p, 104)?,
            rsi: u64_at(p, 112)?,
            rdi: u64_at(p, 120)?,
        })
    }
}

/// `HV_X64_MSR_INTERCEPT_MESSAGE` (64 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrIntercept {
    pub header: InterceptHeader,
    pub msr: u32,
    pub rdx: u64,
    pub rax: u64,
}

impl MsrIntercept {
    pub const SIZE: usize = 64;

    pub fn to_message(&self) -> HvMessage {
        let mut p = [0u8; Self::SIZE];
        self.header.write(&mut p);
        put(&mut p, 40, &self.msr.to_le_bytes());
        put(&mut p, 48, &self.rdx.to_le_bytes());
        put(&mut p, 56, &self.rax.to_le_bytes());
        HvMessage::new(message_type::X64_MSR_INTERCEPT, &p)
    }

    pub fn parse(p: &[u8]) -> Option<Self> {
        Some(Self {
            header: InterceptHeader::parse(p)?,
            msr: u32_at(p, 40)?,
            rdx: u64_at(p, 48)?,
            rax: u64_at(p, 56)?,
        })
    }
}

/// `HV_X64_MEMORY_INTERCEPT_MESSAGE` (80 bytes), sent as GPA_INTERCEPT (the access breaks a
/// VTL protection) or UNMAPPED_GPA (nothing is there).
///
/// Hyper-V stops the lower VTL before the instruction, for the higher VTL to emulate.
/// vmm-lite cannot (KVM finishes memory writes before it exits) and sends a notice instead:
/// the access already completed as on an empty bus, RIP past it, and an instruction length
/// of 0 to say so ([`MemoryIntercept::is_completed_notice`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryIntercept {
    pub header: InterceptHeader,
    pub cache_type: u32,
    pub instruction_byte_count: u8,
    /// 0 GVA valid, 1 GVA-to-GPA translation valid.
    pub access_info: u8,
    pub gva: u64,
    pub gpa: u64,
    pub instruction_bytes: [u8; 16],
}

impl MemoryIntercept {
    pub const SIZE: usize = 80;

    /// Whether the host already completed the access (vmm-lite's notice form).
    pub fn is_completed_notice(&self) -> bool {
        self.header.instruction_length == 0 && self.instruction_byte_count == 0
    }

    pub fn to_message(&self, message_type: u32) -> HvMessage {
        let mut p = [0u8; Self::SIZE];
        self.header.write(&mut p);
        put(&mut p, 40, &self.cache_type.to_le_bytes());
        put(&mut p, 44, &[self.instruction_byte_count, self.access_info]);
        put(&mut p, 48, &self.gva.to_le_bytes());
        put(&mut p, 56, &self.gpa.to_le_bytes());
        put(&mut p, 64, &self.instruction_bytes);
        HvMessage::new(message_type, &p)
    }

    pub fn parse(p: &[u8]) -> Option<Self> {
        Some(Self {
            header: InterceptHeader::parse(p)?,
            cache_type: u32_at(p, 40)?,
            instruction_byte_count: u8_at(p, 44)?,
            access_info: u8_at(p, 45)?,
            gva: u64_at(p, 48)?,
            gpa: u64_at(p, 56)?,
            instruction_bytes: p.get(64..80)?.try_into().ok()?,
        })
    }
}

/// `HV_X64_CPUID_INTERCEPT_MESSAGE` (104 bytes): the leaf asked for and what the hypervisor
/// would have answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidIntercept {
    pub header: InterceptHeader,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    /// Default results: EAX, ECX, EDX, EBX in that order, as the spec lays them out.
    pub default_result: [u64; 4],
}

impl CpuidIntercept {
    pub const SIZE: usize = 104;

    pub fn to_message(&self) -> HvMessage {
        let mut p = [0u8; Self::SIZE];
        self.header.write(&mut p);
        for (i, v) in [self.rax, self.rcx, self.rdx, self.rbx]
            .iter()
            .chain(&self.default_result)
            .enumerate()
        {
            put(&mut p, 40 + 8 * i, &v.to_le_bytes());
        }
        HvMessage::new(message_type::X64_CPUID_INTERCEPT, &p)
    }

    pub fn parse(p: &[u8]) -> Option<Self> {
        let q = |i: usize| u64_at(p, 40 + 8 * i);
        Some(Self {
            header: InterceptHeader::parse(p)?,
            rax: q(0)?,
            rcx: q(1)?,
            rdx: q(2)?,
            rbx: q(3)?,
            default_result: [q(4)?, q(5)?, q(6)?, q(7)?],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> InterceptHeader {
        InterceptHeader {
            vp_index: 1,
            instruction_length: 2,
            access_type: AccessType::Write,
            execution_state: 0x10,
            cs: SegmentRegister {
                base: 0,
                limit: 0xffff_ffff,
                selector: 8,
                attributes: 0xa09b,
            },
            rip: 0x10_0040,
            rflags: 0x202,
        }
    }

    #[test]
    fn io_port_intercepts_land_at_the_spec_offsets_and_round_trip() {
        let m = IoPortIntercept {
            header: header(),
            port: 0x3f8,
            access_size: 1,
            string_op: true,
            rep_prefix: true,
            instruction_byte_count: 2,
            rax: 0x41,
            instruction_bytes: [0xf3, 0x6e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ds: SegmentRegister::default(),
            es: SegmentRegister::default(),
            rcx: 5,
            rsi: 0x2000,
            rdi: 0,
        }
        .to_message();
        assert_eq!(m.message_type(), 0x8001_0000);
        assert_eq!(m.payload_size(), 128);
        // Within the 256-byte message: port at 16 + 40, access info at 16 + 42, RAX at 16 + 48.
        assert_eq!(&m.0[56..58], &[0xf8, 0x03]);
        assert_eq!(m.0[58], 1 | 1 << 3 | 1 << 4);
        assert_eq!(m.0[64], 0x41);
        assert_eq!(m.0[16 + 5], 1, "access type: write");
        let back = IoPortIntercept::parse(m.payload()).unwrap();
        assert_eq!(
            (back.port, back.rcx, back.rsi, back.header),
            (0x3f8, 5, 0x2000, header())
        );
    }

    #[test]
    fn msr_and_cpuid_intercepts_round_trip() {
        let msr = MsrIntercept {
            header: header(),
            msr: 0x4000_0001,
            rdx: 0,
            rax: 0x1001,
        };
        assert_eq!(MsrIntercept::parse(msr.to_message().payload()), Some(msr));
        let cpuid = CpuidIntercept {
            header: header(),
            rax: 0x4000_0000,
            rcx: 0,
            rdx: 0,
            rbx: 0,
            default_result: [1, 2, 3, 4],
        };
        let m = cpuid.to_message();
        assert_eq!(m.payload_size(), 104);
        assert_eq!(CpuidIntercept::parse(m.payload()), Some(cpuid));
    }

    #[test]
    fn memory_intercepts_put_the_gpa_at_the_spec_offset_and_round_trip() {
        let m = MemoryIntercept {
            header: header(),
            cache_type: 6,
            instruction_byte_count: 0,
            access_info: 0,
            gva: 0,
            gpa: 0x10_0000,
            instruction_bytes: [0; 16],
        };
        let message = m.to_message(message_type::GPA_INTERCEPT);
        assert_eq!(message.payload_size(), 80);
        assert_eq!(&message.0[16 + 56..16 + 64], &0x10_0000u64.to_le_bytes());
        assert_eq!(MemoryIntercept::parse(message.payload()), Some(m));
    }

    #[test]
    fn hostile_messages_parse_to_none_not_panics() {
        let mut m = HvMessage::new(message_type::X64_IO_PORT_INTERCEPT, &[0xff; 240]);
        assert_eq!(
            IoPortIntercept::parse(m.payload()),
            None,
            "access type 0xff is not one"
        );
        m.0[4] = 255; // payload size beyond the slot
        assert_eq!(m.payload().len(), 240);
        assert_eq!(MsrIntercept::parse(&[0; 10]), None);
        assert_eq!(InterceptHeader::parse(&[]), None);
    }
}

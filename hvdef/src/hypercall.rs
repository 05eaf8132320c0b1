//! The hypercall ABI (TLFS §3; TLFS web: hypercall-interface) and the input layouts of the
//! calls a VTL2 paravisor makes (TLFS §15 and the web pages of each call).
//!
//! x64 registers: RCX control word, RDX input page GPA (or first input qword when fast),
//! R8 output page GPA (or second input qword), RAX result.

use crate::bytes::{u32_at, u64_at, u8_at};
use crate::registers::{SegmentRegister, TableRegister};
use crate::status::HvStatus;
use crate::vtl::{InputVtl, Vtl};

/// Hypercall codes (TLFS appendix A).
pub mod code {
    pub const MODIFY_VTL_PROTECTION_MASK: u16 = 0x000c;
    pub const ENABLE_PARTITION_VTL: u16 = 0x000d;
    pub const ENABLE_VP_VTL: u16 = 0x000f;
    pub const VTL_CALL: u16 = 0x0011;
    pub const VTL_RETURN: u16 = 0x0012;
    pub const INSTALL_INTERCEPT: u16 = 0x004d;
    pub const GET_VP_REGISTERS: u16 = 0x0050;
    pub const SET_VP_REGISTERS: u16 = 0x0051;
    pub const POST_MESSAGE: u16 = 0x005c;
    pub const SIGNAL_EVENT: u16 = 0x005d;
    pub const ASSERT_VIRTUAL_INTERRUPT: u16 = 0x0094;
    pub const START_VIRTUAL_PROCESSOR: u16 = 0x0099;
}

/// "This partition" in a PartitionId field.
pub const PARTITION_SELF: u64 = u64::MAX;
/// "The calling VP" in a VpIndex field.
pub const VP_INDEX_SELF: u32 = 0xffff_fffe;
/// Most repetitions one call may ask for.
pub const MAX_REP_COUNT: u16 = 0xfff;

/// The hypercall input control word (TLFS §3.7): 15:0 call code, 16 fast, 26:17 variable
/// header size in qwords, 31 nested, 43:32 rep count, 59:48 rep start index; the rest RsvdZ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control(pub u64);

impl Control {
    const RESERVED: u64 = (0xf << 27) | (0xf << 44) | (0xf << 60);

    pub fn new(code: u16) -> Self {
        Self(u64::from(code))
    }

    pub fn with_fast(self, fast: bool) -> Self {
        Self((self.0 & !(1 << 16)) | (u64::from(fast) << 16))
    }

    pub fn with_rep_count(self, count: u16) -> Self {
        Self((self.0 & !(0xfff << 32)) | (u64::from(count & 0xfff) << 32))
    }

    pub fn with_rep_start(self, start: u16) -> Self {
        Self((self.0 & !(0xfff << 48)) | (u64::from(start & 0xfff) << 48))
    }

    pub fn code(self) -> u16 {
        self.0 as u16
    }

    pub fn fast(self) -> bool {
        self.0 & (1 << 16) != 0
    }

    pub fn variable_header_qwords(self) -> u16 {
        ((self.0 >> 17) & 0x3ff) as u16
    }

    pub fn nested(self) -> bool {
        self.0 & (1 << 31) != 0
    }

    pub fn rep_count(self) -> u16 {
        ((self.0 >> 32) & 0xfff) as u16
    }

    pub fn rep_start(self) -> u16 {
        ((self.0 >> 48) & 0xfff) as u16
    }

    /// Checks the encoding for a call that is `rep` or simple: reserved bits clear, reps only
    /// on rep calls, start before count (TLFS §3.7: otherwise INVALID_HYPERCALL_INPUT).
    pub fn check(self, rep: bool) -> Result<(), HvStatus> {
        let reps_ok = if rep {
            self.rep_count() > 0 && self.rep_start() < self.rep_count()
        } else {
            self.rep_count() == 0 && self.rep_start() == 0
        };
        if self.0 & Self::RESERVED != 0 || !reps_ok || self.nested() {
            return Err(HvStatus::INVALID_HYPERCALL_INPUT);
        }
        Ok(())
    }
}

/// The result value in RAX (TLFS §3.8): 15:0 status, 43:32 reps completed.
pub fn result(status: HvStatus, reps_completed: u16) -> u64 {
    u64::from(status.0) | (u64::from(reps_completed & 0xfff) << 32)
}

/// Splits a result value into (status, reps completed).
pub fn parse_result(value: u64) -> (HvStatus, u16) {
    (HvStatus(value as u16), ((value >> 32) & 0xfff) as u16)
}

/// HvCallEnablePartitionVtl input (16 bytes): PartitionId u64, TargetVtl u8, Flags u8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnablePartitionVtl {
    pub partition_id: u64,
    pub target_vtl: Vtl,
    pub flags: u8,
}

impl EnablePartitionVtl {
    pub const SIZE: usize = 16;

    pub fn parse(input: &[u8]) -> Result<Self, HvStatus> {
        let bad = HvStatus::INVALID_PARAMETER;
        let target_vtl = Vtl::new(u8_at(input, 8).ok_or(bad)?).ok_or(bad)?;
        Ok(Self {
            partition_id: u64_at(input, 0).ok_or(bad)?,
            target_vtl,
            flags: u8_at(input, 9).ok_or(bad)?,
        })
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.partition_id.to_le_bytes());
        (b[8], b[9]) = (self.target_vtl as u8, self.flags);
        b
    }
}

impl InstallIntercept {
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.partition_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.access_type.to_le_bytes());
        b[12..16].copy_from_slice(&self.intercept_type.to_le_bytes());
        b[16..24].copy_from_slice(&self.parameters.to_le_bytes());
        b
    }
}

/// `HV_INITIAL_VP_CONTEXT` for x64 (TLFS §7.10; 224 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct InitialVpContext {
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub cs: SegmentRegister,
    pub ds: SegmentRegister,
    pub es: SegmentRegister,
    pub fs: SegmentRegister,
    pub gs: SegmentRegister,
    pub ss: SegmentRegister,
    pub tr: SegmentRegister,
    pub ldtr: SegmentRegister,
    pub idtr: TableRegister,
    pub gdtr: TableRegister,
    pub efer: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub pat: u64,
}

impl InitialVpContext {
    pub const SIZE: usize = 224;

    pub fn parse(b: &[u8]) -> Option<Self> {
        let seg = |at: usize| SegmentRegister::parse(b.get(at..at + 16)?);
        let table = |at: usize| TableRegister::parse(b.get(at..at + 16)?);
        Some(Self {
            rip: u64_at(b, 0)?,
            rsp: u64_at(b, 8)?,
            rflags: u64_at(b, 16)?,
            cs: seg(24)?,
            ds: seg(40)?,
            es: seg(56)?,
            fs: seg(72)?,
            gs: seg(88)?,
            ss: seg(104)?,
            tr: seg(120)?,
            ldtr: seg(136)?,
            idtr: table(152)?,
            gdtr: table(168)?,
            efer: u64_at(b, 184)?,
            cr0: u64_at(b, 192)?,
            cr3: u64_at(b, 200)?,
            cr4: u64_at(b, 208)?,
            pat: u64_at(b, 216)?,
        })
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &self.rip.to_le_bytes());
        put(8, &self.rsp.to_le_bytes());
        put(16, &self.rflags.to_le_bytes());
        let segments = [
            self.cs, self.ds, self.es, self.fs, self.gs, self.ss, self.tr, self.ldtr,
        ];
        for (i, s) in segments.iter().enumerate() {
            put(24 + 16 * i, &s.to_bytes());
        }
        put(152, &self.idtr.to_bytes());
        put(168, &self.gdtr.to_bytes());
        for (at, v) in [
            (184, self.efer),
            (192, self.cr0),
            (200, self.cr3),
            (208, self.cr4),
            (216, self.pat),
        ] {
            put(at, &v.to_le_bytes());
        }
        b
    }
}

/// HvCallEnableVpVtl and HvCallStartVirtualProcessor input (240 bytes): PartitionId u64,
/// VpIndex u32, TargetVtl u8, 3 reserved bytes, then the initial VP context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpVtlInput {
    pub partition_id: u64,
    pub vp_index: u32,
    pub target_vtl: Vtl,
    pub context: InitialVpContext,
}

impl VpVtlInput {
    pub const SIZE: usize = 16 + InitialVpContext::SIZE;

    pub fn parse(input: &[u8]) -> Result<Self, HvStatus> {
        let bad = HvStatus::INVALID_PARAMETER;
        Ok(Self {
            partition_id: u64_at(input, 0).ok_or(bad)?,
            vp_index: u32_at(input, 8).ok_or(bad)?,
            target_vtl: Vtl::new(u8_at(input, 12).ok_or(bad)?).ok_or(bad)?,
            context: InitialVpContext::parse(input.get(16..).ok_or(bad)?).ok_or(bad)?,
        })
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.partition_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.vp_index.to_le_bytes());
        b[12] = self.target_vtl as u8;
        b[16..].copy_from_slice(&self.context.encode());
        b
    }
}

/// HV_INTERRUPT_TYPE on x64 (TLFS §"HV_INTERRUPT_TYPE"): how the target's local APIC
/// takes the interrupt, the delivery modes of an APIC interrupt message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum InterruptType {
    Fixed = 0,
    LowestPriority = 1,
    Nmi = 4,
    Init = 5,
    Sipi = 6,
    ExtInt = 7,
}

impl InterruptType {
    pub fn new(value: u32) -> Option<Self> {
        Some(match value {
            0 => Self::Fixed,
            1 => Self::LowestPriority,
            4 => Self::Nmi,
            5 => Self::Init,
            6 => Self::Sipi,
            7 => Self::ExtInt,
            _ => return None,
        })
    }
}

/// HvCallAssertVirtualInterrupt input (32 bytes; TLFS "HvCallAssertVirtualInterrupt"):
/// PartitionId u64; InterruptControl u64 (31:0 HV_INTERRUPT_TYPE, 32 level-triggered, 33
/// logical destination mode, the rest reserved); DestinationAddress u64 (an APIC ID, or a
/// logical destination); RequestedVector u32; TargetVtl u8; 3 reserved bytes. A paravisor
/// asserts the interrupts of the devices it emulates into VTL0 with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssertVirtualInterrupt {
    pub partition_id: u64,
    pub interrupt_type: InterruptType,
    pub level_triggered: bool,
    pub logical_destination: bool,
    pub destination: u64,
    pub vector: u32,
    pub target_vtl: Vtl,
}

impl AssertVirtualInterrupt {
    pub const SIZE: usize = 32;
    const LEVEL_TRIGGERED: u64 = 1 << 32;
    const LOGICAL_DESTINATION: u64 = 1 << 33;
    /// InterruptControl bits past those two are reserved.
    const CONTROL_RESERVED: u64 = !0 << 34;

    /// Reads the input; reserved bits and bytes must be zero and the type one of x64's.
    pub fn parse(input: &[u8]) -> Result<Self, HvStatus> {
        let bad = HvStatus::INVALID_PARAMETER;
        let control = u64_at(input, 8).ok_or(bad)?;
        let reserved = u32_at(input, 28).ok_or(bad)? >> 8;
        if control & Self::CONTROL_RESERVED != 0 || reserved != 0 {
            return Err(bad);
        }
        Ok(Self {
            partition_id: u64_at(input, 0).ok_or(bad)?,
            interrupt_type: InterruptType::new(control as u32).ok_or(bad)?,
            level_triggered: control & Self::LEVEL_TRIGGERED != 0,
            logical_destination: control & Self::LOGICAL_DESTINATION != 0,
            destination: u64_at(input, 16).ok_or(bad)?,
            vector: u32_at(input, 24).ok_or(bad)?,
            target_vtl: Vtl::new(u8_at(input, 28).ok_or(bad)?).ok_or(bad)?,
        })
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let control = self.interrupt_type as u64
            | if self.level_triggered {
                Self::LEVEL_TRIGGERED
            } else {
                0
            }
            | if self.logical_destination {
                Self::LOGICAL_DESTINATION
            } else {
                0
            };
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.partition_id.to_le_bytes());
        b[8..16].copy_from_slice(&control.to_le_bytes());
        b[16..24].copy_from_slice(&self.destination.to_le_bytes());
        b[24..28].copy_from_slice(&self.vector.to_le_bytes());
        b[28] = self.target_vtl as u8;
        b
    }
}

/// The header of HvCallGetVpRegisters / HvCallSetVpRegisters (16 bytes): PartitionId u64,
/// VpIndex u32, TargetVtl (HV_INPUT_VTL) u8, 3 reserved bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpRegistersHeader {
    pub partition_id: u64,
    pub vp_index: u32,
    pub target_vtl: InputVtl,
}

impl VpRegistersHeader {
    pub const SIZE: usize = 16;
    /// Each GetVpRegisters input element: a u32 register name.
    pub const GET_ELEMENT_SIZE: usize = 4;
    /// Each GetVpRegisters output element: a 16-byte register value.
    pub const VALUE_SIZE: usize = 16;
    /// Each SetVpRegisters element: name u32, 12 reserved bytes, value 16 bytes.
    pub const SET_ELEMENT_SIZE: usize = 32;

    pub fn parse(input: &[u8]) -> Result<Self, HvStatus> {
        let bad = HvStatus::INVALID_PARAMETER;
        Ok(Self {
            partition_id: u64_at(input, 0).ok_or(bad)?,
            vp_index: u32_at(input, 8).ok_or(bad)?,
            target_vtl: InputVtl::parse(u8_at(input, 12).ok_or(bad)?).ok_or(bad)?,
        })
    }

    /// The header for this partition's VP `vp_index` at the caller's own VTL.
    pub fn this_partition(vp_index: u32) -> Self {
        Self {
            partition_id: PARTITION_SELF,
            vp_index,
            target_vtl: InputVtl(None),
        }
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.partition_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.vp_index.to_le_bytes());
        b[12] = self.target_vtl.encode();
        b
    }
}

/// One SetVpRegisters element: (register name, 16-byte value).
pub fn parse_set_register(element: &[u8]) -> Option<(u32, [u8; 16])> {
    let name = u32_at(element, 0)?;
    let value: [u8; 16] = element.get(16..32)?.try_into().ok()?;
    Some((name, value))
}

/// The header of HvCallModifyVtlProtectionMask (16 bytes): PartitionId u64, MapFlags u32,
/// TargetVtl (HV_INPUT_VTL) u8, 3 reserved; then rep elements of u64 guest page numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModifyVtlProtectionMask {
    pub partition_id: u64,
    pub map_flags: u32,
    pub target_vtl: InputVtl,
}

impl ModifyVtlProtectionMask {
    pub const SIZE: usize = 16;
    pub const ELEMENT_SIZE: usize = 8;

    pub fn parse(input: &[u8]) -> Result<Self, HvStatus> {
        let bad = HvStatus::INVALID_PARAMETER;
        Ok(Self {
            partition_id: u64_at(input, 0).ok_or(bad)?,
            map_flags: u32_at(input, 8).ok_or(bad)?,
            target_vtl: InputVtl::parse(u8_at(input, 12).ok_or(bad)?).ok_or(bad)?,
        })
    }
}

/// HV_MAP_GPA permission bits for ModifyVtlProtectionMask (TLFS web: datatypes/
/// hv_map_gpa_flags). No bits set means no access.
pub mod map_flags {
    pub const READABLE: u32 = 1 << 0;
    pub const WRITABLE: u32 = 1 << 1;
    pub const KERNEL_EXECUTABLE: u32 = 1 << 2;
    pub const USER_EXECUTABLE: u32 = 1 << 3;
    pub const ALL: u32 = READABLE | WRITABLE | KERNEL_EXECUTABLE | USER_EXECUTABLE;
}

/// HvCallInstallIntercept input (24 bytes): PartitionId u64, AccessType u32 (mask),
/// InterceptType u32, InterceptParameters u64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstallIntercept {
    pub partition_id: u64,
    pub access_type: u32,
    pub intercept_type: u32,
    pub parameters: u64,
}

impl InstallIntercept {
    pub const SIZE: usize = 24;

    pub fn parse(input: &[u8]) -> Result<Self, HvStatus> {
        let bad = HvStatus::INVALID_PARAMETER;
        Ok(Self {
            partition_id: u64_at(input, 0).ok_or(bad)?,
            access_type: u32_at(input, 8).ok_or(bad)?,
            intercept_type: u32_at(input, 12).ok_or(bad)?,
            parameters: u64_at(input, 16).ok_or(bad)?,
        })
    }
}

/// HV_VP_VTL_CONTROL in the VP assist page (TLFS web: datatypes/hv_vp_vtl_control): where the
/// hypervisor reports why a higher VTL was entered, and where a VTL return takes the lower
/// VTL's RAX and RCX from.
pub mod vp_assist {
    pub const VTL_ENTRY_REASON: usize = 0x08;
    pub const VTL_RETURN_RAX: usize = 0x10;
    pub const VTL_RETURN_RCX: usize = 0x18;
    /// VTL entry reasons.
    pub const ENTRY_RESERVED: u32 = 0;
    pub const ENTRY_VTL_CALL: u32 = 1;
    pub const ENTRY_INTERRUPT: u32 = 2;
    pub const ENTRY_INTERCEPT: u32 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp_contexts_round_trip_through_their_encoding() {
        let context = InitialVpContext {
            rip: 0x1_0000,
            rflags: 2,
            cs: SegmentRegister {
                base: 0,
                limit: 0xffff_ffff,
                selector: 8,
                attributes: 0xa09b,
            },
            gdtr: TableRegister {
                limit: 0x17,
                base: 0x7000,
            },
            efer: 0x500,
            cr0: 0x8000_0031,
            cr3: 0x1000,
            cr4: 0x20,
            pat: 0x0007_0406_0007_0406,
            ..Default::default()
        };
        let input = VpVtlInput {
            partition_id: PARTITION_SELF,
            vp_index: VP_INDEX_SELF,
            target_vtl: Vtl::Vtl0,
            context,
        };
        assert_eq!(VpVtlInput::parse(&input.encode()), Ok(input));
    }

    #[test]
    fn control_words_encode_and_decode() {
        let c = Control::new(code::GET_VP_REGISTERS)
            .with_rep_count(3)
            .with_rep_start(1)
            .with_fast(true);
        assert_eq!(c.0, 0x0001_0003_0001_0050);
        assert_eq!(
            (c.code(), c.fast(), c.rep_count(), c.rep_start()),
            (0x50, true, 3, 1)
        );
        assert_eq!(c.check(true), Ok(()));
        assert_eq!(
            c.check(false),
            Err(HvStatus::INVALID_HYPERCALL_INPUT),
            "reps on a simple call"
        );
        assert_eq!(Control::new(code::VTL_CALL).check(false), Ok(()));
        assert_eq!(
            Control::new(code::GET_VP_REGISTERS).check(true),
            Err(HvStatus::INVALID_HYPERCALL_INPUT),
            "no reps on a rep call"
        );
        assert_eq!(
            Control(0x0011 | 1 << 29).check(false),
            Err(HvStatus::INVALID_HYPERCALL_INPUT),
            "reserved bit"
        );
        assert_eq!(
            Control::new(0x50)
                .with_rep_count(2)
                .with_rep_start(2)
                .check(true),
            Err(HvStatus::INVALID_HYPERCALL_INPUT)
        );
    }

    #[test]
    fn results_pack_status_and_reps() {
        let r = result(HvStatus::ACCESS_DENIED, 7);
        assert_eq!(r, 0x0000_0007_0000_0006);
        assert_eq!(parse_result(r), (HvStatus::ACCESS_DENIED, 7));
    }

    #[test]
    fn inputs_parse_at_their_offsets_and_refuse_short_buffers() {
        let mut b = [0u8; VpVtlInput::SIZE];
        b[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12] = 0;
        b[16..24].copy_from_slice(&0x1000u64.to_le_bytes()); // rip
        b[16 + 24 + 12..16 + 24 + 14].copy_from_slice(&8u16.to_le_bytes()); // cs selector
        b[16 + 168 + 6..16 + 168 + 8].copy_from_slice(&0x17u16.to_le_bytes()); // gdtr limit
        b[16 + 200..16 + 208].copy_from_slice(&0x5000u64.to_le_bytes()); // cr3
        let v = VpVtlInput::parse(&b).unwrap();
        assert_eq!(
            (
                v.vp_index,
                v.target_vtl,
                v.context.rip,
                v.context.cs.selector
            ),
            (1, Vtl::Vtl0, 0x1000, 8)
        );
        assert_eq!((v.context.cr3, v.context.gdtr.limit), (0x5000, 0x17));
        assert_eq!(
            VpVtlInput::parse(&b[..100]),
            Err(HvStatus::INVALID_PARAMETER)
        );
        b[12] = 7;
        assert_eq!(
            VpVtlInput::parse(&b),
            Err(HvStatus::INVALID_PARAMETER),
            "VTL 7 does not exist"
        );

        let mut i = [0u8; 24];
        i[8..12].copy_from_slice(&3u32.to_le_bytes());
        i[12..16].copy_from_slice(&0x11u32.to_le_bytes());
        i[16..24].copy_from_slice(&(0x3f8u64 | 0x3ff << 16).to_le_bytes());
        let ii = InstallIntercept::parse(&i).unwrap();
        assert_eq!(
            (ii.access_type, ii.intercept_type, ii.parameters),
            (3, 0x11, 0x03ff_03f8)
        );

        let header = VpRegistersHeader {
            partition_id: 7,
            vp_index: 3,
            target_vtl: InputVtl(Some(Vtl::Vtl0)),
        };
        assert_eq!(VpRegistersHeader::parse(&header.encode()), Ok(header));

        let mut set = [0u8; 32];
        set[0..4].copy_from_slice(&0x0002_0010u32.to_le_bytes());
        set[16] = 0x42;
        assert_eq!(
            parse_set_register(&set).map(|(n, v)| (n, v[0])),
            Some((0x0002_0010, 0x42))
        );
        assert_eq!(parse_set_register(&set[..20]), None);
    }

    #[test]
    fn assert_virtual_interrupt_inputs_round_trip_and_reserved_bits_are_refused() {
        let input = AssertVirtualInterrupt {
            partition_id: PARTITION_SELF,
            interrupt_type: InterruptType::Fixed,
            level_triggered: true,
            logical_destination: false,
            destination: 1,
            vector: 0x24,
            target_vtl: Vtl::Vtl0,
        };
        let bytes = input.encode();
        assert_eq!(bytes[8..16], (1u64 << 32).to_le_bytes());
        assert_eq!(AssertVirtualInterrupt::parse(&bytes), Ok(input));
        let refused = |at: usize, value: u8| {
            let mut b = bytes;
            b[at] = value;
            AssertVirtualInterrupt::parse(&b)
        };
        let bad = Err(HvStatus::INVALID_PARAMETER);
        assert_eq!(refused(8, 2), bad, "SMI is not a type a VTL may assert");
        assert_eq!(refused(12, 0x04), bad, "reserved control bit 34");
        assert_eq!(refused(29, 1), bad, "reserved byte");
        assert_eq!(refused(28, 3), bad, "no VTL 3");
        assert_eq!(AssertVirtualInterrupt::parse(&bytes[..31]), bad);
    }
}

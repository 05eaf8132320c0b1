//! Register names (`HV_REGISTER_NAME`, TLFS §7.8 and web: datatypes/hv_register_name) and the
//! 16-byte value encodings of segment and table registers.

use crate::bytes::{u16_at, u32_at, u64_at};

pub const RAX: u32 = 0x0002_0000;
pub const RCX: u32 = 0x0002_0001;
pub const RDX: u32 = 0x0002_0002;
pub const RBX: u32 = 0x0002_0003;
pub const RSP: u32 = 0x0002_0004;
pub const RBP: u32 = 0x0002_0005;
pub const RSI: u32 = 0x0002_0006;
pub const RDI: u32 = 0x0002_0007;
/// R8..R15 are `R8 + n`.
pub const R8: u32 = 0x0002_0008;
pub const R15: u32 = 0x0002_000f;
pub const RIP: u32 = 0x0002_0010;
pub const RFLAGS: u32 = 0x0002_0011;
/// XMM0..15 are `XMM0 + n`.
pub const XMM0: u32 = 0x0003_0000;
/// DR0..DR3 are `DR0 + n`.
pub const DR0: u32 = 0x0005_0000;
pub const DR6: u32 = 0x0005_0004;
pub const DR7: u32 = 0x0005_0005;
pub const CR0: u32 = 0x0004_0000;
pub const CR2: u32 = 0x0004_0001;
pub const CR3: u32 = 0x0004_0002;
pub const CR4: u32 = 0x0004_0003;
pub const CR8: u32 = 0x0004_0004;
pub const XFEM: u32 = 0x0004_0005;
pub const ES: u32 = 0x0006_0000;
pub const CS: u32 = 0x0006_0001;
pub const SS: u32 = 0x0006_0002;
pub const DS: u32 = 0x0006_0003;
pub const FS: u32 = 0x0006_0004;
pub const GS: u32 = 0x0006_0005;
pub const LDTR: u32 = 0x0006_0006;
pub const TR: u32 = 0x0006_0007;
pub const IDTR: u32 = 0x0007_0000;
pub const GDTR: u32 = 0x0007_0001;
pub const TSC: u32 = 0x0008_0000;
pub const EFER: u32 = 0x0008_0001;
pub const APIC_BASE: u32 = 0x0008_0003;
pub const PAT: u32 = 0x0008_0004;
pub const HYPERCALL: u32 = 0x0009_0001;
pub const GUEST_OS_ID: u32 = 0x0009_0002;
pub const VP_INDEX: u32 = 0x0009_0003;
pub const VP_ASSIST_PAGE: u32 = 0x0009_0013;
/// SINT0..15 are `SINT0 + n`.
pub const SINT0: u32 = 0x000a_0000;
pub const SCONTROL: u32 = 0x000a_0010;
pub const SIEFP: u32 = 0x000a_0012;
pub const SIMP: u32 = 0x000a_0013;
pub const EOM: u32 = 0x000a_0014;
/// The register name of synthetic MSR `msr`, for those reachable both ways (the TLFS gives
/// each synthetic MSR a register name for Get/SetVpRegisters).
pub fn of_synthetic_msr(msr: u32) -> Option<u32> {
    use crate::msr;
    Some(match msr {
        msr::GUEST_OS_ID => GUEST_OS_ID,
        msr::HYPERCALL => HYPERCALL,
        msr::VP_INDEX => VP_INDEX,
        msr::VP_ASSIST_PAGE => VP_ASSIST_PAGE,
        msr::SCONTROL => SCONTROL,
        msr::SIEFP => SIEFP,
        msr::SIMP => SIMP,
        msr::EOM => EOM,
        m if (msr::SINT0..msr::SINT0 + msr::SINT_COUNT).contains(&m) => SINT0 + (m - msr::SINT0),
        _ => return None,
    })
}

/// VSM registers (TLFS §15; web: vsm).
pub const VSM_CODE_PAGE_OFFSETS: u32 = 0x000d_0002;
pub const VSM_VP_STATUS: u32 = 0x000d_0003;
pub const VSM_PARTITION_STATUS: u32 = 0x000d_0004;
pub const VSM_CAPABILITIES: u32 = 0x000d_0006;
pub const VSM_PARTITION_CONFIG: u32 = 0x000d_0007;

/// The general-purpose registers VTLs share on x64 (TLFS §15.11): everything but RSP, RIP and
/// RFLAGS, which each VTL keeps for itself.
pub const SHARED_GENERAL_PURPOSE: [u32; 15] = [
    RAX,
    RCX,
    RDX,
    RBX,
    RBP,
    RSI,
    RDI,
    R8,
    0x0002_0009,
    0x0002_000a,
    0x0002_000b,
    0x0002_000c,
    0x0002_000d,
    0x0002_000e,
    R15,
];

/// `HV_X64_SEGMENT_REGISTER`: base u64, limit u32, selector u16, attributes u16 (type 3:0,
/// S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SegmentRegister {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub attributes: u16,
}

impl SegmentRegister {
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            base: u64_at(b, 0)?,
            limit: u32_at(b, 8)?,
            selector: u16_at(b, 12)?,
            attributes: u16_at(b, 14)?,
        })
    }

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.base.to_le_bytes());
        b[8..12].copy_from_slice(&self.limit.to_le_bytes());
        b[12..14].copy_from_slice(&self.selector.to_le_bytes());
        b[14..16].copy_from_slice(&self.attributes.to_le_bytes());
        b
    }
}

/// `HV_X64_TABLE_REGISTER`: 3 pad u16, limit u16, base u64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TableRegister {
    pub limit: u16,
    pub base: u64,
}

impl TableRegister {
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            limit: u16_at(b, 6)?,
            base: u64_at(b, 8)?,
        })
    }

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[6..8].copy_from_slice(&self.limit.to_le_bytes());
        b[8..16].copy_from_slice(&self.base.to_le_bytes());
        b
    }
}

/// A 64-bit register value as a 16-byte `HV_REGISTER_VALUE`.
pub fn u64_value(v: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&v.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_and_table_encodings_round_trip() {
        let cs = SegmentRegister {
            base: 0,
            limit: 0xffff_ffff,
            selector: 8,
            attributes: 0xa09b,
        };
        let b = cs.to_bytes();
        assert_eq!(&b[8..16], &[0xff, 0xff, 0xff, 0xff, 0x08, 0x00, 0x9b, 0xa0]);
        assert_eq!(SegmentRegister::parse(&b), Some(cs));
        let gdtr = TableRegister {
            limit: 0x17,
            base: 0x5000,
        };
        assert_eq!(TableRegister::parse(&gdtr.to_bytes()), Some(gdtr));
        assert_eq!(SegmentRegister::parse(&b[..10]), None);
    }

    #[test]
    fn synthetic_msrs_name_their_registers() {
        assert_eq!(of_synthetic_msr(crate::msr::HYPERCALL), Some(HYPERCALL));
        assert_eq!(of_synthetic_msr(crate::msr::SINT0 + 15), Some(SINT0 + 15));
        assert_eq!(of_synthetic_msr(crate::msr::SINT0 + 16), None);
        assert_eq!(of_synthetic_msr(0x4000_00ff), None);
    }

    #[test]
    fn shared_registers_leave_out_the_private_three() {
        for private in [RSP, RIP, RFLAGS] {
            assert!(!SHARED_GENERAL_PURPOSE.contains(&private));
        }
        assert_eq!(SHARED_GENERAL_PURPOSE.len(), 15);
    }
}

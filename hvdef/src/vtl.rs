//! Virtual Trust Levels (TLFS §15; web: vsm).

/// A VTL the implementation supports: 0 (the guest) and 2 (the paravisor), with 1 between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Vtl {
    Vtl0 = 0,
    Vtl1 = 1,
    Vtl2 = 2,
}

impl Vtl {
    pub fn new(v: u8) -> Option<Self> {
        match v {
            0 => Some(Vtl::Vtl0),
            1 => Some(Vtl::Vtl1),
            2 => Some(Vtl::Vtl2),
            _ => None,
        }
    }
}

/// `HV_INPUT_VTL`: 3:0 target VTL, 4 use the target VTL (else the caller's), 7:5 RsvdZ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputVtl(pub Option<Vtl>);

impl InputVtl {
    pub const USE_TARGET: u8 = 1 << 4;

    /// `None` if reserved bits are set or the VTL does not exist.
    pub fn parse(b: u8) -> Option<Self> {
        if b & 0xe0 != 0 {
            return None;
        }
        if b & Self::USE_TARGET == 0 {
            return Some(Self(None));
        }
        Vtl::new(b & 0xf).map(|v| Self(Some(v)))
    }

    pub fn encode(self) -> u8 {
        match self.0 {
            Some(v) => Self::USE_TARGET | v as u8,
            None => 0,
        }
    }

    /// The VTL addressed by a caller running at `caller`.
    pub fn resolve(self, caller: Vtl) -> Vtl {
        self.0.unwrap_or(caller)
    }
}

/// `HvRegisterVsmCodePageOffsets`: where in the hypercall page the VTL call (11:0) and VTL
/// return (23:12) sequences start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsmCodePageOffsets {
    pub vtl_call: u16,
    pub vtl_return: u16,
}

impl VsmCodePageOffsets {
    pub fn encode(self) -> u64 {
        u64::from(self.vtl_call & 0xfff) | (u64::from(self.vtl_return & 0xfff) << 12)
    }

    pub fn decode(v: u64) -> Self {
        Self {
            vtl_call: (v & 0xfff) as u16,
            vtl_return: ((v >> 12) & 0xfff) as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_vtl_encodes_target_and_refuses_reserved_bits() {
        assert_eq!(InputVtl::parse(0x00), Some(InputVtl(None)));
        assert_eq!(InputVtl::parse(0x10), Some(InputVtl(Some(Vtl::Vtl0))));
        assert_eq!(InputVtl::parse(0x12), Some(InputVtl(Some(Vtl::Vtl2))));
        assert_eq!(InputVtl::parse(0x13), None, "VTL 3 does not exist");
        assert_eq!(InputVtl::parse(0x20), None, "reserved bit");
        assert_eq!(InputVtl(Some(Vtl::Vtl2)).encode(), 0x12);
        assert_eq!(InputVtl(None).resolve(Vtl::Vtl2), Vtl::Vtl2);
    }

    #[test]
    fn code_page_offsets_pack_into_24_bits() {
        let o = VsmCodePageOffsets {
            vtl_call: 0x10,
            vtl_return: 0x20,
        };
        assert_eq!(o.encode(), 0x20010);
        assert_eq!(VsmCodePageOffsets::decode(o.encode()), o);
    }
}

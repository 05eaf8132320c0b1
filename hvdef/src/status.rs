//! Hypercall status codes, `HV_STATUS` (TLFS appendix B; TLFS web: hypercall-interface).

/// A 16-bit hypercall status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvStatus(pub u16);

impl HvStatus {
    pub const SUCCESS: Self = Self(0x0000);
    pub const INVALID_HYPERCALL_CODE: Self = Self(0x0002);
    pub const INVALID_HYPERCALL_INPUT: Self = Self(0x0003);
    pub const INVALID_ALIGNMENT: Self = Self(0x0004);
    pub const INVALID_PARAMETER: Self = Self(0x0005);
    pub const ACCESS_DENIED: Self = Self(0x0006);
    pub const INVALID_PARTITION_STATE: Self = Self(0x0007);
    pub const OPERATION_DENIED: Self = Self(0x0008);
    pub const INSUFFICIENT_MEMORY: Self = Self(0x000b);
    pub const INVALID_PARTITION_ID: Self = Self(0x000d);
    pub const INVALID_VP_INDEX: Self = Self(0x000e);
    pub const INVALID_PORT_ID: Self = Self(0x0011);
    pub const INVALID_CONNECTION_ID: Self = Self(0x0012);
    pub const INSUFFICIENT_BUFFERS: Self = Self(0x0013);
    pub const INVALID_VP_STATE: Self = Self(0x0015);
    pub const INVALID_REGISTER_VALUE: Self = Self(0x0050);
    /// Named but not numbered by the TLFS; the value Hyper-V returns.
    pub const INVALID_VTL_STATE: Self = Self(0x0051);
    /// Not in the TLFS; the value Hyper-V returns when a VTL is enabled twice.
    pub const VTL_ALREADY_ENABLED: Self = Self(0x0086);

    pub fn is_success(self) -> bool {
        self == Self::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_appendix_b() {
        assert_eq!(HvStatus::INVALID_HYPERCALL_CODE.0, 2);
        assert_eq!(HvStatus::ACCESS_DENIED.0, 6);
        assert_eq!(HvStatus::INSUFFICIENT_BUFFERS.0, 0x13);
        assert!(HvStatus::SUCCESS.is_success() && !HvStatus::INVALID_PARAMETER.is_success());
    }
}

//! Hypervisor CPUID leaves (TLFS §2.2-2.4; TLFS web: feature-discovery).

/// CPUID.1:ECX bit 31: a hypervisor is present.
pub const HYPERVISOR_PRESENT: u32 = 1 << 31;

/// EAX: highest hypervisor leaf; EBX/ECX/EDX: vendor signature.
pub const LEAF_VENDOR: u32 = 0x4000_0000;
/// EAX: interface signature.
pub const LEAF_INTERFACE: u32 = 0x4000_0001;
/// Build, version, service pack.
pub const LEAF_VERSION: u32 = 0x4000_0002;
/// EAX/EBX: the partition privilege mask; EDX: feature bits.
pub const LEAF_FEATURES: u32 = 0x4000_0003;
/// Implementation recommendations.
pub const LEAF_RECOMMENDATIONS: u32 = 0x4000_0004;
/// Implementation limits.
pub const LEAF_LIMITS: u32 = 0x4000_0005;
/// Hardware features in use.
pub const LEAF_HARDWARE_FEATURES: u32 = 0x4000_0006;

/// "Microsoft Hv" in EBX, ECX, EDX.
pub const VENDOR_EBX: u32 = u32::from_le_bytes(*b"Micr");
pub const VENDOR_ECX: u32 = u32::from_le_bytes(*b"osof");
pub const VENDOR_EDX: u32 = u32::from_le_bytes(*b"t Hv");
/// "Hv#1" in EAX of leaf 0x40000001: the guest OS id, hypercall and VP index MSRs exist.
pub const INTERFACE_HV1: u32 = u32::from_le_bytes(*b"Hv#1");

/// Partition privilege mask, low half (CPUID 0x40000003 EAX) (TLFS web:
/// datatypes/hv_partition_privilege_mask).
pub mod privilege_eax {
    pub const ACCESS_VP_RUNTIME_REG: u32 = 1 << 0;
    pub const ACCESS_PARTITION_REFERENCE_COUNTER: u32 = 1 << 1;
    pub const ACCESS_SYNIC_REGS: u32 = 1 << 2;
    pub const ACCESS_SYNTHETIC_TIMER_REGS: u32 = 1 << 3;
    pub const ACCESS_INTR_CTRL_REGS: u32 = 1 << 4;
    pub const ACCESS_HYPERCALL_MSRS: u32 = 1 << 5;
    pub const ACCESS_VP_INDEX: u32 = 1 << 6;
}

/// Partition privilege mask, high half (CPUID 0x40000003 EBX).
pub mod privilege_ebx {
    pub const POST_MESSAGES: u32 = 1 << 4;
    pub const SIGNAL_EVENTS: u32 = 1 << 5;
    /// VSM needs this, ACCESS_VP_REGISTERS and ACCESS_SYNIC_REGS together (TLFS web: vsm).
    pub const ACCESS_VSM: u32 = 1 << 16;
    pub const ACCESS_VP_REGISTERS: u32 = 1 << 17;
    pub const START_VIRTUAL_PROCESSOR: u32 = 1 << 21;
}

/// Feature bits (CPUID 0x40000003 EDX).
pub mod features_edx {
    /// Hypercall input may be passed in XMM registers.
    pub const XMM_FAST_HYPERCALL_INPUT: u32 = 1 << 4;
    /// Hypercall output may be returned in XMM registers.
    pub const XMM_FAST_HYPERCALL_OUTPUT: u32 = 1 << 15;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_spell_what_the_spec_says() {
        let vendor: Vec<u8> = [VENDOR_EBX, VENDOR_ECX, VENDOR_EDX]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        assert_eq!(&vendor, b"Microsoft Hv");
        assert_eq!(INTERFACE_HV1, 0x3123_7648);
    }
}

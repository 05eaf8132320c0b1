//! The isolation platforms Parapet runs on.
//!
//! Each backend (hv_vtl, svm, el2, snp, tdx, cca) owns page visibility, guest entry and exit
//! decoding for its platform. The platform is chosen at boot from what the machine reports,
//! never by a cargo feature, so one image serves several platforms.
#![cfg_attr(not(test), no_std)]

pub mod exit;
pub mod hv_message;

use hvdef::cpuid::{self, privilege_eax, privilege_ebx};

/// The platform Parapet booted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformKind {
    /// No paravisor interface: Parapet owns the whole machine.
    Native,
    /// Hyper-V's VTL interface (the TLFS VSM subset): Parapet runs in VTL2.
    HvVtl,
}

/// What a VTL2 paravisor needs the hypervisor to grant (TLFS web: vsm): VSM itself, access
/// to lower VTLs' registers, the SynIC (intercept messages) and the hypercall MSRs.
const VSM_PRIVILEGES_EAX: u32 =
    privilege_eax::ACCESS_SYNIC_REGS | privilege_eax::ACCESS_HYPERCALL_MSRS;
const VSM_PRIVILEGES_EBX: u32 = privilege_ebx::ACCESS_VSM | privilege_ebx::ACCESS_VP_REGISTERS;

impl PlatformKind {
    /// The name the console banner reports (`platform=<name>`).
    pub fn name(self) -> &'static str {
        match self {
            PlatformKind::Native => "native",
            PlatformKind::HvVtl => "hv_vtl",
        }
    }

    /// Chooses the platform from what CPUID reports (x86_64); `cpuid(leaf)` returns
    /// (eax, ebx, ecx, edx). A hypervisor that presents "Hv#1" and grants the VSM privileges
    /// is the VTL interface; anything else is native.
    pub fn detect_x86(cpuid: impl Fn(u32) -> (u32, u32, u32, u32)) -> Self {
        if cpuid(1).2 & cpuid::HYPERVISOR_PRESENT == 0 {
            return PlatformKind::Native;
        }
        let (max_leaf, ..) = cpuid(cpuid::LEAF_VENDOR);
        let (interface, ..) = cpuid(cpuid::LEAF_INTERFACE);
        if max_leaf < cpuid::LEAF_FEATURES || interface != cpuid::INTERFACE_HV1 {
            return PlatformKind::Native;
        }
        let (eax, ebx, ..) = cpuid(cpuid::LEAF_FEATURES);
        if eax & VSM_PRIVILEGES_EAX == VSM_PRIVILEGES_EAX
            && ebx & VSM_PRIVILEGES_EBX == VSM_PRIVILEGES_EBX
        {
            PlatformKind::HvVtl
        } else {
            PlatformKind::Native
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(
        hv: bool,
        interface: u32,
        eax: u32,
        ebx: u32,
    ) -> impl Fn(u32) -> (u32, u32, u32, u32) {
        move |leaf| match leaf {
            1 => (0, 0, if hv { 1 << 31 } else { 0 }, 0),
            0x4000_0000 => (
                0x4000_0006,
                cpuid::VENDOR_EBX,
                cpuid::VENDOR_ECX,
                cpuid::VENDOR_EDX,
            ),
            0x4000_0001 => (interface, 0, 0, 0),
            0x4000_0003 => (eax, ebx, 0, 0),
            _ => (0, 0, 0, 0),
        }
    }

    #[test]
    fn the_vtl_interface_needs_hv1_and_every_vsm_privilege() {
        let all = (VSM_PRIVILEGES_EAX, VSM_PRIVILEGES_EBX);
        assert_eq!(
            PlatformKind::detect_x86(machine(true, cpuid::INTERFACE_HV1, all.0, all.1)),
            PlatformKind::HvVtl
        );
        assert_eq!(
            PlatformKind::detect_x86(machine(false, cpuid::INTERFACE_HV1, all.0, all.1)),
            PlatformKind::Native
        );
        assert_eq!(
            PlatformKind::detect_x86(machine(true, 0x4b4d_564b, all.0, all.1)),
            PlatformKind::Native,
            "KVM's own leaves"
        );
        let no_vsm = all.1 & !privilege_ebx::ACCESS_VSM;
        assert_eq!(
            PlatformKind::detect_x86(machine(true, cpuid::INTERFACE_HV1, all.0, no_vsm)),
            PlatformKind::Native
        );
        assert_eq!(PlatformKind::HvVtl.name(), "hv_vtl");
    }
}

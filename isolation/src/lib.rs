//! The isolation platforms Parapet runs on.
//!
//! Each backend (hv_vtl, svm, el2, snp, tdx, cca) owns page visibility, guest entry and exit
//! decoding for its platform. The platform is chosen at boot from what the machine reports,
//! never by a cargo feature, so one image serves several platforms.
#![cfg_attr(not(test), no_std)]

pub mod el2_exit;
pub mod exit;
pub mod hv_message;
pub mod svm_exit;
pub mod x86_insn;

use hvdef::cpuid::{self, privilege_eax, privilege_ebx};

/// The platform Parapet booted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformKind {
    /// No paravisor interface: Parapet owns the whole machine.
    Native,
    /// Hyper-V's VTL interface (the TLFS VSM subset): Parapet runs in VTL2.
    HvVtl,
    /// AMD-V with nested paging and no paravisor interface: Parapet is the hypervisor and
    /// runs its guest under a VMCB.
    Svm,
    /// aarch64 at EL2: Parapet is the hypervisor and runs its guest at EL1 behind stage 2.
    El2,
}

/// CPUID 0x8000_0001 ECX bit 2: SVM (AMD64 APM Vol. 3, Appendix E.4.2).
pub const EXTENDED_FEATURES: u32 = 0x8000_0001;
pub const ECX_SVM: u32 = 1 << 2;
/// CPUID 0x8000_000A: SVM revision and features; EDX bit 0 nested paging (APM Vol. 3,
/// Appendix E.4.9).
pub const SVM_FEATURES: u32 = 0x8000_000a;
const EDX_NESTED_PAGING: u32 = 1 << 0;

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
            PlatformKind::Svm => "svm",
            PlatformKind::El2 => "el2",
        }
    }

    /// Chooses the platform from what CPUID reports (x86_64); `cpuid(leaf)` returns
    /// (eax, ebx, ecx, edx). A hypervisor that presents "Hv#1" and grants the VSM privileges
    /// is the VTL interface; otherwise AMD-V with nested paging makes Parapet the hypervisor;
    /// anything else is native.
    pub fn detect_x86(cpuid: impl Fn(u32) -> (u32, u32, u32, u32)) -> Self {
        if Self::has_vtl_interface(&cpuid) {
            PlatformKind::HvVtl
        } else if Self::has_svm(&cpuid) {
            PlatformKind::Svm
        } else {
            PlatformKind::Native
        }
    }

    fn has_svm(cpuid: &impl Fn(u32) -> (u32, u32, u32, u32)) -> bool {
        let max_extended = cpuid(0x8000_0000).0;
        max_extended >= SVM_FEATURES
            && cpuid(EXTENDED_FEATURES).2 & ECX_SVM != 0
            && cpuid(SVM_FEATURES).3 & EDX_NESTED_PAGING != 0
    }

    fn has_vtl_interface(cpuid: &impl Fn(u32) -> (u32, u32, u32, u32)) -> bool {
        if cpuid(1).2 & cpuid::HYPERVISOR_PRESENT == 0 {
            return false;
        }
        let (max_leaf, ..) = cpuid(cpuid::LEAF_VENDOR);
        let (interface, ..) = cpuid(cpuid::LEAF_INTERFACE);
        if max_leaf < cpuid::LEAF_FEATURES || interface != cpuid::INTERFACE_HV1 {
            return false;
        }
        let (eax, ebx, ..) = cpuid(cpuid::LEAF_FEATURES);
        eax & VSM_PRIVILEGES_EAX == VSM_PRIVILEGES_EAX
            && ebx & VSM_PRIVILEGES_EBX == VSM_PRIVILEGES_EBX
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

    #[test]
    fn svm_with_nested_paging_and_no_vtl_interface_is_svm() {
        let amd = |svm: bool, npt: bool, hv: bool| {
            move |leaf| match leaf {
                1 => (0, 0, if hv { 1 << 31 } else { 0 }, 0),
                0x8000_0000 => (0x8000_001f, 0, 0, 0),
                0x8000_0001 => (0, 0, if svm { ECX_SVM } else { 0 }, 0),
                0x8000_000a => (1, 16, 0, if npt { EDX_NESTED_PAGING } else { 0 }),
                _ => (0, 0, 0, 0),
            }
        };
        assert_eq!(
            PlatformKind::detect_x86(amd(true, true, false)),
            PlatformKind::Svm
        );
        assert_eq!(
            PlatformKind::detect_x86(amd(true, true, true)),
            PlatformKind::Svm,
            "KVM with nested SVM"
        );
        assert_eq!(
            PlatformKind::detect_x86(amd(true, false, false)),
            PlatformKind::Native,
            "no nested paging"
        );
        assert_eq!(
            PlatformKind::detect_x86(amd(false, true, false)),
            PlatformKind::Native
        );
        assert_eq!(PlatformKind::Svm.name(), "svm");
    }
}

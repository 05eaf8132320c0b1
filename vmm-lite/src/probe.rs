//! What this host's KVM can do, for the VTL interface vmm-lite builds on it.

use kvm_ioctls::Kvm;
use thiserror::Error;

/// KVM capability numbers (Linux `include/uapi/linux/kvm.h`).
pub const CAPABILITIES: &[(&str, u64, bool)] = &[
    // (name, number, required)
    ("KVM_CAP_USER_MEMORY", 3, true),
    ("KVM_CAP_MP_STATE", 14, true),
    ("KVM_CAP_HYPERV", 44, false),
    ("KVM_CAP_SYNC_REGS", 74, false),
    ("KVM_CAP_IMMEDIATE_EXIT", 136, true),
    ("KVM_CAP_X86_USER_SPACE_MSR", 188, true),
    ("KVM_CAP_X86_MSR_FILTER", 189, true),
];

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("cannot open /dev/kvm: {0} (is KVM loaded, and may this user open it?)")]
    Open(kvm_ioctls::Error),
    #[error("KVM API version {0}, expected 12")]
    ApiVersion(i32),
    #[error("KVM cannot create a VM: {0}")]
    CreateVm(kvm_ioctls::Error),
    #[error("KVM cannot create a vCPU: {0}")]
    CreateVcpu(kvm_ioctls::Error),
}

/// What the probe found.
#[derive(Debug)]
pub struct Report {
    pub api_version: i32,
    /// (name, supported, required)
    pub capabilities: Vec<(&'static str, bool, bool)>,
}

impl Report {
    /// Names of required capabilities the host lacks.
    pub fn missing(&self) -> Vec<&'static str> {
        self.capabilities
            .iter()
            .filter(|(_, ok, required)| *required && !ok)
            .map(|(n, _, _)| *n)
            .collect()
    }
}

/// Opens /dev/kvm, makes a VM with one vCPU, and lists the capabilities.
pub fn probe() -> Result<Report, ProbeError> {
    let kvm = Kvm::new().map_err(ProbeError::Open)?;
    let api_version = kvm.get_api_version();
    if api_version != 12 {
        return Err(ProbeError::ApiVersion(api_version));
    }
    let vm = kvm.create_vm().map_err(ProbeError::CreateVm)?;
    vm.create_vcpu(0).map_err(ProbeError::CreateVcpu)?;
    let capabilities = CAPABILITIES
        .iter()
        .map(|&(name, number, required)| (name, kvm.check_extension_raw(number) > 0, required))
        .collect();
    Ok(Report {
        api_version,
        capabilities,
    })
}

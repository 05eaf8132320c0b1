//! vmm-lite: a host VMM on Linux KVM for Parapet.
//!
//! `vmm-lite run` loads an IGVM file's native platform into a KVM VM (guest RAM, parameter
//! areas, the VP context), connects COM1 to stdio or a file, runs each VP on its own thread,
//! and turns the firmware's exit report into its own exit status. `vmm-lite probe` checks
//! what this host's KVM offers. `--platform vbs` adds the Hyper-V interface a VTL2 paravisor
//! uses (`hyperv`, `vp_registers`, `intercepts`, `vsm`), with VTL0 as a second KVM VM over the
//! same RAM (`vtl0_view`, `vtl_protections`), the VTL switch on each VP's thread (`vp`,
//! `vcpu_state`), intercept messages (`vtl0_intercept`), VTL2's interrupts while VTL0 runs
//! (`kick`), and a VTL0 guest given with `--vtl0` (`vtl0_payload`). When KVM cannot go on
//! with a vCPU, `kvm_failure` words the one line printed and sets the exit status.
//! `vmm-lite bench` times its own round trips (`bench`). `tpm_server` serves a TPM
//! (`tpm_server::CommandProcessor`) over the TPM simulator's TCP protocol, for tpm2-tools'
//! mssim TCTI.

pub mod bench;
pub mod error;
pub mod guest_memory;
pub mod hyperv;
pub mod igvm_load;
pub mod intercepts;
pub mod kick;
pub mod kvm_failure;
pub mod memory_map;
pub mod port_io_decode;
pub mod probe;
pub mod serial;
pub mod tpm_server;
pub mod vcpu_state;
pub mod vm;
pub mod vp;
pub mod vp_registers;
pub mod vsm;
pub mod vtl0_intercept;
pub mod vtl0_memory_intercept;
pub mod vtl0_payload;
pub mod vtl0_view;
pub mod vtl_protections;

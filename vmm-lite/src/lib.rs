//! vmm-lite: a host VMM on Linux KVM for Parapet.
//!
//! Today it checks what this host's KVM offers the VTL interface vmm-lite will build on
//! (`vmm-lite probe`): a VM and a vCPU can be made, and the capabilities the design needs are
//! present. IGVM loading and the VTL emulation come next.

pub mod probe;

//! Intercepts a higher VTL installs on a lower one (TLFS §6.1, HvCallInstallIntercept; web:
//! datatypes/hv_intercept_type, hv_intercept_parameters).

/// `HV_INTERCEPT_ACCESS_TYPE_MASK` bits, for HvCallInstallIntercept's AccessType.
pub mod access_mask {
    pub const NONE: u32 = 0;
    pub const READ: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const EXECUTE: u32 = 1 << 2;
}

/// `HV_INTERCEPT_TYPE` values.
pub mod intercept_type {
    /// Parameter: port number in 15:0.
    pub const X64_IO_PORT: u32 = 0x00;
    /// Every MSR access the hypervisor does not handle itself.
    pub const X64_MSR: u32 = 0x01;
    /// Parameter: the CPUID leaf.
    pub const X64_CPUID: u32 = 0x02;
    /// Parameter: the exception vector.
    pub const EXCEPTION: u32 = 0x03;
    /// Parameter: first port in 15:0, last port (inclusive) in 31:16.
    pub const X64_IO_PORT_RANGE: u32 = 0x11;
}

/// The access kind an intercept message reports (the header's InterceptAccessType byte, as
/// Hyper-V delivers it: an enumeration, not the install-time mask).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessType {
    Read = 0,
    Write = 1,
    Execute = 2,
}

/// The port range an IoPortRange intercept parameter names: (first, last), inclusive.
pub fn io_port_range(parameters: u64) -> (u16, u16) {
    (parameters as u16, (parameters >> 16) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_port_range_parameters_decode() {
        assert_eq!(io_port_range(0x03ff_03f8), (0x3f8, 0x3ff));
    }
}

//! The intercepts VTL2 installed on VTL0 (TLFS §6.1 HvCallInstallIntercept; constants in
//! hvdef::intercept): which VTL0 port and MSR accesses become intercept messages to VTL2
//! instead of being handled by vmm-lite.

use hvdef::hypercall::{InstallIntercept, PARTITION_SELF};
use hvdef::intercept::{access_mask, intercept_type, io_port_range};
use hvdef::status::HvStatus;

/// A bound on installed port ranges, so a guest cannot grow vmm-lite's memory without limit.
const MAX_PORT_RANGES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortRange {
    first: u16,
    last: u16,
    /// `access_mask` bits: READ for IN, WRITE for OUT.
    access: u32,
}

#[derive(Debug, Default)]
pub struct Intercepts {
    ports: Vec<PortRange>,
    /// `access_mask` bits for every MSR vmm-lite exits on (the synthetic range).
    msr_access: u32,
}

impl Intercepts {
    /// HvCallInstallIntercept. An access mask of zero removes the intercept.
    ///
    /// CPUID intercepts are refused with HV_STATUS_OPERATION_DENIED: KVM executes CPUID in the
    /// kernel from the table vmm-lite sets and never exits to user space on it, so vmm-lite
    /// could not deliver one. Exception intercepts are not offered either.
    pub fn install(&mut self, input: &InstallIntercept) -> Result<(), HvStatus> {
        if input.partition_id != PARTITION_SELF {
            return Err(HvStatus::INVALID_PARTITION_ID);
        }
        let valid = access_mask::READ | access_mask::WRITE | access_mask::EXECUTE;
        if input.access_type & !valid != 0 {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        // Port and MSR accesses are reads or writes; EXECUTE means nothing for them.
        let access = input.access_type & (access_mask::READ | access_mask::WRITE);
        match input.intercept_type {
            intercept_type::X64_IO_PORT => {
                let port =
                    u16::try_from(input.parameters).map_err(|_| HvStatus::INVALID_PARAMETER)?;
                self.set_ports(port, port, access)
            }
            intercept_type::X64_IO_PORT_RANGE => {
                if input.parameters >> 32 != 0 {
                    return Err(HvStatus::INVALID_PARAMETER);
                }
                let (first, last) = io_port_range(input.parameters);
                if first > last {
                    return Err(HvStatus::INVALID_PARAMETER);
                }
                self.set_ports(first, last, access)
            }
            intercept_type::X64_MSR => {
                self.msr_access = access;
                Ok(())
            }
            intercept_type::X64_CPUID => Err(HvStatus::OPERATION_DENIED),
            _ => Err(HvStatus::INVALID_PARAMETER),
        }
    }

    /// Replaces what covered exactly `first..=last` with `access` (nothing if zero).
    fn set_ports(&mut self, first: u16, last: u16, access: u32) -> Result<(), HvStatus> {
        self.ports.retain(|r| (r.first, r.last) != (first, last));
        if access == 0 {
            return Ok(());
        }
        if self.ports.len() >= MAX_PORT_RANGES {
            return Err(HvStatus::INSUFFICIENT_MEMORY);
        }
        self.ports.push(PortRange {
            first,
            last,
            access,
        });
        Ok(())
    }

    /// Whether a VTL0 access of `size` bytes at `port` goes to VTL2. An access that
    /// touches an intercepted port anywhere in its bytes is intercepted.
    pub fn port(&self, port: u16, size: u8, is_write: bool) -> bool {
        let want = if is_write {
            access_mask::WRITE
        } else {
            access_mask::READ
        };
        let last = port.saturating_add(u16::from(size.max(1)) - 1);
        self.ports
            .iter()
            .any(|r| r.access & want != 0 && r.first <= last && port <= r.last)
    }

    /// Whether VTL0's rdmsr (`is_write` false) or wrmsr of a synthetic MSR goes to VTL2.
    pub fn msr(&self, is_write: bool) -> bool {
        let want = if is_write {
            access_mask::WRITE
        } else {
            access_mask::READ
        };
        self.msr_access & want != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(kind: u32, access: u32, parameters: u64) -> InstallIntercept {
        InstallIntercept {
            partition_id: PARTITION_SELF,
            access_type: access,
            intercept_type: kind,
            parameters,
        }
    }

    #[test]
    fn port_ranges_match_by_direction_and_by_any_byte_touched() {
        let mut t = Intercepts::default();
        let rw = access_mask::READ | access_mask::WRITE;
        t.install(&install(intercept_type::X64_IO_PORT_RANGE, rw, 0x03ff_03f8))
            .unwrap();
        t.install(&install(
            intercept_type::X64_IO_PORT,
            access_mask::WRITE,
            0xf4,
        ))
        .unwrap();
        assert!(t.port(0x3f8, 1, false) && t.port(0x3ff, 1, true));
        assert!(!t.port(0x3f7, 1, true), "just below");
        assert!(t.port(0x3f6, 4, true), "a dword at 0x3f6 touches 0x3f8");
        assert!(
            t.port(0xf4, 4, true) && !t.port(0xf4, 1, false),
            "write only"
        );
        assert!(!t.port(0xffff, 4, false), "no wrap-around at the top");
        // Zero access removes.
        t.install(&install(intercept_type::X64_IO_PORT, 0, 0xf4))
            .unwrap();
        assert!(!t.port(0xf4, 1, true));
    }

    #[test]
    fn bad_installs_get_the_spec_statuses() {
        let mut t = Intercepts::default();
        let read = access_mask::READ;
        assert_eq!(
            t.install(&install(
                intercept_type::X64_IO_PORT_RANGE,
                read,
                0x03f8_03ff
            )),
            Err(HvStatus::INVALID_PARAMETER),
            "first above last"
        );
        assert_eq!(
            t.install(&install(intercept_type::X64_IO_PORT, read, 0x1_0000)),
            Err(HvStatus::INVALID_PARAMETER)
        );
        assert_eq!(
            t.install(&install(intercept_type::X64_IO_PORT, 1 << 5, 0x60)),
            Err(HvStatus::INVALID_PARAMETER),
            "unknown access bit"
        );
        assert_eq!(
            t.install(&install(intercept_type::X64_CPUID, read, 1)),
            Err(HvStatus::OPERATION_DENIED)
        );
        assert_eq!(
            t.install(&install(0x7777, read, 0)),
            Err(HvStatus::INVALID_PARAMETER)
        );
        let other = InstallIntercept {
            partition_id: 3,
            ..install(intercept_type::X64_MSR, read, 0)
        };
        assert_eq!(t.install(&other), Err(HvStatus::INVALID_PARTITION_ID));
        for port in 0..MAX_PORT_RANGES as u64 {
            t.install(&install(intercept_type::X64_IO_PORT, read, port))
                .unwrap();
        }
        assert_eq!(
            t.install(&install(intercept_type::X64_IO_PORT, read, 0x999)),
            Err(HvStatus::INSUFFICIENT_MEMORY)
        );
        assert!(!t.msr(false));
        t.install(&install(intercept_type::X64_MSR, read, 0))
            .unwrap();
        assert!(t.msr(false) && !t.msr(true));
    }
}

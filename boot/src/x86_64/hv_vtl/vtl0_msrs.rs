//! VTL0's synthetic MSRs, mediated: Parapet intercepts them and passes the ones the
//! hypervisor keeps for VTL0 (guest OS id, hypercall page, VP index, VP assist page, SynIC)
//! through to VTL0's registers with Get/SetVpRegisters, so every access is seen and logged
//! here. Anything else gets the shared policy for MSRs nobody offers (`guest::policy`).

use hvdef::registers;
use hvdef::vtl::{InputVtl, Vtl};

use crate::machine::guest::policy;
use crate::machine::hv;

const VTL0: InputVtl = InputVtl(Some(Vtl::Vtl0));

/// VTL0's rdmsr of `msr`.
pub fn read(msr: u32) -> u64 {
    let Some(name) = registers::of_synthetic_msr(msr) else {
        return policy::unoffered_msr_read(super::NAMES, msr);
    };
    match hv::get_register(VTL0, name) {
        Ok(value) => {
            let value = le::u64_at(&value, 0).unwrap_or_default();
            log::debug!("hv_vtl: VTL0 read MSR {msr:#x}: {value:#x}");
            value
        }
        Err(status) => {
            log::info!(
                "hv_vtl: VTL0 read MSR {msr:#x}: the hypervisor refused (status {:#x}); it reads 0",
                status.0
            );
            0
        }
    }
}

/// VTL0's wrmsr of `value` to `msr`.
pub fn write(msr: u32, value: u64) {
    let Some(name) = registers::of_synthetic_msr(msr) else {
        return policy::unoffered_msr_write(super::NAMES, msr, value);
    };
    match hv::set_register(VTL0, name, registers::u64_value(value)) {
        Ok(()) => log::debug!("hv_vtl: VTL0 wrote {value:#x} to MSR {msr:#x}"),
        Err(status) => log::info!(
            "hv_vtl: VTL0 wrote {value:#x} to MSR {msr:#x}: the hypervisor refused (status {:#x}); ignored",
            status.0
        ),
    }
}

//! Answering VTL0's exits: the device does the access, and the instruction is completed the
//! way the CPU would have — the accumulator for IN, RSI/RDI/RCX for string forms (shared
//! registers, handed back on the VTL return), RIP (VTL0's own, set by hypercall).

use hvdef::registers;
use hvdef::vtl::{InputVtl, Vtl};
use isolation::exit::{merge_in, ExitSite, GuestExit, PortAccess, PortDirection, StringOp};

use super::switch::{SharedGprs, VtlSwitch};
use super::vtl0_devices::{PortEffect, Vtl0Devices};
use super::vtl0_memory::Paging;
use super::vtl0_msrs;
use crate::machine::hv;

/// Elements of a REP string instruction emulated per exit; the rest run after the guest
/// re-executes the instruction (RIP stays, RCX counts down), so a huge RCX cannot hold
/// Parapet.
const MAX_ELEMENTS_PER_EXIT: u64 = 4096;
/// `rdmsr`, `wrmsr` and `cpuid` are two bytes.
const TWO_BYTE_INSTRUCTION: u8 = 2;

/// What to do after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Resume,
    PowerOff { success: bool },
}

/// Moves VTL0 past the instruction at `site` (`length` bytes when the report has none).
fn step_over(switch: &VtlSwitch, site: &ExitSite, length: u8) {
    let length = if site.instruction_length != 0 {
        site.instruction_length
    } else {
        length
    };
    let rip = site.rip.wrapping_add(u64::from(length));
    // Through VTL0's register page when the hypervisor offers one: no hypercall, no second
    // entry into VTL2.
    if switch.set_vtl0_rip(rip) {
        return;
    }
    if let Err(status) = hv::set_register(
        InputVtl(Some(Vtl::Vtl0)),
        registers::RIP,
        registers::u64_value(rip),
    ) {
        log::error!(
            "hv_vtl: cannot move VTL0 past {:#x}: status {:#x}",
            site.rip,
            status.0
        );
    }
}

pub fn handle(
    switch: &VtlSwitch,
    devices: &mut Vtl0Devices,
    exit: GuestExit,
    site: &ExitSite,
    gprs: &mut SharedGprs,
) -> Verdict {
    match exit {
        GuestExit::Port(access) => port(switch, devices, access, site, gprs),
        GuestExit::MsrRead { msr } => {
            let value = vtl0_msrs::read(msr);
            // rdmsr loads EDX:EAX and clears the upper halves of RDX and RAX.
            (gprs.rax, gprs.rdx) = (value & 0xffff_ffff, value >> 32);
            step_over(switch, site, TWO_BYTE_INSTRUCTION);
            Verdict::Resume
        }
        GuestExit::MsrWrite { msr, value } => {
            vtl0_msrs::write(msr, value);
            step_over(switch, site, TWO_BYTE_INSTRUCTION);
            Verdict::Resume
        }
        GuestExit::Memory {
            gpa,
            write,
            completed,
        } => {
            let what = if write { "write to" } else { "read of" };
            if completed {
                log::warn!(
                    "hv_vtl: VTL0 {what} {gpa:#x}, which it may not access, near RIP {:#x}; the host completed it as an empty bus",
                    site.rip
                );
                Verdict::Resume
            } else {
                // Emulating memory instructions needs an instruction emulator Parapet does
                // not have yet; stopping is safer than guessing.
                log::error!(
                    "hv_vtl: VTL0 {what} {gpa:#x} at RIP {:#x} needs emulation, which Parapet does not offer; stopping",
                    site.rip
                );
                Verdict::PowerOff { success: false }
            }
        }
        GuestExit::Cpuid {
            leaf,
            subleaf,
            default,
        } => {
            log::debug!("hv_vtl: VTL0 CPUID {leaf:#x}.{subleaf}: the host's answer");
            let [eax, ebx, ecx, edx] = default.map(u64::from);
            (gprs.rax, gprs.rbx, gprs.rcx, gprs.rdx) = (eax, ebx, ecx, edx);
            step_over(switch, site, TWO_BYTE_INSTRUCTION);
            Verdict::Resume
        }
        GuestExit::Call => {
            log::info!("hv_vtl: VTL0 made a VTL call; nothing is offered on it yet, resuming");
            Verdict::Resume
        }
        GuestExit::Unrecoverable => {
            log::error!("hv_vtl: VTL0 cannot continue (triple fault or failed entry)");
            Verdict::PowerOff { success: false }
        }
        GuestExit::Unknown { kind } => {
            log::warn!("hv_vtl: VTL0 exit of unknown kind {kind:#x}; resuming");
            Verdict::Resume
        }
    }
}

fn port(
    switch: &VtlSwitch,
    devices: &mut Vtl0Devices,
    access: PortAccess,
    site: &ExitSite,
    gprs: &mut SharedGprs,
) -> Verdict {
    let PortAccess {
        port,
        size,
        direction,
        string,
    } = access;
    if size != 1
        && (super::vtl0_devices::COM1_BASE..=super::vtl0_devices::COM1_LAST).contains(&port)
    {
        log::info!("hv_vtl: VTL0 made a {size}-byte access to COM1 port {port:#x} (8-bit registers): one byte per register");
    }
    if let Some(op) = string {
        return string_port(switch, devices, access, op, site, gprs);
    }
    let verdict = match direction {
        PortDirection::In => {
            gprs.rax = merge_in(site.rax, size, devices.read(port, size));
            Verdict::Resume
        }
        PortDirection::Out(value) => match devices.write(port, size, value) {
            PortEffect::None => Verdict::Resume,
            PortEffect::PowerOff { success } => Verdict::PowerOff { success },
        },
    };
    step_over(switch, site, 1);
    verdict
}

/// INS/OUTS: each element between the device and VTL0's memory at the linear address,
/// through VTL0's page tables.
fn string_port(
    switch: &VtlSwitch,
    devices: &mut Vtl0Devices,
    access: PortAccess,
    op: StringOp,
    site: &ExitSite,
    gprs: &mut SharedGprs,
) -> Verdict {
    let size = u64::from(access.size);
    let Some(paging) = Paging::current() else {
        log::error!(
            "hv_vtl: cannot read VTL0's paging registers; string I/O at {:#x} skipped",
            site.rip
        );
        step_over(switch, site, 1);
        return Verdict::Resume;
    };
    let total = op.elements();
    let now = total.min(MAX_ELEMENTS_PER_EXIT);
    let mut verdict = Verdict::Resume;
    let mut done = 0;
    while done < now {
        let offset = done * size;
        let at = if op.down {
            op.address.wrapping_sub(offset)
        } else {
            op.address.wrapping_add(offset)
        };
        let mut bytes = [0u8; 4];
        let element = &mut bytes[..access.size as usize];
        let result = match access.direction {
            PortDirection::Out(_) => paging
                .read_linear(at, element, site.user_mode)
                .map(|()| devices.write(access.port, access.size, u32::from_le_bytes(bytes))),
            PortDirection::In => {
                let value = devices.read(access.port, access.size).to_le_bytes();
                paging
                    .write_linear(at, &value[..access.size as usize], site.user_mode)
                    .map(|()| PortEffect::None)
            }
        };
        match result {
            Ok(PortEffect::None) => {}
            Ok(PortEffect::PowerOff { success }) => {
                verdict = Verdict::PowerOff { success };
                done += 1;
                break;
            }
            Err(fault) => {
                // Hardware would raise #PF here; without exception injection the
                // instruction ends at this element.
                log::warn!(
                    "hv_vtl: VTL0 string I/O at {:#x} touches unmapped or foreign address {:#x}; stopped there",
                    site.rip,
                    fault.address
                );
                break;
            }
        }
        done += 1;
    }
    let pointer = match access.direction {
        PortDirection::Out(_) => &mut gprs.rsi,
        PortDirection::In => &mut gprs.rdi,
    };
    let progress = op.progress(*pointer, gprs.rcx, access.size, done, now);
    (*pointer, gprs.rcx) = (progress.pointer, progress.rcx);
    let finished = progress.finished;
    if finished {
        step_over(switch, site, 1);
    }
    verdict
}

//! Answering a guest's exits: the device does the access, and the instruction is completed
//! the way the CPU would have — the accumulator for IN, RSI/RDI/RCX for string forms, RIP —
//! through the backend's [`GuestVp`].

use isolation::exit::{merge_in, ExitSite, GuestExit, PortAccess, PortDirection, StringOp};
use isolation::x86_insn::{self, Access, Destination, Extension, Source};

use super::devices::{GuestDevices, PortEffect, COM1_BASE, COM1_LAST};
use super::string_move;
use super::GuestVp;
use crate::guest::log_budget::LogBudget;

/// Elements of a REP string instruction emulated per exit; the rest run after the guest
/// re-executes the instruction (RIP stays, RCX counts down), so a huge RCX cannot hold
/// Parapet.
const MAX_ELEMENTS_PER_EXIT: u64 = 4096;
/// `rdmsr`, `wrmsr` and `cpuid` are two bytes.
pub const TWO_BYTE_INSTRUCTION: u8 = 2;

static MEMORY_LOGS: LogBudget = LogBudget::new("accesses outside their RAM");
static PORT_WIDTH_LOGS: LogBudget = LogBudget::new("odd-width COM1 accesses");
static STRING_FAULT_LOGS: LogBudget = LogBudget::new("string I/O faults");

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// What to do after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Resume,
    /// The guest waits for an interrupt: resume it once its APIC has one.
    Idle,
    /// The VP halted with interrupts disabled: only an INIT (or NMI) ends that. A guest whose
    /// every VP is stopped has died.
    Stopped,
    PowerOff {
        success: bool,
    },
}

/// Moves the guest past the instruction at `site` (`length` bytes when the report has none).
pub fn step_over(vp: &mut impl GuestVp, site: &ExitSite, length: u8) {
    let length = if site.instruction_length != 0 {
        site.instruction_length
    } else {
        length
    };
    vp.set_rip(site.rip.wrapping_add(u64::from(length)));
}

pub fn handle(
    vp: &mut impl GuestVp,
    devices: &mut GuestDevices,
    exit: GuestExit,
    site: &ExitSite,
) -> Verdict {
    let names = vp.names();
    let (backend, guest) = (names.backend, names.guest);
    match exit {
        GuestExit::Port(access) => port(vp, devices, access, site),
        GuestExit::MsrRead { msr } => {
            // A faulting access (#GP raised by the backend) does not complete.
            if let Some(value) = vp.read_msr(msr) {
                // rdmsr loads EDX:EAX and clears the upper halves of RDX and RAX.
                let gprs = vp.gprs();
                (gprs.rax, gprs.rdx) = (value & 0xffff_ffff, value >> 32);
                step_over(vp, site, TWO_BYTE_INSTRUCTION);
            }
            Verdict::Resume
        }
        GuestExit::MsrWrite { msr, value } => {
            if vp.write_msr(msr, value) {
                step_over(vp, site, TWO_BYTE_INSTRUCTION);
            }
            Verdict::Resume
        }
        GuestExit::Memory {
            gpa,
            write,
            completed,
        } => {
            let what = if write { "write to" } else { "read of" };
            if completed {
                MEMORY_LOGS.take().then(|| log::warn!(
                    "{backend}: {guest} {what} {gpa:#x}, which it may not access, near RIP {:#x}; the host completed it as an empty bus",
                    site.rip
                ));
                Verdict::Resume
            } else {
                match complete_access(vp, gpa, site) {
                    Ok(answered) => {
                        if !answered {
                            MEMORY_LOGS.take().then(|| log::warn!(
                                "{backend}: {guest} {what} {gpa:#x}, which it may not access, at RIP {:#x}; completed as an empty bus",
                                site.rip
                            ));
                        }
                        Verdict::Resume
                    }
                    Err(Incomplete::Undecoded) => {
                        // An instruction the decoder does not know: stopping is safer than
                        // guessing.
                        log::error!(
                            "{backend}: {guest} {what} {gpa:#x} at RIP {:#x} needs emulation of an instruction Parapet does not decode ({}); stopping",
                            site.rip,
                            InstructionBytes::fetch(vp, site)
                        );
                        Verdict::PowerOff { success: false }
                    }
                    Err(Incomplete::Refused(why)) => {
                        log::error!(
                            "{backend}: {guest} {what} {gpa:#x} at RIP {:#x} is a string move that {why} ({}); stopping",
                            site.rip,
                            InstructionBytes::fetch(vp, site)
                        );
                        Verdict::PowerOff { success: false }
                    }
                }
            }
        }
        GuestExit::Cpuid {
            leaf,
            subleaf,
            default,
        } => {
            let answer = super::policy::cpuid(leaf, subleaf, default);
            log::debug!("{backend}: {guest} CPUID {leaf:#x}.{subleaf}: {answer:#x?}");
            let [eax, ebx, ecx, edx] = answer.map(u64::from);
            let gprs = vp.gprs();
            (gprs.rax, gprs.rbx, gprs.rcx, gprs.rdx) = (eax, ebx, ecx, edx);
            step_over(vp, site, TWO_BYTE_INSTRUCTION);
            Verdict::Resume
        }
        GuestExit::Call => {
            log::info!(
                "{backend}: {guest} called its paravisor; nothing is offered on it yet, resuming"
            );
            Verdict::Resume
        }
        GuestExit::Halt => {
            step_over(vp, site, 1);
            if site.rflags & RFLAGS_IF == 0 {
                // Only an NMI, INIT or reset ends this on hardware.
                log::info!(
                    "{backend}: {guest} halted with interrupts disabled at RIP {:#x}",
                    site.rip
                );
                Verdict::Stopped
            } else {
                Verdict::Idle
            }
        }
        GuestExit::Unrecoverable => {
            log::error!("{backend}: {guest} cannot continue (triple fault or failed entry)");
            Verdict::PowerOff { success: false }
        }
        GuestExit::Mmio { .. } | GuestExit::FirmwareCall { .. } => {
            log::error!("{backend}: {guest} exit {exit:?} is not one an x86 guest makes; stopping");
            Verdict::PowerOff { success: false }
        }
        GuestExit::Unknown { kind } => {
            log::warn!("{backend}: {guest} exit of unknown kind {kind:#x}; resuming");
            Verdict::Resume
        }
    }
}

/// Completes the memory access at `site` to `gpa`, outside the guest's RAM: a device the
/// backend emulates there answers it (`GuestVp::mmio_read`/`mmio_write`); with none, it goes
/// as on a bus with nothing on it: a read returns all ones, a write goes nowhere. `Ok(true)`
/// if a device answered, `Ok(false)` for the empty bus. MOVS goes to
/// [`string_move::complete`].
fn complete_access(vp: &mut impl GuestVp, gpa: u64, site: &ExitSite) -> Result<bool, Incomplete> {
    let (mode, cs_base) = vp.code().ok_or(Incomplete::Undecoded)?;
    let paging = vp.paging().ok_or(Incomplete::Undecoded)?;
    // Fetch what can be fetched of the longest instruction: the bytes may end at a page the
    // guest does not map.
    let (bytes, fetched) = paging.fetch(cs_base.wrapping_add(site.rip), site.user_mode);
    let instruction = x86_insn::decode(&bytes[..fetched], mode).ok_or(Incomplete::Undecoded)?;
    let ones = |bytes: u8| u64::MAX >> (64 - 8 * u32::from(bytes));
    let mut answered = false;
    match instruction.access {
        Access::Write { size, source } => {
            let value = match source {
                Source::Immediate(value) => value,
                Source::Register(Destination::Register(n)) => register(vp, n)?,
                Source::Register(Destination::HighByte(n)) => register(vp, n)? >> 8,
            } & ones(size);
            answered = vp.mmio_write(gpa, size, value);
        }
        Access::Read {
            size,
            destination,
            extension,
        } => {
            let (number, shift, width) = match (destination, extension) {
                (Destination::HighByte(n), _) => (n, 8, 1),
                (Destination::Register(n), Extension::Merge) => (n, 0, size),
                (Destination::Register(n), Extension::Zero { to } | Extension::Sign { to }) => {
                    (n, 0, to)
                }
            };
            let raw = match vp.mmio_read(gpa, size) {
                Some(value) => {
                    answered = true;
                    value & ones(size)
                }
                None => ones(size),
            };
            let value = match extension {
                Extension::Merge | Extension::Zero { .. } => raw,
                // Sign-extend the source to the destination's width.
                Extension::Sign { .. } => {
                    let bits = 8 * u32::from(size);
                    ((((raw << (64 - bits)) as i64) >> (64 - bits)) as u64) & ones(width)
                }
            };
            let old = register(vp, number)?;
            let new = match width {
                // A 32-bit result clears the upper half (Intel SDM Vol. 1 §3.4.1.1).
                4 | 8 => value,
                _ => (old & !(ones(width) << shift)) | (value << shift),
            };
            vp.set_register(number, new);
        }
        Access::Move { .. } => {
            return string_move::complete(vp, &paging, mode, gpa, site, instruction)
                .map_err(Incomplete::Refused);
        }
    }
    step_over(vp, site, instruction.length);
    Ok(answered)
}

/// General-purpose register `number`; one the backend does not hold counts as undecoded.
fn register(vp: &mut impl GuestVp, number: u8) -> Result<u64, Incomplete> {
    vp.register(number).ok_or(Incomplete::Undecoded)
}

/// Why an access to a device was not completed (the guest then stops).
enum Incomplete {
    /// The instruction could not be fetched or decoded.
    Undecoded,
    /// A string move that was decoded but not carried out, and why.
    Refused(&'static str),
}

fn port(
    vp: &mut impl GuestVp,
    devices: &mut GuestDevices,
    access: PortAccess,
    site: &ExitSite,
) -> Verdict {
    let PortAccess {
        port,
        size,
        direction,
        string,
    } = access;
    if size != 1 && (COM1_BASE..=COM1_LAST).contains(&port) && PORT_WIDTH_LOGS.take() {
        let names = vp.names();
        log::info!(
            "{}: {} made a {size}-byte access to COM1 port {port:#x} (8-bit registers): one byte per register",
            names.backend,
            names.guest
        );
    }
    if let Some(op) = string {
        return string_port(vp, devices, access, op, site);
    }
    let verdict = match direction {
        PortDirection::In => {
            vp.gprs().rax = merge_in(site.rax, size, devices.read(port, size));
            Verdict::Resume
        }
        PortDirection::Out(value) => match devices.write(port, size, value) {
            PortEffect::None => Verdict::Resume,
            PortEffect::PowerOff { success } => Verdict::PowerOff { success },
        },
    };
    step_over(vp, site, 1);
    verdict
}

/// INS/OUTS: each element between the device and the guest's memory at the linear address,
/// through the guest's page tables.
fn string_port(
    vp: &mut impl GuestVp,
    devices: &mut GuestDevices,
    access: PortAccess,
    op: StringOp,
    site: &ExitSite,
) -> Verdict {
    let size = u64::from(access.size);
    let names = vp.names();
    let Some(paging) = vp.paging() else {
        log::error!(
            "{}: cannot read {}'s paging registers; string I/O at {:#x} skipped",
            names.backend,
            names.guest,
            site.rip
        );
        step_over(vp, site, 1);
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
                STRING_FAULT_LOGS.take().then(|| log::warn!(
                    "{}: {} string I/O at {:#x} touches unmapped or foreign address {:#x}; stopped there",
                    names.backend,
                    names.guest,
                    site.rip,
                    fault.address
                ));
                break;
            }
        }
        done += 1;
    }
    let gprs = vp.gprs();
    let pointer = match access.direction {
        PortDirection::Out(_) => &mut gprs.rsi,
        PortDirection::In => &mut gprs.rdi,
    };
    let progress = op.progress(*pointer, gprs.rcx, access.size, done, now);
    (*pointer, gprs.rcx) = (progress.pointer, progress.rcx);
    if progress.finished {
        step_over(vp, site, 1);
    }
    verdict
}

/// The bytes at the guest's RIP, for a log line about an instruction Parapet cannot emulate.
struct InstructionBytes {
    bytes: [u8; 15],
    len: usize,
}

impl InstructionBytes {
    fn fetch(vp: &mut impl GuestVp, site: &ExitSite) -> Self {
        let (bytes, len) = match (vp.code(), vp.paging()) {
            (Some((_, cs_base)), Some(paging)) => {
                paging.fetch(cs_base.wrapping_add(site.rip), site.user_mode)
            }
            _ => ([0; 15], 0),
        };
        Self { bytes, len }
    }
}

impl core::fmt::Display for InstructionBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.len == 0 {
            return write!(f, "bytes unavailable");
        }
        write!(f, "bytes")?;
        for byte in &self.bytes[..self.len] {
            write!(f, " {byte:02x}")?;
        }
        Ok(())
    }
}

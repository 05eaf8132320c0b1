//! The `svm` isolation backend: with AMD-V and nested paging and no paravisor interface,
//! Parapet is the hypervisor. Its guest runs under a VMCB whose nested page tables map the
//! guest's RAM only (never Parapet's region), with every port and MSR intercepted (all-ones
//! permission maps) and CPUID, HLT, shutdown and nested page faults too. Exits are decoded by
//! `isolation::svm_exit` into the platform-neutral exit value and answered by the same
//! `guest` code the `hv_vtl` backend uses.
//!
//! The guest has a VP per CPU Parapet runs on, VP n on CPU n: the first enters the guest's
//! boot state, the others wait for INIT and a start-up IPI from it, as on a PC (`machine`
//! carries IPIs and interrupts between them; `entry` has the states).
//!
//! Without NRIPS (QEMU TCG has none) the next RIP comes from EXITINFO2 for IOIO and from the
//! instruction's fixed length otherwise (rdmsr, wrmsr, cpuid: 2 bytes; hlt: 1).

mod entry;
mod machine;
mod npt;
mod run;
mod vmcb;
mod vp;

use arch::x86_64::instructions;
use isolation::svm_exit::{self, code};
use kernel::executor::yield_now;
use spin::Once;

use crate::guest::log_budget::LogBudget;
use crate::guest::{self, doorbell, ram, PerTrip};
use crate::machine::guest::devices::{GuestDevices, COM1_IRQ};
use crate::machine::guest::exits::{self, Verdict};
use crate::machine::guest::loader::{self, GuestStart};
use crate::machine::guest::GuestVp;
use machine::{Machine, Startup};
use vp::{SvmVp, Tables, VECTOR_AC, VECTOR_DB, VECTOR_UD};

static INSTRUCTION_LOGS: LogBudget = LogBudget::new("hypervisor instructions");

/// The guest's console lines are printed as `guest| ...`.
const CONSOLE_PREFIX: &str = "guest";
/// I/O permission map: 12 KiB, one bit per port plus the bits an access may spill into;
/// MSR permission map: 8 KiB, two bits per MSR (APM §15.10.1, §15.11).
const IOPM_PAGES: u64 = 3;
const MSRPM_PAGES: u64 = 2;
/// The end of the PC's first megabyte.
const LEGACY_WINDOW_END: u64 = 0x10_0000;
/// COM1's I/O APIC input (ISA IRQ 4, identity-mapped as on PCs).
const COM1_GSI: u32 = COM1_IRQ as u32;

/// Why the guest could not be started.
#[derive(Debug)]
pub enum SvmError {
    Enable(&'static str),
    OutOfFrames,
    Load(loader::LoadError),
}

impl core::fmt::Display for SvmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SvmError::Enable(why) => write!(f, "cannot enable SVM: {why}"),
            SvmError::OutOfFrames => write!(f, "no frames for the VMCB, maps or nested tables"),
            SvmError::Load(e) => write!(f, "loading the guest: {e}"),
        }
    }
}

impl From<kernel::memory::OutOfFrames> for SvmError {
    fn from(_: kernel::memory::OutOfFrames) -> Self {
        SvmError::OutOfFrames
    }
}

/// What the VPs share, set up once by `host`.
static MACHINE: Once<Machine> = Once::new();

/// Loads the guest staged at `address` (`size` bytes) for `vps` VPs and runs VP 0 on this
/// CPU, the others on theirs, until the guest powers off; the machine then stops with the
/// guest's verdict, or with failure if the guest cannot start.
pub async fn host(address: u64, size: u64, vps: usize) {
    let fail = |e: SvmError| -> ! {
        log::error!("svm: guest not started: {e}");
        kernel::platform::exit(arch::ExitStatus::Failure);
    };
    let (start, tables) = match prepare(address, size, vps) {
        Ok(prepared) => prepared,
        Err(e) => fail(e),
    };
    log::info!("svm: guest running under nested paging on {vps} VPs");
    for cpu in 1..vps {
        match kernel::executor::on_cpu(cpu) {
            Some(executor) => {
                executor.spawn(serve_vp(cpu, tables, None));
            }
            None => log::error!("svm: cpu{cpu} has no executor; the guest's VP {cpu} never starts"),
        }
    }
    serve_vp(0, tables, Some(start)).await
}

/// Loads the guest and builds what every VP shares: the nested page tables, the permission
/// maps and the machine (devices, APICs).
fn prepare(address: u64, size: u64, vps: usize) -> Result<(GuestStart, Tables), SvmError> {
    let start = loader::load(address, size, vps as u32).map_err(SvmError::Load)?;
    // What the first megabyte holds beyond guest RAM (the BIOS areas a PC's OS scans for the
    // EBDA, MP floating pointer, SMBIOS, option ROMs) reads as zeros: the guest finds its
    // machine in Parapet's ACPI tables, not in the host firmware's.
    let nested_root = npt::build(ram::ranges())?;
    let zeros = kernel::memory::allocate_zeroed_frame()?;
    npt::map_read_only(nested_root, (0, LEGACY_WINDOW_END), zeros)?;
    let tables = Tables {
        nested_root,
        iopm: kernel::memory::allocate_filled_frames(IOPM_PAGES, 0xff)?,
        msrpm: kernel::memory::allocate_filled_frames(MSRPM_PAGES, 0xff)?,
    };
    MACHINE.call_once(|| Machine::new(GuestDevices::new(CONSOLE_PREFIX), vps));
    log::info!(
        "svm: nested tables at {:#x} map {} RAM ranges; entry {:#x}",
        tables.nested_root,
        ram::ranges().len(),
        start.context.rip
    );
    Ok((start, tables))
}

/// Exits and interrupts one VP has seen, for its power-off report.
#[derive(Default)]
struct Counts {
    exits: u64,
    interrupts: u64,
    /// TSC cycles spent in exit round trips: from VMRUN to the exit handled.
    exit_cycles: u64,
}

/// Runs VP `index` on this CPU: from `boot` (the first VP), or from each start-up IPI the
/// guest sends it after an INIT.
async fn serve_vp(index: usize, tables: Tables, boot: Option<GuestStart>) {
    let Some(machine) = MACHINE.get() else {
        return;
    };
    let vp = kernel::memory::allocate_zeroed_frame()
        .map_err(SvmError::from)
        // SAFETY: platform svm means CPUID reports SVM; the frame is this CPU's alone.
        .and_then(|save_area| unsafe { run::enable(save_area) }.map_err(SvmError::Enable))
        .and_then(|()| SvmVp::new(index, machine, tables));
    let mut vp = match vp {
        Ok(vp) => vp,
        Err(e) => {
            log::error!("svm: VP {index} cannot run: {e}");
            guest::power_off(false);
        }
    };
    let mut booted = boot.is_some();
    if let Some(start) = boot {
        vp.enter(&start.context, start.rsi);
    }
    let mut counts = Counts::default();
    loop {
        if !booted {
            let vector = wait_for_start_up(machine, index).await;
            log::info!(
                "svm: VP {index} starts in real mode at {:#x}",
                u64::from(vector) << 12
            );
            vp.enter(&entry::start_up_context(vector), 0);
        }
        run_until_init(&mut vp, machine, index, &mut counts).await;
        booted = false;
        log::info!("svm: VP {index} was reset by INIT; it waits for a start-up IPI");
    }
}

/// Gives the CPU away until VP `index`'s doorbell rings (an IPI or interrupt for it) or a
/// tick has passed (its APIC timer, typed input).
async fn idle(index: usize) {
    doorbell::park(index).await;
}

/// Typed input goes into COM1, whose interrupt line follows.
fn take_input(machine: &Machine) {
    if !crate::guest::console::input_waiting() {
        return;
    }
    let mut devices = machine.devices.lock();
    devices.take_input();
    machine.set_irq_line(COM1_GSI, devices.com1_interrupt());
}

/// Waits until a start-up IPI reaches VP `index`; returns its vector.
async fn wait_for_start_up(machine: &Machine, index: usize) -> u8 {
    loop {
        {
            let mut startup = machine.vps[index].startup.lock();
            if let Startup::StartAt(vector) = *startup {
                *startup = Startup::Running;
                return vector;
            }
        }
        idle(index).await;
    }
}

/// Runs the VP in the guest, exit after exit, until an INIT resets it (returns) or the guest
/// powers off (the machine stops).
async fn run_until_init(vp: &mut SvmVp, machine: &Machine, index: usize, counts: &mut Counts) {
    let mut last_yield = crate::cpus::ticks(index);
    loop {
        if vp.init_pending() {
            return;
        }
        let round_trip_start = instructions::rdtsc();
        take_input(machine);
        vp.offer_interrupt();
        vp.run();
        let state = vp.exit_state();
        let verdict = match state.code {
            // A physical interrupt ended the run; it was taken when `run` enabled interrupts.
            code::INTR | code::NMI => {
                counts.interrupts += 1;
                Verdict::Resume
            }
            // The guest can take the interrupt the APIC holds: the next run injects it.
            code::VINTR => Verdict::Resume,
            code::VMMCALL => {
                INSTRUCTION_LOGS.take().then(|| {
                    log::info!(
                        "svm: VP {index} made a VMMCALL at RIP {:#x}; no hypercalls are offered (#UD)",
                        state.rip
                    )
                });
                vp.inject_exception(VECTOR_UD, None);
                Verdict::Resume
            }
            // SVM is hidden from the guest (CPUID): its instructions are undefined there.
            code::VMRUN
            | code::VMLOAD
            | code::VMSAVE
            | code::STGI
            | code::CLGI
            | code::SKINIT
            | code::INVLPGA => {
                INSTRUCTION_LOGS.take().then(|| {
                    log::info!(
                        "svm: VP {index} ran an SVM instruction (exit {:#x}) at RIP {:#x}; #UD",
                        state.code,
                        state.rip
                    )
                });
                vp.inject_exception(VECTOR_UD, None);
                Verdict::Resume
            }
            // INVD would drop dirty cache lines machine-wide, Parapet's too: done as WBINVD
            // would leave things, that is, nothing to do for a guest that cannot see caches.
            code::INVD => {
                let length = if state.instruction_length != 0 {
                    state.instruction_length
                } else {
                    2
                };
                vp.set_rip(state.rip.wrapping_add(u64::from(length)));
                Verdict::Resume
            }
            // A nested fault in the guest's own page walk, or while an event was being
            // delivered, is not the instruction's data access: completing that would skip it.
            code::NPF if state.info1 & svm_exit::NPF_IN_PAGE_WALK != 0 || vp.delivering_event() => {
                log::error!(
                    "svm: VP {index}'s page walk or event delivery touched {:#x}, outside its RAM, at RIP {:#x}; stopping",
                    state.info2,
                    state.rip
                );
                Verdict::PowerOff { success: false }
            }
            // Given back as they came: the guest's own handlers deal with them.
            c if c == code::EXCEPTION_BASE + VECTOR_DB => {
                vp.inject_exception(VECTOR_DB, None);
                Verdict::Resume
            }
            c if c == code::EXCEPTION_BASE + VECTOR_AC => {
                vp.inject_exception(VECTOR_AC, Some(state.info1 as u32));
                Verdict::Resume
            }
            _ => match svm_exit::decode(&state, 0) {
                Some((exit, site)) => {
                    counts.exits += 1;
                    let mut devices = machine.devices.lock();
                    let verdict = exits::handle(vp, &mut devices, exit, &site);
                    // COM1's line follows what the access did to the UART.
                    machine.set_irq_line(COM1_GSI, devices.com1_interrupt());
                    drop(devices);
                    counts.exit_cycles += instructions::rdtsc().wrapping_sub(round_trip_start);
                    verdict
                }
                None => {
                    log::error!(
                        "svm: VP {index}: unexpected exit {:#x} (info {:#x}, {:#x}) at RIP {:#x}; stopping",
                        state.code,
                        state.info1,
                        state.info2,
                        state.rip
                    );
                    Verdict::PowerOff { success: false }
                }
            },
        };
        match verdict {
            Verdict::PowerOff { success } => {
                let mut devices = machine.devices.lock();
                if devices.has_partial_line() {
                    devices.flush_line();
                }
                let round_trip = PerTrip::new(
                    counts.exit_cycles,
                    crate::machine::time::tsc_hz(),
                    counts.exits,
                );
                log::info!(
                    "svm: the guest powered off ({}) after {} exits and {} interrupts on VP {index} ({round_trip} us per exit round trip)",
                    if success { "success" } else { "failure" },
                    counts.exits,
                    counts.interrupts,
                );
                guest::power_off(success);
            }
            Verdict::Idle => {
                // The guest waits for an interrupt: the CPU is Parapet's until its APIC has
                // one for it (or an INIT comes).
                while !vp.interrupt_ready() && !vp.init_pending() {
                    idle(index).await;
                    take_input(machine);
                }
            }
            Verdict::Stopped => {
                if machine.stop(index) {
                    log::error!(
                        "svm: every VP of the guest has halted with interrupts disabled; stopping"
                    );
                    guest::power_off(false);
                }
                while !vp.init_pending() {
                    idle(index).await;
                }
            }
            Verdict::Resume => {}
        }
        let tick = crate::cpus::ticks(index);
        if tick != last_yield {
            last_yield = tick;
            yield_now().await;
        }
    }
}

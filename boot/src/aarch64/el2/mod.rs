//! The `el2` isolation backend: Parapet at EL2 hosts its guest at EL1 behind stage-2
//! translation over the guest's RAM only (never Parapet's region). The guest's accesses to
//! anything else are stage-2 data aborts, decoded from their syndrome
//! (`isolation::el2_exit`) into MMIO exits for the emulated PL011 at the guest's 0x0900_0000
//! (or an empty bus); its HVC and SMC calls are PSCI (`devices::psci`); Parapet's own timer
//! keeps running through the guest's runs because physical interrupts go to EL2.
//!
//! Guest CPU n runs on Parapet's CPU n: CPU 0 starts at the payload's entry, the others when
//! the guest starts them with PSCI CPU_ON.

mod devices;
mod inject;
mod interrupts;
mod linux;
mod stage2;

pub use interrupts::{virtual_timer_fired, VIRTUAL_TIMER_INTID};
pub use stage2::IPA_LIMIT;

use arch::aarch64::guest_entry::{self, GuestContext};
use arch::aarch64::registers;
use devices::GuestDevices;
use interrupts::ListRegisters;
use isolation::el2_exit::{self, class, El2ExitState, SystemRegister};
use isolation::exit::{GuestExit, MmioAccess};
use kernel::executor::yield_now;
use spin::{Mutex, Once};

use ::devices::psci::{self, CpuPower, Effect};

use crate::guest::elf_load::{self, LoadError, Loaded};
use crate::guest::log_budget::LogBudget;
use crate::guest::{self, ram, PerTrip};

/// HCR_EL2 while hosting (Arm ARM D23.2.53): VM (stage 2 on), SWIO, FMO/IMO/AMO (physical
/// interrupts to EL2, whatever the guest masks), TWI (WFI traps: the guest idles in
/// Parapet), TSC (SMC traps: PSCI over SMC reaches Parapet, not firmware), RW (EL1 is
/// AArch64).
///
/// APK and API (bits 40, 41): the guest's pointer-authentication keys and instructions do not
/// trap; Parapet itself uses no pointer authentication, so the keys the guest sets are only
/// the guest's.
const HCR_HOSTING: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 13)
    | (1 << 19)
    | (1 << 31)
    | (1 << 40)
    | (1 << 41);
/// CPTR_EL2 with E2H 0 (D23.2.29): no FP/SIMD, SVE, SME or trace traps (TFP 10, TZ 8, TSM 12,
/// TTA 20 clear), the RES1 bits (13, 9, 7:0) set: FP, SVE and SME belong to the guest
/// (Parapet is soft-float). Bit 12 is RES1 where SME is not implemented.
const CPTR_EL2_NO_TRAPS: u64 = 0x22ff;
const CPTR_EL2_TSM_RES1: u64 = 1 << 12;
/// ZCR_EL2/SMCR_EL2.LEN at its largest: the guest may use every vector length the CPU has.
const VECTOR_LENGTH_MAX: u64 = 0xf;
/// MDCR_EL2.HPMD (bit 17): the guest's PMU counts nothing at EL2.
const MDCR_EL2_HPMD: u64 = 1 << 17;
/// CNTHCTL_EL2: EL1PCTEN and EL1PCEN: the guest reads the physical counter and uses its EL1
/// physical timer without trapping (D23.2.80).
const CNTHCTL_EL1_TIMERS: u64 = 0b11;
/// SCTLR_EL1 as after reset: MMU and caches off, the RES1 bits set (D23.2.161).
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;
/// PSTATE for a guest CPU's first instruction: EL1h, DAIF masked (D1.4 / SPSR_EL2 layout).
const PSTATE_EL1H_MASKED: u64 = 0x3c5;
/// MPIDR_EL1 bit 31 is RES1.
const MPIDR_RES1: u64 = 1 << 31;
/// The only largest guest CPU count Parapet tracks.
const MAX_CPUS: usize = kernel::executor::MAX_CPUS;

/// What every guest CPU shares.
struct Guest {
    stage2_root: u64,
    cpus: usize,
    devices: Mutex<GuestDevices>,
    /// Per guest CPU: where it stands and, while pending, where it starts (entry, context).
    cpu_state: Mutex<[CpuState; MAX_CPUS]>,
}

#[derive(Clone, Copy)]
struct CpuState {
    power: CpuPower,
    start: (u64, u64),
}

impl CpuState {
    const OFF: CpuState = CpuState {
        power: CpuPower::Off,
        start: (0, 0),
    };
}

static GUEST: Once<Guest> = Once::new();
static MEMORY_LOGS: LogBudget = LogBudget::new("accesses outside their RAM");
static CALL_LOGS: LogBudget = LogBudget::new("unknown firmware calls");
static CPU_LOGS: LogBudget = LogBudget::new("CPU starts");
static SYSREG_LOGS: LogBudget = LogBudget::new("system-register traps");

/// What to do after an exit.
enum Verdict {
    Resume,
    /// Wait for Parapet's next tick, then resume (WFI).
    Idle,
    /// This guest CPU is off (CPU_OFF); it may be started again.
    Off,
    PowerOff {
        success: bool,
    },
}

/// Loads the guest staged at `address` (`size` bytes) and runs it: CPU 0 here from its
/// entry, the others on their own CPUs once started. The machine stops with the guest's
/// verdict, or with failure if it cannot start.
pub async fn host(address: u64, size: u64, cpus: usize) {
    let cpus = cpus.min(MAX_CPUS);
    let (entry, context) = match load(address, size, cpus) {
        Ok(start) => start,
        Err(e) => {
            log::error!("el2: guest not started: loading the guest: {e}");
            kernel::platform::exit(arch::ExitStatus::Failure);
        }
    };
    let stage2_root = match stage2::build(ram::ranges()) {
        Ok(root) => root,
        Err(e) => {
            log::error!("el2: guest not started: no frames for the stage-2 tables: {e}");
            kernel::platform::exit(arch::ExitStatus::Failure);
        }
    };
    let guest = GUEST.call_once(|| Guest {
        stage2_root,
        cpus,
        devices: Mutex::new(GuestDevices::new(cpus)),
        cpu_state: Mutex::new([CpuState::OFF; MAX_CPUS]),
    });
    guest.cpu_state.lock()[0] = CpuState {
        power: CpuPower::Pending,
        start: (entry, context),
    };
    log::info!(
        "el2: guest running behind stage 2 ({} RAM ranges), entry {entry:#x}, {cpus} CPUs",
        ram::ranges().len()
    );
    for cpu in 1..cpus {
        match kernel::executor::on_cpu(cpu) {
            Some(executor) => {
                executor.spawn(host_cpu(guest, cpu));
            }
            None => log::error!("el2: cpu{cpu} has no executor; guest CPU {cpu} cannot start"),
        }
    }
    host_cpu(guest, 0).await
}

/// Why the payload could not be loaded.
enum LoadFailure {
    Elf(LoadError),
    Linux(linux::LinuxError),
}

impl core::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadFailure::Elf(e) => e.fmt(f),
            LoadFailure::Linux(e) => write!(f, "Linux guest: {e}"),
        }
    }
}

/// Loads the payload, a Linux guest bundle or an ELF, for `cpus` CPUs; returns CPU 0's entry
/// and its x0 (the device tree for Linux).
fn load(address: u64, size: u64, cpus: usize) -> Result<(u64, u64), LoadFailure> {
    let mut head = [0u8; 8];
    let head_len = head.len().min(size as usize);
    // A payload outside RAM fails in either loader with its own message.
    let _ = ram::load_from(address, &mut head[..head_len]);
    if linux::is_linux(&head[..head_len]) {
        let loaded = linux::load(address, size, cpus).map_err(LoadFailure::Linux)?;
        return Ok((loaded.entry, loaded.device_tree));
    }
    let Loaded { entry, span } = elf_load::load(address, size, kernel::elf::MACHINE_AARCH64, 0..0)
        .map_err(LoadFailure::Elf)?;
    // The guest starts with its MMU and caches off: what was written through Parapet's
    // cacheable mapping must be in memory, and no stale instruction may be fetched.
    registers::clean_dcache_range(span.0, span.1.saturating_sub(span.0));
    registers::invalidate_icache_all();
    Ok((entry, 0))
}

/// Serves guest CPU `cpu` on this CPU: waits until it is started, then runs it.
async fn host_cpu(guest: &'static Guest, cpu: usize) {
    prepare_cpu(guest, cpu);
    // The guest's interrupts go through the GICv3 virtual CPU interface; on a GICv2 machine
    // it gets none (its CPU interface would need emulating).
    let mut list_registers =
        (crate::machine::platform::gic().version() == 3).then(|| ListRegisters::new(cpu));
    let (mut exits, mut interrupts) = (0u64, 0u64);
    // Counter ticks spent in exit round trips: from entering the guest to its exit handled.
    let mut exit_ticks = 0u64;
    loop {
        let Some((entry, context)) = wait_for_start(guest, cpu).await else {
            return;
        };
        // PSCI: a CPU comes on with its MMU and caches off, whatever it left them as.
        // SAFETY: the guest's EL1 state; nothing of Parapet's depends on it.
        unsafe { registers::set_sctlr_el1(SCTLR_EL1_RESET) };
        registers::isb();
        let mut vcpu = GuestContext {
            pc: entry,
            pstate: PSTATE_EL1H_MASKED,
            ..Default::default()
        };
        vcpu.x[0] = context;
        let mut last_yield = crate::cpus::ticks(cpu);
        loop {
            let round_trip_start = registers::counter();
            if let Some(lrs) = list_registers.as_mut() {
                let kicks = lrs.sync(&mut guest.devices.lock());
                interrupts::kick(kicks);
            }
            // SAFETY: HCR_EL2, VTCR/VTTBR and the lower-EL vectors were set for this CPU by
            // `prepare_cpu`; the context's PSTATE names EL1 (set above, or the guest's own as
            // its exception left it).
            let vector = unsafe { guest_entry::enter(&mut vcpu) };
            // SAFETY: this CPU's vectors handle IRQs; one that ended the run is taken here.
            unsafe { registers::unmask_irqs() };
            let verdict = match vector {
                guest_entry::VECTOR_IRQ | guest_entry::VECTOR_IRQ_AARCH32 => {
                    interrupts += 1;
                    Verdict::Resume
                }
                // The guest's EL0 may run AArch32 code; its traps read the same syndromes.
                guest_entry::VECTOR_SYNC | guest_entry::VECTOR_SYNC_AARCH32 => {
                    exits += 1;
                    let verdict = synchronous(guest, cpu, &mut vcpu);
                    exit_ticks += registers::counter().wrapping_sub(round_trip_start);
                    verdict
                }
                other => {
                    log::error!(
                        "el2: guest CPU {cpu} took vector {other} (FIQ or SError) at {:#x}, ESR {:#x}; stopping",
                        vcpu.pc,
                        vcpu.esr
                    );
                    Verdict::PowerOff { success: false }
                }
            };
            match verdict {
                Verdict::Resume => {}
                Verdict::Idle => match list_registers.as_mut() {
                    // The guest waits for an interrupt: until its list registers hold one.
                    Some(lrs) => loop {
                        let kicks = lrs.sync(&mut guest.devices.lock());
                        interrupts::kick(kicks);
                        if lrs.guest_has_pending() {
                            break;
                        }
                        // Until something rings for this CPU, or a tick on (its virtual
                        // timer, typed input).
                        crate::guest::doorbell::park(cpu).await;
                    },
                    None => crate::cpus::next_tick(cpu).await,
                },
                Verdict::Off => {
                    let mut states = guest.cpu_state.lock();
                    states[cpu] = CpuState::OFF;
                    if states.iter().all(|s| s.power == CpuPower::Off) {
                        // No CPU left to start another: on hardware the machine would hang.
                        log::error!("el2: the guest turned off its last CPU; stopping");
                        kernel::platform::exit(arch::ExitStatus::Failure);
                    }
                    break;
                }
                Verdict::PowerOff { success } => {
                    guest.devices.lock().flush();
                    let round_trip =
                        PerTrip::new(exit_ticks, registers::counter_frequency(), exits);
                    log::info!(
                        "el2: the guest powered off ({}) after {exits} exits and {interrupts} interrupts on CPU {cpu} ({round_trip} us per exit round trip)",
                        if success { "success" } else { "failure" },
                    );
                    guest::power_off(success);
                }
            }
            let tick = crate::cpus::ticks(cpu);
            if tick != last_yield {
                last_yield = tick;
                yield_now().await;
            }
        }
    }
}

/// Waits, a tick at a time, until guest CPU `cpu` is started; `None` if the guest has not
/// enough CPUs for it.
async fn wait_for_start(guest: &Guest, cpu: usize) -> Option<(u64, u64)> {
    if cpu >= guest.cpus {
        return None;
    }
    loop {
        {
            let mut states = guest.cpu_state.lock();
            if states[cpu].power == CpuPower::Pending {
                states[cpu].power = CpuPower::On;
                return Some(states[cpu].start);
            }
        }
        // CPU_ON rings this CPU's doorbell.
        crate::guest::doorbell::park(cpu).await;
    }
}

/// Points this CPU's stage 2 at the guest's tables and sets what the guest's EL1 starts
/// with.
fn prepare_cpu(guest: &Guest, cpu: usize) {
    // SAFETY: the tables map only guest RAM; the guest runs nowhere yet on this CPU, so
    // nothing depends on the old stage-2 or EL1 state; Parapet itself runs at EL2, which
    // neither affects.
    unsafe {
        registers::set_vtcr_el2(stage2::vtcr(registers::id_aa64mmfr0()));
        registers::set_vttbr_el2(guest.stage2_root | (stage2::VMID << 48));
        registers::set_hcr_el2(HCR_HOSTING);
        registers::set_cnthctl_el2(registers::cnthctl_el2() | CNTHCTL_EL1_TIMERS);
        registers::set_sctlr_el1(SCTLR_EL1_RESET);
        registers::set_vmpidr_el2(MPIDR_RES1 | cpu as u64);
        registers::set_vpidr_el2(registers::midr());
        registers::set_cntvoff_el2(0);
        let sve = (registers::id_aa64pfr0() >> 32) & 0xf != 0;
        let sme = (registers::id_aa64pfr1() >> 24) & 0xf != 0;
        let tsm = if sme { 0 } else { CPTR_EL2_TSM_RES1 };
        registers::set_cptr_el2(CPTR_EL2_NO_TRAPS | tsm);
        registers::isb();
        if sve {
            registers::set_zcr_el2(VECTOR_LENGTH_MAX);
        }
        if sme {
            registers::set_smcr_el2(VECTOR_LENGTH_MAX);
        }
        // HPMN: every event counter stays the guest's; HPMD: none counts at EL2.
        let counters = (registers::pmcr() >> 11) & 0x1f;
        registers::set_mdcr_el2(MDCR_EL2_HPMD | counters);
        registers::isb();
        registers::invalidate_guest_tlb();
    }
}

/// A synchronous exception from the guest: decoded, answered, and the guest moved on.
fn synchronous(guest: &Guest, cpu: usize, vcpu: &mut GuestContext) -> Verdict {
    let state = El2ExitState {
        esr: vcpu.esr,
        far: vcpu.far,
        hpfar: vcpu.hpfar,
        pc: vcpu.pc,
        x: vcpu.x,
        pstate: vcpu.pstate,
    };
    if state.class() == class::SYSTEM_REGISTER {
        return system_register(guest, cpu, vcpu);
    }
    let Some((exit, site)) = el2_exit::decode(&state, cpu as u32) else {
        log::error!(
            "el2: guest CPU {cpu}: unexpected exception class {:#x} (ESR {:#x}) at {:#x}; stopping",
            state.class(),
            state.esr,
            state.pc
        );
        return Verdict::PowerOff { success: false };
    };
    let step = u64::from(site.instruction_length);
    match exit {
        GuestExit::Mmio { gpa, size, access } => {
            let write = match access {
                MmioAccess::Write(value) => Some(value),
                MmioAccess::Read { .. } => None,
            };
            // The TPM and its bus, outside the devices' lock: a write may run a TPM command.
            let (answered, kicks) = match (devices::gpio_offset(gpa), devices::tis_offset(gpa)) {
                (_, Some(offset)) => (
                    crate::guest::tpm::tis_mmio_access(offset, size, write),
                    Default::default(),
                ),
                (Some(offset), _) => {
                    let answer = crate::guest::tpm::gpio_access(offset, write);
                    let mut devices = guest.devices.lock();
                    if let Some((_, line)) = answer {
                        devices.set_gpio_interrupt(line);
                    }
                    (answer.map(|(value, _)| value), devices.take_kicks())
                }
                (None, None) => {
                    let mut devices = guest.devices.lock();
                    (devices.access(gpa, size, access), devices.take_kicks())
                }
            };
            interrupts::kick(kicks);
            if let MmioAccess::Read {
                register,
                sign_extend,
                wide,
            } = access
            {
                // Nothing there: the bus reads all ones. Register 31 is the zero register.
                let raw = answered.unwrap_or(u64::MAX);
                if let Some(x) = vcpu.x.get_mut(usize::from(register)) {
                    *x = el2_exit::loaded_value(raw, size, sign_extend, wide);
                }
            }
            if answered.is_none() && MEMORY_LOGS.take() {
                log::warn!(
                    "el2: the guest {} {gpa:#x}, which it may not access, at {:#x}; completed as an empty bus",
                    if matches!(access, MmioAccess::Write(_)) { "write to" } else { "read of" },
                    state.pc
                );
            }
            vcpu.pc = vcpu.pc.wrapping_add(step);
            Verdict::Resume
        }
        // Cache maintenance on something that is not RAM: nothing to maintain.
        GuestExit::Memory {
            completed: true, ..
        } => {
            vcpu.pc = vcpu.pc.wrapping_add(step);
            Verdict::Resume
        }
        GuestExit::Memory { gpa, write, .. } => {
            log::error!(
                "el2: the guest {} {gpa:#x} at {:#x} with an instruction the syndrome does not describe; stopping",
                if write { "wrote to" } else { "read" },
                state.pc
            );
            Verdict::PowerOff { success: false }
        }
        GuestExit::FirmwareCall { function, args } => {
            // A trapped SMC returns to itself; an HVC already points past.
            if state.class() == class::SMC64 {
                vcpu.pc = vcpu.pc.wrapping_add(step);
            }
            firmware_call(guest, cpu, vcpu, function, args)
        }
        GuestExit::Halt => {
            vcpu.pc = vcpu.pc.wrapping_add(step);
            Verdict::Idle
        }
        other => {
            log::error!("el2: guest CPU {cpu}: exit {other:?} has no answer here; stopping");
            Verdict::PowerOff { success: false }
        }
    }
}

/// A trapped system-register access: an SGI the guest sends (ICC_SGI1R_EL1, which traps
/// because physical interrupts go to EL2) reaches its targets through the vGIC; anything
/// else gets an Undefined Instruction exception, as for a register its CPU does not have.
fn system_register(guest: &Guest, cpu: usize, vcpu: &mut GuestContext) -> Verdict {
    let access = el2_exit::system_register(vcpu.esr);
    if access.encoding == SystemRegister::ICC_SGI1R_EL1 && !access.read {
        let value = match access.register {
            31 => 0,
            r => vcpu.x[usize::from(r)],
        };
        let kicks = guest.devices.lock().vgic().send_sgi1r(cpu, value);
        interrupts::kick(kicks);
        vcpu.pc = vcpu.pc.wrapping_add(4);
        return Verdict::Resume;
    }
    if SYSREG_LOGS.take() {
        log::info!(
            "el2: guest CPU {cpu} {} system register {:?} at {:#x}; undefined for it",
            if access.read { "read" } else { "wrote" },
            access.encoding,
            vcpu.pc
        );
    }
    inject::undefined_instruction(vcpu);
    Verdict::Resume
}

/// PSCI over HVC/SMC. The call is answered and a CPU start claimed under one lock, so two
/// guest CPUs cannot both start a third.
fn firmware_call(
    guest: &Guest,
    cpu: usize,
    vcpu: &mut GuestContext,
    function: u32,
    args: [u64; 3],
) -> Verdict {
    let effect = {
        let mut states = guest.cpu_state.lock();
        let (result, effect) = psci::call(
            function,
            args,
            guest.cpus,
            |c| states[c].power,
            |address| ram::contains(address, 4),
        );
        vcpu.x[0] = result;
        if let Effect::StartCpu {
            cpu: target,
            entry,
            context,
        } = effect
        {
            states[target] = CpuState {
                power: CpuPower::Pending,
                start: (entry, context),
            };
        }
        if result == psci::NOT_SUPPORTED && function != psci::FEATURES && CALL_LOGS.take() {
            log::info!("el2: the guest called firmware function {function:#x}; not supported");
        }
        effect
    };
    match effect {
        Effect::None => Verdict::Resume,
        Effect::StartCpu {
            cpu: target, entry, ..
        } => {
            if CPU_LOGS.take() {
                log::info!("el2: guest CPU {cpu} started CPU {target} at {entry:#x}");
            }
            crate::guest::doorbell::ring(target);
            Verdict::Resume
        }
        Effect::CpuOff => Verdict::Off,
        Effect::PowerOff => Verdict::PowerOff { success: true },
        Effect::Reset => {
            log::info!("el2: the guest asked for a reset; Parapet does not restart guests");
            Verdict::PowerOff { success: false }
        }
    }
}

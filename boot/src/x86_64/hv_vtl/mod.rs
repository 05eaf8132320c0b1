//! The `hv_vtl` isolation backend: Parapet in VTL2 hosting a VTL0 guest through the Hyper-V
//! VTL interface (TLFS §15), on Hyper-V or on vmm-lite.
//!
//! At start: load the guest, install intercepts for the devices Parapet emulates, enable VTL0
//! for the partition and on every VP, and host it on every VP (each with its own VTL switch
//! pages). Each VTL entry's intercept message is decoded into the platform-neutral
//! `isolation::exit::GuestExit`, answered by the VTL0 devices, and VTL0 resumes. The
//! devices' interrupts reach VTL0 through the I/O APIC Parapet emulates (`interrupts`).

mod interrupts;
mod switch;
mod vtl0_msrs;

use hvdef::hypercall::{
    code, EnablePartitionVtl, InitialVpContext, InstallIntercept, VpVtlInput, PARTITION_SELF,
};
use hvdef::intercept::{access_mask, intercept_type};
use hvdef::status::HvStatus;
use hvdef::vtl::Vtl;
use isolation::exit::{ExitSite, GuestExit};
use isolation::hv_message;
use isolation::x86_insn::CodeMode;
use kernel::executor::yield_now;
use spin::Mutex;

use crate::guest::PerTrip;
use crate::machine::guest::devices::GuestDevices;
use crate::machine::guest::exits::{self, Verdict};
use crate::machine::guest::paging::Paging;
use crate::machine::guest::{loader, Gprs, GuestVp, Names};
use crate::machine::hv;
use hvdef::registers;
use hvdef::vtl::InputVtl;
use switch::{EntryReason, VtlSwitch};

#[derive(Clone, Copy, Debug)]
pub enum HvVtlError {
    OutOfFrames,
    NoHypercallPage,
    Hypercall(HvStatus),
    Load(loader::LoadError),
    /// A hypercall that sets VTL0 up failed: which, and its status.
    Setup(&'static str, HvStatus),
}

impl core::fmt::Display for HvVtlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HvVtlError::OutOfFrames => write!(f, "no frames for the VTL switch pages"),
            HvVtlError::NoHypercallPage => write!(f, "the hypercall page is not enabled"),
            HvVtlError::Hypercall(s) => write!(f, "a hypercall failed with status {:#x}", s.0),
            HvVtlError::Load(e) => write!(f, "loading the VTL0 guest: {e}"),
            HvVtlError::Setup(what, s) => write!(f, "{what} failed with status {:#x}", s.0),
        }
    }
}

/// VTL0's devices, shared by the VPs that host it.
static DEVICES: Mutex<Option<GuestDevices>> = Mutex::new(None);

const NAMES: Names = Names {
    backend: "hv_vtl",
    guest: "VTL0",
};
/// VTL0's console lines are printed as `vtl0| ...`.
const CONSOLE_PREFIX: &str = "vtl0";

/// VTL0 on this VP, stopped in an intercept: its shared registers as the VTL entry brought
/// them, the rest through the register page or hypercalls.
struct Vtl0Vp<'a> {
    switch: &'a VtlSwitch,
    gprs: &'a mut Gprs,
    /// The code VTL0 runs, as the intercept message's header gives it.
    code: Option<(CodeMode, u64)>,
}

impl GuestVp for Vtl0Vp<'_> {
    fn names(&self) -> Names {
        NAMES
    }

    fn gprs(&mut self) -> &mut Gprs {
        self.gprs
    }

    fn set_rip(&mut self, rip: u64) {
        // Through VTL0's register page when the hypervisor offers one: no hypercall, no
        // second entry into VTL2.
        if self.switch.set_vtl0_rip(rip) {
            return;
        }
        if let Err(status) = hv::set_register(
            InputVtl(Some(Vtl::Vtl0)),
            registers::RIP,
            registers::u64_value(rip),
        ) {
            log::error!(
                "hv_vtl: cannot move VTL0's RIP to {rip:#x}: status {:#x}",
                status.0
            );
        }
    }

    fn paging(&mut self) -> Option<Paging> {
        let names = [
            registers::CR0,
            registers::CR3,
            registers::CR4,
            registers::EFER,
        ];
        let values = hv::get_registers(InputVtl(Some(Vtl::Vtl0)), &names).ok()?;
        let value = |i: usize| le::u64_at(&values[i], 0);
        Some(Paging::new(value(0)?, value(1)?, value(2)?, value(3)?))
    }

    fn code(&mut self) -> Option<(CodeMode, u64)> {
        self.code
    }

    fn mmio_read(&mut self, gpa: u64, size: u8) -> Option<u64> {
        crate::guest::tpm::mmio_read(gpa, size).or_else(|| interrupts::mmio_read(gpa, size))
    }

    fn mmio_write(&mut self, gpa: u64, size: u8, value: u64) -> bool {
        crate::guest::tpm::mmio_write(gpa, size, value) || interrupts::mmio_write(gpa, size, value)
    }

    fn read_msr(&mut self, msr: u32) -> Option<u64> {
        Some(vtl0_msrs::read(msr))
    }

    fn write_msr(&mut self, msr: u32, value: u64) -> bool {
        vtl0_msrs::write(msr, value);
        true
    }
}

/// Loads the guest, enables VTL0 on all `vps` VPs, and hosts it on each: VP 0 runs the guest
/// from its entry; the others wait, in VTL0, for the guest to start them (INIT-SIPI or
/// StartVirtualProcessor), serving them from then on. Runs on the boot CPU. The machine stops
/// with the guest's verdict when it powers off, and with failure if it cannot be started: a
/// paravisor without its guest serves nothing.
pub async fn host(address: u64, size: u64, vps: usize) {
    let rsi = match start(address, size, vps) {
        Ok(rsi) => rsi,
        Err(e) => {
            log::error!("hv_vtl: VTL0 not started: {e}");
            kernel::platform::exit(arch::ExitStatus::Failure);
        }
    };
    log::info!("hv_vtl: VTL0 enabled on {vps} VPs; its entry runs on VP 0");
    for cpu in 1..vps {
        match kernel::executor::on_cpu(cpu) {
            Some(executor) => {
                executor.spawn(host_vp(cpu, 0));
            }
            None => log::error!("hv_vtl: cpu{cpu} has no executor; VTL0's VP {cpu} stays unserved"),
        }
    }
    host_vp(0, rsi).await
}

/// Returns RSI for VP 0's entry (the boot context carries no general registers).
fn start(address: u64, size: u64, vps: usize) -> Result<u64, HvVtlError> {
    let start = loader::load(address, size, vps as u32).map_err(HvVtlError::Load)?;
    *DEVICES.lock() = Some(GuestDevices::new(CONSOLE_PREFIX));
    install_intercepts()?;
    enable_vtl0(&start.context, vps)?;
    Ok(start.rsi)
}

/// Serves VTL0 on this CPU's VP until the guest powers off; `rsi` is the VP's RSI at its
/// first entry.
async fn host_vp(cpu: usize, rsi: u64) {
    let switch = match VtlSwitch::new() {
        Ok(switch) => switch,
        Err(e) => {
            log::error!("hv_vtl: VTL0 cannot run on VP {cpu}: {e}");
            return;
        }
    };
    let mut gprs = Gprs {
        rsi,
        ..Gprs::default()
    };
    let (mut intercepts, mut interrupts) = (0u64, 0u64);
    // TSC cycles spent in intercept round trips: from the VTL return to the exit handled
    // (one rdtsc each side: every instruction counts where VTL2 code is emulated).
    let mut intercept_cycles = 0u64;
    let started = kernel::platform::now_ns();
    let mut last_yield = crate::cpus::ticks(cpu);
    loop {
        let round_trip_start = arch::x86_64::instructions::rdtsc();
        // Typed input reaches COM1; its line, after that and after the last exit's port
        // accesses, goes to VTL0's I/O APIC.
        let com1_line = with_devices(|d| {
            d.take_input();
            d.com1_interrupt()
        });
        interrupts::set_com1_line(com1_line);
        let reason = switch.run_vtl0(&mut gprs);
        match reason {
            EntryReason::Intercept => intercepts += 1,
            EntryReason::Interrupt => interrupts += 1,
            _ => {}
        }
        let verdict = match reason {
            // Our interrupt handlers ran as VTL2 resumed; the yield below runs the tasks
            // they woke.
            EntryReason::Interrupt => {
                sample_rip(cpu, interrupts);
                Verdict::Resume
            }
            EntryReason::Intercept => match switch.take_message() {
                Some(message) => match hv_message::decode(&message) {
                    Some((exit, site)) => {
                        let mut vp = Vtl0Vp {
                            switch: &switch,
                            gprs: &mut gprs,
                            code: hv_message::code(&message),
                        };
                        with_devices(|d| exits::handle(&mut vp, d, exit, &site))
                    }
                    None => {
                        log::warn!(
                            "hv_vtl: malformed intercept message of type {:#x} on VP {cpu}; resuming VTL0",
                            message.message_type()
                        );
                        Verdict::Resume
                    }
                },
                None => {
                    log::warn!(
                        "hv_vtl: intercept entry without a message on VP {cpu}; resuming VTL0"
                    );
                    Verdict::Resume
                }
            },
            EntryReason::VtlCall => {
                let mut vp = Vtl0Vp {
                    switch: &switch,
                    gprs: &mut gprs,
                    code: None,
                };
                with_devices(|d| exits::handle(&mut vp, d, GuestExit::Call, &ExitSite::default()))
            }
            EntryReason::Other(reason) => {
                log::warn!("hv_vtl: VTL entry for reason {reason} on VP {cpu}; resuming VTL0");
                Verdict::Resume
            }
        };
        if reason == EntryReason::Intercept {
            intercept_cycles += arch::x86_64::instructions::rdtsc().wrapping_sub(round_trip_start);
        }
        // A stopped VP is taken for a dead guest here: VTL0 gets no INIT from Parapet.
        let verdict = match verdict {
            Verdict::Stopped => {
                log::error!("hv_vtl: VTL0 stopped on VP {cpu}; stopping");
                Verdict::PowerOff { success: false }
            }
            other => other,
        };
        if let Verdict::PowerOff { success } = verdict {
            with_devices(|d| {
                if d.has_partial_line() {
                    d.flush_line();
                }
            });
            let ran_us = (kernel::platform::now_ns() - started) / 1000;
            let round_trip_us =
                PerTrip::new(intercept_cycles, crate::machine::time::tsc_hz(), intercepts).micros();
            log::info!(
                "hv_vtl: VTL0 powered off ({}) after {intercepts} intercepts and {interrupts} entries for our interrupts on VP {cpu} in {ran_us} us ({round_trip_us} us per intercept round trip)",
                if success { "success" } else { "failure" },
            );
            crate::guest::power_off(success);
        }
        // Let the other tasks on this CPU (the monitor) run once a tick has passed: yielding
        // on every exit would cost an executor round each (VTL2 code is slow to run here).
        let tick = crate::cpus::ticks(cpu);
        if tick != last_yield || reason == EntryReason::Interrupt {
            last_yield = tick;
            yield_now().await;
        }
    }
}

/// Runs `f` on VTL0's devices (set up by `start` before any VP hosts VTL0).
fn with_devices<R>(f: impl FnOnce(&mut GuestDevices) -> R) -> R {
    let mut devices = DEVICES.lock();
    f(devices.get_or_insert_with(|| GuestDevices::new(CONSOLE_PREFIX)))
}

/// Intercepts for the ports Parapet emulates and for VTL0's synthetic MSRs (mediated in
/// `vtl0_msrs`); CPUID for the hypervisor leaves is asked for too, and a host that cannot
/// deliver CPUID exits (vmm-lite on KVM) says so.
fn install_intercepts() -> Result<(), HvVtlError> {
    let install = |intercept_type, parameters| {
        let input = InstallIntercept {
            partition_id: PARTITION_SELF,
            access_type: access_mask::READ | access_mask::WRITE,
            intercept_type,
            parameters,
        };
        hv::simple_call(code::INSTALL_INTERCEPT, &input.encode())
    };
    for (first, last) in GuestDevices::intercepted_ranges() {
        let parameters = u64::from(first) | (u64::from(last) << 16);
        let status = install(intercept_type::X64_IO_PORT_RANGE, parameters);
        if !status.is_success() {
            return Err(HvVtlError::Setup("InstallIntercept(IoPortRange)", status));
        }
    }
    let status = install(intercept_type::X64_MSR, 0);
    if !status.is_success() {
        return Err(HvVtlError::Setup("InstallIntercept(Msr)", status));
    }
    let status = install(
        intercept_type::X64_CPUID,
        u64::from(hvdef::cpuid::LEAF_VENDOR),
    );
    if !status.is_success() {
        log::info!(
            "hv_vtl: the host does not deliver CPUID intercepts (status {:#x}); VTL0 reads the host's CPUID",
            status.0
        );
    }
    Ok(())
}

/// EnablePartitionVtl(VTL0), then EnableVpVtl on every VP with `context`.
fn enable_vtl0(context: &InitialVpContext, vps: usize) -> Result<(), HvVtlError> {
    let partition = EnablePartitionVtl {
        partition_id: PARTITION_SELF,
        target_vtl: Vtl::Vtl0,
        flags: 0,
    };
    let status = hv::simple_call(code::ENABLE_PARTITION_VTL, &partition.encode());
    if !status.is_success() {
        return Err(HvVtlError::Setup("EnablePartitionVtl", status));
    }
    for vp in 0..vps {
        let input = VpVtlInput {
            partition_id: PARTITION_SELF,
            vp_index: vp as u32,
            target_vtl: Vtl::Vtl0,
            context: *context,
        };
        let status = hv::simple_call(code::ENABLE_VP_VTL, &input.encode());
        if !status.is_success() {
            return Err(HvVtlError::Setup("EnableVpVtl", status));
        }
    }
    Ok(())
}

/// Every few hundred of Parapet's interrupts taken while VTL0 ran, VTL0's RIP at debug level:
/// where a guest that prints nothing spends its time (`parapet.log=debug`).
fn sample_rip(cpu: usize, interrupts: u64) {
    const EVERY: u64 = 500;
    if !interrupts.is_multiple_of(EVERY) || !log::log_enabled!(log::Level::Debug) {
        return;
    }
    if let Ok(values) = hv::get_registers(InputVtl(Some(Vtl::Vtl0)), &[registers::RIP]) {
        if let Some(rip) = le::u64_at(&values[0], 0) {
            log::debug!("hv_vtl: VTL0 on VP {cpu} is at RIP {rip:#x}");
        }
    }
}

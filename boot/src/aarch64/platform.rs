//! The aarch64 [`Platform`](kernel::platform::Platform) and interrupt handling.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use arch::aarch64::gic::{self, Gic};
use arch::aarch64::{exception, power, registers, timer};
use arch::ExitStatus;
use kernel::platform::Platform;

use super::{percpu, serial};

/// Tick rate of the EL2 timer.
pub const TICK_HZ: u64 = 100;
/// SGI used to kick a CPU out of its idle wait.
pub const KICK_SGI: u32 = 1;

static TIMER_INTID: AtomicU32 = AtomicU32::new(26);
static GIC: spin::Once<Gic> = spin::Once::new();

/// Records the interrupt controller. Once, on the boot CPU, before any CPU takes interrupts.
pub fn set_gic(gic: Gic) {
    GIC.call_once(|| gic);
}

/// The interrupt controller; only called once `set_gic` has run (interrupts are enabled only
/// after it).
pub fn gic() -> &'static Gic {
    GIC.get()
        .expect("the GIC is recorded before interrupts are enabled")
}
static COUNTER_HZ: AtomicU64 = AtomicU64::new(1);

pub fn set_timer(intid: u32, counter_hz: u64) {
    TIMER_INTID.store(intid, Ordering::Relaxed);
    COUNTER_HZ.store(counter_hz.max(1), Ordering::Relaxed);
}

pub fn timer_intid() -> u32 {
    TIMER_INTID.load(Ordering::Relaxed)
}

fn now_ns() -> u64 {
    let hz = COUNTER_HZ.load(Ordering::Relaxed);
    (u128::from(registers::counter()) * 1_000_000_000 / u128::from(hz)) as u64
}

fn kick(index: usize) {
    if let Some(cpu) = percpu::PER_CPU.get(index) {
        if crate::cpus::is_online(index) {
            // SAFETY: every online CPU handles KICK_SGI.
            unsafe { gic().send_sgi(cpu.sgi_target.load(Ordering::Relaxed), KICK_SGI) };
        }
    }
}

fn idle_unless(has_work: &dyn Fn() -> bool) {
    registers::mask_irqs();
    // SAFETY: the vectors are installed on every CPU before its executor runs. WFI wakes on an
    // interrupt that became pending after the question, even while masked.
    unsafe {
        if !has_work() {
            registers::wait_for_interrupt();
        }
        registers::unmask_irqs();
    }
}

fn enable_interrupts() {
    // SAFETY: only called by the executor, after the CPU's vectors and GIC are set up.
    unsafe { registers::unmask_irqs() };
}

fn without_interrupts(f: &mut dyn FnMut()) {
    registers::without_irqs(f)
}

/// TLBI ...IS broadcasts to every CPU in the inner-shareable domain, and the DSB after it
/// waits for them all (Arm ARM D8.13 "TLB maintenance"): no IPIs needed.
fn flush_tlb(va: u64, size: u64) {
    // SAFETY: TLB maintenance only drops cached translations.
    unsafe { registers::flush_tlb_range(va, size) };
}

pub static PLATFORM: Platform = Platform {
    console_write: serial::write_str,
    console_write_emergency: serial::emergency_write_str,
    now_ns,
    cpu_index: percpu::cpu_index,
    kick,
    idle_unless,
    enable_interrupts,
    without_interrupts,
    flush_tlb,
    exit: power::exit,
};

fn irq() {
    // SAFETY: every acknowledged INTID other than spurious is ended below.
    let intid = unsafe { gic().acknowledge() };
    if intid == gic::SPURIOUS {
        return;
    }
    if intid == timer_intid() {
        crate::cpus::tick(percpu::cpu_index());
        timer::rearm();
    } else if intid == crate::machine::el2::VIRTUAL_TIMER_INTID {
        // A hosted guest's timer is due: its CPU goes back to it (`el2::interrupts`).
        crate::machine::el2::virtual_timer_fired();
    } else if intid != KICK_SGI {
        log::warn!("unexpected interrupt {intid}");
    }
    gic().end_of_interrupt(intid);
}

fn fatal(frame: &exception::TrapFrame) -> ! {
    let ec = frame.exception_class();
    kernel::console::emergency_write_fmt(format_args!(
        "\nparapet: fatal exception {} (vector {}, EC {:#x}) esr={:#x} elr={:#x} far={:#x} on cpu{}\n",
        exception::class_name(ec),
        frame.vector,
        ec,
        frame.esr,
        frame.elr,
        frame.far,
        percpu::cpu_index(),
    ));
    power::exit(ExitStatus::Failure)
}

pub static EXCEPTION_HANDLERS: exception::ExceptionHandlers =
    exception::ExceptionHandlers { irq, fatal };

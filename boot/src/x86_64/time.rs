//! Time on x86_64: the TSC as the clock, the local APIC timer as the tick, both calibrated
//! against the PIT at boot.
//!
//! The APIC timer runs one-shot, re-armed at each interrupt for the earlier of this CPU's
//! next tick and its alarm: a deadline a hosted guest's emulated APIC timer needs met between
//! ticks ([`set_alarm`]). So a guest's timer interrupt comes when due, not at the next tick.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use arch::x86_64::{apic, instructions::rdtsc, pit};
use kernel::executor::MAX_CPUS;

/// Tick rate of the APIC timer.
pub const TICK_HZ: u64 = 100;
/// Calibration interval: long enough for 0.1 % accuracy from the PIT's 838 ns resolution.
const CALIBRATION_MICROS: u64 = 10_000;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static APIC_COUNT_PER_TICK: AtomicU32 = AtomicU32::new(0);
/// Per CPU: the TSC of its next tick, and of its alarm (`NO_ALARM`: none).
static NEXT_TICK: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static ALARM: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(NO_ALARM) }; MAX_CPUS];
const NO_ALARM: u64 = u64::MAX;

/// What a timer interrupt was for.
pub struct Fired {
    pub tick: bool,
    pub alarm: bool,
}

/// Measures the TSC and APIC timer rates. Runs on the boot CPU with its APIC enabled.
///
/// # Safety
/// The PIT must be free, and the APIC enabled on this CPU.
pub unsafe fn calibrate(timer_vector: u8) {
    let mut tsc_start = 0;
    // SAFETY: the caller owns the PIT; the APIC timer runs masked (counts, never fires).
    unsafe {
        pit::wait_micros(CALIBRATION_MICROS, || {
            apic::start_timer(timer_vector, u32::MAX, false, true);
            tsc_start = rdtsc();
        });
    }
    let tsc_elapsed = rdtsc() - tsc_start;
    let apic_elapsed = u64::from(u32::MAX - apic::timer_current_count());
    let tsc_hz = tsc_elapsed * 1_000_000 / CALIBRATION_MICROS;
    TSC_HZ.store(tsc_hz.max(1), Ordering::Relaxed);
    let per_tick = apic_elapsed * 1_000_000 / CALIBRATION_MICROS / TICK_HZ;
    APIC_COUNT_PER_TICK.store(
        per_tick.clamp(1, u64::from(u32::MAX)) as u32,
        Ordering::Relaxed,
    );
    TSC_AT_BOOT.store(tsc_start, Ordering::Relaxed);
}

/// Starts this CPU's tick.
///
/// # Safety
/// The IDT must handle `timer_vector`, whose handler calls [`on_timer_interrupt`].
pub unsafe fn start_tick(timer_vector: u8) {
    let cpu = kernel::platform::cpu_index();
    if let Some(next) = NEXT_TICK.get(cpu) {
        next.store(rdtsc().wrapping_add(tsc_per_tick()), Ordering::Relaxed);
    }
    // SAFETY: the caller guarantees the vector is handled.
    unsafe {
        apic::start_timer(
            timer_vector,
            APIC_COUNT_PER_TICK.load(Ordering::Relaxed),
            false,
            false,
        )
    };
}

/// TSC cycles per tick.
fn tsc_per_tick() -> u64 {
    (TSC_HZ.load(Ordering::Relaxed) / TICK_HZ).max(1)
}

/// From this CPU's timer interrupt (interrupts off): whether its tick and its alarm fell
/// due; the timer is armed again for what comes next.
pub fn on_timer_interrupt() -> Fired {
    let cpu = kernel::platform::cpu_index();
    let (Some(next_tick), Some(alarm)) = (NEXT_TICK.get(cpu), ALARM.get(cpu)) else {
        return Fired {
            tick: true,
            alarm: false,
        };
    };
    let now = rdtsc();
    let mut next = next_tick.load(Ordering::Relaxed);
    let tick = now >= next;
    if tick {
        next = next.wrapping_add(tsc_per_tick());
        if next <= now {
            // Missed ticks (a long stall): skip ahead rather than fire a burst.
            next = now.wrapping_add(tsc_per_tick());
        }
        next_tick.store(next, Ordering::Relaxed);
    }
    let alarm_due = alarm.load(Ordering::Relaxed) <= now;
    if alarm_due {
        alarm.store(NO_ALARM, Ordering::Relaxed);
    }
    arm(next.min(alarm.load(Ordering::Relaxed)), now);
    Fired {
        tick,
        alarm: alarm_due,
    }
}

/// Asks for this CPU's timer interrupt at `deadline_ns` ([`now_ns`]'s clock) if that comes
/// before its next tick and any alarm it has: for a hosted guest's timer.
pub fn set_alarm(deadline_ns: u64) {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    let offset = u128::from(deadline_ns) * u128::from(hz) / 1_000_000_000;
    let deadline = TSC_AT_BOOT
        .load(Ordering::Relaxed)
        .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX));
    kernel::platform::without_interrupts(|| {
        let cpu = kernel::platform::cpu_index();
        let (Some(next_tick), Some(alarm)) = (NEXT_TICK.get(cpu), ALARM.get(cpu)) else {
            return;
        };
        if deadline >= alarm.load(Ordering::Relaxed)
            || deadline >= next_tick.load(Ordering::Relaxed)
        {
            return;
        }
        alarm.store(deadline, Ordering::Relaxed);
        arm(deadline, rdtsc());
    });
}

/// Arms the one-shot timer to fire at TSC `target` (at once if that has passed).
fn arm(target: u64, now: u64) {
    let cycles = target.saturating_sub(now);
    let per_tick = u128::from(APIC_COUNT_PER_TICK.load(Ordering::Relaxed));
    let count = u128::from(cycles) * per_tick / u128::from(tsc_per_tick());
    let count = u32::try_from(count).unwrap_or(u32::MAX).max(1);
    // SAFETY: re-arming this CPU's own timer, set up by `start_tick`.
    unsafe { apic::restart_timer(count) };
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// The TSC's value at calibration, where [`now_ns`] counts from.
pub fn tsc_at_boot() -> u64 {
    TSC_AT_BOOT.load(Ordering::Relaxed)
}

/// Nanoseconds since calibration.
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let ticks = rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
}

/// Busy-waits `micros` on the TSC (for the SIPI protocol's delays).
pub fn spin_micros(micros: u64) {
    let end = now_ns() + micros * 1_000;
    while now_ns() < end {
        core::hint::spin_loop();
    }
}

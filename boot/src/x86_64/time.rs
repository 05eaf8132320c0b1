//! Time on x86_64: the TSC as the clock, the local APIC timer as the tick, both calibrated
//! against the PIT at boot.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use arch::x86_64::{apic, instructions::rdtsc, pit};

/// Tick rate of the APIC timer.
pub const TICK_HZ: u64 = 100;
/// Calibration interval: long enough for 0.1 % accuracy from the PIT's 838 ns resolution.
const CALIBRATION_MICROS: u64 = 10_000;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static APIC_COUNT_PER_TICK: AtomicU32 = AtomicU32::new(0);

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

/// Starts this CPU's periodic tick.
///
/// # Safety
/// The IDT must handle `timer_vector`.
pub unsafe fn start_tick(timer_vector: u8) {
    // SAFETY: the caller guarantees the vector is handled.
    unsafe {
        apic::start_timer(
            timer_vector,
            APIC_COUNT_PER_TICK.load(Ordering::Relaxed),
            true,
            false,
        )
    };
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

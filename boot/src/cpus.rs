//! What every architecture tracks about each CPU, by dense index (0 = the boot CPU).
//! Architecture-specific identity (APIC ID, MPIDR) lives in each arch's `percpu`.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::executor::MAX_CPUS;

pub struct CpuState {
    /// Set once the CPU runs with its interrupts set up: from then on it can take IPIs.
    pub online: AtomicBool,
    /// Timer ticks taken.
    pub ticks: AtomicU64,
}

pub static CPUS: [CpuState; MAX_CPUS] = [const {
    CpuState {
        online: AtomicBool::new(false),
        ticks: AtomicU64::new(0),
    }
}; MAX_CPUS];

pub fn is_online(cpu: usize) -> bool {
    CPUS.get(cpu)
        .is_some_and(|c| c.online.load(Ordering::Acquire))
}

pub fn set_online(cpu: usize) {
    CPUS[cpu].online.store(true, Ordering::Release);
}

pub fn ticks(cpu: usize) -> u64 {
    CPUS.get(cpu).map_or(0, |c| c.ticks.load(Ordering::Relaxed))
}

/// Gives the CPU to the other tasks on `cpu` until its next timer tick.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub async fn next_tick(cpu: usize) {
    let tick = ticks(cpu);
    while ticks(cpu) == tick {
        kernel::executor::yield_now().await;
    }
}

/// Counts a timer tick on `cpu` (from the timer interrupt handler).
pub fn tick(cpu: usize) {
    if let Some(c) = CPUS.get(cpu) {
        c.ticks.fetch_add(1, Ordering::Relaxed);
    }
}

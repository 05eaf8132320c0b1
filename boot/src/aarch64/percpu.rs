//! Per-CPU data, found through TPIDR_EL2.

use core::sync::atomic::{AtomicU64, Ordering};

use arch::aarch64::gic::GicCpu;
use arch::aarch64::registers::{set_tpidr_el2, tpidr_el2};
use kernel::executor::MAX_CPUS;

pub struct PerCpu {
    index: usize,
    pub mpidr: AtomicU64,
    /// How other CPUs address this one with an SGI (see `arch::aarch64::gic::GicCpu`).
    pub sgi_target: AtomicU64,
}

/// Each CPU's own interface to the GIC, as `init_cpu` described it, by CPU index.
static GIC_CPUS: [spin::Once<GicCpu>; MAX_CPUS] = [const { spin::Once::new() }; MAX_CPUS];

/// Records this CPU's GIC interface (once, at its bring-up).
pub fn set_gic_cpu(cpu: GicCpu) {
    GIC_CPUS[cpu_index()].call_once(|| cpu);
}

/// This CPU's GIC interface, once recorded.
pub fn gic_cpu() -> Option<&'static GicCpu> {
    GIC_CPUS.get(cpu_index())?.get()
}

impl PerCpu {
    const fn new(index: usize) -> Self {
        Self {
            index,
            mpidr: AtomicU64::new(0),
            sgi_target: AtomicU64::new(0),
        }
    }
}

pub static PER_CPU: [PerCpu; MAX_CPUS] = {
    let mut cpus = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        cpus[i] = PerCpu::new(i);
        i += 1;
    }
    cpus
};

/// Points TPIDR_EL2 at `PER_CPU[index]`.
///
/// # Safety
/// Call once per CPU, before anything calls [`cpu_index`], with a distinct `index`.
pub unsafe fn install(index: usize, mpidr: u64) {
    let cpu = &PER_CPU[index];
    cpu.mpidr.store(mpidr, Ordering::Relaxed);
    // SAFETY: TPIDR_EL2 is reserved for this pointer; PER_CPU is 'static.
    unsafe { set_tpidr_el2(cpu as *const PerCpu as u64) };
}

pub fn current() -> &'static PerCpu {
    let p = tpidr_el2() as *const PerCpu;
    // SAFETY: `install` runs first on every CPU, so TPIDR_EL2 holds a pointer into PER_CPU.
    unsafe { &*p }
}

pub fn cpu_index() -> usize {
    current().index
}

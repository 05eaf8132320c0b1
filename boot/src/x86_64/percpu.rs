//! Per-CPU data, found through the GS base: `gs:[0]` holds the CPU's dense index.

use core::sync::atomic::{AtomicU32, Ordering};

use arch::x86_64::instructions::{read_gs_u64, wrmsr, IA32_GS_BASE};
use kernel::executor::MAX_CPUS;

#[repr(C)]
pub struct PerCpu {
    /// Must stay first: `cpu_index` reads it at gs:[0].
    index: u64,
    pub apic_id: AtomicU32,
}

impl PerCpu {
    const fn new(index: u64) -> Self {
        Self {
            index,
            apic_id: AtomicU32::new(0),
        }
    }
}

pub static PER_CPU: [PerCpu; MAX_CPUS] = {
    let mut cpus = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        cpus[i] = PerCpu::new(i as u64);
        i += 1;
    }
    cpus
};

/// Points this CPU's GS base at `PER_CPU[index]`.
///
/// # Safety
/// Call once per CPU, before anything calls [`cpu_index`], with a distinct `index`.
pub unsafe fn install(index: usize, apic_id: u32) {
    let cpu = &PER_CPU[index];
    cpu.apic_id.store(apic_id, Ordering::Relaxed);
    // SAFETY: GS base is otherwise unused in long mode; PER_CPU is 'static.
    unsafe { wrmsr(IA32_GS_BASE, cpu as *const PerCpu as u64) };
}

pub fn cpu_index() -> usize {
    // SAFETY: `install` ran first on every CPU (the entry paths call it before any Rust code
    // that could ask), so gs:[0] is PerCpu::index.
    unsafe { read_gs_u64(0) as usize }
}

pub fn current() -> &'static PerCpu {
    &PER_CPU[cpu_index()]
}

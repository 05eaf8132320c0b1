//! What the kernel core needs from the CPU and machine it runs on, installed once at boot.
//!
//! The kernel is arch-neutral; the boot crate fills [`Platform`] with the arch layer's
//! functions. Host tests install a fake.

use arch::ExitStatus;
use spin::Once;

pub struct Platform {
    /// Writes text to the console hardware (callers serialise whole lines).
    pub console_write: fn(&str),
    /// Writes text to the console hardware even if a CPU that stopped holds its lock:
    /// for panics and fatal exceptions only.
    pub console_write_emergency: fn(&str),
    /// Monotonic time since boot, in nanoseconds.
    pub now_ns: fn() -> u64,
    /// Index (0-based, dense) of the CPU this runs on.
    pub cpu_index: fn() -> usize,
    /// Makes CPU `index` leave its idle wait soon (an IPI).
    pub kick: fn(index: usize),
    /// The executor's idle step: with interrupts masked, asks `has_work`; if there is none,
    /// waits for an interrupt. Returns with interrupts enabled. Masking around the question
    /// means a wake-up (kick IPI) that lands after it cannot be lost: it ends the wait at once.
    pub idle_unless: fn(has_work: &dyn Fn() -> bool),
    /// Unmasks interrupts on this CPU (its interrupt handling must be set up).
    pub enable_interrupts: fn(),
    /// Runs the closure with interrupts masked.
    pub without_interrupts: fn(&mut dyn FnMut()),
    /// Flushes this CPU's TLB entries for a virtual range.
    pub flush_tlb: fn(va: u64, size: u64),
    /// Stops the machine with a status the host can read.
    pub exit: fn(ExitStatus) -> !,
}

static PLATFORM: Once<&'static Platform> = Once::new();

/// Installs the platform. Only the first call has an effect.
pub fn install(platform: &'static Platform) {
    PLATFORM.call_once(|| platform);
}

pub fn get() -> Option<&'static Platform> {
    PLATFORM.get().copied()
}

/// The current CPU's index; 0 before a platform is installed.
pub fn cpu_index() -> usize {
    #[cfg(test)]
    {
        test_cpu::get()
    }
    #[cfg(not(test))]
    {
        get().map_or(0, |p| (p.cpu_index)())
    }
}

/// Monotonic nanoseconds since boot; 0 before a platform is installed.
pub fn now_ns() -> u64 {
    #[cfg(test)]
    {
        test_clock::get()
    }
    #[cfg(not(test))]
    {
        get().map_or(0, |p| (p.now_ns)())
    }
}

pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let mut f = Some(f);
    let mut result = None;
    let mut call = || result = f.take().map(|f| f());
    match get() {
        Some(p) => (p.without_interrupts)(&mut call),
        None => call(),
    }
    result.expect("without_interrupts ran its closure")
}

/// Stops the machine; without a platform (host tests) the process aborts.
pub fn exit(status: ExitStatus) -> ! {
    if let Some(p) = get() {
        (p.exit)(status)
    }
    #[cfg(test)]
    {
        std::process::exit(if status == ExitStatus::Success { 0 } else { 1 })
    }
    #[cfg(not(test))]
    loop {
        core::hint::spin_loop()
    }
}

/// Host tests give each test thread its own CPU index.
#[cfg(test)]
pub mod test_cpu {
    use core::cell::Cell;
    std::thread_local!(static CPU: Cell<usize> = const { Cell::new(0) });
    pub fn get() -> usize {
        CPU.with(Cell::get)
    }
    pub fn set(cpu: usize) {
        CPU.with(|c| c.set(cpu))
    }
}

/// Host tests drive time by hand, per thread.
#[cfg(test)]
pub mod test_clock {
    use core::cell::Cell;
    std::thread_local!(static NOW: Cell<u64> = const { Cell::new(0) });
    pub fn get() -> u64 {
        NOW.with(Cell::get)
    }
    pub fn set(ns: u64) {
        NOW.with(|c| c.set(ns))
    }
    pub fn advance(ns: u64) {
        NOW.with(|c| c.set(c.get() + ns))
    }
}

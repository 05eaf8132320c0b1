//! The PL011 console, at the address the device tree gives.

use core::sync::atomic::{AtomicU64, Ordering};

use arch::aarch64::registers::without_irqs;
use devices::pl011::{Pl011, RegisterAccess32};
use devices::text_output::TextOutput;
use spin::Mutex;

static BASE: AtomicU64 = AtomicU64::new(0);

pub struct MmioRegisters;

impl RegisterAccess32 for MmioRegisters {
    fn read(&mut self, offset: u32) -> u32 {
        let base = BASE.load(Ordering::Relaxed);
        // SAFETY: BASE is set by `init` to the PL011's register page, which the boot and kernel
        // tables map as device memory; registers are 32-bit and need volatile access.
        unsafe { core::ptr::read_volatile((base + u64::from(offset)) as *const u32) }
    }

    fn write(&mut self, offset: u32, value: u32) {
        let base = BASE.load(Ordering::Relaxed);
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((base + u64::from(offset)) as *mut u32, value) }
    }
}

static UART: Mutex<Pl011<MmioRegisters>> = Mutex::new(Pl011::new(MmioRegisters));

/// Uses the PL011 at `base` (from the device tree) as the console.
pub fn init(base: u64) {
    BASE.store(base, Ordering::Relaxed);
    UART.lock().init();
}

pub fn base() -> u64 {
    BASE.load(Ordering::Relaxed)
}

/// The lock is only ever held with IRQs masked, so an interrupt handler that logs can never
/// spin on a lock its own CPU holds.
pub fn write_str(s: &str) {
    if BASE.load(Ordering::Relaxed) != 0 {
        without_irqs(|| UART.lock().write_str(s));
    }
}

#[cfg(not(feature = "selftest"))]
pub fn read_byte() -> Option<u8> {
    if BASE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    without_irqs(|| UART.lock().read_byte())
}

/// Writes even if the lock's holder will never release it (it faulted, or is this CPU).
pub fn emergency_write_str(s: &str) {
    if BASE.load(Ordering::Relaxed) != 0 {
        kernel::console::emergency_lock(&UART).write_str(s);
    }
}

//! COM1, the firmware console on PCs: a 16550A at I/O port 0x3f8.

use arch::x86_64::instructions::{inb, outb, without_interrupts};
use devices::text_output::TextOutput;
use devices::uart16550::{RegisterAccess, Uart16550};
use spin::Mutex;

const COM1: u16 = 0x3f8;

pub struct PortRegisters {
    base: u16,
}

impl RegisterAccess for PortRegisters {
    fn read(&mut self, offset: u8) -> u8 {
        // SAFETY: the eight ports at COM1 belong to the console UART, owned by this driver.
        unsafe { inb(self.base + u16::from(offset)) }
    }

    fn write(&mut self, offset: u8, value: u8) {
        // SAFETY: as in `read`.
        unsafe { outb(self.base + u16::from(offset), value) }
    }
}

pub static COM1_UART: Mutex<Uart16550<PortRegisters>> =
    Mutex::new(Uart16550::new(PortRegisters { base: COM1 }));

pub fn init() -> bool {
    COM1_UART.lock().init(115_200).is_ok()
}

/// The lock is only ever held with interrupts masked, so an interrupt handler that logs can
/// never spin on a lock its own CPU holds.
pub fn write_str(s: &str) {
    without_interrupts(|| COM1_UART.lock().write_str(s));
}

#[cfg(not(feature = "selftest"))]
pub fn read_byte() -> Option<u8> {
    without_interrupts(|| COM1_UART.lock().read_byte())
}

/// Writes even if the lock's holder will never release it (it faulted, or is this CPU).
pub fn emergency_write_str(s: &str) {
    kernel::console::emergency_lock(&COM1_UART).write_str(s);
}

//! COM1, the firmware console on PCs: a 16550A at I/O port 0x3f8.

use arch::x86_64::instructions::{inb, outb};
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

pub static COM1_UART: Mutex<Uart16550<PortRegisters>> = Mutex::new(Uart16550::new(PortRegisters { base: COM1 }));

pub fn init() -> bool {
    COM1_UART.lock().init(115_200).is_ok()
}

pub fn write_str(s: &str) {
    COM1_UART.lock().write_str(s);
}

#[cfg(not(feature = "selftest"))]
pub fn read_byte() -> Option<u8> {
    COM1_UART.lock().read_byte()
}

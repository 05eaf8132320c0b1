//! The devices Parapet emulates for its aarch64 guest: a PL011 at the guest's 0x0900_0000
//! (where QEMU's virt board has its own, so guests find it where they expect), whose output
//! reaches Parapet's console prefixed `guest| `. Everything else the guest touches outside
//! its RAM has nothing behind it.

use devices::pl011::{self, emulator::Pl011Emulator};
use isolation::exit::MmioAccess;

use crate::guest::console::GuestConsole;

/// The guest's PL011 frame.
pub const UART_BASE: u64 = 0x0900_0000;
const UART_SIZE: u64 = 0x1000;

pub struct GuestDevices {
    uart: Pl011Emulator,
    console: GuestConsole,
}

impl GuestDevices {
    /// The UART starts as boot firmware leaves it (enabled, 8 bits, FIFOs on), so a guest
    /// console that does not set it up itself (Linux's earlycon) can print at once.
    pub fn new() -> Self {
        let mut uart = Pl011Emulator::new();
        uart.write(
            u64::from(pl011::registers::LCR_H),
            4,
            pl011::registers::LCR_H_8BIT_FIFO,
        );
        let enable =
            pl011::registers::CR_UARTEN | pl011::registers::CR_TXE | pl011::registers::CR_RXE;
        uart.write(u64::from(pl011::registers::CR), 4, enable);
        Self {
            uart,
            console: GuestConsole::new("guest"),
        }
    }

    /// An access of `size` bytes at `gpa`: the value read (or 0 for a write) when a device
    /// answers, `None` when nothing is there.
    pub fn access(&mut self, gpa: u64, size: u8, access: MmioAccess) -> Option<u64> {
        let offset = gpa.checked_sub(UART_BASE).filter(|&o| o < UART_SIZE)?;
        match access {
            MmioAccess::Read { .. } => Some(u64::from(self.uart.read(offset, size))),
            MmioAccess::Write(value) => {
                self.uart.write(offset, size, value as u32);
                for byte in self.uart.drain_transmitted() {
                    self.console.push(byte);
                }
                Some(0)
            }
        }
    }

    /// Prints a partial last line (at power-off, so nothing is lost).
    pub fn flush(&mut self) {
        if self.console.has_partial_line() {
            self.console.flush_line();
        }
    }
}

//! COM1 as a stock driver sets it up and uses it: 115200 8N1 through the divisor latch,
//! FIFOs on, then polled transmission (wait for THR empty, write the byte).

use crate::port::{inb, outb};

const COM1: u16 = 0x3f8;
const THR: u16 = 0; // transmit holding register (DLAB 0)
const DLL: u16 = 0; // divisor latch (DLAB 1)
const DLM: u16 = 1;
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LCR_DLAB: u8 = 0x80;
const LCR_8N1: u8 = 0x03;
const LSR_THR_EMPTY: u8 = 0x20;

/// Programs COM1 for 115200 8N1 with FIFOs, interrupts off.
pub fn init() {
    // SAFETY: COM1 is the paravisor's emulated UART for this guest.
    unsafe {
        outb(COM1 + IER, 0);
        outb(COM1 + LCR, LCR_DLAB);
        outb(COM1 + DLL, 1);
        outb(COM1 + DLM, 0);
        outb(COM1 + LCR, LCR_8N1);
        outb(COM1 + FCR, 0x07); // enable and clear both FIFOs
        outb(COM1 + MCR, 0x03); // DTR, RTS
    }
}

/// The line status register.
pub fn line_status() -> u8 {
    // SAFETY: as in `init`.
    unsafe { inb(COM1 + LSR) }
}

/// Writes `byte` once the transmitter holding register is empty.
pub fn write_byte(byte: u8) {
    while line_status() & LSR_THR_EMPTY == 0 {
        core::hint::spin_loop();
    }
    // SAFETY: as in `init`.
    unsafe { outb(COM1 + THR, byte) };
}

/// `core::fmt` output to COM1, `\n` as `\r\n`.
pub struct Com1;

impl core::fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                write_byte(b'\r');
            }
            write_byte(b);
        }
        Ok(())
    }
}

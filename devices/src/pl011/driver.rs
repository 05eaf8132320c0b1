//! Parapet's console driver for a PL011: polled output and input.

use super::registers::*;
use crate::text_output::TextOutput;

/// Access to 32-bit registers by byte offset (MMIO).
pub trait RegisterAccess32 {
    fn read(&mut self, offset: u32) -> u32;
    fn write(&mut self, offset: u32, value: u32);
}

/// LSR-style bound on waiting for transmit FIFO space before dropping a byte.
const TRANSMIT_SPINS: u32 = 100_000;

pub struct Pl011<R> {
    regs: R,
    dropped: u64,
}

impl<R: RegisterAccess32> Pl011<R> {
    pub const fn new(regs: R) -> Self {
        Self { regs, dropped: 0 }
    }

    /// Sets 8N1 with FIFOs and enables transmit and receive. The baud rate stays as firmware
    /// set it (QEMU ignores it; real boards have a reference clock we are not told).
    pub fn init(&mut self) {
        self.regs.write(CR, 0);
        self.regs.write(IMSC, 0);
        self.regs.write(ICR, 0x7ff);
        self.regs.write(LCR_H, LCR_H_8BIT_FIFO);
        self.regs.write(CR, CR_UARTEN | CR_TXE | CR_RXE);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A received byte, if one is waiting; bytes received with an error are dropped.
    pub fn read_byte(&mut self) -> Option<u8> {
        while self.regs.read(FR) & FR_RXFE == 0 {
            let data = self.regs.read(DR);
            if data & DR_ERRORS == 0 {
                return Some(data as u8);
            }
        }
        None
    }
}

impl<R: RegisterAccess32> TextOutput for Pl011<R> {
    fn write_byte(&mut self, byte: u8) {
        for _ in 0..TRANSMIT_SPINS {
            if self.regs.read(FR) & FR_TXFF == 0 {
                self.regs.write(DR, u32::from(byte));
                return;
            }
            core::hint::spin_loop();
        }
        self.dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Register model: a transmit FIFO that holds `depth` bytes until the test drains it.
    #[derive(Default)]
    struct Model {
        cr: u32,
        lcr_h: u32,
        tx: Vec<u8>,
        depth: usize,
        rx: VecDeque<u32>,
    }

    impl RegisterAccess32 for &mut Model {
        fn read(&mut self, offset: u32) -> u32 {
            match offset {
                FR => {
                    let mut fr = 0;
                    if self.tx.len() >= self.depth {
                        fr |= FR_TXFF;
                    }
                    if self.rx.is_empty() {
                        fr |= FR_RXFE;
                    }
                    fr
                }
                DR => self.rx.pop_front().unwrap_or(0),
                CR => self.cr,
                LCR_H => self.lcr_h,
                _ => 0,
            }
        }

        fn write(&mut self, offset: u32, value: u32) {
            match offset {
                DR => {
                    assert!(self.tx.len() < self.depth, "wrote DR with the FIFO full");
                    self.tx.push(value as u8);
                }
                CR => self.cr = value,
                LCR_H => self.lcr_h = value,
                _ => {}
            }
        }
    }

    #[test]
    fn init_enables_uart_tx_rx_with_fifos() {
        let mut m = Model {
            depth: 16,
            ..Default::default()
        };
        Pl011::new(&mut m).init();
        assert_eq!(m.cr, CR_UARTEN | CR_TXE | CR_RXE);
        assert_eq!(m.lcr_h, LCR_H_8BIT_FIFO);
    }

    #[test]
    fn output_expands_newlines_and_respects_a_full_fifo() {
        let mut m = Model {
            depth: 3,
            ..Default::default()
        };
        let mut u = Pl011::new(&mut m);
        u.write_str("a\nbc");
        assert_eq!(
            u.dropped(),
            2,
            "the fourth and fifth bytes found the FIFO full"
        );
        assert_eq!(m.tx, b"a\r\n");
    }

    #[test]
    fn input_skips_bytes_received_with_errors() {
        let mut m = Model {
            depth: 16,
            ..Default::default()
        };
        m.rx.extend([u32::from(b'x') | 0x100, u32::from(b'y')]);
        let mut u = Pl011::new(&mut m);
        assert_eq!(u.read_byte(), Some(b'y'));
        assert_eq!(u.read_byte(), None);
    }
}

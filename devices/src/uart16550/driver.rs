//! Parapet's console driver for a 16550A: polled output and input, optional receive interrupt.

use super::registers::*;
use crate::text_output::TextOutput;

/// Access to the eight byte registers, by offset (port I/O on PCs, MMIO elsewhere).
pub trait RegisterAccess {
    fn read(&mut self, offset: u8) -> u8;
    fn write(&mut self, offset: u8, value: u8);
}

/// How many LSR polls to wait for the transmitter before dropping a byte. A UART that never
/// drains (absent, or wedged by the host) must not hang the firmware.
const TRANSMIT_SPINS: u32 = 100_000;

pub struct Uart16550<R> {
    regs: R,
    present: bool,
    dropped: u64,
    /// Transmit FIFO depth: 16 when the FIFOs came on at init, else 1 (an 8250/16450).
    fifo_depth: u8,
    /// Bytes that may still be written before LSR must be asked again: once THRE says the
    /// FIFO is empty, a whole FIFO's worth fits (datasheet: THRE with FIFOs on means the
    /// transmit FIFO is empty). On a virtual UART each LSR read is an exit, so this halves
    /// the cost of console output.
    room: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartError {
    /// The scratch/loopback probe read back something else: nothing is there.
    NotPresent,
}

impl<R: RegisterAccess> Uart16550<R> {
    pub const fn new(regs: R) -> Self {
        Self {
            regs,
            present: false,
            dropped: 0,
            fifo_depth: 1,
            room: 0,
        }
    }

    /// Probes for the chip through loopback, then sets `baud` 8N1 with FIFOs on.
    pub fn init(&mut self, baud: u32) -> Result<(), UartError> {
        let divisor = (BAUD_BASE / baud.clamp(1, BAUD_BASE)) as u16;
        self.regs.write(IER, 0);
        self.regs.write(LCR, LCR_DLAB);
        self.regs.write(DLL, divisor as u8);
        self.regs.write(DLM, (divisor >> 8) as u8);
        self.regs.write(LCR, LCR_8N1);
        self.regs.write(FCR, FCR_ENABLE_CLEAR_14);
        // IIR bits 7:6 read 0b11 when the FIFOs are on (datasheet table IV); an older UART
        // without FIFOs ignores FCR.
        self.fifo_depth = if self.regs.read(IIR) & 0xc0 == 0xc0 {
            16
        } else {
            1
        };
        self.room = 0;
        // Loopback probe: a byte sent must come back, proving a UART answers here.
        self.regs.write(MCR, MCR_LOOPBACK);
        self.regs.write(THR, 0xa5);
        let mut echoed = None;
        for _ in 0..1000 {
            if self.regs.read(LSR) & LSR_DATA_READY != 0 {
                echoed = Some(self.regs.read(RBR));
                break;
            }
        }
        self.regs.write(MCR, MCR_DTR_RTS_OUT2);
        self.present = echoed == Some(0xa5);
        if self.present {
            Ok(())
        } else {
            Err(UartError::NotPresent)
        }
    }

    /// Whether `init` found a UART.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// Bytes dropped because the transmitter never became ready.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&mut self) -> Option<u8> {
        if self.present && self.regs.read(LSR) & LSR_DATA_READY != 0 {
            Some(self.regs.read(RBR))
        } else {
            None
        }
    }

    /// Enables or disables the received-data interrupt.
    pub fn set_receive_interrupt(&mut self, enabled: bool) {
        self.regs
            .write(IER, if enabled { IER_RX_AVAILABLE } else { 0 });
    }
}

impl<R: RegisterAccess> TextOutput for Uart16550<R> {
    fn write_byte(&mut self, byte: u8) {
        if !self.present {
            return;
        }
        if self.room == 0 {
            let ready = (0..TRANSMIT_SPINS).any(|_| {
                let empty = self.regs.read(LSR) & LSR_THR_EMPTY != 0;
                if !empty {
                    core::hint::spin_loop();
                }
                empty
            });
            if !ready {
                self.dropped += 1;
                return;
            }
            self.room = self.fifo_depth;
        }
        self.regs.write(THR, byte);
        self.room -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A register-level model of a 16550A: divisor latch, loopback, FIFOs, and a transmitter
    /// that takes `busy_polls` LSR reads to drain each byte.
    #[derive(Default)]
    struct Model {
        lcr: u8,
        mcr: u8,
        ier: u8,
        divisor: u16,
        rx: VecDeque<u8>,
        wire: Vec<u8>,
        busy_polls: u32,
        busy: u32,
        absent: bool,
        fifo: bool,
        /// Bytes waiting in the transmit FIFO (or holding register).
        queued: usize,
    }

    impl RegisterAccess for &mut Model {
        fn read(&mut self, offset: u8) -> u8 {
            if self.absent {
                return 0xff;
            }
            let dlab = self.lcr & LCR_DLAB != 0;
            match offset {
                RBR if !dlab => self.rx.pop_front().unwrap_or(0),
                LSR => {
                    let mut lsr = 0;
                    if !self.rx.is_empty() {
                        lsr |= LSR_DATA_READY;
                    }
                    // The line drains one queued byte every `busy_polls` LSR reads; with 0 it
                    // is infinitely fast and drains all at once.
                    if self.busy_polls == 0 {
                        self.queued = 0;
                    } else if self.queued > 0 {
                        if self.busy == 0 {
                            self.queued -= 1;
                            self.busy = self.busy_polls;
                        } else {
                            self.busy -= 1;
                        }
                    }
                    if self.queued == 0 {
                        lsr |= LSR_THR_EMPTY;
                    }
                    lsr
                }
                IIR => {
                    if self.fifo {
                        0xc1
                    } else {
                        0x01
                    }
                }
                IER if !dlab => self.ier,
                LCR => self.lcr,
                MCR => self.mcr,
                _ => 0,
            }
        }

        fn write(&mut self, offset: u8, value: u8) {
            let dlab = self.lcr & LCR_DLAB != 0;
            match offset {
                DLL if dlab => self.divisor = (self.divisor & 0xff00) | u16::from(value),
                DLM if dlab => self.divisor = (self.divisor & 0x00ff) | (u16::from(value) << 8),
                THR => {
                    if self.mcr & MCR_LOOPBACK != 0 {
                        self.rx.push_back(value);
                    } else {
                        let depth = if self.fifo { 16 } else { 1 };
                        assert!(self.queued < depth, "wrote THR with the transmit FIFO full");
                        self.wire.push(value);
                        self.queued += 1;
                        self.busy = self.busy_polls;
                    }
                }
                IER => self.ier = value & 0x0f,
                FCR => self.fifo = value & 1 != 0,
                LCR => self.lcr = value,
                MCR => self.mcr = value,
                _ => {}
            }
        }
    }

    #[test]
    fn init_sets_divisor_and_8n1_and_leaves_loopback() {
        let mut m = Model::default();
        let mut u = Uart16550::new(&mut m);
        u.init(38_400).unwrap();
        assert_eq!(m.divisor, 3);
        assert_eq!(m.lcr, LCR_8N1);
        assert_eq!(m.mcr & MCR_LOOPBACK, 0);
        assert!(m.wire.is_empty(), "the probe byte stays inside the chip");
    }

    #[test]
    fn output_waits_for_thr_empty_and_expands_newlines() {
        let mut m = Model {
            busy_polls: 3,
            ..Default::default()
        };
        let mut u = Uart16550::new(&mut m);
        u.init(115_200).unwrap();
        u.write_str("ok\n");
        assert_eq!(u.dropped(), 0);
        assert_eq!(m.wire, b"ok\r\n");
    }

    #[test]
    fn a_wedged_transmitter_drops_bytes_instead_of_hanging() {
        let mut m = Model {
            busy_polls: u32::MAX,
            ..Default::default()
        };
        let mut u = Uart16550::new(&mut m);
        u.init(115_200).unwrap();
        // The FIFO takes 16 bytes; the 17th finds it still full.
        for b in 0..17 {
            u.write_byte(b);
        }
        assert_eq!(u.dropped(), 1);
    }

    /// Counts LSR reads, to see how often the driver asks before sending.
    struct CountingLsr<'a>(&'a mut Model, usize);

    impl RegisterAccess for CountingLsr<'_> {
        fn read(&mut self, offset: u8) -> u8 {
            if offset == LSR {
                self.1 += 1;
            }
            (&mut *self.0).read(offset)
        }
        fn write(&mut self, offset: u8, value: u8) {
            (&mut *self.0).write(offset, value)
        }
    }

    #[test]
    fn with_fifos_one_lsr_read_covers_sixteen_bytes() {
        let mut m = Model::default();
        let mut u = Uart16550::new(CountingLsr(&mut m, 0));
        u.init(115_200).unwrap();
        let before = u.regs.1;
        u.write_str("0123456789abcdef0123456789abcdef");
        assert_eq!(u.regs.1 - before, 2, "32 bytes, two FIFO fills");
        assert_eq!(m.wire.len(), 32);
    }

    /// An 8250 without FIFOs: FCR writes go nowhere and IIR bits 7:6 stay clear.
    struct NoFifo<'a>(&'a mut Model);

    impl RegisterAccess for NoFifo<'_> {
        fn read(&mut self, offset: u8) -> u8 {
            (&mut *self.0).read(offset)
        }
        fn write(&mut self, offset: u8, value: u8) {
            if offset != FCR {
                (&mut *self.0).write(offset, value)
            }
        }
    }

    #[test]
    fn without_fifos_every_byte_waits_for_thre() {
        let mut m = Model {
            busy_polls: 2,
            ..Default::default()
        };
        let mut u = Uart16550::new(NoFifo(&mut m));
        u.init(115_200).unwrap();
        u.write_str("abc");
        assert_eq!(u.dropped(), 0);
        // The model asserts that no byte was written over a full holding register.
        assert_eq!(m.wire, b"abc");
    }

    #[test]
    fn input_returns_received_bytes_in_order() {
        let mut m = Model::default();
        let mut u = Uart16550::new(&mut m);
        u.init(115_200).unwrap();
        assert_eq!(u.read_byte(), None);
        m.rx.extend(b"hi");
        let mut u = Uart16550::new(&mut m);
        u.present = true;
        assert_eq!(u.read_byte(), Some(b'h'));
        assert_eq!(u.read_byte(), Some(b'i'));
        assert_eq!(u.read_byte(), None);
    }

    #[test]
    fn an_absent_uart_is_detected_and_never_written() {
        let mut m = Model {
            absent: true,
            ..Default::default()
        };
        let mut u = Uart16550::new(&mut m);
        assert_eq!(u.init(115_200), Err(UartError::NotPresent));
        u.write_str("lost");
        assert_eq!(u.read_byte(), None);
        assert!(m.wire.is_empty());
    }
}

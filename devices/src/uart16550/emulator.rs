//! A 16550A UART as a guest sees it (PC16550D datasheet): divisor latch, FIFOs, line and
//! modem status, loopback, and the interrupt identification priorities a driver like Linux's
//! 8250 relies on. Transmission is instant: a byte written to THR leaves at once, so the
//! transmitter always reads empty.

use alloc::collections::VecDeque;

use super::registers::*;

/// Receive FIFO depth of a 16550A.
const RX_FIFO_DEPTH: usize = 16;

/// IIR values (datasheet table IV): no interrupt pending, and the sources by priority.
const IIR_NONE: u8 = 0x01;
const IIR_RECEIVER_LINE_STATUS: u8 = 0x06;
const IIR_RECEIVED_DATA: u8 = 0x04;
const IIR_THR_EMPTY: u8 = 0x02;
const IIR_MODEM_STATUS: u8 = 0x00;
const IIR_FIFOS_ENABLED: u8 = 0xc0;

const IER_THR_EMPTY: u8 = 1 << 1;
const IER_LINE_STATUS: u8 = 1 << 2;
const IER_MODEM_STATUS: u8 = 1 << 3;
const FCR_ENABLE: u8 = 1 << 0;
const FCR_CLEAR_RX: u8 = 1 << 1;
const LSR_TEMT: u8 = 1 << 6;
const MCR_DTR: u8 = 1 << 0;
const MCR_RTS: u8 = 1 << 1;
const MCR_OUT1: u8 = 1 << 2;
const MCR_OUT2: u8 = 1 << 3;
/// MSR: CTS, DSR, RI, DCD, and their delta bits.
const MSR_CTS: u8 = 1 << 4;
const MSR_DSR: u8 = 1 << 5;
const MSR_RI: u8 = 1 << 6;
const MSR_DCD: u8 = 1 << 7;

#[derive(Debug)]
pub struct Uart16550Emulator {
    divisor: u16,
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fifo_enabled: bool,
    rx: VecDeque<u8>,
    overrun: bool,
    /// THR-empty interrupt latched since the last THR write, until IIR reports it.
    thr_empty_pending: bool,
    /// Modem status as last read, to compute delta bits.
    last_msr: u8,
    /// Bytes transmitted and not yet taken by the backend.
    tx: VecDeque<u8>,
}

impl Default for Uart16550Emulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart16550Emulator {
    pub fn new() -> Self {
        Self {
            divisor: 12, // 9600 baud, as after reset on a PC
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            fifo_enabled: false,
            rx: VecDeque::new(),
            overrun: false,
            thr_empty_pending: false,
            last_msr: 0,
            tx: VecDeque::new(),
        }
        .with_settled_modem_status()
    }

    /// Starts with no modem-status change pending: the lines were already up at reset.
    fn with_settled_modem_status(mut self) -> Self {
        self.last_msr = self.modem_status();
        self
    }

    fn dlab(&self) -> bool {
        self.lcr & LCR_DLAB != 0
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOPBACK != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled {
            RX_FIFO_DEPTH
        } else {
            1
        }
    }

    /// Queues bytes from the outside world (the backend) for the guest to read.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.loopback() {
            return; // In loopback the receiver hears only the transmitter.
        }
        for &b in bytes {
            self.push_rx(b);
        }
    }

    fn push_rx(&mut self, byte: u8) {
        if self.rx.len() < self.rx_capacity() {
            self.rx.push_back(byte);
        } else {
            self.overrun = true;
            if !self.fifo_enabled {
                // Without FIFOs a new byte overwrites the holding register (datasheet: OE).
                self.rx.pop_back();
                self.rx.push_back(byte);
            }
        }
    }

    /// Room left in the receive FIFO, for backends that pace input (none in loopback, where
    /// the line is disconnected).
    pub fn receive_room(&self) -> usize {
        if self.loopback() {
            return 0;
        }
        self.rx_capacity().saturating_sub(self.rx.len())
    }

    /// Takes the bytes the guest transmitted since the last call.
    /// Keeps the buffer: a guest writing byte by byte costs no allocation per byte.
    pub fn drain_transmitted(&mut self) -> alloc::collections::vec_deque::Drain<'_, u8> {
        self.tx.drain(..)
    }

    fn modem_status(&self) -> u8 {
        if self.loopback() {
            let mut msr = 0;
            if self.mcr & MCR_RTS != 0 {
                msr |= MSR_CTS;
            }
            if self.mcr & MCR_DTR != 0 {
                msr |= MSR_DSR;
            }
            if self.mcr & MCR_OUT1 != 0 {
                msr |= MSR_RI;
            }
            if self.mcr & MCR_OUT2 != 0 {
                msr |= MSR_DCD;
            }
            msr
        } else {
            // A terminal is always there: carrier, data set ready, clear to send.
            MSR_CTS | MSR_DSR | MSR_DCD
        }
    }

    fn msr_with_deltas(&self) -> u8 {
        let now = self.modem_status();
        let changed = now ^ self.last_msr;
        let mut deltas = (changed >> 4) & 0b1011; // DCTS, DDSR, DDCD
        if self.last_msr & MSR_RI != 0 && now & MSR_RI == 0 {
            deltas |= 1 << 2; // TERI: trailing edge of RI
        }
        now | deltas
    }

    fn line_status(&self) -> u8 {
        let mut lsr = LSR_THR_EMPTY | LSR_TEMT;
        if !self.rx.is_empty() {
            lsr |= LSR_DATA_READY;
        }
        if self.overrun {
            lsr |= LSR_OVERRUN;
        }
        lsr
    }

    /// The highest-priority pending interrupt, as IIR reports it (datasheet table IV).
    fn pending(&self) -> u8 {
        if self.ier & IER_LINE_STATUS != 0 && self.overrun {
            IIR_RECEIVER_LINE_STATUS
        } else if self.ier & IER_RX_AVAILABLE != 0 && !self.rx.is_empty() {
            IIR_RECEIVED_DATA
        } else if self.ier & IER_THR_EMPTY != 0 && self.thr_empty_pending {
            IIR_THR_EMPTY
        } else if self.ier & IER_MODEM_STATUS != 0 && self.msr_with_deltas() & 0x0f != 0 {
            IIR_MODEM_STATUS
        } else {
            IIR_NONE
        }
    }

    /// Whether the interrupt line is asserted. On PCs OUT2 gates it to the interrupt
    /// controller.
    pub fn interrupt_asserted(&self) -> bool {
        // In loopback OUT2 is wired back to DCD, not to the interrupt line.
        self.pending() != IIR_NONE && self.mcr & MCR_OUT2 != 0 && !self.loopback()
    }

    /// A guest read of register `offset` (0-7); other offsets read as all ones.
    pub fn read(&mut self, offset: u8) -> u8 {
        match offset {
            RBR if self.dlab() => self.divisor as u8,
            RBR => self.rx.pop_front().unwrap_or(0),
            IER if self.dlab() => (self.divisor >> 8) as u8,
            IER => self.ier,
            IIR => {
                let pending = self.pending();
                if pending == IIR_THR_EMPTY {
                    // Reading IIR with THRE as the source clears it (datasheet table IV).
                    self.thr_empty_pending = false;
                }
                pending
                    | if self.fifo_enabled {
                        IIR_FIFOS_ENABLED
                    } else {
                        0
                    }
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                let lsr = self.line_status();
                self.overrun = false; // error bits clear on read
                lsr
            }
            MSR => {
                let msr = self.msr_with_deltas();
                self.last_msr = msr & 0xf0;
                msr
            }
            SCR => self.scr,
            _ => 0xff,
        }
    }

    /// A guest write of `value` to register `offset` (0-7); other offsets are ignored.
    pub fn write(&mut self, offset: u8, value: u8) {
        match offset {
            THR if self.dlab() => self.divisor = (self.divisor & 0xff00) | u16::from(value),
            THR => {
                if self.loopback() {
                    self.push_rx(value);
                } else {
                    self.tx.push_back(value);
                }
                self.thr_empty_pending = true;
            }
            IER if self.dlab() => self.divisor = (self.divisor & 0x00ff) | (u16::from(value) << 8),
            IER => {
                let enabling_thre = value & IER_THR_EMPTY != 0 && self.ier & IER_THR_EMPTY == 0;
                self.ier = value & 0x0f;
                if enabling_thre {
                    // The transmitter is empty, so enabling THRE raises it at once.
                    self.thr_empty_pending = true;
                }
            }
            FCR => {
                let enable = value & FCR_ENABLE != 0;
                if enable != self.fifo_enabled || value & FCR_CLEAR_RX != 0 {
                    self.rx.clear();
                }
                self.fifo_enabled = enable;
            }
            LCR => self.lcr = value,
            MCR => self.mcr = value & 0x1f,
            SCR => self.scr = value,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text_output::TextOutput;
    use crate::uart16550::driver::Uart16550;
    use crate::uart16550::RegisterAccess;

    impl RegisterAccess for &mut Uart16550Emulator {
        fn read(&mut self, offset: u8) -> u8 {
            Uart16550Emulator::read(self, offset)
        }
        fn write(&mut self, offset: u8, value: u8) {
            Uart16550Emulator::write(self, offset, value)
        }
    }

    #[test]
    fn parapets_own_driver_finds_it_and_talks_through_it() {
        let mut uart = Uart16550Emulator::new();
        let mut driver = Uart16550::new(&mut uart);
        driver.init(115_200).unwrap();
        driver.write_str("hi\n");
        assert_eq!(driver.read_byte(), None);
        assert_eq!(uart.divisor, 1);
        assert_eq!(uart.drain_transmitted().collect::<Vec<u8>>(), b"hi\r\n");
        uart.receive(b"ok");
        let mut driver = Uart16550::new(&mut uart);
        driver.init(115_200).unwrap();
        uart.receive(b"x");
        assert_eq!(Uart16550Emulator::read(&mut uart, RBR), b'x');
    }

    #[test]
    fn lsr_reports_data_ready_until_the_fifo_drains() {
        let mut u = Uart16550Emulator::new();
        u.write(FCR, FCR_ENABLE);
        u.receive(b"ab");
        assert_eq!(u.read(LSR) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(u.read(RBR), b'a');
        assert_eq!(u.read(RBR), b'b');
        assert_eq!(u.read(LSR) & LSR_DATA_READY, 0);
        assert_eq!(
            u.read(LSR) & (LSR_THR_EMPTY | LSR_TEMT),
            LSR_THR_EMPTY | LSR_TEMT
        );
    }

    #[test]
    fn a_full_fifo_overruns_and_lsr_reports_it_once() {
        let mut u = Uart16550Emulator::new();
        u.write(FCR, FCR_ENABLE);
        u.receive(&[0; 17]);
        assert_eq!(u.read(LSR) & LSR_OVERRUN, LSR_OVERRUN);
        assert_eq!(u.read(LSR) & LSR_OVERRUN, 0, "cleared by the read");
        // Without FIFOs the holding register keeps one byte.
        let mut u = Uart16550Emulator::new();
        u.receive(b"12");
        assert_eq!(u.read(LSR) & LSR_OVERRUN, LSR_OVERRUN);
        assert_eq!(
            u.read(RBR),
            b'2',
            "the newer byte overwrote the holding register"
        );
        assert_eq!(u.read(LSR) & LSR_DATA_READY, 0);
    }

    #[test]
    fn iir_follows_priorities_and_reading_it_clears_thre() {
        let mut u = Uart16550Emulator::new();
        u.write(MCR, MCR_OUT2);
        assert_eq!(u.read(IIR), IIR_NONE);
        u.write(IER, IER_THR_EMPTY | IER_RX_AVAILABLE);
        assert!(
            u.interrupt_asserted(),
            "enabling THRE interrupts with an empty THR raises one"
        );
        u.receive(b"z");
        assert_eq!(
            u.read(IIR),
            IIR_RECEIVED_DATA,
            "received data outranks THRE"
        );
        u.read(RBR);
        assert_eq!(u.read(IIR), IIR_THR_EMPTY);
        assert_eq!(u.read(IIR), IIR_NONE, "reading IIR cleared THRE");
        u.write(THR, b'!');
        assert_eq!(
            u.read(IIR),
            IIR_THR_EMPTY,
            "a write raises THRE again once it is sent"
        );
        u.write(MCR, 0);
        u.write(THR, b'!');
        assert!(!u.interrupt_asserted(), "OUT2 low: the line is gated off");
    }

    #[test]
    fn dlab_switches_offsets_0_and_1_to_the_divisor() {
        let mut u = Uart16550Emulator::new();
        u.write(LCR, LCR_DLAB);
        u.write(DLL, 0x34);
        u.write(DLM, 0x12);
        assert_eq!((u.read(DLL), u.read(DLM)), (0x34, 0x12));
        u.write(LCR, LCR_8N1);
        u.write(IER, 0xff);
        assert_eq!(u.read(IER), 0x0f, "reserved IER bits read as zero");
        assert!(
            u.drain_transmitted().next().is_none(),
            "divisor writes are not data"
        );
    }

    #[test]
    fn no_modem_status_change_is_pending_after_reset() {
        let mut u = Uart16550Emulator::new();
        u.write(MCR, MCR_OUT2);
        u.write(IER, IER_MODEM_STATUS);
        assert_eq!(u.read(MSR) & 0x0f, 0);
        assert!(!u.interrupt_asserted());
    }

    #[test]
    fn loopback_reflects_modem_control_into_modem_status() {
        let mut u = Uart16550Emulator::new();
        u.write(MCR, MCR_LOOPBACK | MCR_RTS | MCR_OUT2);
        assert_eq!(u.read(MSR) & 0xf0, MSR_CTS | MSR_DCD);
        u.write(THR, 0x42);
        u.receive(b"ignored in loopback");
        assert_eq!(u.read(RBR), 0x42);
        assert!(u.drain_transmitted().next().is_none());
        assert_eq!(u.read(7 + 1), 0xff, "beyond the eight registers");
    }
}

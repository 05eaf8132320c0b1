//! A PL011 UART as a guest sees it (Arm PrimeCell UART (PL011) TRM, DDI 0183, revision r1p5):
//! FIFOs and their trigger levels, the flag register, loopback, and the raw and masked
//! interrupt registers a driver like Linux's amba-pl011 relies on. Transmission is instant: a
//! byte written to DR leaves at once when the transmitter is on, so the transmit FIFO only ever
//! holds bytes written while it is off.
//!
//! Accesses. The PL011 is a block of 32-bit registers (§3.2). An access of 1, 2 or 4 bytes,
//! aligned to its size, reaches the byte lanes it covers of the register at `offset & !3`, as on
//! a byte-strobed 32-bit bus: a read reads the register (side effects included: DR pops the
//! receive FIFO) and returns those lanes, shifted down; a write changes only those lanes, the
//! others keeping what was last written (nothing, for DR, ECR and ICR). Every other access —
//! any other size (8 included: the bus is 32 bits wide), misaligned, or beyond the 4 KiB frame —
//! reads 0 and writes nothing, and so do reserved offsets and the test registers; read-only
//! registers ignore writes.

use alloc::collections::VecDeque;
use core::mem;

use super::registers::*;

/// Depth of each FIFO in r1p5 (TRM §1.1; Linux sizes it from the revision in PeriphID2).
const FIFO_DEPTH: usize = 32;

/// The register frame.
const FRAME_SIZE: u64 = 0x1000;

/// UARTPeriphID0-3 and UARTPCellID0-3 (§3.3.15, §3.3.16): part 0x011, designer 0x41 (Arm),
/// revision 3 (r1p5), configuration 0, and the PrimeCell identification 0xB105F00D.
const ID: [u8; 8] = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// Reset values (§3.2 table 3-1): transmit and receive enabled but the UART off; both FIFO
/// triggers at half full.
const CR_RESET: u32 = CR_TXE | CR_RXE;
const IFLS_RESET: u32 = 0x12;

/// The bits each register holds (§3.3): CR bits 6:3 are reserved.
const ILPR_MASK: u32 = 0xff;
const IBRD_MASK: u32 = 0xffff;
const FBRD_MASK: u32 = 0x3f;
const LCR_H_MASK: u32 = 0xff;
const CR_MASK: u32 = 0xff87;
const IFLS_MASK: u32 = 0x3f;
const DMACR_MASK: u32 = 0x7;

/// Loopback feeds the modem outputs to the inputs (§3.3.8, LBE): RTS to CTS, DTR to DSR, Out1
/// to DCD, Out2 to RI.
const LOOPBACK_MODEM: [(u32, u32); 4] = [
    (CR_RTS, FR_CTS),
    (CR_DTR, FR_DSR),
    (CR_OUT1, FR_DCD),
    (CR_OUT2, FR_RI),
];

/// A change of a modem input raises its interrupt (§3.4.1).
const MODEM_INTERRUPTS: [(u32, u32); 4] = [
    (FR_CTS, INT_CTS),
    (FR_DSR, INT_DSR),
    (FR_DCD, INT_DCD),
    (FR_RI, INT_RI),
];

/// The FIFO level an IFLS selection names (§3.3.9): 1/8, 1/4, 1/2, 3/4, 7/8 of the FIFO.
/// The reserved selections 5-7 act as 1/2, the reset value.
fn trigger_level(select: u32) -> usize {
    let eighths = match select {
        0 => 1,
        1 => 2,
        3 => 6,
        4 => 7,
        _ => 4,
    };
    FIFO_DEPTH * eighths / 8
}

/// The register an access reaches, the shift of its lowest byte lane, and the lanes it covers;
/// `None` for an access the bus does not carry (see the module comment).
fn decode(offset: u64, size: u8) -> Option<(u32, u32, u32)> {
    let width = match size {
        1 => 0xff,
        2 => 0xffff,
        4 => u32::MAX,
        _ => return None,
    };
    if offset >= FRAME_SIZE || !offset.is_multiple_of(u64::from(size)) {
        return None;
    }
    let shift = (offset % 4) as u32 * 8;
    Some(((offset & !3) as u32, shift, width << shift))
}

#[derive(Debug)]
pub struct Pl011Emulator {
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
    /// Receive FIFO entries as DR returns them: the byte, and error bits 11:8.
    rx: VecDeque<u32>,
    /// An overrun DR has not shown yet: the next byte into the FIFO carries OE (§3.3.1).
    overrun_unreported: bool,
    /// RSR: only overrun can happen on this line, which has no framing, parity or break.
    rsr: u32,
    /// Bytes written while the transmitter was off, sent when it comes on.
    tx_fifo: VecDeque<u8>,
    /// Raw interrupts that are events, cleared through ICR: transmit, overrun, modem status.
    /// Receive and receive timeout follow the receive FIFO's level instead (`raw_status`).
    events: u32,
    /// Bytes transmitted and not yet taken by the backend.
    tx: VecDeque<u8>,
}

impl Default for Pl011Emulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011Emulator {
    /// A PL011 in its reset state: disabled, FIFOs off, every interrupt masked.
    pub fn new() -> Self {
        Self {
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
            dmacr: 0,
            rx: VecDeque::new(),
            overrun_unreported: false,
            rsr: 0,
            tx_fifo: VecDeque::new(),
            events: 0,
            tx: VecDeque::new(),
        }
    }

    fn fifo_depth(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 {
            FIFO_DEPTH
        } else {
            1 // §3.3.7 FEN: without FIFOs, 1-byte holding registers
        }
    }

    fn loopback(&self) -> bool {
        self.cr & CR_LBE != 0
    }

    fn receiver_on(&self) -> bool {
        self.cr & (CR_UARTEN | CR_RXE) == CR_UARTEN | CR_RXE
    }

    /// Enabled, and not held back by CTS flow control (§3.3.8 CTSEn).
    fn transmitter_on(&self) -> bool {
        self.cr & (CR_UARTEN | CR_TXE) == CR_UARTEN | CR_TXE
            && (self.cr & CR_CTSEN == 0 || self.modem_inputs() & FR_CTS != 0)
    }

    /// Receive interrupt level: the IFLS selection, or a full holding register (§3.4.2).
    fn rx_trigger(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 {
            trigger_level((self.ifls >> 3) & 7)
        } else {
            1
        }
    }

    /// Transmit interrupt level: the IFLS selection, or an empty holding register (§3.4.3).
    fn tx_trigger(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 {
            trigger_level(self.ifls & 7)
        } else {
            0
        }
    }

    /// CTS, DSR, DCD and RI as FR shows them.
    fn modem_inputs(&self) -> u32 {
        if self.loopback() {
            LOOPBACK_MODEM
                .iter()
                .filter(|&&(output, _)| self.cr & output != 0)
                .fold(0, |fr, &(_, input)| fr | input)
        } else {
            // A terminal is always there: clear to send, data set ready, carrier; no ring.
            FR_CTS | FR_DSR | FR_DCD
        }
    }

    /// Queues bytes from the outside world (the backend) for the guest to read. Bytes arriving
    /// while the receiver is off, or in loopback (where it hears only the transmitter), are
    /// lost, as on the wire.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.loopback() || !self.receiver_on() {
            return;
        }
        for &b in bytes {
            self.push_rx(b);
        }
    }

    /// Room left in the receive FIFO, for backends that pace input: none while the receiver is
    /// off or in loopback, so input waits for the guest to enable it.
    pub fn receive_room(&self) -> usize {
        if self.loopback() || !self.receiver_on() {
            return 0;
        }
        self.fifo_depth().saturating_sub(self.rx.len())
    }

    fn push_rx(&mut self, byte: u8) {
        if self.rx.len() >= self.fifo_depth() {
            // §3.3.2 OE: the FIFO keeps its contents; the byte in the shift register is lost.
            self.rsr |= RSR_OE;
            self.events |= INT_OE;
            self.overrun_unreported = true;
        } else {
            let oe = if mem::take(&mut self.overrun_unreported) {
                DR_OE
            } else {
                0
            };
            self.rx.push_back(u32::from(byte) | oe);
        }
    }

    /// Takes the bytes the guest transmitted since the last call.
    /// Keeps the buffer: a guest writing byte by byte costs no allocation per byte.
    pub fn drain_transmitted(&mut self) -> alloc::collections::vec_deque::Drain<'_, u8> {
        self.tx.drain(..)
    }

    /// Whether UARTINTR, the OR of the masked interrupts (§3.4.6), is asserted.
    pub fn interrupt_asserted(&self) -> bool {
        self.masked_status() != 0
    }

    fn write_data(&mut self, byte: u8) {
        if self.tx_fifo.len() >= self.fifo_depth() {
            return; // Nowhere to put it: the write is lost.
        }
        self.tx_fifo.push_back(byte);
        if self.tx_fifo.len() > self.tx_trigger() {
            self.events &= !INT_TX; // §3.4.3: filled above the trigger level
        }
        self.transmit();
    }

    /// Sends what the transmit FIFO holds, if the transmitter is on.
    fn transmit(&mut self) {
        if !self.transmitter_on() || self.tx_fifo.is_empty() {
            return;
        }
        while let Some(byte) = self.tx_fifo.pop_front() {
            if !self.loopback() {
                self.tx.push_back(byte);
            } else if self.receiver_on() {
                self.push_rx(byte);
            }
        }
        // §3.4.3: the FIFO drained to its trigger level. r1p5 raises the transmit interrupt on
        // that transition, not on the level: an empty FIFO nobody wrote to raises nothing.
        self.events |= INT_TX;
    }

    fn flags(&self) -> u32 {
        let depth = self.fifo_depth();
        let mut fr = self.modem_inputs();
        if self.rx.is_empty() {
            fr |= FR_RXFE;
        }
        if self.rx.len() >= depth {
            fr |= FR_RXFF;
        }
        if self.tx_fifo.is_empty() {
            fr |= FR_TXFE;
        } else {
            fr |= FR_BUSY; // §3.3.3: set while the FIFO holds data, enabled or not
        }
        if self.tx_fifo.len() >= depth {
            fr |= FR_TXFF;
        }
        fr
    }

    /// RIS. No time passes here, so the receive timeout (§3.4.4) has always run out: data
    /// waiting below the trigger level asserts it at once. Receive and timeout follow the
    /// FIFO level, so clearing them through ICR lasts only while the FIFO has no data — as
    /// hardware's timeout fires again while data waits.
    fn raw_status(&self) -> u32 {
        let level = self.rx.len();
        let receive = if level >= self.rx_trigger() {
            INT_RX
        } else if level > 0 {
            INT_RT
        } else {
            0
        };
        self.events | receive
    }

    fn masked_status(&self) -> u32 {
        self.raw_status() & self.imsc
    }

    fn set_control(&mut self, value: u32) {
        let before = self.modem_inputs();
        self.cr = value & CR_MASK;
        let changed = before ^ self.modem_inputs();
        for (input, interrupt) in MODEM_INTERRUPTS {
            if changed & input != 0 {
                self.events |= interrupt;
            }
        }
        self.transmit(); // Held bytes leave once the transmitter is on (or CTS rises).
    }

    fn set_line_control(&mut self, value: u32) {
        let value = value & LCR_H_MASK;
        if (value ^ self.lcr_h) & LCR_H_FEN != 0 {
            // Changing FEN flushes the FIFOs: §3.3.8's reprogramming sequence clears FEN to
            // flush the transmit FIFO, and the receive FIFO's contents may not fit the new
            // depth.
            self.rx.clear();
            self.tx_fifo.clear();
            self.overrun_unreported = false;
        }
        self.lcr_h = value;
    }

    fn read_register(&mut self, register: u32) -> u32 {
        match register {
            DR => self.rx.pop_front().unwrap_or(0),
            RSR => self.rsr,
            FR => self.flags(),
            ILPR => self.ilpr,
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            RIS => self.raw_status(),
            MIS => self.masked_status(),
            DMACR => self.dmacr,
            PERIPH_ID0..=0xffc => u32::from(ID[((register - PERIPH_ID0) / 4) as usize]),
            _ => 0, // reserved, test registers, and ICR (write-only)
        }
    }

    /// `value` is already in place and within `lanes`.
    fn write_register(&mut self, register: u32, value: u32, lanes: u32) {
        let merge = |old: u32| (old & !lanes) | value;
        match register {
            // The data byte is bits 7:0: a write that leaves them out sends nothing.
            DR if lanes & 0xff == 0xff => self.write_data(value as u8),
            RSR => self.rsr = 0, // §3.3.2: any write to ECR clears the errors
            ILPR => self.ilpr = merge(self.ilpr) & ILPR_MASK,
            IBRD => self.ibrd = merge(self.ibrd) & IBRD_MASK,
            FBRD => self.fbrd = merge(self.fbrd) & FBRD_MASK,
            LCR_H => self.set_line_control(merge(self.lcr_h)),
            CR => self.set_control(merge(self.cr)),
            IFLS => self.ifls = merge(self.ifls) & IFLS_MASK,
            IMSC => self.imsc = merge(self.imsc) & INT_ALL,
            ICR => self.events &= !value,
            DMACR => self.dmacr = merge(self.dmacr) & DMACR_MASK,
            _ => {}
        }
    }

    /// A guest read of `size` bytes at `offset` in the register frame (see the module comment).
    pub fn read(&mut self, offset: u64, size: u8) -> u32 {
        match decode(offset, size) {
            Some((register, shift, lanes)) => (self.read_register(register) & lanes) >> shift,
            None => 0,
        }
    }

    /// A guest write of the low `size` bytes of `value` at `offset` in the register frame.
    pub fn write(&mut self, offset: u64, size: u8, value: u32) {
        if let Some((register, shift, lanes)) = decode(offset, size) {
            self.write_register(register, (value << shift) & lanes, lanes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pl011::{Pl011, RegisterAccess32};
    use crate::text_output::TextOutput;

    impl RegisterAccess32 for &mut Pl011Emulator {
        fn read(&mut self, offset: u32) -> u32 {
            Pl011Emulator::read(self, offset.into(), 4)
        }
        fn write(&mut self, offset: u32, value: u32) {
            Pl011Emulator::write(self, offset.into(), 4, value)
        }
    }

    /// 32-bit accesses, as most drivers make.
    fn rd(u: &mut Pl011Emulator, register: u32) -> u32 {
        u.read(register.into(), 4)
    }

    fn wr(u: &mut Pl011Emulator, register: u32, value: u32) {
        u.write(register.into(), 4, value)
    }

    /// Enabled for transmit and receive, FIFOs on or off, other bits of CR as given.
    fn enabled(fifos: bool, cr: u32) -> Pl011Emulator {
        let mut u = Pl011Emulator::new();
        wr(&mut u, LCR_H, if fifos { LCR_H_8BIT_FIFO } else { 0x60 });
        wr(&mut u, CR, CR_UARTEN | CR_TXE | CR_RXE | cr);
        u
    }

    fn transmitted(u: &mut Pl011Emulator) -> Vec<u8> {
        u.drain_transmitted().collect()
    }

    #[test]
    fn parapets_own_driver_finds_it_and_talks_through_it() {
        let mut uart = Pl011Emulator::new();
        let mut driver = Pl011::new(&mut uart);
        driver.init();
        driver.write_str("hi\n");
        assert_eq!(driver.read_byte(), None);
        assert_eq!(driver.dropped(), 0);
        assert_eq!(transmitted(&mut uart), b"hi\r\n");
        uart.receive(b"ok");
        let mut driver = Pl011::new(&mut uart);
        assert_eq!(driver.read_byte(), Some(b'o'));
        assert_eq!(driver.read_byte(), Some(b'k'));
        assert_eq!(driver.read_byte(), None);
    }

    #[test]
    fn reset_state_matches_the_trm() {
        let mut u = Pl011Emulator::new();
        assert_eq!(rd(&mut u, CR), 0x0300);
        assert_eq!(rd(&mut u, IFLS), 0x12);
        assert_eq!(
            rd(&mut u, FR),
            FR_TXFE | FR_RXFE | FR_CTS | FR_DSR | FR_DCD,
            "empty FIFOs, a connected line"
        );
        for register in [DR, RSR, ILPR, IBRD, FBRD, LCR_H, IMSC, RIS, MIS, DMACR] {
            assert_eq!(rd(&mut u, register), 0, "register {register:#x}");
        }
        assert!(!u.interrupt_asserted());
        assert_eq!(u.receive_room(), 0, "UARTEN is clear after reset");
    }

    #[test]
    fn id_registers_identify_an_arm_pl011_r1p5() {
        let mut u = Pl011Emulator::new();
        let ids: Vec<u32> = (0..8).map(|i| rd(&mut u, PERIPH_ID0 + 4 * i)).collect();
        assert_eq!(ids, [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        wr(&mut u, PERIPH_ID0, 0xff);
        assert_eq!(rd(&mut u, PERIPH_ID0), 0x11, "read-only");
        assert_eq!(u.read(0xfe8, 1), 0x34);
        assert_eq!(u.read(0xfe9, 1), 0, "above the ID byte");
        for reserved in (0xfd0..0xfe0).step_by(4) {
            assert_eq!(rd(&mut u, reserved), 0, "future ID expansion");
        }
    }

    #[test]
    fn registers_hold_only_their_defined_bits() {
        for (register, bits) in [
            (ILPR, 0xff),
            (IBRD, 0xffff),
            (FBRD, 0x3f),
            (LCR_H, 0xff),
            (CR, 0xff87),
            (IFLS, 0x3f),
            (IMSC, 0x7ff),
            (DMACR, 0x7),
        ] {
            let mut u = Pl011Emulator::new();
            wr(&mut u, register, u32::MAX);
            assert_eq!(rd(&mut u, register), bits, "register {register:#x}");
            wr(&mut u, register, 0);
            assert_eq!(rd(&mut u, register), 0, "register {register:#x}");
        }
    }

    #[test]
    fn a_disabled_uart_holds_data_until_enabled() {
        let mut u = Pl011Emulator::new(); // UARTEN clear, FIFOs off
        wr(&mut u, DR, u32::from(b'a'));
        assert!(transmitted(&mut u).is_empty());
        assert_eq!(
            rd(&mut u, FR) & (FR_BUSY | FR_TXFF | FR_TXFE),
            FR_BUSY | FR_TXFF
        );
        wr(&mut u, DR, u32::from(b'b'));
        wr(&mut u, CR, CR_UARTEN | CR_TXE | CR_RXE);
        assert_eq!(
            transmitted(&mut u),
            b"a",
            "b found the holding register full"
        );
        assert_eq!(rd(&mut u, FR) & (FR_BUSY | FR_TXFF | FR_TXFE), FR_TXFE);

        // TXE clear with the UART on: the FIFO fills, and TXE sends it.
        wr(&mut u, LCR_H, LCR_H_8BIT_FIFO);
        wr(&mut u, CR, CR_UARTEN | CR_RXE);
        for b in b"xyz" {
            wr(&mut u, DR, u32::from(*b));
        }
        assert!(transmitted(&mut u).is_empty());
        assert_eq!(rd(&mut u, FR) & (FR_BUSY | FR_TXFF | FR_TXFE), FR_BUSY);
        wr(&mut u, CR, CR_UARTEN | CR_TXE | CR_RXE);
        assert_eq!(transmitted(&mut u), b"xyz");
    }

    #[test]
    fn loopback_returns_transmitted_bytes_as_received() {
        let mut u = enabled(true, CR_LBE);
        wr(&mut u, DR, u32::from(b'p'));
        u.write(u64::from(DR), 1, u32::from(b'q'));
        u.receive(b"ignored: the receiver hears only the transmitter");
        assert_eq!(u.receive_room(), 0);
        assert!(transmitted(&mut u).is_empty(), "nothing reaches the line");
        assert_eq!(rd(&mut u, DR), u32::from(b'p'));
        assert_eq!(u.read(u64::from(DR), 1), u32::from(b'q'));
        assert_ne!(rd(&mut u, FR) & FR_RXFE, 0);

        // With the receiver off the looped byte is lost.
        wr(&mut u, CR, CR_UARTEN | CR_TXE | CR_LBE);
        wr(&mut u, DR, u32::from(b'r'));
        assert_ne!(rd(&mut u, FR) & FR_RXFE, 0);
        assert!(transmitted(&mut u).is_empty());
    }

    #[test]
    fn loopback_feeds_modem_outputs_to_inputs_and_raises_modem_interrupts() {
        let modem = FR_CTS | FR_DSR | FR_DCD | FR_RI;
        let on = CR_UARTEN | CR_TXE | CR_RXE;
        let mut u = enabled(true, 0);
        assert_eq!(rd(&mut u, RIS), 0);
        wr(&mut u, CR, on | CR_LBE);
        assert_eq!(rd(&mut u, FR) & modem, 0, "all outputs low");
        assert_eq!(
            rd(&mut u, RIS),
            INT_CTS | INT_DSR | INT_DCD,
            "three inputs fell"
        );
        wr(&mut u, ICR, INT_ALL);
        for (output, input, interrupt) in [
            (CR_RTS, FR_CTS, INT_CTS),
            (CR_DTR, FR_DSR, INT_DSR),
            (CR_OUT1, FR_DCD, INT_DCD),
            (CR_OUT2, FR_RI, INT_RI),
        ] {
            wr(&mut u, CR, on | CR_LBE | output);
            assert_eq!(rd(&mut u, FR) & modem, input);
            assert_eq!(rd(&mut u, RIS), interrupt);
            wr(&mut u, CR, on | CR_LBE);
            wr(&mut u, ICR, interrupt);
        }

        // CTS flow control holds transmission until RTS (looped to CTS) rises.
        wr(&mut u, CR, on | CR_LBE | CR_CTSEN);
        wr(&mut u, DR, u32::from(b'c'));
        assert_ne!(rd(&mut u, FR) & FR_BUSY, 0);
        assert_ne!(rd(&mut u, FR) & FR_RXFE, 0);
        wr(&mut u, CR, on | CR_LBE | CR_CTSEN | CR_RTS);
        assert_eq!(rd(&mut u, FR) & FR_BUSY, 0);
        assert_eq!(rd(&mut u, DR), u32::from(b'c'));
    }

    #[test]
    fn fr_tracks_both_fifos() {
        let full = FR_RXFE | FR_RXFF | FR_TXFE | FR_TXFF | FR_BUSY;
        let mut u = enabled(true, 0);
        assert_eq!(rd(&mut u, FR) & full, FR_RXFE | FR_TXFE);
        u.receive(b"a");
        assert_eq!(rd(&mut u, FR) & full, FR_TXFE);
        u.receive(&[0; 31]);
        assert_eq!(rd(&mut u, FR) & full, FR_RXFF | FR_TXFE);
        rd(&mut u, DR);
        assert_eq!(rd(&mut u, FR) & full, FR_TXFE);

        wr(&mut u, CR, CR_UARTEN | CR_RXE); // transmitter off: the FIFO fills
        for i in 0..32 {
            assert_eq!(rd(&mut u, FR) & FR_TXFF, 0, "after {i} bytes");
            wr(&mut u, DR, i);
        }
        assert_eq!(rd(&mut u, FR) & full, FR_TXFF | FR_BUSY);
        wr(&mut u, DR, 0xff);
        wr(&mut u, CR, CR_UARTEN | CR_TXE | CR_RXE);
        assert_eq!(transmitted(&mut u), (0..32).collect::<Vec<u8>>());

        // Without FIFOs a single byte fills either side.
        let mut u = enabled(false, 0);
        u.receive(b"z");
        assert_eq!(rd(&mut u, FR) & full, FR_RXFF | FR_TXFE);
        assert_eq!(u.receive_room(), 0);
    }

    #[test]
    fn a_full_fifo_overruns_and_the_next_byte_carries_oe() {
        let mut u = enabled(true, 0);
        u.receive(&(0..40).collect::<Vec<u8>>());
        assert_eq!(rd(&mut u, RSR), RSR_OE);
        assert_eq!(rd(&mut u, RIS) & INT_OE, INT_OE);
        for i in 0..32 {
            assert_eq!(rd(&mut u, DR), i, "the FIFO kept its contents");
        }
        u.receive(b"zy");
        assert_eq!(rd(&mut u, DR), DR_OE | u32::from(b'z'));
        assert_eq!(rd(&mut u, DR), u32::from(b'y'));
        wr(&mut u, RSR, 0); // ECR
        assert_eq!(rd(&mut u, RSR), 0);
        assert_eq!(
            rd(&mut u, RIS) & INT_OE,
            INT_OE,
            "RIS is cleared through ICR"
        );
        wr(&mut u, ICR, INT_OE);
        assert_eq!(rd(&mut u, RIS), 0, "nothing left");

        // Without FIFOs the holding register keeps the older byte.
        let mut u = enabled(false, 0);
        u.receive(b"12");
        assert_eq!(rd(&mut u, RSR), RSR_OE);
        assert_eq!(rd(&mut u, DR), u32::from(b'1'));
        assert_ne!(rd(&mut u, FR) & FR_RXFE, 0);
    }

    #[test]
    fn changing_fen_flushes_both_fifos() {
        let mut u = enabled(true, 0);
        u.receive(b"abc");
        wr(&mut u, CR, CR_UARTEN | CR_RXE);
        wr(&mut u, DR, u32::from(b'x'));
        wr(&mut u, LCR_H, LCR_H_8BIT_FIFO | 1); // same FEN: nothing flushed
        assert_eq!(rd(&mut u, FR) & (FR_RXFE | FR_BUSY), FR_BUSY);
        wr(&mut u, LCR_H, 0x60);
        assert_eq!(rd(&mut u, FR) & (FR_RXFE | FR_TXFE), FR_RXFE | FR_TXFE);
        wr(&mut u, CR, CR_UARTEN | CR_TXE | CR_RXE);
        assert!(transmitted(&mut u).is_empty());
    }

    #[test]
    fn receive_and_timeout_interrupts_follow_the_trigger_level() {
        let mut u = enabled(true, 0);
        wr(&mut u, IMSC, INT_RX | INT_RT);
        assert!(!u.interrupt_asserted());
        u.receive(&[0; 15]);
        assert_eq!(rd(&mut u, RIS), INT_RT, "below half full: the timeout");
        u.receive(b"x");
        assert_eq!(rd(&mut u, RIS), INT_RX, "half full");
        wr(&mut u, ICR, INT_RX | INT_RT);
        assert_eq!(rd(&mut u, RIS), INT_RX, "the level still holds");
        rd(&mut u, DR);
        assert_eq!(rd(&mut u, MIS), INT_RT);
        while rd(&mut u, FR) & FR_RXFE == 0 {
            rd(&mut u, DR);
        }
        assert_eq!(rd(&mut u, RIS), 0);
        assert!(!u.interrupt_asserted());

        for (select, level) in [(0, 4), (1, 8), (2, 16), (3, 24), (4, 28), (7, 16)] {
            wr(&mut u, IFLS, select << 3);
            u.receive(&vec![0; level - 1]);
            assert_eq!(rd(&mut u, RIS), INT_RT, "selection {select}");
            u.receive(b"x");
            assert_eq!(rd(&mut u, RIS), INT_RX, "selection {select}");
            wr(&mut u, LCR_H, 0x60); // flush
            wr(&mut u, LCR_H, LCR_H_8BIT_FIFO);
        }

        // Without FIFOs a full holding register is the receive interrupt.
        wr(&mut u, LCR_H, 0x60);
        u.receive(b"y");
        assert_eq!(rd(&mut u, RIS), INT_RX);
    }

    #[test]
    fn transmit_interrupt_rises_when_a_byte_leaves_and_icr_clears_it() {
        let mut u = enabled(true, 0);
        assert_eq!(rd(&mut u, RIS), 0, "nothing has left the FIFO yet");
        wr(&mut u, IMSC, INT_TX);
        assert!(!u.interrupt_asserted());
        wr(&mut u, DR, u32::from(b'a'));
        assert_eq!(rd(&mut u, RIS), INT_TX);
        assert_eq!(rd(&mut u, MIS), INT_TX);
        assert!(u.interrupt_asserted());
        wr(&mut u, IMSC, 0);
        assert!(!u.interrupt_asserted(), "masked");
        assert_eq!(rd(&mut u, RIS), INT_TX, "still raw");
        wr(&mut u, ICR, INT_TX);
        wr(&mut u, IMSC, INT_TX);
        assert_eq!(rd(&mut u, RIS), 0, "cleared until the next byte leaves");
        assert!(!u.interrupt_asserted());
        wr(&mut u, DR, u32::from(b'b'));
        assert!(u.interrupt_asserted());

        // Held data above the trigger level clears it; sending the data raises it again.
        let mut u = enabled(false, 0);
        wr(&mut u, DR, u32::from(b'c'));
        wr(&mut u, CR, CR_UARTEN | CR_RXE);
        wr(&mut u, DR, u32::from(b'd'));
        assert_eq!(rd(&mut u, RIS), 0);
        wr(&mut u, CR, CR_UARTEN | CR_TXE | CR_RXE);
        assert_eq!(rd(&mut u, RIS), INT_TX);
        assert_eq!(transmitted(&mut u), b"cd");
    }

    #[test]
    fn mis_is_ris_under_imsc() {
        let mut u = enabled(true, CR_LBE);
        wr(&mut u, ICR, INT_ALL); // the modem inputs fell with loopback
        wr(&mut u, DR, 0); // TX, and RT for the looped byte
        u.write(
            u64::from(CR),
            4,
            CR_UARTEN | CR_TXE | CR_RXE | CR_LBE | CR_RTS,
        ); // CTS
        let ris = rd(&mut u, RIS);
        assert_eq!(ris, INT_TX | INT_RT | INT_CTS);
        for imsc in [0, INT_TX, INT_RT | INT_OE, INT_ALL, INT_RX] {
            wr(&mut u, IMSC, imsc);
            assert_eq!(rd(&mut u, IMSC), imsc);
            assert_eq!(rd(&mut u, MIS), ris & imsc);
            assert_eq!(u.interrupt_asserted(), ris & imsc != 0);
        }
    }

    #[test]
    fn a_receiver_that_is_off_drops_input_and_has_no_room() {
        let mut u = Pl011Emulator::new();
        wr(&mut u, CR, CR_UARTEN | CR_TXE);
        u.receive(b"lost");
        assert_eq!(u.receive_room(), 0);
        assert_ne!(rd(&mut u, FR) & FR_RXFE, 0);
        wr(&mut u, CR, CR_UARTEN | CR_TXE | CR_RXE);
        assert_eq!(u.receive_room(), 1);
        wr(&mut u, LCR_H, LCR_H_8BIT_FIFO);
        u.receive(b"kept");
        assert_eq!(u.receive_room(), 28);
        // Disabling the receiver keeps what the FIFO holds.
        wr(&mut u, CR, CR_UARTEN | CR_TXE);
        assert_eq!(rd(&mut u, DR), u32::from(b'k'));
    }

    #[test]
    fn narrow_accesses_reach_the_byte_lanes_they_cover() {
        let mut u = Pl011Emulator::new();
        // Linux's default accessors are 16-bit.
        u.write(
            u64::from(CR),
            2,
            CR_UARTEN | CR_TXE | CR_RXE | CR_LBE | CR_OUT2,
        );
        assert_eq!(
            rd(&mut u, CR),
            CR_UARTEN | CR_TXE | CR_RXE | CR_LBE | CR_OUT2
        );
        assert_eq!(u.read(u64::from(CR), 2), rd(&mut u, CR));
        // A byte write changes one lane and keeps the other.
        u.write(u64::from(CR), 1, 0);
        assert_eq!(rd(&mut u, CR), CR_TXE | CR_RXE | CR_OUT2);
        u.write(u64::from(CR) + 1, 1, (CR_TXE | CR_RXE) >> 8);
        assert_eq!(rd(&mut u, CR), CR_TXE | CR_RXE);
        u.write(u64::from(CR), 1, CR_UARTEN | 0xab00);
        assert_eq!(
            rd(&mut u, CR),
            CR_UARTEN | CR_TXE | CR_RXE,
            "bits above the access"
        );
        // Reads take lanes: FR's ring indicator is bit 0 of its second byte.
        wr(&mut u, CR, CR_UARTEN | CR_TXE | CR_RXE | CR_LBE | CR_OUT2);
        assert_eq!(u.read(u64::from(FR) + 1, 1), 1);
        assert_eq!(u.read(u64::from(FR) + 2, 2), 0);
        // Lanes above a register's width hold nothing.
        u.write(u64::from(IBRD) + 2, 2, 0xffff);
        assert_eq!(rd(&mut u, IBRD), 0);
        u.write(u64::from(IBRD) + 1, 1, 0x12);
        assert_eq!(rd(&mut u, IBRD), 0x1200);

        // DR: a byte write sends bits 7:0 of the value; a write above them sends nothing.
        let mut u = enabled(true, 0);
        u.write(u64::from(DR), 1, 0x1234_5641);
        u.write(u64::from(DR) + 1, 1, u32::from(b'x'));
        u.write(u64::from(DR), 2, u32::from(b'B'));
        assert_eq!(transmitted(&mut u), b"AB");
        // A byte read of DR's second lane pops the entry and returns its error bits.
        u.receive(&[0; 33]);
        for _ in 0..32 {
            rd(&mut u, DR);
        }
        u.receive(b"e");
        assert_eq!(u.read(u64::from(DR) + 1, 1), DR_OE >> 8);
        assert_ne!(rd(&mut u, FR) & FR_RXFE, 0, "the read popped it");

        // Misaligned, and sizes the bus does not carry: nothing happens.
        let cr = rd(&mut u, CR);
        for (offset, size) in [
            (CR + 1, 2),
            (CR + 2, 4),
            (CR + 1, 4),
            (CR, 8),
            (CR, 3),
            (CR, 0),
        ] {
            u.write(u64::from(offset), size, 0);
            assert_eq!(rd(&mut u, CR), cr, "offset {offset:#x} size {size}");
        }
        u.receive(b"k");
        assert_eq!(u.read(u64::from(DR), 8), 0);
        assert_eq!(u.read(u64::from(DR) + 2, 4), 0);
        assert_eq!(rd(&mut u, DR), u32::from(b'k'), "no access above popped it");
    }

    #[test]
    fn junk_accesses_never_panic_and_reserved_space_reads_zero() {
        let mut u = Pl011Emulator::new();
        let offsets = (0..0x1010).chain([u64::MAX, u64::MAX - 3, 1 << 32, 0x1000_0000]);
        for offset in offsets {
            for size in 0..=8 {
                for value in [0, u32::MAX, 0xa5a5_5a5a] {
                    u.read(offset, size);
                    u.write(offset, size, value);
                }
            }
            u.receive(&[0xff; 3]);
            u.drain_transmitted().for_each(drop);
        }
        let reserved = [0x008..0x018, 0x01c..0x020, 0x04c..0xfe0, 0x044..0x048];
        for offset in reserved.into_iter().flat_map(|r| r.step_by(4)) {
            for size in [1, 2, 4] {
                assert_eq!(u.read(offset, size), 0, "offset {offset:#x}");
            }
        }
        for offset in [0x1000, 0x1ffc, u64::MAX - 3] {
            assert_eq!(u.read(offset, 4), 0, "beyond the frame");
        }
        // Whatever the junk left, a driver can take the device back.
        let mut driver = Pl011::new(&mut u);
        driver.init();
        while driver.read_byte().is_some() {}
        transmitted(&mut u); // what the junk had held back
        Pl011::new(&mut u).write_str("ok");
        assert_eq!(transmitted(&mut u), b"ok");
        assert_eq!(rd(&mut u, PERIPH_ID0 + 8), 0x34);
    }

    /// What Linux's drivers/tty/serial/amba-pl011.c does to an Arm PL011 (vendor_arm), with
    /// its default 16-bit accessors (readw/writew, UPIO_MEM).
    struct Linux {
        uart: Pl011Emulator,
        /// The driver's copy of IMSC.
        im: u32,
        fifosize: usize,
        /// The tty's transmit buffer, and what reached the tty from the port.
        xmit: VecDeque<u8>,
        tty: Vec<u8>,
        overruns: usize,
    }

    /// UART011_IFLS_RX4_8 | UART011_IFLS_TX4_8.
    const LINUX_IFLS: u32 = 0x12;

    impl Linux {
        /// The AMBA bus reads the IDs with 32-bit reads, one byte from each word; the driver
        /// sizes its FIFOs from the revision (get_fifosize_arm).
        fn probe(mut uart: Pl011Emulator) -> Self {
            let id = |u: &mut Pl011Emulator, base: u32| {
                (0..4).fold(0, |id, i| id | ((rd(u, base + 4 * i) & 0xff) << (8 * i)))
            };
            let periphid = id(&mut uart, PERIPH_ID0);
            let cid = id(&mut uart, PERIPH_ID0 + 0x10);
            assert_eq!(cid, 0xb105_f00d, "AMBA_CID");
            assert_eq!(periphid & 0x000f_ffff, 0x0004_1011, "matches vendor_arm");
            let revision = (periphid >> 20) & 0xf;
            Self {
                uart,
                im: 0,
                fifosize: if revision < 3 { 16 } else { 32 },
                xmit: VecDeque::new(),
                tty: Vec::new(),
                overruns: 0,
            }
        }

        fn read(&mut self, register: u32) -> u32 {
            self.uart.read(register.into(), 2)
        }

        fn write(&mut self, register: u32, value: u32) {
            self.uart.write(register.into(), 2, value)
        }

        /// pl011_startup: hwinit, allocate_irq, IFLS, CR, then pl011_enable_interrupts.
        fn startup(&mut self) {
            self.write(ICR, INT_OE | INT_BE | INT_PE | INT_FE | INT_RT | INT_RX);
            self.im = self.read(IMSC);
            self.write(IMSC, INT_RT | INT_RX);
            self.write(IMSC, self.im);
            self.write(IFLS, LINUX_IFLS);
            let cr = (self.read(CR) & (CR_RTS | CR_DTR)) | CR_UARTEN | CR_RXE | CR_TXE;
            self.write(CR, cr);
            self.write(ICR, INT_RT | INT_RX);
            for _ in 0..self.fifosize * 2 {
                if self.read(FR) & FR_RXFE != 0 {
                    break;
                }
                self.read(DR);
            }
            self.im = INT_RT | INT_RX;
            self.write(IMSC, self.im);
        }

        /// pl011_set_termios for 115200 8N1 from a 24 MHz clock, no hardware flow control.
        fn set_termios(&mut self) {
            let quot = (24_000_000 * 4 + 115_200 / 2) / 115_200;
            let cr = self.read(CR) & !(CR_CTSEN | CR_RTSEN);
            self.write(FBRD, quot & 0x3f);
            self.write(IBRD, quot >> 6);
            self.write(LCR_H, (0b11 << 5) | LCR_H_FEN);
            self.write(CR, cr);
        }

        /// pl011_start_tx_pio.
        fn start_tx(&mut self, data: &[u8]) {
            self.xmit.extend(data);
            if self.tx_chars(false) {
                self.im |= INT_TX;
                self.write(IMSC, self.im);
            }
        }

        /// pl011_tx_chars: from the interrupt, half a FIFO without looking at FR; otherwise
        /// while TXFF is clear. Masks TXIM once the buffer is empty.
        fn tx_chars(&mut self, from_irq: bool) -> bool {
            let mut count = self.fifosize / 2;
            while let Some(&c) = self.xmit.front() {
                if from_irq {
                    if count == 0 {
                        break;
                    }
                    count -= 1;
                } else if self.read(FR) & FR_TXFF != 0 {
                    break;
                }
                self.write(DR, c.into());
                self.xmit.pop_front();
            }
            if self.xmit.is_empty() {
                self.im &= !INT_TX;
                self.write(IMSC, self.im);
                return false;
            }
            true
        }

        /// pl011_int; returns the number of passes, at most AMBA_ISR_PASS_LIMIT.
        fn interrupt(&mut self) -> usize {
            let mut passes = 0;
            let mut status = self.read(RIS) & self.im;
            while status != 0 {
                passes += 1;
                assert!(passes <= 256, "interrupt storm: RIS {status:#x}");
                self.write(ICR, status & !(INT_TX | INT_RT | INT_RX));
                if status & (INT_RT | INT_RX) != 0 {
                    self.fifo_to_tty();
                }
                if status & INT_TX != 0 {
                    self.tx_chars(true);
                }
                status = self.read(RIS) & self.im;
            }
            passes
        }

        /// pl011_fifo_to_tty.
        fn fifo_to_tty(&mut self) {
            for _ in 0..256 {
                if self.read(FR) & FR_RXFE != 0 {
                    break;
                }
                let ch = self.read(DR);
                if ch & DR_OE != 0 {
                    self.overruns += 1;
                }
                self.tty.push(ch as u8);
            }
        }

        /// pl011_console_write: UARTEN and TXE forced on, CTS flow control off, then a wait for
        /// BUSY to clear before CR is restored.
        fn console_write(&mut self, s: &[u8]) {
            let old_cr = self.read(CR);
            self.write(CR, (old_cr & !CR_CTSEN) | CR_UARTEN | CR_TXE);
            for &c in s {
                assert_eq!(self.read(FR) & FR_TXFF, 0, "would spin on TXFF");
                self.write(DR, c.into());
            }
            assert_eq!(self.read(FR) & FR_BUSY, 0, "would spin on BUSY");
            self.write(CR, old_cr);
        }

        /// pl011_shutdown: pl011_disable_interrupts, then pl011_disable_uart.
        fn shutdown(&mut self) {
            self.im = 0;
            self.write(IMSC, self.im);
            self.write(ICR, 0xffff);
            let cr = (self.read(CR) & (CR_RTS | CR_DTR)) | CR_UARTEN | CR_TXE;
            self.write(CR, cr);
            let lcr_h = self.read(LCR_H) & !(LCR_H_FEN | 1); // and BRK
            self.write(LCR_H, lcr_h);
        }

        fn output(&mut self) -> Vec<u8> {
            self.uart.drain_transmitted().collect()
        }
    }

    fn linux_running() -> Linux {
        let mut linux = Linux::probe(Pl011Emulator::new());
        linux.startup();
        linux.set_termios();
        linux
    }

    #[test]
    fn linux_probes_an_arm_pl011_with_32_byte_fifos() {
        assert_eq!(Linux::probe(Pl011Emulator::new()).fifosize, 32);
    }

    #[test]
    fn linux_starts_it_and_writes_through_console_and_tty() {
        let mut linux = linux_running();
        assert_eq!(linux.read(IBRD), 833 >> 6);
        assert_eq!(linux.read(FBRD), 833 & 0x3f);
        assert_eq!(linux.read(IMSC), INT_RT | INT_RX);
        assert!(!linux.uart.interrupt_asserted());
        linux.console_write(b"[    0.000000] Booting Linux\r\n");
        linux.start_tx(&[b'x'; 100]);
        let mut expected = b"[    0.000000] Booting Linux\r\n".to_vec();
        expected.extend([b'x'; 100]);
        assert_eq!(linux.output(), expected);
        assert_eq!(
            linux.im,
            INT_RT | INT_RX,
            "everything sent: TXIM stays masked"
        );
        assert!(!linux.uart.interrupt_asserted());
        assert_eq!(linux.interrupt(), 0);
    }

    #[test]
    fn linux_interrupt_handler_takes_input_and_lowers_the_line() {
        let mut linux = linux_running();
        linux.uart.receive(b"hello");
        assert!(
            linux.uart.interrupt_asserted(),
            "below the trigger: timeout"
        );
        assert_eq!(linux.interrupt(), 1);
        assert_eq!(linux.tty, b"hello");
        assert!(!linux.uart.interrupt_asserted());

        linux.uart.receive(&[b'a'; 20]);
        assert_eq!(linux.read(MIS), INT_RX);
        linux.interrupt();
        assert_eq!(linux.tty.len(), 25);
        assert!(!linux.uart.interrupt_asserted());

        // 40 bytes into 32 places: the handler takes 32, and the next byte reports the overrun.
        linux.uart.receive(&[b'b'; 40]);
        linux.interrupt();
        assert_eq!(linux.tty.len(), 57);
        assert_eq!(linux.overruns, 0);
        assert_eq!(linux.read(RIS), INT_OE, "Linux leaves OEIM masked");
        linux.uart.receive(b"c");
        linux.interrupt();
        assert_eq!((linux.tty.last(), linux.overruns), (Some(&b'c'), 1));
        assert!(!linux.uart.interrupt_asserted());
    }

    #[test]
    fn linux_transmit_interrupt_sends_the_rest_then_masks_itself() {
        let mut linux = linux_running();
        linux.console_write(b"$ ");
        // As if pl011_tx_chars had stopped on TXFF with data left: TXIM unmasked.
        linux.xmit.extend([b'y'; 100]);
        linux.im |= INT_TX;
        let im = linux.im;
        linux.write(IMSC, im);
        assert!(
            linux.uart.interrupt_asserted(),
            "raised when the last byte left"
        );
        let passes = linux.interrupt();
        assert_eq!(passes, 100usize.div_ceil(16), "half a FIFO per pass");
        assert!(linux.xmit.is_empty());
        assert_eq!(linux.output().len(), 102);
        assert!(!linux.uart.interrupt_asserted());
    }

    #[test]
    fn linux_shuts_it_down_and_the_console_still_prints() {
        let mut linux = linux_running();
        linux.uart.receive(b"unread");
        linux.shutdown();
        assert_eq!(linux.read(IMSC), 0);
        assert_eq!(linux.read(LCR_H) & LCR_H_FEN, 0);
        assert_ne!(linux.read(FR) & FR_RXFE, 0, "FEN cleared: FIFOs flushed");
        assert!(!linux.uart.interrupt_asserted());
        linux.console_write(b"reboot: Power down\r\n");
        assert_eq!(linux.output(), b"reboot: Power down\r\n");
        // And it comes back up.
        linux.startup();
        linux.set_termios();
        linux.uart.receive(b"again");
        linux.interrupt();
        assert_eq!(linux.tty, b"again");
    }
}

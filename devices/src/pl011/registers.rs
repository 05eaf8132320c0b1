//! PL011 register offsets and bits (Arm PrimeCell UART (PL011) TRM, DDI 0183, §3.2 table 3-1
//! for the offsets, §3.3 for the bits).

/// Data register (§3.3.1).
pub const DR: u32 = 0x000;
/// Receive status (read) / error clear (write) (§3.3.2).
pub const RSR: u32 = 0x004;
/// Flag register (§3.3.3).
pub const FR: u32 = 0x018;
/// IrDA low-power counter (§3.3.4).
pub const ILPR: u32 = 0x020;
/// Integer baud divisor (§3.3.5).
pub const IBRD: u32 = 0x024;
/// Fractional baud divisor (§3.3.6).
pub const FBRD: u32 = 0x028;
/// Line control (§3.3.7).
pub const LCR_H: u32 = 0x02c;
/// Control (§3.3.8).
pub const CR: u32 = 0x030;
/// Interrupt FIFO level select (§3.3.9).
pub const IFLS: u32 = 0x034;
/// Interrupt mask set/clear (§3.3.10).
pub const IMSC: u32 = 0x038;
/// Raw interrupt status (§3.3.11).
pub const RIS: u32 = 0x03c;
/// Masked interrupt status (§3.3.12).
pub const MIS: u32 = 0x040;
/// Interrupt clear (§3.3.13).
pub const ICR: u32 = 0x044;
/// DMA control (§3.3.14).
pub const DMACR: u32 = 0x048;
/// UARTPeriphID0-3 then UARTPCellID0-3, one byte per word (§3.3.15, §3.3.16).
pub const PERIPH_ID0: u32 = 0xfe0;

/// DR: error bits above the data byte (framing, parity, break, overrun).
pub const DR_ERRORS: u32 = 0xf00;
/// DR: overrun error.
pub const DR_OE: u32 = 1 << 11;

/// RSR: overrun error.
pub const RSR_OE: u32 = 1 << 3;

/// FR: clear to send, data set ready, data carrier detect (inputs, active high here).
pub const FR_CTS: u32 = 1 << 0;
pub const FR_DSR: u32 = 1 << 1;
pub const FR_DCD: u32 = 1 << 2;
/// FR: the transmit FIFO holds data (set regardless of UARTEN).
pub const FR_BUSY: u32 = 1 << 3;
/// FR: receive FIFO empty.
pub const FR_RXFE: u32 = 1 << 4;
/// FR: transmit FIFO full.
pub const FR_TXFF: u32 = 1 << 5;
/// FR: receive FIFO full.
pub const FR_RXFF: u32 = 1 << 6;
/// FR: transmit FIFO empty.
pub const FR_TXFE: u32 = 1 << 7;
/// FR: ring indicator.
pub const FR_RI: u32 = 1 << 8;

/// LCR_H: FIFOs enabled (else 1-byte holding registers).
pub const LCR_H_FEN: u32 = 1 << 4;
/// LCR_H: 8 data bits, FIFOs enabled.
pub const LCR_H_8BIT_FIFO: u32 = (0b11 << 5) | LCR_H_FEN;

/// CR: UART enable, transmit enable, receive enable.
pub const CR_UARTEN: u32 = 1 << 0;
pub const CR_TXE: u32 = 1 << 8;
pub const CR_RXE: u32 = 1 << 9;
/// CR: loopback (transmitter into receiver, modem outputs into modem inputs).
pub const CR_LBE: u32 = 1 << 7;
/// CR: modem outputs, and hardware flow control.
pub const CR_DTR: u32 = 1 << 10;
pub const CR_RTS: u32 = 1 << 11;
pub const CR_OUT1: u32 = 1 << 12;
pub const CR_OUT2: u32 = 1 << 13;
pub const CR_RTSEN: u32 = 1 << 14;
pub const CR_CTSEN: u32 = 1 << 15;

/// Interrupt bits, the same in IMSC, RIS, MIS and ICR (§3.3.10-§3.3.13): modem status
/// (ring, CTS, DCD, DSR), receive, transmit, receive timeout, and the receive errors.
pub const INT_RI: u32 = 1 << 0;
pub const INT_CTS: u32 = 1 << 1;
pub const INT_DCD: u32 = 1 << 2;
pub const INT_DSR: u32 = 1 << 3;
pub const INT_RX: u32 = 1 << 4;
pub const INT_TX: u32 = 1 << 5;
pub const INT_RT: u32 = 1 << 6;
pub const INT_FE: u32 = 1 << 7;
pub const INT_PE: u32 = 1 << 8;
pub const INT_BE: u32 = 1 << 9;
pub const INT_OE: u32 = 1 << 10;
/// All eleven interrupt bits.
pub const INT_ALL: u32 = 0x7ff;

/// IMSC: receive interrupt.
pub const IMSC_RX: u32 = INT_RX;

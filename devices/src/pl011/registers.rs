//! PL011 register offsets and bits (Arm PrimeCell UART (PL011) TRM, DDI 0183, §3.2).

/// Data register.
pub const DR: u32 = 0x000;
/// Flag register.
pub const FR: u32 = 0x018;
/// Integer baud divisor.
pub const IBRD: u32 = 0x024;
/// Fractional baud divisor.
pub const FBRD: u32 = 0x028;
/// Line control.
pub const LCR_H: u32 = 0x02c;
/// Control.
pub const CR: u32 = 0x030;
/// Interrupt mask set/clear.
pub const IMSC: u32 = 0x038;
/// Interrupt clear.
pub const ICR: u32 = 0x044;

/// FR: transmit FIFO full.
pub const FR_TXFF: u32 = 1 << 5;
/// FR: receive FIFO empty.
pub const FR_RXFE: u32 = 1 << 4;

/// LCR_H: 8 data bits, FIFOs enabled.
pub const LCR_H_8BIT_FIFO: u32 = (0b11 << 5) | (1 << 4);

/// CR: UART enable, transmit enable, receive enable.
pub const CR_UARTEN: u32 = 1 << 0;
pub const CR_TXE: u32 = 1 << 8;
pub const CR_RXE: u32 = 1 << 9;

/// IMSC: receive interrupt.
pub const IMSC_RX: u32 = 1 << 4;

/// DR: error bits above the data byte (framing, parity, break, overrun).
pub const DR_ERRORS: u32 = 0xf00;

//! 16550A register offsets and bits (National Semiconductor PC16550D datasheet, table II).

/// Receiver buffer (read, DLAB=0).
pub const RBR: u8 = 0;
/// Transmitter holding register (write, DLAB=0).
pub const THR: u8 = 0;
/// Divisor latch low byte (DLAB=1).
pub const DLL: u8 = 0;
/// Interrupt enable (DLAB=0).
pub const IER: u8 = 1;
/// Divisor latch high byte (DLAB=1).
pub const DLM: u8 = 1;
/// Interrupt identification (read).
pub const IIR: u8 = 2;
/// FIFO control (write).
pub const FCR: u8 = 2;
/// Line control.
pub const LCR: u8 = 3;
/// Modem control.
pub const MCR: u8 = 4;
/// Line status.
pub const LSR: u8 = 5;
/// Modem status.
pub const MSR: u8 = 6;
/// Scratch.
pub const SCR: u8 = 7;

/// IER: received data available.
pub const IER_RX_AVAILABLE: u8 = 1 << 0;

/// FCR: enable FIFOs, clear both, 14-byte receive trigger.
pub const FCR_ENABLE_CLEAR_14: u8 = 0b1100_0111;

/// LCR: 8 data bits, no parity, one stop bit.
pub const LCR_8N1: u8 = 0b0000_0011;
/// LCR: divisor latch access bit.
pub const LCR_DLAB: u8 = 1 << 7;

/// MCR: DTR, RTS, and OUT2 (which gates the interrupt line on PCs).
pub const MCR_DTR_RTS_OUT2: u8 = 0b0000_1011;
/// MCR: loopback mode.
pub const MCR_LOOPBACK: u8 = 1 << 4;

/// LSR: data ready.
pub const LSR_DATA_READY: u8 = 1 << 0;
/// LSR: overrun error.
pub const LSR_OVERRUN: u8 = 1 << 1;
/// LSR: transmitter holding register empty.
pub const LSR_THR_EMPTY: u8 = 1 << 5;

/// Input clock divided by 16 (1.8432 MHz / 16): the divisor for a baud rate is this / rate.
pub const BAUD_BASE: u32 = 115_200;

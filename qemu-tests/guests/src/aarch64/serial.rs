//! The PL011 at 0x0900_0000 (QEMU virt's UART0, which Parapet emulates for its guest at the
//! same address), set up as Linux's amba-pl011 driver does (disable, baud divisors, line
//! control, enable) and polled: wait while the transmit FIFO is full, write the byte.
//! Registers: Arm PrimeCell UART (PL011) TRM, DDI 0183, §3.2-§3.3. Every access is 32 bits
//! wide; the escape guest tries the other widths.

/// The UART's base address.
pub const BASE: usize = 0x0900_0000;
/// Data register.
pub const DR: usize = 0x000;
/// Flag register.
pub const FR: usize = 0x018;
const IBRD: usize = 0x024;
const FBRD: usize = 0x028;
const LCR_H: usize = 0x02c;
const CR: usize = 0x030;
const IMSC: usize = 0x038;
const ICR: usize = 0x044;

/// FR: transmit FIFO full.
pub const FR_TXFF: u32 = 1 << 5;
/// LCR_H: 8 data bits (WLEN = 0b11), no parity, one stop bit, FIFOs enabled (FEN).
const LCR_H_8N1_FIFO: u32 = (0b11 << 5) | (1 << 4);
/// CR: UART, transmit and receive enable.
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;
/// Every interrupt bit in IMSC and ICR.
const ALL_INTERRUPTS: u32 = 0x7ff;

/// UARTCLK on QEMU's virt board (the device tree's `apb_pclk`: 24 MHz).
const CLOCK_HZ: u32 = 24_000_000;
const BAUD: u32 = 115_200;

fn read(offset: usize) -> u32 {
    // SAFETY: the PL011's registers are this guest's device at BASE; a 32-bit aligned read
    // of one has no effect beyond the device's.
    unsafe { ((BASE + offset) as *const u32).read_volatile() }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { ((BASE + offset) as *mut u32).write_volatile(value) }
}

/// Programs the UART for 115200 8N1 with FIFOs, interrupts masked, as amba-pl011's
/// `pl011_startup` and `pl011_set_termios` do.
pub fn init() {
    write(CR, 0);
    write(IMSC, 0);
    write(ICR, ALL_INTERRUPTS);
    // The divisor in 1/64ths, rounded to nearest: 24 MHz * 4 / 115200 = 833 (13 + 1/64).
    let divisor = (CLOCK_HZ * 4 + BAUD / 2) / BAUD;
    write(FBRD, divisor & 0x3f);
    write(IBRD, divisor >> 6);
    // LCR_H after IBRD/FBRD: writing it is what latches the divisors (TRM §3.3.7).
    write(LCR_H, LCR_H_8N1_FIFO);
    write(CR, CR_UARTEN | CR_TXE | CR_RXE);
}

/// The flag register.
pub fn flags() -> u32 {
    read(FR)
}

/// Writes `byte` once the transmit FIFO has room.
pub fn write_byte(byte: u8) {
    while flags() & FR_TXFF != 0 {
        core::hint::spin_loop();
    }
    write(DR, u32::from(byte));
}

/// `core::fmt` output to the PL011, `\n` as `\r\n`.
pub struct Pl011;

impl core::fmt::Write for Pl011 {
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

//! Calibration against the 8254 PIT, whose input clock is fixed at 1.193182 MHz.
//!
//! Channel 2 runs one-shot (mode 0) with its gate driven from port 0x61; its output, readable
//! in bit 5 of port 0x61, goes high when the count reaches zero (8254 datasheet, mode 0).

use super::instructions::{inb, outb};

pub const PIT_HZ: u64 = 1_193_182;
const CHANNEL2_DATA: u16 = 0x42;
const COMMAND: u16 = 0x43;
const GATE_PORT: u16 = 0x61;
const GATE2: u8 = 1 << 0;
const SPEAKER: u8 = 1 << 1;
const OUT2: u8 = 1 << 5;
/// Channel 2, lobyte/hibyte access, mode 0, binary.
const CHANNEL2_ONESHOT: u8 = 0b1011_0000;

/// Busy-waits `micros` (at most 54 925) on PIT channel 2, calling `at_start` right after the
/// count starts, and returns. Used to measure other clocks against a known interval.
///
/// # Safety
/// Channel 2 and port 0x61 must not be in use by anything else.
pub unsafe fn wait_micros(micros: u64, at_start: impl FnOnce()) {
    let count = (PIT_HZ * micros / 1_000_000).clamp(1, 0xffff) as u16;
    // SAFETY: the caller owns channel 2 and the gate port. The speaker stays off.
    unsafe {
        let gate = inb(GATE_PORT) & !SPEAKER;
        outb(GATE_PORT, gate & !GATE2);
        outb(COMMAND, CHANNEL2_ONESHOT);
        outb(CHANNEL2_DATA, count as u8);
        outb(CHANNEL2_DATA, (count >> 8) as u8);
        outb(GATE_PORT, gate | GATE2);
        at_start();
        while inb(GATE_PORT) & OUT2 == 0 {
            core::hint::spin_loop();
        }
        outb(GATE_PORT, gate & !GATE2);
    }
}

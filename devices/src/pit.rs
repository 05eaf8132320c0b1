//! The 8254 programmable interval timer as a guest sees it (Intel 8254 datasheet 231164,
//! "8254 Programmable Interval Timer", sections "Control Word Format", "Counter Latch
//! Command", "Read-Back Command", "Mode Definitions" and "Operation Common to All Modes"; the
//! ICH/PCH datasheets repeat them under "8254 Timers"), together with the PC's port 0x61
//! (Intel ICH9 datasheet 316972, §13.7.1 "NMI_SC — NMI Status and Control Register", I/O
//! 61h; the same register in every ICH/PCH since), which gates channel 2 and shows its
//! output.
//!
//! What it is for: Linux calibrates the TSC against PIT channel 2 even on a hardware-reduced
//! ACPI machine (arch/x86/kernel/tsc.c): `quick_pit_calibrate` sets GATE2 through port 0x61,
//! programs channel 2 in mode 0 with count 0xffff (`outb(0xb0, 0x43)`, then 0xff, 0xff to
//! 0x42) and reads the counter's MSB (`pit_expect_msb`: LSB then MSB from 0x42) while the
//! count runs down; `pit_calibrate_tsc` (through `pit_hpet_ptimer_calibrate_cpu`) programs
//! channel 2 mode 0 with a 10 ms or 50 ms latch and polls port 0x61 bit 5 (OUT2) until the
//! terminal count raises it.
//!
//! # How a backend drives it
//!
//! The guest's `in`/`out` on ports 0x40-0x43 and 0x61 ([`Pit::claims`]) go to
//! [`Pit::read_port`] / [`Pit::write_port`] with the backend's clock in nanoseconds. The
//! model never reads a clock and never runs between calls: every count is computed from
//! `now_ns` when it is asked for. The counters run at [`PIT_HZ`]; `now_ns` only has to be
//! monotonic and at the same rate as the clock the guest calibrates (its TSC), which is the
//! point of the calibration.
//!
//! # Choices where the datasheets leave room
//!
//! - **Channel 0** counts like the others (its GATE is tied high on a PC) but raises no
//!   interrupt: on a hardware-reduced machine nothing takes IRQ0 (GSI 2 through the MADT's
//!   override). [`Pit::output`] reports any channel's OUT for a backend that wants to wire
//!   IRQ0 later; it would also need a deadline, which this model does not compute.
//!   **Channel 1** (DRAM refresh on a PC, GATE tied high) is a plain counter too.
//! - **Time going backwards**: an earlier `now_ns` than one already seen is taken as the
//!   latest seen, so counters never run backwards.
//! - **Reset state** (undefined in the datasheet; the guest here starts without a BIOS):
//!   every channel has control word lobyte/hibyte, mode 0, binary, and no count written;
//!   its counter holds 0 and OUT is low (mode 0's initial state). GATE2 is low.
//! - **Control word**: the counter stops and holds its value until a count is written (a
//!   real 8254 leaves the counting element to run on undefined); pending latches are
//!   dropped along with the rest of the control logic (datasheet: "all Control Logic is
//!   immediately reset").
//! - **Before the load**: a count is loaded on the first CLK pulse after it is written (or
//!   after the trigger, in modes 1 and 5, or after GATE rises, in modes 2 and 3); until then
//!   the counter reads what it held before.
//! - **Modes 2 and 3**: a new count written while counting is loaded at the next CLK pulse
//!   (the 8254 waits for the end of the current period). In mode 3 the count read back
//!   decrements by two through each half period (odd counts: from N - 1). A count of 1,
//!   illegal in these modes, is counted as 1 (mode 2: OUT stays low; mode 3: OUT stays high).
//! - **BCD**: counts run modulo 10000; a written digit above 9 is taken at its binary
//!   value (e.g. 0x00F0 counts as 150).
//! - **Port 0x61**: bit 0 (GATE2), bit 1 (speaker data enable, no speaker), bits 2-3 (SERR#
//!   and IOCHK# NMI enables: no such NMIs here) read back as written; bit 4 toggles every 18
//!   PIT clocks (15.1 µs, the refresh rate channel 1 is programmed for on a PC); bit 5 is
//!   OUT2; bits 7-6 (NMI sources) read 0. Writes to bits 7-4 are ignored (read-only).
//! - **The control port 0x43** is write-only; it and every port this model does not claim
//!   read 0xff (nothing drives the bus), and writes to ports it does not claim are ignored.

/// The PIT's input clock, Hz (the PC's 14.31818 MHz crystal divided by 12; Linux's
/// `PIT_TICK_RATE`).
pub const PIT_HZ: u64 = 1_193_182;

/// Channel data ports 0x40-0x42 and the mode/command port 0x43 (the 8254's A1:A0).
pub const CHANNEL0: u16 = 0x40;
pub const CHANNEL1: u16 = 0x41;
pub const CHANNEL2: u16 = 0x42;
pub const MODE_COMMAND: u16 = 0x43;
/// NMI Status and Control (ICH9 §13.7.1), the PC/AT's "port B".
pub const PORT_B: u16 = 0x61;

/// Port 0x61 bits (ICH9 §13.7.1).
pub const PORT_B_GATE2: u8 = 1 << 0;
pub const PORT_B_SPEAKER: u8 = 1 << 1;
/// Bits 3:0 are read/write; 7:4 read-only.
const PORT_B_WRITABLE: u8 = 0x0f;
pub const PORT_B_REFRESH_TOGGLE: u8 = 1 << 4;
pub const PORT_B_OUT2: u8 = 1 << 5;
/// PIT clocks per half period of the refresh toggle.
const REFRESH_TOGGLE_TICKS: u64 = 18;

/// Control word fields (datasheet "Control Word Format"): SC1:SC0 in bits 7:6 (11:
/// read-back), RW1:RW0 in 5:4 (00: counter latch), M2:M0 in 3:1, BCD in 0.
const CW_SELECT_SHIFT: u8 = 6;
const CW_READ_BACK: u8 = 0b11;
const CW_ACCESS_SHIFT: u8 = 4;
const CW_ACCESS_LATCH: u8 = 0b00;
const CW_ACCESS_LSB: u8 = 0b01;
const CW_ACCESS_MSB: u8 = 0b10;
const CW_ACCESS_BOTH: u8 = 0b11;
const CW_BCD: u8 = 1 << 0;
/// The control word bits a counter keeps (and the status byte reports, "Status Byte").
const CW_KEPT: u8 = 0x3f;
/// Read-back command ("Read-Back Command"): COUNT# (bit 5) and STATUS# (bit 4) are active low; bits
/// 3:1 select counters 2, 1, 0.
const RB_NO_COUNT: u8 = 1 << 5;
const RB_NO_STATUS: u8 = 1 << 4;
/// Status byte ("Read-Back Command", status byte format): OUTPUT in bit 7, NULL COUNT in
/// bit 6, the control word's bits 5:0.
const STATUS_OUT: u8 = 1 << 7;
const STATUS_NULL_COUNT: u8 = 1 << 6;

/// Reset control word: lobyte/hibyte, mode 0, binary.
const RESET_CONTROL: u8 = CW_ACCESS_BOTH << CW_ACCESS_SHIFT;

/// The counting element of a channel while a count is in it.
#[derive(Clone, Copy, Debug)]
struct Counting {
    /// The count as counted: 1..=modulus (a written 0 is the modulus, datasheet "Counter
    /// Loading").
    count: u32,
    /// The tick at whose CLK pulse the count is loaded (the pulse after the write).
    load_tick: u64,
    /// Decrements made in earlier stretches with counting enabled.
    carried: u64,
    /// While counting is enabled: the tick from which CLK pulses decrement.
    since: Option<u64>,
}

impl Counting {
    fn new(count: u32, written_tick: u64, enabled: bool) -> Self {
        let load_tick = written_tick.saturating_add(1);
        Self {
            count,
            load_tick,
            carried: 0,
            since: enabled.then_some(load_tick),
        }
    }

    /// Decrements since the load at `tick`; `None` before the load.
    fn decrements(&self, tick: u64) -> Option<u64> {
        if tick < self.load_tick {
            return None;
        }
        let running = self.since.map_or(0, |s| tick.saturating_sub(s));
        Some(self.carried.saturating_add(running))
    }

    /// GATE low in modes 0, 2, 3, 4: "disables counting".
    fn suspend(&mut self, tick: u64) {
        if let Some(since) = self.since.take() {
            self.carried = self.carried.saturating_add(tick.saturating_sub(since));
        }
    }

    fn resume(&mut self, tick: u64) {
        if self.since.is_none() {
            self.since = Some(tick.max(self.load_tick));
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Channel {
    /// Bits 5:0 of the last control word: access, mode, BCD.
    control: u8,
    /// The last count written (the count register), raw.
    count_register: u16,
    /// Whether a count was written since the control word.
    count_written: bool,
    /// Modes 1 and 5: a count written and not yet loaded by a trigger.
    awaiting_trigger: bool,
    counting: Option<Counting>,
    /// The value (binary, 0..modulus) the counter shows while nothing is loaded.
    held: u32,
    /// Lobyte/hibyte writes: the low byte, written and waiting for the high one.
    low_byte: Option<u8>,
    /// Lobyte/hibyte reads: the next read returns the high byte.
    read_high_next: bool,
    latched_count: Option<u16>,
    latched_status: Option<u8>,
    gate: bool,
}

impl Channel {
    fn new(gate: bool) -> Self {
        Self {
            control: RESET_CONTROL,
            count_register: 0,
            count_written: false,
            awaiting_trigger: false,
            counting: None,
            held: 0,
            low_byte: None,
            read_high_next: false,
            latched_count: None,
            latched_status: None,
            gate,
        }
    }

    fn access(&self) -> u8 {
        (self.control >> CW_ACCESS_SHIFT) & 0b11
    }

    /// The counter mode 0-5 ("Control Word Format": M2 is a don't-care for modes 2 and 3,
    /// so 110 and 111 are modes 2 and 3).
    fn mode(&self) -> u8 {
        let m = (self.control >> 1) & 0b111;
        if m >= 6 {
            m - 4
        } else {
            m
        }
    }

    fn bcd(&self) -> bool {
        self.control & CW_BCD != 0
    }

    fn modulus(&self) -> u32 {
        if self.bcd() {
            10_000
        } else {
            65_536
        }
    }

    /// A raw count register value as counted: 1..=modulus.
    fn counted(&self, raw: u16) -> u32 {
        let value = if self.bcd() {
            (0..4).fold(0u32, |acc, digit| {
                let nibble = u32::from((raw >> (4 * (3 - digit))) & 0xf);
                acc * 10 + nibble
            }) % 10_000
        } else {
            u32::from(raw)
        };
        if value == 0 {
            self.modulus()
        } else {
            value
        }
    }

    /// A counter value (0..modulus) as the data port shows it.
    fn encode(&self, value: u32) -> u16 {
        if self.bcd() {
            let v = value % 10_000;
            let digits = [v / 1000, (v / 100) % 10, (v / 10) % 10, v % 10];
            digits
                .iter()
                .fold(0u16, |acc, &d| (acc << 4) | (d as u16 & 0xf))
        } else {
            (value % 65_536) as u16
        }
    }

    /// The counter's value (binary, 0..modulus) and OUT at `tick`.
    fn state(&self, tick: u64) -> (u32, bool) {
        let mode = self.mode();
        // OUT after a control word: low in mode 0, high in the others ("Mode Definitions").
        let initial_out = mode != 0;
        let gated_high = matches!(mode, 2 | 3) && !self.gate;
        let Some(counting) = self.counting else {
            return (self.held, initial_out);
        };
        let Some(k) = counting.decrements(tick) else {
            return (self.held, initial_out);
        };
        let n = u64::from(counting.count);
        let m = u64::from(self.modulus());
        let down = |k: u64| (n + m - k % m) % m;
        let (value, out) = match mode {
            // Interrupt on terminal count, hardware one-shot: OUT rises when the count
            // reaches 0 and stays high.
            0 | 1 => (down(k), k >= n),
            // Strobes: OUT low for the one CLK pulse at which the count reaches 0.
            4 | 5 => (down(k), k != n),
            // Rate generator: N, N-1, ..., 1 (OUT low during 1), reload.
            2 => {
                let v = n - k % n;
                (v % m, v != 1)
            }
            // Square wave: high for ceil(N/2) pulses, low for floor(N/2).
            _ => {
                let high = n.div_ceil(2);
                let p = k % n;
                let even = n & !1;
                if p < high {
                    (even.saturating_sub(2 * p) % m, true)
                } else {
                    (even.saturating_sub(2 * (p - high)) % m, false)
                }
            }
        };
        (value as u32, out || gated_high)
    }

    fn null_count(&self, tick: u64) -> bool {
        self.awaiting_trigger || self.counting.is_none_or(|c| c.decrements(tick).is_none())
    }

    fn control_word(&mut self, value: u8, tick: u64) {
        self.held = self.state(tick).0;
        self.control = value & CW_KEPT;
        self.count_written = false;
        self.awaiting_trigger = false;
        self.counting = None;
        self.low_byte = None;
        self.read_high_next = false;
        self.latched_count = None;
        self.latched_status = None;
    }

    fn latch_count(&mut self, tick: u64) {
        // A second latch before the first is read is ignored (datasheet "Counter Latch
        // Command").
        if self.latched_count.is_none() {
            self.latched_count = Some(self.encode(self.state(tick).0));
        }
    }

    fn latch_status(&mut self, tick: u64) {
        if self.latched_status.is_none() {
            let (_, out) = self.state(tick);
            let mut status = self.control & CW_KEPT;
            if out {
                status |= STATUS_OUT;
            }
            if self.null_count(tick) {
                status |= STATUS_NULL_COUNT;
            }
            self.latched_status = Some(status);
        }
    }

    fn read(&mut self, tick: u64) -> u8 {
        // A latched status is read first, then a latched count ("Read-Back Command").
        if let Some(status) = self.latched_status.take() {
            return status;
        }
        let value = self
            .latched_count
            .unwrap_or_else(|| self.encode(self.state(tick).0));
        let [low, high] = value.to_le_bytes();
        match self.access() {
            CW_ACCESS_LSB => {
                self.latched_count = None;
                low
            }
            CW_ACCESS_MSB => {
                self.latched_count = None;
                high
            }
            _ if !self.read_high_next => {
                self.read_high_next = true;
                low
            }
            _ => {
                self.read_high_next = false;
                self.latched_count = None;
                high
            }
        }
    }

    fn write(&mut self, value: u8, tick: u64) {
        let raw = match self.access() {
            CW_ACCESS_LSB => u16::from(value),
            CW_ACCESS_MSB => u16::from(value) << 8,
            _ => match self.low_byte.take() {
                Some(low) => u16::from_le_bytes([low, value]),
                None => {
                    self.low_byte = Some(value);
                    if self.mode() == 0 {
                        // Mode 0: "writing the first byte disables counting", OUT low at once.
                        self.held = self.state(tick).0;
                        self.counting = None;
                    }
                    return;
                }
            },
        };
        self.count_register = raw;
        self.count_written = true;
        match self.mode() {
            1 | 5 => self.awaiting_trigger = true,
            _ => {
                self.held = self.state(tick).0;
                let enabled = self.gate;
                self.counting = Some(Counting::new(self.counted(raw), tick, enabled));
            }
        }
    }

    fn set_gate(&mut self, gate: bool, tick: u64) {
        if gate == self.gate {
            return;
        }
        let before = self.state(tick).0;
        self.gate = gate;
        match (self.mode(), gate) {
            (0 | 4, true) => {
                if let Some(c) = self.counting.as_mut() {
                    c.resume(tick);
                }
            }
            (0 | 2 | 3 | 4, false) => {
                if let Some(c) = self.counting.as_mut() {
                    c.suspend(tick);
                }
            }
            // Modes 2 and 3: a rising GATE reloads the count on the next CLK pulse.
            (2 | 3, true) => {
                if let Some(c) = self.counting {
                    self.held = before;
                    self.counting = Some(Counting::new(c.count, tick, true));
                }
            }
            // Modes 1 and 5: a rising GATE is the trigger; GATE's level does not matter.
            (_, true) => {
                if self.count_written {
                    self.held = before;
                    self.awaiting_trigger = false;
                    let count = self.counted(self.count_register);
                    self.counting = Some(Counting::new(count, tick, true));
                }
            }
            (_, false) => {}
        }
    }
}

#[derive(Debug)]
pub struct Pit {
    channels: [Channel; 3],
    /// Port 0x61 bits 3:0 as written.
    port_b: u8,
    /// The latest `now_ns` seen.
    last_ns: u64,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    pub fn new() -> Self {
        Self {
            // GATE0 and GATE1 are tied high on a PC; GATE2 is port 0x61 bit 0, low at reset.
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            port_b: 0,
            last_ns: 0,
        }
    }

    /// Whether `port` is one of this model's: 0x40-0x43 and 0x61.
    pub fn claims(port: u16) -> bool {
        matches!(port, CHANNEL0..=MODE_COMMAND | PORT_B)
    }

    /// PIT clock ticks at `now_ns` (or at the latest time seen, if that is later).
    fn tick(&mut self, now_ns: u64) -> u64 {
        self.last_ns = self.last_ns.max(now_ns);
        let ticks = u128::from(self.last_ns) * u128::from(PIT_HZ) / 1_000_000_000;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// A guest `in` of one byte from `port` at `now_ns`.
    pub fn read_port(&mut self, port: u16, now_ns: u64) -> u8 {
        let tick = self.tick(now_ns);
        match port {
            CHANNEL0..=CHANNEL2 => self.channels[usize::from(port - CHANNEL0)].read(tick),
            PORT_B => {
                let mut value = self.port_b & PORT_B_WRITABLE;
                if (tick / REFRESH_TOGGLE_TICKS) % 2 == 1 {
                    value |= PORT_B_REFRESH_TOGGLE;
                }
                if self.channels[2].state(tick).1 {
                    value |= PORT_B_OUT2;
                }
                value
            }
            _ => 0xff,
        }
    }

    /// A guest `out` of one byte to `port` at `now_ns`.
    pub fn write_port(&mut self, port: u16, value: u8, now_ns: u64) {
        let tick = self.tick(now_ns);
        match port {
            CHANNEL0..=CHANNEL2 => self.channels[usize::from(port - CHANNEL0)].write(value, tick),
            MODE_COMMAND => self.command(value, tick),
            PORT_B => {
                self.port_b = value & PORT_B_WRITABLE;
                self.channels[2].set_gate(value & PORT_B_GATE2 != 0, tick);
            }
            _ => {}
        }
    }

    fn command(&mut self, value: u8, tick: u64) {
        let select = value >> CW_SELECT_SHIFT;
        if select == CW_READ_BACK {
            for (n, channel) in self.channels.iter_mut().enumerate() {
                if value & (2 << n) == 0 {
                    continue;
                }
                if value & RB_NO_COUNT == 0 {
                    channel.latch_count(tick);
                }
                if value & RB_NO_STATUS == 0 {
                    channel.latch_status(tick);
                }
            }
            return;
        }
        let channel = &mut self.channels[usize::from(select)];
        if (value >> CW_ACCESS_SHIFT) & 0b11 == CW_ACCESS_LATCH {
            channel.latch_count(tick);
        } else {
            channel.control_word(value, tick);
        }
    }

    /// Channel `channel`'s OUT at `now_ns` (`None` for a channel beyond 2). Channel 2's is
    /// also port 0x61 bit 5; channel 0's would be IRQ0, which this model does not raise.
    pub fn output(&mut self, channel: usize, now_ns: u64) -> Option<bool> {
        let tick = self.tick(now_ns);
        self.channels.get(channel).map(|c| c.state(tick).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;

    /// PIT clock ticks at `ns`, computed independently of the model.
    fn ticks(ns: u64) -> u64 {
        (u128::from(ns) * 1_193_182 / 1_000_000_000) as u64
    }

    /// The first nanosecond at which `t` ticks have passed.
    fn ns_at_tick(t: u64) -> u64 {
        (u128::from(t) * 1_000_000_000).div_ceil(1_193_182) as u64
    }

    fn read16(pit: &mut Pit, port: u16, now: u64) -> u16 {
        let lo = pit.read_port(port, now);
        let hi = pit.read_port(port, now);
        u16::from_le_bytes([lo, hi])
    }

    fn out2(pit: &mut Pit, now: u64) -> bool {
        pit.read_port(PORT_B, now) & PORT_B_OUT2 != 0
    }

    /// `outb((inb(0x61) & ~0x02) | 0x01, 0x61)`: gate high, speaker off.
    fn gate2_on(pit: &mut Pit, now: u64) {
        let v = pit.read_port(PORT_B, now);
        pit.write_port(PORT_B, (v & !PORT_B_SPEAKER) | PORT_B_GATE2, now);
    }

    /// Channel 2, mode 0, binary, lobyte/hibyte, count `count`, written at `now`.
    fn program_mode0(pit: &mut Pit, count: u16, now: u64) {
        pit.write_port(MODE_COMMAND, 0xb0, now);
        let [lo, hi] = count.to_le_bytes();
        pit.write_port(CHANNEL2, lo, now);
        pit.write_port(CHANNEL2, hi, now);
    }

    /// `quick_pit_calibrate`: gate, mode 0 with 0xffff, one throw-away 16-bit read, then the
    /// MSB read (after the LSB) over and over while it steps down from 0xff. Each read here
    /// takes 1.3 µs, about what an exit costs under TCG.
    #[test]
    fn quick_pit_calibrate_sequence() {
        let mut pit = Pit::new();
        let t0 = 3 * MS + 123;
        gate2_on(&mut pit, t0);
        program_mode0(&mut pit, 0xffff, t0);
        let mut now = t0 + 1_300;
        let _ = read16(&mut pit, CHANNEL2, now); // pit_verify_msb(0): a delay
        let mut msb_first_seen = [None::<u64>; 256];
        let mut last = u16::MAX;
        while now < t0 + 60 * MS {
            now += 1_300;
            let lsb = pit.read_port(CHANNEL2, now);
            let msb = pit.read_port(CHANNEL2, now);
            let value = u16::from_le_bytes([lsb, msb]);
            // The count is loaded at the first tick after the write and decrements each
            // tick from then on, wrapping past 0.
            let k = ticks(now) - ticks(t0) - 1;
            assert_eq!(
                u64::from(value),
                (0xffff + 0x10000 - k) % 0x10000,
                "at {now}"
            );
            assert_eq!(out2(&mut pit, now), k >= 0xffff, "OUT2 at {now}");
            if k < 0xffff {
                assert!(
                    value <= last,
                    "the count only goes down before terminal count"
                );
                last = value;
                msb_first_seen[usize::from(msb)].get_or_insert(now);
            }
        }
        // Every MSB from 0xff to 0x00 was seen, each about 256 ticks (214.6 µs) after the
        // one before, which is what pit_expect_msb relies on (0xff was first seen a read
        // after the load, so its step is left out).
        assert!(msb_first_seen[0xff].is_some());
        for msb in (0..0xfeusize).rev() {
            let (a, b) = (
                msb_first_seen[msb + 1].unwrap(),
                msb_first_seen[msb].unwrap(),
            );
            let step = b - a;
            assert!(
                (214_000..=216_000).contains(&step),
                "MSB {msb:#x} after {step} ns"
            );
        }
    }

    /// OUT2 rises exactly N + 1 clock pulses after the count is written: 0xffff + 1 ticks,
    /// 54.925 ms.
    #[test]
    fn out2_rises_at_terminal_count_on_time() {
        let mut pit = Pit::new();
        gate2_on(&mut pit, 0);
        program_mode0(&mut pit, 0xffff, 0);
        let rise = ns_at_tick(0x10000);
        assert_eq!(rise, 54_925_402);
        assert!(!out2(&mut pit, rise - 1));
        assert!(out2(&mut pit, rise));
        assert_eq!(read16(&mut pit, CHANNEL2, rise), 0, "terminal count");
        // OUT stays high while the counter wraps and runs on.
        let later = rise + 100 * MS;
        assert!(out2(&mut pit, later));
        assert_ne!(read16(&mut pit, CHANNEL2, later), 0);
    }

    /// `pit_calibrate_tsc(CAL_LATCH, CAL_MS, CAL_PIT_LOOPS)`: 10 ms latch (1193182 / 100),
    /// poll port 0x61 for OUT2; it must take more than 1000 polls and end after 10 ms.
    #[test]
    fn pit_calibrate_tsc_sequence() {
        let mut pit = Pit::new();
        let t0 = 77 * US;
        gate2_on(&mut pit, t0);
        let latch = (PIT_HZ / 100) as u16;
        assert_eq!(latch, 11_931);
        program_mode0(&mut pit, latch, t0);
        let mut now = t0;
        let mut polls = 0u32;
        while pit.read_port(PORT_B, now) & PORT_B_OUT2 == 0 {
            now += US;
            polls += 1;
            assert!(polls < 1_000_000, "OUT2 never rose");
        }
        assert!(polls >= 1_000);
        let elapsed = now - t0;
        // 11932 ticks = 10.0001 ms, within a poll and a tick.
        assert!(
            (10_000 * US..=10_003 * US).contains(&elapsed),
            "{elapsed} ns"
        );
    }

    #[test]
    fn gate_low_holds_mode_0_and_a_count_written_then_is_still_loaded() {
        let mut pit = Pit::new();
        program_mode0(&mut pit, 1000, 0);
        let t = 5 * MS;
        assert_eq!(read16(&mut pit, CHANNEL2, t), 1000, "loaded, not counting");
        assert!(!out2(&mut pit, t));
        gate2_on(&mut pit, t);
        let t2 = t + 500 * US;
        let expected = 1000 - (ticks(t2) - ticks(t)) as u16;
        assert_eq!(read16(&mut pit, CHANNEL2, t2), expected);
        // Gate off: held; gate on again: counting resumes from there.
        pit.write_port(PORT_B, 0, t2);
        assert_eq!(read16(&mut pit, CHANNEL2, t2 + 3 * MS), expected);
        assert!(!out2(&mut pit, t2 + 3 * MS));
        pit.write_port(PORT_B, PORT_B_GATE2, t2 + 3 * MS);
        let t3 = t2 + 3 * MS + 100 * US;
        let resumed = expected - (ticks(t3) - ticks(t2 + 3 * MS)) as u16;
        assert_eq!(read16(&mut pit, CHANNEL2, t3), resumed);
    }

    #[test]
    fn latch_command_freezes_the_value_until_both_bytes_are_read() {
        let mut pit = Pit::new();
        gate2_on(&mut pit, 0);
        program_mode0(&mut pit, 0x8000, 0);
        let t1 = 2 * MS;
        let at_t1 = read16(&mut pit, CHANNEL2, t1);
        pit.write_port(MODE_COMMAND, 0x80, t1); // channel 2, counter latch
        pit.write_port(MODE_COMMAND, 0x80, t1 + MS); // ignored: already latched
        assert_eq!(pit.read_port(CHANNEL2, t1 + 5 * MS), at_t1.to_le_bytes()[0]);
        assert_eq!(pit.read_port(CHANNEL2, t1 + 9 * MS), at_t1.to_le_bytes()[1]);
        // Released: the next reads are live.
        let t2 = t1 + 10 * MS;
        let live = read16(&mut pit, CHANNEL2, t2);
        assert_eq!(u64::from(live), 0x8000 - (ticks(t2) - 1));
        // The latch does not disturb the count itself.
        assert!(live < at_t1);
    }

    #[test]
    fn access_modes_sequence_bytes() {
        let mut pit = Pit::new();
        gate2_on(&mut pit, 0);
        // LSB only: the MSB is 0; reads return the LSB every time.
        pit.write_port(MODE_COMMAND, 0x90, 0);
        pit.write_port(CHANNEL2, 0x34, 0);
        assert_eq!(
            pit.read_port(CHANNEL2, 0),
            0,
            "not yet loaded: the old value"
        );
        let t = ns_at_tick(1);
        assert_eq!(pit.read_port(CHANNEL2, t), 0x34);
        assert_eq!(pit.read_port(CHANNEL2, t), 0x34);
        // MSB only: the LSB is 0; reads return the MSB.
        pit.write_port(MODE_COMMAND, 0xa0, t);
        pit.write_port(CHANNEL2, 0x12, t);
        let t = ns_at_tick(ticks(t) + 1);
        assert_eq!(pit.read_port(CHANNEL2, t), 0x12);
        let t = ns_at_tick(ticks(t) + 1);
        assert_eq!(pit.read_port(CHANNEL2, t), 0x11, "0x1200 - 1");
        // Both: low then high, alternating, for writes and reads.
        pit.write_port(MODE_COMMAND, 0xb0, t);
        pit.write_port(CHANNEL2, 0x78, t);
        pit.write_port(CHANNEL2, 0x56, t);
        let t = ns_at_tick(ticks(t) + 1);
        assert_eq!(pit.read_port(CHANNEL2, t), 0x78);
        assert_eq!(pit.read_port(CHANNEL2, t), 0x56);
        assert_eq!(pit.read_port(CHANNEL2, t), 0x78);
        // A control word resets the read flip-flop mid-pair.
        pit.write_port(MODE_COMMAND, 0xb0, t);
        assert_eq!(pit.read_port(CHANNEL2, t), 0x78, "low byte again");
    }

    #[test]
    fn mode_0_first_byte_stops_counting_and_drops_out() {
        let mut pit = Pit::new();
        gate2_on(&mut pit, 0);
        program_mode0(&mut pit, 100, 0);
        let t = ns_at_tick(200);
        assert!(out2(&mut pit, t));
        pit.write_port(CHANNEL2, 0x50, t);
        assert!(!out2(&mut pit, t), "OUT low at once");
        let held = read16(&mut pit, CHANNEL2, t);
        assert_eq!(read16(&mut pit, CHANNEL2, t + MS), held, "not counting");
        pit.write_port(CHANNEL2, 0x00, t + MS);
        let t2 = ns_at_tick(ticks(t + MS) + 1);
        assert_eq!(read16(&mut pit, CHANNEL2, t2), 0x50);
    }

    #[test]
    fn time_going_backwards_stands_still() {
        let mut pit = Pit::new();
        gate2_on(&mut pit, 10 * MS);
        program_mode0(&mut pit, 0xffff, 10 * MS);
        let at_20 = read16(&mut pit, CHANNEL2, 20 * MS);
        assert_eq!(read16(&mut pit, CHANNEL2, 15 * MS), at_20);
        assert_eq!(read16(&mut pit, CHANNEL2, 0), at_20);
        // A write in the past is taken at the latest time.
        program_mode0(&mut pit, 0x1000, 0);
        let t = ns_at_tick(ticks(20 * MS) + 1);
        assert_eq!(read16(&mut pit, CHANNEL2, t), 0x1000);
        assert!(!out2(&mut pit, 12 * MS));
        // The end of time: no overflow, and nothing after it.
        let at_end = read16(&mut pit, CHANNEL2, u64::MAX);
        assert_eq!(read16(&mut pit, CHANNEL2, 1), at_end);
    }

    #[test]
    fn mode_2_rate_generator_pulses_low_for_one_clock() {
        let mut pit = Pit::new();
        gate2_on(&mut pit, 0);
        pit.write_port(MODE_COMMAND, 0xb4, 0); // channel 2, both, mode 2
        assert!(out2(&mut pit, 0), "OUT high after the control word");
        pit.write_port(CHANNEL2, 10, 0);
        pit.write_port(CHANNEL2, 0, 0);
        // Loaded at tick 1 with 10; 1 is reached at tick 10; reloaded at tick 11.
        let lows: Vec<u64> = (0..40)
            .filter(|&t| !out2(&mut pit, ns_at_tick(t)))
            .collect();
        assert_eq!(lows, [10, 20, 30]);
        assert_eq!(
            read16(&mut pit, CHANNEL2, ns_at_tick(41)),
            10,
            "reloaded at tick 41"
        );
        assert_eq!(read16(&mut pit, CHANNEL2, ns_at_tick(42)), 9);
        // GATE low forces OUT high and stops; GATE high reloads on the next clock.
        pit.write_port(PORT_B, 0, ns_at_tick(45));
        assert!(out2(&mut pit, ns_at_tick(50)));
        pit.write_port(PORT_B, PORT_B_GATE2, ns_at_tick(60));
        assert_eq!(read16(&mut pit, CHANNEL2, ns_at_tick(61)), 10);
        assert!(!out2(&mut pit, ns_at_tick(70)));
    }

    #[test]
    fn mode_3_square_wave_halves() {
        let mut pit = Pit::new();
        // Channel 0 (GATE tied high), mode 3, count 4: high 2 clocks, low 2.
        pit.write_port(MODE_COMMAND, 0x36, 0);
        pit.write_port(CHANNEL0, 4, 0);
        pit.write_port(CHANNEL0, 0, 0);
        let wave: Vec<bool> = (1..9)
            .map(|t| pit.output(0, ns_at_tick(t)).unwrap())
            .collect();
        assert_eq!(wave, [true, true, false, false, true, true, false, false]);
        // Odd count 5: high 3, low 2.
        pit.write_port(MODE_COMMAND, 0x36, ns_at_tick(100));
        pit.write_port(CHANNEL0, 5, ns_at_tick(100));
        pit.write_port(CHANNEL0, 0, ns_at_tick(100));
        let wave: Vec<bool> = (101..106)
            .map(|t| pit.output(0, ns_at_tick(t)).unwrap())
            .collect();
        assert_eq!(wave, [true, true, true, false, false]);
        assert_eq!(pit.output(3, 0), None);
    }

    #[test]
    fn modes_1_and_5_wait_for_the_gate_trigger() {
        let mut pit = Pit::new();
        pit.write_port(MODE_COMMAND, 0xb2, 0); // channel 2, mode 1
        pit.write_port(CHANNEL2, 5, 0);
        pit.write_port(CHANNEL2, 0, 0);
        assert!(out2(&mut pit, ns_at_tick(50)), "no trigger yet: OUT high");
        pit.write_port(PORT_B, PORT_B_GATE2, ns_at_tick(50));
        assert!(!out2(&mut pit, ns_at_tick(51)), "low from the load");
        assert!(!out2(&mut pit, ns_at_tick(55)));
        assert!(out2(&mut pit, ns_at_tick(56)));
        // Mode 5: one clock low at terminal count after the trigger.
        pit.write_port(PORT_B, 0, ns_at_tick(60));
        pit.write_port(MODE_COMMAND, 0xba, ns_at_tick(60));
        pit.write_port(CHANNEL2, 3, ns_at_tick(60));
        pit.write_port(CHANNEL2, 0, ns_at_tick(60));
        pit.write_port(PORT_B, PORT_B_GATE2, ns_at_tick(70));
        let lows: Vec<u64> = (70..90)
            .filter(|&t| !out2(&mut pit, ns_at_tick(t)))
            .collect();
        assert_eq!(lows, [74]);
    }

    #[test]
    fn mode_4_strobes_once() {
        let mut pit = Pit::new();
        pit.write_port(MODE_COMMAND, 0x38, 0); // channel 0, both, mode 4
        pit.write_port(CHANNEL0, 3, 0);
        pit.write_port(CHANNEL0, 0, 0);
        let lows: Vec<u64> = (0..20)
            .filter(|&t| !pit.output(0, ns_at_tick(t)).unwrap())
            .collect();
        assert_eq!(lows, [4]);
    }

    #[test]
    fn read_back_latches_status_then_count() {
        let mut pit = Pit::new();
        gate2_on(&mut pit, 0);
        program_mode0(&mut pit, 0x0100, 0);
        // Before the load: NULL COUNT set, OUT low; control bits 0x30 (both, mode 0).
        pit.write_port(MODE_COMMAND, 0xc0 | RB_NO_COUNT | 0b1000, 0);
        assert_eq!(pit.read_port(CHANNEL2, 0), STATUS_NULL_COUNT | 0x30);
        // After terminal count: OUT set, NULL COUNT clear; then the count, latched.
        let t = ns_at_tick(0x101);
        pit.write_port(MODE_COMMAND, 0xc0 | 0b1000, t);
        assert_eq!(pit.read_port(CHANNEL2, t + MS), STATUS_OUT | 0x30);
        assert_eq!(read16(&mut pit, CHANNEL2, t + MS), 0);
        // Channels not selected are untouched; a second status latch waits for the first.
        pit.write_port(MODE_COMMAND, 0xc0 | RB_NO_COUNT | 0b1110, t);
        pit.write_port(MODE_COMMAND, 0x36, t); // channel 0 control word drops its latch
        assert_eq!(
            pit.read_port(CHANNEL0, t),
            0,
            "channel 0: held count, not status"
        );
        assert_eq!(
            pit.read_port(CHANNEL1, t),
            STATUS_NULL_COUNT | 0x30,
            "channel 1: status, mode 0 at reset, no count"
        );
    }

    #[test]
    fn bcd_counts_in_decimal() {
        let mut pit = Pit::new();
        gate2_on(&mut pit, 0);
        pit.write_port(MODE_COMMAND, 0xb1, 0); // channel 2, both, mode 0, BCD
        pit.write_port(CHANNEL2, 0x00, 0);
        pit.write_port(CHANNEL2, 0x10, 0); // 1000 decimal
        assert_eq!(read16(&mut pit, CHANNEL2, ns_at_tick(1)), 0x1000);
        assert_eq!(read16(&mut pit, CHANNEL2, ns_at_tick(2)), 0x0999);
        assert_eq!(read16(&mut pit, CHANNEL2, ns_at_tick(1001)), 0x0000);
        assert!(out2(&mut pit, ns_at_tick(1001)));
        assert_eq!(
            read16(&mut pit, CHANNEL2, ns_at_tick(1002)),
            0x9999,
            "wraps at 10000"
        );
        // Count 0 is 10000; junk digits are taken at face value.
        pit.write_port(MODE_COMMAND, 0xb1, ns_at_tick(2000));
        pit.write_port(CHANNEL2, 0xf0, ns_at_tick(2000));
        pit.write_port(CHANNEL2, 0x00, ns_at_tick(2000));
        assert_eq!(read16(&mut pit, CHANNEL2, ns_at_tick(2001)), 0x0150);
    }

    #[test]
    fn port_b_bits() {
        let mut pit = Pit::new();
        pit.write_port(PORT_B, 0xff, 0);
        let v = pit.read_port(PORT_B, 0);
        assert_eq!(v & 0x0f, 0x0f, "bits 3:0 read back");
        assert_eq!(v & 0xc0, 0, "no NMI sources");
        assert_eq!(v & PORT_B_OUT2, 0, "channel 2 in mode 0, no count: OUT low");
        // Refresh toggle: flips every 18 ticks.
        let a = pit.read_port(PORT_B, ns_at_tick(18)) & PORT_B_REFRESH_TOGGLE;
        let b = pit.read_port(PORT_B, ns_at_tick(36)) & PORT_B_REFRESH_TOGGLE;
        let c = pit.read_port(PORT_B, ns_at_tick(54)) & PORT_B_REFRESH_TOGGLE;
        assert_ne!(a, b);
        assert_eq!(a, c);
        pit.write_port(PORT_B, 0xf0, ns_at_tick(54));
        assert_eq!(pit.read_port(PORT_B, ns_at_tick(54)) & 0x0f, 0);
    }

    #[test]
    fn junk_sweep_never_panics_and_unclaimed_ports_float() {
        let mut pit = Pit::new();
        for port in 0..=u16::MAX {
            if Pit::claims(port) {
                continue;
            }
            assert_eq!(pit.read_port(port, 0), 0xff, "port {port:#x}");
            pit.write_port(port, 0xa5, 0);
        }
        assert_eq!(pit.read_port(MODE_COMMAND, 0), 0xff, "write-only");
        let times = [0, 1, 999, MS, 54 * MS, u64::MAX / 2, u64::MAX - 1, u64::MAX];
        let ports = [0x40, 0x41, 0x42, 0x43, 0x61];
        let mut seed = 0x1234_5678_9abc_def0u64;
        for step in 0..20_000usize {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let port = ports[(seed % 5) as usize];
            let value = (seed >> 8) as u8;
            let now = if step % 7 == 0 {
                times[(seed >> 20) as usize % times.len()]
            } else {
                (seed >> 24) % (100 * MS)
            };
            if seed & (1 << 40) != 0 {
                pit.write_port(port, value, now);
            } else {
                let _ = pit.read_port(port, now);
            }
            let _ = pit.output((seed >> 50) as usize % 4, now);
        }
        // Every control word on every channel, then every count byte, at the end of time.
        for cw in 0..=u8::MAX {
            pit.write_port(MODE_COMMAND, cw, u64::MAX);
            for b in [0u8, 1, 2, 0xff] {
                pit.write_port(CHANNEL0 + u16::from(cw >> 6).min(2), b, u64::MAX);
                let _ = pit.read_port(CHANNEL0 + u16::from(cw >> 6).min(2), u64::MAX);
            }
        }
    }
}

//! The local APIC timer's counter (§11.5.4): a 32-bit count that runs down at the timer clock
//! divided by the divide configuration, reloading from the initial count in periodic mode; and
//! the IA32_TSC_DEADLINE comparator of TSC-deadline mode (§11.5.4.1).
//!
//! Nothing here counts: the count is a function of the time the backend passes in, so a timer
//! costs nothing while no one looks, and catching up after any gap is O(1). All arithmetic is
//! in u128 and saturating or checked: every input (time, counts, the divide register, the TSC
//! deadline) may be hostile, and time may go backwards (it then reads as no time passing).

use super::registers::DIVIDE_MASK;

const NS_PER_SECOND: u128 = 1_000_000_000;

/// How the guest's TSC relates to the backend's clock: at `now_ns` the guest reads
/// `at_zero + now_ns * hz / 1e9` from its TSC. Offering TSC-deadline mode needs this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestTsc {
    /// The guest's TSC frequency; 0 is taken as 1.
    pub hz: u64,
    /// The guest's TSC at `now_ns == 0`.
    pub at_zero: u64,
}

impl GuestTsc {
    /// The first time at which the guest's TSC reads at least `tsc`, or `None` if the clock
    /// never gets there (beyond `u64::MAX` ns).
    fn time_of(&self, tsc: u64) -> Option<u64> {
        let Some(cycles) = tsc.checked_sub(self.at_zero) else {
            return Some(0); // already behind the clock's origin
        };
        let hz = u128::from(self.hz.max(1));
        let ns = (u128::from(cycles) * NS_PER_SECOND).div_ceil(hz);
        u64::try_from(ns).ok()
    }
}

/// The counter of one-shot and periodic modes, and the deadline of TSC-deadline mode.
#[derive(Clone, Debug)]
pub(super) struct Timer {
    /// The timer clock before the divider; at least 1.
    hz: u64,
    /// The divide configuration register, bits 3, 1 and 0.
    divide: u32,
    initial: u32,
    /// While counting: the count was last (re)started or re-based at `anchor_ns`, and reaches
    /// zero `zero_at` timer ticks after it. In periodic mode the count reloads from `initial`
    /// at that instant, so the next zero is `initial` ticks later.
    counting: bool,
    anchor_ns: u64,
    zero_at: u128,
    /// IA32_TSC_DEADLINE: 0 is disarmed.
    tsc_deadline: u64,
}

impl Timer {
    pub(super) fn new(hz: u64) -> Self {
        Self {
            hz: hz.max(1),
            divide: 0,
            initial: 0,
            counting: false,
            anchor_ns: 0,
            zero_at: 0,
            tsc_deadline: 0,
        }
    }

    /// The divisor the divide configuration selects (Figure 11-10): 0b0000 divides by 2,
    /// 0b0001 by 4, ... 0b1010 by 128, and 0b1011 by 1. The 3-bit value is bits 3, 1, 0.
    pub(super) fn divisor(&self) -> u32 {
        let value = ((self.divide >> 1) & 0b100) | (self.divide & 0b11);
        1 << ((value + 1) & 7)
    }

    pub(super) fn hz(&self) -> u64 {
        self.hz
    }

    pub(super) fn divide_register(&self) -> u32 {
        self.divide
    }

    pub(super) fn initial_count(&self) -> u32 {
        self.initial
    }

    pub(super) fn tsc_deadline(&self) -> u64 {
        self.tsc_deadline
    }

    /// Timer ticks (after the divider) from the anchor to `now_ns`.
    fn ticks_at(&self, now_ns: u64) -> u128 {
        let elapsed = u128::from(now_ns.saturating_sub(self.anchor_ns));
        // < 2^64 * 2^64: no overflow.
        elapsed * u128::from(self.hz) / (u128::from(self.divisor()) * NS_PER_SECOND)
    }

    /// The first time at which `ticks` ticks have passed since the anchor; `None` beyond the
    /// clock's range.
    fn time_of_tick(&self, ticks: u128) -> Option<u64> {
        let scaled = ticks
            .checked_mul(u128::from(self.divisor()))?
            .checked_mul(NS_PER_SECOND)?;
        let ns = u64::try_from(scaled.div_ceil(u128::from(self.hz))).ok()?;
        self.anchor_ns.checked_add(ns)
    }

    /// A write of the initial count: (re)starts counting down from it at `now_ns`; 0 stops.
    pub(super) fn start(&mut self, initial: u32, now_ns: u64) {
        self.initial = initial;
        self.counting = initial != 0;
        self.anchor_ns = now_ns;
        self.zero_at = u128::from(initial);
    }

    /// Stops counting and disarms the deadline (a change into or out of TSC-deadline mode,
    /// §11.5.4.1); the initial count reads 0 afterwards, as KVM does.
    pub(super) fn disarm(&mut self) {
        self.initial = 0;
        self.counting = false;
        self.tsc_deadline = 0;
    }

    /// The current count at `now_ns` (Figure 11-11). In periodic mode it never reads 0: the
    /// count reloads at the instant it would.
    pub(super) fn current_count(&self, now_ns: u64, periodic: bool) -> u32 {
        if !self.counting {
            return 0;
        }
        let ticks = self.ticks_at(now_ns);
        let remaining = if ticks < self.zero_at {
            self.zero_at - ticks
        } else if periodic && self.initial != 0 {
            let initial = u128::from(self.initial);
            initial - (ticks - self.zero_at) % initial
        } else {
            0
        };
        u32::try_from(remaining).unwrap_or(u32::MAX)
    }

    /// A write of the divide configuration (`value` already checked for reserved bits). A
    /// running count carries on from where it is at the new rate.
    pub(super) fn set_divide(&mut self, value: u32, now_ns: u64, periodic: bool) {
        if self.counting {
            let remaining = self.current_count(now_ns, periodic);
            self.anchor_ns = now_ns;
            self.zero_at = u128::from(remaining);
            self.counting = remaining != 0;
        }
        self.divide = value & DIVIDE_MASK;
    }

    /// Whether the count reached zero by `now_ns` since the last poll; several periods missed
    /// count as one (the IRR holds one interrupt per vector). Re-arms a periodic count with
    /// its next zero after `now_ns`, in O(1).
    pub(super) fn poll_count(&mut self, now_ns: u64, periodic: bool) -> bool {
        if !self.counting {
            return false;
        }
        let ticks = self.ticks_at(now_ns);
        if ticks < self.zero_at {
            return false;
        }
        if periodic && self.initial != 0 {
            let initial = u128::from(self.initial);
            let periods = (ticks - self.zero_at) / initial + 1;
            // zero_at <= ticks + initial < 2^128: ticks is at most 2^128 / 1e9.
            self.zero_at = self.zero_at.saturating_add(periods.saturating_mul(initial));
        } else {
            self.counting = false;
        }
        true
    }

    /// When the count next reaches zero, if it is counting and that is within the clock's
    /// range.
    pub(super) fn count_deadline(&self) -> Option<u64> {
        if !self.counting {
            return None;
        }
        self.time_of_tick(self.zero_at)
    }

    /// A write of IA32_TSC_DEADLINE in TSC-deadline mode: arms at `tsc`, or disarms with 0.
    pub(super) fn set_tsc_deadline(&mut self, tsc: u64) {
        self.tsc_deadline = tsc;
    }

    /// Whether the armed deadline passed by `now_ns`; it then disarms (§11.5.4.1).
    pub(super) fn poll_tsc_deadline(&mut self, tsc: &GuestTsc, now_ns: u64) -> bool {
        match self.tsc_deadline_time(tsc) {
            Some(at) if now_ns >= at => {
                self.tsc_deadline = 0;
                true
            }
            _ => false,
        }
    }

    /// When the armed deadline passes, if it is armed and that is within the clock's range.
    pub(super) fn tsc_deadline_time(&self, tsc: &GuestTsc) -> Option<u64> {
        if self.tsc_deadline == 0 {
            return None;
        }
        tsc.time_of(self.tsc_deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divide_configurations_select_the_sdm_divisors() {
        let mut t = Timer::new(1);
        let expected = [
            (0b0000, 2),
            (0b0001, 4),
            (0b0010, 8),
            (0b0011, 16),
            (0b1000, 32),
            (0b1001, 64),
            (0b1010, 128),
            (0b1011, 1),
        ];
        for (value, divisor) in expected {
            t.set_divide(value, 0, false);
            assert_eq!(t.divisor(), divisor, "divide value {value:#06b}");
        }
    }

    #[test]
    fn one_shot_counts_down_to_zero_and_stays() {
        let mut t = Timer::new(1_000_000_000); // 1 GHz: divide by 2 gives 2 ns a tick
        t.start(100, 1_000);
        assert_eq!(t.current_count(1_000, false), 100);
        assert_eq!(t.current_count(1_001, false), 100, "half a tick");
        assert_eq!(t.current_count(1_002, false), 99);
        assert_eq!(t.count_deadline(), Some(1_200));
        assert!(!t.poll_count(1_199, false));
        assert_eq!(t.current_count(1_199, false), 1);
        assert!(t.poll_count(1_200, false));
        assert_eq!(t.current_count(1_200, false), 0);
        assert!(!t.poll_count(5_000, false), "fires once");
        assert_eq!(t.count_deadline(), None);
        assert_eq!(t.initial_count(), 100, "the initial count keeps its value");
    }

    #[test]
    fn periodic_reloads_and_catches_up_in_one_step() {
        let mut t = Timer::new(1_000_000_000);
        t.set_divide(0b1011, 0, true); // divide by 1: 1 ns a tick
        t.start(10, 0);
        assert_eq!(t.current_count(9, true), 1);
        assert_eq!(t.current_count(10, true), 10, "reloaded at zero");
        assert_eq!(t.current_count(13, true), 7);
        assert!(t.poll_count(10, true));
        assert_eq!(t.count_deadline(), Some(20));
        // A long gap: one expiry, next zero the first period boundary after now.
        assert!(t.poll_count(1_000_000_005, true));
        assert_eq!(t.count_deadline(), Some(1_000_000_010));
        assert_eq!(t.current_count(1_000_000_005, true), 5);
        assert!(!t.poll_count(1_000_000_009, true));
    }

    #[test]
    fn a_divide_change_keeps_the_remaining_count() {
        let mut t = Timer::new(1_000_000_000);
        t.set_divide(0b1011, 0, false); // 1 ns a tick
        t.start(100, 0);
        t.set_divide(0b0011, 40, false); // 16 ns a tick from here
        assert_eq!(t.current_count(40, false), 60);
        assert_eq!(t.current_count(40 + 16 * 10, false), 50);
        assert_eq!(t.count_deadline(), Some(40 + 16 * 60));
    }

    #[test]
    fn time_going_backwards_reads_as_no_time_passing() {
        let mut t = Timer::new(1_000_000_000);
        t.start(50, 1_000_000);
        assert_eq!(t.current_count(0, false), 50);
        assert!(!t.poll_count(0, true));
        t.set_divide(0b1010, 3, true);
        assert_eq!(t.current_count(3, true), 50);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        for hz in [0, 1, u64::MAX] {
            for divide in [0b0000, 0b1010, 0b1011] {
                let mut t = Timer::new(hz);
                t.set_divide(divide, 0, true);
                t.start(u32::MAX, u64::MAX - 1);
                let _ = t.current_count(u64::MAX, true);
                let _ = t.poll_count(u64::MAX, true);
                let _ = t.count_deadline();
                t.start(1, 0);
                let _ = t.poll_count(u64::MAX, true);
                let _ = t.count_deadline();
                let _ = t.current_count(u64::MAX, true);
            }
        }
        // 1 Hz, divide by 128, 2^32 - 1: about 17,000 years, past the clock's range.
        let mut t = Timer::new(1);
        t.set_divide(0b1010, 0, false);
        t.start(u32::MAX, 0);
        assert_eq!(t.count_deadline(), None);
        assert!(!t.poll_count(u64::MAX, false));
    }

    #[test]
    fn tsc_deadlines_convert_to_the_first_time_at_or_past_them() {
        let tsc = GuestTsc {
            hz: 3_000_000_000,
            at_zero: 1_000,
        };
        assert_eq!(tsc.time_of(0), Some(0), "behind the origin");
        assert_eq!(tsc.time_of(1_000), Some(0));
        assert_eq!(tsc.time_of(1_003), Some(1));
        assert_eq!(tsc.time_of(1_004), Some(2), "rounded up: never early");
        assert_eq!(
            tsc.time_of(u64::MAX).map(|ns| ns > 6_000_000_000),
            Some(true)
        );
        let slow = GuestTsc { hz: 0, at_zero: 0 };
        assert_eq!(
            slow.time_of(u64::MAX),
            None,
            "1 Hz: beyond the clock's range"
        );

        let mut t = Timer::new(1);
        assert!(!t.poll_tsc_deadline(&tsc, u64::MAX), "disarmed");
        t.set_tsc_deadline(1_003);
        assert_eq!(t.tsc_deadline_time(&tsc), Some(1));
        assert!(!t.poll_tsc_deadline(&tsc, 0));
        assert!(t.poll_tsc_deadline(&tsc, 1));
        assert_eq!(t.tsc_deadline(), 0, "disarmed once it fires");
    }
}

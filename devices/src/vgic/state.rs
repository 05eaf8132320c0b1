//! The state of 32 consecutive INTIDs, one bit each: what every one-bit-per-INTID register
//! (IGROUPR, IS/ICENABLER, IS/ICPENDR, IS/ICACTIVER) and the edge bits of ICFGR read and
//! write, and what delivery looks at. Each redistributor has one `Bank` (SGIs and PPIs,
//! INTIDs 0-31); the distributor has one per 32 SPIs.

/// Which one-bit-per-INTID register an access reaches (the same layout in GICD and in GICR's
/// SGI_base frame, §12.9 / §12.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BitRegister {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl BitRegister {
    /// The register at `offset` into the IGROUPR..ICACTIVER blocks (0x80-0x3FF), and the
    /// index of the 32-bit register within its block.
    pub(super) fn decode(offset: u64) -> Option<(Self, usize)> {
        use super::registers::*;
        let reg = match offset & !(BITS_BLOCK - 1) {
            GICD_IGROUPR => Self::Group,
            GICD_ISENABLER => Self::SetEnable,
            GICD_ICENABLER => Self::ClearEnable,
            GICD_ISPENDR => Self::SetPending,
            GICD_ICPENDR => Self::ClearPending,
            GICD_ISACTIVER => Self::SetActive,
            GICD_ICACTIVER => Self::ClearActive,
            _ => return None,
        };
        Some((reg, ((offset % BITS_BLOCK) / 4) as usize))
    }

    /// Whether a write can make an interrupt deliverable (so CPUs may need a kick).
    pub(super) fn may_raise(self) -> bool {
        matches!(
            self,
            Self::Group | Self::SetEnable | Self::SetPending | Self::ClearActive
        )
    }
}

/// 32 interrupts' state, bit n for INTID `base + n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Bank {
    /// IGROUPR: 1 = Group 1 (GICD_CTLR.DS == 1 meaning).
    pub(super) group1: u32,
    pub(super) enabled: u32,
    /// ICFGR's Int_config[1]: 1 = edge-triggered, 0 = level-sensitive.
    pub(super) edge: u32,
    /// The pending latch: an edge seen on the input, an SGI, or a guest's ISPENDR write.
    /// Cleared by ICPENDR and by `inject`. For a level-sensitive interrupt this is the
    /// "software pending" flip-flop that is ORed with the input (§12.9 "GICD_ISPENDR<n>").
    pub(super) latch: u32,
    /// The input as its source last drove it.
    pub(super) line: u32,
    /// The active state as the guest sees it through IS/ICACTIVER.
    pub(super) active: u32,
    /// Held in a list register by Parapet: from `inject` to `completed`. Not guest-visible.
    pub(super) listed: u32,
}

impl Bank {
    /// The pending state: the latch, or an asserted level-sensitive input.
    pub(super) fn pending(&self) -> u32 {
        self.latch | (self.line & !self.edge)
    }

    /// Pending, enabled, Group 1, neither active nor in a list register.
    pub(super) fn ready(&self) -> u32 {
        self.pending() & self.enabled & self.group1 & !self.active & !self.listed
    }

    /// The source drives input `n` (0-31) to `high`: a rising edge latches an edge-triggered
    /// interrupt; a level-sensitive one is pending while the input stays high. Returns
    /// whether the interrupt became pending.
    pub(super) fn drive(&mut self, n: u32, high: bool) -> bool {
        let bit = 1u32 << (n & 31);
        let was = self.pending() & bit != 0;
        if high {
            if self.edge & bit != 0 && self.line & bit == 0 {
                self.latch |= bit;
            }
            self.line |= bit;
        } else {
            self.line &= !bit;
        }
        !was && self.pending() & bit != 0
    }

    /// What `reg` reads: the set and clear registers of a pair read the same state.
    pub(super) fn read(&self, reg: BitRegister) -> u32 {
        match reg {
            BitRegister::Group => self.group1,
            BitRegister::SetEnable | BitRegister::ClearEnable => self.enabled,
            BitRegister::SetPending | BitRegister::ClearPending => self.pending(),
            BitRegister::SetActive | BitRegister::ClearActive => self.active,
        }
    }

    /// A write of `value` to `reg`, touching only the bits in `implemented` (the rest of the
    /// register is RAZ/WI). Writing 0 to a set or clear bit has no effect.
    pub(super) fn write(&mut self, reg: BitRegister, value: u32, implemented: u32) {
        let bits = value & implemented;
        match reg {
            BitRegister::Group => {
                self.group1 = (self.group1 & !implemented) | bits;
            }
            BitRegister::SetEnable => self.enabled |= bits,
            BitRegister::ClearEnable => self.enabled &= !bits,
            BitRegister::SetPending => self.latch |= bits,
            // Clears the latch only: an asserted level-sensitive input stays pending
            // (§12.9 "GICD_ICPENDR<n>").
            BitRegister::ClearPending => self.latch &= !bits,
            BitRegister::SetActive => self.active |= bits,
            BitRegister::ClearActive => self.active &= !bits,
        }
    }

    /// ICFGR for the 16 interrupts of half `half` (0: bits 0-15, 1: bits 16-31): for each,
    /// the edge bit in the field's upper bit (2m + 1); the lower bit is RES0.
    pub(super) fn read_config(&self, half: u32) -> u32 {
        let edges = (self.edge >> ((half & 1) * 16)) & 0xffff;
        (0..16)
            .filter(|m| edges & (1 << m) != 0)
            .fold(0, |acc, m| acc | (2 << (2 * m)))
    }

    /// A write of ICFGR half `half`: only the interrupts in `writable` change.
    pub(super) fn write_config(&mut self, half: u32, value: u32, writable: u32) {
        let shift = (half & 1) * 16;
        let edges = (0..16)
            .filter(|m| value & (2 << (2 * m)) != 0)
            .fold(0u32, |acc, m| acc | (1 << m));
        let mask = writable & (0xffff << shift);
        self.edge = (self.edge & !mask) | ((edges << shift) & mask);
    }
}

/// The bits of 32 INTIDs starting at `base` that are below `limit`.
pub(super) fn bits_below(base: u32, limit: u32) -> u32 {
    match limit.saturating_sub(base) {
        0 => 0,
        n if n >= 32 => u32::MAX,
        n => (1u32 << n) - 1,
    }
}

/// Each set bit of `bits`, lowest first.
pub(super) fn each_bit(mut bits: u32) -> impl Iterator<Item = u32> {
    core::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let n = bits.trailing_zeros();
        bits &= bits - 1;
        Some(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_pending_follows_the_line_and_edge_latches() {
        let mut b = Bank {
            edge: 0b10,
            ..Bank::default()
        };
        assert!(b.drive(0, true));
        assert!(b.drive(1, true));
        assert_eq!(b.pending(), 0b11);
        assert!(!b.drive(0, true), "already pending");
        assert!(!b.drive(0, false));
        assert!(!b.drive(1, false));
        assert_eq!(b.pending(), 0b10, "edge stays latched, level follows");
        assert!(!b.drive(1, true), "latched already");
        b.latch = 0;
        assert!(!b.drive(1, true), "no new edge while high");
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn clear_pending_leaves_an_asserted_level_input() {
        let mut b = Bank::default();
        let _ = b.drive(3, true);
        b.write(BitRegister::SetPending, 1 << 3, u32::MAX);
        b.write(BitRegister::ClearPending, 1 << 3, u32::MAX);
        assert_eq!(b.pending(), 1 << 3);
        let _ = b.drive(3, false);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn config_fields_round_trip() {
        let mut b = Bank::default();
        b.write_config(1, 0xffff_ffff, 0xffff_0000);
        assert_eq!(b.edge, 0xffff_0000);
        assert_eq!(b.read_config(1), ICFGR_EDGES);
        assert_eq!(b.read_config(0), 0);
        b.write_config(1, 0x0000_0008, u32::MAX);
        assert_eq!(b.edge, 1 << 17);
        assert_eq!(b.read_config(1), 0x8);
        b.write_config(0, 0xffff_ffff, 0);
        assert_eq!(b.edge, 1 << 17, "nothing writable");
    }

    const ICFGR_EDGES: u32 = 0xaaaa_aaaa;

    #[test]
    fn bits_below_limits() {
        assert_eq!(bits_below(32, 32), 0);
        assert_eq!(bits_below(32, 33), 1);
        assert_eq!(bits_below(32, 64), u32::MAX);
        assert_eq!(bits_below(992, 1020), (1 << 28) - 1);
        assert_eq!(bits_below(1024, 1020), 0);
        assert_eq!(each_bit(0x8000_0005).collect::<Vec<_>>(), [0, 2, 31]);
    }
}

//! Synthetic MSRs (TLFS appendix C; TLFS web: hypercall-interface, inter-partition-
//! communication, vp-properties).

pub const GUEST_OS_ID: u32 = 0x4000_0000;
pub const HYPERCALL: u32 = 0x4000_0001;
pub const VP_INDEX: u32 = 0x4000_0002;
pub const RESET: u32 = 0x4000_0003;
pub const TIME_REF_COUNT: u32 = 0x4000_0020;
pub const TSC_FREQUENCY: u32 = 0x4000_0022;
pub const APIC_FREQUENCY: u32 = 0x4000_0023;
pub const VP_ASSIST_PAGE: u32 = 0x4000_0073;
pub const SCONTROL: u32 = 0x4000_0080;
pub const SVERSION: u32 = 0x4000_0081;
pub const SIEFP: u32 = 0x4000_0082;
pub const SIMP: u32 = 0x4000_0083;
pub const EOM: u32 = 0x4000_0084;
/// SINT0; SINTn is `SINT0 + n` for n in 0..16.
pub const SINT0: u32 = 0x4000_0090;
pub const SINT_COUNT: u32 = 16;
/// SVERSION reads this.
pub const SYNIC_VERSION: u64 = 1;

/// Whether `msr` is one of the synthetic MSRs this module names.
pub fn is_synthetic(msr: u32) -> bool {
    matches!(msr, GUEST_OS_ID..=RESET | TIME_REF_COUNT | TSC_FREQUENCY | APIC_FREQUENCY | VP_ASSIST_PAGE | SCONTROL..=EOM)
        || (SINT0..SINT0 + SINT_COUNT).contains(&msr)
}

/// A page-address MSR with an enable bit: HYPERCALL, VP_ASSIST_PAGE, SIEFP, SIMP.
/// Bit 0 enable; 63:12 guest page number. HYPERCALL also has bit 1, locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PageMsr(pub u64);

impl PageMsr {
    pub const ENABLE: u64 = 1 << 0;
    /// HYPERCALL only: once set, writes are ignored until reset.
    pub const LOCKED: u64 = 1 << 1;

    pub fn enabled(self) -> bool {
        self.0 & Self::ENABLE != 0
    }

    pub fn locked(self) -> bool {
        self.0 & Self::LOCKED != 0
    }

    /// Guest-physical address of the page.
    pub fn gpa(self) -> u64 {
        self.0 & !0xfff
    }

    pub fn new(gpa: u64, enabled: bool) -> Self {
        Self((gpa & !0xfff) | u64::from(enabled))
    }
}

/// A SINTx MSR: 7:0 vector (16-255 valid), 16 masked, 17 auto-EOI, 18 polling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sint(pub u64);

impl Sint {
    pub const MASKED: u64 = 1 << 16;
    pub const AUTO_EOI: u64 = 1 << 17;
    pub const POLLING: u64 = 1 << 18;
    /// Value after reset: masked, vector 0.
    pub const RESET: Sint = Sint(Self::MASKED);

    pub fn vector(self) -> u8 {
        self.0 as u8
    }

    pub fn masked(self) -> bool {
        self.0 & Self::MASKED != 0
    }

    pub fn auto_eoi(self) -> bool {
        self.0 & Self::AUTO_EOI != 0
    }

    /// Whether a guest write of this value is valid: an unmasked SINT needs a vector of at
    /// least 16 (a write with a lower vector raises #GP).
    pub fn is_valid(self) -> bool {
        self.masked() || self.vector() >= 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_msrs_split_address_and_flags() {
        let m = PageMsr(0x1234_5003);
        assert!(m.enabled() && m.locked());
        assert_eq!(m.gpa(), 0x1234_5000);
        assert_eq!(PageMsr::new(0x7000, true).0, 0x7001);
    }

    #[test]
    fn sint_vectors_below_16_are_invalid_unless_masked() {
        assert!(!Sint(0x0f).is_valid());
        assert!(Sint(0x10).is_valid());
        assert!(Sint::RESET.is_valid() && Sint::RESET.masked());
        assert!(Sint(0x2_0030).auto_eoi());
    }

    #[test]
    fn the_synthetic_ranges_are_recognised() {
        for msr in [
            GUEST_OS_ID,
            HYPERCALL,
            VP_INDEX,
            VP_ASSIST_PAGE,
            SIMP,
            SINT0,
            SINT0 + 15,
        ] {
            assert!(is_synthetic(msr), "{msr:#x}");
        }
        for msr in [0x1b, 0xc000_0080, SINT0 + 16, 0x4000_0004] {
            assert!(!is_synthetic(msr), "{msr:#x}");
        }
    }
}

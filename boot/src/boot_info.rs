//! What each architecture's boot path hands to the shared part of boot.

/// A physical range in use by a boot structure.
#[derive(Clone, Copy, Debug)]
pub struct ReservedRange {
    pub what: &'static str,
    pub start: u64,
    pub end: u64,
}

/// Boot structures the frame allocator must leave alone.
#[derive(Default)]
pub struct Reserved {
    ranges: heapless_ranges::Ranges,
}

mod heapless_ranges {
    use super::ReservedRange;

    /// The fixed boot structures plus up to 16 device-tree reservations.
    const MAX: usize = 32;

    #[derive(Default)]
    pub struct Ranges {
        items: [Option<ReservedRange>; MAX],
    }

    impl Ranges {
        pub fn push(&mut self, r: ReservedRange) -> bool {
            match self.items.iter_mut().find(|s| s.is_none()) {
                Some(slot) => {
                    *slot = Some(r);
                    true
                }
                None => false,
            }
        }

        pub fn iter(&self) -> impl Iterator<Item = &ReservedRange> {
            self.items.iter().flatten()
        }
    }
}

impl Reserved {
    /// Records a range; panics only if the fixed table overflows, which is a bug in the boot
    /// path (it adds a known, small number of ranges).
    pub fn add(&mut self, what: &'static str, start: u64, end: u64) {
        let added = self.ranges.push(ReservedRange { what, start, end });
        assert!(added, "too many reserved boot ranges");
    }

    pub fn ranges(&self) -> impl Iterator<Item = &ReservedRange> {
        self.ranges.iter()
    }

    #[cfg(target_arch = "x86_64")]
    /// Whether [start, end) touches a reserved range other than the one named `except`.
    pub fn overlaps_except(&self, start: u64, end: u64, except: &str) -> bool {
        self.ranges()
            .any(|r| r.what != except && r.start < end && start < r.end)
    }
}

/// Facts for the banner and the shared boot steps.
pub struct BootInfo<'a> {
    pub arch: &'static str,
    pub platform: isolation::PlatformKind,
    pub cpus: usize,
    pub ram_bytes: u64,
    pub cmdline: &'a str,
}

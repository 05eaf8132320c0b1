//! The machine's memory map as the loader describes it, in one arch-neutral form.

/// What a physical range is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Usable RAM.
    Ram,
    /// Anything else: firmware, ACPI, MMIO, unusable.
    Reserved,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub kind: RegionKind,
}

impl Region {
    pub fn size(&self) -> u64 {
        self.end - self.start
    }
}

/// Up to this many regions are kept; more is a loader we do not understand.
pub const MAX_REGIONS: usize = 64;

/// A fixed-capacity list of regions (no heap exists when it is built).
#[derive(Clone, Debug)]
pub struct MemoryMap {
    regions: [Region; MAX_REGIONS],
    len: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    pub const fn new() -> Self {
        Self {
            regions: [Region {
                start: 0,
                end: 0,
                kind: RegionKind::Reserved,
            }; MAX_REGIONS],
            len: 0,
        }
    }

    /// Adds a region; empty or overflowing ranges are dropped. Returns false when full.
    pub fn push(&mut self, start: u64, size: u64, kind: RegionKind) -> bool {
        let Some(end) = start.checked_add(size) else {
            return true;
        };
        if size == 0 {
            return true;
        }
        if self.len == MAX_REGIONS {
            return false;
        }
        self.regions[self.len] = Region { start, end, kind };
        self.len += 1;
        true
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.len]
    }

    pub fn ram(&self) -> impl Iterator<Item = &Region> {
        self.regions().iter().filter(|r| r.kind == RegionKind::Ram)
    }

    /// Total usable RAM in bytes, as listed (overlaps count twice; saturates rather than
    /// overflowing on a hostile map).
    pub fn ram_bytes(&self) -> u64 {
        self.ram().map(Region::size).fold(0, u64::saturating_add)
    }

    /// End of the highest RAM region.
    pub fn ram_end(&self) -> u64 {
        self.ram().map(|r| r.end).max().unwrap_or(0)
    }
}

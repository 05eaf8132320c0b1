//! Physical frame allocator: a sorted list of free ranges.
//!
//! Ranges rather than a bitmap: the paravisor's own region is a handful of large runs, the
//! list needs no memory proportional to RAM, and 2 MiB-aligned runs for large pages are found
//! without scanning bits. Freed ranges coalesce with their neighbours.

use heapless::Vec;

pub const FRAME_SIZE: u64 = 4096;
/// Free ranges kept; fragmentation past this drops the smallest (reported by `free`).
const MAX_RANGES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u64,
    end: u64,
}

#[derive(Debug)]
pub struct FrameAllocator {
    free: Vec<Range, MAX_RANGES>,
    total: u64,
    /// Bytes lost because the range list was full when they were freed.
    leaked: u64,
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}

const fn align_up(x: u64, a: u64) -> Option<u64> {
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}

impl FrameAllocator {
    pub const fn new() -> Self {
        Self {
            free: Vec::new(),
            total: 0,
            leaked: 0,
        }
    }

    /// Adds `[start, end)` of RAM, shrunk inwards to whole frames. A range overlapping RAM
    /// already added is merged with it, so a memory map that lists the same RAM twice cannot
    /// make a frame be handed out twice. Call while building the allocator, before any
    /// allocation: an allocated frame inside the range would become free again.
    pub fn add_ram(&mut self, start: u64, end: u64) {
        let Some(start) = align_up(start, FRAME_SIZE) else {
            return;
        };
        let end = end & !(FRAME_SIZE - 1);
        if start >= end {
            return;
        }
        // Drop what is already there, then add the whole range once.
        self.reserve(start, end);
        self.total = self.total.saturating_add(end - start);
        self.insert(start, end);
    }

    /// Removes `[start, end)` (widened outwards to whole frames) from the free ranges: memory
    /// in use by the image, its page tables, boot structures.
    pub fn reserve(&mut self, start: u64, end: u64) {
        let start = start & !(FRAME_SIZE - 1);
        let end = align_up(end, FRAME_SIZE).unwrap_or(!(FRAME_SIZE - 1));
        let mut i = 0;
        while i < self.free.len() {
            let r = self.free[i];
            if r.end <= start || r.start >= end {
                i += 1;
                continue;
            }
            let cut = r.end.min(end) - r.start.max(start);
            self.total -= cut;
            self.free.remove(i);
            if r.start < start {
                self.insert(r.start, start);
                i += 1;
            }
            if r.end > end {
                self.insert(end, r.end);
                i += 1;
            }
        }
    }

    /// Allocates `size` bytes (rounded up to frames) aligned to `align` (a power of two of at
    /// least a frame). Lowest address first.
    pub fn allocate(&mut self, size: u64, align: u64) -> Option<u64> {
        let align = align.max(FRAME_SIZE);
        if !align.is_power_of_two() || size == 0 {
            return None;
        }
        let size = align_up(size, FRAME_SIZE)?;
        let i = self.free.iter().position(|r| {
            align_up(r.start, align)
                .and_then(|s| s.checked_add(size))
                .is_some_and(|e| e <= r.end)
        })?;
        let r = self.free[i];
        let start = align_up(r.start, align)?;
        let end = start + size;
        self.free.remove(i);
        if r.start < start {
            self.insert(r.start, start);
        }
        if end < r.end {
            self.insert(end, r.end);
        }
        Some(start)
    }

    /// Returns `[pa, pa + size)` to the free ranges.
    ///
    /// The caller guarantees the range came from [`allocate`](Self::allocate) and is no longer used.
    pub fn free(&mut self, pa: u64, size: u64) {
        let Some(size) = align_up(size, FRAME_SIZE) else {
            return;
        };
        self.insert(pa & !(FRAME_SIZE - 1), (pa & !(FRAME_SIZE - 1)) + size);
    }

    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|r| r.end - r.start).sum()
    }

    /// RAM under management, free or allocated.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    pub fn leaked_bytes(&self) -> u64 {
        self.leaked
    }

    /// Inserts a range in address order, merging with touching neighbours.
    fn insert(&mut self, start: u64, end: u64) {
        let i = self
            .free
            .iter()
            .position(|r| r.start >= end)
            .unwrap_or(self.free.len());
        let merges_prev = i > 0 && self.free[i - 1].end == start;
        let merges_next = i < self.free.len() && self.free[i].start == end;
        match (merges_prev, merges_next) {
            (true, true) => {
                self.free[i - 1].end = self.free[i].end;
                self.free.remove(i);
            }
            (true, false) => self.free[i - 1].end = end,
            (false, true) => self.free[i].start = start,
            (false, false) => {
                if self.free.insert(i, Range { start, end }).is_err() {
                    self.leaked += end - start;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn machine() -> FrameAllocator {
        // Like a PC: low RAM below 640 KiB and RAM from 1 MiB to 128 MiB.
        let mut f = FrameAllocator::new();
        f.add_ram(0, 0x9fc00);
        f.add_ram(MIB, 128 * MIB);
        f
    }

    #[test]
    fn ram_is_trimmed_to_whole_frames() {
        let f = machine();
        assert_eq!(f.total_bytes(), 0x9f000 + 127 * MIB);
        assert_eq!(f.free_bytes(), f.total_bytes());
    }

    #[test]
    fn reserved_ranges_are_never_handed_out() {
        let mut f = machine();
        f.reserve(0, MIB); // low memory
        f.reserve(MIB, 3 * MIB + 100); // image, rounded out to 3 MiB + 4 KiB
        let a = f.allocate(FRAME_SIZE, FRAME_SIZE).unwrap();
        assert_eq!(a, 3 * MIB + FRAME_SIZE);
        assert_eq!(f.total_bytes(), 128 * MIB - 3 * MIB - FRAME_SIZE);
    }

    #[test]
    fn aligned_allocations_are_aligned_and_do_not_overlap() {
        let mut f = machine();
        f.reserve(0, MIB + FRAME_SIZE);
        let small = f.allocate(FRAME_SIZE, FRAME_SIZE).unwrap();
        let big = f.allocate(2 * MIB, 2 * MIB).unwrap();
        assert_eq!(big % (2 * MIB), 0);
        assert!(small + FRAME_SIZE <= big || big + 2 * MIB <= small);
        // The gap left before the aligned block is still usable.
        let next = f.allocate(FRAME_SIZE, FRAME_SIZE).unwrap();
        assert!(next < big);
    }

    #[test]
    fn freeing_coalesces_back_to_the_original_ranges() {
        let mut f = machine();
        let before = f.free_bytes();
        let blocks: std::vec::Vec<u64> = (0..50)
            .map(|i| f.allocate(FRAME_SIZE * (i % 7 + 1), FRAME_SIZE).unwrap())
            .collect();
        for (i, b) in blocks.iter().enumerate().rev().filter(|(i, _)| i % 2 == 0) {
            f.free(*b, FRAME_SIZE * (i as u64 % 7 + 1));
        }
        for (i, b) in blocks.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            f.free(*b, FRAME_SIZE * (i as u64 % 7 + 1));
        }
        assert_eq!(f.free_bytes(), before);
        assert_eq!(f.free.len(), 2, "low RAM and high RAM, fully merged");
    }

    #[test]
    fn exhaustion_returns_none() {
        let mut f = FrameAllocator::new();
        f.add_ram(0x1000, 0x3000);
        assert!(f.allocate(FRAME_SIZE, FRAME_SIZE).is_some());
        assert!(f.allocate(FRAME_SIZE, FRAME_SIZE).is_some());
        assert_eq!(f.allocate(FRAME_SIZE, FRAME_SIZE), None);
        assert_eq!(f.allocate(0, FRAME_SIZE), None);
        assert_eq!(
            f.allocate(FRAME_SIZE, 3 * FRAME_SIZE),
            None,
            "alignment must be a power of two"
        );
    }

    #[test]
    fn overlapping_ram_ranges_are_merged_not_doubled() {
        let mut f = FrameAllocator::new();
        f.add_ram(0, 8 * FRAME_SIZE);
        f.add_ram(4 * FRAME_SIZE, 12 * FRAME_SIZE);
        f.add_ram(2 * FRAME_SIZE, 3 * FRAME_SIZE);
        assert_eq!(f.total_bytes(), 12 * FRAME_SIZE);
        assert_eq!(f.free_bytes(), 12 * FRAME_SIZE);
        let mut got = std::vec::Vec::new();
        while let Some(a) = f.allocate(FRAME_SIZE, FRAME_SIZE) {
            got.push(a);
        }
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), 12, "every frame exactly once");
    }

    #[test]
    fn reserving_the_middle_splits_a_range() {
        let mut f = FrameAllocator::new();
        f.add_ram(0, 16 * FRAME_SIZE);
        f.reserve(4 * FRAME_SIZE, 8 * FRAME_SIZE);
        assert_eq!(f.free_bytes(), 12 * FRAME_SIZE);
        assert_eq!(f.allocate(5 * FRAME_SIZE, FRAME_SIZE), Some(8 * FRAME_SIZE));
    }
}

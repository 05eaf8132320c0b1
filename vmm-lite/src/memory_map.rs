//! The guest memory map vmm-lite reports to the firmware (the IGVM MemoryMap parameter).
//!
//! RAM is one run from 0; the legacy VGA/BIOS window (640 KiB - 1 MiB) is reported reserved,
//! as on a PC, and each region the image requires is reported VTL2-protectable, so the
//! firmware knows which memory is its own and any lower VTL's map leaves it out.

use abi::igvm_memory_map::{
    MemoryMapEntry, TYPE_MEMORY, TYPE_PLATFORM_RESERVED, TYPE_VTL2_PROTECTABLE,
};

const LEGACY_HOLE: (u64, u64) = (0xa_0000, 0x10_0000);

/// Entries for `ram` bytes of RAM with `protected` (start, size) ranges, sorted, disjoint.
pub fn build(ram: u64, protected: &[(u64, u64)]) -> Vec<MemoryMapEntry> {
    let mut entries = vec![
        MemoryMapEntry {
            start: 0,
            size: LEGACY_HOLE.0.min(ram),
            entry_type: TYPE_MEMORY,
        },
        MemoryMapEntry {
            start: LEGACY_HOLE.0,
            size: LEGACY_HOLE.1 - LEGACY_HOLE.0,
            entry_type: TYPE_PLATFORM_RESERVED,
        },
        MemoryMapEntry {
            start: LEGACY_HOLE.1,
            size: ram.saturating_sub(LEGACY_HOLE.1),
            entry_type: TYPE_MEMORY,
        },
    ];
    for &(start, size) in protected {
        entries = overlay(
            entries,
            start,
            start.saturating_add(size).min(ram),
            TYPE_VTL2_PROTECTABLE,
        );
    }
    entries.retain(|e| e.size > 0);
    entries
}

/// Re-labels [start, end) as `entry_type` within the entries it overlaps.
fn overlay(
    entries: Vec<MemoryMapEntry>,
    start: u64,
    end: u64,
    entry_type: u16,
) -> Vec<MemoryMapEntry> {
    let mut out = Vec::new();
    for e in entries {
        let (e_start, e_end) = (e.start, e.start + e.size);
        if end <= e_start || start >= e_end || e.entry_type != TYPE_MEMORY {
            out.push(e);
            continue;
        }
        let mid_start = start.max(e_start);
        let mid_end = end.min(e_end);
        out.push(MemoryMapEntry {
            start: e_start,
            size: mid_start - e_start,
            entry_type: e.entry_type,
        });
        out.push(MemoryMapEntry {
            start: mid_start,
            size: mid_end - mid_start,
            entry_type,
        });
        out.push(MemoryMapEntry {
            start: mid_end,
            size: e_end - mid_end,
            entry_type: e.entry_type,
        });
    }
    out.retain(|e| e.size > 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paravisor_region_is_carved_out_of_ram() {
        let map = build(256 << 20, &[(0x10_0000, 64 << 20)]);
        assert_eq!(
            map,
            [
                MemoryMapEntry {
                    start: 0,
                    size: 0xa_0000,
                    entry_type: TYPE_MEMORY
                },
                MemoryMapEntry {
                    start: 0xa_0000,
                    size: 0x6_0000,
                    entry_type: TYPE_PLATFORM_RESERVED
                },
                MemoryMapEntry {
                    start: 0x10_0000,
                    size: 64 << 20,
                    entry_type: TYPE_VTL2_PROTECTABLE
                },
                MemoryMapEntry {
                    start: 0x410_0000,
                    size: (256 << 20) - 0x410_0000,
                    entry_type: TYPE_MEMORY
                },
            ]
        );
    }

    #[test]
    fn overlapping_and_out_of_range_regions_stay_disjoint_and_inside_ram() {
        let map = build(
            16 << 20,
            &[
                (0x10_0000, 0x20_0000),
                (0x20_0000, 0x20_0000),
                (0xf0_0000, 0x100_0000),
                (u64::MAX - 5, 100),
            ],
        );
        for pair in map.windows(2) {
            assert_eq!(pair[0].start + pair[0].size, pair[1].start, "{map:?}");
        }
        assert_eq!(map.last().map(|e| e.start + e.size), Some(16 << 20));
        let protected: u64 = map
            .iter()
            .filter(|e| e.entry_type == TYPE_VTL2_PROTECTABLE)
            .map(|e| e.size)
            .sum();
        assert_eq!(protected, 0x30_0000 + (0x100_0000 - 0xf0_0000));
    }

    #[test]
    fn entries_are_sorted_and_disjoint_for_any_region() {
        for (start, size) in [
            (0u64, 0x1000u64),
            (0x5_0000, 0x20_0000),
            (0xf00_0000, 0x200_0000),
            (0x300_0000, 0x1000),
        ] {
            let map = build(256 << 20, &[(start, size)]);
            for pair in map.windows(2) {
                assert_eq!(pair[0].start + pair[0].size, pair[1].start, "{map:?}");
            }
            assert_eq!(map.last().map(|e| e.start + e.size), Some(256 << 20));
        }
    }
}

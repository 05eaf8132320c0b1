//! The IGVM memory map parameter: an array of `IGVM_VHS_MEMORY_MAP_ENTRY` (IGVM spec, 24 bytes
//! each, little-endian), sorted by address, ended by an entry with zero pages or the end of
//! the area.

/// `MemoryMapEntryType` values.
pub const TYPE_MEMORY: u16 = 0;
pub const TYPE_PLATFORM_RESERVED: u16 = 1;
pub const TYPE_PERSISTENT: u16 = 2;
/// Memory a VTL2 paravisor may protect from lower VTLs: its own region.
pub const TYPE_VTL2_PROTECTABLE: u16 = 3;

pub const ENTRY_SIZE: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryMapEntry {
    pub start: u64,
    pub size: u64,
    pub entry_type: u16,
}

impl MemoryMapEntry {
    /// Encodes the entry (addresses must be page-aligned).
    pub fn to_bytes(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[0..8].copy_from_slice(&(self.start >> 12).to_le_bytes());
        b[8..16].copy_from_slice(&(self.size >> 12).to_le_bytes());
        b[16..18].copy_from_slice(&self.entry_type.to_le_bytes());
        b
    }
}

/// Decodes entries from a memory map parameter area. Stops at a zero-page entry or the end
/// of the area; skips entries whose address arithmetic would overflow.
pub fn entries(area: &[u8]) -> impl Iterator<Item = MemoryMapEntry> + '_ {
    area.chunks_exact(ENTRY_SIZE)
        .map(|e| {
            let u64_at = |at: usize| {
                u64::from_le_bytes([
                    e[at],
                    e[at + 1],
                    e[at + 2],
                    e[at + 3],
                    e[at + 4],
                    e[at + 5],
                    e[at + 6],
                    e[at + 7],
                ])
            };
            (u64_at(0), u64_at(8), u16::from_le_bytes([e[16], e[17]]))
        })
        .take_while(|&(_, pages, _)| pages != 0)
        .filter_map(|(page, pages, entry_type)| {
            let start = page.checked_mul(4096)?;
            let size = pages.checked_mul(4096)?;
            start.checked_add(size)?;
            Some(MemoryMapEntry {
                start,
                size,
                entry_type,
            })
        })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn entries_round_trip_and_stop_at_the_terminator() {
        let map = [
            MemoryMapEntry {
                start: 0,
                size: 0x9f000,
                entry_type: TYPE_MEMORY,
            },
            MemoryMapEntry {
                start: 0x10_0000,
                size: 64 << 20,
                entry_type: TYPE_VTL2_PROTECTABLE,
            },
            MemoryMapEntry {
                start: 0x410_0000,
                size: 0x1000_0000,
                entry_type: TYPE_MEMORY,
            },
        ];
        let mut area = Vec::new();
        for e in &map {
            area.extend_from_slice(&e.to_bytes());
        }
        area.extend_from_slice(&[0; ENTRY_SIZE]);
        area.extend_from_slice(&map[0].to_bytes()); // after the terminator: ignored
        let back: Vec<_> = entries(&area).collect();
        assert_eq!(back, map);
    }

    #[test]
    fn overflowing_entries_are_dropped_and_partial_entries_ignored() {
        let mut area = Vec::new();
        let mut wild = [0u8; ENTRY_SIZE];
        wild[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        wild[8..16].copy_from_slice(&1u64.to_le_bytes());
        area.extend_from_slice(&wild);
        area.extend_from_slice(
            &MemoryMapEntry {
                start: 0x1000,
                size: 0x1000,
                entry_type: 0,
            }
            .to_bytes(),
        );
        area.extend_from_slice(&[1, 2, 3]);
        let back: Vec<_> = entries(&area).collect();
        assert_eq!(
            back,
            [MemoryMapEntry {
                start: 0x1000,
                size: 0x1000,
                entry_type: 0
            }]
        );
    }
}

//! x86_64 4-level paging entries (Intel SDM Vol. 3A §4.5, tables 4-15 to 4-20; AMD APM Vol. 2
//! §5.3). Caching uses the power-on PAT: PCD|PWT selects UC.

use crate::paging::{Entry, MapFlags, PageTableFormat};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const CACHE_DISABLE: u64 = 1 << 4;
const ACCESSED: u64 = 1 << 5;
const DIRTY: u64 = 1 << 6;
/// PS: in a PDE this maps a 2 MiB page.
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
/// Physical address bits 51:12.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

pub struct X86_64;

impl PageTableFormat for X86_64 {
    const UPPER_HALF: bool = true;
    const BREAK_BEFORE_MAKE: bool = false;

    fn table(pa: u64) -> u64 {
        // Intermediate entries allow everything; leaves restrict.
        (pa & ADDRESS_MASK) | PRESENT | WRITABLE | ACCESSED
    }

    fn leaf(pa: u64, level: usize, flags: MapFlags) -> u64 {
        // A and D are preset so the CPU never writes them back into our tables.
        let mut entry = (pa & ADDRESS_MASK) | PRESENT | ACCESSED | DIRTY;
        if level == 1 {
            entry |= HUGE;
        }
        if flags.contains(MapFlags::WRITE) {
            entry |= WRITABLE;
        }
        if !flags.contains(MapFlags::EXECUTE) {
            entry |= NO_EXECUTE;
        }
        if flags.contains(MapFlags::DEVICE) {
            entry |= CACHE_DISABLE | WRITE_THROUGH;
        }
        entry
    }

    fn decode(entry: u64, level: usize) -> Entry {
        if entry & PRESENT == 0 {
            return Entry::Invalid;
        }
        if level > 0 && (level > 1 || entry & HUGE == 0) {
            return Entry::Table {
                pa: entry & ADDRESS_MASK,
            };
        }
        let mut flags = MapFlags::empty();
        if entry & WRITABLE != 0 {
            flags |= MapFlags::WRITE;
        }
        if entry & NO_EXECUTE == 0 {
            flags |= MapFlags::EXECUTE;
        }
        if entry & CACHE_DISABLE != 0 {
            flags |= MapFlags::DEVICE;
        }
        // Bit 12 of a 2 MiB entry is PAT, not address.
        let mask = if level == 1 {
            ADDRESS_MASK & !0x1f_ffff
        } else {
            ADDRESS_MASK
        };
        Entry::Leaf {
            pa: entry & mask,
            flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_bits_match_the_sdm() {
        let e = X86_64::leaf(0x20_0000, 1, MapFlags::WRITE);
        assert_eq!(
            e,
            0x20_0000 | PRESENT | WRITABLE | ACCESSED | DIRTY | HUGE | NO_EXECUTE
        );
        let e = X86_64::leaf(0x5000, 0, MapFlags::EXECUTE | MapFlags::DEVICE);
        assert_eq!(
            e,
            0x5000 | PRESENT | ACCESSED | DIRTY | CACHE_DISABLE | WRITE_THROUGH
        );
    }

    #[test]
    fn decode_inverts_leaf() {
        for flags in [
            MapFlags::empty(),
            MapFlags::WRITE,
            MapFlags::EXECUTE | MapFlags::DEVICE,
        ] {
            assert_eq!(
                X86_64::decode(X86_64::leaf(0x1234_5000, 0, flags), 0),
                Entry::Leaf {
                    pa: 0x1234_5000,
                    flags
                }
            );
            assert_eq!(
                X86_64::decode(X86_64::leaf(0x4000_0000, 1, flags), 1),
                Entry::Leaf {
                    pa: 0x4000_0000,
                    flags
                }
            );
        }
    }
}

//! AArch64 stage-1 descriptors for the EL2 translation regime, 4 KiB granule
//! (Arm ARM D8.3 "Translation table descriptor formats", D8.4 "Memory access control").
//!
//! Attribute indexes refer to MAIR_EL2 as [`MAIR_EL2`] sets it.

use crate::paging::{Entry, MapFlags, PageTableFormat};

const VALID: u64 = 1 << 0;
/// Bit 1: table (levels 0-2) or page (level 3); clear for a block.
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDEX_SHIFT: u64 = 2;
const ATTR_NORMAL: u64 = 0;
const ATTR_DEVICE: u64 = 1;
/// AP[1]: RES1 in a one-privilege-level regime such as EL2.
const AP_RES1: u64 = 1 << 6;
/// AP[2]: read-only.
const READ_ONLY: u64 = 1 << 7;
/// SH = 0b11: inner shareable.
const INNER_SHAREABLE: u64 = 3 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
/// XN for the EL2 regime (the UXN position).
const EXECUTE_NEVER: u64 = 1 << 54;
/// Output address bits 47:12.
const ADDRESS_MASK: u64 = 0x0000_ffff_ffff_f000;

/// MAIR_EL2: index 0 = Normal, inner/outer write-back non-transient, read/write allocate;
/// index 1 = Device-nGnRE.
pub const MAIR_EL2: u64 = 0xff | (0x04 << 8);

pub struct Aarch64El2;

impl PageTableFormat for Aarch64El2 {
    const UPPER_HALF: bool = false;
    const BREAK_BEFORE_MAKE: bool = true;

    fn table(pa: u64) -> u64 {
        (pa & ADDRESS_MASK) | VALID | TABLE_OR_PAGE
    }

    fn leaf(pa: u64, level: usize, flags: MapFlags) -> u64 {
        let mut entry = (pa & ADDRESS_MASK) | VALID | ACCESS_FLAG | AP_RES1;
        if level == 0 {
            entry |= TABLE_OR_PAGE;
        }
        if flags.contains(MapFlags::DEVICE) {
            entry |= ATTR_DEVICE << ATTR_INDEX_SHIFT;
        } else {
            entry |= (ATTR_NORMAL << ATTR_INDEX_SHIFT) | INNER_SHAREABLE;
        }
        if !flags.contains(MapFlags::WRITE) {
            entry |= READ_ONLY;
        }
        if !flags.contains(MapFlags::EXECUTE) {
            entry |= EXECUTE_NEVER;
        }
        entry
    }

    fn decode(entry: u64, level: usize) -> Entry {
        if entry & VALID == 0 {
            return Entry::Invalid;
        }
        let is_table_bit = entry & TABLE_OR_PAGE != 0;
        if level > 0 && is_table_bit {
            return Entry::Table {
                pa: entry & ADDRESS_MASK,
            };
        }
        if level > 1 || (level == 0 && !is_table_bit) {
            // A block at level 2+ (1 GiB and up) is never made by us; a level-3 entry with
            // bit 1 clear is reserved. Treat both as unmapped rather than guess.
            return Entry::Invalid;
        }
        let mut flags = MapFlags::empty();
        if entry & READ_ONLY == 0 {
            flags |= MapFlags::WRITE;
        }
        if entry & EXECUTE_NEVER == 0 {
            flags |= MapFlags::EXECUTE;
        }
        if (entry >> ATTR_INDEX_SHIFT) & 7 == ATTR_DEVICE {
            flags |= MapFlags::DEVICE;
        }
        Entry::Leaf {
            pa: entry & ADDRESS_MASK,
            flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_and_page_descriptors_match_the_arm_arm() {
        // 2 MiB block, normal RW no-exec.
        let e = Aarch64El2::leaf(0x4020_0000, 1, MapFlags::WRITE);
        assert_eq!(
            e,
            0x4020_0000 | VALID | ACCESS_FLAG | AP_RES1 | INNER_SHAREABLE | EXECUTE_NEVER
        );
        // 4 KiB page, device, read-only.
        let e = Aarch64El2::leaf(0x0900_0000, 0, MapFlags::DEVICE);
        assert_eq!(
            e,
            0x0900_0000
                | VALID
                | TABLE_OR_PAGE
                | ACCESS_FLAG
                | AP_RES1
                | (1 << 2)
                | READ_ONLY
                | EXECUTE_NEVER
        );
    }

    #[test]
    fn decode_inverts_leaf() {
        for flags in [
            MapFlags::empty(),
            MapFlags::WRITE | MapFlags::EXECUTE,
            MapFlags::DEVICE | MapFlags::WRITE,
        ] {
            assert_eq!(
                Aarch64El2::decode(Aarch64El2::leaf(0x8000_1000, 0, flags), 0),
                Entry::Leaf {
                    pa: 0x8000_1000,
                    flags
                }
            );
            assert_eq!(
                Aarch64El2::decode(Aarch64El2::leaf(0x8020_0000, 1, flags), 1),
                Entry::Leaf {
                    pa: 0x8020_0000,
                    flags
                }
            );
        }
    }
}

//! Nested page tables: guest-physical to host-physical for the guest's RAM only, at the same
//! addresses (`guest::memory`). Whatever is not mapped here — Parapet's own region, device
//! holes — is a nested page fault, so the guest cannot reach Parapet.
//!
//! The format is long mode's 4-level one; nested walks count as user accesses, so every
//! entry carries U (AMD64 APM Vol. 2, §15.25.5).

use kernel::memory::{allocate_zeroed_frame, OutOfFrames};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const LARGE: u64 = 1 << 7;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const TABLE: u64 = PRESENT | WRITABLE | USER;
const PAGE: u64 = 1 << 12;
const LARGE_PAGE: u64 = 1 << 21;

/// Builds the tables for `ranges` ((start, end), page-aligned); returns the root (nCR3).
pub fn build(ranges: &[(u64, u64)]) -> Result<u64, OutOfFrames> {
    let root = allocate_zeroed_frame()?;
    for &(start, end) in ranges {
        let (start, end) = (start.next_multiple_of(PAGE), end & !(PAGE - 1));
        let mut at = start;
        while at < end {
            let large = at % LARGE_PAGE == 0 && end - at >= LARGE_PAGE;
            map(root, at, large)?;
            at += if large { LARGE_PAGE } else { PAGE };
        }
    }
    Ok(root)
}

/// Maps every 4 KiB page of `[start, end)` not mapped yet to the one frame `frame`,
/// read-only: a window that reads as that frame holds and drops writes (each a nested page
/// fault, which the exit handlers complete as an empty bus).
pub fn map_read_only(root: u64, (start, end): (u64, u64), frame: u64) -> Result<(), OutOfFrames> {
    let mut at = start.next_multiple_of(PAGE);
    while at < end & !(PAGE - 1) {
        if !mapped(root, at) {
            map_leaf(root, at, frame | PRESENT | USER, false)?;
        }
        at += PAGE;
    }
    Ok(())
}

/// Maps the page at `address` to itself: 2 MiB when `large`, else 4 KiB.
fn map(root: u64, address: u64, large: bool) -> Result<(), OutOfFrames> {
    let leaf = address | TABLE | if large { LARGE } else { 0 };
    map_leaf(root, address, leaf, large)
}

/// Whether a 4 KiB page at `address` is mapped already (by a 4 KiB or a 2 MiB leaf).
fn mapped(root: u64, address: u64) -> bool {
    let mut table = root;
    for level in (0..4).rev() {
        // SAFETY: as in `map_leaf`: table frames this module allocated, identity-mapped.
        let entry = unsafe { entry(table, address, level).read() };
        if entry & PRESENT == 0 {
            return false;
        }
        if level == 0 || entry & LARGE != 0 {
            return true;
        }
        table = entry & ADDRESS_MASK;
    }
    false
}

/// Installs `leaf` for `address` at the 2 MiB level when `large`, else the 4 KiB one.
fn map_leaf(root: u64, address: u64, leaf: u64, large: bool) -> Result<(), OutOfFrames> {
    let leaf_level = if large { 1 } else { 0 };
    let mut table = root;
    for level in (leaf_level + 1..4).rev() {
        let slot = entry(table, address, level);
        // SAFETY: `slot` is inside a table frame this module allocated, identity-mapped; no
        // guest runs on these tables while they are built.
        let current = unsafe { slot.read() };
        table = if current & PRESENT != 0 {
            current & ADDRESS_MASK
        } else {
            let next = allocate_zeroed_frame()?;
            // SAFETY: as above.
            unsafe { slot.write(next | TABLE) };
            next
        };
    }
    // SAFETY: as above.
    unsafe { entry(table, address, leaf_level).write(leaf) };
    Ok(())
}

/// The entry for `address` in the table at `table` of `level` (0: 4 KiB pages).
fn entry(table: u64, address: u64, level: u32) -> *mut u64 {
    let index = (address >> (12 + 9 * level)) & 0x1ff;
    (table + index * 8) as *mut u64
}

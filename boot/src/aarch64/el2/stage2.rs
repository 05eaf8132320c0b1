//! Stage-2 translation: the guest's intermediate physical addresses to physical ones, for its
//! RAM only and at the same addresses (`guest::ram`). Anything else — Parapet's region, the
//! GIC, the UART — is a stage-2 abort that reaches Parapet (Arm ARM D8 "The AArch64 Virtual
//! Memory System Architecture": D8.3 descriptors, D8.5 stage-2 attributes).
//!
//! 4 KiB granule, 39-bit IPA space (T0SZ 25) starting at level 1, 2 MiB blocks where a range
//! covers them, 4 KiB pages elsewhere.

use kernel::memory::{allocate_zeroed_frame, OutOfFrames};

const PAGE: u64 = 1 << 12;
const BLOCK: u64 = 1 << 21;
const VALID: u64 = 1 << 0;
/// Level 1-2: a table (with VALID); level 3: a page.
const TABLE_OR_PAGE: u64 = 1 << 1;
/// MemAttr[5:2] = 0b1111: Normal, outer and inner write-back (D8.5.5); S2AP[7:6] = 0b11:
/// read/write; SH[9:8] = 0b11: inner shareable; AF[10]: accessed. XN stays 0: executable.
const NORMAL_RW: u64 = (0b1111 << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10);
const ADDRESS_MASK: u64 = 0x0000_ffff_ffff_f000;

/// VTCR_EL2 for these tables (D23.2.186): T0SZ 25, SL0 1 (start at level 1), inner and
/// outer write-back walks, inner shareable, TG0 0b00 (4 KiB granule, no bits), RES1 bit 31,
/// and PS, the output size, as the CPU implements it (ID_AA64MMFR0_EL1.PARange) up to 40
/// bits.
pub fn vtcr(pa_range: u64) -> u64 {
    let ps = (pa_range & 0xf).min(0b010);
    25 | (1 << 6) | (1 << 8) | (1 << 10) | (0b11 << 12) | (ps << 16) | (1 << 31)
}
/// The guest's VMID (VTTBR_EL2 bits 55:48); 0 would share TLB entries with nothing else but
/// names "no VM" nowhere, 1 keeps it apart from any other user.
pub const VMID: u64 = 1;
/// The IPA space's end: 2^39. Guest RAM is recorded below it (`guest::ram`).
pub const IPA_LIMIT: u64 = 1 << 39;

/// Builds the tables for `ranges` ((start, end)); returns the level-1 table's address.
pub fn build(ranges: &[(u64, u64)]) -> Result<u64, OutOfFrames> {
    let root = allocate_zeroed_frame()?;
    for &(start, end) in ranges {
        let (start, end) = (
            start.next_multiple_of(PAGE),
            (end & !(PAGE - 1)).min(IPA_LIMIT),
        );
        let mut at = start;
        while at < end {
            let block = at % BLOCK == 0 && end - at >= BLOCK;
            map(root, at, block)?;
            at += if block { BLOCK } else { PAGE };
        }
    }
    Ok(root)
}

/// Maps the 2 MiB block or 4 KiB page at `address` to itself.
fn map(root: u64, address: u64, block: bool) -> Result<(), OutOfFrames> {
    let leaf_level = if block { 2 } else { 3 };
    let mut table = root;
    for level in 1..leaf_level {
        let slot = entry(table, address, level);
        // SAFETY: `slot` is inside a table frame this module allocated, identity-mapped; no
        // guest runs on these tables while they are built.
        let current = unsafe { slot.read() };
        table = if current & VALID != 0 && current & TABLE_OR_PAGE == 0 {
            // A block already maps this address (ranges that overlap): nothing to add.
            return Ok(());
        } else if current & VALID != 0 {
            current & ADDRESS_MASK
        } else {
            let next = allocate_zeroed_frame()?;
            // SAFETY: as above.
            unsafe { slot.write(next | TABLE_OR_PAGE | VALID) };
            next
        };
    }
    let kind = if block { 0 } else { TABLE_OR_PAGE };
    // SAFETY: as above.
    unsafe { entry(table, address, leaf_level).write(address | NORMAL_RW | kind | VALID) };
    Ok(())
}

/// The entry for `address` in the table at `table` of `level` (1: 1 GiB per entry).
fn entry(table: u64, address: u64, level: u32) -> *mut u64 {
    let index = (address >> (12 + 9 * (3 - level))) & 0x1ff;
    (table + index * 8) as *mut u64
}

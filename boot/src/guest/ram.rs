//! The guest's RAM as Parapet reaches it: the machine's RAM outside Parapet's own region, at
//! the same addresses (VTL0's view on hv_vtl, the nested page tables on svm, stage 2 on el2),
//! identity-mapped in Parapet's address space.
//!
//! A guest-physical address the guest hands us is checked against its RAM before every use:
//! a hostile page table or payload must not make Parapet read or write its own memory for it.

use alloc::vec::Vec;

use arch::memory_map::MemoryMap;
use spin::Once;

/// The guest's RAM ranges, (start, end), in address order.
static GUEST_RAM: Once<Vec<(u64, u64)>> = Once::new();

/// Records the guest's RAM: every RAM range of `map` below `limit`, less the `excluded`
/// ranges ((start, end): Parapet's own region, memory the loader keeps), sorted and with
/// overlaps in the map merged away.
pub fn record(map: &MemoryMap, excluded: &[(u64, u64)], limit: u64) {
    GUEST_RAM.call_once(|| {
        let mut ranges: Vec<(u64, u64)> = map
            .ram()
            .map(|r| (r.start, r.end.min(limit)))
            .filter(|(s, e)| s < e)
            .collect();
        for &cut in excluded {
            ranges = subtract(ranges, cut);
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in ranges {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    });
}

/// `ranges` less `[cut.0, cut.1)`.
fn subtract(ranges: Vec<(u64, u64)>, (cut_start, cut_end): (u64, u64)) -> Vec<(u64, u64)> {
    ranges
        .into_iter()
        .flat_map(|(s, e)| [(s, e.min(cut_start)), (s.max(cut_end), e)])
        .filter(|(s, e)| s < e)
        .collect()
}

/// The guest's RAM less the `cuts` ((start, end): what a loader has put there already), for
/// a loader looking for room.
pub fn without(cuts: &[(u64, u64)]) -> Vec<(u64, u64)> {
    cuts.iter()
        .fold(ranges().to_vec(), |free, &cut| subtract(free, cut))
}

/// The guest's RAM ranges, (start, end); empty before [`record`].
pub fn ranges() -> &'static [(u64, u64)] {
    GUEST_RAM.get().map_or(&[], Vec::as_slice)
}

/// Whether `[gpa, gpa + len)` lies inside one of the guest's RAM ranges.
pub fn contains(gpa: u64, len: u64) -> bool {
    let Some(end) = gpa.checked_add(len) else {
        return false;
    };
    GUEST_RAM
        .get()
        .is_some_and(|ranges| ranges.iter().any(|&(s, e)| s <= gpa && end <= e))
}

/// An access outside the guest's RAM or through an unmapped linear address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub address: u64,
}

/// Copies guest RAM at `gpa` into `out`. (The x86 page walker's; aarch64 has its guest's
/// accesses described by syndromes and reads nothing for it yet.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub fn read(gpa: u64, out: &mut [u8]) -> Result<(), Fault> {
    if !contains(gpa, out.len() as u64) {
        return Err(Fault { address: gpa });
    }
    for (i, byte) in out.iter_mut().enumerate() {
        // SAFETY: the guest's RAM is identity-mapped in the kernel space and checked above to
        // lie outside Parapet's own memory; the guest may change it concurrently, so each
        // byte is read once, volatile.
        *byte = unsafe { ((gpa + i as u64) as *const u8).read_volatile() };
    }
    Ok(())
}

/// Copies `bytes` into guest RAM at `gpa`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub fn write(gpa: u64, bytes: &[u8]) -> Result<(), Fault> {
    if !contains(gpa, bytes.len() as u64) {
        return Err(Fault { address: gpa });
    }
    for (i, &byte) in bytes.iter().enumerate() {
        // SAFETY: as in `read`: guest RAM, identity-mapped, outside Parapet's memory.
        unsafe { ((gpa + i as u64) as *mut u8).write_volatile(byte) };
    }
    Ok(())
}

/// Fills guest RAM with `bytes` (`None`: zeros) at `gpa` in bulk, for loading before the
/// guest runs: with nothing reading or writing it concurrently, plain copies are sound, and they
/// are one instruction each where every instruction is emulated.
pub fn load(gpa: u64, bytes: Option<&[u8]>, len: u64) -> Result<(), Fault> {
    if !contains(gpa, len) || bytes.is_some_and(|b| b.len() as u64 != len) {
        return Err(Fault { address: gpa });
    }
    // SAFETY: `[gpa, gpa + len)` is guest RAM (checked), identity-mapped, outside Parapet's
    // memory, and the guest is not running yet (the caller's contract), so nothing else
    // touches it.
    unsafe {
        match bytes {
            Some(b) => core::ptr::copy_nonoverlapping(b.as_ptr(), gpa as *mut u8, b.len()),
            None => core::ptr::write_bytes(gpa as *mut u8, 0, len as usize),
        }
    }
    Ok(())
}

/// Copies guest RAM at `gpa` into `out` in bulk, under `load`'s contract: the guest is not
/// running yet.
pub fn load_from(gpa: u64, out: &mut [u8]) -> Result<(), Fault> {
    if !contains(gpa, out.len() as u64) {
        return Err(Fault { address: gpa });
    }
    // SAFETY: as in `load`: checked guest RAM, identity-mapped, the guest not running.
    unsafe { core::ptr::copy_nonoverlapping(gpa as *const u8, out.as_mut_ptr(), out.len()) };
    Ok(())
}

/// Runs `f` over guest RAM at `gpa` (`len` bytes) in place, under `load`'s contract: the guest
/// is not running yet, so nothing changes the bytes while `f` reads them. For payloads too
/// large to copy into Parapet's heap (a Linux kernel).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub fn inspect<R>(gpa: u64, len: u64, f: impl FnOnce(&[u8]) -> R) -> Result<R, Fault> {
    if !contains(gpa, len) {
        return Err(Fault { address: gpa });
    }
    // SAFETY: as in `load`: checked guest RAM, identity-mapped, the guest not running; the
    // slice lives only for the call.
    let bytes = unsafe { core::slice::from_raw_parts(gpa as *const u8, len as usize) };
    Ok(f(bytes))
}

//! The guest's memory as Parapet reaches it: guest-physical RAM is the machine's RAM outside
//! Parapet's own region, at the same addresses (VTL0's view on hv_vtl, the nested page tables
//! on svm), identity-mapped in Parapet's address space; guest-linear addresses go through the
//! guest's own page tables, for the string port I/O Parapet emulates.
//!
//! A guest-physical address the guest hands us is checked against its RAM before every use:
//! a hostile page table or payload must not make Parapet read or write its own memory for it.

use alloc::vec::Vec;

use arch::memory_map::MemoryMap;
use spin::Once;

/// The guest's RAM ranges, (start, end), in address order.
static GUEST_RAM: Once<Vec<(u64, u64)>> = Once::new();

const PAGE: u64 = 4096;
const CR0_PG: u64 = 1 << 31;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
/// Page-table entry bits (Intel SDM Vol. 3A §4.5).
const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const LARGE: u64 = 1 << 7;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Records the guest's RAM: every RAM range of `map` less Parapet's region `own` (start, end).
pub fn record(map: &MemoryMap, own: (u64, u64)) {
    GUEST_RAM.call_once(|| {
        let mut ranges = Vec::new();
        for r in map.ram() {
            for (start, end) in [(r.start, r.end.min(own.0)), (r.start.max(own.1), r.end)] {
                if start < end {
                    ranges.push((start, end));
                }
            }
        }
        ranges
    });
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

/// Copies guest RAM at `gpa` into `out`.
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

/// The guest's paging registers.
#[derive(Clone, Copy, Debug)]
pub struct Paging {
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
}

impl Paging {
    pub fn new(cr0: u64, cr3: u64, cr4: u64, efer: u64) -> Self {
        Self {
            cr0,
            cr3,
            cr4,
            efer,
        }
    }

    /// The guest-physical address of `linear` for an access by `user` code, writing or not.
    /// Without paging it is the same address; with 4-level long-mode paging the walk checks
    /// presence, and write and user permission at every level. Other modes (legacy 32-bit,
    /// PAE without long mode, 5-level) are not walked: `None`.
    pub fn translate(&self, linear: u64, write: bool, user: bool) -> Option<u64> {
        if self.cr0 & CR0_PG == 0 {
            return Some(linear & 0xffff_ffff);
        }
        if self.efer & EFER_LMA == 0 || self.cr4 & CR4_LA57 != 0 {
            return None;
        }
        let mut table = self.cr3 & ADDRESS_MASK;
        for level in (0..4).rev() {
            let index = (linear >> (12 + 9 * level)) & 0x1ff;
            let mut entry = [0u8; 8];
            read(table + index * 8, &mut entry).ok()?;
            let entry = u64::from_le_bytes(entry);
            if entry & PRESENT == 0
                || (write && entry & WRITABLE == 0)
                || (user && entry & USER == 0)
            {
                return None;
            }
            let frame = entry & ADDRESS_MASK;
            // A large page at the PDPT (1 GiB) or PD (2 MiB) level ends the walk.
            if level == 0 || (entry & LARGE != 0 && level <= 2) {
                let page_bits = 12 + 9 * level;
                let base = frame & !((1u64 << page_bits) - 1);
                return Some(base | (linear & ((1u64 << page_bits) - 1)));
            }
            table = frame;
        }
        None
    }

    /// The first bytes of the instruction at `linear` (an instruction is at most 15): all
    /// 15 if they can be read, else those up to the end of the first page, else none. The
    /// count comes back with them.
    pub fn fetch(&self, linear: u64, user: bool) -> ([u8; 15], usize) {
        let mut bytes = [0u8; 15];
        let first_page = (PAGE - linear % PAGE).min(15) as usize;
        if self
            .read_linear(linear, &mut bytes[..first_page], user)
            .is_err()
        {
            return (bytes, 0);
        }
        let rest = linear.wrapping_add(first_page as u64);
        if self
            .read_linear(rest, &mut bytes[first_page..], user)
            .is_ok()
        {
            (bytes, 15)
        } else {
            (bytes, first_page)
        }
    }

    /// Reads `out.len()` bytes at `linear`, page by page.
    pub fn read_linear(&self, linear: u64, out: &mut [u8], user: bool) -> Result<(), Fault> {
        let mut done = 0;
        while done < out.len() {
            let at = linear.wrapping_add(done as u64);
            let n = ((PAGE - at % PAGE) as usize).min(out.len() - done);
            let gpa = self
                .translate(at, false, user)
                .ok_or(Fault { address: at })?;
            read(gpa, &mut out[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Writes `bytes` at `linear`, page by page.
    pub fn write_linear(&self, linear: u64, bytes: &[u8], user: bool) -> Result<(), Fault> {
        let mut done = 0;
        while done < bytes.len() {
            let at = linear.wrapping_add(done as u64);
            let n = ((PAGE - at % PAGE) as usize).min(bytes.len() - done);
            let gpa = self
                .translate(at, true, user)
                .ok_or(Fault { address: at })?;
            write(gpa, &bytes[done..done + n])?;
            done += n;
        }
        Ok(())
    }
}

//! Guest-linear addresses through the guest's own x86 page tables, for the string port I/O,
//! string moves and instruction fetches Parapet does for it; every table and byte is read from guest RAM
//! through `guest::ram`'s checks.

use crate::guest::ram::{read, write, Fault};

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
    /// presence, and write and user permission at every level, with 4 or (CR4.LA57) 5 levels.
    /// Other modes (legacy 32-bit, PAE without long mode) are not walked: `None`.
    pub fn translate(&self, linear: u64, write: bool, user: bool) -> Option<u64> {
        if self.cr0 & CR0_PG == 0 {
            return Some(linear & 0xffff_ffff);
        }
        if self.efer & EFER_LMA == 0 {
            return None;
        }
        let levels = if self.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
        let mut table = self.cr3 & ADDRESS_MASK;
        for level in (0..levels).rev() {
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

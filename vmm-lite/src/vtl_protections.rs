//! VTL0's access to each guest page (TLFS §15.9, HvCallModifyVtlProtectionMask), and the KVM
//! memory slots that enforce it in the VTL0 view.
//!
//! A page starts readable, writable and executable for VTL0, except the paravisor's region,
//! which starts with no access. VTL2 changes pages with ModifyVtlProtectionMask. KVM slots can
//! map a range read-write, read-only (`KVM_MEM_READONLY`: writes exit) or not at all (every
//! access exits); they cannot forbid execution, so the execute bits are kept and reported but
//! not enforced here.

use std::collections::BTreeMap;

use hvdef::hypercall::map_flags;
use hvdef::status::HvStatus;

pub const PAGE: u64 = 4096;

/// A run of pages with one kind of mapping: (start, size, read_only).
pub type SlotRun = (u64, u64, bool);

#[derive(Debug)]
pub struct Protections {
    ram_pages: u64,
    /// Pages whose access differs from the default of their region, by page number.
    overrides: BTreeMap<u64, u32>,
    /// The paravisor's pages, as (first, end) page numbers.
    hidden: Vec<(u64, u64)>,
}

impl Protections {
    /// `ram` bytes of RAM with `hidden` (start, size) ranges VTL0 starts without.
    pub fn new(ram: u64, hidden: &[(u64, u64)]) -> Self {
        let hidden = hidden
            .iter()
            .filter(|(_, size)| *size > 0)
            .map(|&(start, size)| {
                let end = start.saturating_add(size).min(ram);
                (start / PAGE, end.div_ceil(PAGE))
            })
            .collect();
        Self {
            ram_pages: ram / PAGE,
            overrides: BTreeMap::new(),
            hidden,
        }
    }

    fn default_access(&self, page: u64) -> u32 {
        if self.hidden.iter().any(|&(s, e)| s <= page && page < e) {
            0
        } else {
            map_flags::ALL
        }
    }

    /// VTL0's access to page number `page`.
    pub fn access(&self, page: u64) -> u32 {
        self.overrides
            .get(&page)
            .copied()
            .unwrap_or_else(|| self.default_access(page))
    }

    /// Checks a ModifyVtlProtectionMask request: only the four access bits, and no write
    /// without read (no page table can express it).
    pub fn check_flags(flags: u32) -> Result<(), HvStatus> {
        if flags & !map_flags::ALL != 0
            || (flags & map_flags::WRITABLE != 0 && flags & map_flags::READABLE == 0)
        {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        Ok(())
    }

    /// Sets `page`'s access to `flags` (checked by [`Self::check_flags`]).
    pub fn set(&mut self, page: u64, flags: u32) -> Result<(), HvStatus> {
        if page >= self.ram_pages {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        if flags == self.default_access(page) {
            self.overrides.remove(&page);
        } else {
            self.overrides.insert(page, flags);
        }
        Ok(())
    }

    /// The slots that map VTL0's view: every readable page, read-only unless writable,
    /// merged into the fewest runs.
    pub fn slot_runs(&self) -> Vec<SlotRun> {
        // Only pages where the access may change need looking at one by one: the edges of
        // hidden ranges and overridden pages. Between them the access is constant.
        let mut edges: Vec<u64> = vec![0, self.ram_pages];
        for &(s, e) in &self.hidden {
            edges.extend([s, e]);
        }
        for &page in self.overrides.keys() {
            edges.extend([page, page + 1]);
        }
        edges.retain(|&p| p <= self.ram_pages);
        edges.sort_unstable();
        edges.dedup();
        let mut runs: Vec<SlotRun> = Vec::new();
        for pair in edges.windows(2) {
            let (first, end) = (pair[0], pair[1]);
            let access = self.access(first);
            if access & map_flags::READABLE == 0 {
                continue;
            }
            let read_only = access & map_flags::WRITABLE == 0;
            match runs.last_mut() {
                Some((start, size, ro)) if *ro == read_only && *start + *size == first * PAGE => {
                    *size += (end - first) * PAGE;
                }
                _ => runs.push((first * PAGE, (end - first) * PAGE, read_only)),
            }
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_hidden_region_starts_unmapped_and_the_rest_read_write() {
        let p = Protections::new(4 * MIB, &[(MIB, MIB)]);
        assert_eq!(p.slot_runs(), [(0, MIB, false), (2 * MIB, 2 * MIB, false)]);
        assert_eq!(p.access(MIB / PAGE), 0);
        assert_eq!(p.access(0), map_flags::ALL);
    }

    #[test]
    fn hidden_ranges_widen_to_pages_and_may_overlap_or_pass_the_end() {
        let runs = |hidden: &[(u64, u64)]| {
            Protections::new(4 * MIB, hidden)
                .slot_runs()
                .into_iter()
                .map(|(s, n, _)| (s, n))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            runs(&[(0x1800, 0x10), (0x9000, 0)]),
            [(0, 0x1000), (0x2000, 4 * MIB - 0x2000)]
        );
        assert_eq!(
            runs(&[
                (3 * MIB, 2 * MIB),
                (0, 0x1000),
                (0x3000, 0x2000),
                (0x4000, 0x2000)
            ]),
            [(0x1000, 0x2000), (0x6000, 3 * MIB - 0x6000)]
        );
        assert_eq!(runs(&[(0, u64::MAX)]), []);
    }

    #[test]
    fn changed_pages_split_slots_and_restoring_them_merges_again() {
        let mut p = Protections::new(4 * MIB, &[(MIB, MIB)]);
        p.set(5, map_flags::READABLE).unwrap();
        p.set(6, 0).unwrap();
        p.set(MIB / PAGE, map_flags::ALL).unwrap(); // grant one paravisor page
        assert_eq!(
            p.slot_runs(),
            [
                (0, 5 * PAGE, false),
                (5 * PAGE, PAGE, true),
                // The granted paravisor page joins the run below it.
                (7 * PAGE, MIB + PAGE - 7 * PAGE, false),
                (2 * MIB, 2 * MIB, false),
            ]
        );
        for page in [5, 6] {
            p.set(page, map_flags::ALL).unwrap();
        }
        p.set(MIB / PAGE, 0).unwrap();
        assert_eq!(p.slot_runs(), [(0, MIB, false), (2 * MIB, 2 * MIB, false)]);
        assert!(p.overrides.is_empty(), "defaults are not stored");
    }

    #[test]
    fn bad_flags_and_pages_are_refused() {
        assert_eq!(
            Protections::check_flags(map_flags::WRITABLE),
            Err(HvStatus::INVALID_PARAMETER),
            "write without read"
        );
        assert_eq!(
            Protections::check_flags(1 << 4),
            Err(HvStatus::INVALID_PARAMETER)
        );
        assert_eq!(Protections::check_flags(0), Ok(()));
        assert_eq!(
            Protections::check_flags(map_flags::READABLE | map_flags::KERNEL_EXECUTABLE),
            Ok(())
        );
        let mut p = Protections::new(MIB, &[]);
        assert_eq!(p.set(MIB / PAGE, 0), Err(HvStatus::INVALID_PARAMETER));
    }
}

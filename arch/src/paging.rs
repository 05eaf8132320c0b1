//! A four-level page-table walker shared by x86_64 and aarch64.
//!
//! Both architectures, with a 4 KiB granule and 48-bit virtual addresses, index four levels
//! with nine bits each (x86_64: SDM Vol. 3A §4.5; Arm ARM D8.2 "Translation table walk").
//! Only the entry encodings differ, and they live behind [`PageTableFormat`]. Table memory is
//! reached through [`TableMemory`], so host tests run the same walker over a `Vec`.

use bitflags::bitflags;

/// Entries per table (4 KiB table, 8-byte entries).
pub const ENTRIES: usize = 512;
pub const PAGE_4K: u64 = 4096;
pub const PAGE_2M: u64 = 2 * 1024 * 1024;
/// Level of the root table; level 0 holds 4 KiB pages, level 1 holds 2 MiB blocks.
const ROOT_LEVEL: usize = 3;

bitflags! {
    /// What a mapping allows. Read access is implied by being mapped.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MapFlags: u32 {
        const WRITE = 1 << 0;
        const EXECUTE = 1 << 1;
        /// Device memory: uncached, no speculation, no merging.
        const DEVICE = 1 << 2;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    Size4K,
    Size2M,
}

impl PageSize {
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => PAGE_4K,
            PageSize::Size2M => PAGE_2M,
        }
    }

    const fn level(self) -> usize {
        match self {
            PageSize::Size4K => 0,
            PageSize::Size2M => 1,
        }
    }
}

/// What one decoded entry means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Invalid,
    Table { pa: u64 },
    Leaf { pa: u64, flags: MapFlags },
}

/// The bit layout of page-table entries for one architecture.
pub trait PageTableFormat {
    /// Whether the tables also translate the upper (sign-extended) half of the address space.
    /// x86_64 does (one CR3 for both halves); EL2 without VHE has only TTBR0, so on aarch64 an
    /// upper-half address would silently alias a lower one.
    const UPPER_HALF: bool;
    /// Whether replacing a valid entry by a different kind (block by table) needs the entry
    /// invalidated and flushed first (Arm ARM D8.16.1 "Using break-before-make").
    const BREAK_BEFORE_MAKE: bool;
    /// Encodes a pointer to a next-level table.
    fn table(pa: u64) -> u64;
    /// Encodes a leaf: a 4 KiB page at level 0 or a 2 MiB block at level 1.
    fn leaf(pa: u64, level: usize, flags: MapFlags) -> u64;
    /// Decodes an entry found at `level`.
    fn decode(entry: u64, level: usize) -> Entry;
}

/// Access to the memory that holds page tables.
pub trait TableMemory {
    /// A zeroed, 4 KiB-aligned frame for a new table, or `None` when memory is exhausted.
    fn allocate_table(&mut self) -> Option<u64>;
    /// The table at physical address `pa`.
    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES];
    /// Drops cached translations of [va, va + size) on every CPU (break-before-make).
    fn flush(&mut self, _va: u64, _size: u64) {}
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// An address or size is not a multiple of the page size asked for.
    Misaligned,
    /// Part of the range is already mapped.
    AlreadyMapped { va: u64 },
    /// Part of the range is not mapped.
    NotMapped { va: u64 },
    /// No frame was left for a page table.
    OutOfMemory,
    /// The address is outside the 48-bit range the tables translate.
    OutOfRange { va: u64 },
}

impl core::fmt::Display for PagingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PagingError::Misaligned => write!(f, "address or size not aligned to the page size"),
            PagingError::AlreadyMapped { va } => write!(f, "{va:#x} is already mapped"),
            PagingError::NotMapped { va } => write!(f, "{va:#x} is not mapped"),
            PagingError::OutOfMemory => write!(f, "no frame left for a page table"),
            PagingError::OutOfRange { va } => write!(f, "{va:#x} is outside the translated range"),
        }
    }
}

/// A translation found by [`PageTable::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub pa: u64,
    pub flags: MapFlags,
    pub size: PageSize,
}

/// One address space's tables, rooted at `root`.
pub struct PageTable<F> {
    root: u64,
    _format: core::marker::PhantomData<F>,
}

fn index(va: u64, level: usize) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

fn level_size(level: usize) -> u64 {
    1 << (12 + 9 * level)
}

/// Both formats translate 48 bits: bits 63..47 must all be clear, or (where the format has an
/// upper half) all set.
fn check_range<F: PageTableFormat>(va: u64) -> Result<(), PagingError> {
    let high = va >> 47;
    if high == 0 || (F::UPPER_HALF && high == 0x1ffff) {
        Ok(())
    } else {
        Err(PagingError::OutOfRange { va })
    }
}

/// Checks that [va, va + size) and [pa, pa + size) neither wrap nor leave the translated range.
fn check_span<F: PageTableFormat>(va: u64, pa: u64, size: u64) -> Result<(), PagingError> {
    check_range::<F>(va)?;
    let last = va
        .checked_add(size.saturating_sub(1))
        .ok_or(PagingError::OutOfRange { va })?;
    check_range::<F>(last)?;
    // Same 48-bit half on both ends: no crossing of the non-canonical hole.
    if (va >> 47) != (last >> 47) {
        return Err(PagingError::OutOfRange { va: last });
    }
    pa.checked_add(size)
        .ok_or(PagingError::OutOfRange { va: pa })?;
    Ok(())
}

impl<F: PageTableFormat> PageTable<F> {
    /// Creates an empty address space with a fresh root table.
    pub fn new(mem: &mut impl TableMemory) -> Result<Self, PagingError> {
        let root = mem.allocate_table().ok_or(PagingError::OutOfMemory)?;
        Ok(Self::from_root(root))
    }

    /// Wraps existing tables rooted at `root`.
    pub fn from_root(root: u64) -> Self {
        Self {
            root,
            _format: core::marker::PhantomData,
        }
    }

    /// Physical address of the root table (what CR3 / TTBR0 holds).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps `[va, va + size)` to `[pa, pa + size)` with pages of `page`.
    ///
    /// Fails without changing anything if any page of the range is already mapped.
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        pa: u64,
        size: u64,
        page: PageSize,
        flags: MapFlags,
    ) -> Result<(), PagingError> {
        let step = page.bytes();
        if !va.is_multiple_of(step) || !pa.is_multiple_of(step) || !size.is_multiple_of(step) {
            return Err(PagingError::Misaligned);
        }
        check_span::<F>(va, pa, size)?;
        let level = page.level();
        let mut offset = 0;
        while offset < size {
            if !self.is_free(mem, va + offset, level) {
                return Err(PagingError::AlreadyMapped { va: va + offset });
            }
            offset += step;
        }
        let mut offset = 0;
        while offset < size {
            match self.slot(mem, va + offset, level, true) {
                Ok(slot) => *slot = F::leaf(pa + offset, level, flags),
                Err(e) => {
                    // Out of table memory part-way: take back what this call mapped.
                    let mut undo = 0;
                    while undo < offset {
                        if let Ok(slot) = self.slot(mem, va + undo, level, false) {
                            *slot = 0;
                        }
                        undo += step;
                    }
                    return Err(e);
                }
            }
            offset += step;
        }
        Ok(())
    }

    /// Whether a leaf at `level` for `va` could be written without replacing anything: the
    /// walk reaches an empty entry (or an absent table) with no leaf on the way, and at
    /// `level` itself there is neither a leaf nor a table of smaller pages.
    fn is_free(&self, mem: &mut impl TableMemory, va: u64, level: usize) -> bool {
        let mut table = self.root;
        let mut at = ROOT_LEVEL;
        loop {
            let entry = mem.table(table)[index(va, at)];
            match F::decode(entry, at) {
                Entry::Invalid => return true,
                _ if at == level => return false,
                Entry::Table { pa } => {
                    table = pa;
                    at -= 1;
                }
                Entry::Leaf { .. } => return false,
            }
        }
    }

    /// Removes the mappings of `[va, va + size)`; 2 MiB blocks that the range only partly covers
    /// are split first. Fails without changing anything if a page of the range is not mapped.
    ///
    /// The caller flushes the TLB for the range.
    pub fn unmap(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        size: u64,
    ) -> Result<(), PagingError> {
        self.for_each_4k_piece(mem, va, size, |_, _| None)
    }

    /// Changes the permissions of `[va, va + size)`, splitting blocks the range only partly covers.
    ///
    /// The caller flushes the TLB for the range.
    pub fn protect(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        size: u64,
        flags: MapFlags,
    ) -> Result<(), PagingError> {
        self.for_each_4k_piece(mem, va, size, |pa, _| Some(flags).map(|f| (pa, f)))
    }

    /// The translation of `va`, if it is mapped.
    pub fn translate(&self, mem: &mut impl TableMemory, va: u64) -> Option<Translation> {
        check_range::<F>(va).ok()?;
        let mut table = self.root;
        let mut level = ROOT_LEVEL;
        loop {
            let entry = mem.table(table)[index(va, level)];
            match F::decode(entry, level) {
                Entry::Invalid => return None,
                Entry::Table { pa } if level > 0 => {
                    table = pa;
                    level -= 1;
                }
                Entry::Table { .. } => return None,
                Entry::Leaf { pa, flags } => {
                    let size = if level == 0 {
                        PageSize::Size4K
                    } else {
                        PageSize::Size2M
                    };
                    let offset = va & (level_size(level) - 1);
                    return Some(Translation {
                        pa: pa + offset,
                        flags,
                        size,
                    });
                }
            }
        }
    }

    /// Applies `change` to every mapped piece of the range: each whole 2 MiB block the range
    /// covers, each 4 KiB page otherwise (splitting partly covered blocks). `change` returns the
    /// new (pa, flags), or `None` to unmap.
    fn for_each_4k_piece(
        &mut self,
        mem: &mut impl TableMemory,
        va: u64,
        size: u64,
        mut change: impl FnMut(u64, MapFlags) -> Option<(u64, MapFlags)>,
    ) -> Result<(), PagingError> {
        if !va.is_multiple_of(PAGE_4K) || !size.is_multiple_of(PAGE_4K) {
            return Err(PagingError::Misaligned);
        }
        check_span::<F>(va, 0, size)?;
        let end = va + size;
        let mut at = va;
        while at < end {
            let t = self
                .translate(mem, at)
                .ok_or(PagingError::NotMapped { va: at })?;
            at += if t.size == PageSize::Size2M {
                PAGE_2M - (at % PAGE_2M)
            } else {
                PAGE_4K
            };
        }
        let mut at = va;
        while at < end {
            let whole_block = at.is_multiple_of(PAGE_2M) && end - at >= PAGE_2M;
            let t = self
                .translate(mem, at)
                .ok_or(PagingError::NotMapped { va: at })?;
            let level = match t.size {
                PageSize::Size2M if whole_block => 1,
                PageSize::Size2M => {
                    self.split_block(mem, at)?;
                    0
                }
                PageSize::Size4K => 0,
            };
            let slot = self.slot(mem, at, level, false)?;
            *slot = match change(t.pa, t.flags) {
                Some((pa, flags)) => F::leaf(pa, level, flags),
                None => 0,
            };
            at += level_size(level);
        }
        Ok(())
    }

    /// Replaces the 2 MiB block holding `va` with a table of 512 equivalent 4 KiB pages.
    fn split_block(&mut self, mem: &mut impl TableMemory, va: u64) -> Result<(), PagingError> {
        let block_va = va & !(PAGE_2M - 1);
        let t = self
            .translate(mem, block_va)
            .ok_or(PagingError::NotMapped { va })?;
        let new = mem.allocate_table().ok_or(PagingError::OutOfMemory)?;
        let table = mem.table(new);
        for (i, entry) in table.iter_mut().enumerate() {
            *entry = F::leaf(t.pa + i as u64 * PAGE_4K, 0, t.flags);
        }
        if F::BREAK_BEFORE_MAKE {
            // Until the table is in, the block is unmapped: a CPU touching it meanwhile
            // faults, so callers split only mappings no other CPU is using.
            *self.slot(mem, block_va, 1, false)? = 0;
            mem.flush(block_va, PAGE_2M);
        }
        *self.slot(mem, block_va, 1, false)? = F::table(new);
        Ok(())
    }

    /// The entry for `va` at `level`, creating intermediate tables when `create` is set.
    fn slot<'m>(
        &mut self,
        mem: &'m mut impl TableMemory,
        va: u64,
        level: usize,
        create: bool,
    ) -> Result<&'m mut u64, PagingError> {
        let mut table = self.root;
        let mut at = ROOT_LEVEL;
        while at > level {
            let i = index(va, at);
            let entry = mem.table(table)[i];
            table = match F::decode(entry, at) {
                Entry::Table { pa } => pa,
                Entry::Invalid if create => {
                    let pa = mem.allocate_table().ok_or(PagingError::OutOfMemory)?;
                    mem.table(table)[i] = F::table(pa);
                    pa
                }
                Entry::Invalid => return Err(PagingError::NotMapped { va }),
                Entry::Leaf { .. } => return Err(PagingError::AlreadyMapped { va }),
            };
            at -= 1;
        }
        Ok(&mut mem.table(table)[index(va, level)])
    }
}

#[cfg(test)]
pub(crate) mod test_memory {
    use super::*;
    use std::collections::BTreeMap;

    /// Page tables in host memory, with made-up physical addresses.
    #[derive(Default)]
    pub struct HostTables {
        pub tables: BTreeMap<u64, Box<[u64; ENTRIES]>>,
        pub limit: Option<usize>,
    }

    impl TableMemory for HostTables {
        fn allocate_table(&mut self) -> Option<u64> {
            if self.limit.is_some_and(|l| self.tables.len() >= l) {
                return None;
            }
            let pa = 0x1000_0000 + self.tables.len() as u64 * PAGE_4K;
            self.tables.insert(pa, Box::new([0; ENTRIES]));
            Some(pa)
        }

        fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
            self.tables
                .get_mut(&pa)
                .expect("walker followed a pointer to a table it never made")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_memory::HostTables;
    use super::*;
    use crate::aarch64::page_format::Aarch64El2;
    use crate::x86_64::page_format::X86_64;

    fn both(test: fn(&mut dyn FnMut() -> Box<dyn Walker>)) {
        test(&mut || Box::new(Harness::<X86_64>::new()));
        test(&mut || Box::new(Harness::<Aarch64El2>::new()));
    }

    /// Object-safe view of a page table plus its memory, so one test body covers both formats.
    trait Walker {
        fn map(
            &mut self,
            va: u64,
            pa: u64,
            size: u64,
            page: PageSize,
            f: MapFlags,
        ) -> Result<(), PagingError>;
        fn unmap(&mut self, va: u64, size: u64) -> Result<(), PagingError>;
        fn protect(&mut self, va: u64, size: u64, f: MapFlags) -> Result<(), PagingError>;
        fn translate(&mut self, va: u64) -> Option<Translation>;
        fn tables(&self) -> usize;
    }

    struct Harness<F> {
        mem: HostTables,
        pt: PageTable<F>,
    }

    impl<F: PageTableFormat> Harness<F> {
        fn new() -> Self {
            let mut mem = HostTables::default();
            let pt = PageTable::new(&mut mem).unwrap();
            Self { mem, pt }
        }
    }

    impl<F: PageTableFormat> Walker for Harness<F> {
        fn map(
            &mut self,
            va: u64,
            pa: u64,
            size: u64,
            page: PageSize,
            f: MapFlags,
        ) -> Result<(), PagingError> {
            self.pt.map(&mut self.mem, va, pa, size, page, f)
        }
        fn unmap(&mut self, va: u64, size: u64) -> Result<(), PagingError> {
            self.pt.unmap(&mut self.mem, va, size)
        }
        fn protect(&mut self, va: u64, size: u64, f: MapFlags) -> Result<(), PagingError> {
            self.pt.protect(&mut self.mem, va, size, f)
        }
        fn translate(&mut self, va: u64) -> Option<Translation> {
            self.pt.translate(&mut self.mem, va)
        }
        fn tables(&self) -> usize {
            self.mem.tables.len()
        }
    }

    const RW: MapFlags = MapFlags::WRITE;

    #[test]
    fn mapped_4k_pages_translate_with_offset_and_flags() {
        both(|make| {
            let mut w = make();
            w.map(0x40_0000, 0x9000, 2 * PAGE_4K, PageSize::Size4K, RW)
                .unwrap();
            let t = w.translate(0x40_1234).unwrap();
            assert_eq!(
                t,
                Translation {
                    pa: 0xa234,
                    flags: RW,
                    size: PageSize::Size4K
                }
            );
            assert_eq!(w.translate(0x40_2000), None);
            // Root, one table per lower level.
            assert_eq!(w.tables(), 4);
        });
    }

    #[test]
    fn two_mib_blocks_use_one_table_less() {
        both(|make| {
            let mut w = make();
            w.map(
                0x4000_0000,
                0x8000_0000,
                2 * PAGE_2M,
                PageSize::Size2M,
                MapFlags::EXECUTE,
            )
            .unwrap();
            let t = w.translate(0x4020_0010).unwrap();
            assert_eq!(t.pa, 0x8020_0010);
            assert_eq!(t.size, PageSize::Size2M);
            assert_eq!(t.flags, MapFlags::EXECUTE);
            assert_eq!(w.tables(), 3);
        });
    }

    #[test]
    fn mapping_over_an_existing_page_fails_and_changes_nothing() {
        both(|make| {
            let mut w = make();
            w.map(0x3000, 0x3000, PAGE_4K, PageSize::Size4K, RW)
                .unwrap();
            let err = w
                .map(0x2000, 0x7000, 2 * PAGE_4K, PageSize::Size4K, RW)
                .unwrap_err();
            assert_eq!(err, PagingError::AlreadyMapped { va: 0x3000 });
            assert_eq!(w.translate(0x2000), None);
            assert_eq!(w.translate(0x3000).unwrap().pa, 0x3000);
        });
    }

    #[test]
    fn misaligned_requests_are_refused() {
        both(|make| {
            let mut w = make();
            assert_eq!(
                w.map(0x1001, 0, PAGE_4K, PageSize::Size4K, RW),
                Err(PagingError::Misaligned)
            );
            assert_eq!(
                w.map(0x1000, 0, PAGE_2M, PageSize::Size2M, RW),
                Err(PagingError::Misaligned)
            );
            assert_eq!(w.unmap(0x1000, 10), Err(PagingError::Misaligned));
        });
    }

    #[test]
    fn non_canonical_addresses_are_out_of_range() {
        both(|make| {
            let mut w = make();
            let va = 0x0000_8000_0000_0000;
            assert_eq!(
                w.map(va, 0, PAGE_4K, PageSize::Size4K, RW),
                Err(PagingError::OutOfRange { va })
            );
            assert_eq!(w.translate(va), None);
        });
    }

    #[test]
    fn unmap_removes_pages_and_refuses_holes() {
        both(|make| {
            let mut w = make();
            w.map(0x10_0000, 0x10_0000, 4 * PAGE_4K, PageSize::Size4K, RW)
                .unwrap();
            w.unmap(0x10_1000, PAGE_4K).unwrap();
            assert_eq!(w.translate(0x10_1000), None);
            assert!(w.translate(0x10_2000).is_some());
            // A range with a hole is refused whole.
            assert_eq!(
                w.unmap(0x10_0000, 3 * PAGE_4K),
                Err(PagingError::NotMapped { va: 0x10_1000 })
            );
            assert!(w.translate(0x10_0000).is_some());
        });
    }

    #[test]
    fn protecting_part_of_a_block_splits_it() {
        both(|make| {
            let mut w = make();
            w.map(0x20_0000, 0x60_0000, PAGE_2M, PageSize::Size2M, RW)
                .unwrap();
            w.protect(0x20_3000, PAGE_4K, MapFlags::empty()).unwrap();
            let t = w.translate(0x20_3008).unwrap();
            assert_eq!(
                (t.pa, t.flags, t.size),
                (0x60_3008, MapFlags::empty(), PageSize::Size4K)
            );
            let neighbour = w.translate(0x20_4000).unwrap();
            assert_eq!((neighbour.pa, neighbour.flags), (0x60_4000, RW));
            // The other 511 pages of the split block kept their frames.
            assert_eq!(w.translate(0x3f_f000).unwrap().pa, 0x7f_f000);
        });
    }

    #[test]
    fn unmapping_a_whole_block_keeps_it_a_block_operation() {
        both(|make| {
            let mut w = make();
            w.map(0x40_0000, 0x40_0000, 2 * PAGE_2M, PageSize::Size2M, RW)
                .unwrap();
            let before = w.tables();
            w.unmap(0x40_0000, PAGE_2M).unwrap();
            assert_eq!(w.tables(), before, "no split for a whole block");
            assert_eq!(w.translate(0x40_0000), None);
            assert!(w.translate(0x60_0000).is_some());
        });
    }

    #[test]
    fn a_block_over_existing_small_pages_is_refused() {
        both(|make| {
            let mut w = make();
            w.map(0x40_3000, 0x9000, PAGE_4K, PageSize::Size4K, RW)
                .unwrap();
            let err = w
                .map(0x40_0000, 0x80_0000, PAGE_2M, PageSize::Size2M, RW)
                .unwrap_err();
            assert_eq!(err, PagingError::AlreadyMapped { va: 0x40_0000 });
            assert_eq!(
                w.translate(0x40_3000).unwrap().pa,
                0x9000,
                "the small page survived"
            );
        });
    }

    #[test]
    fn small_pages_inside_a_block_are_refused() {
        both(|make| {
            let mut w = make();
            w.map(0x40_0000, 0x80_0000, PAGE_2M, PageSize::Size2M, RW)
                .unwrap();
            let err = w
                .map(0x40_5000, 0x9000, PAGE_4K, PageSize::Size4K, RW)
                .unwrap_err();
            assert_eq!(err, PagingError::AlreadyMapped { va: 0x40_5000 });
        });
    }

    #[test]
    fn ranges_that_wrap_are_out_of_range() {
        both(|make| {
            let mut w = make();
            assert!(matches!(
                w.map(0x1000, u64::MAX - 0xfff, PAGE_4K, PageSize::Size4K, RW),
                Err(PagingError::OutOfRange { .. })
            ));
            assert!(matches!(
                w.map(0x7fff_ffff_f000, 0, 2 * PAGE_4K, PageSize::Size4K, RW),
                Err(PagingError::OutOfRange { .. })
            ));
            assert!(matches!(
                w.unmap(0xffff_ffff_ffff_f000, 2 * PAGE_4K),
                Err(PagingError::OutOfRange { .. })
            ));
        });
    }

    #[test]
    fn only_x86_translates_the_upper_half() {
        let mut x86 = Harness::<X86_64>::new();
        assert!(x86
            .map(0xffff_8000_0000_0000, 0, PAGE_4K, PageSize::Size4K, RW)
            .is_ok());
        let mut arm = Harness::<Aarch64El2>::new();
        let va = 0xffff_8000_0000_0000;
        assert_eq!(
            arm.map(va, 0, PAGE_4K, PageSize::Size4K, RW),
            Err(PagingError::OutOfRange { va })
        );
    }

    #[test]
    fn out_of_memory_part_way_leaves_nothing_mapped() {
        // Root + 3 tables reach the first 2 MiB; the second 2 MiB needs one more table.
        let mut mem = HostTables {
            limit: Some(4),
            ..Default::default()
        };
        let mut pt = PageTable::<X86_64>::new(&mut mem).unwrap();
        let err = pt
            .map(
                &mut mem,
                0x1f_f000,
                0x1000,
                2 * PAGE_4K,
                PageSize::Size4K,
                RW,
            )
            .unwrap_err();
        assert_eq!(err, PagingError::OutOfMemory);
        assert_eq!(pt.translate(&mut mem, 0x1f_f000), None);
    }

    #[test]
    fn running_out_of_table_memory_is_an_error() {
        let mut mem = HostTables {
            limit: Some(2),
            ..Default::default()
        };
        let mut pt = PageTable::<X86_64>::new(&mut mem).unwrap();
        let err = pt
            .map(&mut mem, 0, 0, PAGE_4K, PageSize::Size4K, RW)
            .unwrap_err();
        assert_eq!(err, PagingError::OutOfMemory);
    }
}

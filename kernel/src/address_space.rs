//! Address spaces over the arch page tables, with tables taken from the frame allocator.
//!
//! The firmware identity-maps its RAM, so a table's physical address is also where the
//! walker reads it. Every change is followed by TLB maintenance on all CPUs (the platform's
//! `flush_tlb`), which on x86_64 waits for the other CPUs to answer an IPI: call these with
//! interrupts enabled.

use arch::paging::{MapFlags, PageSize, PageTable, PagingError, TableMemory, Translation, ENTRIES};

use crate::memory::allocate_zeroed_frame;
use crate::platform;

/// This build's page-table format.
#[cfg(target_arch = "x86_64")]
pub type NativeFormat = arch::x86_64::page_format::X86_64;
#[cfg(target_arch = "aarch64")]
pub type NativeFormat = arch::aarch64::page_format::Aarch64El2;

/// Page tables living in identity-mapped frames from [`crate::memory::FRAMES`].
pub struct FrameTables {
    /// Whether a CPU may be translating through these tables (see `AddressSpace::set_live`).
    live: bool,
}

impl TableMemory for FrameTables {
    fn allocate_table(&mut self) -> Option<u64> {
        allocate_zeroed_frame().ok()
    }

    fn table(&mut self, pa: u64) -> &mut [u64; ENTRIES] {
        // SAFETY: the walker only passes addresses of tables it made with allocate_table (or the
        // root it was built on), which are frames owned by this address space, identity-mapped
        // and 4 KiB aligned. The `&mut self` borrow keeps this reference unique.
        unsafe { &mut *(pa as *mut [u64; ENTRIES]) }
    }

    fn flush(&mut self, va: u64, size: u64) {
        if self.live {
            flush(va, size);
        }
    }
}

pub struct AddressSpace {
    tables: PageTable<NativeFormat>,
    /// No CPU translates through tables that are still being built, so changes to them need
    /// no TLB maintenance; that matters where each flush is costly (a software MMU reloads
    /// its shadow tables on every CR3 write).
    live: bool,
}

impl AddressSpace {
    pub fn new() -> Result<Self, PagingError> {
        Ok(Self {
            tables: PageTable::new(&mut FrameTables { live: false })?,
            live: false,
        })
    }

    /// Wraps the live tables rooted at `root`, which must be built from frames this kernel owns.
    pub fn from_root(root: u64) -> Self {
        Self {
            tables: PageTable::from_root(root),
            live: true,
        }
    }

    fn memory(&self) -> FrameTables {
        FrameTables { live: self.live }
    }

    /// Records that CPUs now translate through these tables: from here on every change is
    /// followed by TLB maintenance on all CPUs.
    pub fn set_live(&mut self) {
        self.live = true;
    }

    pub fn root(&self) -> u64 {
        self.tables.root()
    }

    pub fn map(
        &mut self,
        va: u64,
        pa: u64,
        size: u64,
        page: PageSize,
        flags: MapFlags,
    ) -> Result<(), PagingError> {
        self.tables
            .map(&mut self.memory(), va, pa, size, page, flags)?;
        // Nothing was mapped here before, but aarch64 needs the barrier in the flush to make
        // the new entries visible to the table walker; x86 drops any cached "not present".
        self.flush(va, size);
        Ok(())
    }

    pub fn unmap(&mut self, va: u64, size: u64) -> Result<(), PagingError> {
        self.tables.unmap(&mut self.memory(), va, size)?;
        self.flush(va, size);
        Ok(())
    }

    pub fn protect(&mut self, va: u64, size: u64, flags: MapFlags) -> Result<(), PagingError> {
        self.tables.protect(&mut self.memory(), va, size, flags)?;
        self.flush(va, size);
        Ok(())
    }

    pub fn translate(&self, va: u64) -> Option<Translation> {
        self.tables.translate(&mut self.memory(), va)
    }
}

impl AddressSpace {
    fn flush(&self, va: u64, size: u64) {
        if self.live {
            flush(va, size);
        }
    }
}

fn flush(va: u64, size: u64) {
    if let Some(p) = platform::get() {
        (p.flush_tlb)(va, size);
    }
}

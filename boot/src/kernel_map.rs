//! Parapet's own page tables, the same on every architecture: RAM identity-mapped read/write
//! no-execute, the image with per-section permissions (W^X), device registers uncached, and
//! page 0 left unmapped to catch null pointers.

use arch::memory_map::MemoryMap;
use arch::paging::{MapFlags, PageSize, PagingError, PAGE_2M, PAGE_4K};
use kernel::address_space::AddressSpace;

extern "C" {
    static __image_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __image_end: u8;
}

fn addr(symbol: &u8) -> u64 {
    symbol as *const u8 as u64
}

/// The image's bounds: [start, end).
pub fn image_range() -> (u64, u64) {
    // SAFETY: linker symbols; only their addresses are taken.
    unsafe { (addr(&__image_start), addr(&__image_end)) }
}

/// Maps [start, end) identically with the largest pages that fit.
pub fn map_identity(
    space: &mut AddressSpace,
    start: u64,
    end: u64,
    flags: MapFlags,
) -> Result<(), PagingError> {
    let mut at = start & !(PAGE_4K - 1);
    let end = end.next_multiple_of(PAGE_4K);
    while at < end {
        let (page, size) = if at.is_multiple_of(PAGE_2M) && end - at >= PAGE_2M {
            (PageSize::Size2M, PAGE_2M)
        } else {
            let next = (at + 1).next_multiple_of(PAGE_2M).min(end);
            (PageSize::Size4K, next - at)
        };
        space.map(at, at, size, page, flags)?;
        at += size;
    }
    Ok(())
}

/// Builds the kernel address space. `devices` are (base, size) register ranges;
/// `executable_pages` are RAM pages that must stay executable (the x86 AP start-up page).
pub fn build(
    map: &MemoryMap,
    devices: &[(u64, u64)],
    executable_pages: &[u64],
) -> Result<AddressSpace, PagingError> {
    let mut space = AddressSpace::new()?;
    let (image_start, image_end) = image_range();
    let rw = MapFlags::WRITE;
    for region in map.ram() {
        // Page 0 stays unmapped; the image is mapped below with its own permissions.
        let start = region.start.max(PAGE_4K);
        for (s, e) in [
            (start, region.end.min(image_start)),
            (start.max(image_end), region.end),
        ] {
            if s < e {
                map_identity(&mut space, s, e, rw)?;
            }
        }
    }
    // SAFETY: linker symbols; only their addresses are taken.
    let (text, rodata, data) = unsafe {
        (
            (addr(&__text_start), addr(&__text_end)),
            (addr(&__rodata_start), addr(&__rodata_end)),
            (addr(&__data_start), addr(&__image_end)),
        )
    };
    space.map(
        text.0,
        text.0,
        text.1 - text.0,
        PageSize::Size4K,
        MapFlags::EXECUTE,
    )?;
    space.map(
        rodata.0,
        rodata.0,
        rodata.1 - rodata.0,
        PageSize::Size4K,
        MapFlags::empty(),
    )?;
    space.map(data.0, data.0, data.1 - data.0, PageSize::Size4K, rw)?;
    for &page in executable_pages {
        space.protect(page, PAGE_4K, rw | MapFlags::EXECUTE)?;
    }
    for &(base, size) in devices {
        let start = base & !(PAGE_4K - 1);
        let end = base
            .checked_add(size)
            .ok_or(PagingError::OutOfRange { va: base })?;
        map_identity(&mut space, start, end, rw | MapFlags::DEVICE)?;
    }
    Ok(space)
}

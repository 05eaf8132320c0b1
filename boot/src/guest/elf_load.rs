//! The guest's payload, an ELF staged in its RAM by the loader (a boot module, or vmm-lite's
//! `--vtl0`), copied once into Parapet's heap, parsed there (`kernel::elf`), and its segments
//! placed at their physical addresses in guest RAM.

use alloc::vec;
use core::ops::Range;

use kernel::elf::{self, ElfError};

use super::ram;

/// A bound on payload size: it is copied into Parapet's heap to be parsed.
const MAX_PAYLOAD: u64 = 2 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The staged payload is not inside the guest's RAM.
    StagingOutsideRam {
        address: u64,
        size: u64,
    },
    TooLarge(u64),
    Elf(ElfError),
    /// A segment falls outside the guest's RAM, or on the range the boot protocol keeps for
    /// its own structures.
    SegmentOutside {
        start: u64,
        end: u64,
    },
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadError::StagingOutsideRam { address, size } => write!(
                f,
                "the payload at {address:#x} ({size} bytes) is not in the guest's RAM"
            ),
            LoadError::TooLarge(size) => {
                write!(f, "the payload is {size} bytes; at most {MAX_PAYLOAD}")
            }
            LoadError::Elf(e) => write!(f, "the payload is not a usable ELF: {e}"),
            LoadError::SegmentOutside { start, end } => write!(
                f,
                "segment {start:#x}..{end:#x} is outside the guest's RAM or on its boot structures"
            ),
        }
    }
}

/// A loaded payload: where it starts, and the guest-physical span its segments cover (for
/// cache maintenance where the guest starts with caches off).
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    pub entry: u64,
    /// (x86 needs no maintenance: its caches are coherent with everything.)
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    pub span: (u64, u64),
}

/// Loads the ELF for `machine` staged at `address` (`size` bytes), its segments clear of
/// `boot_structures`.
///
/// The guest has not run yet, so the bulk copies of `ram::load*` are sound here.
pub fn load(
    address: u64,
    size: u64,
    machine: u16,
    boot_structures: Range<u64>,
) -> Result<Loaded, LoadError> {
    if size > MAX_PAYLOAD {
        return Err(LoadError::TooLarge(size));
    }
    let mut payload = vec![0u8; size as usize];
    ram::load_from(address, &mut payload)
        .map_err(|_| LoadError::StagingOutsideRam { address, size })?;
    let executable = elf::parse(&payload, machine).map_err(LoadError::Elf)?;
    for segment in &executable.segments {
        let (start, end) = (segment.address, segment.end());
        let on_boot_structures = start < boot_structures.end && boot_structures.start < end;
        if on_boot_structures || !ram::contains(start, segment.memory_size) {
            return Err(LoadError::SegmentOutside { start, end });
        }
    }
    for segment in &executable.segments {
        let file = &payload[segment.file.clone()];
        let file_len = file.len() as u64;
        let outside = |_| LoadError::SegmentOutside {
            start: segment.address,
            end: segment.end(),
        };
        ram::load(segment.address, Some(file), file_len).map_err(outside)?;
        let bss = segment.memory_size - file_len;
        ram::load(segment.address + file_len, None, bss).map_err(outside)?;
    }
    log::info!(
        "guest payload loaded: {} segments, entry {:#x}",
        executable.segments.len(),
        executable.entry
    );
    let span = executable
        .segments
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), s| {
            (lo.min(s.address), hi.max(s.end()))
        });
    Ok(Loaded {
        entry: executable.entry,
        span,
    })
}

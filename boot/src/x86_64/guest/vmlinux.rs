//! An uncompressed kernel (`vmlinux`, an ELF) as the Linux guest: its segments copied to a
//! 2 MiB-aligned address in free RAM, entered at `startup_64` with the zero page a bzImage
//! would get (`abi::vmlinux` says why and what it needs).

use abi::linux_boot::{ImageError, SetupHeader};
use abi::vmlinux::{self, Layout};
use kernel::elf::{self, ElfError};

use crate::guest::ram;

#[derive(Clone, Copy, Debug)]
pub enum VmlinuxError {
    Elf(ElfError),
    Layout(vmlinux::VmlinuxError),
    Header(ImageError),
    NoRoom { footprint: u64 },
    SegmentOutsideRam,
}

impl core::fmt::Display for VmlinuxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Elf(e) => write!(f, "{e}"),
            Self::Layout(e) => write!(f, "{e}"),
            Self::Header(e) => write!(f, "its made-up setup header: {e}"),
            Self::NoRoom { footprint } => write!(
                f,
                "no free guest RAM holds its {} MiB on a 2 MiB boundary",
                footprint >> 20
            ),
            Self::SegmentOutsideRam => write!(f, "a segment falls outside guest RAM"),
        }
    }
}

/// Whether the kernel's first bytes are an ELF (else it is a bzImage).
pub fn is_vmlinux(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// Copies the vmlinux `image` into the lowest place in `free` it can run from; returns the
/// header for its zero page, where it went and where it enters.
pub fn place(image: &[u8], free: &[(u64, u64)]) -> Result<(SetupHeader, u64, u64), VmlinuxError> {
    let executable = elf::parse(image, elf::MACHINE_X86_64).map_err(VmlinuxError::Elf)?;
    let spans: alloc::vec::Vec<(u64, u64)> = executable
        .segments
        .iter()
        .map(|s| (s.address, s.memory_size))
        .collect();
    let layout = Layout::of(&spans, executable.entry).map_err(VmlinuxError::Layout)?;
    let header = vmlinux::setup_header(&layout).map_err(VmlinuxError::Header)?;
    let no_room = VmlinuxError::NoRoom {
        footprint: layout.footprint,
    };
    let base = header.place(free).ok_or(no_room)?;
    for segment in &executable.segments {
        let target = layout
            .relocate(segment.address, base)
            .ok_or(VmlinuxError::SegmentOutsideRam)?;
        // `elf::parse` checked the file range and that it is no longer than memory_size.
        let bytes = &image[segment.file.clone()];
        let file_len = bytes.len() as u64;
        ram::load(target, Some(bytes), file_len).map_err(|_| VmlinuxError::SegmentOutsideRam)?;
        ram::load(target + file_len, None, segment.memory_size - file_len)
            .map_err(|_| VmlinuxError::SegmentOutsideRam)?;
    }
    Ok((header, base, base + layout.entry_offset))
}

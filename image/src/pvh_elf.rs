//! PVH ELF checks (Xen `elfnote.h`: XEN_ELFNOTE_PHYS32_ENTRY = 18).

use crate::elf::{u32_at, u64_at, Elf, PF_X};
use crate::{ImageError, ImageInfo};

const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

pub fn inspect(b: &[u8]) -> Result<ImageInfo, ImageError> {
    let elf = Elf::parse(b)?;
    let entry = elf
        .notes()
        .iter()
        .filter(|n| n.name == b"Xen\0" && n.kind == XEN_ELFNOTE_PHYS32_ENTRY)
        .find_map(|n| match n.desc.len() {
            4 => u32_at(n.desc, 0),
            8 => u64_at(n.desc, 0).and_then(|v| u32::try_from(v).ok()),
            _ => None,
        })
        .ok_or(ImageError::NoPvhNote)?;
    let loads = elf.segments.iter().filter(|s| s.is_load());
    let in_text = loads.clone().any(|s| {
        s.flags & PF_X != 0 && (s.vaddr..s.vaddr + s.mem_size).contains(&u64::from(entry))
    });
    if !in_text {
        return Err(ImageError::EntryOutsideText {
            entry: u64::from(entry),
        });
    }
    let load_bytes = loads.clone().map(|s| s.file_size).sum();
    let memory_bytes = loads.map(|s| s.mem_size).sum();
    Ok(ImageInfo::PvhElf {
        entry,
        load_bytes,
        memory_bytes,
    })
}

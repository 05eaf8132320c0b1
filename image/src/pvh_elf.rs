//! PVH ELF checks (ELF-64 Object File Format v1.5; Xen `elfnote.h`: XEN_ELFNOTE_PHYS32_ENTRY = 18).

use crate::{ImageError, ImageInfo};

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const EM_X86_64: u16 = 62;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

struct Segment {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
}

fn segments(b: &[u8]) -> Result<Vec<Segment>, ImageError> {
    let t = ImageError::Truncated("ELF");
    let phoff = u64_at(b, 32).ok_or(t.clone())? as usize;
    let phentsize = usize::from(u16_at(b, 54).ok_or(t.clone())?);
    let phnum = usize::from(u16_at(b, 56).ok_or(t.clone())?);
    (0..phnum)
        .map(|i| {
            let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
            Some(Segment {
                kind: u32_at(b, at)?,
                flags: u32_at(b, at + 4)?,
                offset: u64_at(b, at + 8)?,
                vaddr: u64_at(b, at + 16)?,
                file_size: u64_at(b, at + 32)?,
                mem_size: u64_at(b, at + 40)?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(t)
}

/// Finds the PVH entry in a note segment.
fn pvh_entry(b: &[u8], note: &Segment) -> Option<u32> {
    let mut at = usize::try_from(note.offset).ok()?;
    let end = at.checked_add(usize::try_from(note.file_size).ok()?)?;
    while at + 12 <= end {
        let namesz = u32_at(b, at)? as usize;
        let descsz = u32_at(b, at + 4)? as usize;
        let kind = u32_at(b, at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at + namesz.next_multiple_of(4);
        if b.get(name_at..name_at + namesz)? == b"Xen\0" && kind == XEN_ELFNOTE_PHYS32_ENTRY {
            return match descsz {
                4 => u32_at(b, desc_at),
                8 => u64_at(b, desc_at).and_then(|v| u32::try_from(v).ok()),
                _ => None,
            };
        }
        at = desc_at + descsz.next_multiple_of(4);
    }
    None
}

pub fn inspect(b: &[u8]) -> Result<ImageInfo, ImageError> {
    if b.len() < 64 {
        return Err(ImageError::Truncated("ELF"));
    }
    if b[4] != 2 || b[5] != 1 || u16_at(b, 18) != Some(EM_X86_64) {
        return Err(ImageError::NotX86_64Elf);
    }
    let segs = segments(b)?;
    let entry = segs
        .iter()
        .filter(|s| s.kind == PT_NOTE)
        .find_map(|s| pvh_entry(b, s))
        .ok_or(ImageError::NoPvhNote)?;
    let in_text = segs.iter().any(|s| {
        s.kind == PT_LOAD
            && s.flags & PF_X != 0
            && (s.vaddr..s.vaddr + s.mem_size).contains(&u64::from(entry))
    });
    if !in_text {
        return Err(ImageError::EntryOutsideText {
            entry: u64::from(entry),
        });
    }
    let loads = segs.iter().filter(|s| s.kind == PT_LOAD);
    let load_bytes = loads.clone().map(|s| s.file_size).sum();
    let memory_bytes = loads.map(|s| s.mem_size).sum();
    Ok(ImageInfo::PvhElf {
        entry,
        load_bytes,
        memory_bytes,
    })
}

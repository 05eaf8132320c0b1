//! Reading ELF64 little-endian executables (ELF-64 Object File Format v1.5): the load segments
//! and notes, with every offset checked.

use crate::ImageError;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
pub const PF_X: u32 = 1;
pub const EM_X86_64: u16 = 62;

pub use le::{u16_at, u32_at, u64_at};

/// A program header.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub file_size: u64,
    pub mem_size: u64,
}

impl Segment {
    pub fn is_load(&self) -> bool {
        self.kind == PT_LOAD
    }
}

/// A note: (name with its NUL, type, descriptor).
pub struct Note<'a> {
    pub name: &'a [u8],
    pub kind: u32,
    pub desc: &'a [u8],
}

/// An ELF64 little-endian x86_64 executable.
pub struct Elf<'a> {
    pub bytes: &'a [u8],
    pub segments: Vec<Segment>,
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
            return Err(ImageError::Truncated("ELF"));
        }
        if bytes[4] != 2 || bytes[5] != 1 || u16_at(bytes, 18) != Some(EM_X86_64) {
            return Err(ImageError::NotX86_64Elf);
        }
        let t = || ImageError::Truncated("ELF");
        let phoff = u64_at(bytes, 32).ok_or_else(t)? as usize;
        let phentsize = usize::from(u16_at(bytes, 54).ok_or_else(t)?);
        let phnum = usize::from(u16_at(bytes, 56).ok_or_else(t)?);
        let segments = (0..phnum)
            .map(|i| {
                let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
                Some(Segment {
                    kind: u32_at(bytes, at)?,
                    flags: u32_at(bytes, at + 4)?,
                    offset: u64_at(bytes, at + 8)?,
                    vaddr: u64_at(bytes, at + 16)?,
                    paddr: u64_at(bytes, at + 24)?,
                    file_size: u64_at(bytes, at + 32)?,
                    mem_size: u64_at(bytes, at + 40)?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(t)?;
        Ok(Self { bytes, segments })
    }

    /// The bytes a segment carries in the file.
    pub fn segment_data(&self, s: &Segment) -> Result<&'a [u8], ImageError> {
        let start = usize::try_from(s.offset).map_err(|_| ImageError::Truncated("ELF segment"))?;
        let len = usize::try_from(s.file_size).map_err(|_| ImageError::Truncated("ELF segment"))?;
        start
            .checked_add(len)
            .and_then(|end| self.bytes.get(start..end))
            .ok_or(ImageError::Truncated("ELF segment"))
    }

    /// Every note in every PT_NOTE segment.
    pub fn notes(&self) -> Vec<Note<'a>> {
        let mut notes = Vec::new();
        for s in self.segments.iter().filter(|s| s.kind == PT_NOTE) {
            let Ok(data) = self.segment_data(s) else {
                continue;
            };
            let mut at = 0usize;
            while at + 12 <= data.len() {
                let (Some(namesz), Some(descsz), Some(kind)) =
                    (u32_at(data, at), u32_at(data, at + 4), u32_at(data, at + 8))
                else {
                    break;
                };
                let name_at = at + 12;
                let desc_at = name_at.saturating_add((namesz as usize).next_multiple_of(4));
                let (Some(name), Some(desc)) = (
                    data.get(name_at..name_at.saturating_add(namesz as usize)),
                    data.get(desc_at..desc_at.saturating_add(descsz as usize)),
                ) else {
                    break;
                };
                notes.push(Note { name, kind, desc });
                at = desc_at.saturating_add((descsz as usize).next_multiple_of(4));
            }
        }
        notes
    }
}

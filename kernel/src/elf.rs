//! Reading a static ELF64 executable to load it as a guest payload (ELF-64 Object File
//! Format v1.5; System V gABI): its entry point and the PT_LOAD segments to place.
//!
//! The bytes come from outside (vmm-lite's staging area, an IGVM file): every field is
//! bounds-checked, nothing is trusted, and a bad file is an error, never a panic.

use alloc::vec::Vec;
use core::ops::Range;

use le::{u16_at, u32_at, u64_at};

const MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_64: u8 = 2;
const DATA_LITTLE_ENDIAN: u8 = 1;
const TYPE_EXEC: u16 = 2;
pub const MACHINE_X86_64: u16 = 62;
pub const MACHINE_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
const PROGRAM_HEADER_SIZE: usize = 56;
/// More program headers than any payload we load has; a bound for hostile counts.
const MAX_PROGRAM_HEADERS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// Physical load address (p_paddr).
    pub address: u64,
    /// The bytes to copy, as a range of the file.
    pub file: Range<usize>,
    /// Bytes the segment occupies; past the file bytes it is zero.
    pub memory_size: u64,
}

impl LoadSegment {
    pub fn end(&self) -> u64 {
        self.address + self.memory_size
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executable {
    pub entry: u64,
    pub segments: Vec<LoadSegment>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    /// Not 64-bit little-endian, not an executable, or for another machine.
    Unsupported,
    /// A header or segment points outside the file or wraps the address space.
    Truncated,
    /// Segments overlap each other.
    Overlapping,
    NoSegments,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ElfError::NotElf => "not an ELF file",
            ElfError::Unsupported => "not a 64-bit little-endian executable for this machine",
            ElfError::Truncated => "a header or segment lies outside the file or the address space",
            ElfError::Overlapping => "load segments overlap",
            ElfError::NoSegments => "no loadable segment",
        })
    }
}

/// Parses `bytes` as an executable for `machine`.
pub fn parse(bytes: &[u8], machine: u16) -> Result<Executable, ElfError> {
    if bytes.get(0..4) != Some(MAGIC) {
        return Err(ElfError::NotElf);
    }
    let truncated = ElfError::Truncated;
    if bytes.get(4) != Some(&CLASS_64)
        || bytes.get(5) != Some(&DATA_LITTLE_ENDIAN)
        || u16_at(bytes, 16) != Some(TYPE_EXEC)
        || u16_at(bytes, 18) != Some(machine)
    {
        return Err(ElfError::Unsupported);
    }
    let entry = u64_at(bytes, 24).ok_or(truncated)?;
    let table = u64_at(bytes, 32).ok_or(truncated)?;
    let entry_size = usize::from(u16_at(bytes, 54).ok_or(truncated)?);
    let count = usize::from(u16_at(bytes, 56).ok_or(truncated)?);
    if entry_size < PROGRAM_HEADER_SIZE || count > MAX_PROGRAM_HEADERS {
        return Err(ElfError::Unsupported);
    }
    let table = usize::try_from(table).map_err(|_| truncated)?;
    let mut segments: Vec<LoadSegment> = Vec::new();
    for i in 0..count {
        let at = table
            .checked_add(i * entry_size)
            .filter(|at| {
                at.checked_add(PROGRAM_HEADER_SIZE)
                    .is_some_and(|end| end <= bytes.len())
            })
            .ok_or(truncated)?;
        if u32_at(bytes, at) != Some(PT_LOAD) {
            continue;
        }
        let field = |offset| u64_at(bytes, at + offset).ok_or(truncated);
        let (offset, address, file_size, memory_size) =
            (field(8)?, field(24)?, field(32)?, field(40)?);
        if memory_size == 0 {
            continue;
        }
        let start = usize::try_from(offset).map_err(|_| truncated)?;
        let end = usize::try_from(file_size)
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= bytes.len())
            .ok_or(truncated)?;
        if file_size > memory_size || address.checked_add(memory_size).is_none() {
            return Err(truncated);
        }
        let segment = LoadSegment {
            address,
            file: start..end,
            memory_size,
        };
        if segments
            .iter()
            .any(|s| s.address < segment.end() && segment.address < s.end())
        {
            return Err(ElfError::Overlapping);
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err(ElfError::NoSegments);
    }
    Ok(Executable { entry, segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An executable with `segments` as (offset, address, file size, memory size).
    fn elf(segments: &[(u64, u64, u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * segments.len() + 0x100];
        b[0..4].copy_from_slice(MAGIC);
        (b[4], b[5]) = (CLASS_64, DATA_LITTLE_ENDIAN);
        b[16..18].copy_from_slice(&TYPE_EXEC.to_le_bytes());
        b[18..20].copy_from_slice(&MACHINE_X86_64.to_le_bytes());
        b[24..32].copy_from_slice(&0x1_0000u64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, &(offset, address, file, memory)) in segments.iter().enumerate() {
            let at = 64 + 56 * i;
            b[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            for (field, value) in [(8, offset), (24, address), (32, file), (40, memory)] {
                b[at + field..at + field + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn reads_entry_and_load_segments() {
        let e = parse(
            &elf(&[(0x80, 0x1_0000, 0x20, 0x1000), (0xa0, 0x2_0000, 0, 0x10)]),
            MACHINE_X86_64,
        )
        .unwrap();
        assert_eq!(e.entry, 0x1_0000);
        assert_eq!(e.segments[0].file, 0x80..0xa0);
        assert_eq!(e.segments[1].end(), 0x2_0010);
    }

    #[test]
    fn hostile_files_are_errors() {
        assert_eq!(parse(b"MZ", MACHINE_X86_64), Err(ElfError::NotElf));
        let good = elf(&[(0x80, 0x1_0000, 0x20, 0x1000)]);
        assert_eq!(parse(&good, MACHINE_AARCH64), Err(ElfError::Unsupported));
        assert_eq!(parse(&good[..70], MACHINE_X86_64), Err(ElfError::Truncated));
        let beyond = elf(&[(0x80, 0x1_0000, 0x10_0000, 0x10_0000)]);
        assert_eq!(parse(&beyond, MACHINE_X86_64), Err(ElfError::Truncated));
        let wraps = elf(&[(0x80, u64::MAX - 4, 0x10, 0x10)]);
        assert_eq!(parse(&wraps, MACHINE_X86_64), Err(ElfError::Truncated));
        let bigger_file = elf(&[(0x80, 0x1_0000, 0x20, 0x10)]);
        assert_eq!(
            parse(&bigger_file, MACHINE_X86_64),
            Err(ElfError::Truncated)
        );
        let overlap = elf(&[(0x80, 0x1_0000, 0x10, 0x1000), (0x80, 0x1_0800, 0x10, 0x10)]);
        assert_eq!(parse(&overlap, MACHINE_X86_64), Err(ElfError::Overlapping));
        assert_eq!(parse(&elf(&[]), MACHINE_X86_64), Err(ElfError::NoSegments));
        let mut many = good.clone();
        many[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(parse(&many, MACHINE_X86_64), Err(ElfError::Unsupported));
    }
}

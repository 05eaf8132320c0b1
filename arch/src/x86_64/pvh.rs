//! The PVH boot ABI: `hvm_start_info` as a PVH loader (QEMU `-kernel`, Xen, Firecracker)
//! leaves it for the kernel (Xen public header `arch-x86/hvm/start_info.h`, version 1).

use crate::memory_map::{MemoryMap, RegionKind};
use crate::phys::PhysRead;

pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Size of `hvm_start_info` v1 in bytes.
pub const START_INFO_SIZE: u64 = 56;
const MEMMAP_ENTRY_SIZE: u64 = 24;
/// E820 type of usable RAM (ACPI 6.5 §15.1, table 15.312).
const E820_RAM: u32 = 1;
/// Longest command line we keep (one page, as the IGVM command-line area).
pub const MAX_CMDLINE: usize = 4096;
/// Physical addresses at or above this are beyond any x86 CPU (52-bit MAXPHYADDR).
const MAX_PHYS: u64 = 1 << 52;

/// What the PVH start info says, copied out of guest-physical memory.
#[derive(Clone, Debug)]
pub struct StartInfo {
    pub memory_map: MemoryMap,
    pub cmdline: heapless_str::Line,
    /// Physical range of the command line, to keep it out of the frame allocator.
    pub cmdline_range: Option<(u64, u64)>,
    pub rsdp: Option<u64>,
    /// First module (QEMU `-initrd`): physical start and size.
    pub module: Option<(u64, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    Unreadable,
    BadMagic(u32),
    /// Version 0 carries no memory map, and we need one.
    NoMemoryMap {
        version: u32,
    },
    TooManyRegions,
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartInfoError::Unreadable => {
                write!(f, "PVH start info points outside readable memory")
            }
            StartInfoError::BadMagic(m) => write!(
                f,
                "PVH start info has magic {m:#x}, expected {START_INFO_MAGIC:#x}"
            ),
            StartInfoError::NoMemoryMap { version } => {
                write!(
                    f,
                    "PVH start info version {version} has no memory map; need version 1"
                )
            }
            StartInfoError::TooManyRegions => {
                write!(f, "PVH memory map has more regions than Parapet keeps")
            }
        }
    }
}

/// A fixed-capacity UTF-8 line (there is no heap when the start info is read).
pub mod heapless_str {
    use super::MAX_CMDLINE;

    #[derive(Clone)]
    pub struct Line {
        bytes: [u8; MAX_CMDLINE],
        len: usize,
    }

    impl Line {
        pub const fn empty() -> Self {
            Self {
                bytes: [0; MAX_CMDLINE],
                len: 0,
            }
        }

        /// Takes `bytes` up to the first NUL, dropping what is not UTF-8 or does not fit.
        pub fn from_bytes(bytes: &[u8]) -> Self {
            let end = bytes
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(bytes.len())
                .min(MAX_CMDLINE);
            let valid = match core::str::from_utf8(&bytes[..end]) {
                Ok(s) => s.len(),
                Err(e) => e.valid_up_to(),
            };
            let mut line = Self::empty();
            line.bytes[..valid].copy_from_slice(&bytes[..valid]);
            line.len = valid;
            line
        }

        pub fn as_str(&self) -> &str {
            // from_bytes only keeps a valid UTF-8 prefix, so this never falls back.
            core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
        }
    }

    impl core::fmt::Debug for Line {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "{:?}", self.as_str())
        }
    }
}

/// Parses the start info at `pa`.
pub fn parse(mem: &impl PhysRead, pa: u64) -> Result<StartInfo, StartInfoError> {
    let field32 = |off: u64| mem.read_u32(pa + off).ok_or(StartInfoError::Unreadable);
    let field64 = |off: u64| mem.read_u64(pa + off).ok_or(StartInfoError::Unreadable);
    let magic = field32(0)?;
    if magic != START_INFO_MAGIC {
        return Err(StartInfoError::BadMagic(magic));
    }
    let version = field32(4)?;
    if version < 1 {
        return Err(StartInfoError::NoMemoryMap { version });
    }
    // Pointers past the physical address width are garbage; refusing them here also keeps
    // the offset arithmetic below from overflowing.
    let pointer = |off: u64| {
        field64(off).and_then(|p| {
            if p < MAX_PHYS {
                Ok(p)
            } else {
                Err(StartInfoError::Unreadable)
            }
        })
    };
    let nr_modules = field32(12)?;
    let modlist = pointer(16)?;
    let cmdline_pa = pointer(24)?;
    let rsdp = pointer(32)?;
    let memmap = pointer(40)?;
    let entries = field32(48)?;

    let mut memory_map = MemoryMap::new();
    for i in 0..u64::from(entries) {
        let entry = memmap + i * MEMMAP_ENTRY_SIZE;
        let addr = mem.read_u64(entry).ok_or(StartInfoError::Unreadable)?;
        let size = mem.read_u64(entry + 8).ok_or(StartInfoError::Unreadable)?;
        let kind = match mem.read_u32(entry + 16).ok_or(StartInfoError::Unreadable)? {
            E820_RAM => RegionKind::Ram,
            _ => RegionKind::Reserved,
        };
        if !memory_map.push(addr, size, kind) {
            return Err(StartInfoError::TooManyRegions);
        }
    }

    let (cmdline, cmdline_range) = if cmdline_pa != 0 {
        let mut buf = [0u8; MAX_CMDLINE];
        // The line may sit near the end of RAM: read what is readable, byte-chunk by chunk.
        let mut len = 0;
        while len < MAX_CMDLINE {
            match mem.read_u8(cmdline_pa + len as u64) {
                Some(0) | None => break,
                Some(b) => buf[len] = b,
            }
            len += 1;
        }
        (
            heapless_str::Line::from_bytes(&buf[..len]),
            Some((cmdline_pa, cmdline_pa + len as u64 + 1)),
        )
    } else {
        (heapless_str::Line::empty(), None)
    };

    let module = if nr_modules > 0 && modlist != 0 {
        let start = mem.read_u64(modlist).ok_or(StartInfoError::Unreadable)?;
        let size = mem
            .read_u64(modlist + 8)
            .ok_or(StartInfoError::Unreadable)?;
        if start >= MAX_PHYS || size >= MAX_PHYS {
            return Err(StartInfoError::Unreadable);
        }
        Some((start, size))
    } else {
        None
    };

    Ok(StartInfo {
        memory_map,
        cmdline,
        cmdline_range,
        rsdp: (rsdp != 0).then_some(rsdp),
        module,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phys::test_phys::Buffer;

    fn start_info(mem: &mut Buffer, at: u64, version: u32) {
        let mut s = [0u8; 56];
        s[0..4].copy_from_slice(&START_INFO_MAGIC.to_le_bytes());
        s[4..8].copy_from_slice(&version.to_le_bytes());
        s[12..16].copy_from_slice(&1u32.to_le_bytes());
        s[16..24].copy_from_slice(&0x7200u64.to_le_bytes());
        s[24..32].copy_from_slice(&0x7100u64.to_le_bytes());
        s[32..40].copy_from_slice(&0xf_5000u64.to_le_bytes());
        s[40..48].copy_from_slice(&0x7400u64.to_le_bytes());
        s[48..52].copy_from_slice(&3u32.to_le_bytes());
        mem.put(at, &s);
        mem.put(0x7100, b"console=ttyS0 parapet.test=panic\0");
        let mut module = [0u8; 32];
        module[0..8].copy_from_slice(&0x20_0000u64.to_le_bytes());
        module[8..16].copy_from_slice(&0x1234u64.to_le_bytes());
        mem.put(0x7200, &module);
        for (i, (addr, size, kind)) in [
            (0u64, 0x9fc00u64, 1u32),
            (0xf0000, 0x10000, 2),
            (0x10_0000, 0x7f0_0000, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = [0u8; 24];
            e[0..8].copy_from_slice(&addr.to_le_bytes());
            e[8..16].copy_from_slice(&size.to_le_bytes());
            e[16..20].copy_from_slice(&kind.to_le_bytes());
            mem.put(0x7400 + i as u64 * 24, &e);
        }
    }

    #[test]
    fn parses_memory_map_cmdline_rsdp_and_module() {
        let mut mem = Buffer::new(0, 0x8000);
        start_info(&mut mem, 0x7000, 1);
        let info = parse(&mem, 0x7000).unwrap();
        assert_eq!(info.memory_map.regions().len(), 3);
        assert_eq!(info.memory_map.ram_bytes(), 0x9fc00 + 0x7f0_0000);
        assert_eq!(info.memory_map.regions()[1].kind, RegionKind::Reserved);
        assert_eq!(info.cmdline.as_str(), "console=ttyS0 parapet.test=panic");
        assert_eq!(info.cmdline_range, Some((0x7100, 0x7100 + 33)));
        assert_eq!(info.rsdp, Some(0xf_5000));
        assert_eq!(info.module, Some((0x20_0000, 0x1234)));
    }

    #[test]
    fn rejects_wrong_magic_and_version_zero() {
        let mut mem = Buffer::new(0, 0x8000);
        start_info(&mut mem, 0x7000, 0);
        assert_eq!(
            parse(&mem, 0x7000).unwrap_err(),
            StartInfoError::NoMemoryMap { version: 0 }
        );
        mem.put(0x7000, &[0; 4]);
        assert_eq!(
            parse(&mem, 0x7000).unwrap_err(),
            StartInfoError::BadMagic(0)
        );
    }

    #[test]
    fn pointers_at_the_top_of_the_address_space_are_refused() {
        for field in [16u64, 24, 32, 40] {
            let mut mem = Buffer::new(0, 0x8000);
            start_info(&mut mem, 0x7000, 1);
            mem.put(0x7000 + field, &u64::MAX.to_le_bytes());
            assert_eq!(
                parse(&mem, 0x7000).unwrap_err(),
                StartInfoError::Unreadable,
                "field at {field}"
            );
        }
    }

    #[test]
    fn a_memory_map_pointing_outside_memory_is_an_error_not_a_fault() {
        let mut mem = Buffer::new(0, 0x8000);
        start_info(&mut mem, 0x7000, 1);
        mem.put(0x7000 + 40, &0xdead_0000u64.to_le_bytes());
        assert_eq!(parse(&mem, 0x7000).unwrap_err(), StartInfoError::Unreadable);
    }
}

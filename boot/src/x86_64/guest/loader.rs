//! Putting the guest in place: its ELF payload (staged in guest RAM by the host: named on the
//! command line by vmm-lite, or a PVH module) loaded at its physical addresses, and the state
//! it starts in.
//!
//! Parapet's guest boot protocol: 64-bit mode, the first 4 GiB identity-mapped with 2 MiB
//! pages (tables at 0x1000-0x6fff), a flat GDT at 0x7000 (code 0x08, data 0x10), RIP the ELF
//! entry, interrupts off, no IDT and no stack yet — the guest sets up its own, as a kernel
//! entered from a boot loader does.

use alloc::vec;

use hvdef::hypercall::InitialVpContext;
use hvdef::registers::{SegmentRegister, TableRegister};
use kernel::elf::{self, ElfError};

use super::memory;

/// Where the boot structures go, in guest RAM; payloads must stay clear of them.
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
/// Four page directories, one per GiB.
const PAGE_DIRECTORIES: u64 = 0x3000;
const GDT: u64 = 0x7000;
const BOOT_STRUCTURES_END: u64 = 0x8000;
/// A bound on payload size: it is copied into Parapet's heap to be parsed.
const MAX_PAYLOAD: u64 = 2 << 20;

/// GDT entries: null, 64-bit code (0x08), data (0x10) (Intel SDM Vol. 3A §3.4.5).
const GDT_ENTRIES: [u64; 3] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
/// Page-table entry bits: present, writable; PS for a 2 MiB page.
const PRESENT_WRITABLE: u64 = 0b11;
const LARGE: u64 = 1 << 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The staged payload is not inside the guest's RAM.
    StagingOutsideRam {
        address: u64,
        size: u64,
    },
    TooLarge(u64),
    Elf(ElfError),
    /// A segment (or the boot structures) falls outside the guest's RAM, or a segment on the
    /// boot structures.
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

/// Loads the ELF staged at `address` (`size` bytes) and builds the boot structures; returns
/// the context the guest starts in.
pub fn load(address: u64, size: u64) -> Result<InitialVpContext, LoadError> {
    if size > MAX_PAYLOAD {
        return Err(LoadError::TooLarge(size));
    }
    // One copy, then parse: the staging area is the guest's memory. The guest has not run
    // yet, so the bulk copies of `memory::load*` are sound here.
    let mut payload = vec![0u8; size as usize];
    memory::load_from(address, &mut payload)
        .map_err(|_| LoadError::StagingOutsideRam { address, size })?;
    let executable = elf::parse(&payload, elf::MACHINE_X86_64).map_err(LoadError::Elf)?;
    for segment in &executable.segments {
        let (start, end) = (segment.address, segment.end());
        if start < BOOT_STRUCTURES_END || !memory::contains(start, segment.memory_size) {
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
        memory::load(segment.address, Some(file), file_len).map_err(outside)?;
        let bss = segment.memory_size - file_len;
        memory::load(segment.address + file_len, None, bss).map_err(outside)?;
    }
    build_boot_structures()?;
    log::info!(
        "guest payload loaded: {} segments, entry {:#x}",
        executable.segments.len(),
        executable.entry
    );
    Ok(boot_context(executable.entry))
}

/// The identity map of the first 4 GiB and the GDT, built here and copied to guest RAM.
fn build_boot_structures() -> Result<(), LoadError> {
    let mut pages = vec![0u8; (BOOT_STRUCTURES_END - PML4) as usize];
    let mut entry = |gpa: u64, value: u64| {
        let at = (gpa - PML4) as usize;
        pages[at..at + 8].copy_from_slice(&value.to_le_bytes());
    };
    entry(PML4, PDPT | PRESENT_WRITABLE);
    for gib in 0..4u64 {
        let directory = PAGE_DIRECTORIES + gib * 4096;
        entry(PDPT + gib * 8, directory | PRESENT_WRITABLE);
        for i in 0..512u64 {
            let address = (gib << 30) | (i << 21);
            entry(directory + i * 8, address | PRESENT_WRITABLE | LARGE);
        }
    }
    for (i, descriptor) in GDT_ENTRIES.iter().enumerate() {
        entry(GDT + 8 * i as u64, *descriptor);
    }
    memory::load(PML4, Some(&pages), pages.len() as u64).map_err(|_| LoadError::SegmentOutside {
        start: PML4,
        end: BOOT_STRUCTURES_END,
    })
}

/// 64-bit mode with the boot structures above (attributes as in VMX: type 3:0, S 4, DPL 6:5,
/// P 7, L 13, D/B 14, G 15).
fn boot_context(entry: u64) -> InitialVpContext {
    let flat = |selector, attributes| SegmentRegister {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        attributes,
    };
    let data = flat(0x10, 0xc093);
    InitialVpContext {
        rip: entry,
        rsp: 0,
        rflags: 0x2,
        cs: flat(0x08, 0xa09b),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        // A busy 64-bit TSS and an LDT, as VM entry requires; the guest loads its own.
        tr: SegmentRegister {
            base: 0,
            limit: 0x67,
            selector: 0,
            attributes: 0x8b,
        },
        ldtr: SegmentRegister {
            base: 0,
            limit: 0xffff,
            selector: 0,
            attributes: 0x82,
        },
        idtr: TableRegister::default(),
        gdtr: TableRegister {
            limit: (GDT_ENTRIES.len() * 8 - 1) as u16,
            base: GDT,
        },
        // EFER.LME|LMA; CR0.PE|ET|NE|WP|PG; CR4.PAE|OSFXSR|OSXMMEXCPT.
        efer: 0x500,
        cr0: 0x8001_0031,
        cr3: PML4,
        cr4: 0x620,
        // The PAT's reset value (Intel SDM Vol. 3A §13.12.4).
        pat: 0x0007_0406_0007_0406,
    }
}

//! Putting the guest in place: its payload (staged in guest RAM by the host: named on the
//! command line by vmm-lite, or a PVH module) loaded, and the state it starts in. The payload
//! is an ELF (Parapet's own guest boot protocol, below) or a Linux kernel (`linux`: a guest
//! bundle or a bzImage, through Linux's 64-bit boot protocol).
//!
//! Parapet's guest boot protocol: 64-bit mode, the first 4 GiB identity-mapped with 2 MiB
//! pages (tables at 0x1000-0x6fff), a flat GDT at 0x7000 (code 0x08, data 0x10), RIP the ELF
//! entry, interrupts off, no IDT and no stack yet — the guest sets up its own, as a kernel
//! entered from a boot loader does. Linux's differs in its GDT (code 0x10, data 0x18) and in
//! RSI, the zero page's address.

use alloc::vec;

use hvdef::hypercall::InitialVpContext;
use hvdef::registers::{SegmentRegister, TableRegister};
use kernel::elf;

use super::linux::{self, LinuxError};
use crate::guest::elf_load;
use crate::guest::ram;

/// Where the boot structures go, in guest RAM; payloads must stay clear of them.
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
/// Four page directories, one per GiB.
const PAGE_DIRECTORIES: u64 = 0x3000;
const GDT: u64 = 0x7000;
const BOOT_STRUCTURES_END: u64 = 0x8000;

/// A flat 64-bit code and a flat data descriptor (Intel SDM Vol. 3A §3.4.5).
const CODE_64: u64 = 0x00af_9b00_0000_ffff;
const DATA: u64 = 0x00cf_9300_0000_ffff;
/// The GDTs: Parapet's protocol's code (0x08) and data (0x10) selectors; Linux's
/// `__BOOT_CS` (0x10) and `__BOOT_DS` (0x18) (`abi::linux_boot::BOOT_CS`, `BOOT_DS`).
const ELF_GDT: [u64; 4] = [0, CODE_64, DATA, 0];
const LINUX_GDT: [u64; 4] = [0, 0, CODE_64, DATA];
/// Page-table entry bits: present, writable; PS for a 2 MiB page.
const PRESENT_WRITABLE: u64 = 0b11;
const LARGE: u64 = 1 << 7;

/// Why the payload could not be loaded.
#[derive(Clone, Copy, Debug)]
pub enum LoadError {
    Elf(elf_load::LoadError),
    Linux(LinuxError),
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadError::Elf(e) => e.fmt(f),
            LoadError::Linux(e) => write!(f, "Linux guest: {e}"),
        }
    }
}

/// The guest's first VP's state at its entry: the boot context and RSI (Linux's zero page).
pub struct GuestStart {
    pub context: InitialVpContext,
    pub rsi: u64,
}

/// Loads the payload staged at `address` (`size` bytes) for a guest of `cpus` CPUs and builds
/// the boot structures; returns the state its first VP starts in.
pub fn load(address: u64, size: u64, cpus: u32) -> Result<GuestStart, LoadError> {
    let mut head = [0u8; 0x210];
    let head_len = head.len().min(size as usize);
    // A payload outside RAM fails in either loader with its own message.
    let _ = ram::load_from(address, &mut head[..head_len]);
    let (start, gdt) = if linux::is_linux(&head[..head_len]) {
        let loaded = linux::load(address, size, cpus).map_err(LoadError::Linux)?;
        let start = GuestStart {
            context: boot_context(loaded.entry, &LINUX_GDT, linux_selectors()),
            rsi: loaded.zero_page,
        };
        (start, &LINUX_GDT)
    } else {
        // Page 0 stays clear too: a payload there is a mistake, not a layout.
        let loaded = elf_load::load(address, size, elf::MACHINE_X86_64, 0..BOOT_STRUCTURES_END)
            .map_err(LoadError::Elf)?;
        let start = GuestStart {
            context: boot_context(loaded.entry, &ELF_GDT, (0x08, 0x10)),
            rsi: 0,
        };
        (start, &ELF_GDT)
    };
    build_boot_structures(gdt).map_err(LoadError::Elf)?;
    Ok(start)
}

/// Linux's boot code and data selectors.
fn linux_selectors() -> (u16, u16) {
    (abi::linux_boot::BOOT_CS, abi::linux_boot::BOOT_DS)
}

/// The identity map of the first 4 GiB and the GDT, built here and copied to guest RAM.
fn build_boot_structures(gdt: &[u64]) -> Result<(), elf_load::LoadError> {
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
    for (i, descriptor) in gdt.iter().enumerate() {
        entry(GDT + 8 * i as u64, *descriptor);
    }
    ram::load(PML4, Some(&pages), pages.len() as u64).map_err(|_| {
        elf_load::LoadError::SegmentOutside {
            start: PML4,
            end: BOOT_STRUCTURES_END,
        }
    })
}

/// 64-bit mode with the boot structures above (attributes as in VMX: type 3:0, S 4, DPL 6:5,
/// P 7, L 13, D/B 14, G 15).
fn boot_context(entry: u64, gdt: &[u64], (code, data): (u16, u16)) -> InitialVpContext {
    let flat = |selector, attributes| SegmentRegister {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        attributes,
    };
    let data = flat(data, 0xc093);
    InitialVpContext {
        rip: entry,
        rsp: 0,
        rflags: 0x2,
        cs: flat(code, 0xa09b),
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
            limit: (gdt.len() * 8 - 1) as u16,
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

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
use kernel::elf;

use crate::guest::elf_load;
pub use crate::guest::elf_load::LoadError;
use crate::guest::ram;

/// Where the boot structures go, in guest RAM; payloads must stay clear of them.
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
/// Four page directories, one per GiB.
const PAGE_DIRECTORIES: u64 = 0x3000;
const GDT: u64 = 0x7000;
const BOOT_STRUCTURES_END: u64 = 0x8000;

/// GDT entries: null, 64-bit code (0x08), data (0x10) (Intel SDM Vol. 3A §3.4.5).
const GDT_ENTRIES: [u64; 3] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
/// Page-table entry bits: present, writable; PS for a 2 MiB page.
const PRESENT_WRITABLE: u64 = 0b11;
const LARGE: u64 = 1 << 7;

/// Loads the ELF staged at `address` (`size` bytes) and builds the boot structures; returns
/// the context the guest starts in.
pub fn load(address: u64, size: u64) -> Result<InitialVpContext, LoadError> {
    // Page 0 stays clear too: a payload there is a mistake, not a layout.
    let loaded = elf_load::load(address, size, elf::MACHINE_X86_64, 0..BOOT_STRUCTURES_END)?;
    build_boot_structures()?;
    Ok(boot_context(loaded.entry))
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
    ram::load(PML4, Some(&pages), pages.len() as u64).map_err(|_| LoadError::SegmentOutside {
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

//! Builds Parapet's IGVM file (IGVM spec v1; `igvm` crate 0.5 for the encoding).
//!
//! One file serves every platform: platform headers for native (mask bit 0) and VBS with
//! VTL2 (bit 1); SNP (bit 2) and TDX (bit 3) come with their shims, sharing the same page data
//! (the layout already reserves their VMSA, CPUID, secrets, TD HOB and reset pages).
//! What goes in, in measurement order:
//! 1. the firmware's load segments, page by page, at their link addresses;
//! 2. boot page tables identity-mapping 0..4 GiB, and a GDT (see `parapet_abi::igvm_layout`);
//! 3. parameter areas: VP count, memory map, command line;
//! 4. the paravisor region as required, VTL2-protectable memory;
//! 5. the entry context for each platform: long mode, RIP at the firmware's IGVM entry,
//!    RSI at the first parameter page.
//!
//! Output is a pure function of the firmware bytes: the same input gives the same file.

use std::collections::BTreeMap;

use abi::igvm_layout::*;
use igvm::hv_defs::Vtl;
use igvm::registers::{SegmentRegister, TableRegister, X86Register};
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader, IgvmRevision};
use igvm_defs::{
    IgvmNativeVpContextX64, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM,
};
use zerocopy::FromZeros;

use crate::elf::{u64_at, Elf};
use crate::ImageError;

/// Compatibility mask bits, one per platform header.
pub const NATIVE_MASK: u32 = 1 << 0;
pub const VBS_MASK: u32 = 1 << 1;
/// Every platform this file serves.
pub const ALL_PLATFORMS: u32 = NATIVE_MASK | VBS_MASK;

/// x86 control-register values for the 64-bit entry (Intel SDM Vol. 3A §2.5, §4.1).
const CR0: u64 = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 31); // PE MP ET NE WP PG
const CR4: u64 = 1 << 5; // PAE
const EFER: u64 = (1 << 8) | (1 << 10) | (1 << 11); // LME LMA NXE
/// Segment attributes: 64-bit code (G, L, P, S, execute/read accessed) and data (G, D/B, P, S,
/// read/write accessed), in the VMCS/IGVM 16-bit attribute layout.
const CODE_ATTRIBUTES: u16 = 0xa09b;
const DATA_ATTRIBUTES: u16 = 0xc093;
const GDT: [u64; 3] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];

/// The firmware's 64-bit IGVM entry point, from its `Parapet` ELF note.
fn entry_point(elf: &Elf<'_>) -> Result<u64, ImageError> {
    elf.notes()
        .iter()
        .find(|n| n.name == ENTRY_NOTE_NAME && n.kind == ENTRY_NOTE_TYPE && n.desc.len() == 8)
        .and_then(|n| u64_at(n.desc, 0))
        .ok_or(ImageError::NoIgvmEntry)
}

/// The firmware's memory image, page by page (pages the file does not fill are zero).
fn firmware_pages(elf: &Elf<'_>) -> Result<BTreeMap<u64, Vec<u8>>, ImageError> {
    let mut pages: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for s in elf
        .segments
        .iter()
        .filter(|s| s.is_load() && s.mem_size > 0)
    {
        let end = s
            .paddr
            .checked_add(s.mem_size)
            .ok_or(ImageError::OutsideRegion {
                start: s.paddr,
                end: u64::MAX,
            })?;
        if s.paddr < PARAVISOR_BASE || end > BOOT_TABLES {
            return Err(ImageError::OutsideRegion {
                start: s.paddr,
                end,
            });
        }
        let data = elf.segment_data(s)?;
        let mut page = s.paddr & !(PAGE_SIZE - 1);
        while page < end {
            let bytes = pages.entry(page).or_default();
            // Copy the part of the segment's file data that lands in this page.
            let lo = page.max(s.paddr);
            let hi = (page + PAGE_SIZE).min(s.paddr + data.len() as u64);
            if lo < hi {
                if bytes.is_empty() {
                    bytes.resize(PAGE_SIZE as usize, 0);
                }
                let src = &data[(lo - s.paddr) as usize..(hi - s.paddr) as usize];
                bytes[(lo - page) as usize..(hi - page) as usize].copy_from_slice(src);
            }
            page += PAGE_SIZE;
        }
    }
    Ok(pages)
}

/// PML4, PDPT and four page directories identity-mapping 0..4 GiB with 2 MiB pages.
fn boot_page_tables() -> Vec<Vec<u8>> {
    const PRESENT_WRITABLE: u64 = 0x3;
    const LARGE: u64 = 0x80;
    let mut tables = vec![vec![0u8; PAGE_SIZE as usize]; BOOT_TABLE_PAGES as usize];
    let pdpt = BOOT_TABLES + PAGE_SIZE;
    tables[0][..8].copy_from_slice(&(pdpt | PRESENT_WRITABLE).to_le_bytes());
    for d in 0..4u64 {
        let pd = BOOT_TABLES + (2 + d) * PAGE_SIZE;
        tables[1][d as usize * 8..d as usize * 8 + 8]
            .copy_from_slice(&(pd | PRESENT_WRITABLE).to_le_bytes());
        for e in 0..512u64 {
            let address = (d * 512 + e) << 21;
            let at = e as usize * 8;
            tables[2 + d as usize][at..at + 8]
                .copy_from_slice(&(address | PRESENT_WRITABLE | LARGE).to_le_bytes());
        }
    }
    tables
}

fn page_data(gpa: u64, data: Vec<u8>) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: ALL_PLATFORMS,
        flags: IgvmPageDataFlags::new(),
        data_type: IgvmPageDataType::NORMAL,
        data,
    }
}

fn parameter_area(
    index: u32,
    gpa: u64,
    bytes: u64,
    parameter: fn(IGVM_VHS_PARAMETER) -> IgvmDirectiveHeader,
) -> [IgvmDirectiveHeader; 3] {
    [
        IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: bytes,
            parameter_area_index: index,
            initial_data: Vec::new(),
        },
        parameter(IGVM_VHS_PARAMETER {
            parameter_area_index: index,
            byte_offset: 0,
        }),
        IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa,
            compatibility_mask: ALL_PLATFORMS,
            parameter_area_index: index,
        }),
    ]
}

fn native_context(entry: u64) -> IgvmDirectiveHeader {
    let mut c = IgvmNativeVpContextX64::new_zeroed();
    c.rip = entry;
    c.rsi = VP_COUNT_PAGE;
    c.rflags = 0x2;
    c.gdtr_base = BOOT_GDT;
    c.gdtr_limit = (GDT.len() * 8 - 1) as u16;
    c.code_selector = CODE_SELECTOR;
    c.code_attributes = CODE_ATTRIBUTES;
    c.code_limit = u32::MAX;
    c.data_selector = DATA_SELECTOR;
    c.data_attributes = DATA_ATTRIBUTES;
    c.data_limit = u32::MAX;
    c.cr0 = CR0;
    c.cr3 = BOOT_TABLES;
    c.cr4 = CR4;
    c.efer = EFER;
    IgvmDirectiveHeader::X64NativeVpContext {
        compatibility_mask: NATIVE_MASK,
        vp_index: 0,
        context: Box::new(c),
    }
}

fn vbs_context(entry: u64) -> IgvmDirectiveHeader {
    let code = SegmentRegister {
        base: 0,
        limit: u32::MAX,
        selector: CODE_SELECTOR,
        attributes: CODE_ATTRIBUTES,
    };
    let data = SegmentRegister {
        base: 0,
        limit: u32::MAX,
        selector: DATA_SELECTOR,
        attributes: DATA_ATTRIBUTES,
    };
    let registers = vec![
        X86Register::Gdtr(TableRegister {
            base: BOOT_GDT,
            limit: (GDT.len() * 8 - 1) as u16,
        }),
        X86Register::Cr0(CR0),
        X86Register::Cr3(BOOT_TABLES),
        X86Register::Cr4(CR4),
        X86Register::Efer(EFER),
        X86Register::Cs(code),
        X86Register::Ds(data),
        X86Register::Es(data),
        X86Register::Fs(data),
        X86Register::Gs(data),
        X86Register::Ss(data),
        X86Register::Rflags(0x2),
        X86Register::Rsi(VP_COUNT_PAGE),
        X86Register::Rip(entry),
    ];
    IgvmDirectiveHeader::X64VbsVpContext {
        vtl: Vtl::Vtl2,
        registers,
        compatibility_mask: VBS_MASK,
    }
}

/// Builds the IGVM file for the x86_64 firmware ELF `firmware`.
pub fn build(firmware: &[u8]) -> Result<Vec<u8>, ImageError> {
    let elf = Elf::parse(firmware)?;
    let entry = entry_point(&elf)?;
    let platforms = vec![
        IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: NATIVE_MASK,
            highest_vtl: 0,
            platform_type: IgvmPlatformType::NATIVE,
            platform_version: 1,
            shared_gpa_boundary: 0,
        }),
        IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: VBS_MASK,
            highest_vtl: 2,
            platform_type: IgvmPlatformType::VSM_ISOLATION,
            platform_version: 1,
            shared_gpa_boundary: 0,
        }),
    ];
    let mut directives = Vec::new();
    for (gpa, data) in firmware_pages(&elf)? {
        directives.push(page_data(gpa, data));
    }
    for (i, table) in boot_page_tables().into_iter().enumerate() {
        directives.push(page_data(BOOT_TABLES + i as u64 * PAGE_SIZE, table));
    }
    directives.push(page_data(
        BOOT_GDT,
        GDT.iter().flat_map(|d| d.to_le_bytes()).collect(),
    ));
    directives.extend(parameter_area(
        VP_COUNT_AREA,
        VP_COUNT_PAGE,
        PAGE_SIZE,
        IgvmDirectiveHeader::VpCount,
    ));
    directives.extend(parameter_area(
        MEMORY_MAP_AREA,
        MEMORY_MAP_PAGES,
        MEMORY_MAP_SIZE,
        IgvmDirectiveHeader::MemoryMap,
    ));
    directives.extend(parameter_area(
        COMMAND_LINE_AREA,
        COMMAND_LINE_PAGE,
        COMMAND_LINE_SIZE,
        IgvmDirectiveHeader::CommandLine,
    ));
    directives.push(IgvmDirectiveHeader::RequiredMemory {
        gpa: PARAVISOR_BASE,
        compatibility_mask: ALL_PLATFORMS,
        number_of_bytes: PARAVISOR_SIZE as u32,
        vtl2_protectable: true,
    });
    directives.push(native_context(entry));
    directives.push(vbs_context(entry));

    // Version 2: the native VP context is defined from IGVM v2 on.
    let revision = IgvmRevision::V2 {
        arch: igvm::Arch::X64,
        page_size: PAGE_SIZE as u32,
    };
    let file = IgvmFile::new(revision, platforms, Vec::new(), directives)
        .map_err(|e| ImageError::Igvm(e.to_string()))?;
    let mut out = Vec::new();
    file.serialize(&mut out)
        .map_err(|e| ImageError::Igvm(e.to_string()))?;
    Ok(out)
}

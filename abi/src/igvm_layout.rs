//! Guest-physical layout of Parapet loaded from an IGVM file (x86_64).
//!
//! ```text
//! PARAVISOR_BASE (1 MiB)      firmware image (its ELF load segments, .bss included)
//!   ...                       RAM the firmware manages for itself (frames, heap)
//! BOOT_TABLES                 6 pages: PML4, PDPT, 4 PDs identity-mapping 0..4 GiB (2 MiB pages)
//! BOOT_GDT                    1 page: null, 64-bit code (0x08), data (0x10)
//! VP_COUNT_PAGE               parameter: u32 VP count at offset 0
//! MEMORY_MAP_PAGES            parameter: IGVM memory map entries (see igvm_memory_map)
//! COMMAND_LINE_PAGE           parameter: NUL-terminated command line
//! SNP_VMSA_PAGE               reserved: SEV-SNP, VP 0's VMSA
//! SNP_CPUID_PAGE              reserved: SEV-SNP, the CPUID page
//! SNP_SECRETS_PAGE            reserved: SEV-SNP, the secrets page
//! TDX_TD_HOB_PAGE             reserved: TDX, the TD hand-off block
//! BOOT_END                    (free up to the end of the region)
//! PARAVISOR_BASE + PARAVISOR_SIZE
//!   ...
//! TDX_RESET_PAGE (4 GiB - 4 KiB)  reserved: TDX, the reset vector's page
//! ```
//!
//! The whole region is declared as IGVM required memory, VTL2-protectable: under a VTL
//! platform, VTL0 never maps it. The SEV-SNP and TDX pages are reserved so those platforms
//! can join the same file (with their shims) without moving anything the others use; the
//! firmware keeps `BOOT_TABLES..BOOT_END`, them included, out of its free memory.

/// Start of the paravisor's region; the firmware ELF is linked here.
pub const PARAVISOR_BASE: u64 = 0x10_0000;
/// Size of the paravisor's region.
pub const PARAVISOR_SIZE: u64 = 64 << 20;
pub const PAGE_SIZE: u64 = 4096;

/// The last 128 KiB of the region hold the boot structures, the parameters and the pages
/// reserved for isolated platforms.
pub const BOOT_TABLES: u64 = PARAVISOR_BASE + PARAVISOR_SIZE - 0x2_0000;
/// PML4, PDPT and four page directories.
pub const BOOT_TABLE_PAGES: u64 = 6;
pub const BOOT_GDT: u64 = BOOT_TABLES + BOOT_TABLE_PAGES * PAGE_SIZE;
pub const VP_COUNT_PAGE: u64 = BOOT_GDT + PAGE_SIZE;
pub const MEMORY_MAP_PAGES: u64 = VP_COUNT_PAGE + PAGE_SIZE;
/// Room for 680 memory map entries.
pub const MEMORY_MAP_SIZE: u64 = 4 * PAGE_SIZE;
pub const COMMAND_LINE_PAGE: u64 = MEMORY_MAP_PAGES + MEMORY_MAP_SIZE;
pub const COMMAND_LINE_SIZE: u64 = PAGE_SIZE;

/// SEV-SNP: the VMSA (saved state) of VP 0, the page an IGVM SEV-SNP VP context
/// (IGVM_VHS_VP_CONTEXT) names and the loader imports with SNP_LAUNCH_UPDATE page type VMSA
/// (AMD SEV Secure Nested Paging Firmware ABI Specification, pub. 56860, SNP_LAUNCH_UPDATE).
pub const SNP_VMSA_PAGE: u64 = COMMAND_LINE_PAGE + COMMAND_LINE_SIZE;
/// SEV-SNP: the CPUID page, IGVM page data of type IGVM_PAGE_DATA_TYPE_CPUID_DATA, imported
/// with page type CPUID: the secure processor checks the CPUID values it holds (SNP Firmware
/// ABI, SNP_LAUNCH_UPDATE and "CPUID Reporting").
pub const SNP_CPUID_PAGE: u64 = SNP_VMSA_PAGE + PAGE_SIZE;
/// SEV-SNP: the secrets page, IGVM page data of type IGVM_PAGE_DATA_TYPE_SECRETS, imported
/// with page type SECRETS: the secure processor fills it with the VM platform communication
/// keys (SNP Firmware ABI, "Secrets Page Format").
pub const SNP_SECRETS_PAGE: u64 = SNP_CPUID_PAGE + PAGE_SIZE;
/// TDX: the TD hand-off block, where a TD's first code finds what the VMM gives it (Intel TDX
/// Virtual Firmware Design Guide, "TD Hand-Off Block"; HOB format from the UEFI PI
/// specification, vol. 3).
pub const TDX_TD_HOB_PAGE: u64 = SNP_SECRETS_PAGE + PAGE_SIZE;
/// End of the boot structures, parameters and reserved pages; the firmware image must end
/// below `BOOT_TABLES`.
pub const BOOT_END: u64 = TDX_TD_HOB_PAGE + PAGE_SIZE;

/// TDX: every VP of a TD starts at the reset vector 0xFFFF_FFF0 in 32-bit protected mode
/// with paging off (Intel TDX Module Base Architecture Specification, "Initial State of a TD
/// VCPU"), so the last page below 4 GiB is where the code entering the firmware goes. It is
/// outside the paravisor's region, in the hole below 4 GiB that holds no RAM.
pub const TDX_RESET_PAGE: u64 = (4 << 30) - PAGE_SIZE;
pub const TDX_RESET_VECTOR: u64 = 0xffff_fff0;

/// IGVM parameter area indexes.
pub const VP_COUNT_AREA: u32 = 0;
pub const MEMORY_MAP_AREA: u32 = 1;
pub const COMMAND_LINE_AREA: u32 = 2;

/// GDT selectors the boot GDT provides and the entry context loads.
pub const CODE_SELECTOR: u16 = 0x08;
pub const DATA_SELECTOR: u16 = 0x10;

/// The firmware's ELF note naming its 64-bit IGVM entry point: name "Parapet", type 1, an
/// 8-byte little-endian address. At entry: long mode on the boot tables and GDT, interrupts
/// off, RSI = `VP_COUNT_PAGE` (the first parameter page), RSP unset (the firmware loads its
/// own stack).
pub const ENTRY_NOTE_NAME: &[u8] = b"Parapet\0";
pub const ENTRY_NOTE_TYPE: u32 = 1;

const _: () = assert!(BOOT_END <= PARAVISOR_BASE + PARAVISOR_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    const REGION_END: u64 = PARAVISOR_BASE + PARAVISOR_SIZE;

    /// Every item of the layout: (name, start, size).
    const ITEMS: &[(&str, u64, u64)] = &[
        (
            "firmware image",
            PARAVISOR_BASE,
            BOOT_TABLES - PARAVISOR_BASE,
        ),
        ("boot tables", BOOT_TABLES, BOOT_TABLE_PAGES * PAGE_SIZE),
        ("boot GDT", BOOT_GDT, PAGE_SIZE),
        ("VP count", VP_COUNT_PAGE, PAGE_SIZE),
        ("memory map", MEMORY_MAP_PAGES, MEMORY_MAP_SIZE),
        ("command line", COMMAND_LINE_PAGE, COMMAND_LINE_SIZE),
        ("SNP VMSA", SNP_VMSA_PAGE, PAGE_SIZE),
        ("SNP CPUID page", SNP_CPUID_PAGE, PAGE_SIZE),
        ("SNP secrets page", SNP_SECRETS_PAGE, PAGE_SIZE),
        ("TDX TD HOB", TDX_TD_HOB_PAGE, PAGE_SIZE),
        ("TDX reset page", TDX_RESET_PAGE, PAGE_SIZE),
    ];

    #[test]
    fn no_two_layout_items_overlap() {
        for (i, &(a, a_start, a_size)) in ITEMS.iter().enumerate() {
            assert_eq!(a_start % PAGE_SIZE, 0, "{a} is not page-aligned");
            assert_eq!(a_size % PAGE_SIZE, 0, "{a} is not whole pages");
            for &(b, b_start, b_size) in &ITEMS[i + 1..] {
                let apart = a_start + a_size <= b_start || b_start + b_size <= a_start;
                assert!(apart, "{a} and {b} overlap");
            }
        }
    }

    #[test]
    fn the_reserved_pages_sit_where_their_platforms_and_the_firmware_expect_them() {
        // The SNP and TD HOB pages are in the range the firmware keeps for itself.
        for page in [
            SNP_VMSA_PAGE,
            SNP_CPUID_PAGE,
            SNP_SECRETS_PAGE,
            TDX_TD_HOB_PAGE,
        ] {
            assert!((BOOT_TABLES..BOOT_END).contains(&page), "{page:#x}");
        }
        // The TDX reset page holds the reset vector, below 4 GiB and outside the region.
        assert!((TDX_RESET_PAGE..TDX_RESET_PAGE + PAGE_SIZE).contains(&TDX_RESET_VECTOR));
        assert_eq!(TDX_RESET_PAGE + PAGE_SIZE, 1 << 32);
        const { assert!(TDX_RESET_PAGE >= REGION_END) };
    }
}

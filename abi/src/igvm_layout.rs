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
//! PARAVISOR_BASE + PARAVISOR_SIZE
//! ```
//!
//! The whole region is declared as IGVM required memory, VTL2-protectable: under a VTL
//! platform, VTL0 never maps it.

/// Start of the paravisor's region; the firmware ELF is linked here.
pub const PARAVISOR_BASE: u64 = 0x10_0000;
/// Size of the paravisor's region.
pub const PARAVISOR_SIZE: u64 = 64 << 20;
pub const PAGE_SIZE: u64 = 4096;

/// The last 64 KiB of the region hold the boot structures and parameters.
pub const BOOT_TABLES: u64 = PARAVISOR_BASE + PARAVISOR_SIZE - 0x1_0000;
/// PML4, PDPT and four page directories.
pub const BOOT_TABLE_PAGES: u64 = 6;
pub const BOOT_GDT: u64 = BOOT_TABLES + BOOT_TABLE_PAGES * PAGE_SIZE;
pub const VP_COUNT_PAGE: u64 = BOOT_GDT + PAGE_SIZE;
pub const MEMORY_MAP_PAGES: u64 = VP_COUNT_PAGE + PAGE_SIZE;
/// Room for 680 memory map entries.
pub const MEMORY_MAP_SIZE: u64 = 4 * PAGE_SIZE;
pub const COMMAND_LINE_PAGE: u64 = MEMORY_MAP_PAGES + MEMORY_MAP_SIZE;
pub const COMMAND_LINE_SIZE: u64 = PAGE_SIZE;
/// End of what the image builder places; the firmware image must end below `BOOT_TABLES`.
pub const BOOT_END: u64 = COMMAND_LINE_PAGE + COMMAND_LINE_SIZE;

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

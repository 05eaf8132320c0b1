//! The Linux x86 boot protocol, as a 64-bit loader speaks it: reading a bzImage's setup header
//! and building the `boot_params` ("zero page") the kernel's 64-bit entry point takes in RSI.
//!
//! References, all in the Linux tree: `Documentation/arch/x86/boot.rst` ("The Real-Mode Kernel
//! Header", "Details of Header Fields", "64-bit Boot Protocol"; cited below as boot.rst) and
//! `Documentation/arch/x86/zero-page.rst` (cited as zero-page.rst), whose offsets are those of
//! `struct boot_params` in `arch/x86/include/uapi/asm/bootparam.h`. The setup header sits at
//! the same offset (0x1f1) in the image file and in `boot_params`.
//!
//! What a 64-bit loader does with these (boot.rst, "64-bit Boot Protocol"):
//! 1. [`SetupHeader::parse`] the image; load [`SetupHeader::kernel`] (the protected-mode
//!    kernel, from file offset `(setup_sects + 1) * 512` to the end) at an address chosen by
//!    [`SetupHeader::place`] from RAM nothing else uses.
//! 2. Write the command line (NUL-terminated), the initrd, the ACPI tables; compute the e820
//!    map with [`guest_e820`]; build the zero page with [`build_zero_page`] and write it
//!    anywhere in RAM (4 KiB).
//! 3. Enter at `load address + ENTRY_64_OFFSET` in 64-bit mode with paging on, the kernel's
//!    `init_size` bytes from its load address, the zero page and the command line
//!    identity-mapped, a GDT with flat 4 GiB descriptors at [`BOOT_CS`] (execute/read) and
//!    [`BOOT_DS`] (read/write) loaded, CS = `BOOT_CS`, DS = ES = SS = `BOOT_DS`, interrupts
//!    off, and RSI = the zero page's address.
//!
//! What must stay out of the e820 RAM: everything the kernel reads after it has started
//! allocating, which here means the ACPI tables (typed [`e820::ACPI`] by [`guest_e820`]). The
//! decompressor's KASLR may put the kernel anywhere in e820 RAM except its own buffer, the
//! zero page, the command line, the initrd and `setup_data`; the kernel reserves the initrd
//! itself and copies the zero page and command line early.
//!
//! Checked against Debian's 6.1.0-56-amd64 bzImage (not part of the tests): its header parses
//! to the values the test fixture copies, and that kernel boots under QEMU with a zero page
//! and ACPI tables built here (entered through the 32-bit entry, which takes the same zero
//! page), finds 2 CPUs, its initrd and exactly the e820 RAM given, and powers off through the
//! ACPI sleep register.
//!
//! The image is trusted no more than any file: every field is read bounds-checked, all
//! arithmetic is checked, and no input makes anything here panic.

use alloc::vec;
use alloc::vec::Vec;

use le::{u16_at, u32_at, u64_at, u8_at};

/// "a sector" is 512 bytes, whatever the medium (boot.rst, "The Real-Mode Kernel Header").
const SECTOR: usize = 512;

/// Setup header fields (boot.rst, "The Real-Mode Kernel Header" table): file offsets, equal to
/// their offsets in `boot_params`.
pub mod header {
    /// Start of the setup header: `setup_sects`, 1 byte; "If this field is 0, the real value
    /// is 4".
    pub const SETUP_SECTS: usize = 0x1f1;
    /// `syssize`, 4 bytes (2.04+): the protected-mode code's size in 16-byte paragraphs.
    pub const SYSSIZE: usize = 0x1f4;
    /// `boot_flag`, 2 bytes: 0xAA55.
    pub const BOOT_FLAG: usize = 0x1fe;
    /// `jump`, 2 bytes: 0xEB and a signed 8-bit offset relative to 0x202, which also gives the
    /// header's length: it ends at `0x202 + byte at 0x201` (boot.rst, "64-bit Boot
    /// Protocol").
    pub const JUMP: usize = 0x200;
    /// `header`, 4 bytes: "HdrS".
    pub const MAGIC: usize = 0x202;
    /// `version`, 2 bytes: (major << 8) | minor.
    pub const VERSION: usize = 0x206;
    /// `type_of_loader`, 1 byte, write (obligatory).
    pub const TYPE_OF_LOADER: usize = 0x210;
    /// `loadflags`, 1 byte, modify (obligatory).
    pub const LOADFLAGS: usize = 0x211;
    /// `code32_start`, 4 bytes, modify (optional, reloc): the protected-mode kernel's load
    /// address.
    pub const CODE32_START: usize = 0x214;
    /// `ramdisk_image` / `ramdisk_size`, 4 bytes each, write (obligatory): low 32 bits.
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21c;
    /// `cmd_line_ptr`, 4 bytes (2.02+), write (obligatory): low 32 bits.
    pub const CMD_LINE_PTR: usize = 0x228;
    /// `initrd_addr_max`, 4 bytes (2.03+): the highest byte the initrd may occupy.
    pub const INITRD_ADDR_MAX: usize = 0x22c;
    /// `kernel_alignment`, 4 bytes (2.05+).
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    /// `relocatable_kernel`, 1 byte (2.05+).
    pub const RELOCATABLE_KERNEL: usize = 0x234;
    /// `min_alignment`, 1 byte (2.10+): a power of two.
    pub const MIN_ALIGNMENT: usize = 0x235;
    /// `xloadflags`, 2 bytes (2.12+).
    pub const XLOADFLAGS: usize = 0x236;
    /// `cmdline_size`, 4 bytes (2.06+): the longest command line, without its NUL.
    pub const CMDLINE_SIZE: usize = 0x238;
    /// `payload_offset` and `payload_length`, 4 bytes each (2.08+), read: the compressed
    /// kernel inside the protected-mode kernel, from its start.
    pub const PAYLOAD_OFFSET: usize = 0x248;
    pub const PAYLOAD_LENGTH: usize = 0x24c;
    /// `setup_data`, 8 bytes (2.09+), write (special): a linked list the loader owns.
    pub const SETUP_DATA: usize = 0x250;
    /// `pref_address`, 8 bytes (2.10+).
    pub const PREF_ADDRESS: usize = 0x258;
    /// `init_size`, 4 bytes (2.10+).
    pub const INIT_SIZE: usize = 0x260;
    /// The header must reach past `init_size` for this loader to read what it needs.
    pub const MIN_END: usize = INIT_SIZE + 4;
    /// Where the header's room in `boot_params` ends: `edd_mbr_sig_buffer` starts at 0x290
    /// (zero-page.rst).
    pub const MAX_END: usize = 0x290;

    pub const BOOT_FLAG_VALUE: u16 = 0xaa55;
    pub const MAGIC_VALUE: &[u8; 4] = b"HdrS";
    /// `type_of_loader` 0xFF: "undefined", for a loader without an assigned ID.
    pub const LOADER_UNDEFINED: u8 = 0xff;
    /// `loadflags` bit 0, LOADED_HIGH: the protected-mode code goes at 0x100000 (a bzImage).
    pub const LOADED_HIGH: u8 = 1 << 0;
    /// `xloadflags` bit 0, XLF_KERNEL_64: "this kernel has the legacy 64-bit entry point at
    /// 0x200".
    pub const XLF_KERNEL_64: u16 = 1 << 0;
    /// `xloadflags` bit 1, XLF_CAN_BE_LOADED_ABOVE_4G: kernel, boot_params, command line and
    /// ramdisk may be above 4 GiB.
    pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
    /// 2.12 added `xloadflags` and the 64-bit fields of `boot_params`.
    pub const MIN_VERSION: u16 = 0x020c;
}

/// `boot_params` fields outside the setup header (zero-page.rst).
pub mod zero_page {
    /// `sizeof(struct boot_params)`: "boot_params proper is limited to 4096 bytes" (boot.rst).
    pub const LEN: usize = 4096;
    /// `acpi_rsdp_addr`, 8 bytes: the RSDP's physical address.
    pub const ACPI_RSDP_ADDR: usize = 0x070;
    /// `ext_ramdisk_image`, `ext_ramdisk_size`, `ext_cmd_line_ptr`, 4 bytes each: the high 32
    /// bits of `ramdisk_image`, `ramdisk_size` and `cmd_line_ptr`.
    pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
    pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
    pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
    /// `e820_entries`, 1 byte.
    pub const E820_ENTRIES: usize = 0x1e8;
    /// `sentinel`, 1 byte: non-zero tells the kernel the loader copied garbage into fields it
    /// does not know, and the kernel clears them. Left 0: this page starts all zero.
    pub const SENTINEL: usize = 0x1ef;
    /// `e820_table`, 0xA00 bytes: 128 `struct boot_e820_entry` (u64 addr, u64 size, u32 type,
    /// packed: 20 bytes).
    pub const E820_TABLE: usize = 0x2d0;
    pub const E820_ENTRY_LEN: usize = 20;
    /// E820_MAX_ENTRIES_ZEROPAGE: 0xA00 / 20.
    pub const E820_MAX_ENTRIES: usize = 128;
}

/// The 64-bit entry point is `startup_64`, 0x200 bytes into the protected-mode kernel
/// (boot.rst, XLF_KERNEL_64 and "64-bit Boot Protocol").
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// GDT selectors the 64-bit entry expects: `__BOOT_CS` and `__BOOT_DS` (boot.rst, "64-bit Boot
/// Protocol").
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;

const FOUR_GIB: u64 = 1 << 32;
const PAGE: u64 = 4096;

/// Why an image is not a kernel this loader can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The file ends before byte `need` that the header or the kernel needs.
    Truncated { need: usize, len: usize },
    /// No 0xAA55 at 0x1fe.
    NoBootFlag(u16),
    /// No "HdrS" at 0x202: a pre-2.00 kernel, or not a Linux kernel at all.
    NoHeaderMagic,
    /// Protocol older than 2.12: no 64-bit entry point to use.
    ProtocolTooOld(u16),
    /// The jump at 0x200 gives a header that is negative in size, shorter than the fields a
    /// 64-bit loader needs (up to `init_size`), or longer than its room in `boot_params`.
    BadHeaderLength(u8),
    /// LOADED_HIGH clear: a zImage, which loads at 0x10000.
    NotBzImage,
    /// XLF_KERNEL_64 clear: no 64-bit entry point.
    No64BitEntry,
    /// The setup code (`(setup_sects + 1) * 512` bytes) covers the whole file.
    NoProtectedModeKernel { kernel_offset: usize, len: usize },
    /// `syssize` says the protected-mode kernel is longer than what the file holds.
    KernelTruncated { syssize_bytes: u64, in_file: usize },
    /// A relocatable kernel's `kernel_alignment` is not a power of two.
    BadKernelAlignment(u32),
    /// A kernel that cannot be relocated names no load address at or above 1 MiB.
    BadPrefAddress(u64),
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { need, len } => {
                write!(f, "kernel image is {len} bytes, needs at least {need}")
            }
            Self::NoBootFlag(v) => write!(f, "no 0xAA55 boot flag at 0x1fe (found {v:#06x})"),
            Self::NoHeaderMagic => write!(f, "no \"HdrS\" at 0x202: not a bzImage"),
            Self::ProtocolTooOld(v) => write!(
                f,
                "boot protocol {}.{:02}: a 64-bit entry needs 2.12 or later",
                v >> 8,
                v & 0xff
            ),
            Self::BadHeaderLength(j) => write!(f, "setup header length byte {j:#04x} is invalid"),
            Self::NotBzImage => write!(f, "LOADED_HIGH is clear: a zImage, not a bzImage"),
            Self::No64BitEntry => write!(f, "XLF_KERNEL_64 is clear: no 64-bit entry point"),
            Self::NoProtectedModeKernel { kernel_offset, len } => write!(
                f,
                "the kernel should start at {kernel_offset:#x} but the file is {len:#x} bytes"
            ),
            Self::KernelTruncated {
                syssize_bytes,
                in_file,
            } => write!(
                f,
                "syssize says {syssize_bytes:#x} bytes of kernel, the file has {in_file:#x}"
            ),
            Self::BadKernelAlignment(a) => {
                write!(f, "kernel_alignment {a:#x} is not a power of two")
            }
            Self::BadPrefAddress(a) => write!(
                f,
                "a non-relocatable kernel with pref_address {a:#x}, below 1 MiB"
            ),
        }
    }
}

/// What a 64-bit loader needs from a bzImage's setup header, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupHeader {
    /// The header's bytes, `0x1f1..0x202 + jump byte`, for the zero page.
    raw: Vec<u8>,
    /// Boot protocol version, (major << 8) | minor.
    pub version: u16,
    /// Setup code sectors after the boot sector (0 in the file already turned into 4).
    pub setup_sects: u8,
    /// File offset of the protected-mode kernel: `(setup_sects + 1) * 512`.
    pub kernel_offset: usize,
    /// Bytes from `kernel_offset` to the end of the file: what the loader loads. Often a
    /// little more than `syssize * 16` (a signature appended to a signed image).
    pub kernel_size: usize,
    /// `syssize`: the protected-mode code's size in 16-byte paragraphs.
    pub syssize: u32,
    pub loadflags: u8,
    pub xloadflags: u16,
    pub relocatable: bool,
    /// Alignment the kernel wants for its load address (a power of two when relocatable).
    pub kernel_alignment: u32,
    /// The least alignment it can run at, as a power of two (2.10+).
    pub min_alignment: u8,
    /// Where it prefers to run. A relocatable kernel loaded below this runs here anyway (its
    /// decompressor moves itself up to LOAD_PHYSICAL_ADDR, which is this value), so
    /// [`SetupHeader::place`] never goes below it.
    pub pref_address: u64,
    /// Contiguous memory the kernel needs from its load address before it reads the memory
    /// map (its decompression buffer).
    pub init_size: u32,
    /// Longest command line, without the NUL.
    pub cmdline_size: u32,
    /// Highest address the initrd may occupy (without XLF_CAN_BE_LOADED_ABOVE_4G).
    pub initrd_addr_max: u32,
}

fn truncated(need: usize, len: usize) -> ImageError {
    ImageError::Truncated { need, len }
}

impl SetupHeader {
    /// Reads the setup header of the bzImage `image` and checks what a 64-bit loader must:
    /// boot flag, "HdrS", protocol 2.12+, a header long enough to hold `init_size`, LOADED_HIGH,
    /// XLF_KERNEL_64, a protected-mode kernel in the file as long as `syssize` says, and a
    /// usable alignment or load address.
    pub fn parse(image: &[u8]) -> Result<Self, ImageError> {
        use header::*;
        let len = image.len();
        let boot_flag = u16_at(image, BOOT_FLAG).ok_or(truncated(BOOT_FLAG + 2, len))?;
        if boot_flag != BOOT_FLAG_VALUE {
            return Err(ImageError::NoBootFlag(boot_flag));
        }
        let magic = image
            .get(MAGIC..MAGIC + 4)
            .ok_or(truncated(MAGIC + 4, len))?;
        if magic != MAGIC_VALUE {
            return Err(ImageError::NoHeaderMagic);
        }
        let version = u16_at(image, VERSION).ok_or(truncated(VERSION + 2, len))?;
        if version < MIN_VERSION {
            return Err(ImageError::ProtocolTooOld(version));
        }
        let jump = u8_at(image, JUMP + 1).ok_or(truncated(JUMP + 2, len))?;
        // A signed offset: a negative one (0x80 and up) gives no header at all.
        let end = MAGIC + usize::from(jump);
        if jump >= 0x80 || !(MIN_END..=MAX_END).contains(&end) {
            return Err(ImageError::BadHeaderLength(jump));
        }
        let raw = image.get(SETUP_SECTS..end).ok_or(truncated(end, len))?;
        // Every field below lies inside `raw`'s range of the file, which is present.
        let field32 = |at| u32_at(image, at).ok_or(truncated(end, len));
        let loadflags = u8_at(image, LOADFLAGS).ok_or(truncated(end, len))?;
        if loadflags & LOADED_HIGH == 0 {
            return Err(ImageError::NotBzImage);
        }
        let xloadflags = u16_at(image, XLOADFLAGS).ok_or(truncated(end, len))?;
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(ImageError::No64BitEntry);
        }
        let setup_sects = match u8_at(image, SETUP_SECTS).ok_or(truncated(end, len))? {
            0 => 4,
            n => n,
        };
        // "The 32-bit (non-real-mode) kernel starts at offset (setup_sects+1)*512 in the
        // kernel file" (boot.rst, "Loading The Rest of The Kernel"). At most 256 sectors.
        let kernel_offset = (usize::from(setup_sects) + 1) * SECTOR;
        if kernel_offset >= len {
            return Err(ImageError::NoProtectedModeKernel { kernel_offset, len });
        }
        let kernel_size = len - kernel_offset;
        let syssize = field32(SYSSIZE)?;
        let syssize_bytes = u64::from(syssize) * 16;
        if syssize_bytes > kernel_size as u64 {
            return Err(ImageError::KernelTruncated {
                syssize_bytes,
                in_file: kernel_size,
            });
        }
        let relocatable = u8_at(image, RELOCATABLE_KERNEL).ok_or(truncated(end, len))? != 0;
        let kernel_alignment = field32(KERNEL_ALIGNMENT)?;
        if relocatable && !kernel_alignment.is_power_of_two() {
            return Err(ImageError::BadKernelAlignment(kernel_alignment));
        }
        let pref_address = u64_at(image, PREF_ADDRESS).ok_or(truncated(end, len))?;
        if !relocatable && pref_address < 0x10_0000 {
            return Err(ImageError::BadPrefAddress(pref_address));
        }
        Ok(Self {
            raw: raw.to_vec(),
            version,
            setup_sects,
            kernel_offset,
            kernel_size,
            syssize,
            loadflags,
            xloadflags,
            relocatable,
            kernel_alignment,
            min_alignment: u8_at(image, MIN_ALIGNMENT).ok_or(truncated(end, len))?,
            pref_address,
            init_size: field32(INIT_SIZE)?,
            cmdline_size: field32(CMDLINE_SIZE)?,
            initrd_addr_max: field32(INITRD_ADDR_MAX)?,
        })
    }

    /// The setup header's bytes as the image has them (0x1f1 up to its end).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The protected-mode kernel within `image` (the file this header was parsed from).
    pub fn kernel<'a>(&self, image: &'a [u8]) -> &'a [u8] {
        image.get(self.kernel_offset..).unwrap_or(&[])
    }

    /// XLF_CAN_BE_LOADED_ABOVE_4G.
    pub fn can_load_above_4g(&self) -> bool {
        self.xloadflags & header::XLF_CAN_BE_LOADED_ABOVE_4G != 0
    }

    /// Bytes the kernel occupies from its load address while it starts: its decompression
    /// buffer (`init_size`), or the loaded file if that is longer.
    pub fn footprint(&self) -> u64 {
        u64::from(self.init_size).max(self.kernel_size as u64)
    }

    /// The 64-bit entry point for a kernel loaded at `load_address`.
    pub fn entry_64(&self, load_address: u64) -> Option<u64> {
        load_address.checked_add(ENTRY_64_OFFSET)
    }

    /// Whether the kernel may be loaded at `address`: the preferred address for a
    /// non-relocatable kernel; else aligned to `kernel_alignment` and not below
    /// `pref_address`; below 4 GiB unless XLF_CAN_BE_LOADED_ABOVE_4G.
    pub fn check_load_address(&self, address: u64) -> Result<(), LoadAddressError> {
        if !self.relocatable && address != self.pref_address {
            return Err(LoadAddressError::NotAtPrefAddress);
        }
        if self.relocatable {
            // is_multiple_of(0) is false, not a division by zero.
            if !address.is_multiple_of(u64::from(self.kernel_alignment)) {
                return Err(LoadAddressError::Misaligned);
            }
            if address < self.pref_address {
                return Err(LoadAddressError::BelowPrefAddress);
            }
        }
        let end = address
            .checked_add(self.footprint())
            .ok_or(LoadAddressError::Overflow)?;
        if end > FOUR_GIB && !self.can_load_above_4g() {
            return Err(LoadAddressError::AboveFourGib);
        }
        Ok(())
    }

    /// The lowest address the kernel may be loaded at ([`SetupHeader::check_load_address`])
    /// with its whole footprint inside one of the `free` ranges ((start, end), end exclusive):
    /// guest RAM less everything else the loader put there.
    pub fn place(&self, free: &[(u64, u64)]) -> Option<u64> {
        let size = self.footprint();
        let fits = |address: u64| {
            address
                .checked_add(size)
                .is_some_and(|end| free.iter().any(|&(s, e)| s <= address && end <= e))
                && self.check_load_address(address).is_ok()
        };
        if !self.relocatable {
            return Some(self.pref_address).filter(|&a| fits(a));
        }
        let align = u64::from(self.kernel_alignment);
        free.iter()
            .filter_map(|&(start, _)| align_up(start.max(self.pref_address), align))
            .filter(|&a| fits(a))
            .min()
    }
}

/// Why the kernel cannot go at a given address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadAddressError {
    NotAtPrefAddress,
    Misaligned,
    /// A relocatable kernel below `pref_address` would move itself there.
    BelowPrefAddress,
    AboveFourGib,
    Overflow,
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    value.checked_add(mask).map(|v| v & !mask)
}

/// E820 address range types (ACPI 6.5 §15, "System Address Map Interfaces": AddressRange*;
/// Linux's `enum e820_type`).
pub mod e820 {
    pub const RAM: u32 = 1;
    pub const RESERVED: u32 = 2;
    /// ACPI tables: reclaimable once the OS has read them, never given out before.
    pub const ACPI: u32 = 3;
    pub const NVS: u32 = 4;
    pub const UNUSABLE: u32 = 5;
    pub const PERSISTENT: u32 = 7;
}

/// One e820 entry: `size` bytes at `start`, of type `kind` (an [`e820`] constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub start: u64,
    pub size: u64,
    pub kind: u32,
}

impl E820Entry {
    pub fn end(&self) -> Option<u64> {
        self.start.checked_add(self.size)
    }

    /// `struct boot_e820_entry`: addr, size, type, little-endian, packed (zero-page.rst).
    pub fn to_bytes(&self) -> [u8; zero_page::E820_ENTRY_LEN] {
        let mut b = [0u8; zero_page::E820_ENTRY_LEN];
        b[0..8].copy_from_slice(&self.start.to_le_bytes());
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16..20].copy_from_slice(&self.kind.to_le_bytes());
        b
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E820Error {
    /// More than E820_MAX_ENTRIES_ZEROPAGE (128) entries.
    TooMany(usize),
    /// Entry `index` is empty, runs past 2^64, or has type 0.
    BadEntry { index: usize },
    /// Entry `index` starts before the previous one ends: the map must be sorted and
    /// non-overlapping.
    Unsorted { index: usize },
    /// A RAM or hidden range (start, end) with start after end.
    BadRange { start: u64, end: u64 },
    /// Typed entry `index` overlaps a hidden range: it would reveal what must stay hidden.
    TypedInHidden { index: usize },
    /// Typed entries `index` and another of a different type share a page.
    TypedOverlap { index: usize },
}

impl core::fmt::Display for E820Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooMany(n) => write!(f, "{n} e820 entries, at most 128 fit the zero page"),
            Self::BadEntry { index } => write!(f, "e820 entry {index} is empty or invalid"),
            Self::Unsorted { index } => {
                write!(f, "e820 entry {index} overlaps or precedes the one before")
            }
            Self::BadRange { start, end } => write!(f, "range {start:#x}..{end:#x} is inverted"),
            Self::TypedInHidden { index } => {
                write!(f, "e820 entry {index} overlaps a hidden range")
            }
            Self::TypedOverlap { index } => {
                write!(f, "e820 entry {index} overlaps another of a different type")
            }
        }
    }
}

/// Checks an e820 map for the zero page: at most 128 entries, each non-empty, within the
/// address space and of a non-zero type, sorted by address and non-overlapping.
pub fn validate_e820(entries: &[E820Entry]) -> Result<(), E820Error> {
    if entries.len() > zero_page::E820_MAX_ENTRIES {
        return Err(E820Error::TooMany(entries.len()));
    }
    let mut previous_end = 0;
    for (index, e) in entries.iter().enumerate() {
        let end = e
            .end()
            .filter(|_| e.size != 0 && e.kind != 0)
            .ok_or(E820Error::BadEntry { index })?;
        if index > 0 && e.start < previous_end {
            return Err(E820Error::Unsorted { index });
        }
        previous_end = end;
    }
    Ok(())
}

fn page_down(x: u64) -> u64 {
    x & !(PAGE - 1)
}

fn page_up(x: u64) -> Option<u64> {
    x.checked_add(PAGE - 1).map(page_down)
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// `ranges` less `cut`.
fn subtract(ranges: Vec<(u64, u64)>, cut: (u64, u64)) -> Vec<(u64, u64)> {
    ranges
        .into_iter()
        .flat_map(|(s, e)| {
            if !overlaps((s, e), cut) {
                return [(s, e), (0, 0)];
            }
            [(s, cut.0.max(s)), (cut.1.min(e), e)]
        })
        .filter(|&(s, e)| s < e)
        .collect()
}

/// The e820 map a guest sees:
/// - `ram`: the guest's RAM, (start, end) ranges, end exclusive, as `boot/src/guest/ram.rs`
///   keeps them (overlaps are merged). Trimmed inward to whole 4 KiB pages.
/// - `hidden`: (start, end) ranges left out entirely, not even as reserved: the paravisor's
///   own region, which the guest must not know exists. Widened outward to whole pages.
/// - `typed`: ranges listed with their own type whether or not they are RAM, such as the ACPI
///   tables ([`e820::ACPI`]). Widened outward to whole pages; they must not touch `hidden`.
///
/// Everything else in `ram` is [`e820::RAM`]. The result is sorted, non-overlapping, with
/// touching entries of one type merged, and fits the zero page (at most 128 entries).
pub fn guest_e820(
    ram: &[(u64, u64)],
    hidden: &[(u64, u64)],
    typed: &[E820Entry],
) -> Result<Vec<E820Entry>, E820Error> {
    let inverted = |&(start, end): &(u64, u64)| start > end;
    if let Some(&(start, end)) = ram.iter().chain(hidden).find(|r| inverted(r)) {
        return Err(E820Error::BadRange { start, end });
    }
    let hidden: Vec<(u64, u64)> = hidden
        .iter()
        .map(|&(s, e)| (page_down(s), page_up(e).unwrap_or(u64::MAX)))
        .collect();

    // Typed ranges, page-widened, sorted; same-type overlaps merge, others are refused.
    let mut typed_ranges: Vec<(u64, u64, u32, usize)> = Vec::with_capacity(typed.len());
    for (index, t) in typed.iter().enumerate() {
        let end = t
            .end()
            .filter(|_| t.size != 0 && t.kind != 0)
            .and_then(page_up)
            .ok_or(E820Error::BadEntry { index })?;
        let range = (page_down(t.start), end);
        if hidden.iter().any(|&h| overlaps(h, range)) {
            return Err(E820Error::TypedInHidden { index });
        }
        typed_ranges.push((range.0, range.1, t.kind, index));
    }
    typed_ranges.sort_unstable();
    let mut merged_typed: Vec<(u64, u64, u32)> = Vec::with_capacity(typed_ranges.len());
    for (s, e, kind, index) in typed_ranges {
        match merged_typed.last_mut() {
            Some(last) if s < last.1 => {
                if last.2 != kind {
                    return Err(E820Error::TypedOverlap { index });
                }
                last.1 = last.1.max(e);
            }
            _ => merged_typed.push((s, e, kind)),
        }
    }

    // RAM: whole pages, merged, less the hidden and typed ranges.
    let mut pieces: Vec<(u64, u64)> = ram
        .iter()
        .filter_map(|&(s, e)| Some((page_up(s)?, page_down(e))))
        .filter(|&(s, e)| s < e)
        .collect();
    pieces.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(pieces.len());
    for (s, e) in pieces {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let cuts = hidden
        .iter()
        .copied()
        .chain(merged_typed.iter().map(|&(s, e, _)| (s, e)));
    let mut ram = merged;
    for cut in cuts {
        ram = subtract(ram, cut);
    }

    let mut all: Vec<E820Entry> = ram
        .into_iter()
        .map(|(s, e)| (s, e, e820::RAM))
        .chain(merged_typed)
        .map(|(start, end, kind)| E820Entry {
            start,
            size: end - start,
            kind,
        })
        .collect();
    all.sort_unstable_by_key(|e| e.start);
    let mut out: Vec<E820Entry> = Vec::with_capacity(all.len());
    for e in all {
        match out.last_mut() {
            Some(last) if last.kind == e.kind && last.end() == Some(e.start) => {
                last.size += e.size;
            }
            _ => out.push(e),
        }
    }
    validate_e820(&out)?;
    Ok(out)
}

/// What the loader put where, for [`build_zero_page`].
#[derive(Clone, Copy, Debug)]
pub struct BootParams<'a> {
    /// Where the protected-mode kernel is loaded ([`SetupHeader::place`]).
    pub kernel_address: u64,
    /// The command line's address; the loader writes `command_line` and a NUL there.
    pub command_line_address: u64,
    /// The command line, without its NUL.
    pub command_line: &'a [u8],
    /// The initrd: (address, size).
    pub ramdisk: Option<(u64, u64)>,
    /// The e820 map ([`guest_e820`]).
    pub e820: &'a [E820Entry],
    /// The ACPI RSDP's address, for `acpi_rsdp_addr` (Linux 5.0 and later read it; older ones
    /// scan the BIOS area for the RSDP).
    pub acpi_rsdp: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootParamsError {
    Kernel(LoadAddressError),
    CommandLineTooLong {
        len: usize,
        max: u32,
    },
    /// A NUL inside the command line would end it early.
    CommandLineHasNul,
    /// `what` ends above 4 GiB and the kernel lacks XLF_CAN_BE_LOADED_ABOVE_4G.
    AboveFourGib {
        what: &'static str,
    },
    /// `what` runs past the end of the address space.
    Overflow {
        what: &'static str,
    },
    EmptyRamdisk,
    /// The initrd ends above `initrd_addr_max`.
    RamdiskAboveLimit {
        last_byte: u64,
        limit: u32,
    },
    E820(E820Error),
}

impl core::fmt::Display for BootParamsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Kernel(e) => write!(f, "kernel load address: {e:?}"),
            Self::CommandLineTooLong { len, max } => {
                write!(f, "command line of {len} bytes, the kernel takes {max}")
            }
            Self::CommandLineHasNul => write!(f, "command line contains a NUL"),
            Self::AboveFourGib { what } => write!(
                f,
                "{what} above 4 GiB, and the kernel cannot be loaded above 4 GiB"
            ),
            Self::Overflow { what } => write!(f, "{what} runs past the address space"),
            Self::EmptyRamdisk => write!(f, "the initrd is empty"),
            Self::RamdiskAboveLimit { last_byte, limit } => write!(
                f,
                "the initrd's last byte {last_byte:#x} is above initrd_addr_max {limit:#x}"
            ),
            Self::E820(e) => write!(f, "{e}"),
        }
    }
}

/// The zero page (`struct boot_params`, 4096 bytes) for `header`'s kernel: all zero (so
/// `sentinel` is 0 and the kernel trusts every field), the image's setup header copied to
/// 0x1f1 as the 64-bit boot protocol says, then the loader's fields:
/// `type_of_loader` 0xFF, `code32_start` (the load address, when below 4 GiB), `setup_data` 0
/// (the loader owns it; no list), `cmd_line_ptr` / `ext_cmd_line_ptr`, `ramdisk_image` /
/// `ramdisk_size` and their `ext_` halves, `e820_entries` / `e820_table`, `acpi_rsdp_addr`.
/// `loadflags` keeps the image's value (LOADED_HIGH; CAN_USE_HEAP and the heap are for the
/// 16-bit entry, unused here).
pub fn build_zero_page(
    header: &SetupHeader,
    params: &BootParams,
) -> Result<Vec<u8>, BootParamsError> {
    use self::header as h;
    use self::zero_page as z;
    let above_4g = header.can_load_above_4g();
    let below_4g = |what: &'static str, start: u64, len: u64| {
        let end = start
            .checked_add(len)
            .ok_or(BootParamsError::Overflow { what })?;
        if end > FOUR_GIB && !above_4g {
            return Err(BootParamsError::AboveFourGib { what });
        }
        Ok(end)
    };

    header
        .check_load_address(params.kernel_address)
        .map_err(BootParamsError::Kernel)?;

    let cmdline = params.command_line;
    if cmdline.contains(&0) {
        return Err(BootParamsError::CommandLineHasNul);
    }
    if cmdline.len() > header.cmdline_size as usize {
        return Err(BootParamsError::CommandLineTooLong {
            len: cmdline.len(),
            max: header.cmdline_size,
        });
    }
    // With its NUL.
    below_4g(
        "command line",
        params.command_line_address,
        cmdline.len() as u64 + 1,
    )?;

    if let Some((address, size)) = params.ramdisk {
        if size == 0 {
            return Err(BootParamsError::EmptyRamdisk);
        }
        let end = below_4g("initrd", address, size)?;
        let last_byte = end - 1;
        if !above_4g && last_byte > u64::from(header.initrd_addr_max) {
            return Err(BootParamsError::RamdiskAboveLimit {
                last_byte,
                limit: header.initrd_addr_max,
            });
        }
    }
    validate_e820(params.e820).map_err(BootParamsError::E820)?;

    let mut page = vec![0u8; z::LEN];
    let mut put = |at: usize, value: &[u8]| {
        // Every offset is a constant inside the page, or the header's room (checked in
        // parse); put() cannot fail.
        le::put(&mut page, at, value);
    };
    put(h::SETUP_SECTS, header.raw());
    put(h::TYPE_OF_LOADER, &[h::LOADER_UNDEFINED]);
    if let Ok(address) = u32::try_from(params.kernel_address) {
        put(h::CODE32_START, &address.to_le_bytes());
    }
    put(h::SETUP_DATA, &0u64.to_le_bytes());
    let split = |v: u64| ((v as u32).to_le_bytes(), ((v >> 32) as u32).to_le_bytes());
    let (lo, hi) = split(params.command_line_address);
    put(h::CMD_LINE_PTR, &lo);
    put(z::EXT_CMD_LINE_PTR, &hi);
    let (address, size) = params.ramdisk.unwrap_or((0, 0));
    let (lo, hi) = split(address);
    put(h::RAMDISK_IMAGE, &lo);
    put(z::EXT_RAMDISK_IMAGE, &hi);
    let (lo, hi) = split(size);
    put(h::RAMDISK_SIZE, &lo);
    put(z::EXT_RAMDISK_SIZE, &hi);
    // At most 128 entries (validated).
    put(z::E820_ENTRIES, &[params.e820.len() as u8]);
    for (i, entry) in params.e820.iter().enumerate() {
        put(z::E820_TABLE + i * z::E820_ENTRY_LEN, &entry.to_bytes());
    }
    put(
        z::ACPI_RSDP_ADDR,
        &params.acpi_rsdp.unwrap_or(0).to_le_bytes(),
    );
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A synthetic bzImage with the header values of Debian's 6.1.0-56-amd64 kernel
    /// (protocol 2.15, setup_sects 39, a 0x6a jump, relocatable with 2 MiB alignment,
    /// pref_address 16 MiB, init_size 0x3f98000, xloadflags 0x7f), and `kernel` bytes of
    /// protected-mode kernel of which `syssize` covers all but 0x40.
    fn image(kernel: usize) -> Vec<u8> {
        let setup_sects = 39usize;
        let mut b = vec![0u8; (setup_sects + 1) * 512 + kernel];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(0x1f1, &[setup_sects as u8]);
        put(0x1f4, &(((kernel - 0x40) / 16) as u32).to_le_bytes());
        put(0x1fa, &0xffffu16.to_le_bytes()); // vid_mode "normal"
        put(0x1fe, &0xaa55u16.to_le_bytes());
        put(0x200, &[0xeb, 0x6a]);
        put(0x202, b"HdrS");
        put(0x206, &0x020fu16.to_le_bytes());
        put(0x20e, &0x42c0u16.to_le_bytes()); // kernel_version
        put(0x211, &[0x01]); // LOADED_HIGH
        put(0x214, &0x10_0000u32.to_le_bytes()); // code32_start default
        put(0x224, &0x5be0u16.to_le_bytes()); // heap_end_ptr
        put(0x22c, &0x7fff_ffffu32.to_le_bytes());
        put(0x230, &0x20_0000u32.to_le_bytes());
        put(0x234, &[1, 21]); // relocatable, min_alignment 2^21
        put(0x236, &0x7fu16.to_le_bytes());
        put(0x238, &0x7ffu32.to_le_bytes());
        put(0x248, &0x2ccu32.to_le_bytes()); // payload_offset
        put(0x258, &0x100_0000u64.to_le_bytes());
        put(0x260, &0x3f9_8000u32.to_le_bytes());
        put(0x264, &0x7c_8db0u32.to_le_bytes()); // handover_offset
        put(0x268, &0x7d_579cu32.to_le_bytes()); // kernel_info_offset
        for (i, byte) in b[(setup_sects + 1) * 512..].iter_mut().enumerate() {
            *byte = i as u8;
        }
        b
    }

    fn good() -> Vec<u8> {
        image(0x1000)
    }

    fn set(mut img: Vec<u8>, at: usize, v: &[u8]) -> Vec<u8> {
        img[at..at + v.len()].copy_from_slice(v);
        img
    }

    #[test]
    fn a_debian_like_header_parses() {
        let img = good();
        let h = SetupHeader::parse(&img).unwrap();
        assert_eq!(h.version, 0x020f);
        assert_eq!(h.setup_sects, 39);
        assert_eq!(h.kernel_offset, 40 * 512);
        assert_eq!(h.kernel_size, 0x1000);
        assert_eq!(h.syssize, (0x1000 - 0x40) / 16);
        assert!(h.relocatable);
        assert_eq!(h.kernel_alignment, 0x20_0000);
        assert_eq!(h.min_alignment, 21);
        assert_eq!(h.pref_address, 0x100_0000);
        assert_eq!(h.init_size, 0x3f9_8000);
        assert_eq!(h.footprint(), 0x3f9_8000);
        assert_eq!(h.cmdline_size, 0x7ff);
        assert_eq!(h.initrd_addr_max, 0x7fff_ffff);
        assert!(h.can_load_above_4g());
        assert_eq!(h.raw(), &img[0x1f1..0x26c]);
        assert_eq!(h.kernel(&img), &img[40 * 512..]);
        assert_eq!(h.entry_64(0x420_0000), Some(0x420_0200));
    }

    #[test]
    fn setup_sects_zero_means_four() {
        let h = SetupHeader::parse(&set(good(), 0x1f1, &[0])).unwrap();
        assert_eq!(h.setup_sects, 4);
        assert_eq!(h.kernel_offset, 5 * 512);
        assert_eq!(h.kernel_size, 40 * 512 + 0x1000 - 5 * 512);
    }

    #[test]
    fn every_rule_has_its_own_error() {
        use ImageError::*;
        let parse = |img: &[u8]| SetupHeader::parse(img).unwrap_err();
        assert_eq!(
            parse(&good()[..0x100]),
            Truncated {
                need: 0x200,
                len: 0x100
            }
        );
        assert_eq!(
            parse(&set(good(), 0x1fe, &[0x55, 0xab])),
            NoBootFlag(0xab55)
        );
        assert_eq!(parse(&set(good(), 0x202, b"HdrZ")), NoHeaderMagic);
        assert_eq!(
            parse(&good()[..0x204]),
            Truncated {
                need: 0x206,
                len: 0x204
            }
        );
        assert_eq!(
            parse(&set(good(), 0x206, &0x020bu16.to_le_bytes())),
            ProtocolTooOld(0x020b)
        );
        assert_eq!(parse(&set(good(), 0x201, &[0x80])), BadHeaderLength(0x80));
        assert_eq!(parse(&set(good(), 0x201, &[0xfe])), BadHeaderLength(0xfe));
        // 0x202 + 0x61 = 0x263: init_size (0x260..0x264) would be cut.
        assert_eq!(parse(&set(good(), 0x201, &[0x61])), BadHeaderLength(0x61));
        assert!(SetupHeader::parse(&set(good(), 0x201, &[0x62])).is_ok());
        assert!(SetupHeader::parse(&set(good(), 0x201, &[0x7f])).is_ok());
        assert_eq!(
            parse(&good()[..0x250]),
            Truncated {
                need: 0x26c,
                len: 0x250
            }
        );
        assert_eq!(parse(&set(good(), 0x211, &[0x80])), NotBzImage);
        assert_eq!(
            parse(&set(good(), 0x236, &0x7eu16.to_le_bytes())),
            No64BitEntry
        );
        assert_eq!(
            parse(&good()[..40 * 512]),
            NoProtectedModeKernel {
                kernel_offset: 40 * 512,
                len: 40 * 512
            }
        );
        assert_eq!(
            parse(&good()[..40 * 512 + 0x100]),
            KernelTruncated {
                syssize_bytes: 0x1000 - 0x40,
                in_file: 0x100
            }
        );
        assert_eq!(
            parse(&set(good(), 0x230, &0x30_0000u32.to_le_bytes())),
            BadKernelAlignment(0x30_0000)
        );
        assert_eq!(
            parse(&set(good(), 0x230, &0u32.to_le_bytes())),
            BadKernelAlignment(0)
        );
        let fixed = set(good(), 0x234, &[0]);
        assert!(SetupHeader::parse(&fixed).is_ok());
        assert_eq!(
            parse(&set(fixed, 0x258, &0x8_0000u64.to_le_bytes())),
            BadPrefAddress(0x8_0000)
        );
    }

    /// Every byte of the header area flipped, and every truncation: a header or a clean
    /// error, never a panic; whatever parses still satisfies the rules.
    #[test]
    fn corrupted_and_truncated_images_never_panic() {
        let img = good();
        for at in 0..0x300 {
            for flip in [0x01u8, 0x02, 0x10, 0x40, 0x80, 0xff] {
                let mut bad = img.clone();
                bad[at] ^= flip;
                if let Ok(h) = SetupHeader::parse(&bad) {
                    assert!(h.version >= 0x020c);
                    assert_ne!(h.xloadflags & 1, 0);
                    assert_eq!(h.kernel_offset + h.kernel_size, bad.len());
                    assert!(u64::from(h.syssize) * 16 <= h.kernel_size as u64);
                    assert!(h.raw().len() >= 0x264 - 0x1f1 && 0x1f1 + h.raw().len() <= 0x290);
                    let _ = h.place(&[(0, u64::MAX)]);
                }
            }
        }
        for len in 0..img.len() {
            let _ = SetupHeader::parse(&img[..len]);
        }
        // Extreme values in every multi-byte field at once.
        let mut wild = img.clone();
        for at in [0x1f4, 0x22c, 0x230, 0x238, 0x258, 0x25c, 0x260] {
            wild[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        let _ = SetupHeader::parse(&wild);
    }

    #[test]
    fn placement_follows_pref_address_alignment_and_free_ram() {
        let h = SetupHeader::parse(&good()).unwrap();
        // Parapet's region (1 MiB + 64 MiB) covers pref_address: the next 2 MiB boundary after
        // it, 66 MiB.
        let free = [(0x1000, 0x9f000), (0x410_0000, 0x2000_0000)];
        assert_eq!(h.place(&free), Some(0x420_0000));
        assert_eq!(h.check_load_address(0x420_0000), Ok(()));
        // Room at pref_address itself: taken.
        assert_eq!(h.place(&[(0x80_0000, 0x1000_0000)]), Some(0x100_0000));
        // No range long enough for init_size.
        assert_eq!(h.place(&[(0x100_0000, 0x400_0000)]), None);
        assert_eq!(
            h.check_load_address(0x430_0000),
            Err(LoadAddressError::Misaligned)
        );
        assert_eq!(
            h.check_load_address(0x20_0000),
            Err(LoadAddressError::BelowPrefAddress)
        );
        assert_eq!(
            h.check_load_address(!0x1f_ffff),
            Err(LoadAddressError::Overflow)
        );
        // Without XLF_CAN_BE_LOADED_ABOVE_4G, nothing past 4 GiB.
        let low = SetupHeader::parse(&set(good(), 0x236, &0x1u16.to_le_bytes())).unwrap();
        assert_eq!(low.place(&[(0x1_0000_0000, 0x2_0000_0000)]), None);
        assert_eq!(
            low.check_load_address(0xfe00_0000),
            Err(LoadAddressError::AboveFourGib)
        );
        // A fixed kernel goes at pref_address or nowhere.
        let fixed = SetupHeader::parse(&set(good(), 0x234, &[0])).unwrap();
        assert_eq!(fixed.place(&free), None);
        assert_eq!(fixed.place(&[(0, 0x8000_0000)]), Some(0x100_0000));
        assert_eq!(
            fixed.check_load_address(0x420_0000),
            Err(LoadAddressError::NotAtPrefAddress)
        );
    }

    fn parapet_like_e820() -> Vec<E820Entry> {
        // Guest RAM under QEMU with 256 MiB: 0..0x9f000 (sub-1 MiB RAM, which Linux needs for
        // its real-mode trampoline) and 1 MiB..256 MiB; Parapet's region hidden; ACPI tables
        // in a page below 640 KiB.
        guest_e820(
            &[(0, 0x9_fc00), (0x10_0000, 0x1000_0000)],
            &[(0x10_0000, 0x410_0000)],
            &[E820Entry {
                start: 0x9_e000,
                size: 0x2b0,
                kind: e820::ACPI,
            }],
        )
        .unwrap()
    }

    #[test]
    fn the_guests_map_hides_the_paravisor_and_types_the_acpi_tables() {
        let map = parapet_like_e820();
        assert_eq!(
            map,
            [
                E820Entry {
                    start: 0,
                    size: 0x9_e000,
                    kind: e820::RAM
                },
                E820Entry {
                    start: 0x9_e000,
                    size: 0x1000,
                    kind: e820::ACPI
                },
                E820Entry {
                    start: 0x410_0000,
                    size: 0x1000_0000 - 0x410_0000,
                    kind: e820::RAM
                },
            ]
        );
        assert_eq!(validate_e820(&map), Ok(()));
    }

    #[test]
    fn e820_edges_merge_trim_and_refuse() {
        // Overlapping and touching RAM merges; an unaligned edge loses its partial page; a
        // hidden range swallows the pages it touches.
        let map = guest_e820(
            &[(0x1000, 0x5000), (0x4000, 0x8000), (0x8000, 0xa800)],
            &[(0x6800, 0x7001)],
            &[],
        )
        .unwrap();
        assert_eq!(
            map,
            [
                E820Entry {
                    start: 0x1000,
                    size: 0x5000,
                    kind: e820::RAM
                },
                E820Entry {
                    start: 0x8000,
                    size: 0x2000,
                    kind: e820::RAM
                },
            ]
        );
        // Typed ranges outside RAM are listed; same-type overlaps merge.
        let map = guest_e820(
            &[],
            &[],
            &[
                E820Entry {
                    start: 0xfec0_0000,
                    size: 0x1000,
                    kind: e820::RESERVED,
                },
                E820Entry {
                    start: 0xfec0_0800,
                    size: 0x1000,
                    kind: e820::RESERVED,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            map,
            [E820Entry {
                start: 0xfec0_0000,
                size: 0x2000,
                kind: e820::RESERVED
            }]
        );
        let acpi = |start, size| E820Entry {
            start,
            size,
            kind: e820::ACPI,
        };
        assert_eq!(
            guest_e820(
                &[(0, 0x10_0000)],
                &[(0x5000, 0x6000)],
                &[acpi(0x5ff0, 0x20)]
            ),
            Err(E820Error::TypedInHidden { index: 0 })
        );
        assert_eq!(
            guest_e820(
                &[],
                &[],
                &[
                    acpi(0x1000, 0x100),
                    E820Entry {
                        start: 0x1f00,
                        size: 0x10,
                        kind: e820::NVS
                    }
                ]
            ),
            Err(E820Error::TypedOverlap { index: 1 })
        );
        assert_eq!(
            guest_e820(&[(0x2000, 0x1000)], &[], &[]),
            Err(E820Error::BadRange {
                start: 0x2000,
                end: 0x1000
            })
        );
        assert_eq!(
            guest_e820(&[], &[], &[acpi(u64::MAX - 0x10, 0x20)]),
            Err(E820Error::BadEntry { index: 0 })
        );
        assert_eq!(
            guest_e820(&[], &[], &[acpi(0x1000, 0)]),
            Err(E820Error::BadEntry { index: 0 })
        );
        // 129 separate pieces do not fit the zero page.
        let ram: Vec<(u64, u64)> = (0..129u64)
            .map(|i| (i * 0x2000, i * 0x2000 + 0x1000))
            .collect();
        assert_eq!(guest_e820(&ram, &[], &[]), Err(E820Error::TooMany(129)));
        assert_eq!(guest_e820(&ram[..128], &[], &[]).map(|m| m.len()), Ok(128));
    }

    /// Pseudo-random layouts: guest_e820 returns a valid map or an error, and never lists a
    /// byte of a hidden range.
    #[test]
    fn random_layouts_give_valid_maps_or_errors() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut pick = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..2000 {
            let scale = [1u64, 0x1000, 0x10_0000, 1 << 40][pick(4) as usize];
            let range = |pick: &mut dyn FnMut(u64) -> u64| {
                let s = pick(64) * scale + pick(0x1000);
                (s, s + pick(16) * scale + pick(0x800))
            };
            let ram: Vec<_> = (0..pick(6)).map(|_| range(&mut pick)).collect();
            let hidden: Vec<_> = (0..pick(3)).map(|_| range(&mut pick)).collect();
            let mut typed = Vec::new();
            for _ in 0..pick(3) {
                let (s, e) = range(&mut pick);
                typed.push(E820Entry {
                    start: s,
                    size: e - s,
                    kind: [e820::ACPI, e820::RESERVED][pick(2) as usize],
                });
            }
            if let Ok(map) = guest_e820(&ram, &hidden, &typed) {
                assert_eq!(validate_e820(&map), Ok(()));
                for e in &map {
                    assert_eq!(e.start % 0x1000, 0);
                    assert_eq!(e.size % 0x1000, 0);
                    for &h in &hidden {
                        assert!(
                            !overlaps((e.start, e.end().unwrap()), h),
                            "{e:?} shows hidden {h:x?}"
                        );
                    }
                }
            }
        }
        // The extremes of the address space.
        let _ = guest_e820(&[(u64::MAX - 5, u64::MAX)], &[(0, u64::MAX)], &[]);
        let _ = guest_e820(&[(0, u64::MAX)], &[(u64::MAX - 1, u64::MAX)], &[]);
        assert_eq!(
            guest_e820(&[(0, u64::MAX)], &[], &[]).map(|m| m.len()),
            Ok(1)
        );
    }

    fn params<'a>(e820: &'a [E820Entry], cmdline: &'a [u8]) -> BootParams<'a> {
        BootParams {
            kernel_address: 0x420_0000,
            command_line_address: 0x2_0000,
            command_line: cmdline,
            ramdisk: Some((0x800_0000, 0x12_3456)),
            e820,
            acpi_rsdp: Some(0x9_e000),
        }
    }

    #[test]
    fn the_zero_page_carries_the_header_and_the_loaders_fields() {
        let img = good();
        let h = SetupHeader::parse(&img).unwrap();
        let map = parapet_like_e820();
        let page = build_zero_page(&h, &params(&map, b"console=ttyS0")).unwrap();
        assert_eq!(page.len(), 4096);
        let u32_at = |at| le::u32_at(&page, at).unwrap();
        let u64_at = |at| le::u64_at(&page, at).unwrap();
        // The header as the image has it, but for the loader's fields.
        for at in 0x1f1..0x26c {
            let loader_field = matches!(at, 0x210 | 0x214..=0x21f | 0x228..=0x22b | 0x250..=0x257);
            if !loader_field {
                assert_eq!(page[at], img[at], "header byte {at:#x}");
            }
        }
        assert!(page[0x26c..].iter().take(0x290 - 0x26c).all(|&b| b == 0));
        assert_eq!(page[0x1ef], 0, "sentinel");
        assert_eq!(page[0x210], 0xff, "type_of_loader");
        assert_eq!(page[0x211], 0x01, "loadflags: LOADED_HIGH");
        assert_eq!(u32_at(0x214), 0x420_0000, "code32_start");
        assert_eq!((u32_at(0x218), u32_at(0x21c)), (0x800_0000, 0x12_3456));
        assert_eq!((u32_at(0x0c0), u32_at(0x0c4)), (0, 0));
        assert_eq!((u32_at(0x228), u32_at(0x0c8)), (0x2_0000, 0));
        assert_eq!(u64_at(0x070), 0x9_e000, "acpi_rsdp_addr");
        assert_eq!(u64_at(0x250), 0, "setup_data");
        assert_eq!(page[0x1e8], 3);
        for (i, e) in map.iter().enumerate() {
            let at = 0x2d0 + 20 * i;
            assert_eq!(
                (u64_at(at), u64_at(at + 8), u32_at(at + 16)),
                (e.start, e.size, e.kind)
            );
        }
        assert!(page[0x2d0 + 60..].iter().all(|&b| b == 0));
    }

    #[test]
    fn addresses_above_4_gib_use_the_ext_fields_when_the_kernel_allows() {
        let h = SetupHeader::parse(&good()).unwrap();
        let p = BootParams {
            kernel_address: 0x1_0020_0000,
            command_line_address: 0x1_2345_6000,
            ramdisk: Some((0x2_0000_1000, 0x1_0000_0010)),
            acpi_rsdp: None,
            ..params(&[], b"")
        };
        let page = build_zero_page(&h, &p).unwrap();
        let u32_at = |at| le::u32_at(&page, at).unwrap();
        assert_eq!((u32_at(0x228), u32_at(0x0c8)), (0x2345_6000, 1));
        assert_eq!((u32_at(0x218), u32_at(0x0c0)), (0x1000, 2));
        assert_eq!((u32_at(0x21c), u32_at(0x0c4)), (0x10, 1));
        assert_eq!(
            u32_at(0x214),
            0x10_0000,
            "code32_start left alone above 4 GiB"
        );
        assert_eq!(le::u64_at(&page, 0x70), Some(0));
        assert_eq!(page[0x1e8], 0);
        // The same kernel without XLF_CAN_BE_LOADED_ABOVE_4G.
        let low = SetupHeader::parse(&set(good(), 0x236, &0x1u16.to_le_bytes())).unwrap();
        let p = BootParams {
            kernel_address: 0x420_0000,
            ..p
        };
        assert_eq!(
            build_zero_page(&low, &p),
            Err(BootParamsError::AboveFourGib {
                what: "command line"
            })
        );
        let p = BootParams {
            command_line_address: 0x1000,
            ..p
        };
        assert_eq!(
            build_zero_page(&low, &p),
            Err(BootParamsError::AboveFourGib { what: "initrd" })
        );
        // Below 4 GiB, but past initrd_addr_max (0x7fffffff).
        let p = BootParams {
            ramdisk: Some((0x7fff_f000, 0x1001)),
            ..p
        };
        assert_eq!(
            build_zero_page(&low, &p),
            Err(BootParamsError::RamdiskAboveLimit {
                last_byte: 0x8000_0000,
                limit: 0x7fff_ffff
            })
        );
    }

    #[test]
    fn bad_boot_params_are_refused() {
        let h = SetupHeader::parse(&good()).unwrap();
        let map = parapet_like_e820();
        let long = vec![b'a'; 0x800];
        assert_eq!(
            build_zero_page(&h, &params(&map, &long)),
            Err(BootParamsError::CommandLineTooLong {
                len: 0x800,
                max: 0x7ff
            })
        );
        assert!(build_zero_page(&h, &params(&map, &long[..0x7ff])).is_ok());
        assert_eq!(
            build_zero_page(&h, &params(&map, b"a\0b")),
            Err(BootParamsError::CommandLineHasNul)
        );
        let p = BootParams {
            ramdisk: Some((0x800_0000, 0)),
            ..params(&map, b"")
        };
        assert_eq!(build_zero_page(&h, &p), Err(BootParamsError::EmptyRamdisk));
        let p = BootParams {
            ramdisk: Some((u64::MAX, 2)),
            ..params(&map, b"")
        };
        assert_eq!(
            build_zero_page(&h, &p),
            Err(BootParamsError::Overflow { what: "initrd" })
        );
        let p = BootParams {
            command_line_address: u64::MAX,
            ..params(&map, b"")
        };
        assert_eq!(
            build_zero_page(&h, &p),
            Err(BootParamsError::Overflow {
                what: "command line"
            })
        );
        let p = BootParams {
            kernel_address: 0x20_0000,
            ..params(&map, b"")
        };
        assert_eq!(
            build_zero_page(&h, &p),
            Err(BootParamsError::Kernel(LoadAddressError::BelowPrefAddress))
        );
        let mut unsorted = map.clone();
        unsorted.swap(0, 2);
        assert_eq!(
            build_zero_page(&h, &params(&unsorted, b"")),
            Err(BootParamsError::E820(E820Error::Unsorted { index: 1 }))
        );
        let mut overlapping = map.clone();
        overlapping[1].start -= 1;
        assert_eq!(
            build_zero_page(&h, &params(&overlapping, b"")),
            Err(BootParamsError::E820(E820Error::Unsorted { index: 1 }))
        );
        let mut empty = map.clone();
        empty[2].size = 0;
        assert_eq!(
            build_zero_page(&h, &params(&empty, b"")),
            Err(BootParamsError::E820(E820Error::BadEntry { index: 2 }))
        );
        let mut untyped = map.clone();
        untyped[0].kind = 0;
        assert_eq!(
            build_zero_page(&h, &params(&untyped, b"")),
            Err(BootParamsError::E820(E820Error::BadEntry { index: 0 }))
        );
        let wrap = [E820Entry {
            start: u64::MAX,
            size: 2,
            kind: 1,
        }];
        assert_eq!(
            build_zero_page(&h, &params(&wrap, b"")),
            Err(BootParamsError::E820(E820Error::BadEntry { index: 0 }))
        );
        let many: Vec<E820Entry> = (0..129u64)
            .map(|i| E820Entry {
                start: i * 0x2000,
                size: 0x1000,
                kind: 1,
            })
            .collect();
        assert_eq!(
            build_zero_page(&h, &params(&many, b"")),
            Err(BootParamsError::E820(E820Error::TooMany(129)))
        );
        let page = build_zero_page(&h, &params(&many[..128], b"")).unwrap();
        assert_eq!(page[0x1e8], 128);
        assert_eq!(
            le::u64_at(&page, 0x2d0 + 127 * 20),
            Some(127 * 0x2000),
            "the last entry ends the table at 0xcd0"
        );
    }
}

//! The arm64 Linux boot protocol, as Parapet's aarch64 `el2` backend speaks it to a guest it
//! enters at EL1: reading an `Image`'s header, choosing its load address, and building the
//! device tree the kernel takes in x0.
//!
//! Reference: `Documentation/arch/arm64/booting.rst` in the Linux tree (cited as booting.rst,
//! with its section: "2. Setup the device tree", "4. Call the kernel image"). The device tree
//! follows the bindings in `Documentation/devicetree/bindings/` (cited by file) and, for
//! everything a binding leaves open, what QEMU's `virt` board gives a Linux guest, so that the
//! drivers of a distribution kernel built for `virt` bind unchanged. Those facts were read off
//! `qemu-system-aarch64 -M virt,gic-version=3 -cpu max -smp 2 -m 512` (QEMU 10.0, its
//! `dumpdtb=` decompiled with dtc) and `hw/arm/virt.c`.
//!
//! What a loader does (booting.rst):
//! 1. RAM (§1): give the guest RAM, less everything Parapet keeps for itself, which the
//!    guest's `/memory` nodes leave out entirely ("Any memory described to the kernel ...
//!    which is not marked as reserved ... will be considered as available", §4).
//! 2. The image (§3, §4): [`ImageHeader::parse`] an *uncompressed* `Image` (the kernel has
//!    no decompressor of its own; `Image.gz` is for the loader to inflate). Copy the file to
//!    the address [`ImageHeader::place`] picks; `image_size` bytes from there belong to the
//!    kernel.
//! 3. The initrd: anywhere in RAM the tree describes, inside a 1 GiB-aligned window of at most
//!    32 GiB that also covers the kernel ([`ImageHeader::initrd_window_ok`]); its range goes
//!    in `/chosen`. The kernel reserves it itself.
//! 4. The device tree (§2): [`build_device_tree`], copied to an 8-byte-aligned address in
//!    RAM, at most [`MAX_DTB_SIZE`] bytes, in no 2 MiB block that needs special memory
//!    attributes (the kernel maps it cacheable in 2 MiB blocks). The kernel reserves the
//!    blob itself.
//! 5. Enter (§4): at the load address with [`boot_registers`] and the state its
//!    documentation lists.
//!
//! Checked against Debian 12's stock arm64 kernel, `linux-image-6.1.0-56-arm64` 6.1.192-2
//! (not part of the tests): its `/boot/vmlinuz-6.1.0-56-arm64` is an uncompressed, signed
//! `Image` (a PE/COFF EFI application whose header also serves this protocol) of 0x1f6dfc0
//! bytes with text_offset 0, image_size 0x2010000 and flags 0xa (little-endian, 4 KiB pages,
//! placeable anywhere); the test fixture copies that header.
//!
//! The image is trusted no more than any file: every field is read bounds-checked, all
//! arithmetic is checked, and nothing here panics on any input.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use le::{u32_at, u64_at};

use crate::fdt_writer::{FdtError, FdtWriter};

/// The header is the image's first 64 bytes (booting.rst §4).
pub const HEADER_LEN: usize = 64;

/// Header fields (booting.rst §4; `struct arm64_image_header` in
/// `arch/arm64/include/asm/image.h`): byte offsets, all little-endian since v3.17.
pub mod header {
    /// `code0`, u32: executable code (an EFI image's "MZ" lives here), branching to `stext`.
    pub const CODE0: usize = 0x00;
    /// `code1`, u32: executable code.
    pub const CODE1: usize = 0x04;
    /// `text_offset`, u64: "Image load offset": the image goes this far past a 2 MiB-aligned
    /// base. 0 since Linux 5.8 (`TEXT_OFFSET` was removed); 0x80000 before.
    pub const TEXT_OFFSET: usize = 0x08;
    /// `image_size`, u64: "Effective Image size", BSS included: what the kernel may use from
    /// its load address. 0 before v3.17.
    pub const IMAGE_SIZE: usize = 0x10;
    /// `flags`, u64 (v3.17+), see [`super::flags`].
    pub const FLAGS: usize = 0x18;
    /// `res2`..`res4`, u64 each, reserved (0).
    pub const RES2: usize = 0x20;
    /// `magic`, 4 bytes: "ARM\x64" (0x644d5241 little-endian).
    pub const MAGIC: usize = 0x38;
    /// `res5`, u32: reserved, used as the PE/COFF header's offset by EFI-stub kernels.
    pub const RES5: usize = 0x3c;

    pub const MAGIC_VALUE: &[u8; 4] = b"ARM\x64";
}

/// The `flags` field (booting.rst §4, "Header notes").
pub mod flags {
    /// Bit 0: kernel endianness, 1 if big-endian.
    pub const BIG_ENDIAN: u64 = 1 << 0;
    /// Bits 1-2: kernel page size: 0 unspecified, 1 4K, 2 16K, 3 64K.
    pub const PAGE_SIZE_SHIFT: u32 = 1;
    pub const PAGE_SIZE_MASK: u64 = 0b11;
    /// Bit 3: kernel physical placement. Clear: the 2 MiB-aligned base "should be as close as
    /// possible to the base of DRAM, since memory below it is not accessible via the linear
    /// mapping". Set: the base may be anywhere such that all `image_size` bytes are within
    /// the 48-bit physical address range.
    pub const PHYS_ANYWHERE: u64 = 1 << 3;
    /// Bits 4-63 are reserved.
    pub const KNOWN: u64 = 0xf;
}

/// "The Image must be placed text_offset bytes from a 2MB aligned base address" (booting.rst
/// §4).
pub const KERNEL_ALIGN: u64 = 2 << 20;
/// The device tree "must not exceed 2 megabytes in size" (booting.rst §2).
pub const MAX_DTB_SIZE: usize = 2 << 20;
/// The device tree "must be placed on an 8-byte boundary" (booting.rst §2).
pub const DTB_ALIGN: u64 = 8;
/// With [`flags::PHYS_ANYWHERE`], the image must end within the 48-bit physical range.
const PHYS_LIMIT: u64 = 1 << 48;
/// Mainline kernels up to 5.7 refused to build with a `TEXT_OFFSET` that was not 4 KiB-aligned
/// or not below 2 MiB (`arch/arm64/kernel/head.S`: "TEXT_OFFSET must be less than 2MB"); a
/// header with anything else is not from a mainline kernel.
const TEXT_OFFSET_ALIGN: u64 = 4096;
/// The initrd "must reside entirely within a 1 GB aligned physical memory window of up to 32
/// GB in size that fully covers the kernel Image as well" (booting.rst §4).
const INITRD_WINDOW_ALIGN: u64 = 1 << 30;
const INITRD_WINDOW_MAX: u64 = 32 << 30;

/// Why an image is not an arm64 kernel this loader boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The file is shorter than the 64-byte header.
    Truncated { len: usize },
    /// No "ARM\x64" at 0x38: not an arm64 `Image` (perhaps still compressed).
    BadMagic([u8; 4]),
    /// `image_size` is 0: a kernel older than v3.17, whose footprint past the file is
    /// "effectively unbound" and whose `text_offset` has no defined endianness. Refused
    /// rather than guessed at: no loader can know how much RAM such a kernel's BSS and
    /// early allocations need.
    NoImageSize,
    /// Flags bit 0: a big-endian kernel. Parapet enters its guests little-endian.
    BigEndian,
    /// Flags bits 4-63, reserved: a kernel asking for something this loader does not know.
    UnknownFlags(u64),
    /// `text_offset` not 4 KiB-aligned or not below 2 MiB.
    BadTextOffset(u64),
    /// `image_size` smaller than the file: the size covers the loaded image and its BSS, so
    /// this header does not describe this file.
    ImageSizeTooSmall { image_size: u64, file_size: u64 },
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { len } => {
                write!(
                    f,
                    "kernel image is {len} bytes, shorter than its 64-byte header"
                )
            }
            Self::BadMagic(m) => write!(
                f,
                "no \"ARM\\x64\" at 0x38 (found {m:02x?}): not an uncompressed arm64 Image"
            ),
            Self::NoImageSize => write!(
                f,
                "image_size is 0: a kernel older than 3.17, whose size is unknown"
            ),
            Self::BigEndian => write!(f, "a big-endian kernel"),
            Self::UnknownFlags(v) => write!(f, "reserved header flags {v:#x} are set"),
            Self::BadTextOffset(v) => write!(
                f,
                "text_offset {v:#x} is not 4 KiB-aligned or not below 2 MiB"
            ),
            Self::ImageSizeTooSmall {
                image_size,
                file_size,
            } => write!(
                f,
                "image_size {image_size:#x} is smaller than the {file_size:#x}-byte file"
            ),
        }
    }
}

/// The kernel's page size, from flags bits 1-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    Unspecified,
    Size4K,
    Size16K,
    Size64K,
}

/// An arm64 `Image` header, read and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub code0: u32,
    pub code1: u32,
    /// How far past a 2 MiB-aligned base the image goes (below 2 MiB, 4 KiB-aligned).
    pub text_offset: u64,
    /// Bytes the kernel owns from its load address (at least the file's length).
    pub image_size: u64,
    pub flags: u64,
    /// `res5`: the PE/COFF header's offset in an EFI-stub kernel (unused here).
    pub pe_header_offset: u32,
    /// The file's length: what the loader copies to the load address.
    pub file_size: u64,
}

impl ImageHeader {
    /// Reads the header of the `Image` file `image` and checks it: long enough, the magic,
    /// a non-zero `image_size` not below the file's length, little-endian, no reserved flag,
    /// a `text_offset` a mainline kernel could have.
    pub fn parse(image: &[u8]) -> Result<Self, ImageError> {
        let len = image.len();
        let head = image
            .get(..HEADER_LEN)
            .ok_or(ImageError::Truncated { len })?;
        let truncated = ImageError::Truncated { len };
        let magic: [u8; 4] = head
            .get(header::MAGIC..header::MAGIC + 4)
            .and_then(|m| m.try_into().ok())
            .ok_or(truncated)?;
        if &magic != header::MAGIC_VALUE {
            return Err(ImageError::BadMagic(magic));
        }
        let u64_field = |at| u64_at(head, at).ok_or(truncated);
        let u32_field = |at| u32_at(head, at).ok_or(truncated);
        let image_size = u64_field(header::IMAGE_SIZE)?;
        // booting.rst: "Where image_size is zero, text_offset can be assumed to be 0x80000"
        // and the kernel's needs past its end are "effectively unbound": refused.
        if image_size == 0 {
            return Err(ImageError::NoImageSize);
        }
        let flags = u64_field(header::FLAGS)?;
        if flags & flags::BIG_ENDIAN != 0 {
            return Err(ImageError::BigEndian);
        }
        if flags & !flags::KNOWN != 0 {
            return Err(ImageError::UnknownFlags(flags & !flags::KNOWN));
        }
        let text_offset = u64_field(header::TEXT_OFFSET)?;
        if !text_offset.is_multiple_of(TEXT_OFFSET_ALIGN) || text_offset >= KERNEL_ALIGN {
            return Err(ImageError::BadTextOffset(text_offset));
        }
        let file_size = len as u64;
        if image_size < file_size {
            return Err(ImageError::ImageSizeTooSmall {
                image_size,
                file_size,
            });
        }
        Ok(Self {
            code0: u32_field(header::CODE0)?,
            code1: u32_field(header::CODE1)?,
            text_offset,
            image_size,
            flags,
            pe_header_offset: u32_field(header::RES5)?,
            file_size,
        })
    }

    pub fn page_size(&self) -> PageSize {
        match (self.flags >> flags::PAGE_SIZE_SHIFT) & flags::PAGE_SIZE_MASK {
            1 => PageSize::Size4K,
            2 => PageSize::Size16K,
            3 => PageSize::Size64K,
            _ => PageSize::Unspecified,
        }
    }

    /// Flags bit 3: the kernel may be placed anywhere (within 48 bits), rather than as low
    /// as possible.
    pub fn placement_anywhere(&self) -> bool {
        self.flags & flags::PHYS_ANYWHERE != 0
    }

    /// Whether the image may be loaded at `address` (its first byte; also its entry point):
    /// `text_offset` past a 2 MiB boundary, `image_size` bytes that do not run past the
    /// address space, nor past 48 bits when bit 3 is set.
    pub fn check_load_address(&self, address: u64) -> Result<(), LoadAddressError> {
        let base = address
            .checked_sub(self.text_offset)
            .ok_or(LoadAddressError::Misaligned)?;
        if !base.is_multiple_of(KERNEL_ALIGN) {
            return Err(LoadAddressError::Misaligned);
        }
        let end = address
            .checked_add(self.image_size)
            .ok_or(LoadAddressError::Overflow)?;
        if self.placement_anywhere() && end > PHYS_LIMIT {
            return Err(LoadAddressError::Beyond48Bits);
        }
        Ok(())
    }

    /// The load address (where the image's first byte goes, and where the kernel is
    /// entered): the lowest address [`ImageHeader::check_load_address`] accepts with all
    /// `image_size` bytes inside one of the `free` ranges ((start, end), end exclusive):
    /// guest RAM less everything else the loader put there.
    ///
    /// `ram_base` is the lowest address of the guest's RAM. A kernel without flags bit 3
    /// cannot use memory below its base, so booting.rst asks for a base "as close as possible
    /// to the base of DRAM": such a kernel is never placed below `ram_base`, and the lowest
    /// fit is the closest. A kernel with bit 3 may go anywhere; the lowest fit is taken for
    /// it too, which keeps it clear of the top of RAM where a loader tends to put the tree
    /// and initrd. `None` when nothing fits.
    pub fn place(&self, free: &[(u64, u64)], ram_base: u64) -> Option<u64> {
        let floor = if self.placement_anywhere() {
            0
        } else {
            ram_base
        };
        free.iter()
            .filter_map(|&(start, end)| {
                let lowest = start.max(floor);
                let base = align_up(lowest.saturating_sub(self.text_offset), KERNEL_ALIGN)?;
                let load = base.checked_add(self.text_offset)?;
                let image_end = load.checked_add(self.image_size)?;
                (load >= lowest && image_end <= end && self.check_load_address(load).is_ok())
                    .then_some(load)
            })
            .min()
    }

    /// Whether an initrd at `initrd` ((start, end), end exclusive, non-empty) and this
    /// kernel at `load_address` fit one 1 GiB-aligned window of at most 32 GiB, as booting.rst
    /// §4 requires.
    pub fn initrd_window_ok(&self, load_address: u64, initrd: (u64, u64)) -> bool {
        let (start, end) = initrd;
        let Some(kernel_end) = load_address.checked_add(self.image_size) else {
            return false;
        };
        if start >= end {
            return false;
        }
        let low = load_address.min(start) & !(INITRD_WINDOW_ALIGN - 1);
        kernel_end.max(end) - low <= INITRD_WINDOW_MAX
    }
}

/// Why the kernel cannot be loaded at a given address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadAddressError {
    /// Not `text_offset` past a 2 MiB boundary.
    Misaligned,
    /// `image_size` bytes from there run past 2^64.
    Overflow,
    /// A bit-3 kernel must end within the 48-bit physical range.
    Beyond48Bits,
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    value.checked_add(mask).map(|v| v & !mask)
}

/// Whether a device tree of `len` bytes may be handed over at `address`: 8-byte aligned and
/// at most [`MAX_DTB_SIZE`] bytes (booting.rst §2), not running past the address space.
pub fn dtb_placement_ok(address: u64, len: usize) -> bool {
    address.is_multiple_of(DTB_ALIGN)
        && len <= MAX_DTB_SIZE
        && address.checked_add(len as u64).is_some()
}

/// x0-x3 for the boot CPU's entry (booting.rst §4, "Primary CPU general-purpose register
/// settings"): x0 = the device tree's physical address, x1-x3 = 0 ("reserved for future
/// use"). Secondary CPUs started through PSCI CPU_ON get the `context_id` of the call in x0
/// instead (PSCI, DEN0022, CPU_ON), not this.
///
/// The rest of the entry state booting.rst §4 asks for, which the backend sets up:
/// - PC = the load address ([`ImageHeader::place`]); the image copied there, and its
///   range cleaned to the Point of Coherency; the instruction cache holding nothing stale
///   for it.
/// - PSTATE: EL1h (or EL2; Parapet uses EL1, in the non-secure state), all of D, A, I and F
///   masked.
/// - The MMU off (SCTLR_EL1.M = 0), so the kernel's first data accesses do not go through
///   the data cache (SCTLR_EL1.C has no effect then; HCR_EL2.DC must stay 0 for that to
///   hold at EL1), which is why everything it reads early (image, tree, initrd) must be
///   cleaned to the PoC.
/// - The tree: [`dtb_placement_ok`], in RAM, in no 2 MiB block that needs special
///   attributes. The initrd: inside the RAM the tree describes and
///   [`ImageHeader::initrd_window_ok`]. Neither needs to be left out of `/memory`: the
///   kernel reserves both itself.
/// - Timers: CNTFRQ_EL0 holds the counter's frequency, CNTVOFF_EL2 the same value on
///   every CPU, CNTHCTL_EL2.EL1PCTEN (bit 0) set.
/// - GICv3 used in v3 mode: ICC_SRE_EL2.Enable (bit 3) and ICC_SRE_EL2.SRE (bit 0) set, and
///   the tree describes a GICv3 (as [`build_device_tree`]'s does).
/// - Every writable system register at EL1 initialised (nothing left UNKNOWN); with
///   pointer authentication HCR_EL2.APK and API set; with FP/SIMD CPTR_EL2.TFP clear; with
///   SVE CPTR_EL2.TZ clear and ZEN 0b11 and ZCR_EL2.LEN equal on all CPUs (the full list,
///   feature by feature, is booting.rst §4 "System registers").
/// - Every CPU in one coherency domain; CPUs other than the boot CPU held outside the
///   kernel until it calls PSCI CPU_ON for them (`enable-method = "psci"`).
pub fn boot_registers(dtb_address: u64) -> [u64; 4] {
    [dtb_address, 0, 0, 0]
}

/// Where QEMU's `virt` board puts the devices the guest tree describes (`hw/arm/virt.c`,
/// `base_memmap` and `a15irqmap`), for a backend that hands its guest the same layout.
pub mod qemu_virt {
    /// RAM starts at 1 GiB.
    pub const RAM_BASE: u64 = 0x4000_0000;
    /// GICv3 distributor, 64 KiB.
    pub const GICD_BASE: u64 = 0x0800_0000;
    /// GICv3 redistributors, one [`super::GICR_STRIDE`] frame pair per CPU from here.
    pub const GICR_BASE: u64 = 0x080a_0000;
    /// The PL011 UART, 4 KiB, on SPI 1 (INTID 33).
    pub const UART_BASE: u64 = 0x0900_0000;
    pub const UART_SIZE: u64 = 0x1000;
    pub const UART_SPI: u32 = 1;
    /// The PL061 GPIO controller, 4 KiB, on SPI 7 (INTID 39).
    pub const GPIO_BASE: u64 = 0x0903_0000;
    pub const GPIO_SIZE: u64 = 0x1000;
    pub const GPIO_SPI: u32 = 7;
}

/// A GICv3 distributor's register frame is 64 KiB (GICv3/v4 architecture specification,
/// IHI 0069, "The GIC Distributor register map"); QEMU's `virt` describes that size.
pub const GICD_SIZE: u64 = 0x1_0000;
/// A GICv3 redistributor is two 64 KiB frames, RD_base and SGI_base (IHI 0069, "Redistributor
/// memory map"); GICv4 adds two more for virtual LPIs. Linux steps 0x20000 per redistributor
/// unless GICR_TYPER.VLPIS says 0x40000 or the tree gives `redistributor-stride`.
pub const GICR_STRIDE: u64 = 0x2_0000;

/// Phandles of the tree's two referenced nodes. Any values but 0 and 0xffffffff would do
/// (§2.3.3 of the Devicetree Specification); QEMU numbers from 0x8000.
pub const GIC_PHANDLE: u32 = 1;
pub const CLOCK_PHANDLE: u32 = 2;
pub const GPIO_PHANDLE: u32 = 3;

/// A GPIO specifier's flags cell (`include/dt-bindings/gpio/gpio.h`).
pub const GPIO_ACTIVE_HIGH: u32 = 0;
pub const GPIO_ACTIVE_LOW: u32 = 1;

/// The SPI clock the TPM node states (`spi-max-frequency`): a bit-banged bus is slower
/// than any TPM, so the value only has to be one a TPM takes.
pub const TPM_SPI_HZ: u32 = 1_000_000;

/// The PL011's clock as QEMU's `virt` describes it: a fixed 24 MHz `apb-pclk`.
pub const UART_CLOCK_HZ: u32 = 24_000_000;

/// GIC interrupt specifiers, three cells <type number flags>
/// (`interrupt-controller/arm,gic-v3.yaml`).
pub mod gic_irq {
    /// Cell 1: 0 for an SPI (number = INTID - 32), 1 for a PPI (number = INTID - 16).
    pub const SPI: u32 = 0;
    pub const PPI: u32 = 1;
    /// Cell 3, bits 3:0: trigger type. 4 = level-sensitive, active high. (GICv2's binding
    /// also puts a CPU mask in bits 15:8 of a PPI's flags; GICv3's has none.)
    pub const LEVEL_HIGH: u32 = 4;
    /// The largest SPI number: INTIDs 32-1019 are SPIs.
    pub const MAX_SPI: u32 = 1019 - 32;
}

/// The architected timer's PPIs, in the order the `arm,armv8-timer` binding lists them
/// (`timer/arm,arch_timer.yaml`): secure physical, non-secure physical, virtual, hypervisor
/// physical. As PPI numbers (INTID - 16): the Server Base System Architecture's INTIDs 29, 30,
/// 27 and 26, which QEMU's `virt` also uses.
pub const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

/// PSCI function IDs for the `psci` node's `cpu_suspend`, `cpu_off`, `cpu_on` and `migrate`
/// (the SMC64 IDs of PSCI 0.2+, Arm DEN 0022; CPU_OFF has only an SMC32 ID). Only the
/// `arm,psci` (0.1) binding needs them; a kernel matching `arm,psci-0.2` or later uses the
/// standard IDs anyway. QEMU's `virt` sets these same values.
pub mod psci_fn {
    pub const CPU_SUSPEND: u32 = 0xc400_0001;
    pub const CPU_OFF: u32 = 0x8400_0002;
    pub const CPU_ON: u32 = 0xc400_0003;
    pub const MIGRATE: u32 = 0xc400_0005;
}

/// MPIDR_EL1's affinity fields: Aff0 (bits 7:0), Aff1 (15:8), Aff2 (23:16), Aff3 (39:32). The
/// `cpus` binding (`arm/cpus.yaml`) puts exactly these in a CPU's `reg`, every other bit 0.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;
const MPIDR_AFF3: u64 = 0xff_0000_0000;

/// The guest's GICv3 (`arm,gic-v3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicV3 {
    pub distributor: u64,
    /// [`GICD_SIZE`].
    pub distributor_size: u64,
    /// The first CPU's redistributor; CPU n's is `n * redistributor_stride` past it, in
    /// the order of [`GuestTree::cpus`]: one region covering them all.
    pub redistributors: u64,
    /// [`GICR_STRIDE`] for a GICv3; any other multiple of 64 KiB is written to the tree as
    /// `redistributor-stride`.
    pub redistributor_stride: u64,
}

/// The guest's PL011 UART (`serial/arm,pl011.yaml`), its console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pl011 {
    pub base: u64,
    pub size: u64,
    /// Its interrupt as an SPI number (INTID - 32).
    pub spi: u32,
}

/// The guest's TPM: how it is reached, and the boot's event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestTpm {
    pub interface: TpmInterface,
    /// The boot's event log (TCG PC Client PFP's crypto-agile format) as (address, area
    /// length), in RAM: the TPM node's `linux,sml-base` and `linux,sml-size`, the area kept
    /// from the kernel's allocator by a `/reserved-memory` node (mapped: Linux reads it
    /// through its linear map).
    pub event_log: Option<(u64, u32)>,
}

/// The two ways a device tree describes a TPM that Linux's stock drivers take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TpmInterface {
    /// On an SPI bus on a PL061's pins: for kernels with `tpm_tis_spi` and `spi-gpio`
    /// (Debian's arm64 kernel, as modules).
    GpioSpi(GpioSpiTpm),
    /// The FIFO interface's registers in memory (`tpm/tcg,tpm-tis-mmio.yaml`): for kernels
    /// with `tpm_tis` (CONFIG_TCG_TIS), at `(base, size)`.
    TisMmio { base: u64, size: u64 },
}

/// A TPM on an SPI bus bit-banged through a PL061's pins (`gpio/pl061-gpio.yaml`,
/// `spi/spi-gpio.yaml`, `tpm/tcg,tpm_tis-spi.yaml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpioSpiTpm {
    /// The PL061's registers and its interrupt as an SPI number (INTID - 32).
    pub gpio_base: u64,
    pub gpio_size: u64,
    pub gpio_spi: u32,
    /// The PL061's pins for the clock, MOSI, MISO and chip select (active low).
    pub clock_pin: u32,
    pub mosi_pin: u32,
    pub miso_pin: u32,
    pub chip_select_pin: u32,
}

/// What the guest's device tree describes. Ranges are (start, end), end exclusive.
#[derive(Clone, Copy, Debug)]
pub struct GuestTree<'a> {
    /// The root's `model`, which Linux prints as "Machine model:".
    pub model: &'a str,
    /// Guest RAM, one `/memory` node each: non-empty, non-overlapping.
    pub ram: &'a [(u64, u64)],
    /// Each CPU's MPIDR_EL1 affinity ([`MPIDR_AFFINITY_MASK`] bits only), the boot CPU
    /// first; distinct.
    pub cpus: &'a [u64],
    pub gic: GicV3,
    pub uart: Pl011,
    /// The kernel command line, `/chosen/bootargs`.
    pub bootargs: &'a str,
    /// The initrd, `/chosen/linux,initrd-start` and `linux,initrd-end` (the byte after it).
    pub initrd: Option<(u64, u64)>,
    /// `/chosen/kaslr-seed`: without it (or FEAT_RNG's RNDR) a KASLR kernel such as
    /// Debian's runs unrandomised ("KASLR disabled due to lack of seed"). The kernel zeroes
    /// it after reading.
    pub kaslr_seed: Option<u64>,
    /// `/chosen/rng-seed`: bytes the kernel credits as early entropy, then wipes.
    pub rng_seed: Option<&'a [u8]>,
    /// The guest's TPM, if it has one.
    pub tpm: Option<GuestTpm>,
}

/// Why a guest tree cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeError {
    NoRam,
    /// A RAM range empty or inverted.
    BadRam {
        start: u64,
        end: u64,
    },
    /// Two RAM ranges overlap.
    RamOverlap {
        start: u64,
    },
    NoCpus,
    /// An MPIDR with bits outside the affinity fields.
    BadMpidr(u64),
    DuplicateCpu(u64),
    /// An initrd empty or inverted.
    BadInitrd {
        start: u64,
        end: u64,
    },
    /// An initrd not wholly inside one RAM range.
    InitrdOutsideRam,
    /// A GIC with a zero size or stride, a stride not a multiple of 64 KiB, frames not
    /// 64 KiB-aligned, or regions that run past the address space.
    BadGic,
    /// A UART with a zero size or running past the address space.
    BadUart,
    /// A GPIO controller with a zero size or running past the address space, or a pin
    /// number above 7.
    BadGpio,
    /// A memory-mapped TPM with a zero size or running past the address space.
    BadTpm,
    /// A TPM event log area empty or not wholly inside one RAM range.
    EventLogOutsideRam,
    /// An SPI number above [`gic_irq::MAX_SPI`].
    BadSpi(u32),
    /// A device's registers (`.0`: "GIC distributor", ...) overlap RAM.
    MmioInRam(&'static str),
    /// The blob is larger than [`MAX_DTB_SIZE`].
    TooLarge(usize),
    /// The writer refused the tree (a NUL in `bootargs` or `model`, ...).
    Fdt(FdtError),
}

impl core::fmt::Display for TreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRam => write!(f, "no guest RAM"),
            Self::BadRam { start, end } => write!(f, "RAM range {start:#x}..{end:#x} is empty"),
            Self::RamOverlap { start } => write!(f, "RAM ranges overlap at {start:#x}"),
            Self::NoCpus => write!(f, "no CPUs"),
            Self::BadMpidr(m) => write!(f, "MPIDR {m:#x} has bits outside the affinity fields"),
            Self::DuplicateCpu(m) => write!(f, "two CPUs with MPIDR {m:#x}"),
            Self::BadInitrd { start, end } => write!(f, "initrd {start:#x}..{end:#x} is empty"),
            Self::InitrdOutsideRam => write!(f, "the initrd is not inside one RAM range"),
            Self::BadGic => write!(f, "the GIC's frames are empty, misaligned or overflow"),
            Self::BadUart => write!(f, "the UART's registers are empty or overflow"),
            Self::BadGpio => write!(
                f,
                "the GPIO's registers are empty or overflow, or a pin is above 7"
            ),
            Self::BadTpm => write!(f, "the TPM's registers are empty or overflow"),
            Self::BadSpi(n) => write!(f, "SPI {n} is above 987"),
            Self::EventLogOutsideRam => write!(f, "the TPM event log is not inside one RAM range"),
            Self::MmioInRam(what) => write!(f, "the {what} registers overlap RAM"),
            Self::TooLarge(n) => write!(f, "the device tree is {n} bytes, more than 2 MiB"),
            Self::Fdt(e) => write!(f, "{e}"),
        }
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// `(base, base + size)`, if that neither is empty nor overflows.
fn region(base: u64, size: u64) -> Option<(u64, u64)> {
    Some((base, base.checked_add(size).filter(|_| size != 0)?))
}

/// The guest's flattened device tree, modelled on QEMU's `virt` board (see the module
/// documentation); every node but `/aliases` is one QEMU's tree has, with the same
/// properties:
///
/// - `/`: `compatible = "linux,dummy-virt"`, `model`, `#address-cells = <2>`,
///   `#size-cells = <2>` (so every `reg` below is (address, size) as two u64s),
///   `interrupt-parent` = the GIC.
/// - `/chosen`: `bootargs`, `stdout-path` (the PL011 node), and when given
///   `linux,initrd-start`/`-end` (u64s), `kaslr-seed`, `rng-seed`.
/// - `/aliases`: `serial0` = the PL011, so it is ttyAMA0 whatever the probe order.
/// - `/memory@<start>` per RAM range: `device_type = "memory"`, `reg`.
/// - `/cpus`: `#address-cells = <1>` (`<2>` if a CPU has a non-zero Aff3),
///   `#size-cells = <0>`, and `cpu@<mpidr>` per CPU: `device_type = "cpu"`,
///   `compatible = "arm,armv8"`, `reg` = the affinity, `enable-method = "psci"`.
/// - `/psci`: `compatible = "arm,psci-1.0", "arm,psci-0.2", "arm,psci"`, `method = "hvc"`
///   (the guest's PSCI calls trap to Parapet at EL2), and [`psci_fn`] IDs.
/// - `/timer`: `compatible = "arm,armv8-timer", "arm,armv7-timer"`, `interrupts` = the four
///   [`TIMER_PPIS`] as <PPI n LEVEL_HIGH> (QEMU says level-high, without the GICv2-only CPU
///   mask, for every `virt` since 2.9: `fdt_add_timer_nodes`), and `always-on` as QEMU sets
///   it (the timer keeps counting in every power state the guest can reach).
/// - `/intc@<distributor>`: `compatible = "arm,gic-v3"`, `#interrupt-cells = <3>`,
///   `interrupt-controller`, `#address-cells`/`#size-cells = <2>`, an empty `ranges`,
///   `reg` = the distributor and one redistributor region for all CPUs,
///   `#redistributor-regions = <1>`, `redistributor-stride` unless it is [`GICR_STRIDE`],
///   `phandle`. No ITS: the guest has no MSI-capable device.
/// - `/apb-pclk`: `compatible = "fixed-clock"`, `#clock-cells = <0>`, 24 MHz,
///   `clock-output-names = "clk24mhz"`, `phandle`.
/// - `/pl011@<base>`: `compatible = "arm,pl011", "arm,primecell"`, `reg`,
///   `interrupts = <SPI n LEVEL_HIGH>`, `clock-names = "uartclk", "apb_pclk"`,
///   `clocks` = the 24 MHz clock twice.
/// - With a TPM: `/pl061@<base>` as QEMU writes its GPIO (`compatible = "arm,pl061",
///   "arm,primecell"`, `reg`, `interrupts`, `gpio-controller`, `#gpio-cells = <2>`, the
///   24 MHz clock as `apb_pclk`, `phandle`), and `/spi`, an `spi-gpio` bus on its pins
///   (`sck-`, `mosi-`, `miso-gpios`, `cs-gpios` active low, `num-chipselects = <1>`) with
///   `tpm@0`: `compatible = "tcg,tpm_tis-spi"`, `reg = <0>`, `spi-max-frequency`, and with
///   an event log `linux,sml-base` and `linux,sml-size`, its area in `/reserved-memory`.
///   QEMU's `virt` has no such bus; its PL061 is at the same place.
///
/// Left out of QEMU's tree on purpose: the PMU (Parapet does not virtualise it), the
/// `virtio_mmio`, PCIe, flash, fw-cfg, PL031 and gpio-keys devices (and the PL061 without a
/// TPM), the ITS, `cpu-map`, and the root's `dma-coherent` (no device here does DMA).
pub fn build_device_tree(tree: &GuestTree) -> Result<Vec<u8>, TreeError> {
    // RAM: non-empty, non-overlapping.
    if tree.ram.is_empty() {
        return Err(TreeError::NoRam);
    }
    let mut ram = Vec::with_capacity(tree.ram.len());
    for &(start, end) in tree.ram {
        if start >= end {
            return Err(TreeError::BadRam { start, end });
        }
        ram.push((start, end));
    }
    ram.sort_unstable();
    if let Some(w) = ram.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(TreeError::RamOverlap { start: w[1].0 });
    }

    // CPUs: affinity bits only, distinct.
    if tree.cpus.is_empty() {
        return Err(TreeError::NoCpus);
    }
    if let Some(&mpidr) = tree.cpus.iter().find(|&&m| m & !MPIDR_AFFINITY_MASK != 0) {
        return Err(TreeError::BadMpidr(mpidr));
    }
    let mut sorted = tree.cpus.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(TreeError::DuplicateCpu(w[0]));
    }
    let cpu_address_cells = if tree.cpus.iter().any(|m| m & MPIDR_AFF3 != 0) {
        2
    } else {
        1
    };

    if let Some((start, end)) = tree.initrd {
        if start >= end {
            return Err(TreeError::BadInitrd { start, end });
        }
        if !ram.iter().any(|&(s, e)| s <= start && end <= e) {
            return Err(TreeError::InitrdOutsideRam);
        }
    }

    // The GIC: 64 KiB frames.
    let gic = tree.gic;
    let frame = 0x1_0000u64;
    let gicr_size = u64::try_from(tree.cpus.len())
        .ok()
        .and_then(|n| n.checked_mul(gic.redistributor_stride));
    let (Some(gicd), Some(gicr)) = (
        region(gic.distributor, gic.distributor_size),
        gicr_size.and_then(|size| region(gic.redistributors, size)),
    ) else {
        return Err(TreeError::BadGic);
    };
    if [
        gic.distributor,
        gic.redistributors,
        gic.redistributor_stride,
    ]
    .iter()
    .any(|v| !v.is_multiple_of(frame))
    {
        return Err(TreeError::BadGic);
    }
    let uart = tree.uart;
    let uart_regs = region(uart.base, uart.size).ok_or(TreeError::BadUart)?;
    if uart.spi > gic_irq::MAX_SPI {
        return Err(TreeError::BadSpi(uart.spi));
    }
    let mut mmio = alloc::vec![
        ("GIC distributor", gicd),
        ("GIC redistributor", gicr),
        ("UART", uart_regs),
    ];
    if let Some(tpm) = tree.tpm {
        match tpm.interface {
            TpmInterface::GpioSpi(bus) => {
                let gpio = region(bus.gpio_base, bus.gpio_size).ok_or(TreeError::BadGpio)?;
                let pins = [
                    bus.clock_pin,
                    bus.mosi_pin,
                    bus.miso_pin,
                    bus.chip_select_pin,
                ];
                if pins.iter().any(|&p| p > 7) {
                    return Err(TreeError::BadGpio);
                }
                if bus.gpio_spi > gic_irq::MAX_SPI {
                    return Err(TreeError::BadSpi(bus.gpio_spi));
                }
                mmio.push(("GPIO", gpio));
            }
            TpmInterface::TisMmio { base, size } => {
                mmio.push(("TPM", region(base, size).ok_or(TreeError::BadTpm)?));
            }
        }
        if let Some((start, len)) = tpm.event_log {
            let log = region(start, u64::from(len)).ok_or(TreeError::EventLogOutsideRam)?;
            if !ram.iter().any(|&(s, e)| s <= log.0 && log.1 <= e) {
                return Err(TreeError::EventLogOutsideRam);
            }
        }
    }
    for (what, r) in mmio {
        if ram.iter().any(|&m| overlaps(m, r)) {
            return Err(TreeError::MmioInRam(what));
        }
    }

    let uart_path = uart_path(uart.base);
    let uart_node = uart_path.trim_start_matches('/');
    let mut w = FdtWriter::new();
    w.begin_node("");
    w.property_u32("interrupt-parent", GIC_PHANDLE);
    w.property_string("model", tree.model);
    w.property_u32("#size-cells", 2);
    w.property_u32("#address-cells", 2);
    w.property_string("compatible", "linux,dummy-virt");

    w.begin_node("chosen");
    w.property_string("bootargs", tree.bootargs);
    w.property_string("stdout-path", &uart_path);
    if let Some((start, end)) = tree.initrd {
        w.property_u64("linux,initrd-start", start);
        w.property_u64("linux,initrd-end", end);
    }
    if let Some(seed) = tree.kaslr_seed {
        w.property_u64("kaslr-seed", seed);
    }
    if let Some(seed) = tree.rng_seed {
        w.property_bytes("rng-seed", seed);
    }
    w.end_node();

    w.begin_node("aliases");
    w.property_string("serial0", &uart_path);
    w.end_node();

    for &(start, end) in &ram {
        w.begin_node(&format!("memory@{start:x}"));
        w.property_string("device_type", "memory");
        w.property_u64s("reg", &[start, end - start]);
        w.end_node();
    }

    w.begin_node("cpus");
    w.property_u32("#address-cells", cpu_address_cells);
    w.property_u32("#size-cells", 0);
    for &mpidr in tree.cpus {
        // The unit address is the `reg` value: for two cells, Aff3 then Aff2..Aff0, which
        // is the MPIDR's own layout (`arm/cpus.yaml`'s example `cpu@100000000`).
        w.begin_node(&format!("cpu@{mpidr:x}"));
        w.property_string("device_type", "cpu");
        w.property_string("compatible", "arm,armv8");
        if cpu_address_cells == 2 {
            w.property_u64("reg", mpidr);
        } else {
            // At most 24 bits here (no Aff3, nothing outside the mask).
            w.property_u32("reg", (mpidr & 0xff_ffff) as u32);
        }
        w.property_string("enable-method", "psci");
        w.end_node();
    }
    w.end_node();

    w.begin_node("psci");
    w.property_strings("compatible", &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]);
    w.property_string("method", "hvc");
    w.property_u32("cpu_suspend", psci_fn::CPU_SUSPEND);
    w.property_u32("cpu_off", psci_fn::CPU_OFF);
    w.property_u32("cpu_on", psci_fn::CPU_ON);
    w.property_u32("migrate", psci_fn::MIGRATE);
    w.end_node();

    w.begin_node("timer");
    w.property_strings("compatible", &["arm,armv8-timer", "arm,armv7-timer"]);
    let timer: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [gic_irq::PPI, ppi, gic_irq::LEVEL_HIGH])
        .collect();
    w.property_cells("interrupts", &timer);
    w.property_empty("always-on");
    w.end_node();

    w.begin_node(&format!("intc@{:x}", gic.distributor));
    w.property_string("compatible", "arm,gic-v3");
    w.property_u32("#interrupt-cells", 3);
    w.property_empty("interrupt-controller");
    w.property_u32("#address-cells", 2);
    w.property_u32("#size-cells", 2);
    w.property_empty("ranges");
    w.property_u64s("reg", &[gicd.0, gicd.1 - gicd.0, gicr.0, gicr.1 - gicr.0]);
    w.property_u32("#redistributor-regions", 1);
    if gic.redistributor_stride != GICR_STRIDE {
        w.property_u64("redistributor-stride", gic.redistributor_stride);
    }
    w.property_u32("phandle", GIC_PHANDLE);
    w.end_node();

    w.begin_node("apb-pclk");
    w.property_string("compatible", "fixed-clock");
    w.property_u32("#clock-cells", 0);
    w.property_u32("clock-frequency", UART_CLOCK_HZ);
    w.property_string("clock-output-names", "clk24mhz");
    w.property_u32("phandle", CLOCK_PHANDLE);
    w.end_node();

    w.begin_node(uart_node);
    w.property_strings("compatible", &["arm,pl011", "arm,primecell"]);
    w.property_u64s("reg", &[uart.base, uart.size]);
    w.property_cells("interrupts", &[gic_irq::SPI, uart.spi, gic_irq::LEVEL_HIGH]);
    w.property_strings("clock-names", &["uartclk", "apb_pclk"]);
    w.property_cells("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE]);
    w.end_node();

    if let Some(tpm) = tree.tpm {
        match tpm.interface {
            TpmInterface::GpioSpi(bus) => write_gpio_spi_tpm(&mut w, &bus, tpm.event_log),
            TpmInterface::TisMmio { base, size } => {
                w.begin_node(&format!("tpm@{base:x}"));
                w.property_string("compatible", "tcg,tpm-tis-mmio");
                w.property_u64s("reg", &[base, size]);
                write_event_log_properties(&mut w, tpm.event_log);
                w.end_node();
            }
        }
        if let Some(log) = tpm.event_log {
            write_event_log_reservation(&mut w, log);
        }
    }

    w.end_node();
    let blob = w.finish().map_err(TreeError::Fdt)?;
    if blob.len() > MAX_DTB_SIZE {
        return Err(TreeError::TooLarge(blob.len()));
    }
    Ok(blob)
}

/// The PL061 as QEMU's `virt` describes its own (no `interrupt-controller`: nothing here
/// takes interrupts from its pins), and the bus on its pins: an `spi-gpio`
/// node whose `cs-gpios` is active low (as every SPI chip select without `spi-cs-high`),
/// with the TPM as its device 0.
fn write_gpio_spi_tpm(w: &mut FdtWriter, tpm: &GpioSpiTpm, event_log: Option<(u64, u32)>) {
    w.begin_node(&format!("pl061@{:x}", tpm.gpio_base));
    w.property_strings("compatible", &["arm,pl061", "arm,primecell"]);
    w.property_u64s("reg", &[tpm.gpio_base, tpm.gpio_size]);
    w.property_cells(
        "interrupts",
        &[gic_irq::SPI, tpm.gpio_spi, gic_irq::LEVEL_HIGH],
    );
    w.property_empty("gpio-controller");
    w.property_u32("#gpio-cells", 2);
    w.property_string("clock-names", "apb_pclk");
    w.property_u32("clocks", CLOCK_PHANDLE);
    w.property_u32("phandle", GPIO_PHANDLE);
    w.end_node();

    w.begin_node("spi");
    w.property_string("compatible", "spi-gpio");
    w.property_u32("#address-cells", 1);
    w.property_u32("#size-cells", 0);
    for (name, pin, flags) in [
        ("sck-gpios", tpm.clock_pin, GPIO_ACTIVE_HIGH),
        ("mosi-gpios", tpm.mosi_pin, GPIO_ACTIVE_HIGH),
        ("miso-gpios", tpm.miso_pin, GPIO_ACTIVE_HIGH),
        ("cs-gpios", tpm.chip_select_pin, GPIO_ACTIVE_LOW),
    ] {
        w.property_cells(name, &[GPIO_PHANDLE, pin, flags]);
    }
    w.property_u32("num-chipselects", 1);
    w.begin_node("tpm@0");
    w.property_string("compatible", "tcg,tpm_tis-spi");
    w.property_u32("reg", 0);
    w.property_u32("spi-max-frequency", TPM_SPI_HZ);
    write_event_log_properties(w, event_log);
    w.end_node();
    w.end_node();
}

/// The TPM node's pointer to the event log; Linux's tpm_read_log_of reads these as
/// big-endian u64 and u32.
fn write_event_log_properties(w: &mut FdtWriter, event_log: Option<(u64, u32)>) {
    if let Some((start, len)) = event_log {
        w.property_u64("linux,sml-base", start);
        w.property_u32("linux,sml-size", len);
    }
}

/// `/reserved-memory` with the event log's area, mapped (no `no-map`).
fn write_event_log_reservation(w: &mut FdtWriter, (start, len): (u64, u32)) {
    w.begin_node("reserved-memory");
    w.property_u32("#address-cells", 2);
    w.property_u32("#size-cells", 2);
    w.property_empty("ranges");
    w.begin_node(&format!("tpm-event-log@{start:x}"));
    w.property_u64s("reg", &[start, u64::from(len)]);
    w.end_node();
    w.end_node();
}

/// The `stdout-path` [`build_device_tree`] writes for a PL011 at `base`.
pub fn uart_path(base: u64) -> String {
    format!("/pl011@{base:x}")
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::fdt_writer::tests::{dtc_decompile, walk};
    use alloc::string::ToString;
    use alloc::vec;
    use arch::aarch64::devicetree::{self, GicDescription, PsciConduit};

    /// A synthetic `Image` with the header of Debian's 6.1.0-56-arm64 kernel (code0
    /// 0xfa405a4d, "MZ" and a no-op; code1 0x1459a356, the branch to `primary_entry`;
    /// text_offset 0; image_size 0x2010000; flags 0xa; the PE header at 0x40), `len` bytes
    /// long.
    fn image(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(0x00, &0xfa40_5a4du32.to_le_bytes());
        put(0x04, &0x1459_a356u32.to_le_bytes());
        put(0x08, &0u64.to_le_bytes());
        put(0x10, &0x201_0000u64.to_le_bytes());
        put(0x18, &0xau64.to_le_bytes());
        put(0x38, b"ARM\x64");
        put(0x3c, &0x40u32.to_le_bytes());
        b
    }

    fn good() -> Vec<u8> {
        image(0x1000)
    }

    fn set(mut img: Vec<u8>, at: usize, v: &[u8]) -> Vec<u8> {
        img[at..at + v.len()].copy_from_slice(v);
        img
    }

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn debians_header_parses() {
        let h = ImageHeader::parse(&good()).unwrap();
        assert_eq!(
            h,
            ImageHeader {
                code0: 0xfa40_5a4d,
                code1: 0x1459_a356,
                text_offset: 0,
                image_size: 0x201_0000,
                flags: 0xa,
                pe_header_offset: 0x40,
                file_size: 0x1000,
            }
        );
        assert_eq!(h.page_size(), PageSize::Size4K);
        assert!(h.placement_anywhere());
        assert_eq!(&good()[..2], b"MZ", "an EFI image's code0 starts with MZ");
        // The real file's length, 0x1f6dfc0, is below its image_size.
        assert!(ImageHeader::parse(&image(0x1f6_dfc0)).is_ok());
        assert!(ImageHeader::parse(&image(0x201_0000)).is_ok());
    }

    #[test]
    fn every_rule_has_its_own_error() {
        use ImageError::*;
        let parse = |img: &[u8]| ImageHeader::parse(img).unwrap_err();
        assert_eq!(parse(&good()[..63]), Truncated { len: 63 });
        assert_eq!(parse(&[]), Truncated { len: 0 });
        assert!(ImageHeader::parse(&good()[..64]).is_ok());
        // A gzip file (Image.gz) has no magic at 0x38.
        assert_eq!(parse(&set(good(), 0x38, b"ARM\x65")), BadMagic(*b"ARM\x65"));
        assert_eq!(parse(&set(good(), 0x10, &0u64.to_le_bytes())), NoImageSize);
        assert_eq!(parse(&set(good(), 0x18, &0xbu64.to_le_bytes())), BigEndian);
        assert_eq!(
            parse(&set(good(), 0x18, &0x1au64.to_le_bytes())),
            UnknownFlags(0x10)
        );
        assert_eq!(
            parse(&set(good(), 0x18, &(0xa | 1u64 << 63).to_le_bytes())),
            UnknownFlags(1 << 63)
        );
        assert_eq!(
            parse(&set(good(), 0x08, &0x8_0800u64.to_le_bytes())),
            BadTextOffset(0x8_0800)
        );
        assert_eq!(
            parse(&set(good(), 0x08, &(2 * MIB).to_le_bytes())),
            BadTextOffset(2 * MIB)
        );
        assert_eq!(
            parse(&set(good(), 0x08, &u64::MAX.to_le_bytes())),
            BadTextOffset(u64::MAX)
        );
        // The old default, 0x80000, and the last 4 KiB step below 2 MiB are fine.
        assert!(ImageHeader::parse(&set(good(), 0x08, &0x8_0000u64.to_le_bytes())).is_ok());
        assert!(ImageHeader::parse(&set(good(), 0x08, &0x1f_f000u64.to_le_bytes())).is_ok());
        assert_eq!(
            parse(&set(good(), 0x10, &0xfffu64.to_le_bytes())),
            ImageSizeTooSmall {
                image_size: 0xfff,
                file_size: 0x1000
            }
        );
        // Page size and placement are information, not conditions.
        for flags in [0u64, 2, 4, 6, 8, 0xe] {
            let h = ImageHeader::parse(&set(good(), 0x18, &flags.to_le_bytes())).unwrap();
            assert_eq!(h.placement_anywhere(), flags & 8 != 0);
            assert_eq!(
                h.page_size(),
                [
                    PageSize::Unspecified,
                    PageSize::Size4K,
                    PageSize::Size16K,
                    PageSize::Size64K
                ][(flags as usize >> 1) & 3]
            );
        }
    }

    /// Every byte of the header flipped, and every truncation: a header or a clean error,
    /// never a panic; whatever parses satisfies the rules.
    #[test]
    fn corrupted_and_truncated_images_never_panic() {
        let img = good();
        for at in 0..HEADER_LEN {
            for flip in [0x01u8, 0x02, 0x08, 0x10, 0x80, 0xff] {
                let mut bad = img.clone();
                bad[at] ^= flip;
                if let Ok(h) = ImageHeader::parse(&bad) {
                    assert!(h.image_size >= h.file_size);
                    assert_eq!(h.flags & !0xe, 0);
                    assert_eq!(h.text_offset % 4096, 0);
                    assert!(h.text_offset < 2 * MIB);
                    let _ = h.place(&[(0, u64::MAX)], 0);
                    let _ = h.place(&[(u64::MAX - 4096, u64::MAX)], u64::MAX);
                    let _ = h.check_load_address(u64::MAX);
                    let _ = h.initrd_window_ok(u64::MAX, (0, u64::MAX));
                }
            }
        }
        for len in 0..img.len() {
            let _ = ImageHeader::parse(&img[..len]);
        }
        let mut wild = img.clone();
        for at in [0x08, 0x10, 0x18] {
            wild[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        }
        let _ = ImageHeader::parse(&wild);
    }

    #[test]
    fn placement_takes_the_lowest_2_mib_boundary_plus_text_offset_that_fits() {
        let h = ImageHeader::parse(&good()).unwrap();
        let size = h.image_size; // 32 MiB + 64 KiB
        let ram = qemu_virt::RAM_BASE;
        // Parapet keeps the first 64 MiB of a 512 MiB guest.
        let free = [(ram + 64 * MIB + 0x1234, ram + 512 * MIB)];
        assert_eq!(h.place(&free, ram), Some(ram + 66 * MIB));
        assert_eq!(h.check_load_address(ram + 66 * MIB), Ok(()));
        // A hole too small for image_size is skipped for a later range.
        let free = [(ram, ram + 32 * MIB), (ram + 100 * MIB, ram + 200 * MIB)];
        assert_eq!(h.place(&free, ram), Some(ram + 100 * MIB));
        // An exact fit.
        assert_eq!(h.place(&[(ram, ram + size)], ram), Some(ram));
        assert_eq!(h.place(&[(ram, ram + size - 1)], ram), None);
        assert_eq!(h.place(&[], ram), None);

        // With the old text_offset, 0x80000, the image goes 512 KiB past the boundary, and
        // a range starting just below a boundary can take it at that boundary's offset.
        let old = ImageHeader::parse(&set(good(), 0x08, &0x8_0000u64.to_le_bytes())).unwrap();
        assert_eq!(
            old.place(&[(ram, ram + 512 * MIB)], ram),
            Some(ram + 0x8_0000)
        );
        assert_eq!(
            old.place(&[(ram + 0x8_0000, ram + 512 * MIB)], ram),
            Some(ram + 0x8_0000)
        );
        assert_eq!(
            old.place(&[(ram + 0x8_1000, ram + 512 * MIB)], ram),
            Some(ram + 2 * MIB + 0x8_0000)
        );
        assert_eq!(
            old.check_load_address(ram),
            Err(LoadAddressError::Misaligned)
        );
        assert_eq!(
            old.check_load_address(0x7_0000),
            Err(LoadAddressError::Misaligned)
        );
        assert_eq!(
            old.place(&[(0, 512 * MIB)], 0),
            Some(0x8_0000),
            "the base may be address 0"
        );

        // Without bit 3, never below RAM's base; with it, the 48-bit limit.
        let low = ImageHeader::parse(&set(good(), 0x18, &0x2u64.to_le_bytes())).unwrap();
        assert!(!low.placement_anywhere());
        let free = [(0, 64 * MIB), (ram, ram + 512 * MIB)];
        assert_eq!(low.place(&free, ram), Some(ram));
        assert_eq!(h.place(&free, ram), Some(0));
        let top = [(PHYS_LIMIT - 16 * MIB, u64::MAX)];
        assert_eq!(h.place(&top, 0), None);
        assert_eq!(low.place(&top, 0), Some(PHYS_LIMIT - 16 * MIB));
        assert_eq!(
            h.place(&[(PHYS_LIMIT - 64 * MIB, u64::MAX)], 0),
            Some(PHYS_LIMIT - 64 * MIB),
            "ending below 2^48 is fine"
        );
        assert_eq!(
            h.check_load_address(PHYS_LIMIT - 32 * MIB),
            Err(LoadAddressError::Beyond48Bits)
        );
        assert_eq!(
            low.check_load_address(u64::MAX - 2 * MIB + 1),
            Err(LoadAddressError::Overflow)
        );
        // Ranges at the very top of the address space: no overflow, no fit.
        assert_eq!(low.place(&[(u64::MAX - MIB, u64::MAX)], 0), None);
    }

    #[test]
    fn the_initrd_shares_a_1_gib_aligned_32_gib_window_with_the_kernel() {
        let h = ImageHeader::parse(&good()).unwrap();
        let k = GIB + 66 * MIB;
        assert!(h.initrd_window_ok(k, (GIB + 400 * MIB, GIB + 450 * MIB)));
        // Below the kernel: the window starts at the initrd's GiB.
        assert!(h.initrd_window_ok(k, (GIB + MIB, GIB + 2 * MIB)));
        assert!(h.initrd_window_ok(k, (GIB - MIB, GIB)));
        // The window may end exactly 32 GiB past the kernel's GiB boundary, not further.
        assert!(h.initrd_window_ok(k, (32 * GIB, 33 * GIB)));
        assert!(!h.initrd_window_ok(k, (32 * GIB, 33 * GIB + 1)));
        assert!(!h.initrd_window_ok(40 * GIB, (GIB, 2 * GIB)));
        assert!(!h.initrd_window_ok(k, (GIB + 400 * MIB, GIB + 400 * MIB)));
        assert!(!h.initrd_window_ok(u64::MAX - 100, (0, 1)));
    }

    #[test]
    fn dtb_rules_and_entry_registers() {
        assert!(dtb_placement_ok(0x4800_0000, MAX_DTB_SIZE));
        assert!(!dtb_placement_ok(0x4800_0004, 0x1000));
        assert!(!dtb_placement_ok(0x4800_0000, MAX_DTB_SIZE + 1));
        assert!(!dtb_placement_ok(u64::MAX - 7, 0x10));
        assert_eq!(boot_registers(0x4800_0000), [0x4800_0000, 0, 0, 0]);
        assert_eq!(MAX_DTB_SIZE, 0x20_0000);
    }

    const RAM: [(u64, u64); 2] = [(0x4400_0000, 0x6000_0000), (0x1_0000_0000, 0x1_2000_0000)];
    const CPUS: [u64; 2] = [0, 1];
    const INITRD: (u64, u64) = (0x5000_0000, 0x5012_3456);
    const RNG: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn guest() -> GuestTree<'static> {
        GuestTree {
            model: "Parapet guest",
            ram: &RAM,
            cpus: &CPUS,
            gic: GicV3 {
                distributor: qemu_virt::GICD_BASE,
                distributor_size: GICD_SIZE,
                redistributors: qemu_virt::GICR_BASE,
                redistributor_stride: GICR_STRIDE,
            },
            uart: Pl011 {
                base: qemu_virt::UART_BASE,
                size: qemu_virt::UART_SIZE,
                spi: qemu_virt::UART_SPI,
            },
            bootargs: "console=ttyAMA0 earlycon rdinit=/init",
            initrd: Some(INITRD),
            kaslr_seed: Some(0x0123_4567_89ab_cdef),
            rng_seed: Some(&RNG),
            tpm: Some(GuestTpm {
                interface: TpmInterface::GpioSpi(GpioSpiTpm {
                    gpio_base: qemu_virt::GPIO_BASE,
                    gpio_size: qemu_virt::GPIO_SIZE,
                    gpio_spi: qemu_virt::GPIO_SPI,
                    clock_pin: 0,
                    mosi_pin: 1,
                    miso_pin: 2,
                    chip_select_pin: 3,
                }),
                event_log: Some((0x4410_0000, 0x1_0000)),
            }),
        }
    }

    /// What dtc gives back for [`guest`]'s tree; also the report's sample.
    const GUEST_DTS: &str = r#"/dts-v1/;

/ {
	interrupt-parent = <0x01>;
	model = "Parapet guest";
	#size-cells = <0x02>;
	#address-cells = <0x02>;
	compatible = "linux,dummy-virt";

	chosen {
		bootargs = "console=ttyAMA0 earlycon rdinit=/init";
		stdout-path = "/pl011@9000000";
		linux,initrd-start = <0x00 0x50000000>;
		linux,initrd-end = <0x00 0x50123456>;
		kaslr-seed = <0x1234567 0x89abcdef>;
		rng-seed = <0x1020304 0x5060708>;
	};

	aliases {
		serial0 = "/pl011@9000000";
	};

	memory@44000000 {
		device_type = "memory";
		reg = <0x00 0x44000000 0x00 0x1c000000>;
	};

	memory@100000000 {
		device_type = "memory";
		reg = <0x01 0x00 0x00 0x20000000>;
	};

	cpus {
		#address-cells = <0x01>;
		#size-cells = <0x00>;

		cpu@0 {
			device_type = "cpu";
			compatible = "arm,armv8";
			reg = <0x00>;
			enable-method = "psci";
		};

		cpu@1 {
			device_type = "cpu";
			compatible = "arm,armv8";
			reg = <0x01>;
			enable-method = "psci";
		};
	};

	psci {
		compatible = "arm,psci-1.0\0arm,psci-0.2\0arm,psci";
		method = "hvc";
		cpu_suspend = <0xc4000001>;
		cpu_off = <0x84000002>;
		cpu_on = <0xc4000003>;
		migrate = <0xc4000005>;
	};

	timer {
		compatible = "arm,armv8-timer\0arm,armv7-timer";
		interrupts = <0x01 0x0d 0x04 0x01 0x0e 0x04 0x01 0x0b 0x04 0x01 0x0a 0x04>;
		always-on;
	};

	intc@8000000 {
		compatible = "arm,gic-v3";
		#interrupt-cells = <0x03>;
		interrupt-controller;
		#address-cells = <0x02>;
		#size-cells = <0x02>;
		ranges;
		reg = <0x00 0x8000000 0x00 0x10000 0x00 0x80a0000 0x00 0x40000>;
		#redistributor-regions = <0x01>;
		phandle = <0x01>;
	};

	apb-pclk {
		compatible = "fixed-clock";
		#clock-cells = <0x00>;
		clock-frequency = <0x16e3600>;
		clock-output-names = "clk24mhz";
		phandle = <0x02>;
	};

	pl011@9000000 {
		compatible = "arm,pl011\0arm,primecell";
		reg = <0x00 0x9000000 0x00 0x1000>;
		interrupts = <0x00 0x01 0x04>;
		clock-names = "uartclk\0apb_pclk";
		clocks = <0x02 0x02>;
	};

	pl061@9030000 {
		compatible = "arm,pl061\0arm,primecell";
		reg = <0x00 0x9030000 0x00 0x1000>;
		interrupts = <0x00 0x07 0x04>;
		gpio-controller;
		#gpio-cells = <0x02>;
		clock-names = "apb_pclk";
		clocks = <0x02>;
		phandle = <0x03>;
	};

	spi {
		compatible = "spi-gpio";
		#address-cells = <0x01>;
		#size-cells = <0x00>;
		sck-gpios = <0x03 0x00 0x00>;
		mosi-gpios = <0x03 0x01 0x00>;
		miso-gpios = <0x03 0x02 0x00>;
		cs-gpios = <0x03 0x03 0x01>;
		num-chipselects = <0x01>;

		tpm@0 {
			compatible = "tcg,tpm_tis-spi";
			reg = <0x00>;
			spi-max-frequency = <0xf4240>;
			linux,sml-base = <0x00 0x44100000>;
			linux,sml-size = <0x10000>;
		};
	};

	reserved-memory {
		#address-cells = <0x02>;
		#size-cells = <0x02>;
		ranges;

		tpm-event-log@44100000 {
			reg = <0x00 0x44100000 0x00 0x10000>;
		};
	};
};
"#;

    #[test]
    fn dtc_reads_the_guest_tree_as_qemus_virt_writes_it() {
        let blob = build_device_tree(&guest()).unwrap();
        let Some(dts) = dtc_decompile(&blob, "guest-tree") else {
            return;
        };
        assert_eq!(dts, GUEST_DTS);
    }

    /// A memory-mapped FIFO TPM is one node, `tcg,tpm-tis-mmio`, pointing at the event log.
    #[test]
    fn a_memory_mapped_tpm_is_a_tis_mmio_node() {
        let tpm = GuestTpm {
            interface: TpmInterface::TisMmio {
                base: 0x0c00_0000,
                size: 0x5000,
            },
            event_log: Some((0x4410_0000, 0x1_0000)),
        };
        let blob = build_device_tree(&GuestTree {
            tpm: Some(tpm),
            ..guest()
        })
        .unwrap();
        let Some(dts) = dtc_decompile(&blob, "tis-mmio-tree") else {
            return;
        };
        let node = "\ttpm@c000000 {\n\t\tcompatible = \"tcg,tpm-tis-mmio\";\n\t\treg = <0x00 0xc000000 0x00 0x5000>;\n\t\tlinux,sml-base = <0x00 0x44100000>;\n\t\tlinux,sml-size = <0x10000>;\n\t};";
        assert!(dts.contains(node), "{dts}");
        assert!(
            dts.contains("tpm-event-log@44100000") && !dts.contains("pl061"),
            "{dts}"
        );
    }

    /// Parapet's own reader, the one its aarch64 boot uses on the tree QEMU hands it, finds
    /// in the guest's tree what went in.
    #[test]
    fn parapets_device_tree_parser_reads_the_guest_tree() {
        let blob = build_device_tree(&guest()).unwrap();
        let p = devicetree::parse(&blob).unwrap();
        let regions: Vec<(u64, u64)> = p
            .memory
            .regions()
            .iter()
            .map(|r| (r.start, r.end))
            .collect();
        assert_eq!(regions, RAM);
        assert_eq!(p.cpus(), &CPUS);
        assert_eq!(p.uart, Some(qemu_virt::UART_BASE));
        assert_eq!(
            p.gic,
            GicDescription::V3 {
                distributor: qemu_virt::GICD_BASE,
                redistributors: (qemu_virt::GICR_BASE, 2 * GICR_STRIDE),
            }
        );
        assert_eq!(p.hyp_timer_intid, 26);
        assert_eq!(p.psci, Some(PsciConduit::Hvc));
        assert_eq!(p.bootargs, "console=ttyAMA0 earlycon rdinit=/init");
        assert_eq!(
            p.initrd,
            Some((INITRD.0, INITRD.1)),
            "(start, end) as /chosen has them"
        );
        assert_eq!(
            p.reserved(),
            &[(0x4410_0000, 0x1_0000)],
            "the TPM's event log"
        );
        assert_eq!(p.total_size, blob.len());
        assert!(dtb_placement_ok(0x4800_0000, blob.len()));
    }

    #[test]
    fn options_change_only_their_own_properties() {
        let minimal = GuestTree {
            initrd: None,
            kaslr_seed: None,
            rng_seed: None,
            bootargs: "",
            ..guest()
        };
        let lines = walk(&build_device_tree(&minimal).unwrap());
        let chosen: Vec<&str> = lines
            .iter()
            .skip_while(|l| *l != "{chosen")
            .take_while(|l| *l != "}")
            .map(|l| l.as_str())
            .collect();
        assert_eq!(
            chosen,
            [
                "{chosen",
                "bootargs=00",
                &format!("stdout-path={}", hex(b"/pl011@9000000\0")),
            ]
        );
        // Aff3 set: two-cell CPU addresses; another stride: redistributor-stride.
        let cpus = [0x1_0000_0000u64, 0x1_0000_0001, 0x0001_0203];
        let wide = GuestTree {
            cpus: &cpus,
            gic: GicV3 {
                redistributor_stride: 0x4_0000,
                ..guest().gic
            },
            uart: Pl011 {
                base: 0x1c09_0000,
                size: 0x1000,
                spi: 5,
            },
            ..guest()
        };
        let blob = build_device_tree(&wide).unwrap();
        let lines = walk(&blob);
        let has = |l: &str| lines.iter().any(|x| x == l);
        assert!(has("{cpu@100000000"));
        assert!(has("{cpu@100000001"));
        assert!(has("{cpu@10203"));
        assert!(has("reg=0000000100000001"));
        assert!(has("reg=0000000000010203"));
        assert!(has("#address-cells=00000002"));
        assert!(has("redistributor-stride=0000000000040000"));
        assert!(has(&format!(
            "reg={}",
            hex(&[0x0800_0000u64, 0x1_0000, 0x080a_0000, 3 * 0x4_0000]
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect::<Vec<u8>>())
        )));
        assert!(has("{pl011@1c090000"));
        assert!(has("interrupts=000000000000000500000004"));
        assert!(has(&format!("stdout-path={}", hex(b"/pl011@1c090000\0"))));
        assert_eq!(uart_path(0x1c09_0000), "/pl011@1c090000");
        let p = devicetree::parse(&blob).unwrap();
        assert_eq!(p.cpus(), &cpus);
        if let Some(dts) = dtc_decompile(&blob, "guest-tree-wide") {
            assert!(dts.contains("cpu@100000001 {"));
            assert!(dts.contains("reg = <0x01 0x01>;"));
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn bad_configurations_are_refused() {
        let build = |t: GuestTree| build_device_tree(&t).unwrap_err();
        let g = guest();
        assert_eq!(build(GuestTree { ram: &[], ..g }), TreeError::NoRam);
        assert_eq!(
            build(GuestTree {
                ram: &[(0x4000_0000, 0x4000_0000)],
                ..g
            }),
            TreeError::BadRam {
                start: 0x4000_0000,
                end: 0x4000_0000
            }
        );
        assert_eq!(
            build(GuestTree {
                ram: &[(0x5000_0000, 0x6000_0000), (0x4000_0000, 0x5000_0001)],
                ..g
            }),
            TreeError::RamOverlap { start: 0x5000_0000 }
        );
        assert_eq!(build(GuestTree { cpus: &[], ..g }), TreeError::NoCpus);
        assert_eq!(
            build(GuestTree {
                cpus: &[0, 0x8000_0001],
                ..g
            }),
            TreeError::BadMpidr(0x8000_0001),
            "MPIDR bit 31 (RES1) is not affinity"
        );
        assert_eq!(
            build(GuestTree {
                cpus: &[0, 1 << 24],
                ..g
            }),
            TreeError::BadMpidr(1 << 24),
            "MT is not affinity"
        );
        assert_eq!(
            build(GuestTree {
                cpus: &[0, 1, 0],
                ..g
            }),
            TreeError::DuplicateCpu(0)
        );
        assert_eq!(
            build(GuestTree {
                initrd: Some((0x5000_0000, 0x5000_0000)),
                ..g
            }),
            TreeError::BadInitrd {
                start: 0x5000_0000,
                end: 0x5000_0000
            }
        );
        assert_eq!(
            build(GuestTree {
                initrd: Some((0x5fff_f000, 0x6000_1000)),
                ..g
            }),
            TreeError::InitrdOutsideRam
        );
        let gic = |f: &dyn Fn(&mut GicV3)| {
            let mut gic = g.gic;
            f(&mut gic);
            build(GuestTree { gic, ..g })
        };
        assert_eq!(gic(&|g| g.distributor_size = 0), TreeError::BadGic);
        assert_eq!(gic(&|g| g.redistributor_stride = 0), TreeError::BadGic);
        assert_eq!(
            gic(&|g| g.redistributor_stride = 0x2_8000),
            TreeError::BadGic
        );
        assert_eq!(gic(&|g| g.distributor += 0x1000), TreeError::BadGic);
        assert_eq!(
            gic(&|g| g.redistributors = u64::MAX - 0xffff),
            TreeError::BadGic
        );
        assert_eq!(
            gic(&|g| g.redistributor_stride = 1 << 63),
            TreeError::BadGic
        );
        assert_eq!(
            gic(&|g| g.redistributors = 0x4400_0000),
            TreeError::MmioInRam("GIC redistributor")
        );
        assert_eq!(
            build(GuestTree {
                uart: Pl011 { size: 0, ..g.uart },
                ..g
            }),
            TreeError::BadUart
        );
        assert_eq!(
            build(GuestTree {
                uart: Pl011 { spi: 988, ..g.uart },
                ..g
            }),
            TreeError::BadSpi(988)
        );
        assert!(build_device_tree(&GuestTree {
            uart: Pl011 { spi: 987, ..g.uart },
            ..g
        })
        .is_ok());
        let tpm = g.tpm.unwrap();
        let TpmInterface::GpioSpi(bus) = tpm.interface else {
            panic!("the sample tree's TPM is on SPI");
        };
        let with_bus = |bus: GpioSpiTpm| {
            build(GuestTree {
                tpm: Some(GuestTpm {
                    interface: TpmInterface::GpioSpi(bus),
                    ..tpm
                }),
                ..g
            })
        };
        assert_eq!(
            with_bus(GpioSpiTpm {
                gpio_size: 0,
                ..bus
            }),
            TreeError::BadGpio
        );
        assert_eq!(
            with_bus(GpioSpiTpm { miso_pin: 8, ..bus }),
            TreeError::BadGpio
        );
        assert_eq!(
            with_bus(GpioSpiTpm {
                gpio_spi: 988,
                ..bus
            }),
            TreeError::BadSpi(988)
        );
        assert_eq!(
            with_bus(GpioSpiTpm {
                gpio_base: RAM[0].0,
                ..bus
            }),
            TreeError::MmioInRam("GPIO")
        );
        let with_tpm = |tpm: GuestTpm| {
            build(GuestTree {
                tpm: Some(tpm),
                ..g
            })
        };
        assert_eq!(
            with_tpm(GuestTpm {
                event_log: Some((0x1000, 0x1000)),
                ..tpm
            }),
            TreeError::EventLogOutsideRam
        );
        let mmio = |base, size| GuestTpm {
            interface: TpmInterface::TisMmio { base, size },
            ..tpm
        };
        assert_eq!(with_tpm(mmio(0x0c00_0000, 0)), TreeError::BadTpm);
        assert_eq!(
            with_tpm(mmio(RAM[0].0, 0x5000)),
            TreeError::MmioInRam("TPM")
        );
        assert_eq!(
            build(GuestTree {
                uart: Pl011 {
                    base: 0x5fff_f000,
                    ..g.uart
                },
                ..g
            }),
            TreeError::MmioInRam("UART")
        );
        assert_eq!(
            build(GuestTree {
                bootargs: "a\0b",
                ..g
            }),
            TreeError::Fdt(FdtError::NulInString("bootargs".into()))
        );
        // 70000 CPUs: a tree past 2 MiB.
        let many: Vec<u64> = (0..70_000u64)
            .map(|i| (i & 0xff) | ((i >> 8) & 0xff) << 8 | (i >> 16) << 16)
            .collect();
        assert!(matches!(
            build(GuestTree {
                cpus: &many,
                gic: GicV3 {
                    redistributors: 0x10_0000_0000,
                    ..g.gic
                },
                ..g
            }),
            TreeError::TooLarge(n) if n > MAX_DTB_SIZE
        ));
        assert_eq!(TreeError::BadSpi(988).to_string(), "SPI 988 is above 987");
    }
}

//! Booting an uncompressed x86-64 Linux (`vmlinux`, the ELF a bzImage's payload decompresses
//! to) at its own 64-bit entry, `startup_64`, skipping the bzImage's decompressor: the way
//! Linux's PVH entry, Firecracker and cloud-hypervisor start it.
//!
//! Why: the decompressor runs hundreds of millions of instructions before the kernel's
//! first one (xz of a 60 MiB kernel). Where each guest instruction is expensive (an emulating
//! KVM, nested TCG) that is most of a boot.
//!
//! What `startup_64` needs (Linux `arch/x86/kernel/head_64.S` and `head64.c`, `__startup_64`):
//! - the segments at their physical addresses shifted by one delta that is a multiple of
//!   2 MiB (`load_delta & ~PMD_MASK` must be 0, or it stops in a loop); virtual addresses stay
//!   as linked, so no relocation is needed;
//! - 64-bit mode, the image and the zero page identity-mapped, RSI = the zero page; the same
//!   64-bit boot protocol state a bzImage's entry takes (`linux_boot`);
//! - a zero page whose setup header carries what the kernel proper reads: `boot_flag`,
//!   "HdrS", `version`, `type_of_loader`, command line and initrd pointers, `hardware_subarch`
//!   0 (Linux's own PVH entry, `arch/x86/platform/pvh/enlighten.c`, fills the same ones).
//!   [`setup_header`] makes one that [`linux_boot::build_zero_page`] accepts.
//!
//! No KASLR: that is the decompressor's job.

use alloc::vec;

use crate::linux_boot::{header as h, ImageError, SetupHeader};

/// `startup_64` needs the load delta 2 MiB-aligned (PMD_SIZE).
pub const ALIGNMENT: u64 = 2 << 20;
/// The protocol version [`setup_header`] claims: 2.15, the current one.
const PROTOCOL: u16 = 0x020f;
/// Linux's COMMAND_LINE_SIZE on x86 is 2048 with its NUL.
const COMMAND_LINE_MAX: u32 = 2047;
/// A bound on the image's span: any kernel is well under this.
const MAX_FOOTPRINT: u64 = 1 << 30;

/// Why an ELF's load segments are not a kernel `startup_64` can run from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmlinuxError {
    NoSegments,
    /// The lowest physical address is not 2 MiB-aligned, so no 2 MiB-aligned move keeps the
    /// kernel's own alignment.
    Misaligned(u64),
    /// The entry point lies in no segment.
    EntryOutside(u64),
    /// The segments span more than any kernel does, or wrap.
    TooLarge,
}

impl core::fmt::Display for VmlinuxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSegments => write!(f, "no load segments"),
            Self::Misaligned(a) => {
                write!(f, "its lowest physical address {a:#x} is not 2 MiB-aligned")
            }
            Self::EntryOutside(e) => write!(f, "its entry {e:#x} is in no load segment"),
            Self::TooLarge => write!(f, "its load segments span more than 1 GiB"),
        }
    }
}

/// Where a vmlinux's pieces go relative to the address it is loaded at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The lowest physical address the ELF names (`LOAD_PHYSICAL_ADDR`, 16 MiB for a stock
    /// kernel): loaded at `base`, a segment at `paddr` goes to `base + (paddr - link_base)`.
    pub link_base: u64,
    /// Bytes from the lowest segment's start to the highest one's end (its `.bss` and `.brk`
    /// included: they are in the last segment's memory size).
    pub footprint: u64,
    /// The entry point's distance from `link_base`.
    pub entry_offset: u64,
}

impl Layout {
    /// Reads the layout from the ELF's load segments, `(p_paddr, p_memsz)`, and its entry
    /// point (a physical address in a vmlinux).
    pub fn of(segments: &[(u64, u64)], entry: u64) -> Result<Self, VmlinuxError> {
        let link_base = segments
            .iter()
            .map(|&(start, _)| start)
            .min()
            .ok_or(VmlinuxError::NoSegments)?;
        let end = segments
            .iter()
            .map(|&(start, size)| start.checked_add(size))
            .try_fold(0u64, |high, end| end.map(|e| high.max(e)))
            .ok_or(VmlinuxError::TooLarge)?;
        if !link_base.is_multiple_of(ALIGNMENT) {
            return Err(VmlinuxError::Misaligned(link_base));
        }
        let footprint = end - link_base;
        if footprint > MAX_FOOTPRINT {
            return Err(VmlinuxError::TooLarge);
        }
        let inside = |&(start, size): &(u64, u64)| entry >= start && entry - start < size;
        if !segments.iter().any(inside) {
            return Err(VmlinuxError::EntryOutside(entry));
        }
        Ok(Self {
            link_base,
            footprint,
            entry_offset: entry - link_base,
        })
    }

    /// Where the segment linked at `paddr` goes when the kernel is loaded at `base`.
    pub fn relocate(&self, paddr: u64, base: u64) -> Option<u64> {
        base.checked_add(paddr.checked_sub(self.link_base)?)
    }
}

/// The setup header a vmlinux lacks, for a kernel of `layout`: relocatable at 2 MiB from
/// `link_base`, 64-bit, loadable above 4 GiB. It goes through [`SetupHeader::parse`], so the
/// zero page gets exactly what a bzImage's checked header would give.
pub fn setup_header(layout: &Layout) -> Result<SetupHeader, ImageError> {
    // One setup sector, and 16 bytes of "protected-mode kernel" that parse wants to find.
    let setup_sects = 1u8;
    let kernel_offset = (usize::from(setup_sects) + 1) * 512;
    let mut image = vec![0u8; kernel_offset + 16];
    let mut put = |at: usize, value: &[u8]| image[at..at + value.len()].copy_from_slice(value);
    put(h::SETUP_SECTS, &[setup_sects]);
    put(h::SYSSIZE, &1u32.to_le_bytes());
    put(h::BOOT_FLAG, &h::BOOT_FLAG_VALUE.to_le_bytes());
    // A short jump whose offset ends the header right after `init_size`.
    put(h::JUMP, &[0xeb, (h::MIN_END - h::MAGIC) as u8]);
    put(h::MAGIC, h::MAGIC_VALUE);
    put(h::VERSION, &PROTOCOL.to_le_bytes());
    put(h::LOADFLAGS, &[h::LOADED_HIGH]);
    put(h::INITRD_ADDR_MAX, &0x7fff_ffffu32.to_le_bytes());
    put(h::KERNEL_ALIGNMENT, &(ALIGNMENT as u32).to_le_bytes());
    put(
        h::RELOCATABLE_KERNEL,
        &[1, ALIGNMENT.trailing_zeros() as u8],
    );
    put(
        h::XLOADFLAGS,
        &(h::XLF_KERNEL_64 | h::XLF_CAN_BE_LOADED_ABOVE_4G).to_le_bytes(),
    );
    put(h::CMDLINE_SIZE, &COMMAND_LINE_MAX.to_le_bytes());
    put(h::PREF_ADDRESS, &layout.link_base.to_le_bytes());
    // `footprint` is at most 1 GiB (Layout::of).
    put(h::INIT_SIZE, &(layout.footprint as u32).to_le_bytes());
    SetupHeader::parse(&image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// The load segments of Debian's 6.1.0-56-amd64 vmlinux (`readelf -l`): text, data,
    /// per-CPU data (linked at virtual 0), and init + bss; entry 0x1000000.
    const DEBIAN: [(u64, u64); 4] = [
        (0x100_0000, 0x18e_a9f0),
        (0x2a0_0000, 0x64_4000),
        (0x304_4000, 0x3_5000),
        (0x307_9000, 0x198_7000),
    ];

    #[test]
    fn debian_kernel_layout() {
        let layout = Layout::of(&DEBIAN, 0x100_0000).unwrap();
        assert_eq!(layout.link_base, 0x100_0000);
        assert_eq!(layout.footprint, 0x4a0_0000 - 0x100_0000);
        assert_eq!(layout.entry_offset, 0);
        assert_eq!(layout.relocate(0x304_4000, 0x420_0000), Some(0x624_4000));
        assert_eq!(layout.relocate(0xf0_0000, 0x420_0000), None);
    }

    #[test]
    fn refuses_what_startup_64_cannot_run() {
        assert_eq!(Layout::of(&[], 0), Err(VmlinuxError::NoSegments));
        assert_eq!(
            Layout::of(&[(0x100_1000, 0x1000)], 0x100_1000),
            Err(VmlinuxError::Misaligned(0x100_1000))
        );
        assert_eq!(
            Layout::of(&DEBIAN, 0x4a0_0000),
            Err(VmlinuxError::EntryOutside(0x4a0_0000))
        );
        assert_eq!(
            Layout::of(&[(0x20_0000, u64::MAX)], 0x20_0000),
            Err(VmlinuxError::TooLarge)
        );
        assert_eq!(
            Layout::of(&[(0x20_0000, 2 << 30)], 0x20_0000),
            Err(VmlinuxError::TooLarge)
        );
    }

    #[test]
    fn the_made_up_header_places_and_boots_like_a_bzimage() {
        let layout = Layout::of(&DEBIAN, 0x100_0000).unwrap();
        let header = setup_header(&layout).unwrap();
        assert_eq!(header.version, 0x020f);
        assert!(header.relocatable && header.can_load_above_4g());
        assert_eq!(header.footprint(), layout.footprint);
        assert_eq!(header.cmdline_size, 2047);
        // Never below its link address, always on 2 MiB: the lowest fit past 65 MiB.
        let free: Vec<(u64, u64)> = vec![(0x100_0000, 0x200_0000), (0x410_0000, 0x2000_0000)];
        assert_eq!(header.place(&free), Some(0x420_0000));
        let zero_page = crate::linux_boot::build_zero_page(
            &header,
            &crate::linux_boot::BootParams {
                kernel_address: 0x420_0000,
                command_line_address: 0x9000,
                command_line: b"console=ttyS0",
                ramdisk: None,
                e820: &[crate::linux_boot::E820Entry {
                    start: 0x10_0000,
                    size: 0x1ff0_0000,
                    kind: crate::linux_boot::e820::RAM,
                }],
                acpi_rsdp: None,
            },
        )
        .unwrap();
        assert_eq!(&zero_page[h::MAGIC..h::MAGIC + 4], b"HdrS");
        assert_eq!(zero_page[h::BOOT_FLAG..h::BOOT_FLAG + 2], [0x55, 0xaa]);
        assert_eq!(
            zero_page[h::CMD_LINE_PTR..h::CMD_LINE_PTR + 4],
            0x9000u32.to_le_bytes()
        );
    }
}

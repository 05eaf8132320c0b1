//! Booting Linux as the guest at EL1, through the arm64 boot protocol (`abi::arm64_boot`):
//! the kernel (an `Image`), its initrd and command line come as a guest bundle
//! (`abi::guest_bundle`).
//!
//! Where things go, in guest RAM:
//! - the device tree Parapet writes for the guest (`abi::arm64_boot::build_device_tree`) at
//!   the start of guest RAM, alone in its 2 MiB block;
//! - the kernel at the lowest address its header allows in the rest, clear of the bundle;
//! - the initrd where the bundle brought it: Linux reserves it itself.
//!
//! The bundle lies in guest RAM, staged by the host, and nothing runs in the guest yet: it is
//! read in place (`ram::inspect`), every part checked against the staged size. The guest
//! starts with its MMU and caches off, so all of it is cleaned to memory first.

use alloc::string::String;
use alloc::vec::Vec;

use abi::arm64_boot::{self, GicV3, GuestTree, ImageError, ImageHeader, Pl011, TreeError};
use abi::guest_bundle::{self, BundleError};
use arch::aarch64::registers;

use super::devices;
use crate::guest::bundle::{self, StagedError};
use crate::guest::{ram, tpm};

/// The device tree's block at the start of guest RAM (booting.rst: the tree must not share a
/// 2 MiB block with memory needing other attributes; a block of its own keeps that simple).
const DTB_BLOCK: u64 = 2 << 20;
/// Where the TPM's event log goes in that block: past any device tree Parapet writes (a few
/// KiB), its 64 KiB area within the block.
const EVENT_LOG_OFFSET: u64 = 1 << 20;
/// The longest command line taken (Linux arm64's COMMAND_LINE_SIZE).
const MAX_COMMAND_LINE: usize = 2048;

#[derive(Clone, Debug)]
pub enum LinuxError {
    StagingOutsideRam,
    NoRam,
    Bundle(BundleError),
    Image(ImageError),
    CommandLineTooLong(usize),
    CommandLineNotUtf8,
    NoRoomForKernel { size: u64 },
    InitrdOutOfReach,
    Tree(TreeError),
}

impl core::fmt::Display for LinuxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::StagingOutsideRam => write!(f, "the staged guest is not in the guest's RAM"),
            Self::NoRam => write!(f, "the guest has no RAM"),
            Self::Bundle(e) => write!(f, "guest bundle: {e}"),
            Self::Image(e) => write!(f, "the kernel is not a usable arm64 Image: {e:?}"),
            Self::CommandLineTooLong(n) => {
                write!(f, "a {n}-byte command line; at most {MAX_COMMAND_LINE}")
            }
            Self::CommandLineNotUtf8 => write!(f, "the command line is not UTF-8"),
            Self::NoRoomForKernel { size } => write!(
                f,
                "no free guest RAM holds the kernel's {} MiB at an address it accepts",
                size >> 20
            ),
            Self::InitrdOutOfReach => {
                write!(f, "the initrd is not in the kernel's 32 GiB window of RAM")
            }
            Self::Tree(e) => write!(f, "the guest's device tree: {e:?}"),
        }
    }
}

/// Whether the payload's first bytes, `head`, are a Linux guest bundle.
pub fn is_linux(head: &[u8]) -> bool {
    guest_bundle::is_bundle(head)
}

/// A loaded kernel: where CPU 0 enters, and the device tree it takes in x0.
pub struct Loaded {
    pub entry: u64,
    pub device_tree: u64,
}

/// Loads the bundle staged at `address` (`size` bytes) for `cpus` CPUs.
pub fn load(address: u64, size: u64, cpus: usize) -> Result<Loaded, LinuxError> {
    let staged = bundle::read(address, size, MAX_COMMAND_LINE)
        .map_err(|e| match e {
            StagedError::OutsideRam => LinuxError::StagingOutsideRam,
            StagedError::Bundle(e) => LinuxError::Bundle(e),
            StagedError::CommandLineTooLong(n) => LinuxError::CommandLineTooLong(n),
        })?
        .ok_or(LinuxError::Bundle(BundleError::BadMagic))?;
    let command_line =
        String::from_utf8(staged.command_line).map_err(|_| LinuxError::CommandLineNotUtf8)?;
    let initrd = staged.initrd;
    let (kernel_at, kernel_len) = (staged.kernel.0, staged.kernel.1 - staged.kernel.0);

    let ram_ranges = ram::ranges();
    let ram_base = ram_ranges.first().ok_or(LinuxError::NoRam)?.0;
    let device_tree = ram_base.next_multiple_of(DTB_BLOCK);
    let (header, load_address) = ram::inspect(kernel_at, kernel_len, |image| {
        let header = ImageHeader::parse(image).map_err(LinuxError::Image)?;
        // Clear of the bundle (its initrd stays there) and the device tree's block.
        let staged_range = (address, address.saturating_add(size));
        let free = ram::without(&[staged_range, (device_tree, device_tree + DTB_BLOCK)]);
        let load_address = header
            .place(&free, ram_base)
            .ok_or(LinuxError::NoRoomForKernel {
                size: header.image_size,
            })?;
        // The image's file, then zeros to its effective size (its BSS).
        ram::load(load_address, Some(image), image.len() as u64)
            .and_then(|()| {
                ram::load(
                    load_address + image.len() as u64,
                    None,
                    header.image_size - image.len() as u64,
                )
            })
            .map_err(|_| LinuxError::StagingOutsideRam)?;
        // Measured as copied, in this one look at the staged bytes.
        tpm::measure_kernel(image);
        Ok((header, load_address))
    })
    .map_err(|_| LinuxError::StagingOutsideRam)??;
    if let Some(initrd) = initrd {
        if !header.initrd_window_ok(load_address, initrd) {
            return Err(LinuxError::InitrdOutOfReach);
        }
    }

    tpm::measure_initrd_and_command_line(
        initrd.map(|(start, end)| (start, end - start)),
        command_line.as_bytes(),
    );

    // The event log goes in the device tree's block, 1 MiB in, clear of the tree.
    let event_log = device_tree + EVENT_LOG_OFFSET;
    let has_log = tpm::load_event_log(event_log).map_err(|_| LinuxError::StagingOutsideRam)?;

    let cpu_ids: Vec<u64> = (0..cpus.max(1) as u64).collect();
    let tree = arm64_boot::build_device_tree(&GuestTree {
        model: "Parapet guest",
        ram: ram_ranges,
        cpus: &cpu_ids,
        gic: GicV3 {
            distributor: devices::GICD_BASE,
            distributor_size: arm64_boot::GICD_SIZE,
            redistributors: devices::GICR_BASE,
            redistributor_stride: arm64_boot::GICR_STRIDE,
        },
        uart: Pl011 {
            base: devices::UART_BASE,
            size: devices::UART_SIZE,
            spi: devices::UART_SPI,
        },
        bootargs: &command_line,
        initrd,
        // The counter is no secret, but it differs from boot to boot, which is what KASLR
        // needs from a seed to move the kernel at all.
        kaslr_seed: Some(registers::counter().rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15),
        rng_seed: None,
        tpm: tpm::kind().map(|kind| {
            devices::tpm_description(kind, has_log.then_some((event_log, tpm::EVENT_LOG_AREA)))
        }),
    })
    .map_err(LinuxError::Tree)?;
    if has_log && tree.len() as u64 > EVENT_LOG_OFFSET {
        return Err(LinuxError::Tree(TreeError::TooLarge(tree.len())));
    }
    ram::load(device_tree, Some(&tree), tree.len() as u64)
        .map_err(|_| LinuxError::StagingOutsideRam)?;

    // The guest's first instructions run with caches off: all it reads must be in memory.
    registers::clean_dcache_range(load_address, header.image_size);
    registers::clean_dcache_range(device_tree, tree.len() as u64);
    if has_log {
        registers::clean_dcache_range(event_log, u64::from(tpm::EVENT_LOG_AREA));
    }
    if let Some((start, end)) = initrd {
        registers::clean_dcache_range(start, end - start);
    }
    registers::invalidate_icache_all();

    log::info!(
        "linux: arm64 Image at {load_address:#x} ({} KiB), device tree at {device_tree:#x} ({} bytes), initrd {}, {} CPUs, command line \"{command_line}\"",
        header.image_size / 1024,
        tree.len(),
        match initrd {
            Some((s, e)) => alloc::format!("{} bytes at {s:#x}", e - s),
            None => String::from("none"),
        },
        cpu_ids.len(),
    );
    for &(start, end) in ram_ranges {
        log::info!("linux: memory {start:#x}-{:#x}", end - 1);
    }
    Ok(Loaded {
        entry: load_address,
        device_tree,
    })
}

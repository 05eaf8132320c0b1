//! Booting Linux as the guest, through the x86 64-bit boot protocol (`abi::linux_boot`): the
//! kernel (a bzImage, or the uncompressed vmlinux inside one: `vmlinux`), its initrd and
//! command line come as a guest bundle (`abi::guest_bundle`), or as a bare bzImage (no
//! initrd, a console-only command line).
//!
//! Where things go, in guest RAM:
//! - the boot page tables and GDT, as for every guest (`loader`), below 0x8000;
//! - the zero page at [`ZERO_PAGE`], the command line at [`COMMAND_LINE`], the ACPI tables at
//!   [`ACPI_TABLES`] and, with a TPM, its event log at [`EVENT_LOG`] (the only ranges the
//!   e820 map marks as not RAM);
//! - the kernel at the lowest address its header allows above the bundle-free RAM
//!   (`SetupHeader::place`); Parapet's own region lies below 65 MiB, which is why a
//!   relocatable kernel is needed: its preferred 16 MiB is Parapet's;
//! - the initrd stays where the bundle brought it (page-aligned parts of a page-aligned
//!   module): Linux reserves it itself.
//!
//! The bundle lies in guest RAM, staged by the host, and nothing runs in the guest yet: it
//! is read in place, under `ram::inspect`'s contract, and every part is checked against the
//! staged size.

use alloc::string::String;
use alloc::vec::Vec;

use abi::acpi_tables::{self, AcpiConfig, PowerPorts, SerialPort};
use abi::guest_bundle::{self, BundleError};
use abi::linux_boot::{
    self, e820, BootParams, BootParamsError, E820Entry, E820Error, ImageError, SetupHeader,
};

use super::devices;
use super::vmlinux::{self, VmlinuxError};
use crate::guest::bundle::{self, StagedError};
use crate::guest::{ram, tpm};
use ::devices::tpm::crb;

/// The zero page (`struct boot_params`, 4 KiB) the kernel's RSI points at.
const ZERO_PAGE: u64 = 0x8000;
/// The command line, NUL-terminated, in one page.
const COMMAND_LINE: u64 = 0x9000;
const COMMAND_LINE_ROOM: usize = 4096;
/// The ACPI tables: RSDP first (16-byte aligned), up to the end of this window.
const ACPI_TABLES: u64 = 0xa000;
const ACPI_TABLES_END: u64 = 0x1_0000;
/// The TPM's event log, when the guest has a TPM: its area right after the tables, which
/// the e820 map marks reserved (the kernel copies the log out through the TPM2 table's LASA
/// and LAML, and must not have used the memory before).
const EVENT_LOG: u64 = ACPI_TABLES_END;
/// A bare bzImage's command line: its console on COM1.
const DEFAULT_COMMAND_LINE: &str = "console=ttyS0";

#[derive(Clone, Copy, Debug)]
pub enum LinuxError {
    StagingOutsideRam,
    Bundle(BundleError),
    Image(ImageError),
    Vmlinux(VmlinuxError),
    CommandLineTooLong(usize),
    /// No free RAM at or above the kernel's preferred address holds its `init_size`.
    NoRoomForKernel {
        footprint: u64,
    },
    Acpi(acpi_tables::AcpiBuildError),
    E820(E820Error),
    BootParams(BootParamsError),
}

impl core::fmt::Display for LinuxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::StagingOutsideRam => write!(f, "the staged kernel is not in the guest's RAM"),
            Self::Bundle(e) => write!(f, "guest bundle: {e}"),
            Self::Image(e) => write!(f, "the kernel is not a usable bzImage: {e:?}"),
            Self::Vmlinux(e) => write!(f, "the kernel is not a usable vmlinux: {e}"),
            Self::CommandLineTooLong(n) => {
                write!(
                    f,
                    "a {n}-byte command line; at most {}",
                    COMMAND_LINE_ROOM - 1
                )
            }
            Self::NoRoomForKernel { footprint } => write!(
                f,
                "no free guest RAM holds the kernel's {} MiB from an address it accepts",
                footprint >> 20
            ),
            Self::Acpi(e) => write!(f, "ACPI tables: {e}"),
            Self::E820(e) => write!(f, "e820 map: {e}"),
            Self::BootParams(e) => write!(f, "boot parameters: {e}"),
        }
    }
}

/// Whether the payload's first bytes, `head`, are a Linux guest (a bundle or a bzImage).
pub fn is_linux(head: &[u8]) -> bool {
    guest_bundle::is_bundle(head) || head.get(0x202..0x206) == Some(b"HdrS".as_slice())
}

/// A loaded kernel: where it enters and the zero page it takes in RSI.
pub struct Loaded {
    pub entry: u64,
    pub zero_page: u64,
}

/// Loads the Linux guest staged at `address` (`size` bytes) for `cpus` CPUs.
pub fn load(address: u64, size: u64, cpus: u32) -> Result<Loaded, LinuxError> {
    let staged = bundle::read(address, size, COMMAND_LINE_ROOM - 1).map_err(|e| match e {
        StagedError::OutsideRam => LinuxError::StagingOutsideRam,
        StagedError::Bundle(e) => LinuxError::Bundle(e),
        StagedError::CommandLineTooLong(n) => LinuxError::CommandLineTooLong(n),
    })?;
    let staged_range = (address, address.saturating_add(size));
    let (kernel, initrd, command_line) = match staged {
        Some(b) => (
            (b.kernel.0, b.kernel.1 - b.kernel.0),
            b.initrd.map(|(s, e)| (s, e - s)),
            b.command_line,
        ),
        None => (
            (address, size),
            None,
            DEFAULT_COMMAND_LINE.as_bytes().to_vec(),
        ),
    };

    // The kernel is read in place: parsed, then copied to where it runs, clear of the bundle
    // (its initrd stays there) and of the first megabyte (the boot structures).
    let free = ram::without(&[staged_range, (0, 1 << 20)]);
    let (header, kernel_address, entry, kind) = ram::inspect(kernel.0, kernel.1, |image| {
        // Measured in this one look at the staged bytes, the ones copied to run.
        tpm::measure_kernel(image);
        if vmlinux::is_vmlinux(image) {
            let (header, address, entry) =
                vmlinux::place(image, &free).map_err(LinuxError::Vmlinux)?;
            return Ok((header, address, entry, "vmlinux"));
        }
        let header = SetupHeader::parse(image).map_err(LinuxError::Image)?;
        let no_room = LinuxError::NoRoomForKernel {
            footprint: header.footprint(),
        };
        let address = header.place(&free).ok_or(no_room)?;
        ram::load(
            address,
            Some(header.kernel(image)),
            header.kernel_size as u64,
        )
        .map_err(|_| LinuxError::StagingOutsideRam)?;
        let entry = header.entry_64(address).ok_or(no_room)?;
        Ok((header, address, entry, "bzImage"))
    })
    .map_err(|_| LinuxError::StagingOutsideRam)??;

    tpm::measure_initrd_and_command_line(initrd, &command_line);
    let event_log = tpm::load_event_log(EVENT_LOG).map_err(|_| LinuxError::StagingOutsideRam)?;

    let ids: Vec<u32> = (0..cpus.max(1)).collect();
    let tables =
        acpi_tables::build(&acpi_config(&ids, event_log), ACPI_TABLES).map_err(LinuxError::Acpi)?;
    if ACPI_TABLES + tables.bytes.len() as u64 > ACPI_TABLES_END {
        return Err(LinuxError::Acpi(acpi_tables::AcpiBuildError::TooLarge));
    }
    let mut firmware = alloc::vec![E820Entry {
        start: ACPI_TABLES,
        size: ACPI_TABLES_END - ACPI_TABLES,
        kind: e820::ACPI,
    }];
    if event_log {
        firmware.push(E820Entry {
            start: EVENT_LOG,
            size: u64::from(tpm::EVENT_LOG_AREA),
            kind: e820::RESERVED,
        });
    }
    let map = linux_boot::guest_e820(ram::ranges(), &[], &firmware).map_err(LinuxError::E820)?;
    let zero_page = linux_boot::build_zero_page(
        &header,
        &BootParams {
            kernel_address,
            command_line_address: COMMAND_LINE,
            command_line: &command_line,
            ramdisk: initrd,
            e820: &map,
            acpi_rsdp: Some(tables.rsdp_address),
        },
    )
    .map_err(LinuxError::BootParams)?;

    let mut line = command_line.clone();
    line.push(0);
    let place = |gpa: u64, bytes: &[u8]| {
        ram::load(gpa, Some(bytes), bytes.len() as u64).map_err(|_| LinuxError::StagingOutsideRam)
    };
    place(COMMAND_LINE, &line)?;
    place(ACPI_TABLES, &tables.bytes)?;
    place(ZERO_PAGE, &zero_page)?;

    log::info!(
        "linux: {kind}, protocol {}.{:02}, at {kernel_address:#x} (needs {} MiB), enters at {entry:#x}, initrd {}, {cpus} CPUs, command line \"{}\"",
        header.version >> 8,
        header.version & 0xff,
        header.footprint() >> 20,
        match initrd {
            Some((at, len)) => alloc::format!("{len} bytes at {at:#x}"),
            None => String::from("none"),
        },
        String::from_utf8_lossy(&command_line),
    );
    // The map as given, for whoever checks what the guest sees against it.
    for entry in &map {
        log::info!(
            "linux: e820 {:#x}-{:#x} type {}",
            entry.start,
            entry.start + entry.size - 1,
            entry.kind
        );
    }
    Ok(Loaded {
        entry,
        zero_page: ZERO_PAGE,
    })
}

/// What the guest's ACPI tables describe: its CPUs (`ids`: APIC ID = index), the I/O APIC,
/// COM1, the power ports of `devices`, and the TPM, with its event log at [`EVENT_LOG`] if
/// `event_log`.
fn acpi_config(ids: &[u32], event_log: bool) -> AcpiConfig<'_> {
    AcpiConfig {
        x2apic_ids: ids,
        io_apic: acpi_tables::IoApic {
            id: devices::IOAPIC_ID,
            address: devices::IOAPIC_BASE as u32,
            gsi_base: 0,
        },
        serial_ports: &[SerialPort {
            io_base: devices::COM1_BASE,
            irq: devices::COM1_IRQ,
        }],
        power: Some(PowerPorts {
            sleep_control: devices::SLEEP_CONTROL_PORT,
            sleep_status: devices::SLEEP_STATUS_PORT,
            reset: Some(devices::RESET_PORT),
        }),
        tpm: tpm::present().then_some(acpi_tables::TpmCrb {
            base: crb::BASE,
            size: crb::WINDOW as u32,
            event_log: event_log.then_some((EVENT_LOG, tpm::EVENT_LOG_AREA)),
        }),
    }
}

//! The ACPI tables Parapet hands an x86 guest (ACPI 6.5): enough for a stock Linux kernel to
//! find its CPUs, their local APICs (x2APIC), the I/O APIC and the legacy serial ports, and
//! to power off.
//!
//! One contiguous blob, built for the guest-physical address it will be copied to:
//!
//! ```text
//! base + 0     RSDP  (§5.2.5.3, revision 2: RsdtAddress 0, XsdtAddress set, both checksums)
//!              XSDT  (§5.2.8): the FADT, then the MADT, then the TPM2 table if any
//!              FADT  (§5.2.9, revision 6.5, 276 bytes): HW_REDUCED_ACPI, X_DSDT
//!              MADT  (§5.2.12, revision 6): x2APIC per CPU, one I/O APIC, IRQ0 -> GSI 2
//!              TPM2  (TCG ACPI Specification 1.3 §8.3, revision 4, 76 bytes): only with a
//!                    TPM ([`AcpiConfig::tpm`]): the CRB control area, start method 7
//!              DSDT  (§5.2.11.1): a definition block with the serial ports, the TPM's
//!                    `MSFT0101` device and \_S5
//! ```
//!
//! Without a TPM the blob is exactly what it was before TPMs were described: no TPM2 table,
//! no XSDT entry for it, no device in the DSDT.
//!
//! Each table starts 16-byte aligned: the RSDP must be (§5.2.5.1); §5.2 asks no alignment of
//! the others (only the FACS's 64 bytes, and there is no FACS), so 16 for all is a choice that
//! keeps every table's 64-bit fields aligned alike. There is no RSDT: a revision-2 RSDP with
//! an XSDT is all an ACPI 2.0+ OS reads (Linux takes the XSDT whenever the RSDP's revision is
//! above 1 and its address is not zero), and no FACS: a hardware-reduced platform has none
//! (§5.2.9, FIRMWARE_CTRL).
//!
//! # Why hardware-reduced
//!
//! With `HW_REDUCED_ACPI` (FADT flag 20, §4.1 and §5.2.9) the platform has no PM1/GPE register
//! blocks, no SCI, no SMI command port and no FACS, and Linux's ACPICA skips every one of them
//! (`acpi_tb_convert_fadt` stops before checking the PM1a blocks it otherwise calls
//! "required"; `acpi_enable`, the SCI and global-lock handlers and the fixed events are not
//! set up). Linux on x86 then also treats the machine as having no 8259 PIC and no PIT
//! interrupt (`acpi_generic_reduced_hw_init`: `legacy_pic = &null_legacy_pic`, `timer_init` a
//! no-op, so no `check_timer()` of IRQ0 through the I/O APIC either). What that asks of the
//! paravisor instead:
//! - The local APIC timer is the only clock event. Linux still calibrates the TSC against PIT
//!   channel 2 by polling ports 0x42/0x43/0x61 when nothing else gives the frequency (Debian's
//!   6.1 kernel said "tsc: Fast TSC calibration using PIT" with these tables under QEMU), so
//!   either that much of the PIT is emulated or the command line carries `tsc_early_khz=`.
//!   With no HPET and no PM timer, the clocksource is the TSC, or jiffies if the TSC is
//!   found unstable (as under TCG).
//! - There are no legacy IRQ descriptors, so a legacy UART gets its interrupt only if the
//!   DSDT describes it (`PNP0501` with `IRQNoFlags`, [`AcpiConfig::serial_ports`]): then Linux
//!   maps GSI 4 itself ("ttyS0 at I/O 0x3f8 (irq = 25)", "IO-APIC 4-edge ttyS0"). Without it,
//!   Linux registers ttyS0 at IRQ 4, opening the port fails, and user space's console output
//!   is silently lost while the kernel's (polled) messages still appear; both seen with the
//!   same kernel.
//! - Power-off needs `\_S5` and the sleep registers ([`AcpiConfig::power`]); with them the
//!   kernel wrote 0x34 to the sleep control port on `reboot(RB_POWER_OFF)`.
//!
//! The alternative, a PC-compatible FADT, would need emulated PM1a event/control ports, an
//! SCI routed through the I/O APIC, a FACS, an 8259 pair, and a PIT whose IRQ0 reaches I/O
//! APIC pin 2 or Linux's `check_timer()` panics.
//!
//! Everything is built with checked arithmetic from the caller's values; no input makes the
//! builder panic.

use alloc::vec::Vec;

/// Where the local APIC's registers are in xAPIC mode: IA32_APIC_BASE's power-up value (Intel
/// SDM Vol. 3A §11.4.4, "Local APIC Status and Location"). The MADT must name it (§5.2.12,
/// "Local Interrupt Controller Address") even for x2APIC CPUs: Linux runs the local APIC in
/// xAPIC mode, through this page, unless firmware left x2APIC on, or it has interrupt
/// remapping, or it recognises a hypervisor that allows x2APIC without it
/// (`try_to_enable_x2apic`: "x2apic: IRQ remapping doesn't support X2APIC mode").
pub const LOCAL_APIC_ADDRESS: u32 = 0xfee0_0000;

/// §5.2.6: every system description table starts with this 36-byte header.
const HEADER_LEN: usize = 36;
/// §5.2.5.3: the revision-2 RSDP is 36 bytes.
const RSDP_LEN: usize = 36;
/// §5.2.9: the FADT of ACPI 6.0 and later, up to Hypervisor Vendor Identity.
const FADT_LEN: usize = 276;
/// §5.2.5.1: the RSDP sits on a 16-byte boundary; every table here does.
const TABLE_ALIGN: u64 = 16;

/// Revisions (§5.2.5.3 RSDP; §5.2.8 XSDT; §5.2.9 FADT major 6, "FADT Minor Version" 5;
/// §5.2.12 MADT; §5.2.11.1 DSDT, where 2 or more means 64-bit AML integers).
const RSDP_REVISION: u8 = 2;
const XSDT_REVISION: u8 = 1;
const FADT_REVISION: u8 = 6;
const FADT_MINOR_REVISION: u8 = 5;
const MADT_REVISION: u8 = 6;
const DSDT_REVISION: u8 = 2;

/// The TPM2 table (TCG ACPI Specification, Family 1.2 and 2.0, Version 1.3, §8.3 "TPM2 ACPI
/// Table"): the §5.2.6 header, then
///
/// ```text
/// 36  Platform Class                      u16  0: client
/// 38  Reserved                            u16  0
/// 40  Address of CRB Control Area         u64  base + 0x40
/// 48  Start Method                        u32  7: Command Response Buffer interface
/// 52  Start Method Specific Parameters    12 bytes, 0 for start method 7
/// 64  Log Area Minimum Length (LAML)      u32  the event log's area, or 0: none
/// 68  Log Area Start Address (LASA)       u64  its address, or 0
/// 76  end
/// ```
///
/// ACPICA's `struct acpi_table_tpm2` (packed) is the header through Start Method, 52 bytes;
/// Linux's `struct acpi_tpm2_phy` is the 24 bytes after it. tpm_crb wants at least the 52
/// bytes; the event-log reader (`tpm_read_log_acpi`) reads LAML and LASA only from a table of
/// at least 76 bytes, and with either 0 looks for no log there.
mod tpm2 {
    pub const REVISION: u8 = 4;
    /// Field offsets from the start of the table.
    pub const PLATFORM_CLASS: usize = 36;
    pub const CONTROL_AREA: usize = 40;
    pub const START_METHOD: usize = 48;
    pub const LAML: usize = 64;
    pub const LASA: usize = 68;
    /// The table's whole length, header included.
    pub const LEN: usize = 76;
    /// Platform Class 0: a client platform (1 is a server).
    pub const CLIENT: u16 = 0;
    /// Start Method 7: "Uses the Command Response Buffer Interface".
    pub const START_METHOD_CRB: u32 = 7;
    /// TPM_CRB_CTRL_REQ_0, the first register of locality 0's control area (TCG PC Client
    /// Platform TPM Profile (PTP) Specification, CRB interface register layout): after the
    /// 0x40 bytes of locality registers (TPM_LOC_STATE, TPM_LOC_CTRL, TPM_LOC_STS, reserved,
    /// TPM_CRB_INTF_ID, TPM_CRB_CTRL_EXT). Linux's tpm_crb checks that the control area is
    /// this far into the `_CRS` window (`sizeof(struct crb_regs_head)`), or it warns
    /// "Bad ACPI memory layout".
    pub const CONTROL_AREA_OFFSET: u64 = 0x40;
    /// The control area ends where the data buffer starts (TPM_CRB_DATA_BUFFER_0 at 0x80):
    /// the smallest window that holds the registers the TPM2 table points at.
    pub const MIN_WINDOW: u32 = 0x80;
}

/// Header identification (§5.2.6): OEM ID (6), OEM table ID (8), OEM revision, creator ID (4),
/// creator revision.
const OEM_ID: &[u8; 6] = b"PRPT  ";
const OEM_TABLE_ID: &[u8; 8] = b"PARAPET ";
const OEM_REVISION: u32 = 1;
const CREATOR_ID: &[u8; 4] = b"PRPT";
const CREATOR_REVISION: u32 = 1;

/// FADT field offsets (§5.2.9).
mod fadt {
    pub const DSDT: usize = 40;
    pub const SCI_INT: usize = 46;
    pub const P_LVL2_LAT: usize = 96;
    pub const P_LVL3_LAT: usize = 98;
    pub const IAPC_BOOT_ARCH: usize = 109;
    pub const FLAGS: usize = 112;
    pub const RESET_REG: usize = 116;
    pub const RESET_VALUE: usize = 128;
    pub const MINOR_VERSION: usize = 131;
    pub const X_DSDT: usize = 140;
    pub const SLEEP_CONTROL_REG: usize = 244;
    pub const SLEEP_STATUS_REG: usize = 256;

    /// Fixed feature flags (§5.2.9, "FADT Flags").
    pub const WBINVD: u32 = 1 << 0;
    /// Set: the power and sleep buttons, if any, are control-method devices, not fixed
    /// features (a hardware-reduced platform has no fixed-feature registers).
    pub const PWR_BUTTON: u32 = 1 << 4;
    pub const SLP_BUTTON: u32 = 1 << 5;
    pub const RESET_REG_SUP: u32 = 1 << 10;
    pub const HW_REDUCED_ACPI: u32 = 1 << 20;

    /// IA-PC boot architecture flags (§5.2.9.3).
    pub const LEGACY_DEVICES: u16 = 1 << 0;
    pub const VGA_NOT_PRESENT: u16 = 1 << 2;
    pub const CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

    /// P_LVL2_LAT above 100 and P_LVL3_LAT above 1000 say C2 and C3 are not supported.
    pub const NO_C2: u16 = 101;
    pub const NO_C3: u16 = 1001;

    /// The SCI interrupt. Unused on a hardware-reduced platform, but Linux compares every
    /// Interrupt Source Override's source with it (`acpi_parse_int_src_ovr`): left at 0, the
    /// IRQ0 -> GSI 2 override would be taken for the SCI's and given the SCI's default
    /// polarity, active low. 9 is the PC's SCI, and no override here names it.
    pub const SCI_IRQ: u16 = 9;
}

/// MADT structure types and flags (§5.2.12.x).
mod madt {
    /// Local Interrupt Controller Address and Flags follow the header.
    pub const FIXED_LEN: usize = 8;
    pub const IO_APIC: u8 = 1;
    pub const IO_APIC_LEN: u8 = 12;
    pub const INTERRUPT_SOURCE_OVERRIDE: u8 = 2;
    pub const INTERRUPT_SOURCE_OVERRIDE_LEN: u8 = 10;
    pub const LOCAL_X2APIC: u8 = 9;
    pub const LOCAL_X2APIC_LEN: u8 = 16;
    /// Local APIC flags (§5.2.12.2), shared by the x2APIC structure: Enabled.
    /// Online Capable (bit 1) must be clear when Enabled is set.
    pub const ENABLED: u32 = 1 << 0;
    /// MADT flags bit 0, PCAT_COMPAT: dual 8259s present. Clear: there are none.
    pub const FLAGS: u32 = 0;
    /// "The value 0xFFFFFFFF is reserved" for an x2APIC ID; Linux skips such entries.
    pub const INVALID_X2APIC_ID: u32 = u32::MAX;
}

/// The ISA bus (§5.2.12.5: Bus is 0, "ISA"), the system timer's ISA IRQ 0 and the I/O APIC
/// input it is wired to on every PC with an I/O APIC: pin 2, since pin 0 carries the 8259's
/// INTR (MultiProcessor Specification 1.4, §5.3 "Default Configurations"). ISA IRQs other than
/// 0 are identity-mapped to GSIs 0-15 without an override (§5.2.12.5), so this is the one
/// override a PC describes (besides the SCI's, which a hardware-reduced platform does not
/// have).
const ISA_BUS: u8 = 0;
const ISA_TIMER_IRQ: u8 = 0;
const ISA_TIMER_GSI: u32 = 2;
/// MPS INTI flags (§5.2.12.5): polarity and trigger "conform to the
/// specifications of the bus", for ISA active high, edge-triggered.
const MPS_INTI_CONFORMS: u16 = 0;
/// ISA IRQs an `IRQNoFlags` descriptor can name (§6.4.2.1: a 16-bit mask).
const ISA_IRQS: u8 = 16;

/// Generic Address Structure (§5.2.3.2): 12 bytes.
const GAS_SYSTEM_IO: u8 = 1;
const GAS_ACCESS_BYTE: u8 = 1;

/// Hardware-reduced sleep registers (§4.8.3.7): an 8-bit control register
/// with SLP_TYPx in bits 2-4 and SLP_EN in bit 5, and an 8-bit status register with WAK_STS in
/// bit 7.
pub const SLEEP_CONTROL_SLP_EN: u8 = 1 << 5;
pub const SLEEP_CONTROL_SLP_TYP_SHIFT: u8 = 2;
pub const SLEEP_CONTROL_SLP_TYP_MASK: u8 = 0b111 << 2;
pub const SLEEP_STATUS_WAK_STS: u8 = 1 << 7;
/// The SLP_TYP value the DSDT's `\_S5` package hands the OS for soft-off. Any 3-bit value
/// would do; 5 is what QEMU's hardware-reduced machines use. So a guest powers off by writing
/// `(S5_SLEEP_TYPE << 2) | SLP_EN` = 0x34 to the sleep control register.
pub const S5_SLEEP_TYPE: u8 = 5;
/// The value written to the reset register (§4.8.3.6) when a reset register is given.
pub const RESET_VALUE: u8 = 1;

/// The guest's I/O APIC (§5.2.12.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Its I/O APIC ID.
    pub id: u8,
    /// Physical address of its registers (0xFEC0_0000 on a PC).
    pub address: u32,
    /// The first global system interrupt its inputs carry. The ISA IRQs (the timer override
    /// and the serial ports) are only described when this is 0: otherwise no I/O APIC here
    /// serves GSIs 0-15.
    pub gsi_base: u32,
}

/// A 16550-compatible UART on the ISA bus, described in the DSDT as a `PNP0501` device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerialPort {
    /// First of its 8 I/O ports (0x3F8 for COM1).
    pub io_base: u16,
    /// Its ISA IRQ, which is also its GSI (4 for COM1).
    pub irq: u8,
}

/// I/O ports through which the guest powers off and resets, for the hardware-reduced sleep
/// and reset registers (§4.8.3.6, §4.8.3.7). Each is one byte wide, written with `out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerPorts {
    /// Written with `(S5_SLEEP_TYPE << 2) | SLP_EN` to power off.
    pub sleep_control: u16,
    /// Read by the OS while it waits for WAK_STS; writes of WAK_STS clear it.
    pub sleep_status: u16,
    /// Written with [`RESET_VALUE`] to reset the machine (Linux's default reboot method
    /// tries it first); `None` leaves the FADT without a reset register.
    pub reset: Option<u16>,
}

/// A TPM 2.0 with the Command Response Buffer interface (TCG PC Client Platform TPM Profile
/// (PTP) Specification), described by a TPM2 table and a `MSFT0101` device in the DSDT, the
/// two things Linux's tpm_crb driver binds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TpmCrb {
    /// The CRB register window: locality 0's registers first (0xFED4_0000 on a PC). It goes
    /// in a `Memory32Fixed` descriptor, so it and its end must be below 4 GiB.
    pub base: u64,
    /// The window's length: 0x5000 on a PC, 5 localities of 4 KiB. At least 0x80, the
    /// locality registers and the control area.
    pub size: u32,
    /// The boot's event log (TCG PC Client PFP's crypto-agile format), as (address, area
    /// length): the TPM2 table's LASA and LAML. The area must be memory the OS keeps (an
    /// e820 reserved range); the log in it ends with zeros.
    pub event_log: Option<(u64, u32)>,
}

/// What the guest's tables describe.
#[derive(Clone, Copy, Debug)]
pub struct AcpiConfig<'a> {
    /// The x2APIC IDs of the guest's CPUs, the boot CPU first; CPU n gets ACPI processor UID
    /// n. IDs below 255 are fine in x2APIC structures (Linux takes them when the MADT has no
    /// xAPIC structures, which this one never has). Keep them below 255 unless the guest will
    /// run its APIC in x2APIC mode: in xAPIC mode Linux ignores CPUs it cannot address
    /// ("x2apic entry ignored").
    pub x2apic_ids: &'a [u32],
    pub io_apic: IoApic,
    /// Legacy UARTs to describe in the DSDT (at most 4: `COM1`..`COM4`). On a hardware-reduced
    /// platform Linux has no legacy IRQs: an undescribed UART is registered at its ISA IRQ,
    /// which has no descriptor, and opening it fails.
    pub serial_ports: &'a [SerialPort],
    /// Sleep and reset registers; `None` gives the guest no ACPI way to power off or reset.
    pub power: Option<PowerPorts>,
    /// A CRB TPM to describe (a TPM2 table and `\_SB.TPM0`); `None` describes no TPM.
    pub tpm: Option<TpmCrb>,
}

/// The built tables: copy `bytes` to guest-physical `base` (the address given to [`build`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiTables {
    pub bytes: Vec<u8>,
    /// Where the RSDP is: `base` itself. For Linux's boot_params.acpi_rsdp_addr.
    pub rsdp_address: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiBuildError {
    NoCpus,
    /// 0xFFFF_FFFF is not an x2APIC ID (§5.2.12.12).
    InvalidApicId(u32),
    DuplicateApicId(u32),
    /// The base is not 16-byte aligned (§5.2.5.1).
    MisalignedBase(u64),
    /// The blob would run past the end of the physical address space, or a table past 4 GiB
    /// of length.
    TooLarge,
    TooManySerialPorts(usize),
    /// A serial port's IRQ is not an ISA IRQ a UART may use (1, 3-15).
    BadSerialIrq(u8),
    /// Two serial ports share an I/O base.
    DuplicateSerialPort(u16),
    /// Serial ports need their ISA IRQs on this I/O APIC, so its GSI base must be 0.
    SerialPortsNeedGsiBase0,
    /// The TPM's register window does not fit a `Memory32Fixed` descriptor (its base or its
    /// end above 4 GiB) or is too small to hold the control area (under 0x80 bytes).
    BadTpmWindow(TpmCrb),
}

impl core::fmt::Display for AcpiBuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoCpus => write!(f, "ACPI tables need at least one CPU"),
            Self::InvalidApicId(id) => write!(f, "x2APIC ID {id:#x} is reserved"),
            Self::DuplicateApicId(id) => write!(f, "x2APIC ID {id:#x} is listed twice"),
            Self::MisalignedBase(base) => {
                write!(
                    f,
                    "ACPI tables at {base:#x}: the RSDP needs 16-byte alignment"
                )
            }
            Self::TooLarge => write!(f, "ACPI tables too large for their place"),
            Self::TooManySerialPorts(n) => write!(f, "{n} serial ports: at most 4"),
            Self::BadSerialIrq(irq) => write!(f, "IRQ {irq} is not one a legacy UART can use"),
            Self::DuplicateSerialPort(base) => write!(f, "two serial ports at {base:#x}"),
            Self::SerialPortsNeedGsiBase0 => {
                write!(f, "serial ports need the I/O APIC to start at GSI 0")
            }
            Self::BadTpmWindow(tpm) => write!(
                f,
                "TPM window {:#x}+{:#x}: needs 0x80 or more bytes below 4 GiB",
                tpm.base, tpm.size
            ),
        }
    }
}

/// Builds the tables for guest-physical address `base` (16-byte aligned).
pub fn build(config: &AcpiConfig, base: u64) -> Result<AcpiTables, AcpiBuildError> {
    if !base.is_multiple_of(TABLE_ALIGN) {
        return Err(AcpiBuildError::MisalignedBase(base));
    }
    let madt = sdt(b"APIC", MADT_REVISION, &madt_body(config)?)?;
    let tpm2 = match config.tpm {
        Some(tpm) => sdt(b"TPM2", tpm2::REVISION, &tpm2_body(tpm)?)?,
        None => Vec::new(),
    };
    let dsdt = sdt(b"DSDT", DSDT_REVISION, &dsdt_body(config)?)?;

    // Layout: offsets from base, each table 16-byte aligned. Without a TPM the TPM2 table is
    // empty and takes no room: the DSDT lands where it always did.
    let entries = if tpm2.is_empty() { 2 } else { 3 };
    let xsdt_len = HEADER_LEN + entries * 8;
    let xsdt_at = align(RSDP_LEN)?;
    let fadt_at = align(xsdt_at + xsdt_len)?;
    let madt_at = align(fadt_at + FADT_LEN)?;
    let tpm2_at = align(end(madt_at, &madt)?)?;
    let dsdt_at = align(end(tpm2_at, &tpm2)?)?;
    let total = end(dsdt_at, &dsdt)?;
    let address = |offset: usize| -> Result<u64, AcpiBuildError> {
        base.checked_add(offset as u64)
            .ok_or(AcpiBuildError::TooLarge)
    };
    // The end of the blob must be an address too.
    address(total)?;

    let fadt = sdt(
        b"FACP",
        FADT_REVISION,
        &fadt_body(config, address(dsdt_at)?),
    )?;
    let mut xsdt_body = Vec::with_capacity(entries * 8);
    xsdt_body.extend_from_slice(&address(fadt_at)?.to_le_bytes());
    xsdt_body.extend_from_slice(&address(madt_at)?.to_le_bytes());
    if !tpm2.is_empty() {
        xsdt_body.extend_from_slice(&address(tpm2_at)?.to_le_bytes());
    }
    let xsdt = sdt(b"XSDT", XSDT_REVISION, &xsdt_body)?;

    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(&rsdp(address(xsdt_at)?));
    for (at, table) in [
        (xsdt_at, &xsdt),
        (fadt_at, &fadt),
        (madt_at, &madt),
        (tpm2_at, &tpm2),
        (dsdt_at, &dsdt),
    ] {
        bytes.resize(at, 0);
        bytes.extend_from_slice(table);
    }
    Ok(AcpiTables {
        bytes,
        rsdp_address: base,
    })
}

/// Where a table placed at `at` ends.
fn end(at: usize, table: &[u8]) -> Result<usize, AcpiBuildError> {
    at.checked_add(table.len()).ok_or(AcpiBuildError::TooLarge)
}

fn align(offset: usize) -> Result<usize, AcpiBuildError> {
    let mask = TABLE_ALIGN as usize - 1;
    offset
        .checked_add(mask)
        .map(|o| o & !mask)
        .ok_or(AcpiBuildError::TooLarge)
}

/// The byte that makes `bytes` sum to zero (mod 256) when stored in a zeroed checksum field.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b)))
}

/// §5.2.5.3: the revision-2 RSDP.
fn rsdp(xsdt: u64) -> [u8; RSDP_LEN] {
    let mut r = [0u8; RSDP_LEN];
    r[0..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(OEM_ID);
    r[15] = RSDP_REVISION;
    // 16..20 RsdtAddress: 0, there is no RSDT.
    r[20..24].copy_from_slice(&(RSDP_LEN as u32).to_le_bytes());
    r[24..32].copy_from_slice(&xsdt.to_le_bytes());
    // Checksum over the ACPI 1.0 part (bytes 0-19), then the extended checksum over all 36.
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

/// A system description table: the §5.2.6 header (length and checksum filled) then `body`.
fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Result<Vec<u8>, AcpiBuildError> {
    let len = HEADER_LEN
        .checked_add(body.len())
        .ok_or(AcpiBuildError::TooLarge)?;
    let len32 = u32::try_from(len).map_err(|_| AcpiBuildError::TooLarge)?;
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(signature);
    t.extend_from_slice(&len32.to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&OEM_REVISION.to_le_bytes());
    t.extend_from_slice(CREATOR_ID);
    t.extend_from_slice(&CREATOR_REVISION.to_le_bytes());
    t.extend_from_slice(body);
    let sum = checksum(&t);
    if let Some(c) = t.get_mut(9) {
        *c = sum;
    }
    Ok(t)
}

/// A Generic Address Structure for a one-byte I/O port (§5.2.3.2).
fn gas_io_byte(port: u16) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = GAS_SYSTEM_IO;
    g[1] = 8; // register bit width
    g[2] = 0; // bit offset
    g[3] = GAS_ACCESS_BYTE;
    g[4..12].copy_from_slice(&u64::from(port).to_le_bytes());
    g
}

/// The FADT after its header (§5.2.9), as a hardware-reduced platform fills it.
fn fadt_body(config: &AcpiConfig, dsdt: u64) -> Vec<u8> {
    let mut f = [0u8; FADT_LEN];
    let mut put = |at: usize, value: &[u8]| {
        f[at..at + value.len()].copy_from_slice(value);
    };
    // FIRMWARE_CTRL / X_FIRMWARE_CTRL stay 0: no FACS.
    // DSDT (32-bit) only when it fits; X_DSDT always, and it wins (§5.2.9: when X_DSDT is
    // non-zero the DSDT field is ignored; ACPICA warns only if the two differ).
    if let Ok(dsdt32) = u32::try_from(dsdt) {
        put(fadt::DSDT, &dsdt32.to_le_bytes());
    }
    put(fadt::X_DSDT, &dsdt.to_le_bytes());
    put(fadt::SCI_INT, &fadt::SCI_IRQ.to_le_bytes());
    // SMI_CMD, ACPI_ENABLE/DISABLE, every PM1/PM2/PM timer/GPE block and its length: 0, none
    // exists on a hardware-reduced platform.
    put(fadt::P_LVL2_LAT, &fadt::NO_C2.to_le_bytes());
    put(fadt::P_LVL3_LAT, &fadt::NO_C3.to_le_bytes());
    let mut boot_arch = fadt::VGA_NOT_PRESENT | fadt::CMOS_RTC_NOT_PRESENT;
    if !config.serial_ports.is_empty() {
        // A serial port is a user-visible LPC/ISA device (§5.2.9.3).
        boot_arch |= fadt::LEGACY_DEVICES;
    }
    // 8042 (bit 1) clear: no keyboard controller, and Linux then does not probe 0x60/0x64.
    put(fadt::IAPC_BOOT_ARCH, &boot_arch.to_le_bytes());
    let mut flags = fadt::WBINVD | fadt::PWR_BUTTON | fadt::SLP_BUTTON | fadt::HW_REDUCED_ACPI;
    if let Some(power) = config.power {
        put(fadt::SLEEP_CONTROL_REG, &gas_io_byte(power.sleep_control));
        put(fadt::SLEEP_STATUS_REG, &gas_io_byte(power.sleep_status));
        if let Some(reset) = power.reset {
            flags |= fadt::RESET_REG_SUP;
            put(fadt::RESET_REG, &gas_io_byte(reset));
            put(fadt::RESET_VALUE, &[RESET_VALUE]);
        }
    }
    put(fadt::FLAGS, &flags.to_le_bytes());
    put(fadt::MINOR_VERSION, &[FADT_MINOR_REVISION]);
    // Hypervisor Vendor Identity (268..276) stays 0.
    f[HEADER_LEN..].to_vec()
}

/// The TPM's window as `Memory32Fixed` takes it (ACPI 6.5 §6.4.3.4: a 32-bit base and
/// length), or [`AcpiBuildError::BadTpmWindow`] if it does not fit below 4 GiB or cannot hold
/// the control area the TPM2 table points at.
fn tpm_window(tpm: TpmCrb) -> Result<(u32, u32), AcpiBuildError> {
    let bad = AcpiBuildError::BadTpmWindow(tpm);
    let base = u32::try_from(tpm.base).map_err(|_| bad)?;
    // The window may end at 4 GiB exactly, not past it.
    if u64::from(base) + u64::from(tpm.size) > 1 << 32 || tpm.size < tpm2::MIN_WINDOW {
        return Err(bad);
    }
    Ok((base, tpm.size))
}

/// The TPM2 table after its header (TCG ACPI Specification 1.3 §8.3; layout at [`tpm2`]).
fn tpm2_body(tpm: TpmCrb) -> Result<Vec<u8>, AcpiBuildError> {
    let (base, _) = tpm_window(tpm)?;
    let control_area = u64::from(base) + tpm2::CONTROL_AREA_OFFSET;
    let mut t = [0u8; tpm2::LEN];
    let mut put = |at: usize, value: &[u8]| {
        t[at..at + value.len()].copy_from_slice(value);
    };
    put(tpm2::PLATFORM_CLASS, &tpm2::CLIENT.to_le_bytes());
    // Reserved (38) and the start method parameters (52..64) stay 0, and so do LAML and
    // LASA without a log.
    put(tpm2::CONTROL_AREA, &control_area.to_le_bytes());
    put(tpm2::START_METHOD, &tpm2::START_METHOD_CRB.to_le_bytes());
    if let Some((address, length)) = tpm.event_log {
        put(tpm2::LAML, &length.to_le_bytes());
        put(tpm2::LASA, &address.to_le_bytes());
    }
    Ok(t[HEADER_LEN..].to_vec())
}

/// The MADT after its header (§5.2.12): local APIC address, flags, then one Processor Local
/// x2APIC structure per CPU (§5.2.12.12), the I/O APIC (§5.2.12.3) and the ISA timer's
/// Interrupt Source Override (§5.2.12.5).
fn madt_body(config: &AcpiConfig) -> Result<Vec<u8>, AcpiBuildError> {
    let ids = config.x2apic_ids;
    if ids.is_empty() {
        return Err(AcpiBuildError::NoCpus);
    }
    let capacity = ids
        .len()
        .checked_mul(usize::from(madt::LOCAL_X2APIC_LEN))
        .and_then(|n| n.checked_add(madt::FIXED_LEN + 32))
        .ok_or(AcpiBuildError::TooLarge)?;
    let mut m = Vec::with_capacity(capacity);
    m.extend_from_slice(&LOCAL_APIC_ADDRESS.to_le_bytes());
    m.extend_from_slice(&madt::FLAGS.to_le_bytes());
    let mut sorted: Vec<u32> = ids.to_vec();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(AcpiBuildError::DuplicateApicId(pair[0]));
    }
    for (uid, &id) in ids.iter().enumerate() {
        if id == madt::INVALID_X2APIC_ID {
            return Err(AcpiBuildError::InvalidApicId(id));
        }
        let uid = u32::try_from(uid).map_err(|_| AcpiBuildError::TooLarge)?;
        m.extend_from_slice(&[madt::LOCAL_X2APIC, madt::LOCAL_X2APIC_LEN, 0, 0]);
        m.extend_from_slice(&id.to_le_bytes());
        m.extend_from_slice(&madt::ENABLED.to_le_bytes());
        m.extend_from_slice(&uid.to_le_bytes());
    }
    let io = config.io_apic;
    m.extend_from_slice(&[madt::IO_APIC, madt::IO_APIC_LEN, io.id, 0]);
    m.extend_from_slice(&io.address.to_le_bytes());
    m.extend_from_slice(&io.gsi_base.to_le_bytes());
    if io.gsi_base == 0 {
        m.extend_from_slice(&[
            madt::INTERRUPT_SOURCE_OVERRIDE,
            madt::INTERRUPT_SOURCE_OVERRIDE_LEN,
            ISA_BUS,
            ISA_TIMER_IRQ,
        ]);
        m.extend_from_slice(&ISA_TIMER_GSI.to_le_bytes());
        m.extend_from_slice(&MPS_INTI_CONFORMS.to_le_bytes());
    }
    Ok(m)
}

/// The DSDT's AML (§20): one `Device (\_SB.COMn)` per serial port, `Device (\_SB.TPM0)` with
/// a TPM and, with power ports, `Name (\_S5, Package () { 5, 5 })`. With neither it is empty: a DSDT with a valid header
/// and no AML is still one ACPICA loads, and Linux needs a DSDT to load its namespace at all
/// (`acpi_tb_load_namespace`: without one, "Unable to load the System Description Tables"
/// and ACPI is turned off after boot).
fn dsdt_body(config: &AcpiConfig) -> Result<Vec<u8>, AcpiBuildError> {
    let ports = config.serial_ports;
    if ports.len() > 4 {
        return Err(AcpiBuildError::TooManySerialPorts(ports.len()));
    }
    if !ports.is_empty() && config.io_apic.gsi_base != 0 {
        return Err(AcpiBuildError::SerialPortsNeedGsiBase0);
    }
    let mut aml = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        // IRQ 0 is the timer and 2 the cascade (and, through the override, the timer's GSI).
        if port.irq == 0 || port.irq == 2 || port.irq >= ISA_IRQS {
            return Err(AcpiBuildError::BadSerialIrq(port.irq));
        }
        if ports[..i].iter().any(|p| p.io_base == port.io_base) {
            return Err(AcpiBuildError::DuplicateSerialPort(port.io_base));
        }
        // i < 4, so the name is COM1..COM4 and the UID 0..3.
        let digit = b'1' + i as u8;
        aml.extend_from_slice(&aml::serial_device(
            [b'C', b'O', b'M', digit],
            i as u8,
            *port,
        ));
    }
    if let Some(tpm) = config.tpm {
        let (base, size) = tpm_window(tpm)?;
        aml.extend_from_slice(&aml::tpm_device(base, size));
    }
    if config.power.is_some() {
        aml.extend_from_slice(&aml::s5_package(S5_SLEEP_TYPE));
    }
    Ok(aml)
}

/// Just enough AML (ACPI 6.5 §20.2) and resource descriptors (§6.4) for the DSDT.
mod aml {
    use alloc::vec::Vec;

    use super::SerialPort;

    const NAME_OP: u8 = 0x08;
    const BYTE_PREFIX: u8 = 0x0a;
    const WORD_PREFIX: u8 = 0x0b;
    const DWORD_PREFIX: u8 = 0x0c;
    const STRING_PREFIX: u8 = 0x0d;
    const BUFFER_OP: u8 = 0x11;
    const PACKAGE_OP: u8 = 0x12;
    const EXT_OP_PREFIX: u8 = 0x5b;
    const DEVICE_OP: u8 = 0x82;
    const ROOT_CHAR: u8 = b'\\';
    const DUAL_NAME_PREFIX: u8 = 0x2e;
    const ZERO_OP: u8 = 0x00;
    const ONE_OP: u8 = 0x01;

    /// Small resource items (§6.4.2): tag byte = item name << 3 | length.
    /// I/O port descriptor (§6.4.2.5): name 0x08, 7 bytes, bit 0 of the information byte set
    /// for 16-bit decoding.
    const IO_PORT_DESCRIPTOR: u8 = (0x08 << 3) | 7;
    const IO_DECODE_16: u8 = 1;
    /// IRQ descriptor (§6.4.2.1): name 0x04, 2 bytes (the mask only: edge, active high,
    /// exclusive, which is `IRQNoFlags`).
    const IRQ_DESCRIPTOR: u8 = (0x04 << 3) | 2;
    /// End tag (§6.4.2.9): name 0x0F, 1 byte (a checksum; 0 means "treat as correct").
    const END_TAG: u8 = (0x0f << 3) | 1;
    /// A UART's register block is 8 ports.
    const UART_PORTS: u8 = 8;
    /// Large resource items (§6.4.3): tag byte = 0x80 | item name, then a 16-bit length.
    /// 32-bit Fixed Memory Range Descriptor (§6.4.3.4): name 0x06, 9 bytes (information,
    /// base, length); bit 0 of the information byte set for read/write.
    const MEMORY32_FIXED: u8 = 0x80 | 0x06;
    const MEMORY32_FIXED_LEN: u16 = 9;
    const MEMORY_READ_WRITE: u8 = 1;
    /// The hardware ID Linux's tpm_crb matches (`crb_device_ids`): a TPM 2.0 whose
    /// interface the TPM2 table's start method names.
    const TPM_HID: &[u8] = b"MSFT0101";

    /// PkgLength (§20.2.4) of a package whose contents after the PkgLength are `len` bytes:
    /// the encoded length counts the PkgLength bytes themselves. One byte up to 63 in all,
    /// else a lead byte (bits 7-6: how many bytes follow, bits 3-0: the low nibble) and up to
    /// three more bytes, for at most 2^28 - 1.
    pub fn pkg_length(len: usize) -> Option<Vec<u8>> {
        if len < 63 {
            return Some([len as u8 + 1].to_vec());
        }
        for extra in 1..=3usize {
            let total = len.checked_add(1 + extra)?;
            if total < 1 << (4 + 8 * extra) {
                let mut out = Vec::with_capacity(1 + extra);
                out.push(((extra as u8) << 6) | (total & 0xf) as u8);
                for i in 0..extra {
                    out.push((total >> (4 + 8 * i)) as u8);
                }
                return Some(out);
            }
        }
        None
    }

    /// `op` (one or two bytes), PkgLength, `contents`.
    fn with_pkg_length(op: &[u8], contents: &[u8]) -> Vec<u8> {
        // Everything here is far below 2^28 bytes.
        let len = pkg_length(contents.len()).unwrap_or_default();
        let mut out = Vec::with_capacity(op.len() + len.len() + contents.len());
        out.extend_from_slice(op);
        out.extend_from_slice(&len);
        out.extend_from_slice(contents);
        out
    }

    /// A string constant (§20.2.3): StringPrefix, the ASCII characters, a NUL.
    fn string(ascii: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(ascii.len() + 2);
        out.push(STRING_PREFIX);
        out.extend_from_slice(ascii);
        out.push(0);
        out
    }

    /// `Name (name, value)` (§20.2.5.1, DefName) for a name segment of the current scope.
    fn name(seg: &[u8; 4], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + value.len());
        out.push(NAME_OP);
        out.extend_from_slice(seg);
        out.extend_from_slice(value);
        out
    }

    /// `ResourceTemplate () { descriptors }`: a Buffer (§20.2.5.4, DefBuffer) holding the
    /// resource descriptors and the End Tag (§6.4.2.9), its size a BytePrefix (or, past 255
    /// bytes, WordPrefix) constant.
    pub fn resource_template(descriptors: &[u8]) -> Vec<u8> {
        let mut resources = descriptors.to_vec();
        resources.extend_from_slice(&[END_TAG, 0]);
        let mut buffer = match u8::try_from(resources.len()) {
            Ok(len) => [BYTE_PREFIX, len].to_vec(),
            Err(_) => {
                // Everything here is far below 64 KiB.
                let len = u16::try_from(resources.len()).unwrap_or(u16::MAX);
                let [lo, hi] = len.to_le_bytes();
                [WORD_PREFIX, lo, hi].to_vec()
            }
        };
        buffer.extend_from_slice(&resources);
        with_pkg_length(&[BUFFER_OP], &buffer)
    }

    /// `Device (\_SB.name) { body }` (§20.2.5.2, DefDevice).
    fn sb_device(name: [u8; 4], body: &[u8]) -> Vec<u8> {
        let mut contents = [ROOT_CHAR, DUAL_NAME_PREFIX, b'_', b'S', b'B', b'_'].to_vec();
        contents.extend_from_slice(&name);
        contents.extend_from_slice(body);
        with_pkg_length(&[EXT_OP_PREFIX, DEVICE_OP], &contents)
    }

    /// `Memory32Fixed (ReadWrite, base, size)` (§6.4.3.4).
    pub fn memory32_fixed(base: u32, size: u32) -> [u8; 12] {
        let mut d = [0u8; 12];
        d[0] = MEMORY32_FIXED;
        d[1..3].copy_from_slice(&MEMORY32_FIXED_LEN.to_le_bytes());
        d[3] = MEMORY_READ_WRITE;
        d[4..8].copy_from_slice(&base.to_le_bytes());
        d[8..12].copy_from_slice(&size.to_le_bytes());
        d
    }

    /// ```text
    /// Device (\_SB.TPM0) {
    ///     Name (_HID, "MSFT0101")   // TPM 2.0; the TPM2 table gives the interface (CRB)
    ///     Name (_CRS, ResourceTemplate () {
    ///         Memory32Fixed (ReadWrite, base, size)
    ///     })
    /// }
    /// ```
    ///
    /// No `_CID`: Linux matches `_HID` and `_CID` alike, and `_HID` already is the ID it
    /// knows. No `_STA`: a device without one is present and enabled (§6.3.7). No `_UID`:
    /// there is one TPM.
    pub fn tpm_device(base: u32, size: u32) -> Vec<u8> {
        let mut body = name(b"_HID", &string(TPM_HID));
        body.extend_from_slice(&name(
            b"_CRS",
            &resource_template(&memory32_fixed(base, size)),
        ));
        sb_device(*b"TPM0", &body)
    }

    /// An integer constant (§20.2.3): ZeroOp, OneOp or BytePrefix.
    fn byte_const(value: u8) -> Vec<u8> {
        match value {
            0 => [ZERO_OP].to_vec(),
            1 => [ONE_OP].to_vec(),
            v => [BYTE_PREFIX, v].to_vec(),
        }
    }

    /// A compressed EISA ID (what the ASL `EISAID()` macro, §19.6, makes): three letters of 5 bits
    /// ('A' = 1) packed big-endian into two bytes, then the four hex digits as two bytes.
    pub fn eisa_id(id: &[u8; 7]) -> [u8; 4] {
        let letter = |c: u8| u16::from(c.wrapping_sub(b'@') & 0x1f);
        let vendor = (letter(id[0]) << 10) | (letter(id[1]) << 5) | letter(id[2]);
        let hex = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => 0,
        };
        let [v0, v1] = vendor.to_be_bytes();
        [
            v0,
            v1,
            (hex(id[3]) << 4) | hex(id[4]),
            (hex(id[5]) << 4) | hex(id[6]),
        ]
    }

    /// ```text
    /// Device (\_SB.COMn) {
    ///     Name (_HID, EisaId ("PNP0501"))   // 16550A-compatible COM port
    ///     Name (_UID, uid)
    ///     Name (_CRS, ResourceTemplate () {
    ///         IO (Decode16, base, base, 0x00, 0x08)
    ///         IRQNoFlags () { irq }
    ///     })
    /// }
    /// ```
    pub fn serial_device(seg: [u8; 4], uid: u8, port: SerialPort) -> Vec<u8> {
        let [lo, hi] = port.io_base.to_le_bytes();
        let irq_mask = (1u16 << (port.irq & 0xf)).to_le_bytes();
        let resources = [
            IO_PORT_DESCRIPTOR,
            IO_DECODE_16,
            lo,
            hi,
            lo,
            hi,
            0, // alignment: min == max, nothing to align
            UART_PORTS,
            IRQ_DESCRIPTOR,
            irq_mask[0],
            irq_mask[1],
        ];
        let mut hid = [DWORD_PREFIX].to_vec();
        hid.extend_from_slice(&eisa_id(b"PNP0501"));
        let mut body = name(b"_HID", &hid);
        body.extend_from_slice(&name(b"_UID", &byte_const(uid)));
        body.extend_from_slice(&name(b"_CRS", &resource_template(&resources)));
        sb_device(seg, &body)
    }

    /// `Name (\_S5, Package () { slp_typ, slp_typ })`: SLP_TYPa and SLP_TYPb for soft-off
    /// (§7.4.2). A hardware-reduced OS writes SLP_TYPa to the sleep control register.
    pub fn s5_package(slp_typ: u8) -> Vec<u8> {
        let mut elements = [2u8].to_vec(); // NumElements
        elements.extend_from_slice(&byte_const(slp_typ));
        elements.extend_from_slice(&byte_const(slp_typ));
        let mut out = [NAME_OP, ROOT_CHAR, b'_', b'S', b'5', b'_'].to_vec();
        out.extend_from_slice(&with_pkg_length(&[PACKAGE_OP], &elements));
        out
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::vec;
    use arch::phys::PhysRead;
    use arch::x86_64::acpi as parser;
    use le::{u16_at, u32_at, u64_at};

    /// Guest-physical memory holding one blob at `base`, for Parapet's own ACPI parser.
    struct Placed {
        base: u64,
        bytes: Vec<u8>,
    }

    impl PhysRead for Placed {
        fn read(&self, pa: u64, buf: &mut [u8]) -> Option<()> {
            let at = usize::try_from(pa.checked_sub(self.base)?).ok()?;
            buf.copy_from_slice(self.bytes.get(at..at.checked_add(buf.len())?)?);
            Some(())
        }
    }

    const COM1: SerialPort = SerialPort {
        io_base: 0x3f8,
        irq: 4,
    };
    const POWER: PowerPorts = PowerPorts {
        sleep_control: 0x600,
        sleep_status: 0x601,
        reset: Some(0x602),
    };
    const IOAPIC: IoApic = IoApic {
        id: 0,
        address: 0xfec0_0000,
        gsi_base: 0,
    };

    fn config(ids: &[u32]) -> AcpiConfig<'_> {
        AcpiConfig {
            x2apic_ids: ids,
            io_apic: IOAPIC,
            serial_ports: &[COM1],
            power: Some(POWER),
            tpm: None,
        }
    }

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
    }

    /// A table inside the blob, found by its address, checked independently of Parapet's
    /// parser: signature, length within the blob, checksum, alignment.
    fn table<'a>(blob: &'a [u8], base: u64, at: u64, signature: &[u8; 4]) -> &'a [u8] {
        assert_eq!(at % 16, 0, "{signature:?} is 16-byte aligned");
        let off = (at - base) as usize;
        assert_eq!(&blob[off..off + 4], signature);
        let len = u32_at(blob, off + 4).unwrap() as usize;
        let t = &blob[off..off + len];
        assert_eq!(sum(t), 0, "{signature:?} checksum");
        t
    }

    /// Every check of the blob that does not go through Parapet's parser; returns
    /// (FADT, MADT, DSDT).
    fn check_blob(tables: &AcpiTables, base: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let b = &tables.bytes;
        assert_eq!(tables.rsdp_address, base);
        // RSDP (§5.2.5.3).
        assert_eq!(&b[0..8], b"RSD PTR ");
        assert_eq!(sum(&b[..20]), 0, "RSDP checksum over bytes 0-19");
        assert_eq!(b[15], 2, "revision 2");
        assert_eq!(u32_at(b, 16), Some(0), "no RSDT");
        assert_eq!(u32_at(b, 20), Some(36), "RSDP length");
        assert_eq!(sum(&b[..36]), 0, "extended checksum");
        // XSDT (§5.2.8): FADT then MADT, then TPM2 with a TPM.
        let xsdt = table(b, base, u64_at(b, 24).unwrap(), b"XSDT");
        assert!(
            xsdt.len() == 36 + 16 || xsdt.len() == 36 + 24,
            "two or three entries"
        );
        assert_eq!(xsdt[8], 1);
        let fadt = table(b, base, u64_at(xsdt, 36).unwrap(), b"FACP").to_vec();
        let madt = table(b, base, u64_at(xsdt, 44).unwrap(), b"APIC").to_vec();
        // FADT (§5.2.9).
        assert_eq!(fadt.len(), 276);
        assert_eq!((fadt[8], fadt[131]), (6, 5), "FADT 6.5");
        let flags = u32_at(&fadt, 112).unwrap();
        assert_ne!(flags & (1 << 20), 0, "HW_REDUCED_ACPI");
        assert_eq!(u32_at(&fadt, 36), Some(0), "no FACS");
        assert_eq!(u64_at(&fadt, 132), Some(0), "no X_FACS");
        for pm_block in (56..=84).step_by(4) {
            assert_eq!(u32_at(&fadt, pm_block), Some(0), "PM block at {pm_block}");
        }
        let x_dsdt = u64_at(&fadt, 140).unwrap();
        let dsdt32 = u32_at(&fadt, 40).unwrap();
        assert!(
            dsdt32 == 0 || u64::from(dsdt32) == x_dsdt,
            "DSDT fields agree"
        );
        let dsdt = table(b, base, x_dsdt, b"DSDT").to_vec();
        assert_eq!(dsdt[8], 2, "DSDT revision 2: 64-bit AML integers");
        assert_eq!(madt[8], 6, "MADT revision 6");
        // The blob ends with the DSDT: nothing is left over or cut short.
        assert_eq!((x_dsdt - base) as usize + dsdt.len(), b.len());
        (fadt, madt, dsdt)
    }

    /// The TPM2 table, found through the XSDT's third entry (checked by [`table`]).
    fn tpm2_table(tables: &AcpiTables, base: u64) -> Vec<u8> {
        let b = &tables.bytes;
        let xsdt = table(b, base, u64_at(b, 24).unwrap(), b"XSDT");
        assert_eq!(xsdt.len(), 36 + 24, "FADT, MADT, TPM2");
        table(b, base, u64_at(xsdt, 52).unwrap(), b"TPM2").to_vec()
    }

    /// MADT structures as (type, bytes), walked independently of Parapet's parser.
    fn madt_entries(madt: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 44;
        while at < madt.len() {
            let len = madt[at + 1] as usize;
            assert!(
                len >= 2 && at + len <= madt.len(),
                "structure fits the MADT"
            );
            out.push((madt[at], madt[at..at + len].to_vec()));
            at += len;
        }
        assert_eq!(at, madt.len());
        out
    }

    #[test]
    fn parapets_own_parser_finds_the_cpus_and_the_local_apic() {
        let base = 0x9_a000;
        let tables = build(&config(&[0, 1]), base).unwrap();
        let mem = Placed {
            base,
            bytes: tables.bytes.clone(),
        };
        assert_eq!(parser::find_rsdp(&mem, Some(tables.rsdp_address)), Ok(base));
        let cpus = parser::processors(&mem, base).unwrap();
        assert_eq!(cpus.apic_ids(), &[0, 1]);
        assert_eq!(cpus.local_apic_address, u64::from(LOCAL_APIC_ADDRESS));
        assert_eq!(cpus.ignored, 0);
        let mut buf = vec![0u8; 4096];
        let fadt = parser::find_table(&mem, base, b"FACP", &mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(fadt.len(), 276);
        check_blob(&tables, base);
    }

    #[test]
    fn the_madt_lists_x2apics_the_io_apic_and_the_timer_override() {
        let ids = [0, 1, 7, 300];
        let tables = build(&config(&ids), 0x10_0000).unwrap();
        let (_, madt, _) = check_blob(&tables, 0x10_0000);
        assert_eq!(u32_at(&madt, 36), Some(0xfee0_0000));
        assert_eq!(u32_at(&madt, 40), Some(0), "no PCAT_COMPAT: no 8259s");
        let entries = madt_entries(&madt);
        assert_eq!(entries.len(), ids.len() + 2);
        for (uid, (&id, (kind, e))) in ids.iter().zip(&entries).enumerate() {
            assert_eq!((*kind, e.len()), (9, 16), "x2APIC structure");
            assert_eq!(u16_at(e, 2), Some(0), "reserved");
            assert_eq!(u32_at(e, 4), Some(id));
            assert_eq!(u32_at(e, 8), Some(1), "enabled, not online-capable");
            assert_eq!(u32_at(e, 12), Some(uid as u32));
        }
        let (kind, io) = &entries[ids.len()];
        assert_eq!((*kind, io.len()), (1, 12));
        assert_eq!(io[2], 0, "I/O APIC ID");
        assert_eq!(u32_at(io, 4), Some(0xfec0_0000));
        assert_eq!(u32_at(io, 8), Some(0), "GSI base");
        let (kind, iso) = &entries[ids.len() + 1];
        assert_eq!((*kind, iso.len()), (2, 10));
        assert_eq!((iso[2], iso[3]), (0, 0), "ISA bus, IRQ 0");
        assert_eq!(u32_at(iso, 4), Some(2), "GSI 2");
        assert_eq!(
            u16_at(iso, 8),
            Some(0),
            "conforms to ISA: edge, active high"
        );
    }

    #[test]
    fn the_fadt_is_hardware_reduced_with_sleep_and_reset_registers() {
        let tables = build(&config(&[0]), 0x10_0000).unwrap();
        let (fadt, _, _) = check_blob(&tables, 0x10_0000);
        let flags = u32_at(&fadt, 112).unwrap();
        assert_eq!(
            flags,
            (1 << 0) | (1 << 4) | (1 << 5) | (1 << 10) | (1 << 20),
            "WBINVD, PWR_BUTTON, SLP_BUTTON, RESET_REG_SUP, HW_REDUCED_ACPI"
        );
        assert_eq!(
            u16_at(&fadt, 46),
            Some(9),
            "SCI_INT clear of the IRQ0 override"
        );
        assert_eq!(
            u16_at(&fadt, 109),
            Some(0b10_0101),
            "legacy devices, no VGA, no CMOS RTC, no 8042"
        );
        let gas = |at: usize| (fadt[at], fadt[at + 1], fadt[at + 3], u64_at(&fadt, at + 4));
        assert_eq!(gas(116), (1, 8, 1, Some(0x602)), "reset register: I/O byte");
        assert_eq!(fadt[128], RESET_VALUE);
        assert_eq!(gas(244), (1, 8, 1, Some(0x600)), "sleep control");
        assert_eq!(gas(256), (1, 8, 1, Some(0x601)), "sleep status");
        assert_eq!(u64_at(&fadt, 268), Some(0), "hypervisor vendor identity");
    }

    #[test]
    fn without_power_ports_or_serial_ports_the_dsdt_is_an_empty_definition_block() {
        let cfg = AcpiConfig {
            serial_ports: &[],
            power: None,
            ..config(&[0])
        };
        let tables = build(&cfg, 0x8000).unwrap();
        let (fadt, _, dsdt) = check_blob(&tables, 0x8000);
        assert_eq!(dsdt.len(), 36);
        let flags = u32_at(&fadt, 112).unwrap();
        assert_eq!(flags & (1 << 10), 0, "no reset register");
        assert_eq!(u64_at(&fadt, 248), Some(0), "no sleep control register");
        assert_eq!(u16_at(&fadt, 109), Some(0b10_0100), "no legacy devices");
    }

    /// The DSDT's AML, byte for byte. The expected bytes were checked by disassembling the
    /// built DSDT with ACPICA's iasl (`iasl -d`), which gave back:
    ///
    /// ```text
    /// Device (\_SB.COM1) {
    ///     Name (_HID, EisaId ("PNP0501"))
    ///     Name (_UID, Zero)
    ///     Name (_CRS, ResourceTemplate () {
    ///         IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08, )
    ///         IRQNoFlags () {4}
    ///     })
    /// }
    /// Name (\_S5, Package (0x02) { 0x05, 0x05 })
    /// ```
    #[test]
    fn the_dsdt_describes_com1_and_s5() {
        let tables = build(&config(&[0]), 0x8000).unwrap();
        let (_, _, dsdt) = check_blob(&tables, 0x8000);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x5b, 0x82, 0x31, // Device, PkgLength 49: 48 bytes of contents
            b'\\', 0x2e, b'_', b'S', b'B', b'_', b'C', b'O', b'M', b'1',
            0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x05, 0x01,
            0x08, b'_', b'U', b'I', b'D', 0x00,
            0x08, b'_', b'C', b'R', b'S', 0x11, 0x10, 0x0a, 0x0d, // Buffer, 13 bytes
            0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08, // IO
            0x22, 0x10, 0x00, // IRQNoFlags {4}
            0x79, 0x00, // end tag
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x06, 0x02, 0x0a, 0x05, 0x0a, 0x05,
        ];
        assert_eq!(&dsdt[36..], expected);
    }

    /// A PC's TPM: CRB registers at 0xFED4_0000, five 4 KiB localities.
    const PC_TPM: TpmCrb = TpmCrb {
        base: 0xfed4_0000,
        size: 0x5000,
        event_log: None,
    };

    /// The TPM2 table (TCG ACPI Specification 1.3 §8.3), field by field at the offsets of
    /// the spec's table, which are those of ACPICA's packed `struct acpi_table_tpm2` (52
    /// bytes) followed by Linux's `struct acpi_tpm2_phy` (24 bytes).
    #[test]
    fn with_a_tpm_the_xsdt_lists_a_tpm2_table_for_the_crb() {
        let base = 0x9_a000;
        let cfg = AcpiConfig {
            tpm: Some(PC_TPM),
            ..config(&[0, 1])
        };
        let tables = build(&cfg, base).unwrap();
        check_blob(&tables, base);
        let t = tpm2_table(&tables, base);
        assert_eq!(t.len(), 76);
        assert_eq!(u32_at(&t, 4), Some(76));
        assert_eq!(t[8], 4, "revision 4");
        assert_eq!(sum(&t), 0, "checksum");
        assert_eq!(&t[10..16], b"PRPT  ", "OEM ID like the other tables");
        assert_eq!(u16_at(&t, 36), Some(0), "platform class: client");
        assert_eq!(u16_at(&t, 38), Some(0), "reserved");
        assert_eq!(
            u64_at(&t, 40),
            Some(0xfed4_0040),
            "CRB control area: TPM_CRB_CTRL_REQ_0"
        );
        assert_eq!(u32_at(&t, 48), Some(7), "start method: CRB");
        assert_eq!(&t[52..64], &[0u8; 12], "start method parameters");
        assert_eq!(u32_at(&t, 64), Some(0), "LAML: no log");
        assert_eq!(u64_at(&t, 68), Some(0), "LASA: no log");
        let with_log = AcpiConfig {
            tpm: Some(TpmCrb {
                event_log: Some((0x1_0000, 0x1_0000)),
                ..PC_TPM
            }),
            ..config(&[0, 1])
        };
        let logged = tpm2_table(&build(&with_log, base).unwrap(), base);
        assert_eq!(u32_at(&logged, 64), Some(0x1_0000), "LAML");
        assert_eq!(u64_at(&logged, 68), Some(0x1_0000), "LASA");
        assert_eq!(sum(&logged), 0, "checksum");
        // Parapet's parser finds it too, and the CPUs as before.
        let mem = Placed {
            base,
            bytes: tables.bytes.clone(),
        };
        let mut buf = vec![0u8; 4096];
        let found = parser::find_table(&mem, base, b"TPM2", &mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(found, &t[..]);
        assert_eq!(parser::processors(&mem, base).unwrap().apic_ids(), &[0, 1]);
    }

    /// `Device (\_SB.TPM0)` byte for byte, written out from the encodings of ACPI 6.5
    /// §20.2 (DefDevice, DefName, String, DefBuffer) and §6.4.3.4 (Memory32Fixed).
    #[test]
    fn with_a_tpm_the_dsdt_has_an_msft0101_device_with_its_crb_window() {
        let cfg = AcpiConfig {
            serial_ports: &[],
            power: None,
            tpm: Some(PC_TPM),
            ..config(&[0])
        };
        let tables = build(&cfg, 0x8000).unwrap();
        let (_, _, dsdt) = check_blob(&tables, 0x8000);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x5b, 0x82, 0x31, // Device, PkgLength 49: 48 bytes of contents
            b'\\', 0x2e, b'_', b'S', b'B', b'_', b'T', b'P', b'M', b'0',
            // Name (_HID, "MSFT0101"): StringPrefix, ASCII, NUL
            0x08, b'_', b'H', b'I', b'D',
            0x0d, b'M', b'S', b'F', b'T', b'0', b'1', b'0', b'1', 0x00,
            // Name (_CRS, Buffer): PkgLength 17, BufferSize 14
            0x08, b'_', b'C', b'R', b'S', 0x11, 0x11, 0x0a, 0x0e,
            // Memory32Fixed: tag 0x86, length 9, read/write, base, length
            0x86, 0x09, 0x00, 0x01,
            0x00, 0x00, 0xd4, 0xfe,
            0x00, 0x50, 0x00, 0x00,
            0x79, 0x00, // end tag
        ];
        assert_eq!(&dsdt[36..], expected);
        let t = tpm2_table(&tables, 0x8000);
        assert_eq!(u64_at(&t, 40), Some(0xfed4_0040));
    }

    /// Between the serial ports and `\_S5`, the TPM device changes nothing else.
    #[test]
    fn the_tpm_device_sits_between_the_serial_ports_and_s5() {
        let with = |tpm| {
            let cfg = AcpiConfig {
                tpm,
                ..config(&[0])
            };
            check_blob(&build(&cfg, 0x8000).unwrap(), 0x8000).2
        };
        let (plain, tpm) = (with(None), with(Some(PC_TPM)));
        let device = aml::tpm_device(0xfed4_0000, 0x5000);
        assert_eq!(device.len(), 51);
        // 36 header + 51 of COM1, then the TPM's 51, then the same \_S5.
        assert_eq!(&tpm[36..87], &plain[36..87]);
        assert_eq!(&tpm[87..138], &device[..]);
        assert_eq!(&tpm[138..], &plain[87..]);
    }

    /// Without a TPM nothing of it appears: two XSDT entries, no TPM2 table, no device, and
    /// the DSDT's AML exactly the COM1 and `\_S5` of [`the_dsdt_describes_com1_and_s5`].
    #[test]
    fn without_a_tpm_there_is_no_tpm2_table_and_no_device() {
        let base = 0x9_a000;
        let tables = build(&config(&[0, 1]), base).unwrap();
        let (_, _, dsdt) = check_blob(&tables, base);
        let b = &tables.bytes;
        let xsdt = table(b, base, u64_at(b, 24).unwrap(), b"XSDT");
        assert_eq!(xsdt.len(), 36 + 16);
        assert!(!b.windows(4).any(|w| w == b"TPM2"));
        assert!(!dsdt.windows(8).any(|w| w == b"MSFT0101"));
        assert_eq!(dsdt.len(), 36 + 51 + 13);
        let mem = Placed {
            base,
            bytes: tables.bytes.clone(),
        };
        let mut buf = vec![0u8; 4096];
        assert_eq!(parser::find_table(&mem, base, b"TPM2", &mut buf), Ok(None));
    }

    #[test]
    fn tpm_windows_that_do_not_fit_memory32fixed_are_refused() {
        let refused = |base, size| {
            let tpm = TpmCrb {
                base,
                size,
                event_log: None,
            };
            let cfg = AcpiConfig {
                tpm: Some(tpm),
                ..config(&[0])
            };
            assert_eq!(
                build(&cfg, 0),
                Err(AcpiBuildError::BadTpmWindow(tpm)),
                "{base:#x}+{size:#x}"
            );
        };
        refused(0x1_0000_0000, 0x5000);
        refused(u64::MAX, 0x5000);
        refused(0xffff_f000, 0x5000);
        refused(0xffff_ffff, u32::MAX);
        refused(0xfed4_0000, 0);
        refused(0xfed4_0000, 0x7f);
        // Ending at 4 GiB exactly is fine, and so is the smallest window.
        for (base, size) in [(0xffff_b000, 0x5000), (0xfed4_0000, 0x80), (0, u32::MAX)] {
            let cfg = AcpiConfig {
                tpm: Some(TpmCrb {
                    base,
                    size,
                    event_log: None,
                }),
                ..config(&[0])
            };
            assert!(build(&cfg, 0).is_ok(), "{base:#x}+{size:#x}");
        }
    }

    #[test]
    fn more_serial_ports_get_their_own_devices() {
        let ports = [
            COM1,
            SerialPort {
                io_base: 0x2f8,
                irq: 3,
            },
        ];
        let cfg = AcpiConfig {
            serial_ports: &ports,
            power: None,
            ..config(&[0])
        };
        let tables = build(&cfg, 0x8000).unwrap();
        let (_, _, dsdt) = check_blob(&tables, 0x8000);
        let aml = &dsdt[36..];
        assert_eq!(aml.len(), 2 * 51);
        let com2 = &aml[51..];
        assert_eq!(&com2[9..13], b"COM2");
        assert_eq!(&com2[19..23], &[0x41, 0xd0, 0x05, 0x01]);
        assert_eq!(&com2[23..29], &[0x08, b'_', b'U', b'I', b'D', 0x01]);
        assert_eq!(&com2[38..46], &[0x47, 0x01, 0xf8, 0x02, 0xf8, 0x02, 0, 8]);
        assert_eq!(&com2[46..49], &[0x22, 0x08, 0x00], "IRQ 3");
    }

    #[test]
    fn eisa_ids_and_pkg_lengths_encode_as_the_spec_says() {
        // EisaId ("PNP0A03") is the well-known 0x030AD041.
        assert_eq!(u32::from_le_bytes(aml::eisa_id(b"PNP0A03")), 0x030a_d041);
        assert_eq!(aml::pkg_length(0), Some(vec![1]));
        assert_eq!(aml::pkg_length(62), Some(vec![63]));
        // 63 bytes of contents + 2 bytes of PkgLength = 65 = 0x41: lead 0x41, then 0x04.
        assert_eq!(aml::pkg_length(63), Some(vec![0x41, 0x04]));
        assert_eq!(aml::pkg_length(4093), Some(vec![0x4f, 0xff]));
        assert_eq!(aml::pkg_length(4094), Some(vec![0x81, 0x00, 0x01]));
        assert_eq!(
            aml::pkg_length((1 << 28) - 5),
            Some(vec![0xcf, 0xff, 0xff, 0xff])
        );
        assert_eq!(aml::pkg_length((1 << 28) - 4), None);
        // A resource template's buffer size: BytePrefix up to 255 bytes, then WordPrefix.
        assert_eq!(
            aml::resource_template(&[]),
            [0x11, 0x05, 0x0a, 0x02, 0x79, 0x00]
        );
        let big = aml::resource_template(&[0; 298]);
        assert_eq!(
            &big[..6],
            &[0x11, 0x41, 0x13, 0x0b, 0x2c, 0x01],
            "300 = 0x12c"
        );
        assert_eq!(big.len(), 6 + 300);
    }

    #[test]
    fn many_cpus_past_the_parsers_limit_and_x2apic_ids_above_255() {
        let ids: Vec<u32> = (0..300).map(|i| i * 2).collect();
        let tables = build(&config(&ids), 0x1_0000_0000).unwrap();
        let (fadt, madt, _) = check_blob(&tables, 0x1_0000_0000);
        assert_eq!(madt_entries(&madt).len(), 302);
        assert_eq!(u32_at(&fadt, 40), Some(0), "DSDT above 4 GiB: only X_DSDT");
        let mem = Placed {
            base: 0x1_0000_0000,
            bytes: tables.bytes,
        };
        let cpus = parser::processors(&mem, 0x1_0000_0000).unwrap();
        assert_eq!(cpus.apic_ids(), &ids[..parser::MAX_CPUS]);
        assert_eq!(cpus.ignored, 300 - parser::MAX_CPUS);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let err = |cfg: &AcpiConfig, base| build(cfg, base).unwrap_err();
        assert_eq!(err(&config(&[]), 0), AcpiBuildError::NoCpus);
        assert_eq!(
            err(&config(&[0, 1, 0]), 0),
            AcpiBuildError::DuplicateApicId(0)
        );
        assert_eq!(
            err(&config(&[0, u32::MAX]), 0),
            AcpiBuildError::InvalidApicId(u32::MAX)
        );
        assert_eq!(
            err(&config(&[0]), 0x1008),
            AcpiBuildError::MisalignedBase(0x1008)
        );
        assert_eq!(err(&config(&[0]), u64::MAX - 15), AcpiBuildError::TooLarge);
        let five = [COM1; 5];
        let cfg = AcpiConfig {
            serial_ports: &five,
            ..config(&[0])
        };
        assert_eq!(err(&cfg, 0), AcpiBuildError::TooManySerialPorts(5));
        let two = [COM1, COM1];
        let cfg = AcpiConfig {
            serial_ports: &two,
            ..config(&[0])
        };
        assert_eq!(err(&cfg, 0), AcpiBuildError::DuplicateSerialPort(0x3f8));
        for irq in [0, 2, 16, 255] {
            let port = [SerialPort {
                io_base: 0x3f8,
                irq,
            }];
            let cfg = AcpiConfig {
                serial_ports: &port,
                ..config(&[0])
            };
            assert_eq!(err(&cfg, 0), AcpiBuildError::BadSerialIrq(irq));
        }
        let cfg = AcpiConfig {
            io_apic: IoApic {
                gsi_base: 24,
                ..IOAPIC
            },
            ..config(&[0])
        };
        assert_eq!(err(&cfg, 0), AcpiBuildError::SerialPortsNeedGsiBase0);
    }

    #[test]
    fn an_io_apic_above_gsi_0_gets_no_isa_override() {
        let cfg = AcpiConfig {
            io_apic: IoApic {
                id: 3,
                address: 0xfec1_0000,
                gsi_base: 24,
            },
            serial_ports: &[],
            power: None,
            x2apic_ids: &[5],
            tpm: None,
        };
        let tables = build(&cfg, 0).unwrap();
        let (_, madt, _) = check_blob(&tables, 0);
        let entries = madt_entries(&madt);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].1, [1, 12, 3, 0, 0, 0, 0xc1, 0xfe, 24, 0, 0, 0]);
    }

    #[test]
    fn the_blob_is_the_same_wherever_it_goes_except_for_addresses() {
        let a = build(&config(&[0, 1]), 0x1000).unwrap();
        let b = build(&config(&[0, 1]), 0x7_0000).unwrap();
        assert_eq!(a.bytes.len(), b.bytes.len());
        check_blob(&a, 0x1000);
        check_blob(&b, 0x7_0000);
    }

    /// Parapet's parser reading a built blob after one corrupted byte: never a panic; a
    /// byte changed anywhere the parser relies on (the RSDP, the XSDT, the MADT: each covered
    /// by its checksum) makes it refuse the tables, and a byte changed anywhere else (FADT,
    /// DSDT, padding) leaves its answer as it was.
    #[test]
    fn corrupted_blobs_are_refused_by_checksum_and_never_panic_the_parser() {
        let base = 0x2_0000;
        let good = build(&config(&[0, 1, 2]), base).unwrap();
        let b = &good.bytes;
        let span = |at: u64| {
            let off = (at - base) as usize;
            off..off + u32_at(b, off + 4).unwrap() as usize
        };
        let xsdt = span(u64_at(b, 24).unwrap());
        let madt = span(u64_at(b, xsdt.start + 44).unwrap());
        let relied_on = [0..36, xsdt, madt];
        for at in 0..b.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bytes = b.clone();
                bytes[at] ^= flip;
                let mem = Placed { base, bytes };
                let found = parser::processors(&mem, base);
                if relied_on.iter().any(|r| r.contains(&at)) {
                    assert!(found.is_err(), "byte {at:#x} ^ {flip:#x} went unnoticed");
                } else {
                    assert_eq!(found.unwrap().apic_ids(), &[0, 1, 2], "byte {at:#x}");
                }
            }
        }
    }
}

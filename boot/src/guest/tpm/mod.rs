//! The guest's TPM: Parapet's TPM 2.0 (`devices::tpm`, pure Rust), which Parapet starts and
//! measures the guest's boot into before the guest runs, as platform firmware does, behind
//! the interface the architecture's guests find a TPM by:
//!
//! - x86_64 (`crb_mmio`): the CRB interface at the PC's address (`devices::tpm::crb`),
//!   described by the ACPI TPM2 table; the backend routes the guest's MMIO there.
//! - aarch64 (`aarch64`): the FIFO interface, on an SPI bus through a PL061 by default or
//!   memory-mapped with `parapet.tpm=tis-mmio`, described by the device tree. A device tree
//!   has no binding for a CRB TPM, and Debian's arm64 kernel has no driver for a
//!   memory-mapped FIFO one (CONFIG_TCG_TIS is off), but has tpm_tis_spi, spi-gpio and
//!   gpio-pl061, as other distributions' kernels do.
//!
//! What is measured, and where (GRUB's convention for a Linux boot, so the usual PCR policies
//! apply): PCR 9 is extended with the kernel image, then the initrd, each as the exact bytes
//! the bundle carries; PCR 8 with the kernel command line, its bytes without a terminating
//! NUL. Every bank (SHA-1, SHA-256, SHA-384) gets that bank's digest.
//!
//! The TPM is new at every boot (seeds from the CPU's entropy source): nothing is persisted
//! yet. `parapet.tpm=off` on Parapet's command line gives the guest none (and measures
//! nothing: hashing a kernel three times is minutes where KVM emulates every instruction).

use alloc::boxed::Box;

use devices::tpm::event_log::{EventLog, EV_IPL};
use devices::tpm::Tpm;
use spin::Mutex;

use crate::guest::ram;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod crb_mmio;

#[cfg(target_arch = "aarch64")]
use aarch64::Interface;
#[cfg(target_arch = "aarch64")]
pub use aarch64::{gpio_access, tis_mmio_access, Kind};
#[cfg(target_arch = "x86_64")]
use crb_mmio::Interface;
#[cfg(target_arch = "x86_64")]
pub use crb_mmio::{mmio_read, mmio_write, Kind};

/// PCRs for a Linux boot's measurements (GRUB's: commands and command lines in 8, files in 9).
pub const PCR_COMMAND_LINE: u32 = 8;
pub const PCR_FILES: u32 = 9;

/// The event log's area in guest memory: the PC Client PFP's minimum Log Area Minimum Length
/// for a client platform (64 KiB), which Parapet's few events use a little of.
pub const EVENT_LOG_AREA: u32 = 64 * 1024;

/// What was measured, in the order it was, from the TPM's creation on.
static EVENT_LOG: Mutex<Option<EventLog>> = Mutex::new(None);

/// The TPM is made on first use (a measurement, or the guest's first access): making and
/// starting one runs its self-tests, which are seconds where every instruction is emulated,
/// and a guest that never touches it should not wait for them.
enum State {
    None,
    /// Offered to the guest, with the entropy for its seeds.
    Offered([u8; 32], Kind),
    Running(Box<Interface>),
}

static TPM: Mutex<State> = Mutex::new(State::None);

/// 32 bytes of entropy from the CPU, for the TPM's seeds; `None` where it has no source.
fn entropy() -> Option<[u8; 32]> {
    #[cfg(target_arch = "aarch64")]
    use arch::aarch64::registers::hardware_random;
    #[cfg(target_arch = "x86_64")]
    use arch::x86_64::instructions::hardware_random;
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&hardware_random()?.to_le_bytes());
    }
    Some(out)
}

/// Gives the guest a TPM of the kind `option` (`parapet.tpm=` on Parapet's command line)
/// asks for; false for `off`, or, with a log line, where there is no entropy to seed it.
pub fn create(option: Option<&str>) -> bool {
    let Some(kind) = Kind::from_option(option) else {
        return false;
    };
    let Some(entropy) = entropy() else {
        log::warn!("tpm: no entropy source (RDSEED/RDRAND, RNDRRS): the guest gets no TPM");
        return false;
    };
    *TPM.lock() = State::Offered(entropy, kind);
    *EVENT_LOG.lock() = Some(EventLog::new());
    log::info!(
        "tpm: TPM 2.0 {}, banks SHA-1, SHA-256, SHA-384",
        kind.place()
    );
    true
}

/// The kind of TPM the guest has, if it has one (aarch64, where there are two).
#[cfg(target_arch = "aarch64")]
pub fn kind() -> Option<Kind> {
    match &*TPM.lock() {
        State::None => None,
        State::Offered(_, kind) => Some(*kind),
        State::Running(interface) => Some(interface.kind()),
    }
}

/// Whether the guest has a TPM.
pub fn present() -> bool {
    !matches!(*TPM.lock(), State::None)
}

/// Runs `f` on the running TPM's interface, if the guest has a TPM.
fn with_running<R>(f: impl FnOnce(&mut Interface) -> R) -> Option<R> {
    running(&mut TPM.lock()).map(f)
}

/// The running TPM, made and started (TPM2_Startup(CLEAR), as platform firmware sends it)
/// on first use.
fn running(state: &mut State) -> Option<&mut Interface> {
    if let State::Offered(entropy, kind) = *state {
        let mut tpm = Tpm::new(entropy);
        let rc = tpm.startup_clear();
        if rc != 0 {
            // Startup runs in failure mode too; the guest learns it from the TPM itself.
            log::error!("tpm: TPM2_Startup failed with {rc:#x}");
        }
        *state = State::Running(Box::new(Interface::new(tpm, kind)));
    }
    match state {
        State::Running(interface) => Some(interface),
        _ => None,
    }
}

/// Extends `pcr` with `data` in every bank and records it in the event log as an EV_IPL
/// event with `event` as its data; `what` names it in Parapet's log.
pub fn measure(pcr: u32, what: &str, data: &[u8], event: &[u8]) {
    let mut state = TPM.lock();
    let Some(interface) = running(&mut state) else {
        return;
    };
    match interface.tpm_mut().measure(pcr, data) {
        Ok(digests) => {
            if let Some(log) = EVENT_LOG.lock().as_mut() {
                log.record(pcr, EV_IPL, &digests, event);
            }
            log::info!(
                "tpm: measured the {what} ({} bytes) into PCR {pcr}",
                data.len()
            );
        }
        Err(rc) => log::error!("tpm: measuring the {what} into PCR {pcr} failed with {rc:#x}"),
    }
}

/// Writes the event log of what was measured (TCG PC Client PFP's format,
/// `devices::tpm::event_log`) at `address` in guest RAM, its [`EVENT_LOG_AREA`] bytes
/// zeroed past it (a reader stops at the first all-zero event), under `ram::load`'s
/// contract; true if the guest has a TPM and so a log.
pub fn load_event_log(address: u64) -> Result<bool, ram::Fault> {
    let event_log = EVENT_LOG.lock();
    let Some(log) = event_log.as_ref().map(EventLog::bytes) else {
        return Ok(false);
    };
    let area = u64::from(EVENT_LOG_AREA);
    if log.len() as u64 > area {
        log::error!(
            "tpm: the event log's {} bytes do not fit its area",
            log.len()
        );
        return Err(ram::Fault { address });
    }
    ram::load(address, None, area)?;
    ram::load(address, Some(log), log.len() as u64)?;
    Ok(true)
}

/// Measures a Linux kernel into the guest's TPM, if it has one: `image` as the bundle
/// carries it. The loader calls it on the same bytes it copies to where the kernel runs, so
/// what is measured is what runs.
pub fn measure_kernel(image: &[u8]) {
    if present() {
        measure(PCR_FILES, "kernel", image, b"Linux kernel image");
    }
}

/// Measures the rest of a Linux boot, after [`measure_kernel`]: the initrd where the bundle
/// brought it (`(address, length)` in guest RAM; it stays there, the guest not running yet),
/// then the command line.
pub fn measure_initrd_and_command_line(initrd: Option<(u64, u64)>, command_line: &[u8]) {
    if !present() {
        return;
    }
    if let Some((address, len)) = initrd {
        let _ = ram::inspect(address, len, |bytes| {
            measure(PCR_FILES, "initrd", bytes, b"Linux initrd")
        });
    }
    // The command line is its own event's data: a verifier reads it there and checks it
    // against the digest.
    measure(PCR_COMMAND_LINE, "command line", command_line, command_line);
}

//! The guest's TPM: Parapet's TPM 2.0 (`devices::tpm`, pure Rust) behind the CRB interface at
//! the PC's address (`devices::tpm::crb`), which the backend routes the guest's MMIO to, and
//! which Parapet starts and measures the guest's boot into before the guest runs, as platform
//! firmware does.
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

use devices::tpm::crb::{self, Crb};
use devices::tpm::Tpm;
use spin::Mutex;

/// PCRs for a Linux boot's measurements (GRUB's: commands and command lines in 8, files in 9).
pub const PCR_COMMAND_LINE: u32 = 8;
pub const PCR_FILES: u32 = 9;

/// The TPM is made on first use (a measurement, or the guest's first access): making and
/// starting one runs its self-tests, which are seconds where every instruction is emulated,
/// and a guest that never touches it should not wait for them.
enum State {
    None,
    /// Offered to the guest, with the entropy for its seeds.
    Offered([u8; 32]),
    Running(Box<Crb>),
}

static TPM: Mutex<State> = Mutex::new(State::None);

/// 32 bytes of entropy from the CPU, for the TPM's seeds; `None` where it has no source.
fn entropy() -> Option<[u8; 32]> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&arch::x86_64::instructions::hardware_random()?.to_le_bytes());
        }
        Some(out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Gives the guest a TPM; false, with a log line, where there is no entropy to seed it.
pub fn create() -> bool {
    let Some(entropy) = entropy() else {
        log::warn!("tpm: no entropy source (RDSEED/RDRAND): the guest gets no TPM");
        return false;
    };
    *TPM.lock() = State::Offered(entropy);
    log::info!(
        "tpm: TPM 2.0 at {:#x} (CRB), banks SHA-1, SHA-256, SHA-384",
        crb::BASE
    );
    true
}

/// Whether the guest has a TPM.
pub fn present() -> bool {
    !matches!(*TPM.lock(), State::None)
}

/// The running TPM, made and started (TPM2_Startup(CLEAR), as platform firmware sends it)
/// on first use.
fn running(state: &mut State) -> Option<&mut Crb> {
    if let State::Offered(entropy) = *state {
        let mut tpm = Tpm::new(entropy);
        let rc = tpm.startup_clear();
        if rc != 0 {
            // Startup runs in failure mode too; the guest learns it from the TPM itself.
            log::error!("tpm: TPM2_Startup failed with {rc:#x}");
        }
        *state = State::Running(Box::new(Crb::new(tpm)));
    }
    match state {
        State::Running(crb) => Some(crb),
        _ => None,
    }
}

/// Extends `pcr` with `data` in every bank; `what` names it in the log.
pub fn measure(pcr: u32, what: &str, data: &[u8]) {
    let mut state = TPM.lock();
    let Some(crb) = running(&mut state) else {
        return;
    };
    match crb.tpm_mut().measure(pcr, data) {
        0 => log::info!(
            "tpm: measured the {what} ({} bytes) into PCR {pcr}",
            data.len()
        ),
        rc => log::error!("tpm: measuring the {what} into PCR {pcr} failed with {rc:#x}"),
    }
}

/// The offset of `gpa` in the CRB window, if it is there and the guest has a TPM.
fn window_offset(gpa: u64) -> Option<u64> {
    gpa.checked_sub(crb::BASE)
        .filter(|&offset| offset < crb::WINDOW)
}

/// A guest read at `gpa`, if it is the TPM's.
pub fn mmio_read(gpa: u64, size: u8) -> Option<u64> {
    let offset = window_offset(gpa)?;
    running(&mut TPM.lock()).map(|crb| crb.read(offset, size))
}

/// A guest write at `gpa`; false if it is not the TPM's.
pub fn mmio_write(gpa: u64, size: u8, value: u64) -> bool {
    let Some(offset) = window_offset(gpa) else {
        return false;
    };
    match running(&mut TPM.lock()) {
        Some(crb) => {
            crb.write(offset, size, value);
            true
        }
        None => false,
    }
}

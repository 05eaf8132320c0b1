//! x86_64: the guest reaches its TPM through the CRB registers at the PC's address, which
//! the svm and hv_vtl backends route the guest's MMIO to.

use devices::tpm::crb::{self, Crb};
use devices::tpm::Tpm;

use super::with_running;

/// The one kind of TPM x86 guests get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind;

impl Kind {
    /// The kind `parapet.tpm=` asks for; `None` for `off`.
    pub(super) fn from_option(option: Option<&str>) -> Option<Self> {
        match option {
            Some("off") => None,
            None | Some("on" | "crb") => Some(Self),
            Some(other) => {
                log::warn!("tpm: parapet.tpm={other} is not off or crb; using crb");
                Some(Self)
            }
        }
    }

    /// Where the guest finds it, for Parapet's log.
    pub(super) fn place(self) -> &'static str {
        const _: () = assert!(crb::BASE == 0xfed4_0000);
        "at 0xfed40000 (CRB)"
    }
}

/// The TPM behind its CRB registers.
pub(super) struct Interface(Crb);

impl Interface {
    pub(super) fn new(tpm: Tpm, _: Kind) -> Self {
        Self(Crb::new(tpm))
    }

    pub(super) fn tpm_mut(&mut self) -> &mut Tpm {
        self.0.tpm_mut()
    }
}

/// The offset of `gpa` in the CRB window, if it is there.
fn window_offset(gpa: u64) -> Option<u64> {
    gpa.checked_sub(crb::BASE)
        .filter(|&offset| offset < crb::WINDOW)
}

/// A guest read at `gpa`, if it is the TPM's.
pub fn mmio_read(gpa: u64, size: u8) -> Option<u64> {
    let offset = window_offset(gpa)?;
    with_running(|crb| crb.0.read(offset, size))
}

/// A guest write at `gpa`; false if it is not the TPM's.
pub fn mmio_write(gpa: u64, size: u8, value: u64) -> bool {
    window_offset(gpa)
        .is_some_and(|offset| with_running(|crb| crb.0.write(offset, size, value)).is_some())
}

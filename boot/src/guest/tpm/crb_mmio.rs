//! x86_64: the guest reaches its TPM through the CRB registers at the PC's address, which
//! the svm and hv_vtl backends route the guest's MMIO to.

use devices::tpm::crb::{self, Crb};

use super::with_running;

/// The TPM behind its CRB registers.
pub(super) type Interface = Crb;

/// Where the guest finds it, for Parapet's log.
pub(super) const PLACE: &str = "at 0xfed40000 (CRB)";
const _: () = assert!(crb::BASE == 0xfed4_0000);

/// The offset of `gpa` in the CRB window, if it is there.
fn window_offset(gpa: u64) -> Option<u64> {
    gpa.checked_sub(crb::BASE)
        .filter(|&offset| offset < crb::WINDOW)
}

/// A guest read at `gpa`, if it is the TPM's.
pub fn mmio_read(gpa: u64, size: u8) -> Option<u64> {
    let offset = window_offset(gpa)?;
    with_running(|crb| crb.read(offset, size))
}

/// A guest write at `gpa`; false if it is not the TPM's.
pub fn mmio_write(gpa: u64, size: u8, value: u64) -> bool {
    window_offset(gpa)
        .is_some_and(|offset| with_running(|crb| crb.write(offset, size, value)).is_some())
}

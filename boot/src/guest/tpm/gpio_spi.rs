//! aarch64: the guest reaches its TPM on an SPI bus bit-banged through a PL061's pins
//! (`devices::gpio_spi`), the TPM speaking the FIFO interface's SPI protocol
//! (`devices::tpm::tis_spi`). The GPIO lives with the TPM, under the TPM's lock: a write
//! that clocks the bus may run a TPM command (seconds, for an RSA key), and the el2 backend
//! takes its shared devices' lock only for the GPIO's interrupt line after.

use devices::gpio_spi::GpioSpi;
use devices::tpm::tis_spi::TisSpi;
use devices::tpm::Tpm;

use super::with_running;

/// The PL061 and the TPM on its bus.
pub(super) struct Interface {
    bus: GpioSpi,
    spi: TisSpi,
}

impl Interface {
    pub(super) fn new(tpm: Tpm) -> Self {
        Self {
            bus: GpioSpi::new(),
            spi: TisSpi::new(tpm),
        }
    }

    pub(super) fn tpm_mut(&mut self) -> &mut Tpm {
        self.spi.tpm_mut()
    }
}

/// Where the guest finds it, for Parapet's log.
pub(super) const PLACE: &str = "on SPI through the PL061 (FIFO interface)";

/// A guest access at `offset` in the PL061's frame: `write` for a write (the value's low
/// byte), `None` for a read. Gives the value read (0 for a write) and the PL061's interrupt
/// line after it, or `None` when the guest has no TPM and so no PL061.
pub fn gpio_access(offset: u64, write: Option<u64>) -> Option<(u64, bool)> {
    with_running(|tpm| {
        let value = match write {
            Some(value) => {
                tpm.bus.write(offset, value as u32, &mut tpm.spi);
                0
            }
            None => u64::from(tpm.bus.read(offset)),
        };
        (value, tpm.bus.interrupt_asserted())
    })
}

//! aarch64: how the guest reaches its TPM, chosen by `parapet.tpm=` on Parapet's command line,
//! each with its device-tree node (`abi::arm64_boot::TpmInterface`):
//!
//! - `spi` (the default): an SPI bus bit-banged through a PL061's pins (`devices::gpio_spi`),
//!   the TPM speaking the FIFO interface's SPI protocol (`devices::tpm::tis_spi`). Kernels
//!   with `tpm_tis_spi` and `spi-gpio` take it, Debian's arm64 kernel among them (as
//!   modules), which has no other driver a device tree can bind.
//! - `tis-mmio`: the FIFO interface's registers in memory (`devices::tpm::tis`), for kernels
//!   with `tpm_tis` (CONFIG_TCG_TIS): an MMIO exit per register access instead of a few per
//!   bus bit.
//!
//! The GPIO lives with the TPM, under the TPM's lock: a write that clocks the bus may run a
//! TPM command (seconds, for an RSA key), and the el2 backend takes its shared devices' lock
//! only for the GPIO's interrupt line after.

use devices::gpio_spi::GpioSpi;
use devices::tpm::tis::Tis;
use devices::tpm::tis_spi::TisSpi;
use devices::tpm::Tpm;

use super::with_running;

/// Which interface the guest gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    GpioSpi,
    TisMmio,
}

impl Kind {
    /// The kind `parapet.tpm=` asks for; `None` for `off`.
    pub(super) fn from_option(option: Option<&str>) -> Option<Self> {
        match option {
            Some("off") => None,
            None | Some("on" | "spi") => Some(Self::GpioSpi),
            Some("tis-mmio") => Some(Self::TisMmio),
            Some(other) => {
                log::warn!("tpm: parapet.tpm={other} is not off, spi or tis-mmio; using spi");
                Some(Self::GpioSpi)
            }
        }
    }

    /// Where the guest finds it, for Parapet's log.
    pub(super) fn place(self) -> &'static str {
        match self {
            Self::GpioSpi => "on SPI through the PL061 (FIFO interface)",
            Self::TisMmio => "at its FIFO interface's registers (tcg,tpm-tis-mmio)",
        }
    }
}

/// The TPM behind the interface of its kind.
pub(super) enum Interface {
    GpioSpi { bus: GpioSpi, spi: TisSpi },
    TisMmio(Tis),
}

impl Interface {
    pub(super) fn new(tpm: Tpm, kind: Kind) -> Self {
        match kind {
            Kind::GpioSpi => Self::GpioSpi {
                bus: GpioSpi::new(),
                spi: TisSpi::new(tpm),
            },
            Kind::TisMmio => Self::TisMmio(Tis::new(tpm)),
        }
    }

    pub(super) fn tpm_mut(&mut self) -> &mut Tpm {
        match self {
            Self::GpioSpi { spi, .. } => spi.tpm_mut(),
            Self::TisMmio(tis) => tis.tpm_mut(),
        }
    }

    pub(super) fn kind(&self) -> Kind {
        match self {
            Self::GpioSpi { .. } => Kind::GpioSpi,
            Self::TisMmio(_) => Kind::TisMmio,
        }
    }
}

/// A guest access at `offset` in the PL061's frame: `write` for a write (the value's low
/// byte), `None` for a read. Gives the value read (0 for a write) and the PL061's interrupt
/// line after it, or `None` when the guest has no TPM on the PL061 and so no PL061.
pub fn gpio_access(offset: u64, write: Option<u64>) -> Option<(u64, bool)> {
    with_running(|interface| {
        let Interface::GpioSpi { bus, spi } = interface else {
            return None;
        };
        let value = match write {
            Some(value) => {
                bus.write(offset, value as u32, spi);
                0
            }
            None => u64::from(bus.read(offset)),
        };
        Some((value, bus.interrupt_asserted()))
    })
    .flatten()
}

/// A guest access of `size` bytes (1 to 8) at `offset` in the memory-mapped TPM's window:
/// `write` for a write, `None` for a read. Gives the value read (0 for a write), little-endian
/// as the bus carries it, or `None` when the guest has no memory-mapped TPM.
pub fn tis_mmio_access(offset: u64, size: u8, write: Option<u64>) -> Option<u64> {
    let size = usize::from(size.clamp(1, 8));
    let address = u32::try_from(offset).ok()?;
    with_running(|interface| {
        let Interface::TisMmio(tis) = interface else {
            return None;
        };
        let mut bytes = [0u8; 8];
        match write {
            Some(value) => {
                bytes.copy_from_slice(&value.to_le_bytes());
                tis.write(address, &bytes[..size]);
                Some(0)
            }
            None => {
                tis.read(address, &mut bytes[..size]);
                Some(u64::from_le_bytes(bytes))
            }
        }
    })
    .flatten()
}

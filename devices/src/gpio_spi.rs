//! An SPI bus on a PL061's pins, the way boards without an SPI controller wire one and
//! Linux's `spi-gpio` drives it: pin 0 the clock, 1 MOSI, 2 MISO, 3 chip select (active
//! low), with pull-ups on every pin, so an undriven chip select leaves the device
//! deselected and an undriven MISO reads high.
//!
//! Each guest access goes to the PL061; after a write the bus levels go to [`SpiWires`],
//! which clocks bytes to the device, and the device's MISO level goes back to the pin.

use crate::pl061::Pl061;
use crate::spi_wires::{Levels, SpiTarget, SpiWires};

/// The pins' roles, as the device tree's `spi-gpio` node names them.
pub mod pins {
    pub const CLOCK: u8 = 0;
    pub const MOSI: u8 = 1;
    pub const MISO: u8 = 2;
    pub const CHIP_SELECT: u8 = 3;
}

/// Every pin is pulled up.
const PULL_UPS: u8 = 0xff;

pub struct GpioSpi {
    gpio: Pl061,
    wires: SpiWires,
}

impl Default for GpioSpi {
    fn default() -> Self {
        Self::new()
    }
}

impl GpioSpi {
    pub fn new() -> Self {
        Self {
            gpio: Pl061::new(PULL_UPS),
            wires: SpiWires::new(),
        }
    }

    /// A read at `offset` in the PL061's frame.
    pub fn read(&self, offset: u64) -> u32 {
        self.gpio.read(offset)
    }

    /// A write at `offset` in the PL061's frame, with `device` on the bus.
    pub fn write(&mut self, offset: u64, value: u32, device: &mut (impl SpiTarget + ?Sized)) {
        self.gpio.write(offset, value);
        let pins = self.gpio.pins();
        let level = |pin: u8| pins & (1 << pin) != 0;
        let levels = Levels {
            selected: !level(pins::CHIP_SELECT),
            clock: level(pins::CLOCK),
            mosi: level(pins::MOSI),
        };
        let miso = self.wires.update(device, levels);
        let external = (PULL_UPS & !(1 << pins::MISO)) | (u8::from(miso) << pins::MISO);
        self.gpio.set_external(external);
    }

    /// Whether the PL061's interrupt line is asserted.
    pub fn interrupt_asserted(&self) -> bool {
        self.gpio.interrupt_asserted()
    }
}

#[cfg(all(test, feature = "tpm"))]
mod tests {
    use super::*;
    use crate::pl061::registers;
    use crate::tpm::tis_spi::TisSpi;
    use crate::tpm::Tpm;

    /// Linux's spi-gpio on gpio-pl061: pins set one at a time through their GPIODATA mask
    /// address, MISO read the same way.
    struct Linux<'a> {
        bus: &'a mut GpioSpi,
        tpm: &'a mut TisSpi,
    }

    impl Linux<'_> {
        fn set(&mut self, pin: u8, level: bool) {
            self.bus
                .write(4 << pin, u32::from(level) << pin, &mut *self.tpm);
        }

        fn miso(&self) -> bool {
            self.bus.read(4 << pins::MISO) != 0
        }

        /// One chip-select assertion: every byte of `mosi` out, MISO's bytes back.
        fn transfer(&mut self, mosi: &[u8]) -> Vec<u8> {
            self.set(pins::CLOCK, false);
            self.set(pins::CHIP_SELECT, false);
            let mut miso = Vec::new();
            for &byte in mosi {
                let mut read = 0u8;
                for bit in (0..8).rev() {
                    self.set(pins::MOSI, byte & (1 << bit) != 0);
                    self.set(pins::CLOCK, true);
                    read = (read << 1) | u8::from(self.miso());
                    self.set(pins::CLOCK, false);
                }
                miso.push(read);
            }
            self.set(pins::CHIP_SELECT, true);
            miso
        }
    }

    #[test]
    fn a_tpm_command_runs_bit_banged_through_the_gpio() {
        let mut bus = GpioSpi::new();
        let mut tpm = TisSpi::new(Tpm::new([9; 32]));
        // gpio-pl061's direction_output: the level first, then the direction.
        for (pin, level) in [(pins::CLOCK, 0), (pins::MOSI, 0), (pins::CHIP_SELECT, 1)] {
            bus.write(4 << pin, level << pin, &mut tpm);
        }
        bus.write(registers::DIR, 0b1011, &mut tpm);
        let mut linux = Linux {
            bus: &mut bus,
            tpm: &mut tpm,
        };
        // TPM_DID_VID_0, four bytes: header, then the data.
        let did_vid = linux.transfer(&[0x83, 0xd4, 0x0f, 0x00, 0, 0, 0, 0]);
        assert_eq!(did_vid, [0, 0, 0, 1, 0xff, 0xff, 0x01, 0x00]);
        // Locality 0, commandReady, TPM2_Startup(SU_CLEAR), tpmGo, the response.
        linux.transfer(&[0x00, 0xd4, 0x00, 0x00, 0x02]);
        linux.transfer(&[0x00, 0xd4, 0x00, 0x18, 0x40]);
        let mut startup = vec![0x0b, 0xd4, 0x00, 0x24];
        startup.extend([0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0]);
        linux.transfer(&startup);
        linux.transfer(&[0x00, 0xd4, 0x00, 0x18, 0x20]);
        let response = linux.transfer(&[0x89, 0xd4, 0x00, 0x24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&response[4..], [0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0]);
        assert!(tpm.tpm_mut().is_started());
    }
}

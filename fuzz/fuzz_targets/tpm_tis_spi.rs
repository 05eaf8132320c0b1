//! The TPM's FIFO interface on its SPI bus (devices::tpm::tis_spi) under any byte stream a
//! controller can send, and the same bus bit-banged through the PL061 (devices::gpio_spi)
//! under any register writes.
//!
//! The input is a list of operations, each a kind byte and then:
//! - kind 0 (mod 4): chip select asserted;
//! - kind 1: chip select released;
//! - kind 2: a length byte `n`, then `n` bytes clocked across the bus, each after taking
//!   the TPM's next byte (headers, register data and FIFO bytes all come this way);
//! - kind 3: a PL061 write: offset (u16 LE) and value byte, to a second TPM on the GPIO bus,
//!   followed by a read at the same offset.
//!
//! Nothing may panic; with chip select released the TPM drives nothing (MISO reads 0xFF).
#![no_main]

use libfuzzer_sys::fuzz_target;
use parapet_devices::gpio_spi::GpioSpi;
use parapet_devices::spi_wires::SpiTarget;
use parapet_devices::tpm::tis_spi::TisSpi;
use parapet_devices::tpm::Tpm;

fuzz_target!(|data: &[u8]| {
    let mut spi = TisSpi::new(Tpm::new([0x5a; 32]));
    let (mut bus, mut behind_bus) = (GpioSpi::new(), TisSpi::new(Tpm::new([0xa5; 32])));
    let mut selected = false;
    let mut input = data;
    while let Some((&kind, rest)) = input.split_first() {
        input = rest;
        match kind % 4 {
            0 => {
                spi.select();
                selected = true;
            }
            1 => {
                spi.deselect();
                selected = false;
            }
            2 => {
                let Some((&n, rest)) = input.split_first() else { break };
                let n = usize::from(n).min(rest.len());
                let (bytes, rest) = rest.split_at(n);
                input = rest;
                for &byte in bytes {
                    let out = spi.next_out();
                    assert!(selected || out == 0xff, "MISO driven while deselected");
                    spi.receive(byte);
                }
            }
            _ => {
                let [low, high, value, ..] = *input else { break };
                input = &input[3..];
                let offset = u64::from(u16::from_le_bytes([low, high]));
                bus.write(offset, u32::from(value), &mut behind_bus);
                let _ = bus.read(offset);
            }
        }
    }
});

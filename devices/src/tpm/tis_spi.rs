//! The FIFO interface over SPI: the byte protocol of a TPM on an SPI bus (PTP §6.4.6, "SPI
//! Bit Protocol", and §6.4.6.1's flow control), as the TPM side of the bus sees it.
//!
//! A transaction is one chip-select assertion. Its first four bytes from the controller are
//! a header: byte 0 is bit 7 = read (1) or write (0), bits 5:0 = the transfer's size less one
//! (1 to 64 bytes); bytes 1-3 are the 24-bit register address, 0xD4_0000 plus the locality's
//! page and offset (PTP Table 17). The TPM drives the wait state into the last header byte's
//! bit 0: 1 means "no wait", which this TPM always gives, since it answers at once. Then
//! `size` data bytes follow: the register's bytes from the TPM for a read, to it for a write.
//!
//! Since the TPM must put each byte on MISO before the controller clocks it, the interface
//! is `SpiTarget`'s pair: `next_out` gives the byte to shift out next, `receive` takes the
//! byte that came in meanwhile.

use alloc::vec::Vec;

use super::tis::Tis;
use super::Tpm;
use crate::spi_wires::SpiTarget;

/// The header's length; its 6-bit size field asks for at most 64 bytes.
const HEADER: usize = 4;
/// The TPM's registers are at 0xD4_0000-0xD4_FFFF on the bus (PTP Table 17).
const ADDRESS_PREFIX: u8 = 0xd4;
/// Bit 7 of the header's first byte: a read.
const READ: u8 = 0x80;
/// The last header byte's bit 0 as the TPM drives it: no wait state.
const NO_WAIT: u8 = 0x01;

/// Where a transaction is.
#[derive(Debug)]
enum Transfer {
    /// Taking the header's bytes.
    Header(Vec<u8>),
    /// Shifting out a read's bytes, the next at `next`.
    Reading { data: Vec<u8>, next: usize },
    /// Taking a write's bytes for `address`.
    Writing {
        address: u32,
        size: usize,
        data: Vec<u8>,
    },
    /// The transfer is over (its size reached): further bytes are ignored.
    Done,
}

/// A TPM on an SPI bus.
pub struct TisSpi {
    tis: Tis,
    /// The transaction under way, while chip select is asserted.
    transfer: Option<Transfer>,
    /// Writes cut short by chip select, which the TPM drops whole: counted.
    dropped_writes: u64,
}

impl TisSpi {
    pub fn new(tpm: Tpm) -> Self {
        Self {
            tis: Tis::new(tpm),
            transfer: None,
            dropped_writes: 0,
        }
    }

    pub fn tpm_mut(&mut self) -> &mut Tpm {
        self.tis.tpm_mut()
    }

    pub fn dropped_writes(&self) -> u64 {
        self.dropped_writes
    }

    /// A whole header: a read is done now, its bytes shifted out next; a write waits for
    /// its bytes.
    fn start(&mut self, header: &[u8]) -> Transfer {
        let size = usize::from(header[0] & 0x3f) + 1;
        if header[1] != ADDRESS_PREFIX {
            // Not the TPM's address range: nothing drives MISO, and writes go nowhere.
            return Transfer::Done;
        }
        let address = u32::from_be_bytes([0, header[1], header[2], header[3]]);
        if header[0] & READ != 0 {
            let mut data = alloc::vec![0; size];
            self.tis.read(address, &mut data);
            Transfer::Reading { data, next: 0 }
        } else {
            Transfer::Writing {
                address,
                size,
                data: Vec::with_capacity(size),
            }
        }
    }
}

impl SpiTarget for TisSpi {
    /// Chip select asserted: a transaction begins.
    fn select(&mut self) {
        self.transfer = Some(Transfer::Header(Vec::with_capacity(HEADER)));
    }

    /// Chip select released: the transaction ends. A write that did not get all its bytes
    /// is dropped whole, so no register sees half a write.
    fn deselect(&mut self) {
        if let Some(Transfer::Writing { .. }) = self.transfer {
            self.dropped_writes += 1;
        }
        self.transfer = None;
    }

    /// The byte the TPM puts on MISO for the controller's next byte.
    fn next_out(&self) -> u8 {
        match &self.transfer {
            Some(Transfer::Header(bytes)) if bytes.len() == HEADER - 1 => NO_WAIT,
            Some(Transfer::Header(_)) => 0,
            Some(Transfer::Reading { data, next }) => data.get(*next).copied().unwrap_or(0xff),
            _ => 0xff,
        }
    }

    /// The byte the controller sent on MOSI while [`next_out`](SpiTarget::next_out)'s went out.
    /// Bytes without a transaction (chip select not asserted) are not the TPM's.
    fn receive(&mut self, byte: u8) {
        let Some(transfer) = self.transfer.take() else {
            return;
        };
        self.transfer = Some(match transfer {
            Transfer::Header(mut bytes) => {
                bytes.push(byte);
                if bytes.len() < HEADER {
                    Transfer::Header(bytes)
                } else {
                    self.start(&bytes)
                }
            }
            Transfer::Reading { data, next } => {
                // The controller's bytes during a read are don't-cares.
                if next + 1 < data.len() {
                    Transfer::Reading {
                        data,
                        next: next + 1,
                    }
                } else {
                    Transfer::Done
                }
            }
            Transfer::Writing {
                address,
                size,
                mut data,
            } => {
                data.push(byte);
                if data.len() < size {
                    Transfer::Writing {
                        address,
                        size,
                        data,
                    }
                } else {
                    self.tis.write(address, &data);
                    Transfer::Done
                }
            }
            Transfer::Done => Transfer::Done,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One transaction: what came back on MISO for each byte of `mosi`.
    fn transact(spi: &mut TisSpi, mosi: &[u8]) -> Vec<u8> {
        spi.select();
        let miso = mosi
            .iter()
            .map(|&byte| {
                let out = spi.next_out();
                spi.receive(byte);
                out
            })
            .collect();
        spi.deselect();
        miso
    }

    /// Linux's tpm_tis_spi: a header, then the data, in one chip-select assertion.
    fn read(spi: &mut TisSpi, address: u16, len: usize) -> Vec<u8> {
        let [high, low] = address.to_be_bytes();
        let mut mosi = vec![READ | (len as u8 - 1), ADDRESS_PREFIX, high, low];
        mosi.resize(HEADER + len, 0);
        let miso = transact(spi, &mosi);
        assert_eq!(miso[3] & 1, NO_WAIT, "no wait state");
        miso[HEADER..].to_vec()
    }

    fn write(spi: &mut TisSpi, address: u16, data: &[u8]) {
        let [high, low] = address.to_be_bytes();
        let mut mosi = vec![data.len() as u8 - 1, ADDRESS_PREFIX, high, low];
        mosi.extend_from_slice(data);
        transact(spi, &mosi);
    }

    #[test]
    fn a_command_runs_through_spi_frames() {
        let mut spi = TisSpi::new(Tpm::new([3; 32]));
        assert_eq!(read(&mut spi, 0xf00, 4), [0xff, 0xff, 0x01, 0x00]);
        write(&mut spi, 0x0000, &[0x02]);
        assert_eq!(read(&mut spi, 0x0000, 1)[0] & 0xa0, 0xa0, "valid, active");
        write(&mut spi, 0x0018, &[0x40]);
        let startup = [0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0];
        write(&mut spi, 0x0024, &startup[..11]);
        assert_ne!(
            read(&mut spi, 0x0018, 1)[0] & 0x08,
            0,
            "expects the last byte"
        );
        write(&mut spi, 0x0024, &startup[11..]);
        write(&mut spi, 0x0018, &[0x20]);
        let status = u32::from_le_bytes(read(&mut spi, 0x0018, 4).try_into().unwrap());
        assert_ne!(status & 0x10, 0, "data available");
        assert_eq!(
            (status >> 8) & 0xffff,
            10,
            "burst count: the response's length"
        );
        assert_eq!(
            read(&mut spi, 0x0024, 10),
            [0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0]
        );
        assert!(spi.tpm_mut().is_started());
    }

    #[test]
    fn short_writes_foreign_addresses_and_stray_bytes_do_nothing() {
        let mut spi = TisSpi::new(Tpm::new([3; 32]));
        // A write cut short by chip select is dropped whole.
        transact(&mut spi, &[0x00, ADDRESS_PREFIX, 0x00]);
        transact(&mut spi, &[0x01, ADDRESS_PREFIX, 0x00, 0x00, 0x02]);
        assert_eq!(spi.dropped_writes(), 1);
        assert_eq!(read(&mut spi, 0x0000, 1)[0] & 0x20, 0, "no locality taken");
        // Outside 0xD4xxxx nothing drives MISO.
        let miso = transact(&mut spi, &[0x80, 0xd5, 0x0f, 0x00, 0]);
        assert_eq!(&miso[4..], &[0xff]);
        // Bytes with chip select released are not the TPM's.
        spi.receive(0x02);
        assert_eq!(spi.next_out(), 0xff);
        // Bytes past a transfer's size are ignored.
        let miso = transact(&mut spi, &[0x80, ADDRESS_PREFIX, 0x0f, 0x04, 0, 0, 0]);
        assert_eq!(&miso[4..], &[0x01, 0xff, 0xff]);
    }
}

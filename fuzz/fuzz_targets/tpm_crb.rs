//! The TPM's CRB registers (devices::tpm::crb) under any sequence of guest accesses.
//!
//! The input is a list of operations, each `kind, size, offset (u16 LE)` and then:
//! - kind 0 (mod 3): a read of `size` bytes at `offset`;
//! - kind 1: a write of the next 8 bytes (u64 LE), `size` bytes of them, at `offset`;
//! - kind 2: a block write, the way a driver fills the data buffer: a length byte `n`, then
//!   `n` bytes written 4 at a time from `offset` (the last write may be shorter).
//!
//! Offsets reach past the five locality pages, sizes are any byte (the model clamps them).
//! A START write (0x4c, bit 0) runs whatever the buffer holds. Nothing may panic, and a read
//! of `size` bytes gives no more than that many.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parapet_devices::tpm::crb::Crb;
use parapet_devices::tpm::Tpm;

fuzz_target!(|data: &[u8]| {
    let mut crb = Crb::new(Tpm::new([0x3c; 32]));
    let mut input = Input(data);
    while let (Some(kind), Some(size), Some(offset)) = (input.u8(), input.u8(), input.u16()) {
        let offset = u64::from(offset);
        match kind % 3 {
            0 => {
                let value = crb.read(offset, size);
                let bits = 8 * u32::from(size.clamp(1, 8));
                assert!(
                    bits == 64 || value >> bits == 0,
                    "{size}-byte read gave {value:#x}"
                );
            }
            1 => {
                let Some(value) = input.u64() else { break };
                crb.write(offset, size, value);
            }
            _ => {
                let Some(n) = input.u8() else { break };
                let Some(block) = input.take(usize::from(n)) else {
                    break;
                };
                for (i, chunk) in block.chunks(4).enumerate() {
                    let mut word = [0u8; 8];
                    word[..chunk.len()].copy_from_slice(chunk);
                    let at = offset + 4 * i as u64;
                    crb.write(at, chunk.len() as u8, u64::from_le_bytes(word));
                }
            }
        }
    }
});

/// The fuzzer's bytes, taken from the front.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

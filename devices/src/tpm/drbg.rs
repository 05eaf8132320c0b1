//! The TPM's random number generator: HMAC_DRBG with SHA-256 (NIST SP 800-90A Rev. 1
//! §10.1.2), on RustCrypto's `hmac`. TPM 2.0 Part 1 §11.4.10 asks for an SP 800-90A DRBG
//! seeded from an entropy source; here the entropy comes from the caller ([`super::Tpm::new`],
//! [`super::Tpm::reseed`]), and TPM2_StirRandom feeds the DRBG as additional input.
//!
//! The state is two 32-octet values and a counter, so it serialises with the rest of the
//! TPM. SP 800-90A's reseed interval for HMAC_DRBG is 2^48 requests; the TPM makes at most a
//! few per command, so the counter cannot get there in the TPM's life and is only kept.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const OUTLEN: usize = 32;
/// SHA-256's block size: HMAC pads a shorter key with zeros to this (FIPS 198-1 §4, step 2),
/// so the 32-octet Key is handed over already padded and the key setup cannot fail.
const BLOCK: usize = 64;

/// `Debug` shows only the reseed counter.
#[derive(Clone, PartialEq, Eq)]
pub struct HmacDrbg {
    key: [u8; OUTLEN],
    v: [u8; OUTLEN],
    reseed_counter: u64,
}

impl core::fmt::Debug for HmacDrbg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HmacDrbg")
            .field("reseed_counter", &self.reseed_counter)
            .finish_non_exhaustive()
    }
}

impl HmacDrbg {
    fn hmac(key: &[u8; OUTLEN], parts: &[&[u8]]) -> [u8; OUTLEN] {
        let mut padded = [0u8; BLOCK];
        padded[..OUTLEN].copy_from_slice(key);
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&padded.into());
        for part in parts {
            mac.update(part);
        }
        let mut out = [0; OUTLEN];
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// HMAC_DRBG_Update (§10.1.2.2) with provided_data = the concatenation of `data`.
    fn update(&mut self, data: &[&[u8]]) {
        let empty = data.iter().all(|d| d.is_empty());
        for round in [0u8, 1] {
            let mut parts: [&[u8]; 6] = [&[]; 6];
            parts[0] = &self.v;
            parts[1] = core::slice::from_ref(&round);
            for (slot, d) in parts[2..].iter_mut().zip(data) {
                *slot = d;
            }
            self.key = Self::hmac(&self.key, &parts);
            self.v = Self::hmac(&self.key, &[&self.v]);
            if empty {
                break;
            }
        }
    }

    /// Instantiate (§10.1.2.3): seed_material = entropy_input || nonce ||
    /// personalization_string.
    pub fn new(entropy: &[u8], nonce: &[u8], personalization: &[u8]) -> Self {
        let mut drbg = Self {
            key: [0x00; OUTLEN],
            v: [0x01; OUTLEN],
            reseed_counter: 1,
        };
        drbg.update(&[entropy, nonce, personalization]);
        drbg
    }

    /// Reseed (§10.1.2.4): seed_material = entropy_input || additional_input.
    pub fn reseed(&mut self, entropy: &[u8], additional: &[u8]) {
        self.update(&[entropy, additional]);
        self.reseed_counter = 1;
    }

    /// Generate (§10.1.2.5) `out.len()` octets. Requests here are at most a few dozen octets,
    /// far under the 2^19-bit limit per request.
    pub fn generate(&mut self, out: &mut [u8], additional: &[u8]) {
        if !additional.is_empty() {
            self.update(&[additional]);
        }
        for chunk in out.chunks_mut(OUTLEN) {
            self.v = Self::hmac(&self.key, &[&self.v]);
            chunk.copy_from_slice(&self.v[..chunk.len()]);
        }
        self.update(&[additional]);
        self.reseed_counter = self.reseed_counter.saturating_add(1);
    }

    /// The state as (Key, V, reseed_counter), for serialisation.
    pub fn state(&self) -> ([u8; OUTLEN], [u8; OUTLEN], u64) {
        (self.key, self.v, self.reseed_counter)
    }

    pub fn from_state(key: [u8; OUTLEN], v: [u8; OUTLEN], reseed_counter: u64) -> Self {
        Self {
            key,
            v,
            reseed_counter,
        }
    }

    /// Known answer: NIST CAVP `HMAC_DRBG.rsp` (drbgtestvectors, no reseed), [SHA-256],
    /// PersonalizationStringLen = 0, AdditionalInputLen = 0, COUNT = 0: instantiate, generate
    /// 1024 bits twice, the second output is ReturnedBits. Its first 32 octets are checked.
    pub fn self_test() -> bool {
        const ENTROPY: [u8; 32] = [
            0xca, 0x85, 0x19, 0x11, 0x34, 0x93, 0x84, 0xbf, 0xfe, 0x89, 0xde, 0x1c, 0xbd, 0xc4,
            0x6e, 0x68, 0x31, 0xe4, 0x4d, 0x34, 0xa4, 0xfb, 0x93, 0x5e, 0xe2, 0x85, 0xdd, 0x14,
            0xb7, 0x1a, 0x74, 0x88,
        ];
        const NONCE: [u8; 16] = [
            0x65, 0x9b, 0xa9, 0x6c, 0x60, 0x1d, 0xc6, 0x9f, 0xc9, 0x02, 0x94, 0x08, 0x05, 0xec,
            0x0c, 0xa8,
        ];
        const RETURNED: [u8; 32] = [
            0xe5, 0x28, 0xe9, 0xab, 0xf2, 0xde, 0xce, 0x54, 0xd4, 0x7c, 0x7e, 0x75, 0xe5, 0xfe,
            0x30, 0x21, 0x49, 0xf8, 0x17, 0xea, 0x9f, 0xb4, 0xbe, 0xe6, 0xf4, 0x19, 0x96, 0x97,
            0xd0, 0x4d, 0x5b, 0x89,
        ];
        let mut drbg = Self::new(&ENTROPY, &NONCE, &[]);
        let mut out = [0u8; 128];
        drbg.generate(&mut out, &[]);
        drbg.generate(&mut out, &[]);
        out[..32] == RETURNED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> alloc::vec::Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn matches_the_nist_cavp_vector_in_full() {
        let mut drbg = HmacDrbg::new(
            &hex("ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488"),
            &hex("659ba96c601dc69fc902940805ec0ca8"),
            &[],
        );
        let mut out = [0u8; 128];
        drbg.generate(&mut out, &[]);
        drbg.generate(&mut out, &[]);
        assert_eq!(
            out.to_vec(),
            hex(concat!(
                "e528e9abf2dece54d47c7e75e5fe302149f817ea9fb4bee6f4199697d04d5b89",
                "d54fbb978a15b5c443c9ec21036d2460b6f73ebad0dc2aba6e624abf07745bc1",
                "07694bb7547bb0995f70de25d6b29e2d3011bb19d27676c07162c8b5ccde0668",
                "961df86803482cb37ed6d5c0bb8d50cf1f50d476aa0458bdaba806f48be9dcb8",
            ))
        );
        assert!(HmacDrbg::self_test());
    }

    #[test]
    fn additional_input_and_reseed_change_the_stream_and_state_round_trips() {
        let base = HmacDrbg::new(&[7; 32], b"", b"label");
        let (mut a, mut b, mut c) = (base.clone(), base.clone(), base.clone());
        let (mut x, mut y, mut z) = ([0u8; 40], [0u8; 40], [0u8; 40]);
        a.generate(&mut x, b"");
        b.generate(&mut y, b"stir");
        c.reseed(&[9; 32], b"");
        c.generate(&mut z, b"");
        assert_ne!(x, y);
        assert_ne!(x, z);
        let (k, v, n) = a.state();
        assert_eq!(HmacDrbg::from_state(k, v, n), a);
        assert_eq!(n, 2);
    }
}

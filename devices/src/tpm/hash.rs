//! The hash algorithms this TPM implements (SHA-1, SHA-256, SHA-384: one PCR bank each) on
//! RustCrypto's `sha1` and `sha2`, and their known-answer self-tests.

use alloc::vec::Vec;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Sha256, Sha384};

use super::constants::{TPM_ALG_SHA1, TPM_ALG_SHA256, TPM_ALG_SHA384};

/// The largest digest, SHA-384's: sizeof(TPMU_HA), hence TPM_PT_MAX_DIGEST and the bound of
/// TPM2B_DIGEST, TPM2B_NONCE and TPM2B_AUTH (Part 2 §10.4).
pub const MAX_DIGEST_SIZE: usize = 48;

/// An implemented hash algorithm (TPMI_ALG_HASH without TPM_ALG_NULL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
}

impl HashAlg {
    /// Every implemented hash in TPM_ALG_ID order: the PCR banks, GetCapability's order.
    pub const ALL: [HashAlg; 3] = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384];

    pub fn from_alg_id(id: u16) -> Option<Self> {
        match id {
            TPM_ALG_SHA1 => Some(Self::Sha1),
            TPM_ALG_SHA256 => Some(Self::Sha256),
            TPM_ALG_SHA384 => Some(Self::Sha384),
            _ => None,
        }
    }

    pub fn alg_id(self) -> u16 {
        match self {
            Self::Sha1 => TPM_ALG_SHA1,
            Self::Sha256 => TPM_ALG_SHA256,
            Self::Sha384 => TPM_ALG_SHA384,
        }
    }

    /// Position in [`HashAlg::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Sha1 => 0,
            Self::Sha256 => 1,
            Self::Sha384 => 2,
        }
    }

    pub fn digest_size(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
        }
    }

    /// The digest of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Digest {
        fn run<D: sha2::Digest>(parts: &[&[u8]], out: &mut [u8]) {
            let mut d = D::new();
            for part in parts {
                d.update(part);
            }
            out.copy_from_slice(&d.finalize());
        }
        let mut out = Digest {
            bytes: [0; MAX_DIGEST_SIZE],
            alg: self,
        };
        let size = self.digest_size();
        match self {
            Self::Sha1 => run::<Sha1>(parts, &mut out.bytes[..size]),
            Self::Sha256 => run::<Sha256>(parts, &mut out.bytes[..size]),
            Self::Sha384 => run::<Sha384>(parts, &mut out.bytes[..size]),
        }
        out
    }

    /// HMAC (RFC 2104, FIPS 198-1) with this hash, over the concatenation of `parts`.
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Digest {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], out: &mut [u8]) {
            // HMAC takes a key of any length: new_from_slice cannot fail for it.
            let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
                return;
            };
            for part in parts {
                mac.update(part);
            }
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        let mut out = Digest {
            bytes: [0; MAX_DIGEST_SIZE],
            alg: self,
        };
        let size = self.digest_size();
        match self {
            Self::Sha1 => run::<Hmac<Sha1>>(key, parts, &mut out.bytes[..size]),
            Self::Sha256 => run::<Hmac<Sha256>>(key, parts, &mut out.bytes[..size]),
            Self::Sha384 => run::<Hmac<Sha384>>(key, parts, &mut out.bytes[..size]),
        }
        out
    }

    /// FIPS 180-4 known answer: the digest of "abc" (NIST's SHA examples).
    pub fn self_test(self) -> bool {
        const SHA1_ABC: [u8; 20] = [
            0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
            0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d,
        ];
        const SHA256_ABC: [u8; 32] = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
            0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
            0xf2, 0x00, 0x15, 0xad,
        ];
        const SHA384_ABC: [u8; 48] = [
            0xcb, 0x00, 0x75, 0x3f, 0x45, 0xa3, 0x5e, 0x8b, 0xb5, 0xa0, 0x3d, 0x69, 0x9a, 0xc6,
            0x50, 0x07, 0x27, 0x2c, 0x32, 0xab, 0x0e, 0xde, 0xd1, 0x63, 0x1a, 0x8b, 0x60, 0x5a,
            0x43, 0xff, 0x5b, 0xed, 0x80, 0x86, 0x07, 0x2b, 0xa1, 0xe7, 0xcc, 0x23, 0x58, 0xba,
            0xec, 0xa1, 0x34, 0xc8, 0x25, 0xa7,
        ];
        let expected: &[u8] = match self {
            Self::Sha1 => &SHA1_ABC,
            Self::Sha256 => &SHA256_ABC,
            Self::Sha384 => &SHA384_ABC,
        };
        self.digest(&[b"a", b"bc"]).as_bytes() == expected
    }
}

/// A hash computation in progress (the state of a hash or event sequence object, Part 3
/// §17): data is fed in pieces and the digest taken at the end.
#[derive(Clone)]
pub enum Hasher {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
}

impl Hasher {
    pub fn new(alg: HashAlg) -> Self {
        use sha2::Digest as _;
        match alg {
            HashAlg::Sha1 => Self::Sha1(Sha1::new()),
            HashAlg::Sha256 => Self::Sha256(Sha256::new()),
            HashAlg::Sha384 => Self::Sha384(Sha384::new()),
        }
    }

    pub fn alg(&self) -> HashAlg {
        match self {
            Self::Sha1(_) => HashAlg::Sha1,
            Self::Sha256(_) => HashAlg::Sha256,
            Self::Sha384(_) => HashAlg::Sha384,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        use sha2::Digest as _;
        let alg = self.alg();
        let mut out = Digest {
            bytes: [0; MAX_DIGEST_SIZE],
            alg,
        };
        let size = alg.digest_size();
        match self {
            Self::Sha1(h) => out.bytes[..size].copy_from_slice(&h.finalize()),
            Self::Sha256(h) => out.bytes[..size].copy_from_slice(&h.finalize()),
            Self::Sha384(h) => out.bytes[..size].copy_from_slice(&h.finalize()),
        }
        out
    }

    /// The running state, as the hash crate serializes it (chaining value, length, and the
    /// buffered partial block), for a saved sequence context (`commands/context.rs`).
    pub fn export(&self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.serialize().to_vec(),
            Self::Sha256(h) => h.serialize().to_vec(),
            Self::Sha384(h) => h.serialize().to_vec(),
        }
    }

    /// The computation of `alg` whose state [`Hasher::export`] gave; `None` if `state` has
    /// the wrong length or does not decode (the crates check the buffered block's length),
    /// or counts 2^48 blocks or more: more than any sequence can take, and enough for the
    /// crates' bit length (8 × block size × count) to overflow when finishing.
    pub fn import(alg: HashAlg, state: &[u8]) -> Option<Self> {
        fn run<H: SerializableState>(state: &[u8]) -> Option<H> {
            H::deserialize(&SerializedState::<H>::try_from(state).ok()?).ok()
        }
        // The crates' layout: the chaining value, then the block count, little-endian, 8
        // octets (16 for SHA-384); then the buffered block.
        let (at, width) = match alg {
            HashAlg::Sha1 => (20, 8),
            HashAlg::Sha256 => (32, 8),
            HashAlg::Sha384 => (64, 16),
        };
        let count = state.get(at..at + width)?;
        if count.get(6..)?.iter().any(|&b| b != 0) {
            return None;
        }
        Some(match alg {
            HashAlg::Sha1 => Self::Sha1(run(state)?),
            HashAlg::Sha256 => Self::Sha256(run(state)?),
            HashAlg::Sha384 => Self::Sha384(run(state)?),
        })
    }
}

impl core::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Hasher({:?})", self.alg())
    }
}

/// Two computations are taken as equal when they have the same algorithm and would give the
/// same digest now (the hash crates do not compare their states; `Tpm` derives `PartialEq`).
impl PartialEq for Hasher {
    fn eq(&self, other: &Self) -> bool {
        self.alg() == other.alg() && self.clone().finish() == other.clone().finish()
    }
}

impl Eq for Hasher {}

/// A digest of one of the implemented algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    bytes: [u8; MAX_DIGEST_SIZE],
    alg: HashAlg,
}

impl Digest {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.alg.digest_size()]
    }

    pub fn alg(&self) -> HashAlg {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_pass() {
        for alg in HashAlg::ALL {
            assert!(alg.self_test(), "{alg:?}");
            assert_eq!(alg.digest(&[]).as_bytes().len(), alg.digest_size());
            assert_eq!(HashAlg::from_alg_id(alg.alg_id()), Some(alg));
            assert_eq!(HashAlg::ALL[alg.index()], alg);
        }
        assert_eq!(HashAlg::from_alg_id(0x0010), None, "TPM_ALG_NULL");
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = HashAlg::Sha256.hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac.as_bytes()[..8],
            [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]
        );
        assert_eq!(
            HashAlg::from_alg_id(0x000D),
            None,
            "SHA-512 is not implemented"
        );
    }

    #[test]
    fn hasher_state_round_trips_and_refuses_garbage() {
        for alg in HashAlg::ALL {
            let mut h = Hasher::new(alg);
            h.update(&[0x61; 200]);
            let state = h.export();
            // The block count where `import` checks it: 200 octets are 3 blocks of SHA-1
            // and SHA-256 (64 octets), 1 of SHA-384 (128).
            let (at, blocks) = [(20, 3), (32, 3), (64, 1)][alg.index()];
            assert_eq!(state[at..at + 8], u64::to_le_bytes(blocks), "{alg:?}");
            let mut back = Hasher::import(alg, &state).expect("round trip");
            back.update(b"tail");
            h.update(b"tail");
            assert_eq!(back.finish(), h.finish(), "{alg:?}");
            // Wrong lengths, another algorithm: refused.
            assert!(Hasher::import(alg, &state[1..]).is_none());
            assert!(Hasher::import(alg, &[state.as_slice(), &[0]].concat()).is_none());
            assert!(Hasher::import(alg, &[]).is_none());
            for other in HashAlg::ALL.into_iter().filter(|&o| o != alg) {
                assert!(Hasher::import(other, &state).is_none());
            }
            // Any octet set to 0xff: a hasher or None, never a panic.
            for at in 0..state.len() {
                let mut s = state.clone();
                s[at] = 0xff;
                if let Some(h) = Hasher::import(alg, &s) {
                    let _ = h.finish();
                }
            }
        }
    }
}

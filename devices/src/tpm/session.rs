//! Authorization sessions (Part 1 §19): the session slots TPM2_StartAuthSession fills and
//! TPM2_FlushContext empties, what each session holds, and KDFa (Part 1 §11.4.10.2), which
//! derives a bound session's sessionKey.
//!
//! Sessions are unsalted (tpmKey = TPM_RH_NULL: no objects exist to decrypt a salt). A
//! session bound to an entity has sessionKey = KDFa(authHash, bind.authValue, "ATH",
//! nonceTPM, nonceCaller, digest bits) (Part 1 §19.6.8); an unbound one has an empty
//! sessionKey. Session handles are HMAC_SESSION_FIRST / POLICY_SESSION_FIRST plus the slot
//! number. Sessions are volatile: _TPM_Init empties the slots (there is no ContextSave, so
//! no session outlives it), and the state blob (`state.rs`) does not carry them.

use alloc::vec::Vec;

use super::constants::{HMAC_SESSION_FIRST, MAX_LOADED_SESSIONS, POLICY_SESSION_FIRST};
use super::hash::{Digest, HashAlg};

/// KDFa (Part 1 §11.4.10.2): SP 800-108 KDF in counter mode with HMAC-`alg` as the PRF.
/// Block i (from 1) is HMAC(key, [i]₃₂ || label || 0x00 || contextU || contextV || [bits]₃₂);
/// the output is the first ⌈bits/8⌉ octets of the blocks, and when `bits` is not a multiple
/// of 8 the unused high bits of the first octet are cleared. `label` is given without its
/// terminating NUL, which KDFa always hashes.
pub fn kdfa(
    alg: HashAlg,
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let octets = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(octets + alg.digest_size());
    let mut counter: u32 = 0;
    while out.len() < octets {
        counter = counter.wrapping_add(1);
        let block: Digest = alg.hmac(
            key,
            &[
                &counter.to_be_bytes(),
                label,
                &[0],
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        );
        out.extend_from_slice(block.as_bytes());
    }
    out.truncate(octets);
    if !bits.is_multiple_of(8) {
        if let Some(first) = out.first_mut() {
            *first &= 0xFF >> (8 - bits % 8);
        }
    }
    out
}

/// TPM_SE (Part 3 §11.1): what kind of session StartAuthSession made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionType {
    Hmac,
    Policy,
    /// A policy session that only computes a policyDigest and cannot authorize.
    Trial,
}

/// The session's TPMT_SYM_DEF: TPM_ALG_NULL or AES-128-CFB. Parameter encryption is not
/// implemented: a command that sets decrypt or encrypt with an AES session is refused
/// (`auth.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symmetric {
    Null,
    Aes128Cfb,
}

/// One loaded session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub session_type: SessionType,
    pub auth_hash: HashAlg,
    pub symmetric: Symmetric,
    /// Empty for an unbound session.
    pub session_key: Vec<u8>,
    /// The bind entity's handle and its authValue at StartAuthSession (Part 4
    /// `ComputeBoundEntity` folds both into one value; a changed authValue ends the binding).
    pub bound: Option<(u32, Vec<u8>)>,
    /// nonceTPM, the size of an authHash digest; new for every command the session is used
    /// in.
    pub nonce_tpm: Vec<u8>,
    /// policyDigest (policy and trial sessions): starts as zeros.
    pub policy_digest: Vec<u8>,
    /// pcrUpdateCounter when PolicyPCR ran, if it did: the session fails authorization
    /// when the PCRs changed after it (TPM_RC_PCR_CHANGED).
    pub pcr_counter: Option<u32>,
}

impl Session {
    pub fn is_policy(&self) -> bool {
        self.session_type != SessionType::Hmac
    }
}

/// The session slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sessions {
    slots: [Option<Session>; MAX_LOADED_SESSIONS],
}

impl Sessions {
    /// The handle of the session in `slot`.
    fn handle(slot: usize, session: &Session) -> u32 {
        let first = if session.is_policy() {
            POLICY_SESSION_FIRST
        } else {
            HMAC_SESSION_FIRST
        };
        first + slot as u32
    }

    fn slot(&self, handle: u32) -> Option<usize> {
        let slot = (handle & 0x00FF_FFFF) as usize;
        match self.slots.get(slot) {
            Some(Some(s)) if Self::handle(slot, s) == handle => Some(slot),
            _ => None,
        }
    }

    pub fn get(&self, handle: u32) -> Option<&Session> {
        self.slot(handle).and_then(|s| self.slots[s].as_ref())
    }

    pub fn get_mut(&mut self, handle: u32) -> Option<&mut Session> {
        self.slot(handle).and_then(|s| self.slots[s].as_mut())
    }

    /// Loads `session` in the first free slot and returns its handle; `None` when every
    /// slot is taken (TPM_RC_SESSION_MEMORY).
    pub fn insert(&mut self, session: Session) -> Option<u32> {
        let slot = self.slots.iter().position(Option::is_none)?;
        let handle = Self::handle(slot, &session);
        self.slots[slot] = Some(session);
        Some(handle)
    }

    /// Flushes the session `handle`; whether it was loaded.
    pub fn remove(&mut self, handle: u32) -> bool {
        match self.slot(handle) {
            Some(slot) => {
                self.slots[slot] = None;
                true
            }
            None => false,
        }
    }

    /// The handles of the loaded sessions, by slot.
    pub fn handles(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| s.as_ref().map(|s| Self::handle(slot, s)))
    }

    /// How many sessions are loaded.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_full(&self) -> bool {
        self.slots.iter().all(Option::is_some)
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Sha256, Sha384};

    /// SP 800-108 counter mode written out from Part 1 §11.4.10.2 with the `hmac` crate
    /// directly: K(i) = HMAC(key, [i]32 || Label || 00 || Context || [L]32).
    fn reference_sha256(key: &[u8], label: &[u8], context: &[u8], bits: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 1u32..=bits.div_ceil(256) {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            mac.update(&i.to_be_bytes());
            mac.update(label);
            mac.update(&[0]);
            mac.update(context);
            mac.update(&bits.to_be_bytes());
            out.extend_from_slice(&mac.finalize().into_bytes());
        }
        out.truncate(bits.div_ceil(8) as usize);
        out
    }

    #[test]
    fn kdfa_is_sp800_108_counter_mode() {
        let key = [0x0b; 32];
        let (u, v) = ([1u8; 16], [2u8; 32]);
        let context = [&u[..], &v[..]].concat();
        for bits in [8, 128, 256, 257, 512, 1024] {
            let got = kdfa(HashAlg::Sha256, &key, b"ATH", &u, &v, bits);
            let mut want = reference_sha256(&key, b"ATH", &context, bits);
            if !bits.is_multiple_of(8) {
                want[0] &= 0xFF >> (8 - bits % 8);
            }
            assert_eq!(got, want, "{bits} bits");
        }
        // One block, by hand: HMAC-SHA256(key, 00000001 || "ATH" 00 || U || V || 00000100).
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(&[0, 0, 0, 1, b'A', b'T', b'H', 0]);
        mac.update(&u);
        mac.update(&v);
        mac.update(&[0, 0, 1, 0]);
        assert_eq!(
            kdfa(HashAlg::Sha256, &key, b"ATH", &u, &v, 256),
            mac.finalize().into_bytes().to_vec()
        );
        // 13 bits: two octets, the top three bits of the first cleared; the bit count is in
        // the PRF input, so it is not a prefix of the 16-bit output.
        let k13 = kdfa(HashAlg::Sha256, &key, b"CFB", &u, &v, 13);
        assert_eq!(k13.len(), 2);
        assert_eq!(k13[0] & 0xE0, 0);
        let k16 = kdfa(HashAlg::Sha256, &key, b"CFB", &u, &v, 16);
        assert_ne!(k13[1], k16[1]);
        // SHA-384 and an empty key (an unbound, unsalted session's KDFa input).
        let mut mac = <Hmac<Sha384> as KeyInit>::new_from_slice(&[]).unwrap();
        mac.update(&[0, 0, 0, 1, b'X', 0, 0, 0, 1, 0x80]);
        assert_eq!(
            kdfa(HashAlg::Sha384, &[], b"X", &[], &[], 384),
            mac.finalize().into_bytes().to_vec()
        );
        assert!(kdfa(HashAlg::Sha1, &key, b"", &[], &[], 0).is_empty());
    }
}

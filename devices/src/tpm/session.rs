//! Authorization sessions (Part 1 §19): the session slots TPM2_StartAuthSession fills and
//! TPM2_FlushContext empties, what each session holds, and KDFa (Part 1 §11.4.10.2), which
//! derives a bound session's sessionKey.
//!
//! Sessions are unsalted (tpmKey = TPM_RH_NULL: no objects exist to decrypt a salt). A
//! session bound to an entity has sessionKey = KDFa(authHash, bind.authValue, "ATH",
//! nonceTPM, nonceCaller, digest bits) (Part 1 §19.6.8); an unbound one has an empty
//! sessionKey. Session handles are HMAC_SESSION_FIRST / POLICY_SESSION_FIRST plus the slot
//! number. Sessions are volatile: _TPM_Init empties the slots, saved ones included (so a
//! context saved before it no longer loads: a simplification of Part 1 §30, where saved
//! session contexts survive TPM Restart and Resume), and the state blob (`state.rs`) does
//! not carry them. ContextSave/ContextLoad (`commands/context.rs`) move a session between
//! "loaded" and "saved" in its slot.

use alloc::vec::Vec;

use super::constants::{
    HMAC_SESSION_FIRST, MAX_LOADED_SESSIONS, POLICY_SESSION_FIRST, TPM_ALG_AES, TPM_ALG_NULL,
    TPM_SE_HMAC, TPM_SE_POLICY, TPM_SE_TRIAL,
};
use super::hash::{Digest, HashAlg, MAX_DIGEST_SIZE};
use super::marshal::{Reader, Writer};
use super::rc::{self, Rc};

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

/// What a session slot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Slot {
    #[default]
    Free,
    Loaded(Session),
    /// Saved by ContextSave (Part 1 §30.5): the session lives in the blob the caller holds;
    /// the slot keeps its handle and the context's sequence, and only a context with both
    /// loads it again (the reference implementation's contextArray entry).
    Saved {
        handle: u32,
        sequence: u64,
    },
}

/// The session slots. A slot is the session's handle number, whether the session is loaded
/// or saved: a saved session keeps its slot, so loading it back always has room, and active
/// sessions = loaded + saved ≤ MAX_LOADED_SESSIONS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sessions {
    slots: [Slot; MAX_LOADED_SESSIONS],
    /// gr.contextCounter: the sequence of the last saved context. The whole 64 bits are kept
    /// in the slot, so there is no context gap (TPM_RC_CONTEXT_GAP) to manage.
    context_counter: u64,
    /// Random octets drawn at the first ContextSave after _TPM_Init (or a state restore)
    /// and bound into every context integrity HMAC (`commands/context.rs`).
    epoch: Option<[u8; 16]>,
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
            Some(Slot::Loaded(s)) if Self::handle(slot, s) == handle => Some(slot),
            _ => None,
        }
    }

    pub fn get(&self, handle: u32) -> Option<&Session> {
        match self.slots.get(self.slot(handle)?) {
            Some(Slot::Loaded(s)) => Some(s),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, handle: u32) -> Option<&mut Session> {
        let slot = self.slot(handle)?;
        match self.slots.get_mut(slot) {
            Some(Slot::Loaded(s)) => Some(s),
            _ => None,
        }
    }

    /// Loads `session` in the first free slot and returns its handle; `None` when every
    /// slot is taken (see [`Sessions::no_room`]).
    pub fn insert(&mut self, session: Session) -> Option<u32> {
        let slot = self.slots.iter().position(|s| *s == Slot::Free)?;
        let handle = Self::handle(slot, &session);
        self.slots[slot] = Slot::Loaded(session);
        Some(handle)
    }

    /// Flushes the session `handle`, loaded or saved (Part 4 `TPM2_FlushContext`); whether
    /// there was one.
    pub fn remove(&mut self, handle: u32) -> bool {
        let slot = match self.slot(handle) {
            Some(slot) => slot,
            None if self.saved_sequence(handle).is_some() => (handle & 0x00FF_FFFF) as usize,
            None => return false,
        };
        self.slots[slot] = Slot::Free;
        true
    }

    /// The handles of the loaded sessions, by slot.
    pub fn handles(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| match s {
                Slot::Loaded(s) => Some(Self::handle(slot, s)),
                _ => None,
            })
    }

    /// The handles of the saved sessions, by slot.
    pub fn saved_handles(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter_map(|s| match s {
            Slot::Saved { handle, .. } => Some(*handle),
            _ => None,
        })
    }

    /// How many sessions are loaded.
    pub fn len(&self) -> usize {
        self.handles().count()
    }

    /// How many sessions are active: loaded or saved.
    pub fn active(&self) -> usize {
        self.slots.iter().filter(|s| **s != Slot::Free).count()
    }

    /// Why StartAuthSession has no slot, if it has none: TPM_RC_SESSION_MEMORY when every
    /// slot holds a loaded session, TPM_RC_SESSION_HANDLES when saved sessions take some
    /// (flushing one of them makes room).
    pub fn no_room(&self) -> Option<Rc> {
        if self.active() < MAX_LOADED_SESSIONS {
            None
        } else if self.len() == MAX_LOADED_SESSIONS {
            Some(rc::SESSION_MEMORY)
        } else {
            Some(rc::SESSION_HANDLES)
        }
    }

    /// The sequence of the saved session `handle`, if it is saved.
    pub fn saved_sequence(&self, handle: u32) -> Option<u64> {
        match self.slots.get((handle & 0x00FF_FFFF) as usize) {
            Some(Slot::Saved {
                handle: h,
                sequence,
            }) if *h == handle => Some(*sequence),
            _ => None,
        }
    }

    /// ContextSave of the loaded session `handle`: the slot becomes saved under the next
    /// sequence number, which is returned with the session. `None` if it is not loaded, or
    /// (never in practice) the 64-bit counter is exhausted.
    pub fn save(&mut self, handle: u32) -> Option<(u64, Session)> {
        let slot = self.slot(handle)?;
        let sequence = self.context_counter.checked_add(1)?;
        let saved = Slot::Saved { handle, sequence };
        match core::mem::replace(&mut self.slots[slot], saved) {
            Slot::Loaded(session) => {
                self.context_counter = sequence;
                Some((sequence, session))
            }
            other => {
                self.slots[slot] = other;
                None
            }
        }
    }

    /// The next context sequence number, for a ContextSave of an object (which keeps no
    /// slot here); `None` when the 64-bit counter is exhausted (never in practice).
    pub fn next_sequence(&mut self) -> Option<u64> {
        self.context_counter = self.context_counter.checked_add(1)?;
        Some(self.context_counter)
    }

    /// ContextLoad: puts `session` back in the slot of `handle`, which must be saved under
    /// `sequence` and be a handle of the session's type; whether it was.
    pub fn restore(&mut self, handle: u32, sequence: u64, session: Session) -> bool {
        let slot = (handle & 0x00FF_FFFF) as usize;
        if self.saved_sequence(handle) != Some(sequence) || Self::handle(slot, &session) != handle {
            return false;
        }
        self.slots[slot] = Slot::Loaded(session);
        true
    }

    /// The epoch of the saved contexts, drawn with `fill` the first time it is needed.
    pub fn epoch(&mut self, fill: impl FnOnce(&mut [u8])) -> [u8; 16] {
        *self.epoch.get_or_insert_with(|| {
            let mut e = [0u8; 16];
            fill(&mut e);
            e
        })
    }

    /// The epoch if one was drawn: a context blob cannot be valid without one.
    pub fn current_epoch(&self) -> Option<[u8; 16]> {
        self.epoch
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// A session as it is kept inside a context blob (encrypted; the format is ours, as the
/// reference implementation's is its SESSION structure): sessionType (TPM_SE), authHash,
/// symmetric algorithm (TPM_ALG_NULL / TPM_ALG_AES), sessionKey (TPM2B), bound (0, or 1 then
/// the handle and the authValue as TPM2B), nonceTPM (TPM2B), policyDigest (TPM2B),
/// pcrUpdateCounter (0, or 1 then UINT32).
pub fn write_session(w: &mut Writer, s: &Session) {
    w.u8(match s.session_type {
        SessionType::Hmac => TPM_SE_HMAC,
        SessionType::Policy => TPM_SE_POLICY,
        SessionType::Trial => TPM_SE_TRIAL,
    });
    w.u16(s.auth_hash.alg_id());
    w.u16(match s.symmetric {
        Symmetric::Null => TPM_ALG_NULL,
        Symmetric::Aes128Cfb => TPM_ALG_AES,
    });
    w.tpm2b(&s.session_key);
    match &s.bound {
        None => w.u8(0),
        Some((handle, auth)) => {
            w.u8(1);
            w.u32(*handle);
            w.tpm2b(auth);
        }
    }
    w.tpm2b(&s.nonce_tpm);
    w.tpm2b(&s.policy_digest);
    match s.pcr_counter {
        None => w.u8(0),
        Some(c) => {
            w.u8(1);
            w.u32(c);
        }
    }
}

/// Reads what [`write_session`] wrote, all of `r`; `None` if it is not exactly that.
pub fn read_session(mut r: Reader) -> Option<Session> {
    let session_type = match r.u8().ok()? {
        TPM_SE_HMAC => SessionType::Hmac,
        TPM_SE_POLICY => SessionType::Policy,
        TPM_SE_TRIAL => SessionType::Trial,
        _ => return None,
    };
    let auth_hash = HashAlg::from_alg_id(r.u16().ok()?)?;
    let symmetric = match r.u16().ok()? {
        TPM_ALG_NULL => Symmetric::Null,
        TPM_ALG_AES => Symmetric::Aes128Cfb,
        _ => return None,
    };
    let size = auth_hash.digest_size();
    let session_key = r.tpm2b(size).ok()?.to_vec();
    let bound = match r.u8().ok()? {
        0 => None,
        1 => Some((r.u32().ok()?, r.tpm2b(MAX_DIGEST_SIZE).ok()?.to_vec())),
        _ => return None,
    };
    let nonce_tpm = r.tpm2b(size).ok()?.to_vec();
    let policy_digest = r.tpm2b(size).ok()?.to_vec();
    let pcr_counter = match r.u8().ok()? {
        0 => None,
        1 => Some(r.u32().ok()?),
        _ => return None,
    };
    if !r.is_empty() || nonce_tpm.len() != size || policy_digest.len() != size {
        return None;
    }
    Some(Session {
        session_type,
        auth_hash,
        symmetric,
        session_key,
        bound,
        nonce_tpm,
        policy_digest,
        pcr_counter,
    })
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

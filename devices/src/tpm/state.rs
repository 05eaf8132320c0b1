//! The TPM's whole state as bytes: a small versioned format of our own.
//!
//! Why not serde: a derive plus a format crate (postcard, bincode) would bring proc-macro
//! build dependencies into the firmware build for about a hundred lines of fixed-order
//! fields, and a hand-written format keeps the layout explicit, which matters for a format
//! that lives on disk across firmware versions: a new version adds a decoder branch here.
//!
//! Layout (all integers big-endian, like the TPM's own wire format):
//!
//! | field | octets |
//! |---|---|
//! | magic "PTPM" | 4 |
//! | format version (4; 3 is still read: version 4 without the hierarchy authorizations; so is 2, version 3 without persistent objects, and 1, version 2 without NV indices) | 2 |
//! | EPS, SPS, PPS | 3 × 32 |
//! | resetCount, restartCount, clearCount | 3 × 4 |
//! | clock (ms) | 8 |
//! | orderly: 0 none, 1 Shutdown(CLEAR), 2 Shutdown(STATE) followed by the saved PCRs | 1 (+ PCRs) |
//! | DRBG Key, V, reseed counter | 32 + 32 + 8 |
//! | started, orderly startup (0 or 1 each) | 2 |
//! | null seed | 32 |
//! | PCRs: update counter, then SHA-1, SHA-256, SHA-384 banks, PCR 0 to 23 each | 4 + 24 × (20 + 32 + 48) |
//! | tested algorithms (bits 0-2), failure mode (0 or 1) | 2 |
//! | NV indices (version 2): count, then each one's TPMS_NV_PUBLIC, authValue (TPM2B) and dataSize octets of data, ascending handles | 4 + … |
//! | persistent objects (version 3): count, then each one's handle and the object as a TPM2B of `Object::write`'s format, ascending handles | 4 + … |
//! | ownerAuth, endorsementAuth, lockoutAuth, platformAuth (version 4): TPM2B each, ≤ 32 octets without trailing zeros; disableClear (0 or 1) | 4 × (2 + …) + 1 |
//!
//! Loaded and saved HMAC and policy sessions and transient objects are not in the blob: like _TPM_Init, a restore
//! starts with none, and a context saved before it does not load after it (a new context
//! epoch, `commands/context.rs`).
//!
//! The blob holds the seeds in clear: whoever stores it must encrypt and authenticate it
//! (a later issue). Decoding still checks everything — lengths, enumerations, booleans,
//! trailing bytes — and never panics, since storage can be corrupted.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::constants::{
    MAX_CONTEXT_SIZE, MAX_PERSISTENT_OBJECTS, PERSISTENT_FIRST, PERSISTENT_LAST,
};
use super::drbg::HmacDrbg;
use super::marshal::{Reader, Writer};
use super::nv::NvIndices;
use super::object::Object;
use super::pcr::Pcrs;
use super::{Orderly, Tpm, SEED_SIZE};

const MAGIC: [u8; 4] = *b"PTPM";
const VERSION: u16 = 4;
/// The format before NV indices: version 2 without its last field.
const VERSION_1: u16 = 1;
/// The format before the hierarchy authorizations: version 4 without its last fields.
const VERSION_3: u16 = 3;

/// The longest hierarchy authValue (TPM2_HierarchyChangeAuth).
const MAX_HIERARCHY_AUTH: usize = 32;

fn hierarchy_auth(r: &mut Reader) -> Result<Vec<u8>, StateError> {
    let value = r
        .tpm2b(MAX_HIERARCHY_AUTH)
        .map_err(|_| StateError::Truncated)?;
    if value.last() == Some(&0) {
        return Err(StateError::InvalidField("hierarchy authValue"));
    }
    Ok(value.to_vec())
}

/// Why a blob is not a TPM state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// It does not start with the magic.
    NotAState,
    /// A format version this code does not know.
    UnsupportedVersion(u16),
    /// It ends before the state does.
    Truncated,
    /// A field holds a value no state has.
    InvalidField(&'static str),
    /// Bytes follow the state.
    TrailingData,
}

fn seed(r: &mut Reader) -> Result<[u8; SEED_SIZE], StateError> {
    let mut s = [0u8; SEED_SIZE];
    s.copy_from_slice(r.bytes(SEED_SIZE).map_err(|_| StateError::Truncated)?);
    Ok(s)
}

fn flag(r: &mut Reader, name: &'static str) -> Result<bool, StateError> {
    match r.u8().map_err(|_| StateError::Truncated)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(StateError::InvalidField(name)),
    }
}

impl Tpm {
    /// The whole state, persistent and volatile, as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&MAGIC);
        w.u16(VERSION);
        w.bytes(&self.eps);
        w.bytes(&self.sps);
        w.bytes(&self.pps);
        w.u32(self.reset_count);
        w.u32(self.restart_count);
        w.u32(self.clear_count);
        w.u64(self.clock_ms);
        match &self.orderly {
            Orderly::None => w.u8(0),
            Orderly::Clear => w.u8(1),
            Orderly::State(pcrs) => {
                w.u8(2);
                pcrs.write_state(&mut w);
            }
        }
        let (key, v, counter) = self.drbg.state();
        w.bytes(&key);
        w.bytes(&v);
        w.u64(counter);
        w.u8(u8::from(self.started));
        w.u8(u8::from(self.orderly_startup));
        w.bytes(&self.null_seed);
        self.pcrs.write_state(&mut w);
        w.u8(self.tested);
        w.u8(u8::from(self.failure));
        self.nv.write_state(&mut w);
        w.count(self.persistent.len());
        for (&handle, object) in &self.persistent {
            w.u32(handle);
            let mut body = Writer::new();
            object.write(&mut body);
            w.tpm2b(body.as_slice());
        }
        for auth in [
            &self.owner_auth,
            &self.endorsement_auth,
            &self.lockout_auth,
            &self.platform_auth,
        ] {
            w.tpm2b(auth);
        }
        w.u8(u8::from(self.disable_clear));
        w.into_vec()
    }

    /// A TPM from [`Tpm::to_bytes`]'s output. Call [`Tpm::reseed`] after restoring a state
    /// that may have been restored before.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader::new(bytes);
        let t = |_| StateError::Truncated;
        if r.bytes(MAGIC.len()).map_err(|_| StateError::NotAState)? != MAGIC {
            return Err(StateError::NotAState);
        }
        let version = r.u16().map_err(t)?;
        if !(VERSION_1..=VERSION).contains(&version) {
            return Err(StateError::UnsupportedVersion(version));
        }
        let eps = seed(&mut r)?;
        let sps = seed(&mut r)?;
        let pps = seed(&mut r)?;
        let reset_count = r.u32().map_err(t)?;
        let restart_count = r.u32().map_err(t)?;
        let clear_count = r.u32().map_err(t)?;
        let clock_ms = r.u64().map_err(t)?;
        let orderly = match r.u8().map_err(t)? {
            0 => Orderly::None,
            1 => Orderly::Clear,
            2 => Orderly::State(Box::new(Pcrs::read_state(&mut r).map_err(t)?)),
            _ => return Err(StateError::InvalidField("orderly")),
        };
        let key = seed(&mut r)?;
        let v = seed(&mut r)?;
        let drbg = HmacDrbg::from_state(key, v, r.u64().map_err(t)?);
        let started = flag(&mut r, "started")?;
        let orderly_startup = flag(&mut r, "orderly startup")?;
        let null_seed = seed(&mut r)?;
        let pcrs = Pcrs::read_state(&mut r).map_err(t)?;
        let tested = r.u8().map_err(t)?;
        if tested & !0b111 != 0 {
            return Err(StateError::InvalidField("tested"));
        }
        let failure = flag(&mut r, "failure")?;
        let nv = if version == VERSION_1 {
            NvIndices::default()
        } else {
            NvIndices::read_state(&mut r).map_err(|e| match e {
                None => StateError::Truncated,
                Some(field) => StateError::InvalidField(field),
            })?
        };
        let mut persistent = BTreeMap::new();
        if version >= VERSION_3 {
            let count = r.u32().map_err(t)? as usize;
            if count > MAX_PERSISTENT_OBJECTS {
                return Err(StateError::InvalidField("persistent objects"));
            }
            let mut last = None;
            for _ in 0..count {
                let handle = r.u32().map_err(t)?;
                if !(PERSISTENT_FIRST..=PERSISTENT_LAST).contains(&handle)
                    || last.is_some_and(|l| handle <= l)
                {
                    return Err(StateError::InvalidField("persistent handle"));
                }
                last = Some(handle);
                let body = r.tpm2b(MAX_CONTEXT_SIZE).map_err(t)?;
                let object = Object::read(Reader::new(body))
                    .ok_or(StateError::InvalidField("persistent object"))?;
                persistent.insert(handle, object);
            }
        }
        let mut auths: [Vec<u8>; 4] = Default::default();
        let mut disable_clear = false;
        if version == VERSION {
            for auth in &mut auths {
                *auth = hierarchy_auth(&mut r)?;
            }
            disable_clear = flag(&mut r, "disableClear")?;
        }
        let [owner_auth, endorsement_auth, lockout_auth, platform_auth] = auths;
        if !r.is_empty() {
            return Err(StateError::TrailingData);
        }
        Ok(Self {
            eps,
            sps,
            pps,
            reset_count,
            restart_count,
            clear_count,
            clock_ms,
            orderly,
            drbg,
            nv,
            persistent,
            owner_auth,
            endorsement_auth,
            lockout_auth,
            platform_auth,
            disable_clear,
            started,
            orderly_startup,
            null_seed,
            pcrs,
            tested,
            sessions: Default::default(),
            objects: Default::default(),
            failure,
        })
    }
}

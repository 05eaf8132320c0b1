//! A TPM 2.0 command processor following the TPM 2.0 Library specification (Family "2.0",
//! Level 00, Revision 01.59): Part 1 (architecture), Part 2 (structures), Part 3
//! (commands), with Part 4's reference code as the tie-breaker on behaviour. The PC Client
//! Platform TPM Profile sets the platform choices (24 PCRs, their attributes, localities).
//!
//! [`Tpm`] is the whole TPM: one structure holding every piece of state, persistent and
//! volatile, which serialises to bytes ([`Tpm::to_bytes`] / [`Tpm::from_bytes`], see
//! `state.rs`) so the firmware can keep it (encrypted) across VM boots or snapshots. It has no
//! interface of its own: a backend (a TIS or CRB register model, a vTPM service) hands it
//! each command with the locality it arrived at and returns the response bytes.
//!
//! # Commands
//!
//! The command table is `commands/mod.rs`. Implemented: Startup, Shutdown, SelfTest,
//! IncrementalSelfTest, GetTestResult, GetRandom, StirRandom, GetCapability, PCR_Read,
//! PCR_Extend, PCR_Event, PCR_Reset, Hash, HashSequenceStart, SequenceUpdate,
//! SequenceComplete and EventSequenceComplete (hash and event sequences,
//! `commands/sequence.rs`), NV_DefineSpace, NV_UndefineSpace, NV_ReadPublic,
//! NV_Write, NV_Read, StartAuthSession, ContextSave and ContextLoad (sessions, objects and sequences), FlushContext
//! (sessions, objects and sequences), PolicyPCR, PolicyGetDigest, CreatePrimary (ECC P-256
//! and RSA-2048, `object.rs`, `rsa_keys.rs`), Create and Load (ECC P-256 and RSA-2048 keys
//! and sealed data objects under a storage key, protected as Part 1 §23 says:
//! `object::wrap`), Unseal, ReadPublic, Sign, VerifySignature and Quote (ECDSA P-256,
//! RSASSA-PKCS1-v1_5 and RSASSA-PSS, `commands/signing.rs`), EvictControl
//! (persistent objects, kept in the state and usable wherever a loaded object is),
//! HierarchyChangeAuth, Clear and ClearControl (`commands/hierarchy.rs`), TestParms.
//! Any other command code is TPM_RC_COMMAND_CODE.
//!
//! # Sessions
//!
//! Password, HMAC and policy authorizations (`auth.rs`); HMAC and policy sessions are
//! unsalted, bound or unbound, with SHA-1, SHA-256 or SHA-384 (`session.rs`). Not yet:
//! salted sessions (no objects), parameter encryption (a session may be started with
//! AES-128-CFB, but decrypt/encrypt on a command is refused), audit, policy commands other
//! than PolicyPCR and PolicyGetDigest. ContextSave/ContextLoad save and load sessions,
//! transient objects and hash and event sequences (`commands/context.rs`: integrity HMAC and AES-128-CFB with keys from KDFa, Part 1 §30).
//!
//! # Processing order (Part 3 §5; Part 4 `ExecuteCommand`)
//!
//! 1. Header: a missing field is TPM_RC_INSUFFICIENT; a tag other than TPM_ST_NO_SESSIONS /
//!    TPM_ST_SESSIONS is TPM_RC_BAD_TAG, answered with the TPM 1.2 tag TPM_ST_RSP_COMMAND
//!    (Part 2 §6.9; Part 4's code answers TPM_ST_NO_SESSIONS there); commandSize different
//!    from the octets received, or over [`MAX_COMMAND_SIZE`], is TPM_RC_COMMAND_SIZE; an
//!    unimplemented command code TPM_RC_COMMAND_CODE.
//! 2. Failure mode: only GetTestResult and GetCapability run; everything else is
//!    TPM_RC_FAILURE (Part 3 §5.3).
//! 3. A locality above 4 is TPM_RC_LOCALITY (the interface has localities 0-4 only).
//! 4. Before Startup only Startup runs, after it Startup may not: TPM_RC_INITIALIZE.
//! 5. Handles: unmarshalled and checked against their type (TPM_RC_VALUE) and, for NV
//!    indices, that they are defined (TPM_RC_HANDLE); errors numbered TPM_RC_H + n.
//! 6. Sessions (TPM_ST_SESSIONS): authorizationSize below 9 or past the end is TPM_RC_SIZE;
//!    a command that takes no sessions answers TPM_RC_AUTH_CONTEXT; sessions are unmarshalled
//!    and checked (`auth.rs`: passwords, command HMACs over cpHash, policy digests), errors
//!    numbered TPM_RC_S + n (TPM_RC_AUTH_UNAVAILABLE, when
//!    an NV index's own authValue may not be used for the command, has no number). Without
//!    sessions, a command with a handle needing authorization is TPM_RC_AUTH_MISSING.
//! 7. Parameters: unmarshalled by the command, errors numbered TPM_RC_P + n; octets left over
//!    are TPM_RC_SIZE. Only then does the command act.
//!
//! 8. The response: a response handle (StartAuthSession, ContextLoad), then with sessions the parameter
//!    size, parameters and one TPMS_AUTH_RESPONSE per session (new nonceTPM, response HMAC
//!    over rpHash); a session without continueSession is flushed.
//!
//! Every error response is the 10-octet header alone; an error leaves every session as it
//! was (no nonce rolls). No input can make the processor
//! panic: reads are bounds-checked (`marshal.rs`), and an internal inconsistency puts the TPM
//! in failure mode instead.
//!
//! # Localities
//!
//! `locality` is 0-4 as the TIS/CRB interface reports it. It matters to Startup (0 or 3
//! only; PCR[0] records it) and to PCR_Extend, PCR_Event and PCR_Reset (the PC Client table
//! in `pcr.rs`); every other command accepts any locality.

mod auth;
mod commands;
pub mod constants;
pub mod crb;
mod drbg;
pub mod event_log;
mod handles;
mod hash;
mod marshal;
mod measure;
mod nv;
mod object;
mod pcr;
pub mod rc;
mod rsa_keys;
mod session;
mod state;
pub mod tis;
pub mod tis_spi;

#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

pub use constants::{MAX_COMMAND_SIZE, MAX_RESPONSE_SIZE};
pub use state::StateError;

use constants::{
    HEADER_SIZE, TPM_CC_GET_CAPABILITY, TPM_CC_GET_TEST_RESULT, TPM_CC_STARTUP, TPM_ST_NO_SESSIONS,
    TPM_ST_RSP_COMMAND, TPM_ST_SESSIONS,
};
use drbg::HmacDrbg;
use marshal::{Reader, Writer};
use nv::NvIndices;
use object::{Object, Objects};
use pcr::Pcrs;
use rc::Rc;
use session::Sessions;

/// Octets of each primary seed (Part 1 §14.3.3: at least the security strength of the
/// strongest algorithm; the reference implementation's PRIMARY_SEED_SIZE is 32).
pub const SEED_SIZE: usize = 32;

/// Personalization string of the DRBG (SP 800-90A §8.7.1), a domain label.
const DRBG_PERSONALIZATION: &[u8] = b"Parapet TPM 2.0 HMAC_DRBG";

/// What the last TPM2_Shutdown asked for, consumed by the next TPM2_Startup (Part 1 §12).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Orderly {
    /// No Shutdown since the last Startup, or a state change since the Shutdown: the next
    /// Startup can only be a (disorderly) TPM Reset.
    None,
    /// Shutdown(CLEAR).
    Clear,
    /// Shutdown(STATE), with the PCR values and update counter it saved.
    State(Box<Pcrs>),
}

/// A TPM 2.0: every seed, counter, PCR and generator state. Its `Debug` leaves out the
/// seeds and the DRBG state.
#[derive(Clone, PartialEq, Eq)]
pub struct Tpm {
    // --- Persistent: survives _TPM_Init (a platform reset). ---
    /// Endorsement, storage and platform primary seeds (EPS, SPS, PPS). Placeholders until
    /// CreatePrimary derives keys from them; generated at manufacture ([`Tpm::new`]).
    eps: [u8; SEED_SIZE],
    sps: [u8; SEED_SIZE],
    pps: [u8; SEED_SIZE],
    /// TPM Resets since manufacture (TPMS_CLOCK_INFO.resetCount).
    reset_count: u32,
    /// TPM Restarts and Resumes since the last TPM Reset (TPMS_CLOCK_INFO.restartCount).
    restart_count: u32,
    /// TPM Restarts since the last TPM Reset (Part 1 §36.7 clearCount).
    clear_count: u32,
    /// Milliseconds the TPM has been powered (TPMS_CLOCK_INFO.clock), advanced by the
    /// backend through [`Tpm::advance_clock`]. No command reads it yet.
    clock_ms: u64,
    orderly: Orderly,
    drbg: HmacDrbg,
    /// The NV indices (`nv.rs`).
    nv: NvIndices,
    /// The persistent objects (TPM2_EvictControl, `commands/object.rs`), by handle.
    persistent: BTreeMap<u32, Object>,
    /// ownerAuth, endorsementAuth, lockoutAuth (TPM2_HierarchyChangeAuth, emptied by
    /// TPM2_Clear) and platformAuth (emptied by every Startup(CLEAR), Part 1 §13.8), without
    /// trailing zeros.
    owner_auth: Vec<u8>,
    endorsement_auth: Vec<u8>,
    lockout_auth: Vec<u8>,
    platform_auth: Vec<u8>,
    /// disableClear (TPM2_ClearControl): TPM2_Clear is TPM_RC_DISABLED.
    disable_clear: bool,
    // --- Volatile: lost at _TPM_Init. ---
    /// Startup has run (and with it the PCR initialisation).
    started: bool,
    /// The last Startup followed a matching Shutdown (TPMA_STARTUP_CLEAR.orderly).
    orderly_startup: bool,
    /// The null hierarchy's seed, new at every TPM Reset (Part 1 §14.4).
    null_seed: [u8; SEED_SIZE],
    pcrs: Pcrs,
    /// Algorithms whose self-test passed, bit `HashAlg::index()`.
    tested: u8,
    /// The loaded HMAC and policy sessions (`session.rs`). Not in the state blob.
    sessions: Sessions,
    /// The loaded transient objects (`object.rs`). Not in the state blob.
    objects: Objects,
    /// A self-test or an internal check failed (Part 1 §12.2.3 failure mode).
    failure: bool,
}

impl core::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tpm")
            .field("started", &self.started)
            .field("failure", &self.failure)
            .field("reset_count", &self.reset_count)
            .field("restart_count", &self.restart_count)
            .field("clear_count", &self.clear_count)
            .field("clock_ms", &self.clock_ms)
            .field("pcr_update_counter", &self.pcrs.update_counter())
            .finish_non_exhaustive()
    }
}

impl Tpm {
    /// A newly manufactured TPM, as after power-on: it needs Startup.
    ///
    /// `entropy` must come from a true random source (RDSEED, RNDR, the host): it seeds the
    /// DRBG, and from the DRBG come the primary seeds. It is used as the whole SP 800-90A
    /// entropy input (256 bits, SHA-256's security strength); the nonce is empty and the
    /// personalization string a fixed label.
    pub fn new(entropy: [u8; 32]) -> Self {
        let mut drbg = HmacDrbg::new(&entropy, &[], DRBG_PERSONALIZATION);
        let mut seed = || {
            let mut s = [0u8; SEED_SIZE];
            drbg.generate(&mut s, &[]);
            s
        };
        let (eps, sps, pps) = (seed(), seed(), seed());
        Self {
            eps,
            sps,
            pps,
            reset_count: 0,
            restart_count: 0,
            clear_count: 0,
            clock_ms: 0,
            orderly: Orderly::None,
            drbg,
            nv: NvIndices::default(),
            persistent: BTreeMap::new(),
            owner_auth: Vec::new(),
            endorsement_auth: Vec::new(),
            lockout_auth: Vec::new(),
            platform_auth: Vec::new(),
            disable_clear: false,
            started: false,
            orderly_startup: false,
            null_seed: [0; SEED_SIZE],
            pcrs: Pcrs::default(),
            tested: 0,
            sessions: Sessions::default(),
            objects: Objects::default(),
            failure: false,
        }
    }

    /// _TPM_Init (Part 3 §9.2): the platform reset the TPM. Volatile state is gone and the
    /// TPM waits for Startup; what Shutdown saved is kept for it.
    pub fn init(&mut self) {
        self.started = false;
        self.orderly_startup = false;
        self.null_seed = [0; SEED_SIZE];
        self.pcrs = Pcrs::default();
        self.tested = 0;
        self.sessions.clear();
        self.objects.clear();
        self.failure = false;
    }

    /// Mixes fresh entropy into the DRBG (SP 800-90A reseed). Call it after every
    /// [`Tpm::from_bytes`] of a state that may have been restored before (a snapshot), so
    /// two restores do not produce the same random numbers.
    pub fn reseed(&mut self, entropy: &[u8]) {
        self.drbg.reseed(entropy, &[]);
    }

    /// Advances the TPM's clock by `ms` milliseconds of powered time.
    pub fn advance_clock(&mut self, ms: u64) {
        self.clock_ms = self.clock_ms.saturating_add(ms);
    }

    /// The object behind `handle`: a loaded transient object or a persistent one.
    fn object(&self, handle: u32) -> Option<&Object> {
        self.objects
            .get(handle)
            .or_else(|| self.persistent.get(&handle))
    }

    /// Whether Startup has run since power-on or the last [`Tpm::init`].
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Runs one command that arrived at `locality` (0-4) and returns the response. Never
    /// fails: errors are TPM response codes in the response.
    pub fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        match self.process(locality, command) {
            Ok(response) if response.len() <= MAX_RESPONSE_SIZE => response,
            Ok(_) => {
                // Every response is bounded well under MAX_RESPONSE_SIZE; one that is not is
                // a bug here, and the TPM stops trusting itself.
                self.failure = true;
                error_response(rc::FAILURE)
            }
            Err(code) => error_response(code),
        }
    }

    fn process(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, Rc> {
        let mut r = Reader::new(command);
        let tag = r.u16()?;
        if tag != TPM_ST_NO_SESSIONS && tag != TPM_ST_SESSIONS {
            return Err(rc::BAD_TAG);
        }
        let size = r.u32()?;
        if command.len() > MAX_COMMAND_SIZE || size as usize != command.len() {
            return Err(rc::COMMAND_SIZE);
        }
        let code = r.u32()?;
        let def = commands::lookup(code).ok_or(rc::COMMAND_CODE)?;
        if self.failure && code != TPM_CC_GET_TEST_RESULT && code != TPM_CC_GET_CAPABILITY {
            return Err(rc::FAILURE);
        }
        if locality > 4 {
            return Err(rc::LOCALITY);
        }
        if !self.failure && self.started == (code == TPM_CC_STARTUP) {
            return Err(rc::INITIALIZE);
        }

        let mut handles = [0u32; commands::MAX_HANDLES];
        for (i, kind) in def.handles.iter().enumerate() {
            let n = i as u32 + 1;
            let handle = r.u32().map_err(|e| rc::handle(e, n))?;
            kind.check(self, handle).map_err(|e| rc::handle(e, n))?;
            handles[i] = handle;
        }
        let handles = &handles[..def.handles.len()];

        let authorized = if tag == TPM_ST_SESSIONS {
            let auth_size = r.u32()? as usize;
            if auth_size < 9 || auth_size > r.remaining() {
                return Err(rc::SIZE);
            }
            if !def.sessions_allowed {
                return Err(rc::AUTH_CONTEXT);
            }
            let sessions = auth::read_sessions(self, r.sub(auth_size)?)?;
            Some(auth::authorize(
                self,
                code,
                &sessions,
                handles,
                def.auth_handles,
                r.rest(),
            )?)
        } else {
            if def.auth_handles > 0 {
                return Err(rc::AUTH_MISSING);
            }
            None
        };

        let mut call = commands::Call {
            locality,
            handles,
            params: r,
            out: Writer::new(),
            out_handle: None,
        };
        (def.run)(self, &mut call)?;
        let mut authorized = authorized;
        if let Some(authorized) = authorized.as_mut() {
            auth::rekey_changed_auth(self, code, authorized, handles);
        }
        let out_handle = call.out_handle;
        let params = call.out.into_vec();

        let mut w = Writer::new();
        match authorized {
            None => {
                w.u16(TPM_ST_NO_SESSIONS);
                w.count(HEADER_SIZE + 4 * usize::from(out_handle.is_some()) + params.len());
                w.u32(rc::SUCCESS);
                if let Some(handle) = out_handle {
                    w.u32(handle);
                }
                w.bytes(&params);
            }
            Some(authorized) => {
                let mut auth = Writer::new();
                auth::write_responses(self, code, &authorized, &params, &mut auth);
                w.u16(TPM_ST_SESSIONS);
                let handle_size = 4 * usize::from(out_handle.is_some());
                w.count(HEADER_SIZE + handle_size + 4 + params.len() + auth.len());
                w.u32(rc::SUCCESS);
                if let Some(handle) = out_handle {
                    w.u32(handle);
                }
                w.count(params.len());
                w.bytes(&params);
                w.bytes(auth.as_slice());
            }
        }
        Ok(w.into_vec())
    }
}

/// The 10-octet response every error gets (Part 2 §6.9: TPM_ST_NO_SESSIONS, or the TPM 1.2
/// tag TPM_ST_RSP_COMMAND for TPM_RC_BAD_TAG).
fn error_response(code: Rc) -> Vec<u8> {
    let tag = if code == rc::BAD_TAG {
        TPM_ST_RSP_COMMAND
    } else {
        TPM_ST_NO_SESSIONS
    };
    let mut w = Writer::new();
    w.u16(tag);
    w.count(HEADER_SIZE);
    w.u32(code);
    w.into_vec()
}

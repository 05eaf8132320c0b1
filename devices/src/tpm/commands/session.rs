//! TPM2_StartAuthSession and TPM2_FlushContext for sessions (Part 3 §11.1, §28.4), and the
//! first policy commands, TPM2_PolicyPCR and TPM2_PolicyGetDigest (Part 3 §23.7, §23.22;
//! checks and their order from Part 4's `TPM2_*`). The sessions themselves are `tpm/session.rs`,
//! their use in authorizations `tpm/auth.rs`.

use alloc::vec::Vec;

use super::super::constants::*;
use super::super::handles::{entity_auth, EntityAuth};
use super::super::hash::{HashAlg, MAX_DIGEST_SIZE};
use super::super::marshal::Reader;
use super::super::pcr::{self, Selection, PCR_COUNT};
use super::super::rc::{self, Rc};
use super::super::session::{kdfa, Session, SessionType, Symmetric};
use super::super::Tpm;
use super::Call;

/// sizeof(TPMU_ENCRYPTED_SECRET), the bound of TPM2B_ENCRYPTED_SECRET (Part 2 §11.4.33): an
/// RSA-2048 encrypted seed, the largest a TPM with RSA-2048 holds.
const MAX_ENCRYPTED_SECRET: usize = 256;

/// TPM_SE (Part 2): HMAC, POLICY or TRIAL, otherwise TPM_RC_VALUE.
fn read_session_type(r: &mut Reader) -> Result<SessionType, Rc> {
    match r.u8()? {
        TPM_SE_HMAC => Ok(SessionType::Hmac),
        TPM_SE_POLICY => Ok(SessionType::Policy),
        TPM_SE_TRIAL => Ok(SessionType::Trial),
        _ => Err(rc::VALUE),
    }
}

/// TPMT_SYM_DEF+ (Part 2 §11.1.6): TPM_ALG_NULL, or AES with keyBits 128 (TPMI_AES_KEY_BITS:
/// TPM_RC_VALUE) and mode CFB (a session's only mode, Part 4 `TPM2_StartAuthSession`:
/// TPM_RC_MODE). Any other algorithm is TPM_RC_SYMMETRIC.
fn read_sym_def(r: &mut Reader) -> Result<Symmetric, Rc> {
    match r.u16()? {
        TPM_ALG_NULL => Ok(Symmetric::Null),
        TPM_ALG_AES => {
            if r.u16()? != 128 {
                return Err(rc::VALUE);
            }
            if r.u16()? != TPM_ALG_CFB {
                return Err(rc::MODE);
            }
            Ok(Symmetric::Aes128Cfb)
        }
        _ => Err(rc::SYMMETRIC),
    }
}

/// StartAuthSession: tpmKey (TPMI_DH_OBJECT+), bind (TPMI_DH_ENTITY+); nonceCaller,
/// encryptedSalt, sessionType, symmetric, authHash → sessionHandle (response handle),
/// nonceTPM.
///
/// tpmKey can only be TPM_RH_NULL (no objects exist), so encryptedSalt must be empty
/// (TPM_RC_VALUE, parameter 2). nonceCaller has 16 octets up to the authHash's digest size
/// (TPM_RC_SIZE, parameter 1). nonceTPM is a new DRBG output of the digest size. A bound
/// session's sessionKey is KDFa(authHash, bind.authValue, "ATH", nonceTPM, nonceCaller,
/// digest bits) (Part 1 §19.6.8), an unbound one's empty. TPM_RC_SESSION_MEMORY when every
/// slot holds a loaded session, TPM_RC_SESSION_HANDLES when saved sessions take some.
pub fn start_auth_session(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let nonce_caller = call.param(1, |r| r.tpm2b(MAX_DIGEST_SIZE))?;
    let salt = call.param(2, |r| r.tpm2b(MAX_ENCRYPTED_SECRET))?;
    let session_type = call.param(3, read_session_type)?;
    let symmetric = call.param(4, read_sym_def)?;
    let auth_hash = call.param(5, |r| HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH))?;
    call.end()?;
    let bind = match call.handles {
        [_, bind] => *bind,
        _ => TPM_RH_NULL,
    };
    if !salt.is_empty() {
        return Err(rc::parameter(rc::VALUE, 2));
    }
    let size = auth_hash.digest_size();
    if nonce_caller.len() < MIN_NONCE_SIZE || nonce_caller.len() > size {
        return Err(rc::parameter(rc::SIZE, 1));
    }
    let bound = if bind == TPM_RH_NULL {
        None
    } else {
        match entity_auth(tpm, TPM_CC_START_AUTH_SESSION, bind) {
            EntityAuth::Value(value, _) => Some((bind, value.to_vec())),
            _ => return Err(rc::handle(rc::HANDLE, 2)),
        }
    };
    if let Some(code) = tpm.sessions.no_room() {
        return Err(code);
    }
    let mut nonce_tpm = [0u8; MAX_DIGEST_SIZE];
    let nonce_tpm = &mut nonce_tpm[..size];
    tpm.drbg.generate(nonce_tpm, &[]);
    let session_key = match &bound {
        None => Vec::new(),
        Some((_, auth_value)) => kdfa(
            auth_hash,
            auth_value,
            b"ATH",
            nonce_tpm,
            nonce_caller,
            size as u32 * 8,
        ),
    };
    let session = Session {
        session_type,
        auth_hash,
        symmetric,
        session_key,
        // Only an HMAC session's binding changes the key of its authorizations.
        bound: bound.filter(|_| session_type == SessionType::Hmac),
        nonce_tpm: nonce_tpm.to_vec(),
        policy_digest: Vec::from(&[0u8; MAX_DIGEST_SIZE][..size]),
        pcr_counter: None,
    };
    let handle = tpm.sessions.insert(session).ok_or(rc::SESSION_MEMORY)?;
    call.out_handle = Some(handle);
    call.out.tpm2b(nonce_tpm);
    Ok(())
}

/// FlushContext: flushHandle (TPMI_DH_CONTEXT, a parameter): an HMAC or policy session, or a
/// transient object (a key, sealed data or a hash/event sequence). A saved session is flushed too (its context no longer
/// loads). Neither loaded nor saved: TPM_RC_HANDLE; another type: TPM_RC_VALUE.
pub fn flush_context(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let handle = call.param(1, |r| {
        let h = r.u32()?;
        let session = (HMAC_SESSION_FIRST..=HMAC_SESSION_LAST).contains(&h)
            || (POLICY_SESSION_FIRST..=POLICY_SESSION_LAST).contains(&h);
        if session || h >> HR_SHIFT == u32::from(TPM_HT_TRANSIENT) {
            Ok(h)
        } else {
            Err(rc::VALUE)
        }
    })?;
    call.end()?;
    if tpm.sessions.remove(handle) || tpm.objects.remove(handle) {
        Ok(())
    } else {
        Err(rc::parameter(rc::HANDLE, 1))
    }
}

fn policy_session(call: &Call) -> u32 {
    call.handles.first().copied().unwrap_or(0)
}

/// The digest of the selected PCRs (Part 4 `PCRComputeCurrentDigest`): H_alg of their
/// values, selection by selection, each in PCR order.
pub(super) fn pcr_digest(tpm: &Tpm, alg: HashAlg, selections: &[Selection]) -> Vec<u8> {
    let values: Vec<&[u8]> = selections
        .iter()
        .flat_map(|s| {
            (0..PCR_COUNT)
                .filter(|&p| s.is_selected(p))
                .map(|p| tpm.pcrs.value(s.hash, p))
        })
        .collect();
    alg.digest(&values).as_bytes().to_vec()
}

/// PolicyPCR: policySession; pcrDigest (TPM2B_DIGEST), pcrs (TPML_PCR_SELECTION).
/// policyDigest_new = H(policyDigest_old || TPM_CC_PolicyPCR || pcrs || digestTPM), where
/// digestTPM is the digest of the selected PCRs' current values. A policy session checks a
/// non-empty pcrDigest against it (TPM_RC_VALUE, parameter 1) and records pcrUpdateCounter
/// (a later change is TPM_RC_PCR_CHANGED); a trial session takes pcrDigest as given when it
/// is not empty.
pub fn policy_pcr(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let given = call.param(1, |r| r.tpm2b(MAX_DIGEST_SIZE))?;
    let pcrs = call.param(2, pcr::read_selection_list)?;
    call.end()?;
    let handle = policy_session(call);
    let counter = tpm.pcrs.update_counter();
    let (alg, trial, recorded) = match tpm.sessions.get(handle) {
        Some(s) => (
            s.auth_hash,
            s.session_type == SessionType::Trial,
            s.pcr_counter,
        ),
        None => return Err(rc::REFERENCE_H0),
    };
    let digest = if trial && !given.is_empty() {
        given.to_vec()
    } else {
        pcr_digest(tpm, alg, &pcrs)
    };
    if !trial {
        if !given.is_empty() && given != digest.as_slice() {
            return Err(rc::parameter(rc::VALUE, 1));
        }
        if recorded.is_some_and(|c| c != counter) {
            return Err(rc::PCR_CHANGED);
        }
    }
    let mut selection = super::super::marshal::Writer::new();
    pcr::write_selection_list(&mut selection, &pcrs);
    let Some(session) = tpm.sessions.get_mut(handle) else {
        return Err(rc::REFERENCE_H0);
    };
    let new = alg.digest(&[
        &session.policy_digest,
        &TPM_CC_POLICY_PCR.to_be_bytes(),
        selection.as_slice(),
        &digest,
    ]);
    session.policy_digest = new.as_bytes().to_vec();
    if !trial {
        session.pcr_counter = Some(counter);
    }
    Ok(())
}

/// PolicyGetDigest: policySession → policyDigest (TPM2B_DIGEST).
pub fn policy_get_digest(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    let session = tpm
        .sessions
        .get(policy_session(call))
        .ok_or(rc::REFERENCE_H0)?;
    call.out.tpm2b(&session.policy_digest);
    Ok(())
}

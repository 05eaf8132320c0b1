//! Hash and event sequences (Part 3 §17: TPM2_HashSequenceStart §17.3, TPM2_SequenceUpdate
//! §17.4, TPM2_SequenceComplete §17.5, TPM2_EventSequenceComplete §17.6; Part 4's code of
//! the same names is the tie-breaker).
//!
//! A sequence is a transient object (`object::Sequence`) in one of the object slots, with
//! the authValue given to HashSequenceStart; every use needs USER authorization of it (a
//! password or an HMAC session, as for any object). Its data arrives in pieces of at most
//! MAX_DIGEST_BUFFER octets. A successful SequenceComplete or EventSequenceComplete flushes
//! it (TPMA_CC.flushed). HMAC sequences (TPM2_HMAC_Start) are not implemented.
//!
//! ContextSave saves a sequence object with its running hash state and ContextLoad restores
//! it (`commands/context.rs`; savedHandle 0x80000001), as Linux's resource manager does
//! around every command.

use super::super::constants::{MAX_DIGEST_BUFFER, TPM_ALG_NULL};
use super::super::hash::{HashAlg, MAX_DIGEST_SIZE};
use super::super::marshal::Reader;
use super::super::object::{Sequence, SequenceKind};
use super::super::rc::{self, Rc};
use super::super::Tpm;
use super::Call;

/// TPM2B_MAX_BUFFER (Part 2 §10.4.8): at most MAX_DIGEST_BUFFER octets, else TPM_RC_SIZE.
fn read_buffer<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], Rc> {
    r.tpm2b(MAX_DIGEST_BUFFER as usize)
}

/// TPMI_ALG_HASH+ (Part 2 §9.27): an implemented hash, or TPM_ALG_NULL (`None`: an event
/// sequence); anything else TPM_RC_HASH.
fn read_hash_alg_or_null(r: &mut Reader) -> Result<Option<HashAlg>, Rc> {
    match r.u16()? {
        TPM_ALG_NULL => Ok(None),
        id => HashAlg::from_alg_id(id).map(Some).ok_or(rc::HASH),
    }
}

/// HashSequenceStart: auth (TPM2B_AUTH, ≤ 48 octets: TPM_RC_SIZE), hashAlg → sequenceHandle
/// (response handle). TPM_RC_OBJECT_MEMORY when no object slot is free.
pub fn hash_sequence_start(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let auth = call.param(1, |r| r.tpm2b(MAX_DIGEST_SIZE))?;
    let alg = call.param(2, read_hash_alg_or_null)?;
    call.end()?;
    call.out_handle = Some(tpm.objects.insert_sequence(Sequence::new(alg, auth))?);
    Ok(())
}

/// The sequence behind handle `n` (1-based) of the command; an object that is not a
/// sequence (or a persistent one, which never is) is TPM_RC_MODE + that handle (Part 3
/// §17.4: "sequenceHandle does not reference a hash or HMAC sequence object").
fn sequence<'t>(tpm: &'t mut Tpm, call: &Call, n: usize) -> Result<&'t mut Sequence, Rc> {
    let handle = call.handles.get(n - 1).copied().unwrap_or(0);
    tpm.objects
        .sequence_mut(handle)
        .ok_or(rc::handle(rc::MODE, n as u32))
}

/// SequenceUpdate: sequenceHandle (USER auth); buffer (TPM2B_MAX_BUFFER). Adds the data to
/// a hash or event sequence.
pub fn sequence_update(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let data = call.param(1, read_buffer)?;
    call.end()?;
    sequence(tpm, call, 1)?.update(data);
    Ok(())
}

/// SequenceComplete: sequenceHandle (USER auth); buffer (TPM2B_MAX_BUFFER), hierarchy
/// (TPMI_RH_HIERARCHY+) → result (TPM2B_DIGEST), validation (TPMT_TK_HASHCHECK). An event
/// sequence is TPM_RC_MODE + H1. The ticket is a hashcheck ticket as TPM2_Hash makes
/// (`commands/hash.rs`), or the NULL ticket when the hierarchy is TPM_RH_NULL or the first
/// block of data (the first SequenceUpdate's, or this buffer if there was none) was not
/// safe: shorter than 4 octets or starting with TPM_GENERATED_VALUE (Part 4
/// `TPM2_SequenceComplete`, `TicketIsSafe`).
pub fn sequence_complete(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let data = call.param(1, read_buffer)?;
    let hierarchy = call.param(2, super::hash::read_hierarchy)?;
    call.end()?;
    let handle = call.handles.first().copied().unwrap_or(0);
    let sequence = sequence(tpm, call, 1)?;
    if !matches!(sequence.kind, SequenceKind::Hash(_)) {
        return Err(rc::handle(rc::MODE, 1));
    }
    sequence.update(data);
    let safe = sequence.ticket_safe;
    let digest = match &sequence.kind {
        SequenceKind::Hash(hasher) => hasher.clone().finish(),
        SequenceKind::Event(_) => return Err(rc::handle(rc::MODE, 1)),
    };
    tpm.objects.remove(handle);
    call.out.tpm2b(digest.as_bytes());
    super::hash::write_hashcheck(tpm, call, hierarchy, &digest, safe);
    Ok(())
}

/// EventSequenceComplete: pcrHandle (TPMI_DH_PCR+, USER auth), sequenceHandle (USER auth);
/// buffer (TPM2B_MAX_BUFFER) → results (TPML_DIGEST_VALUES, one digest per PCR bank). A
/// hash sequence is TPM_RC_MODE + H2. Unless pcrHandle is TPM_RH_NULL, each bank of that PCR
/// is extended with its digest, after the locality check PCR_Extend makes
/// (TPM_RC_LOCALITY).
pub fn event_sequence_complete(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let data = call.param(1, read_buffer)?;
    call.end()?;
    let handle = call.handles.get(1).copied().unwrap_or(0);
    let SequenceKind::Event(hashers) = &sequence(tpm, call, 2)?.kind else {
        return Err(rc::handle(rc::MODE, 2));
    };
    let hashers = hashers.clone();
    let target = super::pcr::extend_target(call)?;
    tpm.objects.remove(handle);
    if let Some(pcr) = target {
        tpm.pcr_changing(pcr);
    }
    call.out.count(hashers.len());
    for mut hasher in hashers {
        hasher.update(data);
        let digest = hasher.finish();
        if let Some(pcr) = target {
            tpm.pcrs.extend(pcr, digest.alg(), digest.as_bytes());
        }
        call.out.u16(digest.alg().alg_id());
        call.out.bytes(digest.as_bytes());
    }
    Ok(())
}

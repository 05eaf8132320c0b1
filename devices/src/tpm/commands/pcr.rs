//! TPM2_PCR_Read, TPM2_PCR_Extend, TPM2_PCR_Event, TPM2_PCR_Reset (Part 3 §22; Part 4's
//! PCR_*.c). The PCRs, their attributes and the update counter are `tpm/pcr.rs`.

use alloc::vec::Vec;

use super::super::constants::{MAX_EVENT_DATA, TPM_RH_NULL};
use super::super::hash::HashAlg;
use super::super::marshal::Reader;
use super::super::pcr::{self, Selection, BANKS};
use super::super::rc::{self, Rc};
use super::super::{Orderly, Tpm};
use super::Call;

impl Tpm {
    /// A change to a state-saved PCR after Shutdown(STATE) voids what it saved.
    pub(super) fn pcr_changing(&mut self, pcr: usize) {
        if pcr::state_saved(pcr) {
            self.orderly = Orderly::None;
        }
    }
}

/// PCR_Read: pcrSelectionIn → pcrUpdateCounter, pcrSelectionOut, pcrValues (TPML_DIGEST).
pub fn pcr_read(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let selections = call.param(1, pcr::read_selection_list)?;
    call.end()?;
    let (returned, digests) = tpm.pcrs.read(&selections);
    call.out.u32(tpm.pcrs.update_counter());
    pcr::write_selection_list(&mut call.out, &returned);
    call.out.count(digests.len());
    for d in digests {
        call.out.tpm2b(d);
    }
    Ok(())
}

/// TPML_DIGEST_VALUES (Part 2 §10.9.6): count ≤ HASH_COUNT (TPM_RC_SIZE), each a TPMT_HA
/// whose hashAlg is an implemented hash (TPM_RC_HASH) followed by a digest of its size.
fn read_digest_values<'a>(r: &mut Reader<'a>) -> Result<Vec<(HashAlg, &'a [u8])>, Rc> {
    let count = r.u32()? as usize;
    if count > BANKS {
        return Err(rc::SIZE);
    }
    let mut list = Vec::with_capacity(count);
    for _ in 0..count {
        let alg = HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)?;
        list.push((alg, r.bytes(alg.digest_size())?));
    }
    Ok(list)
}

/// The PCR a PCR_Extend/PCR_Event handle names, or `None` for TPM_RH_NULL; TPM_RC_LOCALITY
/// when the command's locality may not extend it.
pub(super) fn extend_target(call: &Call) -> Result<Option<usize>, Rc> {
    let handle = call.handles.first().copied().unwrap_or(TPM_RH_NULL);
    if handle == TPM_RH_NULL {
        return Ok(None);
    }
    let pcr = handle as usize;
    if !pcr::extend_allowed(pcr, call.locality) {
        return Err(rc::LOCALITY);
    }
    Ok(Some(pcr))
}

/// PCR_Extend: each digest extends the bank of its algorithm. TPM_RH_NULL does nothing.
pub fn pcr_extend(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let digests = call.param(1, read_digest_values)?;
    call.end()?;
    if let Some(pcr) = extend_target(call)? {
        tpm.pcr_changing(pcr);
        for (alg, digest) in digests {
            tpm.pcrs.extend(pcr, alg, digest);
        }
    }
    Ok(())
}

/// PCR_Event: eventData (TPM2B_EVENT, ≤ 1024 octets) is hashed with every bank's algorithm,
/// each digest extends its bank (unless the handle is TPM_RH_NULL), and the digests are
/// returned as a TPML_DIGEST_VALUES.
pub fn pcr_event(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let data = call.param(1, |r| r.tpm2b(MAX_EVENT_DATA))?;
    call.end()?;
    let target = extend_target(call)?;
    if let Some(pcr) = target {
        tpm.pcr_changing(pcr);
    }
    call.out.count(HashAlg::ALL.len());
    for alg in HashAlg::ALL {
        let digest = alg.digest(&[data]);
        if let Some(pcr) = target {
            tpm.pcrs.extend(pcr, alg, digest.as_bytes());
        }
        call.out.u16(alg.alg_id());
        call.out.bytes(digest.as_bytes());
    }
    Ok(())
}

/// PCR_Reset: every bank of a resettable PCR to zero; TPM_RC_LOCALITY when this locality
/// may not reset it (which includes every PCR 0-15).
pub fn pcr_reset(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    let pcr = call.handles.first().copied().unwrap_or(u32::MAX) as usize;
    if !pcr::reset_allowed(pcr, call.locality) {
        return Err(rc::LOCALITY);
    }
    tpm.pcr_changing(pcr);
    tpm.pcrs.reset(pcr);
    Ok(())
}

/// Selections of every bank with every PCR: TPM_CAP_PCRS's allocation.
pub fn allocation() -> [Selection; BANKS] {
    HashAlg::ALL.map(|hash| Selection {
        hash,
        select: [0xff; pcr::PCR_SELECT_SIZE],
    })
}

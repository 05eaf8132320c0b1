//! TPM2_Clear, TPM2_ClearControl and TPM2_HierarchyChangeAuth (Part 3 §24.6, §24.7,
//! §24.8; checks and actions from Part 4's `TPM2_Clear`, `TPM2_ClearControl` and
//! `TPM2_HierarchyChangeAuth`).

use super::super::constants::{TPM_RH_ENDORSEMENT, TPM_RH_LOCKOUT, TPM_RH_OWNER, TPM_RH_PLATFORM};
use super::super::hash::{HashAlg, MAX_DIGEST_SIZE};
use super::super::rc::{self, Rc};
use super::super::Tpm;
use super::testing::read_yes_no;
use super::Call;

/// HierarchyChangeAuth: authHandle (TPMI_RH_HIERARCHY_AUTH, USER auth); newAuth
/// (TPM2B_AUTH: at most sizeof(TPMU_HA) octets, else TPM_RC_SIZE + parameter 1 from
/// unmarshalling).
///
/// newAuth without its trailing zeros (Part 1 §19.6.4.3; Part 4
/// `MemoryRemoveTrailingZeros`) longer than the digest of the context integrity hash
/// (SHA-256 here, the reference's CONTEXT_INTEGRITY_HASH_ALG) is TPM_RC_SIZE + parameter 1;
/// otherwise it becomes the hierarchy's authValue, trailing zeros removed. The response
/// HMAC of an HMAC session already uses it (`auth::rekey_changed_auth`).
pub fn hierarchy_change_auth(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let new_auth = call.param(1, |r| r.tpm2b(MAX_DIGEST_SIZE))?;
    call.end()?;
    let end = new_auth.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let new_auth = &new_auth[..end];
    if new_auth.len() > HashAlg::Sha256.digest_size() {
        return Err(rc::parameter(rc::SIZE, 1));
    }
    let target = match call.handles.first().copied() {
        Some(TPM_RH_OWNER) => &mut tpm.owner_auth,
        Some(TPM_RH_ENDORSEMENT) => &mut tpm.endorsement_auth,
        Some(TPM_RH_LOCKOUT) => &mut tpm.lockout_auth,
        Some(TPM_RH_PLATFORM) => &mut tpm.platform_auth,
        // The handle check admits nothing else.
        _ => return Err(rc::handle(rc::VALUE, 1)),
    };
    *target = new_auth.to_vec();
    Ok(())
}

/// Clear: authHandle (TPMI_RH_CLEAR: lockout or platform, USER auth); no parameters.
/// TPM_RC_DISABLED while disableClear is SET. Otherwise, Part 3 §24.6's list:
///
/// - transient objects of the storage and endorsement hierarchies are flushed, their
///   persistent objects evicted, and every NV index without TPMA_NV_PLATFORMCREATE released;
/// - a new storage primary seed (SPS) from the DRBG; shProof, derived from the SPS here
///   (`commands/hash.rs`), changes with it. ehProof is derived from the EPS alone and so
///   does not change (a known deviation: Part 3 asks for a new ehProof);
/// - ownerAuth, endorsementAuth and lockoutAuth become the Empty Buffer (the primary
///   policies are always empty: TPM2_SetPrimaryPolicy is not implemented; shEnable and
///   ehEnable are always SET: TPM2_HierarchyControl is not implemented);
/// - Clock, resetCount, restartCount (and clearCount, as Part 4) become 0;
///   pcrUpdateCounter is incremented.
pub fn clear(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    if tpm.disable_clear {
        return Err(rc::DISABLED);
    }
    for hierarchy in [TPM_RH_OWNER, TPM_RH_ENDORSEMENT] {
        tpm.objects.flush_hierarchy(hierarchy);
        tpm.persistent.retain(|_, o| o.hierarchy != hierarchy);
    }
    tpm.nv.clear_owner();
    tpm.drbg.generate(&mut tpm.sps, &[]);
    tpm.owner_auth.clear();
    tpm.endorsement_auth.clear();
    tpm.lockout_auth.clear();
    tpm.clock_ms = 0;
    tpm.reset_count = 0;
    tpm.restart_count = 0;
    tpm.clear_count = 0;
    tpm.pcrs.bump_update_counter();
    Ok(())
}

/// ClearControl: auth (TPMI_RH_CLEAR, USER auth); disable (TPMI_YES_NO: TPM_RC_VALUE +
/// parameter 1). Lockout may only SET disableClear: disable = NO under lockout is
/// TPM_RC_AUTH_FAIL (Part 3 §24.7); the platform may do both.
pub fn clear_control(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let disable = call.param(1, read_yes_no)?;
    call.end()?;
    if call.handles.first() == Some(&TPM_RH_LOCKOUT) && !disable {
        return Err(rc::AUTH_FAIL);
    }
    tpm.disable_clear = disable;
    Ok(())
}

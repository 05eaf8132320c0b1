//! TPM2_Hash (Part 3 §15.4; Part 4 `TPM2_Hash`), with its TPMT_TK_HASHCHECK ticket
//! (Part 2 §10.7.6).
//!
//! The ticket's HMAC key is the hierarchy's proof value (Part 1 §14.5.1, Part 2 §10.7.1:
//! HMAC_contextAlg(proof, TPM_ST_HASHCHECK || digest), contextAlg being hashAlg here, as in
//! Part 4 `TicketComputeHashCheck`). The reference implementation keeps phProof, shProof
//! and ehProof as random values renewed with the primary seed of their hierarchy; here each
//! is derived from that seed (`Tpm::proof`), which renews them at the same moments
//! (ChangePPS, Clear, ChangeEPS) without more persistent state. TPM2_Sign checks the
//! tickets (`commands/signing.rs`).

use super::super::constants::{
    MAX_DIGEST_BUFFER, TPM_GENERATED_VALUE, TPM_RH_ENDORSEMENT, TPM_RH_NULL, TPM_RH_OWNER,
    TPM_RH_PLATFORM, TPM_ST_HASHCHECK,
};
use super::super::hash::{Digest, HashAlg};
use super::super::marshal::Reader;
use super::super::rc::{self, Rc};
use super::super::Tpm;
use super::Call;

/// Label of the proof derivation.
pub(super) const PROOF_LABEL: &[u8] = b"Parapet hierarchy proof";

impl Tpm {
    /// The proof value of a hierarchy (TPM_RH_OWNER, TPM_RH_ENDORSEMENT, TPM_RH_PLATFORM):
    /// HMAC-SHA256(primary seed, label).
    pub(super) fn proof(&self, hierarchy: u32) -> Option<Digest> {
        let seed = match hierarchy {
            TPM_RH_OWNER => &self.sps,
            TPM_RH_ENDORSEMENT => &self.eps,
            TPM_RH_PLATFORM => &self.pps,
            _ => return None,
        };
        Some(HashAlg::Sha256.hmac(seed, &[PROOF_LABEL]))
    }
}

/// TPMI_ALG_HASH (Part 2 §9.27) without TPM_ALG_NULL: an implemented hash, else TPM_RC_HASH.
fn read_hash_alg(r: &mut Reader) -> Result<HashAlg, Rc> {
    HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)
}

/// TPMI_RH_HIERARCHY+ (Part 2 §9.13): owner, platform, endorsement or (with `+`) null;
/// anything else TPM_RC_VALUE.
pub(super) fn read_hierarchy(r: &mut Reader) -> Result<u32, Rc> {
    match r.u32()? {
        h @ (TPM_RH_OWNER | TPM_RH_ENDORSEMENT | TPM_RH_PLATFORM | TPM_RH_NULL) => Ok(h),
        _ => Err(rc::VALUE),
    }
}

/// Hash: data (TPM2B_MAX_BUFFER, ≤ MAX_DIGEST_BUFFER octets, else TPM_RC_SIZE), hashAlg,
/// hierarchy → outHash (TPM2B_DIGEST), validation (TPMT_TK_HASHCHECK). The ticket is the
/// NULL ticket (tag TPM_ST_HASHCHECK, hierarchy TPM_RH_NULL, empty digest; Part 2 §10.7.1)
/// when the hierarchy is TPM_RH_NULL or the data starts with TPM_GENERATED_VALUE.
pub fn hash(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let data = call.param(1, |r| r.tpm2b(MAX_DIGEST_BUFFER as usize))?;
    let alg = call.param(2, read_hash_alg)?;
    let hierarchy = call.param(3, read_hierarchy)?;
    call.end()?;
    let digest = alg.digest(&[data]);
    call.out.tpm2b(digest.as_bytes());
    let generated = data.len() >= 4 && data[..4] == TPM_GENERATED_VALUE.to_be_bytes();
    write_hashcheck(tpm, call, hierarchy, &digest, !generated);
    Ok(())
}

/// A TPMT_TK_HASHCHECK for `digest` (Part 2 §10.7.6): HMAC_hashAlg(proof, TPM_ST_HASHCHECK
/// || digest) under `hierarchy` when the data was `safe` (see TPM2_Hash and
/// TPM2_SequenceComplete), else the NULL ticket (tag TPM_ST_HASHCHECK, hierarchy
/// TPM_RH_NULL, empty digest; Part 2 §10.7.1), as also for the TPM_RH_NULL hierarchy.
pub(super) fn write_hashcheck(
    tpm: &Tpm,
    call: &mut Call,
    hierarchy: u32,
    digest: &Digest,
    safe: bool,
) {
    call.out.u16(TPM_ST_HASHCHECK);
    match tpm.proof(hierarchy) {
        Some(proof) if safe => {
            let tag = TPM_ST_HASHCHECK.to_be_bytes();
            let hmac = digest
                .alg()
                .hmac(proof.as_bytes(), &[&tag, digest.as_bytes()]);
            call.out.u32(hierarchy);
            call.out.tpm2b(hmac.as_bytes());
        }
        _ => {
            call.out.u32(TPM_RH_NULL);
            call.out.tpm2b(&[]);
        }
    }
}

//! TPM2_CreatePrimary (Part 3 §24.1) and TPM2_ReadPublic (Part 3 §12.4); checks and their
//! order from Part 4's `TPM2_CreatePrimary`, `TPM2_ReadPublic`, `FillInCreationData` and
//! `TicketComputeCreation`. The objects and their template rules are `tpm/object.rs`.

use alloc::vec::Vec;

use super::super::constants::*;
use super::super::hash::{HashAlg, MAX_DIGEST_SIZE};
use super::super::marshal::{Reader, Writer};
use super::super::object::{derive_primary, read_template, Object};
use super::super::pcr::{read_selection_list, write_selection_list};
use super::super::rc::{self, Rc};
use super::super::Tpm;
use super::Call;

/// sizeof(TPMT_HA): the bound of TPM2B_DATA (outsideInfo).
const MAX_DATA: usize = 2 + MAX_DIGEST_SIZE;

/// TPM2B_SENSITIVE_CREATE (Part 2 §11.1.16): size, then userAuth (TPM2B_AUTH, ≤ nameAlg's
/// digest size, checked later) and data (TPM2B_SENSITIVE_DATA); the size must cover them
/// exactly (TPM_RC_SIZE).
fn read_sensitive_create<'a>(r: &mut Reader<'a>) -> Result<(&'a [u8], &'a [u8]), Rc> {
    let mut inner = Reader::new(r.tpm2b(MAX_COMMAND_SIZE)?);
    let auth = inner.tpm2b(MAX_DIGEST_SIZE)?;
    let data = inner.tpm2b(128)?;
    if !inner.is_empty() {
        return Err(rc::SIZE);
    }
    Ok((auth, data))
}

/// TPM2B_PUBLIC (Part 2 §12.2.5) holding a template `object::read_template` accepts; the
/// size must cover it exactly (TPM_RC_SIZE), and may not be 0 (TPM_RC_SIZE).
fn read_public_template(r: &mut Reader) -> Result<super::super::object::Public, Rc> {
    let bytes = r.tpm2b(MAX_COMMAND_SIZE)?;
    if bytes.is_empty() {
        return Err(rc::SIZE);
    }
    let mut inner = Reader::new(bytes);
    let public = read_template(&mut inner)?;
    if !inner.is_empty() {
        return Err(rc::SIZE);
    }
    Ok(public)
}

/// CreatePrimary: primaryHandle (TPMI_RH_HIERARCHY+, USER auth); inSensitive, inPublic,
/// outsideInfo, creationPCR → objectHandle (response handle), outPublic, creationData,
/// creationHash, creationTicket, name.
///
/// After the template checks (parameter 2): inSensitive.userAuth longer than nameAlg's
/// digest, or any inSensitive.data (an ECC key's private part is always generated), is
/// TPM_RC_SIZE + parameter 1; no free slot TPM_RC_OBJECT_MEMORY.
///
/// creationData (TPMS_CREATION_DATA, Part 2 §15.1): pcrSelect = creationPCR, pcrDigest =
/// H_nameAlg of the selected PCRs, locality (TPMA_LOCALITY, bit n for locality n),
/// parentNameAlg TPM_ALG_NULL, parentName = parentQualifiedName = the hierarchy handle,
/// outsideInfo. creationHash = H_nameAlg(creationData). creationTicket (TPMT_TK_CREATION,
/// Part 2 §10.7.3) = HMAC-SHA256(proof, TPM_ST_CREATION || name || creationHash) under the
/// hierarchy's proof (SHA-256 as the reference's CONTEXT_INTEGRITY_HASH_ALG); for
/// TPM_RH_NULL the NULL ticket (TPM_RH_NULL, empty digest).
pub fn create_primary(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let (auth, data) = call.param(1, read_sensitive_create)?;
    let mut public = call.param(2, read_public_template)?;
    let outside_info = call.param(3, |r| r.tpm2b(MAX_DATA))?;
    let creation_pcr = call.param(4, read_selection_list)?;
    call.end()?;
    let hierarchy = call.handles.first().copied().unwrap_or(TPM_RH_NULL);
    let name_alg = public.name_alg;
    if auth.len() > name_alg.digest_size() || !data.is_empty() {
        return Err(rc::parameter(rc::SIZE, 1));
    }
    if !tpm.objects.has_room() {
        return Err(rc::OBJECT_MEMORY);
    }
    let seed = match hierarchy {
        TPM_RH_OWNER => tpm.sps,
        TPM_RH_ENDORSEMENT => tpm.eps,
        TPM_RH_PLATFORM => tpm.pps,
        _ => tpm.null_seed,
    };
    let Some(private) = derive_primary(&seed, &mut public, data) else {
        tpm.failure = true;
        return Err(rc::FAILURE);
    };
    let object = Object {
        public,
        hierarchy,
        private,
        auth: auth.to_vec(),
    };
    let name = object.name();
    let out_public = object.public.to_bytes();

    let mut creation = Writer::new();
    write_selection_list(&mut creation, &creation_pcr);
    let pcr_digest = super::session::pcr_digest(tpm, name_alg, &creation_pcr);
    creation.tpm2b(&pcr_digest);
    creation.u8(1 << call.locality.min(4));
    creation.u16(TPM_ALG_NULL);
    creation.tpm2b(&hierarchy.to_be_bytes());
    creation.tpm2b(&hierarchy.to_be_bytes());
    creation.tpm2b(outside_info);
    let creation = creation.into_vec();
    let creation_hash = name_alg.digest(&[&creation]);
    let ticket: Vec<u8> = match tpm.proof(hierarchy) {
        Some(proof) => HashAlg::Sha256
            .hmac(
                proof.as_bytes(),
                &[
                    &TPM_ST_CREATION.to_be_bytes(),
                    &name,
                    creation_hash.as_bytes(),
                ],
            )
            .as_bytes()
            .to_vec(),
        None => Vec::new(),
    };
    let ticket_hierarchy = if ticket.is_empty() {
        TPM_RH_NULL
    } else {
        hierarchy
    };

    let handle = tpm.objects.insert(object)?;
    call.out_handle = Some(handle);
    call.out.tpm2b(&out_public);
    call.out.tpm2b(&creation);
    call.out.tpm2b(creation_hash.as_bytes());
    call.out.u16(TPM_ST_CREATION);
    call.out.u32(ticket_hierarchy);
    call.out.tpm2b(&ticket);
    call.out.tpm2b(&name);
    Ok(())
}

/// ReadPublic: objectHandle (TPMI_DH_OBJECT, a loaded object) → outPublic, name,
/// qualifiedName.
pub fn read_public(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    let handle = call.handles.first().copied().unwrap_or(0);
    let object = tpm.objects.get(handle).ok_or(rc::handle(rc::HANDLE, 1))?;
    call.out.tpm2b(&object.public.to_bytes());
    call.out.tpm2b(&object.name());
    call.out.tpm2b(&object.qualified_name());
    Ok(())
}

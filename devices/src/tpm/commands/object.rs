//! TPM2_CreatePrimary (Part 3 §24.1), TPM2_Create, TPM2_Load, TPM2_Unseal, TPM2_ReadPublic
//! (Part 3 §12) and TPM2_EvictControl (Part 3 §28.5); checks and their order from Part 4's
//! `TPM2_CreatePrimary`, `TPM2_ReadPublic`, `TPM2_EvictControl`, `FillInCreationData` and
//! `TicketComputeCreation`. The objects and their template rules are `tpm/object.rs`.

use alloc::vec::Vec;

use super::super::constants::*;
use super::super::handles::handle_type;
use super::super::hash::{HashAlg, MAX_DIGEST_SIZE};
use super::super::marshal::{Reader, Writer};
use super::super::object::{
    derive_primary, generate_key, read_sensitive, read_template, sealed_unique, sensitive_bytes,
    unwrap, wrap, KeyKind, Object,
};
use super::super::pcr::{read_selection_list, write_selection_list, Selection};
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

/// creationData, creationHash and creationTicket of a new object (Part 4
/// `FillInCreationData`, `TicketComputeCreation`), marshalled in that order by `write`.
struct Creation {
    data: Vec<u8>,
    hash: Vec<u8>,
    ticket_hierarchy: u32,
    ticket: Vec<u8>,
}

impl Creation {
    fn write(&self, w: &mut Writer) {
        w.tpm2b(&self.data);
        w.tpm2b(&self.hash);
        w.u16(TPM_ST_CREATION);
        w.u32(self.ticket_hierarchy);
        w.tpm2b(&self.ticket);
    }
}

/// See [`Creation`]; `parent` is (parentNameAlg, parentName, parentQualifiedName).
fn creation_data(
    tpm: &Tpm,
    locality: u8,
    object: &Object,
    creation_pcr: &[Selection],
    parent: (u16, &[u8], &[u8]),
    outside_info: &[u8],
) -> Creation {
    let name_alg = object.public.name_alg;
    let hierarchy = object.hierarchy;
    let mut creation = Writer::new();
    write_selection_list(&mut creation, creation_pcr);
    let pcr_digest = super::session::pcr_digest(tpm, name_alg, creation_pcr);
    creation.tpm2b(&pcr_digest);
    creation.u8(1 << locality.min(4));
    creation.u16(parent.0);
    creation.tpm2b(parent.1);
    creation.tpm2b(parent.2);
    creation.tpm2b(outside_info);
    let data = creation.into_vec();
    let creation_hash = name_alg.digest(&[&data]);
    let ticket: Vec<u8> = match tpm.proof(hierarchy) {
        Some(proof) => HashAlg::Sha256
            .hmac(
                proof.as_bytes(),
                &[
                    &TPM_ST_CREATION.to_be_bytes(),
                    &object.name(),
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
    Creation {
        data,
        hash: creation_hash.as_bytes().to_vec(),
        ticket_hierarchy,
        ticket,
    }
}

/// CreatePrimary: primaryHandle (TPMI_RH_HIERARCHY+, USER auth); inSensitive, inPublic,
/// outsideInfo, creationPCR → objectHandle (response handle), outPublic, creationData,
/// creationHash, creationTicket, name.
///
/// After the template checks (parameter 2): inSensitive.userAuth longer than nameAlg's
/// digest, or any inSensitive.data (a key's private part is always generated), is
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
    if public.kind == KeyKind::Sealed {
        // Sealed data primaries are not implemented (TPM2_Create makes sealed objects).
        return Err(rc::parameter(rc::TYPE, 2));
    }
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
    let Some((private, seed_value)) = derive_primary(&seed, &mut public, data) else {
        tpm.failure = true;
        return Err(rc::FAILURE);
    };
    let object = Object {
        public,
        hierarchy,
        private: private.to_vec(),
        auth: auth.to_vec(),
        seed_value,
        parent_qn: Vec::new(),
    };
    let name = object.name();
    let out_public = object.public.to_bytes();
    let handle_name = hierarchy.to_be_bytes();
    let creation = creation_data(
        tpm,
        call.locality,
        &object,
        &creation_pcr,
        (TPM_ALG_NULL, &handle_name, &handle_name),
        outside_info,
    );

    let handle = tpm.objects.insert(object)?;
    call.out_handle = Some(handle);
    call.out.tpm2b(&out_public);
    creation.write(&mut call.out);
    call.out.tpm2b(&name);
    Ok(())
}

/// The loaded storage parent behind handle 1 (Part 4 `IsStorageKey`: restricted decryption
/// key; anything else is TPM_RC_TYPE + handle 1, as Part 3 §12.1 and §12.2 answer).
fn storage_parent(tpm: &Tpm, call: &Call) -> Result<Object, Rc> {
    let handle = call.handles.first().copied().unwrap_or(0);
    let parent = tpm.object(handle).ok_or(rc::handle(rc::HANDLE, 1))?;
    if parent.public.kind != KeyKind::Storage {
        return Err(rc::handle(rc::TYPE, 1));
    }
    Ok(parent.clone())
}

/// Part 1 §22.2 (TPMA_OBJECT fixedTPM): a child may be fixedTPM only under a fixedTPM
/// parent, else TPM_RC_ATTRIBUTES. (`read_template` further asks fixedTPM = fixedParent,
/// which is stricter than a child needs; `tpm2_create` sets both.)
fn check_child_attributes(parent: &Object, child: &super::super::object::Public) -> Result<(), Rc> {
    if child.attributes & TPMA_OBJECT_FIXED_TPM != 0
        && parent.public.attributes & TPMA_OBJECT_FIXED_TPM == 0
    {
        return Err(rc::ATTRIBUTES);
    }
    Ok(())
}

/// Create: parentHandle (TPMI_DH_OBJECT, a loaded storage key, USER auth); inSensitive,
/// inPublic, outsideInfo, creationPCR → outPrivate, outPublic, creationData, creationHash,
/// creationTicket (Part 3 §12.1).
///
/// The template rules are CreatePrimary's (ECC P-256 or RSA-2048 keys, sealed objects), plus
/// [`check_child_attributes`] (parameter 2); the parent must be a storage key (TPM_RC_TYPE +
/// handle 1); inSensitive as for CreatePrimary (TPM_RC_SIZE + parameter 1). The key is drawn
/// from the DRBG (`object::generate_key`), and outPrivate is its TPMT_SENSITIVE wrapped
/// under the parent (`object::wrap`, Part 1 §23). creationData names the parent:
/// parentNameAlg, parentName and parentQualifiedName are the parent's. Nothing is loaded.
pub fn create(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let (auth, data) = call.param(1, read_sensitive_create)?;
    let mut public = call.param(2, read_public_template)?;
    let outside_info = call.param(3, |r| r.tpm2b(MAX_DATA))?;
    let creation_pcr = call.param(4, read_selection_list)?;
    call.end()?;
    let parent = storage_parent(tpm, call)?;
    check_child_attributes(&parent, &public).map_err(|e| rc::parameter(e, 2))?;
    let sealed = public.kind == KeyKind::Sealed;
    if auth.len() > public.name_alg.digest_size() || (!sealed && !data.is_empty()) {
        return Err(rc::parameter(rc::SIZE, 1));
    }
    let (private, seed_value) = if sealed {
        let mut seed_value = alloc::vec![0u8; public.name_alg.digest_size()];
        tpm.drbg.generate(&mut seed_value, &[]);
        public.x = sealed_unique(public.name_alg, &seed_value, data);
        (data.to_vec(), seed_value)
    } else {
        let Some((private, seed_value)) = generate_key(&mut public, &mut tpm.drbg) else {
            tpm.failure = true;
            return Err(rc::FAILURE);
        };
        (private.to_vec(), seed_value)
    };
    let object = Object {
        public,
        hierarchy: parent.hierarchy,
        private,
        auth: auth.to_vec(),
        seed_value,
        parent_qn: parent.qualified_name(),
    };
    let name = object.name();
    let out_private = wrap(
        &parent,
        &name,
        &sensitive_bytes(
            &object.public,
            &object.auth,
            &object.seed_value,
            &object.private,
        ),
    );
    let parent_name = parent.name();
    let creation = creation_data(
        tpm,
        call.locality,
        &object,
        &creation_pcr,
        (
            parent.public.name_alg.alg_id(),
            &parent_name,
            &parent.qualified_name(),
        ),
        outside_info,
    );
    call.out.tpm2b(&out_private);
    call.out.tpm2b(&object.public.to_bytes());
    creation.write(&mut call.out);
    Ok(())
}

/// TPM2B_PRIVATE (Part 2 §12.3.7): at most MAX_CONTEXT_SIZE octets here (TPM_RC_SIZE).
fn read_private<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], Rc> {
    r.tpm2b(MAX_CONTEXT_SIZE)
}

/// Load: parentHandle (TPMI_DH_OBJECT, a loaded storage key, USER auth); inPrivate,
/// inPublic → objectHandle (response handle), name (Part 3 §12.2).
///
/// inPublic must be a template `read_template` accepts with the same child rules as Create
/// (parameter 2); the parent a storage key (TPM_RC_TYPE + handle 1); then inPrivate is
/// unwrapped (`object::unwrap`: TPM_RC_INTEGRITY + parameter 1) and its TPMT_SENSITIVE
/// checked against inPublic (`object::read_sensitive`: TPM_RC_BINDING + parameter 1); no
/// free slot TPM_RC_OBJECT_MEMORY.
pub fn load(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let private = call.param(1, read_private)?;
    let public = call.param(2, read_public_template)?;
    call.end()?;
    let parent = storage_parent(tpm, call)?;
    check_child_attributes(&parent, &public).map_err(|e| rc::parameter(e, 2))?;
    let name = public.name();
    let sensitive = unwrap(&parent, &name, private).map_err(|e| rc::parameter(e, 1))?;
    let (auth, seed_value, private) =
        read_sensitive(&sensitive, &public).map_err(|e| rc::parameter(e, 1))?;
    if !tpm.objects.has_room() {
        return Err(rc::OBJECT_MEMORY);
    }
    let object = Object {
        public,
        hierarchy: parent.hierarchy,
        private,
        auth,
        seed_value,
        parent_qn: parent.qualified_name(),
    };
    let handle = tpm.objects.insert(object)?;
    call.out_handle = Some(handle);
    call.out.tpm2b(&name);
    Ok(())
}

/// Unseal: itemHandle (TPMI_DH_OBJECT, USER auth: password, HMAC, or a policy session
/// matching its authPolicy) → outData (TPM2B_SENSITIVE_DATA) (Part 3 §12.7). An object that
/// is not a sealed data object (TPM_ALG_KEYEDHASH with neither sign nor decrypt) is
/// TPM_RC_TYPE + handle 1 (`read_template` admits no other keyed-hash object, so Part 3's
/// TPM_RC_ATTRIBUTES cannot arise).
pub fn unseal(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    let handle = call.handles.first().copied().unwrap_or(0);
    let object = tpm.object(handle).ok_or(rc::handle(rc::HANDLE, 1))?;
    if object.public.kind != KeyKind::Sealed {
        return Err(rc::handle(rc::TYPE, 1));
    }
    call.out.tpm2b(&object.private);
    Ok(())
}

/// ReadPublic: objectHandle (TPMI_DH_OBJECT, a loaded object) → outPublic, name,
/// qualifiedName.
pub fn read_public(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    let handle = call.handles.first().copied().unwrap_or(0);
    let object = tpm.object(handle).ok_or(rc::handle(rc::HANDLE, 1))?;
    call.out.tpm2b(&object.public.to_bytes());
    call.out.tpm2b(&object.name());
    call.out.tpm2b(&object.qualified_name());
    Ok(())
}

/// TPMI_DH_PERSISTENT (Part 2 §9.7): PERSISTENT_FIRST to PERSISTENT_LAST, else TPM_RC_VALUE.
fn read_persistent_handle(r: &mut Reader) -> Result<u32, Rc> {
    let handle = r.u32()?;
    if (PERSISTENT_FIRST..=PERSISTENT_LAST).contains(&handle) {
        Ok(handle)
    } else {
        Err(rc::VALUE)
    }
}

/// EvictControl: auth (TPMI_RH_PROVISION, USER auth), objectHandle (TPMI_DH_OBJECT);
/// persistentHandle (TPMI_DH_PERSISTENT) (Part 3 §28.5). A transient object is copied to
/// persistentHandle (it stays loaded); a persistent object is removed.
///
/// In Part 4 `TPM2_EvictControl`'s order: an object of the null hierarchy (which the
/// reference marks temporary) or with stClear is TPM_RC_ATTRIBUTES + handle 2 (publicOnly
/// objects do not exist here); a persistent objectHandle other than persistentHandle is
/// TPM_RC_HANDLE + handle 2. Platform authorization may make persistent only platform
/// objects (else TPM_RC_HIERARCHY + handle 2) in the platform range (else TPM_RC_RANGE +
/// parameter 1), and may remove any persistent object; owner authorization may neither make
/// nor remove a platform object (TPM_RC_HIERARCHY + handle 2) and makes them persistent in
/// the owner range only (TPM_RC_RANGE + parameter 1). Then an occupied persistentHandle is
/// TPM_RC_NV_DEFINED, and no room left ([`MAX_PERSISTENT_OBJECTS`]) TPM_RC_NV_SPACE.
pub fn evict_control(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let persistent = call.param(1, read_persistent_handle)?;
    call.end()?;
    let (auth, handle) = match call.handles {
        [auth, handle] => (*auth, *handle),
        _ => return Err(rc::FAILURE),
    };
    let object = tpm.object(handle).ok_or(rc::handle(rc::HANDLE, 2))?;
    if object.hierarchy == TPM_RH_NULL || object.public.attributes & TPMA_OBJECT_ST_CLEAR != 0 {
        return Err(rc::handle(rc::ATTRIBUTES, 2));
    }
    let evict = handle_type(handle) == TPM_HT_PERSISTENT;
    if evict && handle != persistent {
        return Err(rc::handle(rc::HANDLE, 2));
    }
    let platform_object = object.hierarchy == TPM_RH_PLATFORM;
    let platform_range = persistent >= PLATFORM_PERSISTENT;
    if auth == TPM_RH_PLATFORM {
        if !evict && !platform_object {
            return Err(rc::handle(rc::HIERARCHY, 2));
        }
        if !evict && !platform_range {
            return Err(rc::parameter(rc::RANGE, 1));
        }
    } else {
        if platform_object {
            return Err(rc::handle(rc::HIERARCHY, 2));
        }
        if !evict && platform_range {
            return Err(rc::parameter(rc::RANGE, 1));
        }
    }
    if evict {
        tpm.persistent.remove(&handle);
        return Ok(());
    }
    if tpm.persistent.contains_key(&persistent) {
        return Err(rc::NV_DEFINED);
    }
    if tpm.persistent.len() >= MAX_PERSISTENT_OBJECTS {
        return Err(rc::NV_SPACE);
    }
    let object = object.clone();
    tpm.persistent.insert(persistent, object);
    Ok(())
}

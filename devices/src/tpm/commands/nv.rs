//! TPM2_NV_DefineSpace, TPM2_NV_UndefineSpace, TPM2_NV_ReadPublic, TPM2_NV_Write,
//! TPM2_NV_Read (Part 3 §31.3, §31.4, §31.6, §31.7, §31.13; the checks and their order are
//! Part 4's `TPM2_NV_*`, `NvWriteAccessChecks` and `NvReadAccessChecks`). The indices and
//! their public area are `tpm/nv.rs`.
//!
//! Authorization is by the owner or platform hierarchy (TPMA_NV_OWNERWRITE/OWNERREAD,
//! TPMA_NV_PPWRITE/PPREAD) or by the index's own authValue (TPMA_NV_AUTHWRITE/AUTHREAD,
//! checked with the session: `handles::entity_auth`), through a password or HMAC session,
//! or by the index's authPolicy through a policy session (TPMA_NV_POLICYWRITE/POLICYREAD:
//! `handles::entity_policy`). The lock attributes may be defined but nothing sets them: NV_WriteLock,
//! NV_ReadLock and NV_GlobalWriteLock are not implemented.

use super::super::constants::*;
use super::super::hash::MAX_DIGEST_SIZE;
use super::super::marshal::Writer;
use super::super::nv::{check_definition, read_nv_public, NvIndex};
use super::super::rc::{self, Rc};
use super::super::Tpm;
use super::Call;

/// The two handles of NV_Write and NV_Read: authHandle, nvIndex.
fn auth_and_index(call: &Call) -> (u32, u32) {
    match call.handles {
        [auth, index] => (*auth, *index),
        _ => (0, 0),
    }
}

/// NV_DefineSpace: authHandle (TPMI_RH_PROVISION) @; auth (TPM2B_AUTH), publicInfo
/// (TPM2B_NV_PUBLIC).
pub fn nv_define_space(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let auth = call.param(1, |r| r.tpm2b(MAX_DIGEST_SIZE))?;
    let public = call.param(2, read_nv_public)?;
    call.end()?;
    let auth_handle = call.handles.first().copied().unwrap_or(0);
    check_definition(auth_handle, &public, auth)?;
    tpm.nv.define(NvIndex::new(public, auth))
}

/// NV_UndefineSpace: authHandle (TPMI_RH_PROVISION) @, nvIndex (TPMI_RH_NV_INDEX). An index
/// with TPMA_NV_POLICY_DELETE needs NV_UndefineSpaceSpecial (TPM_RC_ATTRIBUTES, handle 2);
/// one the platform created may not be deleted by the owner (TPM_RC_NV_AUTHORIZATION).
pub fn nv_undefine_space(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    let (auth_handle, handle) = auth_and_index(call);
    let index = tpm.nv.get(handle).ok_or(rc::handle(rc::HANDLE, 2))?;
    if index.public.has(TPMA_NV_POLICY_DELETE) {
        return Err(rc::handle(rc::ATTRIBUTES, 2));
    }
    if auth_handle == TPM_RH_OWNER && index.public.has(TPMA_NV_PLATFORMCREATE) {
        return Err(rc::NV_AUTHORIZATION);
    }
    tpm.nv.undefine(handle);
    Ok(())
}

/// NV_ReadPublic: nvIndex → nvPublic (TPM2B_NV_PUBLIC), nvName (TPM2B_NAME).
pub fn nv_read_public(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    let handle = call.handles.first().copied().unwrap_or(0);
    let index = tpm.nv.get(handle).ok_or(rc::handle(rc::HANDLE, 1))?;
    let mut public = Writer::new();
    index.public.write(&mut public);
    call.out.tpm2b(public.as_slice());
    call.out.tpm2b(&index.public.name());
    Ok(())
}

/// Who may act on an index: the owner with `owner`, the platform with `platform`, the index
/// itself (its attribute was checked with the session). Another index may not authorize
/// it. TPM_RC_NV_AUTHORIZATION otherwise.
fn access(
    auth_handle: u32,
    handle: u32,
    attributes: u32,
    owner: u32,
    platform: u32,
) -> Result<(), Rc> {
    let allowed = match auth_handle {
        TPM_RH_OWNER => attributes & owner != 0,
        TPM_RH_PLATFORM => attributes & platform != 0,
        h => h == handle,
    };
    if allowed {
        Ok(())
    } else {
        Err(rc::NV_AUTHORIZATION)
    }
}

/// NV_Write: authHandle (TPMI_RH_NV_AUTH) @, nvIndex; data (TPM2B_MAX_NV_BUFFER), offset.
pub fn nv_write(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let data = call.param(1, |r| r.tpm2b(MAX_NV_BUFFER_SIZE))?;
    let offset = usize::from(call.param(2, |r| r.u16())?);
    call.end()?;
    let (auth_handle, handle) = auth_and_index(call);
    let index = tpm.nv.get_mut(handle).ok_or(rc::handle(rc::HANDLE, 2))?;
    let public = &index.public;
    if public.has(TPMA_NV_WRITELOCKED) {
        return Err(rc::NV_LOCKED);
    }
    access(
        auth_handle,
        handle,
        public.attributes,
        TPMA_NV_OWNERWRITE,
        TPMA_NV_PPWRITE,
    )?;
    let size = index.data.len();
    if offset > size {
        return Err(rc::parameter(rc::VALUE, 2));
    }
    if data.len() > size - offset {
        return Err(rc::NV_RANGE);
    }
    // TPMA_NV_WRITEALL: the whole index at once.
    if public.has(TPMA_NV_WRITEALL) && data.len() < size {
        return Err(rc::NV_RANGE);
    }
    index.data[offset..offset + data.len()].copy_from_slice(data);
    index.public.attributes |= TPMA_NV_WRITTEN;
    Ok(())
}

/// NV_Read: authHandle (TPMI_RH_NV_AUTH) @, nvIndex; size, offset → data
/// (TPM2B_MAX_NV_BUFFER).
pub fn nv_read(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let size = usize::from(call.param(1, |r| r.u16())?);
    let offset = usize::from(call.param(2, |r| r.u16())?);
    call.end()?;
    let (auth_handle, handle) = auth_and_index(call);
    let index = tpm.nv.get(handle).ok_or(rc::handle(rc::HANDLE, 2))?;
    let public = &index.public;
    if public.has(TPMA_NV_READLOCKED) {
        return Err(rc::NV_LOCKED);
    }
    access(
        auth_handle,
        handle,
        public.attributes,
        TPMA_NV_OWNERREAD,
        TPMA_NV_PPREAD,
    )?;
    // After the access checks, so an unwritten index still reports its authorization
    // errors first (Part 4 NvReadAccessChecks).
    if !public.has(TPMA_NV_WRITTEN) {
        return Err(rc::NV_UNINITIALIZED);
    }
    if size > MAX_NV_BUFFER_SIZE {
        return Err(rc::parameter(rc::VALUE, 1));
    }
    if offset > index.data.len() {
        return Err(rc::parameter(rc::VALUE, 2));
    }
    if size > index.data.len() - offset {
        return Err(rc::NV_RANGE);
    }
    call.out.tpm2b(&index.data[offset..offset + size]);
    Ok(())
}

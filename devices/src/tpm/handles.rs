//! The handle space (Part 2 §7): what each handle type means here, how the handle area of a
//! command is unmarshalled (the TPMI_DH_* / TPMI_RH_* interface types), and the entity
//! behind a handle when an authorization names it.
//!
//! Implemented so far: PCRs (TPM_HT_PCR, 0..23), NV indices (TPM_HT_NV_INDEX, `nv.rs`), the
//! owner, endorsement, lockout and platform hierarchies as authorization entities (their
//! authValues from TPM2_HierarchyChangeAuth), the password pseudo-session TPM_RS_PW, and policy session handles
//! in the handle area (PolicyPCR, PolicyGetDigest), and loaded transient objects (USER role:
//! their authValue with userWithAuth, their authPolicy; Sign, Quote), and persistent objects (TPM2_EvictControl), which
//! every TPMI_DH_OBJECT handle may name as it names a loaded one. A new entity type adds a [`HandleKind`] (its unmarshalling rule) and an
//! arm in [`entity_auth`].

use super::constants::{
    HMAC_SESSION_FIRST, HMAC_SESSION_LAST, HR_SHIFT, POLICY_SESSION_FIRST, POLICY_SESSION_LAST,
    TPMA_NV_AUTHREAD, TPMA_NV_AUTHWRITE, TPMA_NV_NO_DA, TPMA_NV_POLICYREAD, TPMA_NV_POLICYWRITE,
    TPMA_OBJECT_NO_DA, TPMA_OBJECT_USER_WITH_AUTH, TPM_CC_NV_READ, TPM_CC_NV_WRITE, TPM_HT_PCR,
    TPM_HT_PERSISTENT, TPM_HT_TRANSIENT, TPM_RH_ENDORSEMENT, TPM_RH_LOCKOUT, TPM_RH_NULL,
    TPM_RH_OWNER, TPM_RH_PLATFORM, TPM_RH_PLATFORM_NV, TPM_RS_PW,
};
use alloc::vec::Vec;

use super::nv::is_nv_index;
use super::pcr::PCR_COUNT;
use super::rc::{self, Rc};
use super::Tpm;

/// The top octet of a handle (TPM_HT).
pub fn handle_type(handle: u32) -> u8 {
    (handle >> HR_SHIFT) as u8
}

/// The permanent handles every TPM has (Part 2 §7.4), reported by
/// GetCapability(TPM_CAP_HANDLES, TPM_HT_PERMANENT), in order.
pub const PERMANENT_HANDLES: [u32; 7] = [
    TPM_RH_OWNER,
    TPM_RH_NULL,
    TPM_RS_PW,
    TPM_RH_LOCKOUT,
    TPM_RH_ENDORSEMENT,
    TPM_RH_PLATFORM,
    TPM_RH_PLATFORM_NV,
];

/// PCR handles: TPM_HT_PCR << 24 | n, n < PCR_COUNT.
pub fn pcr_handle(n: usize) -> u32 {
    ((TPM_HT_PCR as u32) << HR_SHIFT) | n as u32
}

/// How a command's handle is unmarshalled: an interface type of Part 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleKind {
    /// TPMI_DH_PCR (Part 2 §9.6): a PCR handle below PCR_COUNT; `+` allows TPM_RH_NULL.
    Pcr { allow_null: bool },
    /// TPMI_RH_PROVISION (Part 2 §9.12): TPM_RH_OWNER or TPM_RH_PLATFORM.
    Provision,
    /// TPMI_RH_NV_AUTH (Part 2 §9.21): TPM_RH_OWNER, TPM_RH_PLATFORM or an NV index.
    NvAuth,
    /// TPMI_RH_NV_INDEX (Part 2 §9.23): an NV index.
    NvIndex,
    /// TPMI_DH_OBJECT+ (Part 2 §9.3): a transient or persistent object, or TPM_RH_NULL.
    /// No objects exist yet, so an object handle is TPM_RC_HANDLE (not loaded).
    ObjectOrNull,
    /// TPMI_DH_ENTITY+ (Part 2 §9.4): StartAuthSession's bind. TPM_RH_NULL and the entities
    /// [`entity_auth`] knows (owner, platform, PCRs, defined NV indices); any other handle
    /// is TPM_RC_VALUE (undefined NV index: TPM_RC_HANDLE).
    EntityOrNull,
    /// TPMI_SH_POLICY (Part 2 §9.8): a policy session handle; one not loaded is
    /// TPM_RC_REFERENCE_H0 (Part 4 `EntityGetLoadStatus`).
    PolicySession,
    /// TPMI_RH_HIERARCHY+ (Part 2 §9.13): CreatePrimary's primaryHandle: owner,
    /// endorsement, platform or null; anything else TPM_RC_VALUE.
    Hierarchy,
    /// TPMI_DH_OBJECT (Part 2 §9.3): a loaded transient object (one not loaded:
    /// TPM_RC_REFERENCE_H0, Part 4 `EntityGetLoadStatus`) or a persistent object (one not
    /// there: TPM_RC_HANDLE, Part 4 `NvLoadObject`); anything else TPM_RC_VALUE.
    Object,
    /// TPMI_DH_OBJECT (Part 2 §9.3) naming a sequence object (SequenceUpdate,
    /// SequenceComplete, EventSequenceComplete): checked as [`HandleKind::Object`] but any
    /// loaded transient object passes; the command answers TPM_RC_MODE when it is not a
    /// sequence of the right kind (Part 4 `TPM2_SequenceUpdate`).
    Sequence,
    /// TPMI_DH_CONTEXT (Part 2 §9.10): ContextSave's saveHandle, an HMAC or policy session
    /// or a transient object; one not loaded is TPM_RC_REFERENCE_H0 (Part 4
    /// `EntityGetLoadStatus`; no transient object is ever loaded yet).
    Context,
    /// TPMI_RH_HIERARCHY_AUTH (Part 2 §9.14): TPM_RH_OWNER, TPM_RH_ENDORSEMENT,
    /// TPM_RH_LOCKOUT or TPM_RH_PLATFORM; anything else TPM_RC_VALUE.
    HierarchyAuth,
    /// TPMI_RH_CLEAR (Part 2 §9.19): TPM_RH_LOCKOUT or TPM_RH_PLATFORM; anything else
    /// TPM_RC_VALUE.
    Clear,
}

impl HandleKind {
    /// Checks an unmarshalled handle; TPM_RC_VALUE when it is not of the type, TPM_RC_HANDLE
    /// when it names an NV index that is not defined (Part 4 `EntityGetLoadStatus`), both
    /// numbered by the caller with the handle's position.
    pub fn check(self, tpm: &Tpm, handle: u32) -> Result<(), Rc> {
        let nv_defined = || {
            if tpm.nv.get(handle).is_some() {
                Ok(())
            } else {
                Err(rc::HANDLE)
            }
        };
        match self {
            HandleKind::Provision => match handle {
                TPM_RH_OWNER | TPM_RH_PLATFORM => Ok(()),
                _ => Err(rc::VALUE),
            },
            HandleKind::NvAuth => match handle {
                TPM_RH_OWNER | TPM_RH_PLATFORM => Ok(()),
                h if is_nv_index(h) => nv_defined(),
                _ => Err(rc::VALUE),
            },
            HandleKind::NvIndex if is_nv_index(handle) => nv_defined(),
            HandleKind::NvIndex => Err(rc::VALUE),
            HandleKind::ObjectOrNull => match handle_type(handle) {
                _ if handle == TPM_RH_NULL => Ok(()),
                TPM_HT_TRANSIENT | TPM_HT_PERSISTENT => Err(rc::HANDLE),
                _ => Err(rc::VALUE),
            },
            HandleKind::EntityOrNull => {
                if handle_type(handle) == TPM_HT_TRANSIENT {
                    // Binding a session to an object is not implemented.
                    return Err(rc::VALUE);
                }
                if is_nv_index(handle) {
                    return nv_defined();
                }
                match entity_auth(tpm, 0, handle) {
                    EntityAuth::Value(..) => Ok(()),
                    _ => Err(rc::VALUE),
                }
            }
            HandleKind::PolicySession => {
                if !(POLICY_SESSION_FIRST..=POLICY_SESSION_LAST).contains(&handle) {
                    Err(rc::VALUE)
                } else if tpm.sessions.get(handle).is_some() {
                    Ok(())
                } else {
                    Err(rc::REFERENCE_H0)
                }
            }
            HandleKind::HierarchyAuth => match handle {
                TPM_RH_OWNER | TPM_RH_ENDORSEMENT | TPM_RH_LOCKOUT | TPM_RH_PLATFORM => Ok(()),
                _ => Err(rc::VALUE),
            },
            HandleKind::Clear => match handle {
                TPM_RH_LOCKOUT | TPM_RH_PLATFORM => Ok(()),
                _ => Err(rc::VALUE),
            },
            HandleKind::Hierarchy => match handle {
                TPM_RH_OWNER | TPM_RH_ENDORSEMENT | TPM_RH_PLATFORM | TPM_RH_NULL => Ok(()),
                _ => Err(rc::VALUE),
            },
            HandleKind::Object => match handle_type(handle) {
                TPM_HT_TRANSIENT if tpm.objects.get(handle).is_some() => Ok(()),
                TPM_HT_TRANSIENT => Err(rc::REFERENCE_H0),
                TPM_HT_PERSISTENT if tpm.persistent.contains_key(&handle) => Ok(()),
                TPM_HT_PERSISTENT => Err(rc::HANDLE),
                _ => Err(rc::VALUE),
            },
            HandleKind::Sequence => match handle_type(handle) {
                TPM_HT_TRANSIENT if tpm.objects.is_loaded(handle) => Ok(()),
                TPM_HT_TRANSIENT => Err(rc::REFERENCE_H0),
                TPM_HT_PERSISTENT if tpm.persistent.contains_key(&handle) => Ok(()),
                TPM_HT_PERSISTENT => Err(rc::HANDLE),
                _ => Err(rc::VALUE),
            },
            HandleKind::Context => {
                let session = (HMAC_SESSION_FIRST..=HMAC_SESSION_LAST).contains(&handle)
                    || (POLICY_SESSION_FIRST..=POLICY_SESSION_LAST).contains(&handle);
                if !session && handle_type(handle) != TPM_HT_TRANSIENT {
                    Err(rc::VALUE)
                } else if tpm.sessions.get(handle).is_some() || tpm.objects.is_loaded(handle) {
                    Ok(())
                } else {
                    Err(rc::REFERENCE_H0)
                }
            }
            HandleKind::Pcr { allow_null } => {
                if handle == TPM_RH_NULL {
                    return if allow_null { Ok(()) } else { Err(rc::VALUE) };
                }
                if (handle as usize) < PCR_COUNT {
                    Ok(())
                } else {
                    Err(rc::VALUE)
                }
            }
        }
    }
}

/// What a password authorization of an entity is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityAuth<'t> {
    /// The entity's authValue, and whether the entity is exempt from dictionary-attack
    /// protection (Part 4 `IsDAExempted`).
    Value(&'t [u8], bool),
    /// The authValue may not be used by this command (Part 4 `IsAuthValueAvailable`): an NV
    /// index without TPMA_NV_AUTHREAD read, or without TPMA_NV_AUTHWRITE written, through
    /// its own authorization. TPM_RC_AUTH_UNAVAILABLE.
    Unavailable,
    /// No entity to authorize.
    None,
}

/// The authValue of the entity behind `handle` for a password authorization of command
/// `cc` (Part 1 §19.8.4). PCRs have an empty authValue (PCR_SetAuthValue is not implemented)
/// and are always DA-exempt; so is TPM_RH_NULL, which a `+` handle such as PCR_Extend's may
/// name (Part 4 `EntityGetAuthValue`: empty). The owner, endorsement, lockout and platform
/// hierarchies have the authValue TPM2_HierarchyChangeAuth set (empty at first); every
/// permanent handle but TPM_RH_LOCKOUT is DA-exempt (Part 4 `IsDAExempted`). An NV index is
/// DA-exempt with TPMA_NV_NO_DA.
pub fn entity_auth(tpm: &Tpm, cc: u32, handle: u32) -> EntityAuth<'_> {
    match handle {
        TPM_RH_OWNER => return EntityAuth::Value(&tpm.owner_auth, true),
        TPM_RH_ENDORSEMENT => return EntityAuth::Value(&tpm.endorsement_auth, true),
        TPM_RH_PLATFORM => return EntityAuth::Value(&tpm.platform_auth, true),
        TPM_RH_LOCKOUT => return EntityAuth::Value(&tpm.lockout_auth, false),
        _ => {}
    }
    if handle == TPM_RH_NULL || (handle_type(handle) == TPM_HT_PCR && (handle as usize) < PCR_COUNT)
    {
        return EntityAuth::Value(&[], true);
    }
    if let Some(index) = tpm.nv.get(handle) {
        let needed = match cc {
            TPM_CC_NV_READ => TPMA_NV_AUTHREAD,
            TPM_CC_NV_WRITE => TPMA_NV_AUTHWRITE,
            _ => 0,
        };
        if needed != 0 && !index.public.has(needed) {
            return EntityAuth::Unavailable;
        }
        return EntityAuth::Value(&index.auth, index.public.has(TPMA_NV_NO_DA));
    }
    if let Some(object) = tpm.object(handle) {
        // Every command here that authorizes an object (Sign, Quote) asks for the USER
        // role: the authValue serves only with userWithAuth (Part 1 §19.7.1; Part 4
        // `IsAuthValueAvailable`; a loaded object always has its sensitive part).
        let attributes = object.public.attributes;
        if attributes & TPMA_OBJECT_USER_WITH_AUTH == 0 {
            return EntityAuth::Unavailable;
        }
        return EntityAuth::Value(&object.auth, attributes & TPMA_OBJECT_NO_DA != 0);
    }
    if let Some(sequence) = tpm.objects.sequence(handle) {
        // A sequence object: its auth from TPM2_HashSequenceStart, DA-exempt (Part 4
        // `AllocateSequenceSlot` sets noDA).
        return EntityAuth::Value(&sequence.auth, true);
    }
    EntityAuth::None
}

/// The authPolicy a policy session must match to authorize `handle` for command `cc`
/// (Part 1 §19.7.3): an NV index's, when it has TPMA_NV_POLICYREAD (NV_Read) or
/// TPMA_NV_POLICYWRITE (NV_Write), else the policy may not be used
/// ([`EntityAuth::Unavailable`], TPM_RC_AUTH_UNAVAILABLE as Part 4 `IsPolicySessionValid`
/// answers). The hierarchies and PCRs have an empty authPolicy (SetPrimaryPolicy and
/// PCR_SetAuthPolicy are not implemented), which no policyDigest matches.
pub fn entity_policy(tpm: &Tpm, cc: u32, handle: u32) -> EntityAuth<'_> {
    if let Some(object) = tpm.object(handle) {
        // USER role: a policy session always may (Part 1 §19.7.1), against authPolicy.
        let public = &object.public;
        return EntityAuth::Value(
            &public.auth_policy,
            public.attributes & TPMA_OBJECT_NO_DA != 0,
        );
    }
    if let Some(index) = tpm.nv.get(handle) {
        let needed = match cc {
            TPM_CC_NV_READ => TPMA_NV_POLICYREAD,
            TPM_CC_NV_WRITE => TPMA_NV_POLICYWRITE,
            _ => 0,
        };
        if needed != 0 && !index.public.has(needed) {
            return EntityAuth::Unavailable;
        }
        return EntityAuth::Value(&index.public.auth_policy, index.public.has(TPMA_NV_NO_DA));
    }
    match entity_auth(tpm, cc, handle) {
        EntityAuth::Value(_, da_exempt) => EntityAuth::Value(&[], da_exempt),
        other => other,
    }
}

/// The Name of the entity behind a handle of the handle area (Part 1 §16): an NV index's
/// is its nameAlg and the digest of its public area, every other handle's is the handle.
pub fn name(tpm: &Tpm, handle: u32) -> Vec<u8> {
    if let Some(object) = tpm.object(handle) {
        return object.name();
    }
    match tpm.nv.get(handle) {
        Some(index) => index.public.name(),
        None => handle.to_be_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_handles() {
        let pcr = HandleKind::Pcr { allow_null: false };
        let pcr_or_null = HandleKind::Pcr { allow_null: true };
        let tpm = Tpm::new([0; 32]);
        assert_eq!(pcr.check(&tpm, 0), Ok(()));
        assert_eq!(pcr.check(&tpm, 23), Ok(()));
        assert_eq!(pcr.check(&tpm, 24), Err(rc::VALUE));
        assert_eq!(pcr.check(&tpm, TPM_RH_NULL), Err(rc::VALUE));
        assert_eq!(pcr_or_null.check(&tpm, TPM_RH_NULL), Ok(()));
        assert_eq!(pcr_or_null.check(&tpm, TPM_RH_OWNER), Err(rc::VALUE));
        assert_eq!(pcr_or_null.check(&tpm, 0x8000_0000), Err(rc::VALUE));
        assert_eq!(pcr_handle(23), 23);
        assert_eq!(handle_type(TPM_RS_PW), 0x40);
        let value = EntityAuth::Value(&[], true);
        assert_eq!(entity_auth(&tpm, 0, 5), value);
        assert_eq!(entity_auth(&tpm, 0, TPM_RH_NULL), value);
        assert_eq!(entity_auth(&tpm, 0, TPM_RH_OWNER), value);
        assert_eq!(entity_auth(&tpm, 0, TPM_RH_ENDORSEMENT), value);
        assert_eq!(
            entity_auth(&tpm, 0, TPM_RH_LOCKOUT),
            EntityAuth::Value(&[], false),
            "lockoutAuth is not DA-exempt"
        );
        assert_eq!(entity_auth(&tpm, 0, 0x0100_0000), EntityAuth::None);
    }

    #[test]
    fn nv_handles() {
        let tpm = Tpm::new([0; 32]);
        let provision = HandleKind::Provision;
        assert_eq!(provision.check(&tpm, TPM_RH_OWNER), Ok(()));
        assert_eq!(provision.check(&tpm, TPM_RH_PLATFORM), Ok(()));
        assert_eq!(provision.check(&tpm, TPM_RH_ENDORSEMENT), Err(rc::VALUE));
        assert_eq!(provision.check(&tpm, TPM_RH_NULL), Err(rc::VALUE));
        assert_eq!(HandleKind::NvAuth.check(&tpm, TPM_RH_OWNER), Ok(()));
        assert_eq!(
            HandleKind::NvAuth.check(&tpm, TPM_RH_LOCKOUT),
            Err(rc::VALUE)
        );
        assert_eq!(HandleKind::NvAuth.check(&tpm, 0x0100_0001), Err(rc::HANDLE));
        assert_eq!(
            HandleKind::NvIndex.check(&tpm, 0x01FF_FFFF),
            Err(rc::HANDLE)
        );
        assert_eq!(HandleKind::NvIndex.check(&tpm, 0x0200_0000), Err(rc::VALUE));
        assert_eq!(
            HandleKind::NvIndex.check(&tpm, TPM_RH_OWNER),
            Err(rc::VALUE)
        );
    }
}

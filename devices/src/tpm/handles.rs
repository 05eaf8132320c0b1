//! The handle space (Part 2 §7): what each handle type means here, how the handle area of a
//! command is unmarshalled (the TPMI_DH_* / TPMI_RH_* interface types), and the entity
//! behind a handle when an authorization names it.
//!
//! Implemented so far: PCRs (TPM_HT_PCR, 0..23), and the password pseudo-session TPM_RS_PW.
//! Transient and persistent objects, NV indices and sessions do not exist yet, so the
//! handle lists GetCapability gives for them are empty. A new entity type adds a
//! [`HandleKind`] (its unmarshalling rule) and an arm in [`entity_auth_value`].

use super::constants::{
    HR_SHIFT, TPM_HT_PCR, TPM_RH_ENDORSEMENT, TPM_RH_LOCKOUT, TPM_RH_NULL, TPM_RH_OWNER,
    TPM_RH_PLATFORM, TPM_RH_PLATFORM_NV, TPM_RS_PW,
};
use super::pcr::PCR_COUNT;
use super::rc::{self, Rc};

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
}

impl HandleKind {
    /// Checks an unmarshalled handle; TPM_RC_VALUE when it is not of the type (numbered by
    /// the caller with the handle's position).
    pub fn check(self, handle: u32) -> Result<(), Rc> {
        match self {
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

/// The authValue of the entity behind `handle`, for a password authorization (Part 1
/// §19.8.4), and whether the entity is exempt from dictionary-attack protection (Part 4
/// `IsDAExempted`). PCRs have an empty authValue (PCR_SetAuthValue is not implemented) and are
/// always DA-exempt; so is TPM_RH_NULL, which a `+` handle such as PCR_Extend's may name
/// (Part 4 `EntityGetAuthValue`: empty). `None`: no entity to authorize.
pub fn entity_auth_value(handle: u32) -> Option<(&'static [u8], bool)> {
    if handle == TPM_RH_NULL || (handle_type(handle) == TPM_HT_PCR && (handle as usize) < PCR_COUNT)
    {
        return Some((&[], true));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_handles() {
        let pcr = HandleKind::Pcr { allow_null: false };
        let pcr_or_null = HandleKind::Pcr { allow_null: true };
        assert_eq!(pcr.check(0), Ok(()));
        assert_eq!(pcr.check(23), Ok(()));
        assert_eq!(pcr.check(24), Err(rc::VALUE));
        assert_eq!(pcr.check(TPM_RH_NULL), Err(rc::VALUE));
        assert_eq!(pcr_or_null.check(TPM_RH_NULL), Ok(()));
        assert_eq!(pcr_or_null.check(TPM_RH_OWNER), Err(rc::VALUE));
        assert_eq!(pcr_or_null.check(0x8000_0000), Err(rc::VALUE));
        assert_eq!(pcr_handle(23), 23);
        assert_eq!(handle_type(TPM_RS_PW), 0x40);
        assert_eq!(entity_auth_value(5), Some((&[][..], true)));
        assert_eq!(entity_auth_value(TPM_RH_NULL), Some((&[][..], true)));
        assert_eq!(entity_auth_value(TPM_RH_OWNER), None);
    }
}

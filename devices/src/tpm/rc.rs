//! TPM_RC response codes (TPM 2.0 Library Part 2 §6.6, Tables 16 and 17) and the rules for
//! numbering a format-one code with the handle, session or parameter it is about.
//!
//! A response code is "format one" when bit 7 is set: bits 5:0 give the error, bit 6 says
//! "parameter" (TPM_RC_P), and bits 11:8 the number: 1-15 for a parameter, and when bit 6 is
//! clear, 1-7 for a handle (bit 11 clear, TPM_RC_H) or a session (bit 11 set, TPM_RC_S).
//! Format-zero codes (bit 7 clear: TPM_RC_VER1 + n, TPM_RC_WARN + n) carry no number.

/// A TPM_RC value.
pub type Rc = u32;

pub const SUCCESS: Rc = 0x000;
/// Not a TPM 2.0 command tag (the same value as TPM 1.2's TPM_BADTAG).
pub const BAD_TAG: Rc = 0x01E;

pub const RC_VER1: Rc = 0x100;
pub const INITIALIZE: Rc = RC_VER1;
pub const FAILURE: Rc = RC_VER1 + 0x001;
pub const AUTH_MISSING: Rc = RC_VER1 + 0x025;
pub const COMMAND_SIZE: Rc = RC_VER1 + 0x042;
pub const COMMAND_CODE: Rc = RC_VER1 + 0x043;
pub const AUTH_CONTEXT: Rc = RC_VER1 + 0x045;
/// The entity's authValue may not be used for this command (Part 4 `IsAuthValueAvailable`).
pub const AUTH_UNAVAILABLE: Rc = RC_VER1 + 0x02F;
/// A policy session is used when the PCRs changed since its PolicyPCR (Part 4
/// `CheckPolicyAuthSession`).
pub const PCR_CHANGED: Rc = RC_VER1 + 0x028;
/// The command is disabled (TPM2_Clear after TPM2_ClearControl(YES)).
pub const DISABLED: Rc = RC_VER1 + 0x020;
pub const NV_RANGE: Rc = RC_VER1 + 0x046;
pub const NV_LOCKED: Rc = RC_VER1 + 0x048;
pub const NV_AUTHORIZATION: Rc = RC_VER1 + 0x049;
pub const NV_UNINITIALIZED: Rc = RC_VER1 + 0x04A;
pub const NV_SPACE: Rc = RC_VER1 + 0x04B;
pub const NV_DEFINED: Rc = RC_VER1 + 0x04C;

pub const RC_FMT1: Rc = 0x080;
pub const ATTRIBUTES: Rc = RC_FMT1 + 0x002;
pub const HASH: Rc = RC_FMT1 + 0x003;
pub const VALUE: Rc = RC_FMT1 + 0x004;
pub const MODE: Rc = RC_FMT1 + 0x009;
pub const HANDLE: Rc = RC_FMT1 + 0x00B;
pub const HIERARCHY: Rc = RC_FMT1 + 0x005;
pub const RANGE: Rc = RC_FMT1 + 0x00D;
pub const AUTH_FAIL: Rc = RC_FMT1 + 0x00E;
pub const NONCE: Rc = RC_FMT1 + 0x00F;
pub const KEY_SIZE: Rc = RC_FMT1 + 0x007;
pub const SIZE: Rc = RC_FMT1 + 0x015;
pub const SYMMETRIC: Rc = RC_FMT1 + 0x016;
pub const ASYMMETRIC: Rc = RC_FMT1 + 0x001;
pub const TYPE: Rc = RC_FMT1 + 0x00A;
pub const KDF: Rc = RC_FMT1 + 0x00C;
pub const SCHEME: Rc = RC_FMT1 + 0x012;
pub const CURVE: Rc = RC_FMT1 + 0x026;
pub const POLICY_FAIL: Rc = RC_FMT1 + 0x01D;
/// A context blob failed its integrity check (TPM2_ContextLoad).
pub const INTEGRITY: Rc = RC_FMT1 + 0x01F;
pub const INSUFFICIENT: Rc = RC_FMT1 + 0x01A;
/// A signature did not verify (TPM2_VerifySignature).
pub const SIGNATURE: Rc = RC_FMT1 + 0x01B;
/// The key cannot do this (a storage key asked to sign).
pub const KEY: Rc = RC_FMT1 + 0x01C;
/// A ticket did not verify (TPM2_Sign's hashcheck ticket).
pub const TICKET: Rc = RC_FMT1 + 0x020;
/// A structure tag is not the one expected.
pub const TAG: Rc = RC_FMT1 + 0x017;
pub const RESERVED_BITS: Rc = RC_FMT1 + 0x021;
/// The public and sensitive parts of a loaded object do not belong together (TPM2_Load).
pub const BINDING: Rc = RC_FMT1 + 0x025;
pub const BAD_AUTH: Rc = RC_FMT1 + 0x022;

pub const RC_WARN: Rc = 0x900;
pub const LOCALITY: Rc = RC_WARN + 0x007;
/// No slot for another session (TPM2_StartAuthSession).
pub const SESSION_MEMORY: Rc = RC_WARN + 0x003;
/// No slot for another transient object (TPM2_CreatePrimary, TPM2_ContextLoad).
pub const OBJECT_MEMORY: Rc = RC_WARN + 0x002;
/// No session handle left: the active (loaded and saved) sessions fill every slot.
pub const SESSION_HANDLES: Rc = RC_WARN + 0x005;
/// TPM_RC_REFERENCE_H0: the handle in handle slot 0 references no loaded session or
/// object; slot n is REFERENCE_H0 + n.
pub const REFERENCE_H0: Rc = RC_WARN + 0x010;
/// TPM_RC_REFERENCE_S0: the session handle in session slot 0 references no loaded session;
/// slot n is REFERENCE_S0 + n.
pub const REFERENCE_S0: Rc = RC_WARN + 0x018;

/// The number fields: TPM_RC_H (handle), TPM_RC_P (parameter), TPM_RC_S (session), TPM_RC_1.
pub const RC_H: Rc = 0x000;
pub const RC_P: Rc = 0x040;
pub const RC_S: Rc = 0x800;
pub const RC_1: Rc = 0x100;

fn numbered(rc: Rc, kind: Rc, n: u32, max: u32) -> Rc {
    // Only format-one codes have a number field, and only an unnumbered one may get one.
    if rc & RC_FMT1 == 0 || rc & (RC_P | RC_S | 0xF00) != 0 || n == 0 || n > max {
        return rc;
    }
    rc | kind | (n * RC_1)
}

/// `rc` about the command's `n`th handle (1-based; 1-7).
pub fn handle(rc: Rc, n: u32) -> Rc {
    numbered(rc, RC_H, n, 7)
}

/// `rc` about the command's `n`th parameter (1-based; 1-15).
pub fn parameter(rc: Rc, n: u32) -> Rc {
    numbered(rc, RC_P, n, 15)
}

/// `rc` about the command's `n`th session (1-based; 1-7).
pub fn session(rc: Rc, n: u32) -> Rc {
    numbered(rc, RC_S, n, 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_matches_part2_examples() {
        // TPM_RC_VALUE + TPM_RC_P + TPM_RC_1: the first parameter's value is wrong.
        assert_eq!(parameter(VALUE, 1), 0x1C4);
        // TPM_RC_HASH + TPM_RC_P + TPM_RC_1.
        assert_eq!(parameter(HASH, 1), 0x1C3);
        // TPM_RC_VALUE + TPM_RC_H + TPM_RC_1: the first handle.
        assert_eq!(handle(VALUE, 1), 0x184);
        // TPM_RC_BAD_AUTH + TPM_RC_S + TPM_RC_1.
        assert_eq!(session(BAD_AUTH, 1), 0x9A2);
        // TPM_RC_SIZE + TPM_RC_S + TPM_RC_4: a fourth session.
        assert_eq!(session(SIZE, 4), 0xC95);
        assert_eq!(parameter(SIZE, 15), 0xFD5);
    }

    #[test]
    fn format_zero_and_already_numbered_codes_are_left_alone() {
        assert_eq!(parameter(COMMAND_SIZE, 1), COMMAND_SIZE);
        assert_eq!(handle(LOCALITY, 1), LOCALITY);
        assert_eq!(parameter(parameter(VALUE, 1), 2), 0x1C4);
        assert_eq!(handle(VALUE, 0), VALUE);
        assert_eq!(handle(VALUE, 8), VALUE, "a handle number has 3 bits");
        assert_eq!(parameter(VALUE, 16), VALUE);
    }
}

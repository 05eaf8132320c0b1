//! The authorization area: command sessions in, response sessions out (Part 1 §18.6-18.8,
//! Part 3 §5.5-5.6; the checks and their order follow Part 4's `RetrieveSessionData`,
//! `ParseSessionBuffer` and `CheckPWAuthSession`).
//!
//! Only the password authorization (TPM_RS_PW) exists so far. A well-formed HMAC or policy
//! session handle references no loaded session, which is TPM_RC_REFERENCE_S0 + the session's
//! slot: the right answer while no session can be started, and the seam where
//! StartAuthSession's sessions plug in.

use alloc::vec::Vec;

use super::constants::{
    HMAC_SESSION_FIRST, HMAC_SESSION_LAST, MAX_SESSION_NUM, POLICY_SESSION_FIRST,
    POLICY_SESSION_LAST, TPMA_SESSION_CONTINUE_SESSION, TPMA_SESSION_RESERVED, TPM_RS_PW,
};
use super::handles::{entity_auth, EntityAuth};
use super::hash::MAX_DIGEST_SIZE;
use super::marshal::{Reader, Writer};
use super::rc::{self, Rc};
use super::Tpm;

/// One command session that passed unmarshalling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordSession<'a> {
    pub attributes: u8,
    pub password: &'a [u8],
}

/// Unmarshals the `authSize` octets of sessions. Errors are numbered with the session.
pub fn read_sessions<'a>(mut area: Reader<'a>) -> Result<Vec<PasswordSession<'a>>, Rc> {
    let mut sessions = Vec::new();
    let mut n: u32 = 0;
    while !area.is_empty() {
        n += 1;
        if n as usize > MAX_SESSION_NUM {
            return Err(rc::session(rc::SIZE, n));
        }
        let err = |e| rc::session(e, n);
        // TPMS_AUTH_COMMAND (Part 2 §10.13.2).
        let handle = area.u32().map_err(err)?;
        let is_pw = handle == TPM_RS_PW;
        if !is_pw
            && !(HMAC_SESSION_FIRST..=HMAC_SESSION_LAST).contains(&handle)
            && !(POLICY_SESSION_FIRST..=POLICY_SESSION_LAST).contains(&handle)
        {
            return Err(err(rc::VALUE));
        }
        let nonce = area.tpm2b(MAX_DIGEST_SIZE).map_err(err)?;
        let attributes = area.u8().map_err(err)?;
        if attributes & TPMA_SESSION_RESERVED != 0 {
            return Err(err(rc::RESERVED_BITS));
        }
        let password = area.tpm2b(MAX_DIGEST_SIZE).map_err(err)?;
        if !is_pw {
            return Err(rc::REFERENCE_S0 + (n - 1));
        }
        // A password session allows no attribute but continueSession and no nonce.
        if attributes & !TPMA_SESSION_CONTINUE_SESSION != 0 {
            return Err(err(rc::ATTRIBUTES));
        }
        if !nonce.is_empty() {
            return Err(err(rc::NONCE));
        }
        sessions.push(PasswordSession {
            attributes,
            password,
        });
    }
    Ok(sessions)
}

/// Checks the sessions of command `cc` against the handles that need authorization: handle
/// i is authorized by session i. `auth_handles` are those handles, in order.
pub fn authorize(
    tpm: &Tpm,
    cc: u32,
    sessions: &[PasswordSession],
    auth_handles: &[u32],
) -> Result<(), Rc> {
    if sessions.len() < auth_handles.len() {
        return Err(rc::AUTH_MISSING);
    }
    for (i, session) in sessions.iter().enumerate() {
        let n = i as u32 + 1;
        // A password session must authorize a handle (Part 4 ParseSessionBuffer).
        let Some(&handle) = auth_handles.get(i) else {
            return Err(rc::session(rc::HANDLE, n));
        };
        let (auth_value, da_exempt) = match entity_auth(tpm, cc, handle) {
            EntityAuth::Value(value, da_exempt) => (value, da_exempt),
            EntityAuth::Unavailable => return Err(rc::AUTH_UNAVAILABLE),
            EntityAuth::None => return Err(rc::session(rc::HANDLE, n)),
        };
        // Trailing zeros of a password are not significant (Part 1 §19.6.4.3).
        let end = session
            .password
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |p| p + 1);
        if !constant_time_eq(&session.password[..end], auth_value) {
            // A DA-exempt entity answers TPM_RC_BAD_AUTH, any other TPM_RC_AUTH_FAIL (Part 4
            // IncrementLockout). NV indices without TPMA_NV_NO_DA are the first entities that
            // are not DA-exempt: they answer TPM_RC_AUTH_FAIL, but the failure counting and
            // lockout of dictionary-attack protection (Part 1 §19.8.6) are not implemented
            // yet.
            let code = if da_exempt {
                rc::BAD_AUTH
            } else {
                rc::AUTH_FAIL
            };
            return Err(rc::session(code, n));
        }
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The response's authorization area: per session an empty nonceTPM, the attributes with
/// continueSession set, and an empty HMAC (TPMS_AUTH_RESPONSE, Part 2 §10.13.4).
pub fn write_responses(w: &mut Writer, sessions: &[PasswordSession]) {
    for s in sessions {
        w.tpm2b(&[]);
        w.u8(s.attributes | TPMA_SESSION_CONTINUE_SESSION);
        w.tpm2b(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(attributes: u8, password: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(TPM_RS_PW);
        w.tpm2b(&[]);
        w.u8(attributes);
        w.tpm2b(password);
        w.into_vec()
    }

    #[test]
    fn password_sessions_parse_and_authorize() {
        let area = pw(1, b"");
        let sessions = read_sessions(Reader::new(&area)).unwrap();
        assert_eq!(sessions.len(), 1);
        let tpm = Tpm::new([0; 32]);
        assert_eq!(authorize(&tpm, 0, &sessions, &[3]), Ok(()));
        // Trailing zeros do not count.
        let area = pw(0, &[0, 0]);
        let sessions = read_sessions(Reader::new(&area)).unwrap();
        assert_eq!(authorize(&tpm, 0, &sessions, &[3]), Ok(()));
        let area = pw(0, b"x");
        let sessions = read_sessions(Reader::new(&area)).unwrap();
        assert_eq!(
            authorize(&tpm, 0, &sessions, &[3]),
            Err(0x9A2),
            "BAD_AUTH + S + 1"
        );
        assert_eq!(
            authorize(&tpm, 0, &sessions, &[]),
            Err(0x98B),
            "HANDLE + S + 1"
        );
        assert_eq!(authorize(&tpm, 0, &[], &[3]), Err(rc::AUTH_MISSING));
    }

    #[test]
    fn malformed_sessions_get_numbered_codes() {
        let mut four = Vec::new();
        for _ in 0..4 {
            four.extend(pw(1, b""));
        }
        assert_eq!(
            read_sessions(Reader::new(&four)),
            Err(0xC95),
            "SIZE + S + 4"
        );
        let mut two = pw(1, b"");
        two.extend(pw(0x20, b""));
        assert_eq!(
            read_sessions(Reader::new(&two)),
            Err(0xA82),
            "ATTRIBUTES + S + 2"
        );
        assert_eq!(read_sessions(Reader::new(&pw(0x08, b""))), Err(0x9A1));
        let mut nonce = pw(1, b"");
        nonce[5] = 1;
        nonce.insert(6, 0xaa);
        assert_eq!(
            read_sessions(Reader::new(&nonce)),
            Err(0x98F),
            "NONCE + S + 1"
        );
        let area = pw(1, b"");
        assert_eq!(read_sessions(Reader::new(&area[..8])), Err(0x99A));
        let mut bad_handle = pw(1, b"");
        bad_handle[..4].copy_from_slice(&0x8000_0000u32.to_be_bytes());
        assert_eq!(read_sessions(Reader::new(&bad_handle)), Err(0x984));
        let mut hmac = pw(1, b"");
        hmac[..4].copy_from_slice(&0x0200_0000u32.to_be_bytes());
        let mut area = pw(1, b"");
        area.extend(hmac);
        assert_eq!(read_sessions(Reader::new(&area)), Err(rc::REFERENCE_S0 + 1));
        let long = [0u8; 49];
        assert_eq!(read_sessions(Reader::new(&pw(1, &long))), Err(0x995));
    }
}

//! The authorization area: command sessions in, response sessions out (Part 1 §18.6-18.8,
//! Part 3 §5.5-5.6; the checks and their order follow Part 4's `RetrieveSessionData`,
//! `ParseSessionBuffer` and `CheckPWAuthSession`).
//!
//! Three kinds of authorization: the password (TPM_RS_PW), HMAC sessions and policy sessions
//! (`session.rs`, started by TPM2_StartAuthSession). [`read_sessions`] unmarshals the area,
//! [`authorize`] checks it before the command runs, [`write_responses`] answers it after.

use alloc::vec::Vec;

use super::constants::{
    HMAC_SESSION_FIRST, HMAC_SESSION_LAST, MAX_SESSION_NUM, MIN_NONCE_SIZE, POLICY_SESSION_FIRST,
    POLICY_SESSION_LAST, TPMA_SESSION_AUDIT, TPMA_SESSION_AUDIT_EXCLUSIVE,
    TPMA_SESSION_AUDIT_RESET, TPMA_SESSION_CONTINUE_SESSION, TPMA_SESSION_DECRYPT,
    TPMA_SESSION_ENCRYPT, TPMA_SESSION_RESERVED, TPM_CC_CLEAR, TPM_CC_HIERARCHY_CHANGE_AUTH,
    TPM_RS_PW,
};
use super::handles::{entity_auth, entity_policy, name, EntityAuth};
use super::hash::{HashAlg, MAX_DIGEST_SIZE};
use super::marshal::{Reader, Writer};
use super::rc::{self, Rc};
use super::session::{SessionType, Symmetric};
use super::Tpm;

/// One command session (TPMS_AUTH_COMMAND, Part 2 §10.13.2) that passed unmarshalling.
/// For TPM_RS_PW `hmac` is the password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSession<'a> {
    pub handle: u32,
    pub nonce: &'a [u8],
    pub attributes: u8,
    pub hmac: &'a [u8],
}

/// A session that authorized its handle: what the response's TPMS_AUTH_RESPONSE needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorized {
    handle: u32,
    attributes: u8,
    nonce_caller: Vec<u8>,
    /// The HMAC key: sessionKey || authValue (Part 1 §19.6.5, §19.6.8).
    key: Vec<u8>,
}

/// Unmarshals the `authSize` octets of sessions. Errors are numbered with the session. An
/// HMAC or policy session handle must name a loaded session (TPM_RC_REFERENCE_S0 + its
/// position), used once per command (TPM_RC_HANDLE); its nonceCaller has 16 octets up to
/// the authHash's digest size (Part 1 §19.6.3; TPM_RC_NONCE); audit is not implemented and
/// decrypt/encrypt need parameter encryption, which is not either: TPM_RC_ATTRIBUTES, or
/// TPM_RC_SYMMETRIC when the session has no symmetric algorithm at all (Part 4
/// `ParseSessionBuffer`).
pub fn read_sessions<'a>(tpm: &Tpm, mut area: Reader<'a>) -> Result<Vec<CommandSession<'a>>, Rc> {
    let mut sessions: Vec<CommandSession<'a>> = Vec::new();
    let mut n: u32 = 0;
    while !area.is_empty() {
        n += 1;
        if n as usize > MAX_SESSION_NUM {
            return Err(rc::session(rc::SIZE, n));
        }
        let err = |e| rc::session(e, n);
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
        let hmac = area.tpm2b(MAX_DIGEST_SIZE).map_err(err)?;
        if is_pw {
            // A password session allows no attribute but continueSession and no nonce.
            if attributes & !TPMA_SESSION_CONTINUE_SESSION != 0 {
                return Err(err(rc::ATTRIBUTES));
            }
            if !nonce.is_empty() {
                return Err(err(rc::NONCE));
            }
        } else {
            let Some(session) = tpm.sessions.get(handle) else {
                return Err(rc::REFERENCE_S0 + (n - 1));
            };
            if sessions.iter().any(|s| s.handle == handle) {
                return Err(err(rc::HANDLE));
            }
            if nonce.len() < MIN_NONCE_SIZE || nonce.len() > session.auth_hash.digest_size() {
                return Err(err(rc::NONCE));
            }
            let audit =
                TPMA_SESSION_AUDIT | TPMA_SESSION_AUDIT_EXCLUSIVE | TPMA_SESSION_AUDIT_RESET;
            if attributes & audit != 0 {
                return Err(err(rc::ATTRIBUTES));
            }
            if attributes & (TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT) != 0 {
                return Err(err(match session.symmetric {
                    Symmetric::Null => rc::SYMMETRIC,
                    Symmetric::Aes128Cfb => rc::ATTRIBUTES,
                }));
            }
        }
        sessions.push(CommandSession {
            handle,
            nonce,
            attributes,
            hmac,
        });
    }
    Ok(sessions)
}

/// cpHash (Part 1 §18.7): H_alg(commandCode || Name of each handle || parameters).
fn cp_hash(tpm: &Tpm, alg: HashAlg, cc: u32, handles: &[u32], params: &[u8]) -> Vec<u8> {
    let names: Vec<Vec<u8>> = handles.iter().map(|&h| name(tpm, h)).collect();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(handles.len() + 2);
    let cc = cc.to_be_bytes();
    parts.push(&cc);
    parts.extend(names.iter().map(Vec::as_slice));
    parts.push(params);
    alg.digest(&parts).as_bytes().to_vec()
}

/// TPM_RC_AUTH_FAIL, or TPM_RC_BAD_AUTH for a DA-exempt entity (Part 4 IncrementLockout),
/// numbered with the session. The failure counting and lockout of dictionary-attack
/// protection (Part 1 §19.8.6) are not implemented yet.
fn auth_failure(da_exempt: bool, n: u32) -> Rc {
    rc::session(
        if da_exempt {
            rc::BAD_AUTH
        } else {
            rc::AUTH_FAIL
        },
        n,
    )
}

/// Checks the sessions of command `cc` against the handles that need authorization: the
/// first `auth_handles` of `handles`, handle i authorized by session i. `params` are the
/// command's parameter octets, for cpHash.
///
/// - Password (Part 1 §19.6.4): the password against the entity's authValue.
/// - HMAC session (Part 1 §19.6.5, §19.6.8): the command HMAC, HMAC_authHash(sessionKey ||
///   authValue, cpHash || nonceCaller || nonceTPM || sessionAttributes); authValue is left
///   out when the session is bound to this very entity (Part 1 §19.6.11).
/// - Policy session (Part 1 §19.7): a trial session cannot authorize (TPM_RC_ATTRIBUTES);
///   policyDigest must equal the entity's authPolicy (TPM_RC_POLICY_FAIL), the PCRs must not
///   have changed since PolicyPCR (TPM_RC_PCR_CHANGED); then the HMAC as above with key
///   sessionKey alone (no PolicyAuthValue or PolicyPassword exists yet).
pub fn authorize(
    tpm: &Tpm,
    cc: u32,
    sessions: &[CommandSession],
    handles: &[u32],
    auth_handles: usize,
    params: &[u8],
) -> Result<Vec<Authorized>, Rc> {
    let auth_handles = &handles[..auth_handles.min(handles.len())];
    if sessions.len() < auth_handles.len() {
        return Err(rc::AUTH_MISSING);
    }
    let mut authorized = Vec::with_capacity(sessions.len());
    for (i, cs) in sessions.iter().enumerate() {
        let n = i as u32 + 1;
        // Every session must authorize a handle (Part 4 ParseSessionBuffer: no audit or
        // encryption-only sessions without those features).
        let Some(&handle) = auth_handles.get(i) else {
            return Err(rc::session(rc::HANDLE, n));
        };
        let Some(session) = tpm.sessions.get(cs.handle) else {
            // TPM_RS_PW.
            let (auth_value, da_exempt) = match entity_auth(tpm, cc, handle) {
                EntityAuth::Value(value, da_exempt) => (value, da_exempt),
                EntityAuth::Unavailable => return Err(rc::AUTH_UNAVAILABLE),
                EntityAuth::None => return Err(rc::session(rc::HANDLE, n)),
            };
            // Trailing zeros of a password are not significant (Part 1 §19.6.4.3).
            let end = cs.hmac.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            if !constant_time_eq(&cs.hmac[..end], auth_value) {
                return Err(auth_failure(da_exempt, n));
            }
            authorized.push(Authorized {
                handle: TPM_RS_PW,
                attributes: cs.attributes,
                nonce_caller: Vec::new(),
                key: Vec::new(),
            });
            continue;
        };
        let mut key = session.session_key.clone();
        let da_exempt = match session.session_type {
            SessionType::Trial => return Err(rc::session(rc::ATTRIBUTES, n)),
            SessionType::Policy => {
                let (policy, da_exempt) = match entity_policy(tpm, cc, handle) {
                    EntityAuth::Value(policy, da_exempt) => (policy, da_exempt),
                    EntityAuth::Unavailable => return Err(rc::AUTH_UNAVAILABLE),
                    EntityAuth::None => return Err(rc::session(rc::HANDLE, n)),
                };
                if !constant_time_eq(&session.policy_digest, policy) {
                    return Err(rc::session(rc::POLICY_FAIL, n));
                }
                if session
                    .pcr_counter
                    .is_some_and(|c| c != tpm.pcrs.update_counter())
                {
                    return Err(rc::PCR_CHANGED);
                }
                da_exempt
            }
            SessionType::Hmac => {
                let (auth_value, da_exempt) = match entity_auth(tpm, cc, handle) {
                    EntityAuth::Value(value, da_exempt) => (value, da_exempt),
                    EntityAuth::Unavailable => return Err(rc::AUTH_UNAVAILABLE),
                    EntityAuth::None => return Err(rc::session(rc::HANDLE, n)),
                };
                let bound_here = session
                    .bound
                    .as_ref()
                    .is_some_and(|(h, value)| *h == handle && value.as_slice() == auth_value);
                if !bound_here {
                    key.extend_from_slice(auth_value);
                }
                da_exempt
            }
        };
        let alg = session.auth_hash;
        let cp = cp_hash(tpm, alg, cc, handles, params);
        let expected = alg.hmac(&key, &[&cp, cs.nonce, &session.nonce_tpm, &[cs.attributes]]);
        if !constant_time_eq(expected.as_bytes(), cs.hmac) {
            return Err(auth_failure(da_exempt, n));
        }
        authorized.push(Authorized {
            handle: cs.handle,
            attributes: cs.attributes,
            nonce_caller: cs.nonce.to_vec(),
            key,
        });
    }
    Ok(authorized)
}

/// After a command that changed the authValue of the entity a session authorized
/// (TPM2_HierarchyChangeAuth; TPM2_Clear, which empties lockoutAuth), an HMAC session's
/// response HMAC is keyed with the authValue as it is now (Part 4 `ComputeResponseHMAC`
/// reads it after the command ran; a session bound to the old value is no longer bound to
/// the entity). Every other command leaves the keys as authorization made them.
pub fn rekey_changed_auth(tpm: &Tpm, cc: u32, authorized: &mut [Authorized], handles: &[u32]) {
    if cc != TPM_CC_HIERARCHY_CHANGE_AUTH && cc != TPM_CC_CLEAR {
        return;
    }
    for (a, &handle) in authorized.iter_mut().zip(handles) {
        let Some(session) = tpm.sessions.get(a.handle) else {
            continue;
        };
        if session.session_type != SessionType::Hmac {
            continue;
        }
        if let EntityAuth::Value(value, _) = entity_auth(tpm, cc, handle) {
            let bound_here = session
                .bound
                .as_ref()
                .is_some_and(|(h, v)| *h == handle && v.as_slice() == value);
            a.key = session.session_key.clone();
            if !bound_here {
                a.key.extend_from_slice(value);
            }
        }
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The response's authorization area (TPMS_AUTH_RESPONSE, Part 2 §10.13.4) after command
/// `cc` succeeded with response parameters `params`. A password session answers an empty
/// nonce, continueSession set and an empty HMAC. An HMAC or policy session rolls its nonce
/// (a new nonceTPM from the DRBG, Part 1 §19.6.3) and answers it, its attributes as sent,
/// and HMAC_authHash(key, rpHash || nonceTPM || nonceCaller || sessionAttributes) with
/// rpHash = H_authHash(TPM_RC_SUCCESS || commandCode || parameters) (Part 1 §19.6.9);
/// without continueSession the session is then flushed.
pub fn write_responses(
    tpm: &mut Tpm,
    cc: u32,
    authorized: &[Authorized],
    params: &[u8],
    w: &mut Writer,
) {
    for a in authorized {
        let Some(session) = tpm.sessions.get_mut(a.handle) else {
            w.tpm2b(&[]);
            w.u8(a.attributes | TPMA_SESSION_CONTINUE_SESSION);
            w.tpm2b(&[]);
            continue;
        };
        let alg = session.auth_hash;
        let mut nonce = [0u8; MAX_DIGEST_SIZE];
        let nonce = &mut nonce[..alg.digest_size()];
        tpm.drbg.generate(nonce, &[]);
        session.nonce_tpm = nonce.to_vec();
        let rp = alg.digest(&[&rc::SUCCESS.to_be_bytes(), &cc.to_be_bytes(), params]);
        let hmac = alg.hmac(
            &a.key,
            &[rp.as_bytes(), nonce, &a.nonce_caller, &[a.attributes]],
        );
        w.tpm2b(nonce);
        w.u8(a.attributes);
        w.tpm2b(hmac.as_bytes());
        if a.attributes & TPMA_SESSION_CONTINUE_SESSION == 0 {
            tpm.sessions.remove(a.handle);
        }
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
        let sessions = read_sessions(&Tpm::new([0; 32]), Reader::new(&area)).unwrap();
        assert_eq!(sessions.len(), 1);
        let tpm = Tpm::new([0; 32]);
        assert_eq!(
            authorize(&tpm, 0, &sessions, &[3], 1, &[]).map(|_| ()),
            Ok(())
        );
        // Trailing zeros do not count.
        let area = pw(0, &[0, 0]);
        let sessions = read_sessions(&Tpm::new([0; 32]), Reader::new(&area)).unwrap();
        assert_eq!(
            authorize(&tpm, 0, &sessions, &[3], 1, &[]).map(|_| ()),
            Ok(())
        );
        let area = pw(0, b"x");
        let sessions = read_sessions(&Tpm::new([0; 32]), Reader::new(&area)).unwrap();
        assert_eq!(
            authorize(&tpm, 0, &sessions, &[3], 1, &[]).map(|_| ()),
            Err(0x9A2),
            "BAD_AUTH + S + 1"
        );
        assert_eq!(
            authorize(&tpm, 0, &sessions, &[], 0, &[]).map(|_| ()),
            Err(0x98B),
            "HANDLE + S + 1"
        );
        assert_eq!(
            authorize(&tpm, 0, &[], &[3], 1, &[]).map(|_| ()),
            Err(rc::AUTH_MISSING)
        );
    }

    #[test]
    fn malformed_sessions_get_numbered_codes() {
        let mut four = Vec::new();
        for _ in 0..4 {
            four.extend(pw(1, b""));
        }
        assert_eq!(
            read_sessions(&Tpm::new([0; 32]), Reader::new(&four)),
            Err(0xC95),
            "SIZE + S + 4"
        );
        let mut two = pw(1, b"");
        two.extend(pw(0x20, b""));
        assert_eq!(
            read_sessions(&Tpm::new([0; 32]), Reader::new(&two)),
            Err(0xA82),
            "ATTRIBUTES + S + 2"
        );
        assert_eq!(
            read_sessions(&Tpm::new([0; 32]), Reader::new(&pw(0x08, b""))),
            Err(0x9A1)
        );
        let mut nonce = pw(1, b"");
        nonce[5] = 1;
        nonce.insert(6, 0xaa);
        assert_eq!(
            read_sessions(&Tpm::new([0; 32]), Reader::new(&nonce)),
            Err(0x98F),
            "NONCE + S + 1"
        );
        let area = pw(1, b"");
        assert_eq!(
            read_sessions(&Tpm::new([0; 32]), Reader::new(&area[..8])),
            Err(0x99A)
        );
        let mut bad_handle = pw(1, b"");
        bad_handle[..4].copy_from_slice(&0x8000_0000u32.to_be_bytes());
        assert_eq!(
            read_sessions(&Tpm::new([0; 32]), Reader::new(&bad_handle)),
            Err(0x984)
        );
        let mut hmac = pw(1, b"");
        hmac[..4].copy_from_slice(&0x0200_0000u32.to_be_bytes());
        let mut area = pw(1, b"");
        area.extend(hmac);
        assert_eq!(
            read_sessions(&Tpm::new([0; 32]), Reader::new(&area)),
            Err(rc::REFERENCE_S0 + 1)
        );
        let long = [0u8; 49];
        assert_eq!(
            read_sessions(&Tpm::new([0; 32]), Reader::new(&pw(1, &long))),
            Err(0x995)
        );
    }
}

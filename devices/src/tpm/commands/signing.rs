//! TPM2_Sign (Part 3 §20.2), TPM2_VerifySignature (Part 3 §20.1) and TPM2_Quote (Part 3
//! §18.4), with ECDSA over NIST P-256 and RSASSA-PKCS1-v1_5 / RSASSA-PSS with RSA-2048
//! (`tpm/rsa_keys.rs`); checks and their order from Part 4's `TPM2_Sign`, `TPM2_VerifySignature`, `TPM2_Quote`,
//! `CryptSelectSignScheme`, `TicketComputeHashCheck`, `TicketComputeVerified`,
//! `FillInAttestInfo` and `SignAttestInfo`. The keys are `tpm/object.rs`'s; k is drawn as
//! `Object::sign` says (RFC 6979 hedged with DRBG output).
//!
//! Tickets use the hierarchy proof of `commands/hash.rs`. The verified ticket
//! (TPMT_TK_VERIFIED, Part 2 §10.7.4) is HMAC-SHA256(proof, TPM_ST_VERIFIED || digest ||
//! keyName), SHA-256 being this TPM's context integrity hash (as for the creation ticket);
//! a key of the null hierarchy gets the NULL ticket (TPM_RH_NULL, empty digest).
//!
//! An ECC signing key's scheme is ECDSA-SHA256; an RSA signing key's is RSASSA or RSAPSS
//! with its hash, or NULL when unrestricted; a general-purpose (sign + decrypt) key's is
//! NULL. A key whose scheme is NULL signs with the command's inScheme: one of its type's
//! (ECDSA for ECC, RSASSA or RSAPSS for RSA) with any implemented hash.
//!
//! Not implemented: TPM_RH_NULL as Quote's signHandle (an unsigned quote; TPM_RC_VALUE +
//! TPM_RC_H + TPM_RC_1 as for any non-object handle), schemes other than ECDSA, RSASSA and
//! RSAPSS (TPM_RC_SCHEME).

use super::super::auth::constant_time_eq;
use super::super::constants::*;
use super::super::hash::{HashAlg, MAX_DIGEST_SIZE};
use super::super::marshal::{Reader, Writer};
use super::super::object::{
    KeyKind, Object, SigScheme, SignatureRef, SignatureValue, ECC_KEY_BYTES,
};
use super::super::pcr::{read_selection_list, write_selection_list};
use super::super::rc::{self, Rc};
use super::super::session::kdfa;
use super::super::Tpm;
use super::capability::FIRMWARE_VERSION;
use super::hash::read_hierarchy;
use super::Call;

/// sizeof(TPMT_HA): the bound of TPM2B_DATA (qualifyingData).
pub(super) const MAX_DATA: usize = 2 + MAX_DIGEST_SIZE;

/// The label of the clock obfuscation KDF (Part 4 OBFUSCATE_STRING).
const OBFUSCATE: &[u8] = b"OBFUSCATE";

/// TPMT_SIG_SCHEME+ (Part 2 §11.2.1.5): `SigScheme::read`.
fn read_sig_scheme(r: &mut Reader) -> Result<Option<SigScheme>, Rc> {
    SigScheme::read(r)
}

/// TPMT_TK_HASHCHECK (Part 2 §10.7.6): tag TPM_ST_HASHCHECK (else TPM_RC_TAG), hierarchy
/// (TPMI_RH_HIERARCHY+, TPM_RC_VALUE), digest (TPM2B_DIGEST).
fn read_hashcheck<'a>(r: &mut Reader<'a>) -> Result<(u32, &'a [u8]), Rc> {
    if r.u16()? != TPM_ST_HASHCHECK {
        return Err(rc::TAG);
    }
    let hierarchy = read_hierarchy(r)?;
    Ok((hierarchy, r.tpm2b(MAX_DIGEST_SIZE)?))
}

/// TPMT_SIGNATURE (Part 2 §11.3.4) as VerifySignature takes it: sigAlg ECDSA, RSASSA or
/// RSAPSS (TPM_ALG_NULL and every other scheme: TPM_RC_SCHEME), hash (TPMI_ALG_HASH:
/// TPM_RC_HASH), then for ECDSA signatureR and signatureS (TPM2B_ECC_PARAMETER, at most 32
/// octets: TPM_RC_SIZE), for RSA sig (TPM2B_PUBLIC_KEY_RSA, at most MAX_RSA_KEY_BYTES:
/// TPM_RC_SIZE).
fn read_signature<'a>(r: &mut Reader<'a>) -> Result<(SigScheme, SignatureRef<'a>), Rc> {
    let scheme = SigScheme::read(r)?.ok_or(rc::SCHEME)?;
    let signature = if scheme.is_rsa() {
        SignatureRef::Rsa(r.tpm2b(MAX_RSA_KEY_BYTES)?)
    } else {
        let sig_r = r.tpm2b(ECC_KEY_BYTES)?;
        let sig_s = r.tpm2b(ECC_KEY_BYTES)?;
        SignatureRef::Ecdsa(sig_r, sig_s)
    };
    Ok((scheme, signature))
}

/// The loaded object behind the command's first handle (the handle area checked it).
fn key(tpm: &Tpm, call: &Call) -> Result<Object, Rc> {
    let handle = call.handles.first().copied().unwrap_or(0);
    tpm.object(handle).cloned().ok_or(rc::handle(rc::HANDLE, 1))
}

/// Part 4 `IsSigningObject` then `CryptSelectSignScheme` (Part 3 §20.2.1): a key that
/// cannot sign is TPM_RC_KEY + handle 1. inScheme of the other key type (ECDSA for an RSA
/// key, RSASSA or RSAPSS for an ECC key) is TPM_RC_SCHEME with parameter number
/// `scheme_param`. When the key has a scheme (an ECC signing key's ECDSA-SHA256, an RSA
/// signing key's RSASSA or RSAPSS), inScheme NULL selects it, inScheme equal to it is kept,
/// and any other is TPM_RC_SCHEME. When its scheme is NULL (a sign + decrypt key, an
/// unrestricted RSA signing key), inScheme is used; inScheme NULL too is TPM_RC_SCHEME.
fn select_scheme(
    object: &Object,
    scheme: Option<SigScheme>,
    scheme_param: u32,
) -> Result<SigScheme, Rc> {
    let refused = rc::parameter(rc::SCHEME, scheme_param);
    if matches!(object.public.kind, KeyKind::Storage | KeyKind::Sealed) {
        return Err(rc::handle(rc::KEY, 1));
    }
    if scheme.is_some_and(|s| s.is_rsa() != object.public.is_rsa()) {
        return Err(refused);
    }
    match (object.public.scheme, scheme) {
        (Some(key), None) => Ok(key),
        (Some(key), Some(given)) if key == given => Ok(key),
        (None, Some(given)) => Ok(given),
        _ => Err(refused),
    }
}

/// Signs `digest`, or puts the TPM in failure mode (the key and digest were checked).
fn sign_digest(
    tpm: &mut Tpm,
    object: &Object,
    scheme: SigScheme,
    digest: &[u8],
) -> Result<SignatureValue, Rc> {
    match object.sign(scheme, digest, &mut tpm.drbg) {
        Some(signature) => Ok(signature),
        None => {
            tpm.failure = true;
            Err(rc::FAILURE)
        }
    }
}

/// TPMT_SIGNATURE (Part 2 §11.3.4): sigAlg, the scheme's hash, then for ECDSA r and s as
/// TPM2B_ECC_PARAMETER of 32 octets each, for RSASSA and RSAPSS sig as
/// TPM2B_PUBLIC_KEY_RSA (as long as the modulus).
fn write_signature(w: &mut Writer, scheme: SigScheme, signature: &SignatureValue) {
    w.u16(scheme.alg_id());
    w.u16(scheme.hash().alg_id());
    match signature {
        SignatureValue::Ecdsa((r, s)) => {
            w.tpm2b(r);
            w.tpm2b(s);
        }
        SignatureValue::Rsa(sig) => w.tpm2b(sig),
    }
}

/// Sign: keyHandle (TPMI_DH_OBJECT, USER auth); digest (TPM2B_DIGEST), inScheme
/// (TPMT_SIG_SCHEME+), validation (TPMT_TK_HASHCHECK) → signature (TPMT_SIGNATURE).
///
/// After `select_scheme` (parameter 2): when the key is restricted, or the ticket's digest
/// is not empty, the ticket must be HMAC_hashAlg(proof, TPM_ST_HASHCHECK || digest) under
/// the ticket's hierarchy, as TPM2_Hash makes it (else TPM_RC_TICKET + parameter 3; the
/// NULL ticket, which Hash gives for TPM_RH_NULL and for data starting with
/// TPM_GENERATED_VALUE, never matches). So a restricted key signs only digests of data the
/// TPM hashed itself, never a forged TPMS_ATTEST (Part 1 §11.4.6.1). Otherwise digest must
/// have the hash's size: TPM_RC_SIZE + parameter 1 (with a good ticket it has).
pub fn sign(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let digest = call.param(1, |r| r.tpm2b(MAX_DIGEST_SIZE))?;
    let scheme = call.param(2, read_sig_scheme)?;
    let (ticket_hierarchy, ticket) = call.param(3, read_hashcheck)?;
    call.end()?;
    let object = key(tpm, call)?;
    let scheme = select_scheme(&object, scheme, 2)?;
    let alg = scheme.hash();
    if !ticket.is_empty() || object.public.attributes & TPMA_OBJECT_RESTRICTED != 0 {
        let good = tpm.proof(ticket_hierarchy).is_some_and(|proof| {
            let expected = alg.hmac(proof.as_bytes(), &[&TPM_ST_HASHCHECK.to_be_bytes(), digest]);
            constant_time_eq(expected.as_bytes(), ticket)
        });
        if !good {
            return Err(rc::parameter(rc::TICKET, 3));
        }
    }
    if digest.len() != alg.digest_size() {
        return Err(rc::parameter(rc::SIZE, 1));
    }
    let signature = sign_digest(tpm, &object, scheme, digest)?;
    write_signature(&mut call.out, scheme, &signature);
    Ok(())
}

/// VerifySignature: keyHandle (TPMI_DH_OBJECT, no auth); digest (TPM2B_DIGEST), signature
/// (TPMT_SIGNATURE) → validation (TPMT_TK_VERIFIED). A key without TPMA_OBJECT_sign is
/// TPM_RC_ATTRIBUTES + handle 1; a signature of the other key type's scheme is
/// TPM_RC_SCHEME + parameter 2; a signature that does not verify (including ECDSA r or s
/// out of [1, n-1], or an RSA signature not of the modulus' size) TPM_RC_SIGNATURE +
/// parameter 2.
pub fn verify_signature(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let digest = call.param(1, |r| r.tpm2b(MAX_DIGEST_SIZE))?;
    let (scheme, signature) = call.param(2, read_signature)?;
    call.end()?;
    let object = key(tpm, call)?;
    if object.public.attributes & TPMA_OBJECT_SIGN == 0 {
        return Err(rc::handle(rc::ATTRIBUTES, 1));
    }
    if scheme.is_rsa() != object.public.is_rsa() {
        return Err(rc::parameter(rc::SCHEME, 2));
    }
    if !object.verify(scheme, digest, signature) {
        return Err(rc::parameter(rc::SIGNATURE, 2));
    }
    call.out.u16(TPM_ST_VERIFIED);
    match tpm.proof(object.hierarchy) {
        Some(proof) => {
            let hmac = HashAlg::Sha256.hmac(
                proof.as_bytes(),
                &[&TPM_ST_VERIFIED.to_be_bytes(), digest, &object.name()],
            );
            call.out.u32(object.hierarchy);
            call.out.tpm2b(hmac.as_bytes());
        }
        None => {
            call.out.u32(TPM_RH_NULL);
            call.out.tpm2b(&[]);
        }
    }
    Ok(())
}

/// Quote: signHandle (TPMI_DH_OBJECT, USER auth); qualifyingData (TPM2B_DATA), inScheme
/// (TPMT_SIG_SCHEME+), PCRselect (TPML_PCR_SELECTION) → quoted (TPM2B_ATTEST), signature.
/// Any signing key may quote, restricted or not (Part 3 §18.4.1).
///
/// quoted is TPMS_ATTEST (Part 2 §10.12.12): magic TPM_GENERATED_VALUE, type
/// TPM_ST_ATTEST_QUOTE, qualifiedSigner (the key's qualified name), extraData
/// (qualifyingData), clockInfo (TPMS_CLOCK_INFO: clock, resetCount, restartCount, safe),
/// firmwareVersion (TPM_PT_FIRMWARE_VERSION_1 << 32 | _2), then TPMS_QUOTE_INFO: pcrSelect
/// (PCRselect as given: every bank is allocated) and pcrDigest = H_scheme(the selected PCR
/// values, bank by bank in the selection's order, PCRs in ascending order).
///
/// `safe` is YES: the clock is kept whole in the state blob and never set back. For a key
/// outside the endorsement and platform hierarchies, resetCount, restartCount and
/// firmwareVersion are obfuscated as Part 4 `FillInAttestInfo` does (Part 1 §36.6: they
/// would let a key's user tell TPMs and reboots apart): 128 bits of KDFa(SHA-256, shProof,
/// "OBFUSCATE", qualifiedSigner, empty); firmwareVersion += the first 64 bits,
/// resetCount += bits 64..96, restartCount += bits 96..128 (wrapping). The reference reads
/// the KDF output as two host-order UINT64s; here they are big-endian, so the obfuscated
/// values are not bit-identical with a little-endian simulator's. shProof is this TPM's
/// owner proof (`Tpm::proof`).
pub fn quote(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let qualifying = call.param(1, |r| r.tpm2b(MAX_DATA))?;
    let scheme = call.param(2, read_sig_scheme)?;
    let selection = call.param(3, read_selection_list)?;
    call.end()?;
    let object = key(tpm, call)?;
    let scheme = select_scheme(&object, scheme, 2)?;
    let alg = scheme.hash();
    let pcr_digest = super::session::pcr_digest(tpm, alg, &selection);
    let signer = object.qualified_name();

    let mut firmware = (u64::from(FIRMWARE_VERSION.0) << 32) | u64::from(FIRMWARE_VERSION.1);
    let (mut reset_count, mut restart_count) = (tpm.reset_count, tpm.restart_count);
    if object.hierarchy != TPM_RH_ENDORSEMENT && object.hierarchy != TPM_RH_PLATFORM {
        let Some(sh_proof) = tpm.proof(TPM_RH_OWNER) else {
            tpm.failure = true;
            return Err(rc::FAILURE);
        };
        let mask = kdfa(
            HashAlg::Sha256,
            sh_proof.as_bytes(),
            OBFUSCATE,
            &signer,
            &[],
            128,
        );
        let word = |i: usize| {
            mask.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes)
        };
        let (first, second) = (word(0), word(8));
        firmware = firmware.wrapping_add(first);
        reset_count = reset_count.wrapping_add((second >> 32) as u32);
        restart_count = restart_count.wrapping_add(second as u32);
    }

    let mut attest = Writer::new();
    attest.u32(TPM_GENERATED_VALUE);
    attest.u16(TPM_ST_ATTEST_QUOTE);
    attest.tpm2b(&signer);
    attest.tpm2b(qualifying);
    attest.u64(tpm.clock_ms);
    attest.u32(reset_count);
    attest.u32(restart_count);
    attest.u8(1);
    attest.u64(firmware);
    write_selection_list(&mut attest, &selection);
    attest.tpm2b(&pcr_digest);
    let attest = attest.into_vec();

    let digest = alg.digest(&[&attest]);
    let signature = sign_digest(tpm, &object, scheme, digest.as_bytes())?;
    call.out.tpm2b(&attest);
    write_signature(&mut call.out, scheme, &signature);
    Ok(())
}

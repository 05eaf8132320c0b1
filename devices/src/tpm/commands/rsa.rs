//! TPM2_RSA_Encrypt (Part 3 §14.2) and TPM2_RSA_Decrypt (Part 3 §14.3) with an RSA-2048
//! key; checks and their order from Part 4's `TPM2_RSA_Encrypt`, `TPM2_RSA_Decrypt`,
//! `IsLabelProperlyFormatted`, `CryptRsaSelectScheme`, `CryptRsaEncrypt` and
//! `CryptRsaDecrypt`. Schemes: TPM_ALG_NULL (raw RSA), TPM_ALG_RSAES (RSAES-PKCS1-v1_5) and
//! TPM_ALG_OAEP with SHA-1, SHA-256 or SHA-384 (`rsa_keys::encrypt`, `rsa_keys::decrypt`).
//!
//! The RSA keys with decrypt SET that can exist here (storage keys, and the sign + decrypt
//! keys `tpm2_create -G rsa2048` makes) all have scheme TPM_ALG_NULL (`object.rs`: a
//! template naming RSAES or OAEP is TPM_RC_SCHEME), so the command's inScheme is the one
//! used; [`select_scheme`] is nonetheless Part 4's whole rule.
//!
//! Encryption padding is randomized with the DRBG; every private operation is blinded with
//! it (see `README.md` on RUSTSEC-2023-0071).

use super::super::marshal::Reader;
use super::super::object::Object;
use super::super::rc::{self, Rc};
use super::super::rsa_keys::DecryptScheme;
use super::super::Tpm;
use super::signing::MAX_DATA;
use super::Call;
use crate::tpm::constants::*;
use crate::tpm::hash::HashAlg;

/// TPMT_RSA_DECRYPT+ (Part 2 §11.2.4.5): scheme (TPMI_ALG_RSA_DECRYPT+: TPM_ALG_NULL,
/// RSAES or OAEP, any other ID TPM_RC_VALUE, Part 2 §11.2.4.4), then for OAEP its hashAlg
/// (TPMI_ALG_HASH: TPM_RC_HASH, NULL included); RSAES has no details.
fn read_decrypt_scheme(r: &mut Reader) -> Result<DecryptScheme, Rc> {
    match r.u16()? {
        TPM_ALG_NULL => Ok(DecryptScheme::Null),
        TPM_ALG_RSAES => Ok(DecryptScheme::RsaEs),
        TPM_ALG_OAEP => Ok(DecryptScheme::Oaep(
            HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)?,
        )),
        _ => Err(rc::VALUE),
    }
}

/// Part 4 `IsLabelProperlyFormatted`: a label is empty or ends with a zero octet (Part 3
/// §14.2.1: it is a NUL-terminated string, used with its NUL as OAEP's label).
fn label_ok(label: &[u8]) -> bool {
    label.last().is_none_or(|&b| b == 0)
}

/// Part 4 `CryptRsaSelectScheme`: a key whose scheme is NULL uses `given` (NULL too means
/// raw RSA); otherwise `given` NULL selects the key's scheme and `given` equal to it
/// (hash included) is kept. Anything else is `None` (TPM_RC_SCHEME).
pub fn select_scheme(key: DecryptScheme, given: DecryptScheme) -> Option<DecryptScheme> {
    match (key, given) {
        (DecryptScheme::Null, given) => Some(given),
        (key, DecryptScheme::Null) => Some(key),
        (key, given) if key == given => Some(key),
        _ => None,
    }
}

/// The loaded object behind the command's first handle (the handle area checked it).
fn key(tpm: &Tpm, call: &Call) -> Result<Object, Rc> {
    let handle = call.handles.first().copied().unwrap_or(0);
    tpm.object(handle).cloned().ok_or(rc::handle(rc::HANDLE, 1))
}

/// The checks TPM2_RSA_Encrypt and TPM2_RSA_Decrypt share after their attribute check:
/// the label's form (TPM_RC_VALUE + parameter 3), then the scheme (TPM_RC_SCHEME +
/// parameter 2). An RSA key's scheme here is always NULL for decryption (see the module
/// documentation).
fn checked_scheme(label: &[u8], given: DecryptScheme) -> Result<DecryptScheme, Rc> {
    if !label_ok(label) {
        return Err(rc::parameter(rc::VALUE, 3));
    }
    select_scheme(DecryptScheme::Null, given).ok_or(rc::parameter(rc::SCHEME, 2))
}

/// What both commands take: the key (RSA, else TPM_RC_KEY + handle 1), the message or
/// cipherText, inScheme and label, read in that order with their parameter numbers.
struct Parameters<'a> {
    object: Object,
    data: &'a [u8],
    scheme: DecryptScheme,
    label: &'a [u8],
}

fn parameters<'a>(tpm: &Tpm, call: &mut Call<'a, '_>) -> Result<Parameters<'a>, Rc> {
    let data = call.param(1, |r| r.tpm2b(MAX_RSA_KEY_BYTES))?;
    let scheme = call.param(2, read_decrypt_scheme)?;
    let label = call.param(3, |r| r.tpm2b(MAX_DATA))?;
    call.end()?;
    let object = key(tpm, call)?;
    if !object.public.is_rsa() {
        return Err(rc::handle(rc::KEY, 1));
    }
    Ok(Parameters {
        object,
        data,
        scheme,
        label,
    })
}

/// RSA_Encrypt: keyHandle (TPMI_DH_OBJECT, no authorization: only the public part is
/// used); message (TPM2B_PUBLIC_KEY_RSA), inScheme (TPMT_RSA_DECRYPT+), label
/// (TPM2B_DATA) → outData (TPM2B_PUBLIC_KEY_RSA, as long as the modulus).
///
/// A key that is not RSA is TPM_RC_KEY + handle 1, one without decrypt TPM_RC_ATTRIBUTES +
/// handle 1 (a restricted decryption key, a storage key, may encrypt: Part 3 §14.2.1).
/// Then [`checked_scheme`]. A message the padding cannot hold (or, raw, not below the
/// modulus) is TPM_RC_VALUE (unnumbered, as `CryptRsaEncrypt` returns it).
pub fn rsa_encrypt(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let Parameters {
        object,
        data: message,
        scheme,
        label,
    } = parameters(tpm, call)?;
    if object.public.attributes & TPMA_OBJECT_DECRYPT == 0 {
        return Err(rc::handle(rc::ATTRIBUTES, 1));
    }
    let scheme = checked_scheme(label, scheme)?;
    let out = object
        .rsa_encrypt(scheme, label, message, &mut tpm.drbg)
        .ok_or(rc::VALUE)?;
    call.out.tpm2b(&out);
    Ok(())
}

/// RSA_Decrypt: keyHandle (TPMI_DH_OBJECT, USER authorization); cipherText
/// (TPM2B_PUBLIC_KEY_RSA), inScheme (TPMT_RSA_DECRYPT+), label (TPM2B_DATA) → message
/// (TPM2B_PUBLIC_KEY_RSA).
///
/// A key that is not RSA is TPM_RC_KEY + handle 1; a restricted key, or one without
/// decrypt, TPM_RC_ATTRIBUTES + handle 1 (a storage key never decrypts for the caller:
/// Part 3 §14.3.1). Then [`checked_scheme`]. As `CryptRsaDecrypt` returns them
/// (unnumbered): a cipherText not of the modulus' length, or not below the modulus
/// (`RSADP`), is TPM_RC_SIZE; padding that does not decode (a wrong OAEP label included)
/// TPM_RC_VALUE. Raw RSA gives the whole decrypted value, as long as the modulus.
pub fn rsa_decrypt(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let Parameters {
        object,
        data: ciphertext,
        scheme,
        label,
    } = parameters(tpm, call)?;
    let attributes = object.public.attributes;
    if attributes & TPMA_OBJECT_RESTRICTED != 0 || attributes & TPMA_OBJECT_DECRYPT == 0 {
        return Err(rc::handle(rc::ATTRIBUTES, 1));
    }
    let scheme = checked_scheme(label, scheme)?;
    if !below_modulus(ciphertext, &object.public.x) {
        return Err(rc::SIZE);
    }
    let Some(private) = object.rsa_private_key() else {
        tpm.failure = true;
        return Err(rc::FAILURE);
    };
    let message =
        Object::rsa_decrypt(&private, scheme, label, ciphertext, &mut tpm.drbg).ok_or(rc::VALUE)?;
    call.out.tpm2b(&message);
    Ok(())
}

/// Whether `value` is exactly as long as `modulus` and, read as a big-endian number, below
/// it (Part 4 `CryptRsaDecrypt`'s size check and `RSADP`'s comparison; both public).
fn below_modulus(value: &[u8], modulus: &[u8]) -> bool {
    value.len() == modulus.len() && value < modulus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_selection_follows_crypt_rsa_select_scheme() {
        let oaep256 = DecryptScheme::Oaep(HashAlg::Sha256);
        let oaep1 = DecryptScheme::Oaep(HashAlg::Sha1);
        let null = DecryptScheme::Null;
        let es = DecryptScheme::RsaEs;
        assert_eq!(select_scheme(null, null), Some(null));
        assert_eq!(select_scheme(null, es), Some(es));
        assert_eq!(select_scheme(oaep256, null), Some(oaep256));
        assert_eq!(select_scheme(oaep256, oaep256), Some(oaep256));
        assert_eq!(select_scheme(oaep256, oaep1), None, "another hash");
        assert_eq!(select_scheme(oaep256, es), None, "another scheme");
        assert_eq!(select_scheme(es, oaep1), None);
    }

    #[test]
    fn labels_and_modulus_comparison() {
        assert!(label_ok(b""));
        assert!(label_ok(b"label\0"));
        assert!(!label_ok(b"label"));
        assert!(below_modulus(&[1, 2], &[1, 3]));
        assert!(!below_modulus(&[1, 3], &[1, 3]));
        assert!(!below_modulus(&[1], &[1, 3]));
        assert!(!below_modulus(&[0, 0, 1], &[1, 3]));
    }
}

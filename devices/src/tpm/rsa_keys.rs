//! RSA-2048 keys (Part 1 §11.4.2 "RSA", Annex B; Part 2 §11.2.4, §12.2.3.5) on RustCrypto's
//! `rsa` crate: key generation from a DRBG, the private key rebuilt from the one prime the
//! sensitive area keeps (TPM2B_PRIVATE_KEY_RSA, Part 2 §11.2.4.7: half of
//! MAX_RSA_KEY_BYTES), RSASSA-PKCS1-v1_5 and RSASSA-PSS signatures (Part 1 Annex B.7;
//! RFC 8017 §8.1, §8.2), and encryption with RSAES-OAEP, RSAES-PKCS1-v1_5 or raw RSA
//! (RFC 8017 §7.1, §7.2, §5.1; TPM2_RSA_Encrypt / TPM2_RSA_Decrypt).
//!
//! Prime generation (FIPS 186-5 A.1.3, "Generation of Random Primes that are Probably
//! Prime", which Part 1 Annex B.8 follows): 1024 bits of DRBG output with the two top bits
//! set (so p, q ≥ √2·2^1023 and n has exactly 2048 bits) and the low bit set are the start
//! of an incremental search: the first number at or above it that is prime (Baillie-PSW,
//! `crypto_primes::is_prime`, after `crypto_primes`' small-factor sieve) and with
//! gcd(p − 1, e) = 1 (e being prime: p mod e ≠ 1) is the prime. The answer is a property of
//! the start alone (the sieve only skips numbers with a small factor), so a primary key
//! derived from the same DRBG output is the same whatever version of the sieve is linked.
//! Then |p − q| > 2^(1024 − 100) (A.1.3 step 5.4), else both are drawn again.
//!
//! Timing: RUSTSEC-2023-0071 (Marvin) is recorded against every `rsa` release. Private-key
//! operations here are blinded (`sign_with_rng`, `decrypt_blinded`, `rsa_decrypt_and_check`
//! with the DRBG); see `README.md`. Decryption reports padding failures (TPM_RC_VALUE), as
//! the specification requires: a guest can use RSA_Decrypt as a padding oracle
//! (Bleichenbacher for RSAES, Manger for OAEP) as with any TPM 2.0; only the key's
//! authorization bounds it.

use alloc::vec::Vec;
use core::num::NonZeroU32;

use crypto_bigint::{BoxedUint, Limb, NonZero, Resize};
use crypto_primes::hazmat::SmallFactorsSieve;
use crypto_primes::{is_prime, Flavor};
use rsa::rand_core::TryCryptoRng;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, PrivateKey, Pss, PublicKey};
use sha2::Digest;

use super::constants::{MAX_RSA_KEY_BYTES, RSA_DEFAULT_EXPONENT, RSA_KEY_BITS};
use super::drbg::HmacDrbg;
use super::hash::HashAlg;
use super::object::SigScheme;

/// Octets of one prime (TPM2B_PRIVATE_KEY_RSA's bound, MAX_RSA_KEY_BYTES / 2).
pub const PRIME_BYTES: usize = MAX_RSA_KEY_BYTES / 2;
const MODULUS_BITS: u32 = RSA_KEY_BITS as u32;
const PRIME_BITS: u32 = MODULUS_BITS / 2;
/// Starts drawn before giving up (each search practically always succeeds).
const ATTEMPTS: usize = 16;

/// The public exponent of TPMS_RSA_PARMS.exponent (0 is 2^16 + 1, Part 2 §12.2.3.5).
fn exponent(field: u32) -> u32 {
    if field == 0 {
        RSA_DEFAULT_EXPONENT
    } else {
        field
    }
}

/// `v` as exactly `len` big-endian octets; `None` if it does not fit.
fn to_fixed(v: &BoxedUint, len: usize) -> Option<Vec<u8>> {
    let bytes = v.to_be_bytes();
    let mut out = alloc::vec![0u8; len];
    match bytes.len().checked_sub(len) {
        Some(cut) => {
            let (high, low) = bytes.split_at(cut);
            if high.iter().any(|&b| b != 0) {
                return None;
            }
            out.copy_from_slice(low);
        }
        None => {
            out.get_mut(len - bytes.len()..)?.copy_from_slice(&bytes);
        }
    }
    Some(out)
}

/// One prime of [`PRIME_BITS`] bits with p mod e ≠ 1 (see the module documentation).
fn prime(drbg: &mut HmacDrbg, e: u32) -> Option<BoxedUint> {
    let e_limb = NonZero::new(Limb::from(e)).into_option()?;
    let bits = NonZeroU32::new(PRIME_BITS)?;
    for _ in 0..ATTEMPTS {
        let mut bytes = [0u8; PRIME_BYTES];
        drbg.generate(&mut bytes, &[]);
        if let Some(top) = bytes.first_mut() {
            *top |= 0xC0;
        }
        if let Some(bottom) = bytes.last_mut() {
            *bottom |= 1;
        }
        let start = BoxedUint::from_be_slice(&bytes, PRIME_BITS).ok()?;
        let Ok(mut sieve) = SmallFactorsSieve::new(start, bits, false) else {
            continue;
        };
        let found = sieve.find(|candidate| {
            candidate.div_rem_limb(e_limb).1 != Limb::ONE && is_prime(Flavor::Any, candidate)
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

/// A new key pair with public exponent `exponent_field` (TPMS_RSA_PARMS.exponent) from
/// `drbg`: the modulus (256 octets) and the prime p kept in the sensitive area (128 octets).
pub fn generate(drbg: &mut HmacDrbg, exponent_field: u32) -> Option<(Vec<u8>, Vec<u8>)> {
    let e = exponent(exponent_field);
    for _ in 0..ATTEMPTS {
        let p = prime(drbg, e)?;
        let q = prime(drbg, e)?;
        let diff = if p > q {
            p.wrapping_sub(&q)
        } else {
            q.wrapping_sub(&p)
        };
        if diff.bit_width() <= PRIME_BITS - 100 {
            continue;
        }
        let key = PrivateKey::from_p_q(p.clone(), q, BoxedUint::from(u64::from(e))).ok()?;
        let n: &BoxedUint = key.n();
        if n.bit_width() != MODULUS_BITS {
            continue;
        }
        return Some((to_fixed(n, MAX_RSA_KEY_BYTES)?, to_fixed(&p, PRIME_BYTES)?));
    }
    None
}

/// The private key of modulus `n` whose sensitive area keeps the prime `p`: q = n / p
/// must be exact and of at most 1024 bits, n of 2048 bits, and (p, q, e) a valid key
/// (`PrivateKey::from_p_q` checks). `None` otherwise.
pub fn private_key(n: &[u8], p: &[u8], exponent_field: u32) -> Option<PrivateKey> {
    if n.len() > MAX_RSA_KEY_BYTES || p.len() > PRIME_BYTES {
        return None;
    }
    let n = BoxedUint::from_be_slice(n, MODULUS_BITS).ok()?;
    if n.bit_width() != MODULUS_BITS {
        return None;
    }
    let p = BoxedUint::from_be_slice(p, PRIME_BITS).ok()?;
    let divisor = NonZero::new(p.clone()).into_option()?;
    let (q, remainder) = n.div_rem(&divisor);
    if !remainder.is_zero().to_bool() {
        return None;
    }
    let q = q.try_resize(PRIME_BITS)?;
    PrivateKey::from_p_q(p, q, BoxedUint::from(u64::from(exponent(exponent_field)))).ok()
}

/// The public key of modulus `n` (at most 256 octets, 2048 bits).
pub fn public_key(n: &[u8], exponent_field: u32) -> Option<PublicKey> {
    if n.len() > MAX_RSA_KEY_BYTES {
        return None;
    }
    let n = BoxedUint::from_be_slice(n, MODULUS_BITS).ok()?;
    if n.bit_width() != MODULUS_BITS {
        return None;
    }
    PublicKey::new(n, BoxedUint::from(u64::from(exponent(exponent_field)))).ok()
}

/// EMSA-PKCS1-v1_5's DigestInfo for `hash` (RFC 8017 §9.2).
fn pkcs1(hash: HashAlg) -> Pkcs1v15Sign {
    match hash {
        HashAlg::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
        HashAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
        HashAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
    }
}

/// EMSA-PSS with MGF1 over `D`; `salt_len` `None` accepts any salt length when verifying.
fn pss<D: Digest>(salt_len: Option<usize>) -> Pss<D> {
    Pss {
        blinded: true,
        digest: D::new(),
        salt_len,
    }
}

/// Signs `digest` (of `scheme`'s hash) with RSASSA-PKCS1-v1_5 or RSASSA-PSS. The PSS salt
/// is as long as the digest (sLen = hLen, the typical length RFC 8017 §9.1 names and the
/// largest FIPS 186-5 §5.4 allows), which verifiers expecting sLen = hLen accept. The private operation is blinded with `rng`.
pub fn sign<R: TryCryptoRng + ?Sized>(
    key: &PrivateKey,
    scheme: SigScheme,
    digest: &[u8],
    rng: &mut R,
) -> Option<Vec<u8>> {
    let signature = match scheme {
        SigScheme::RsaSsa(hash) => key.sign_with_rng(rng, pkcs1(hash), digest),
        SigScheme::RsaPss(HashAlg::Sha1) => {
            key.sign_with_rng(rng, pss::<sha1::Sha1>(Some(20)), digest)
        }
        SigScheme::RsaPss(HashAlg::Sha256) => {
            key.sign_with_rng(rng, pss::<sha2::Sha256>(Some(32)), digest)
        }
        SigScheme::RsaPss(HashAlg::Sha384) => {
            key.sign_with_rng(rng, pss::<sha2::Sha384>(Some(48)), digest)
        }
        SigScheme::Ecdsa(_) => return None,
    };
    signature.ok()
}

/// Whether `signature` is a valid `scheme` signature of `digest` under `key` (RSASSA-PSS:
/// any salt length: it is recovered from the encoding, RFC 8017 §9.1.2).
pub fn verify(key: &PublicKey, scheme: SigScheme, digest: &[u8], signature: &[u8]) -> bool {
    let result = match scheme {
        SigScheme::RsaSsa(hash) => key.verify(pkcs1(hash), digest, signature),
        SigScheme::RsaPss(HashAlg::Sha1) => key.verify(pss::<sha1::Sha1>(None), digest, signature),
        SigScheme::RsaPss(HashAlg::Sha256) => {
            key.verify(pss::<sha2::Sha256>(None), digest, signature)
        }
        SigScheme::RsaPss(HashAlg::Sha384) => {
            key.verify(pss::<sha2::Sha384>(None), digest, signature)
        }
        SigScheme::Ecdsa(_) => return false,
    };
    result.is_ok()
}

/// An RSA decryption scheme (TPMI_ALG_RSA_DECRYPT, Part 2 §11.2.4.4, with its
/// TPMU_ASYM_SCHEME details): TPM_ALG_NULL (raw RSAEP / RSADP, RFC 8017 §5.1),
/// RSAES-PKCS1-v1_5 (RFC 8017 §7.2) or RSAES-OAEP with MGF1, both over the scheme's hash
/// (RFC 8017 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecryptScheme {
    Null,
    RsaEs,
    Oaep(HashAlg),
}

/// An OAEP padding over `D` with `label` (an empty label is L = "", RFC 8017 §7.1.1).
fn oaep<D: Digest + sha2::digest::FixedOutputReset>(label: &[u8]) -> Oaep<D> {
    if label.is_empty() {
        Oaep::new()
    } else {
        Oaep::new_with_label(label.to_vec())
    }
}

/// RSAEP of `message` without padding (Part 4 `CryptRsaEncrypt`, TPM_ALG_NULL): leading
/// zero octets are dropped, the rest left-padded to the modulus' length; a value that
/// does not fit or is not below the modulus is refused (`None`).
fn encrypt_raw(key: &PublicKey, message: &[u8]) -> Option<Vec<u8>> {
    let start = message
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(message.len());
    let digits = message.get(start..)?;
    if digits.len() > MAX_RSA_KEY_BYTES {
        return None;
    }
    let n: &BoxedUint = key.n();
    let m = BoxedUint::from_be_slice(digits, n.bits_precision()).ok()?;
    if m >= *n {
        return None;
    }
    let c = rsa::hazmat::rsa_encrypt(key, &m).ok()?;
    to_fixed(&c, MAX_RSA_KEY_BYTES)
}

/// Encrypts `message` under `key` with `scheme` (`label` is OAEP's label; RSAES and raw
/// RSA ignore it), randomized with `rng`. `None` when the message does not fit the
/// padding (longer than k − 11 octets for RSAES, k − 2·hLen − 2 for OAEP, RFC 8017
/// §7.1.1, §7.2.1) or, raw, is not below the modulus. The result has the modulus' length.
pub fn encrypt<R: TryCryptoRng + ?Sized>(
    key: &PublicKey,
    scheme: DecryptScheme,
    label: &[u8],
    message: &[u8],
    rng: &mut R,
) -> Option<Vec<u8>> {
    let result = match scheme {
        DecryptScheme::Null => return encrypt_raw(key, message),
        DecryptScheme::RsaEs => key.encrypt(rng, Pkcs1v15Encrypt, message),
        DecryptScheme::Oaep(HashAlg::Sha1) => key.encrypt(rng, oaep::<sha1::Sha1>(label), message),
        DecryptScheme::Oaep(HashAlg::Sha256) => {
            key.encrypt(rng, oaep::<sha2::Sha256>(label), message)
        }
        DecryptScheme::Oaep(HashAlg::Sha384) => {
            key.encrypt(rng, oaep::<sha2::Sha384>(label), message)
        }
    };
    result.ok()
}

/// RSADP of `ciphertext` (exactly the modulus' length, below the modulus: the caller
/// checked), blinded with `rng` and checked by re-encryption: the encoded message, as long
/// as the modulus.
fn decrypt_raw<R: TryCryptoRng + ?Sized>(
    key: &PrivateKey,
    ciphertext: &[u8],
    rng: &mut R,
) -> Option<Vec<u8>> {
    let n: &BoxedUint = key.n();
    let c = BoxedUint::from_be_slice(ciphertext, n.bits_precision()).ok()?;
    let m = rsa::hazmat::rsa_decrypt_and_check(key, Some(rng), &c).ok()?;
    to_fixed(&m, MAX_RSA_KEY_BYTES)
}

/// EME-PKCS1-v1_5 decoding as Part 4 `RSAES_Decode` does it: EM = 0x00 || 0x02 || PS ||
/// 0x00 || M with PS at least 8 non-zero octets (RFC 8017 §7.2.2 step 3); `None` otherwise.
/// The checks are folded into one flag before the single branch (as the reference does),
/// though the position of the separator still shapes the work.
fn rsaes_decode(em: &[u8]) -> Option<Vec<u8>> {
    let mut fail = em.len() < 11;
    fail |= em.first() != Some(&0);
    fail |= em.get(1) != Some(&2);
    let separator = em
        .iter()
        .skip(2)
        .position(|&b| b == 0)
        .map_or(em.len(), |i| i + 2);
    fail |= separator >= em.len();
    fail |= separator < 10;
    if fail {
        return None;
    }
    em.get(separator + 1..).map(<[u8]>::to_vec)
}

/// Decrypts `ciphertext` (exactly the modulus' length and below it: the caller checked)
/// with `key` and `scheme`, the private operation blinded with `rng`. `None` when the
/// padding does not decode (including a wrong OAEP label). RSAES padding failures are
/// reported (Part 4 `RSAES_Decode`: TPM_RC_VALUE), not implicitly rejected as `rsa`'s
/// `Pkcs1v15Encrypt` would: the decoding here is Part 4's.
pub fn decrypt<R: TryCryptoRng + ?Sized>(
    key: &PrivateKey,
    scheme: DecryptScheme,
    label: &[u8],
    ciphertext: &[u8],
    rng: &mut R,
) -> Option<Vec<u8>> {
    let result = match scheme {
        DecryptScheme::Null => return decrypt_raw(key, ciphertext, rng),
        DecryptScheme::RsaEs => return rsaes_decode(&decrypt_raw(key, ciphertext, rng)?),
        DecryptScheme::Oaep(HashAlg::Sha1) => {
            key.decrypt_blinded(rng, oaep::<sha1::Sha1>(label), ciphertext)
        }
        DecryptScheme::Oaep(HashAlg::Sha256) => {
            key.decrypt_blinded(rng, oaep::<sha2::Sha256>(label), ciphertext)
        }
        DecryptScheme::Oaep(HashAlg::Sha384) => {
            key.decrypt_blinded(rng, oaep::<sha2::Sha384>(label), ciphertext)
        }
    };
    result.ok()
}

//! Transient objects (Part 1 §27, §28; Part 2 §12.2): ECC NIST P-256 and RSA-2048 keys made
//! by TPM2_CreatePrimary or TPM2_Create, sealed data objects made by TPM2_Create, their
//! TPMT_PUBLIC template rules, Names, the protection of a child's sensitive area under its
//! storage parent (Part 1 §23: [`wrap`], [`unwrap`]), and the slots they are loaded in
//! (handles TRANSIENT_FIRST + slot, TPM_RC_OBJECT_MEMORY when every slot is full).
//!
//! Supported templates (everything else is refused with the code Part 4 would give, or the
//! code of the first unsupported choice): type TPM_ALG_ECC with curve TPM_ECC_NIST_P256 and
//! kdf TPM_ALG_NULL, or type TPM_ALG_RSA with keyBits 2048 and exponent 0 or 65537
//! (`rsa_keys.rs`), and either
//! - a signing key: sign SET, decrypt CLEAR, symmetric NULL, scheme ECDSA with SHA-256 for
//!   ECC; for RSA RSASSA or RSAPSS with any implemented hash, or NULL if unrestricted (Part
//!   2 §12.2.3.6: a restricted signing key names its scheme);
//! - a storage key: restricted and decrypt SET, sign CLEAR, scheme NULL, symmetric AES-128
//!   CFB (Part 1 §27.2.3, what `tpm2_createprimary` makes by default); or
//! - a general-purpose key: sign and decrypt SET, restricted CLEAR, scheme NULL, symmetric
//!   NULL (Part 2 §12.2.3.6: "When both sign and decrypt are SET, restricted shall be CLEAR
//!   and scheme shall be TPM_ALG_NULL"; what `tpm2_create` makes by default). Each use
//!   names its scheme: TPM2_Sign and TPM2_Quote take their inScheme, an RSA key's
//!   TPM2_RSA_Encrypt and TPM2_RSA_Decrypt theirs (`commands/rsa.rs`). The ECC decrypt use
//!   (TPM2_ECDH_ZGen) is not implemented.
//!
//! Primary keys are derived (Part 1 §26.3; Part 4 `TPM2_CreatePrimary`,
//! `DRBG_InstantiateSeeded`, `CryptEccGenerateKey`): candidates are drawn from
//! KDFa(SHA-256, primary seed, "Primary Object Creation", Name(template),
//! sensitive.data || counter, 256) for counter 1, 2, … until one is a valid private key
//! (0 < d < n, FIPS 186-4 B.4.2 "testing candidates"). The same template under the same
//! seed always gives the same key. Not bit-identical with the reference implementation,
//! which runs an AES-256 CTR_DRBG seeded from that KDFa output. RSA primaries: see
//! [`derive_primary`]. An RSA key's sensitive area holds its prime p (TPM2B_PRIVATE_KEY_RSA,
//! Part 2 §11.2.4.7), q and the private exponent are computed again when it is used.

use alloc::boxed::Box;
use alloc::vec::Vec;

use p256::ecdsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use p256::ecdsa::signature::rand_core::{TryCryptoRng, TryRng};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::point::AffineCoordinates;

use aes::Aes128;
use cfb_mode::cipher::KeyIvInit;
use cfb_mode::{Decryptor, Encryptor};

use super::auth::constant_time_eq;
use super::constants::*;
use super::drbg::HmacDrbg;
use super::hash::{HashAlg, Hasher, MAX_DIGEST_SIZE};
use super::marshal::{Reader, Writer};
use super::rc::{self, Rc};
use super::rsa_keys;
use super::session::kdfa;

/// Octets of a P-256 coordinate or private key (MAX_ECC_KEY_BYTES here).
pub const ECC_KEY_BYTES: usize = 32;

/// The most data a sealed object holds (TPM2B_SENSITIVE_DATA, Part 2 §11.1.14:
/// MAX_SYM_DATA, 128 in the reference implementation).
pub const MAX_SEALED_DATA: usize = 128;

/// Label of primary key derivation (Part 4 PRIMARY_OBJECT_CREATION, with its NUL).
const PRIMARY_OBJECT_CREATION: &[u8] = b"Primary Object Creation\0";

/// The personalization string of the DRBG an RSA primary's primes are drawn from (ours).
const RSA_PRIMES: &[u8] = b"RSA primes";

/// The kinds of key a template may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA-SHA256 signing key (restricted or not).
    Signing,
    /// Restricted decryption key with AES-128-CFB: a storage parent.
    Storage,
    /// Unrestricted key with both sign and decrypt SET and scheme NULL (Part 2 §12.2.3.6):
    /// it signs with the scheme the command gives.
    SignDecrypt,
    /// A sealed data object (Part 1 §27.7.4): TPM_ALG_KEYEDHASH with scheme NULL, neither
    /// sign nor decrypt, its data from the caller. Only made by TPM2_Create.
    Sealed,
}

/// A signature scheme and its hash (TPMT_SIG_SCHEME, Part 2 §11.2.1.5, minus NULL): the
/// ones implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigScheme {
    /// ECDSA over P-256 (FIPS 186-5 §6.4).
    Ecdsa(HashAlg),
    /// RSASSA-PKCS1-v1_5 (RFC 8017 §8.2; Part 1 Annex B.7).
    RsaSsa(HashAlg),
    /// RSASSA-PSS (RFC 8017 §8.1; Part 1 Annex B.7), salt as long as the digest
    /// (`rsa_keys::sign`).
    RsaPss(HashAlg),
}

impl SigScheme {
    pub fn alg_id(self) -> u16 {
        match self {
            SigScheme::Ecdsa(_) => TPM_ALG_ECDSA,
            SigScheme::RsaSsa(_) => TPM_ALG_RSASSA,
            SigScheme::RsaPss(_) => TPM_ALG_RSAPSS,
        }
    }

    pub fn hash(self) -> HashAlg {
        match self {
            SigScheme::Ecdsa(h) | SigScheme::RsaSsa(h) | SigScheme::RsaPss(h) => h,
        }
    }

    pub fn is_rsa(self) -> bool {
        !matches!(self, SigScheme::Ecdsa(_))
    }

    /// A scheme ID this TPM signs with, and the hash that follows it (TPMI_ALG_HASH:
    /// TPM_RC_HASH, NULL included); `None` for another ID (the caller chooses the code).
    fn read_after_id(id: u16, r: &mut Reader) -> Result<Option<Self>, Rc> {
        let make = match id {
            TPM_ALG_ECDSA => SigScheme::Ecdsa,
            TPM_ALG_RSASSA => SigScheme::RsaSsa,
            TPM_ALG_RSAPSS => SigScheme::RsaPss,
            _ => return Ok(None),
        };
        Ok(Some(make(HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)?)))
    }

    /// TPMT_SIG_SCHEME+ (Part 2 §11.2.1.5): TPM_ALG_NULL (`None`), or ECDSA, RSASSA or RSAPSS
    /// with its hash (TPM_RC_HASH). Any other scheme is not implemented: TPM_RC_SCHEME.
    pub fn read(r: &mut Reader) -> Result<Option<Self>, Rc> {
        match r.u16()? {
            TPM_ALG_NULL => Ok(None),
            id => Ok(Some(Self::read_after_id(id, r)?.ok_or(rc::SCHEME)?)),
        }
    }

    /// The scheme (TPMT_*_SCHEME: ID and hash, or TPM_ALG_NULL alone).
    pub fn write(scheme: Option<Self>, w: &mut Writer) {
        match scheme {
            Some(s) => {
                w.u16(s.alg_id());
                w.u16(s.hash().alg_id());
            }
            None => w.u16(TPM_ALG_NULL),
        }
    }
}

/// A validated TPMT_PUBLIC of an ECC P-256 key, an RSA-2048 key or a sealed data object.
/// `x`, `y` are an ECC key's unique field; an RSA key's modulus (TPM2B_PUBLIC_KEY_RSA) is
/// `x`, as a sealed object's unique (TPM2B_DIGEST) is, and `y` is then empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Public {
    pub name_alg: HashAlg,
    pub attributes: u32,
    pub auth_policy: Vec<u8>,
    pub kind: KeyKind,
    /// The key's scheme (TPMS_ECC_PARMS / TPMS_RSA_PARMS .scheme); `None` for TPM_ALG_NULL.
    pub scheme: Option<SigScheme>,
    /// An RSA key's TPMS_RSA_PARMS.exponent as the template gave it (0 or 65537); `None`
    /// for an ECC key or a sealed object.
    pub rsa_exponent: Option<u32>,
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

impl Public {
    /// Whether it is an RSA key (type TPM_ALG_RSA).
    pub fn is_rsa(&self) -> bool {
        self.rsa_exponent.is_some()
    }

    /// The marshalled TPMT_PUBLIC (Part 2 §12.2.4).
    pub fn write(&self, w: &mut Writer) {
        if self.kind == KeyKind::Sealed {
            w.u16(TPM_ALG_KEYEDHASH);
            w.u16(self.name_alg.alg_id());
            w.u32(self.attributes);
            w.tpm2b(&self.auth_policy);
            w.u16(TPM_ALG_NULL);
            w.tpm2b(&self.x);
            return;
        }
        w.u16(if self.is_rsa() {
            TPM_ALG_RSA
        } else {
            TPM_ALG_ECC
        });
        w.u16(self.name_alg.alg_id());
        w.u32(self.attributes);
        w.tpm2b(&self.auth_policy);
        if self.kind == KeyKind::Storage {
            w.u16(TPM_ALG_AES);
            w.u16(128);
            w.u16(TPM_ALG_CFB);
        } else {
            w.u16(TPM_ALG_NULL);
        }
        SigScheme::write(self.scheme, w);
        if let Some(exponent) = self.rsa_exponent {
            // TPMS_RSA_PARMS (Part 2 §12.2.3.5): keyBits, exponent; unique TPM2B_PUBLIC_KEY_RSA.
            w.u16(RSA_KEY_BITS);
            w.u32(exponent);
            w.tpm2b(&self.x);
            return;
        }
        w.u16(TPM_ECC_NIST_P256);
        w.u16(TPM_ALG_NULL);
        w.tpm2b(&self.x);
        w.tpm2b(&self.y);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_vec()
    }

    /// The Name (Part 1 §16): nameAlg || H_nameAlg(TPMT_PUBLIC).
    pub fn name(&self) -> Vec<u8> {
        let mut name = self.name_alg.alg_id().to_be_bytes().to_vec();
        name.extend_from_slice(self.name_alg.digest(&[&self.to_bytes()]).as_bytes());
        name
    }
}

/// The qualified name of an object whose parent is `parent_qn` (Part 1 §16: QN(B) =
/// nameAlg || H_nameAlg(QN(A) || Name(B)); a hierarchy's QN is its handle).
pub fn qualified_name(alg: HashAlg, parent_qn: &[u8], name: &[u8]) -> Vec<u8> {
    let mut qn = alg.alg_id().to_be_bytes().to_vec();
    qn.extend_from_slice(alg.digest(&[parent_qn, name]).as_bytes());
    qn
}

/// TPMT_SYM_DEF_OBJECT+ (Part 2 §11.1.7): NULL, or AES (TPMI_AES_KEY_BITS 128, else
/// TPM_RC_VALUE; mode TPMI_ALG_SYM_MODE, CFB the only one implemented, else TPM_RC_MODE).
/// Any other algorithm: TPM_RC_SYMMETRIC. Returns whether it is AES-128-CFB.
pub fn read_symmetric(r: &mut Reader) -> Result<bool, Rc> {
    match r.u16()? {
        TPM_ALG_NULL => Ok(false),
        TPM_ALG_AES => {
            if r.u16()? != 128 {
                return Err(rc::VALUE);
            }
            if r.u16()? != TPM_ALG_CFB {
                return Err(rc::MODE);
            }
            Ok(true)
        }
        _ => Err(rc::SYMMETRIC),
    }
}

/// TPMT_ECC_SCHEME+ (Part 2 §11.2.5.6): NULL, or an ECC scheme with its hash
/// (TPMI_ALG_HASH: TPM_RC_HASH). Only ECDSA with SHA-256 is implemented: another scheme
/// ID, or ECDSA with another hash, is TPM_RC_SCHEME.
pub fn read_scheme(r: &mut Reader) -> Result<Option<SigScheme>, Rc> {
    match r.u16()? {
        TPM_ALG_NULL => Ok(None),
        TPM_ALG_ECDSA => match HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)? {
            HashAlg::Sha256 => Ok(Some(SigScheme::Ecdsa(HashAlg::Sha256))),
            _ => Err(rc::SCHEME),
        },
        _ => Err(rc::SCHEME),
    }
}

/// TPMT_RSA_SCHEME+ (Part 2 §11.2.4.2): NULL, or RSASSA / RSAPSS with its hash
/// (TPMI_ALG_HASH: TPM_RC_HASH). The decryption schemes RSAES and OAEP are not implemented
/// (TPM_RC_SCHEME); any other ID is not a TPMI_ALG_RSA_SCHEME (TPM_RC_VALUE, Part 2
/// §11.2.4.1).
pub fn read_rsa_scheme(r: &mut Reader) -> Result<Option<SigScheme>, Rc> {
    match r.u16()? {
        TPM_ALG_NULL => Ok(None),
        TPM_ALG_RSAES | TPM_ALG_OAEP => Err(rc::SCHEME),
        id @ (TPM_ALG_RSASSA | TPM_ALG_RSAPSS) => SigScheme::read_after_id(id, r),
        _ => Err(rc::VALUE),
    }
}

/// The rest of TPMS_RSA_PARMS after its scheme (Part 2 §12.2.3.5): keyBits
/// (TPMI_RSA_KEY_BITS: 2048 is the one implemented, any other TPM_RC_VALUE, Part 2
/// §11.2.4.6) and exponent (0, meaning 2^16 + 1, or 65537 itself; other exponents are not
/// implemented: TPM_RC_RANGE, as Part 3 §12.1 answers an unsupported exponent).
pub fn read_rsa_key_parms(r: &mut Reader) -> Result<u32, Rc> {
    if r.u16()? != RSA_KEY_BITS {
        return Err(rc::VALUE);
    }
    match r.u32()? {
        e @ (0 | RSA_DEFAULT_EXPONENT) => Ok(e),
        _ => Err(rc::RANGE),
    }
}

/// Unmarshals and validates a TPMT_PUBLIC template for TPM2_CreatePrimary; errors are
/// unnumbered (the caller numbers them with the parameter). Checks, in Part 4's order
/// (unmarshal, then `PublicAttributesValidation`, `CreateChecks`, `SchemeChecks`):
///
/// - type TPM_ALG_ECC or TPM_ALG_RSA (other types are not implemented: TPM_RC_TYPE);
///   nameAlg an implemented hash (TPM_RC_HASH, NULL included); reserved TPMA_OBJECT bits
///   (TPM_RC_RESERVED_BITS); for ECC curve P-256 (TPM_RC_CURVE), kdf NULL (TPM_RC_KDF),
///   unique coordinates ≤ 32 octets (TPM_RC_SIZE); for RSA the scheme
///   ([`read_rsa_scheme`]), keyBits and exponent ([`read_rsa_key_parms`]: TPM_RC_VALUE,
///   TPM_RC_RANGE), unique ≤ MAX_RSA_KEY_BYTES (TPM_RC_SIZE);
/// - authPolicy empty or of nameAlg's digest size (TPM_RC_SIZE);
/// - TPM_RC_ATTRIBUTES: x509sign; fixedTPM ≠ fixedParent (a primary's parent is a
///   hierarchy, which is fixedTPM); encryptedDuplication with fixedTPM or fixedParent;
///   sensitiveDataOrigin CLEAR (a key is always generated by the TPM); neither sign
///   nor decrypt, or both with restricted (Part 2 §12.2.3.6); decrypt alone without
///   restricted (unrestricted decryption-only keys are not implemented);
/// - a storage key needs AES-128-CFB (TPM_RC_SYMMETRIC) and scheme NULL (TPM_RC_SCHEME);
///   a signing key symmetric NULL (TPM_RC_SYMMETRIC) and ECDSA-SHA256 if ECC, a scheme if
///   RSA and restricted (TPM_RC_SCHEME);
///   a sign + decrypt key symmetric NULL (TPM_RC_SYMMETRIC: it is no storage key) and
///   scheme NULL (TPM_RC_SCHEME, Part 2 §12.2.3.6).
///
/// A TPM_ALG_KEYEDHASH template (Part 2 §12.2.3.3) is a sealed data object: scheme NULL
/// (HMAC and XOR are not implemented: TPM_RC_SCHEME; another value TPM_RC_VALUE), unique
/// at most 48 octets (TPM_RC_SIZE); the attribute rules above except that
/// sensitiveDataOrigin, sign, decrypt and restricted must all be CLEAR (TPM_RC_ATTRIBUTES:
/// the data comes from the caller, and keyed-hash keys are not implemented).
pub fn read_template(r: &mut Reader) -> Result<Public, Rc> {
    let rsa = match r.u16()? {
        TPM_ALG_ECC => false,
        TPM_ALG_RSA => true,
        TPM_ALG_KEYEDHASH => return read_sealed_template(r),
        _ => return Err(rc::TYPE),
    };
    let name_alg = HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)?;
    let attributes = r.u32()?;
    if attributes & TPMA_OBJECT_RESERVED != 0 {
        return Err(rc::RESERVED_BITS);
    }
    let auth_policy = r.tpm2b(super::hash::MAX_DIGEST_SIZE)?.to_vec();
    let aes = read_symmetric(r)?;
    let (scheme, rsa_exponent, x, y);
    if rsa {
        scheme = read_rsa_scheme(r)?;
        rsa_exponent = Some(read_rsa_key_parms(r)?);
        x = r.tpm2b(MAX_RSA_KEY_BYTES)?.to_vec();
        y = Vec::new();
    } else {
        scheme = read_scheme(r)?;
        rsa_exponent = None;
        if r.u16()? != TPM_ECC_NIST_P256 {
            return Err(rc::CURVE);
        }
        match r.u16()? {
            TPM_ALG_NULL => {}
            _ => return Err(rc::KDF),
        }
        x = r.tpm2b(ECC_KEY_BYTES)?.to_vec();
        y = r.tpm2b(ECC_KEY_BYTES)?.to_vec();
    }

    check_auth_policy(name_alg, &auth_policy)?;
    let has = |bit| attributes & bit != 0;
    if !shared_attributes_ok(attributes) || !has(TPMA_OBJECT_SENSITIVE_DATA_ORIGIN) {
        return Err(rc::ATTRIBUTES);
    }
    let (restricted, decrypt, sign) = (
        has(TPMA_OBJECT_RESTRICTED),
        has(TPMA_OBJECT_DECRYPT),
        has(TPMA_OBJECT_SIGN),
    );
    let kind = match (decrypt, sign) {
        (true, false) if restricted => KeyKind::Storage,
        (false, true) => KeyKind::Signing,
        (true, true) if !restricted => KeyKind::SignDecrypt,
        _ => return Err(rc::ATTRIBUTES),
    };
    match kind {
        KeyKind::Storage if !aes => return Err(rc::SYMMETRIC),
        KeyKind::Storage if scheme.is_some() => return Err(rc::SCHEME),
        KeyKind::Signing | KeyKind::SignDecrypt if aes => return Err(rc::SYMMETRIC),
        // An ECC signing key is ECDSA-SHA256; an RSA one names its scheme when it is
        // restricted (Part 2 §12.2.3.6: a restricted signing key's scheme may not be NULL)
        // and may leave it NULL otherwise (each use names one).
        KeyKind::Signing if scheme.is_none() && (!rsa || restricted) => {
            return Err(rc::SCHEME);
        }
        KeyKind::SignDecrypt if scheme.is_some() => return Err(rc::SCHEME),
        _ => {}
    }
    Ok(Public {
        name_alg,
        attributes,
        auth_policy,
        kind,
        scheme,
        rsa_exponent,
        x,
        y,
    })
}

/// An authPolicy is empty or a digest of the object's nameAlg (TPM_RC_SIZE).
fn check_auth_policy(name_alg: HashAlg, auth_policy: &[u8]) -> Result<(), Rc> {
    if !auth_policy.is_empty() && auth_policy.len() != name_alg.digest_size() {
        return Err(rc::SIZE);
    }
    Ok(())
}

/// The attribute rules every object type here shares (Part 1 §27.2): x509sign clear,
/// fixedTPM and fixedParent equal, encryptedDuplication only on an object with neither.
fn shared_attributes_ok(attributes: u32) -> bool {
    let has = |bit| attributes & bit != 0;
    let (fixed_tpm, fixed_parent) = (has(TPMA_OBJECT_FIXED_TPM), has(TPMA_OBJECT_FIXED_PARENT));
    !has(TPMA_OBJECT_X509_SIGN)
        && fixed_tpm == fixed_parent
        && !(has(TPMA_OBJECT_ENCRYPTED_DUPLICATION) && (fixed_tpm || fixed_parent))
}

/// TPMT_KEYEDHASH_SCHEME+ (Part 2 §11.1.23): NULL; HMAC and XOR are not implemented
/// (TPM_RC_SCHEME); any other value TPM_RC_VALUE.
pub fn read_keyedhash_scheme(r: &mut Reader) -> Result<(), Rc> {
    match r.u16()? {
        TPM_ALG_NULL => Ok(()),
        TPM_ALG_HMAC | TPM_ALG_XOR => Err(rc::SCHEME),
        _ => Err(rc::VALUE),
    }
}

/// The part of [`read_template`] after a TPM_ALG_KEYEDHASH type.
fn read_sealed_template(r: &mut Reader) -> Result<Public, Rc> {
    let name_alg = HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)?;
    let attributes = r.u32()?;
    if attributes & TPMA_OBJECT_RESERVED != 0 {
        return Err(rc::RESERVED_BITS);
    }
    let auth_policy = r.tpm2b(MAX_DIGEST_SIZE)?.to_vec();
    read_keyedhash_scheme(r)?;
    let unique = r.tpm2b(MAX_DIGEST_SIZE)?.to_vec();
    check_auth_policy(name_alg, &auth_policy)?;
    let has = |bit| attributes & bit != 0;
    if !shared_attributes_ok(attributes)
        || has(TPMA_OBJECT_SENSITIVE_DATA_ORIGIN)
        || has(TPMA_OBJECT_SIGN)
        || has(TPMA_OBJECT_DECRYPT)
        || has(TPMA_OBJECT_RESTRICTED)
    {
        return Err(rc::ATTRIBUTES);
    }
    Ok(Public {
        name_alg,
        attributes,
        auth_policy,
        kind: KeyKind::Sealed,
        scheme: None,
        rsa_exponent: None,
        x: unique,
        y: Vec::new(),
    })
}

/// A sealed object's unique field: H_nameAlg(seedValue || data) (Part 1 §27.7.4; Part 4
/// `CryptComputeSymmetricUnique`), the seedValue (nameAlg's digest size, random) keeping
/// the data from being guessed from its public digest.
pub fn sealed_unique(name_alg: HashAlg, seed_value: &[u8], data: &[u8]) -> Vec<u8> {
    name_alg.digest(&[seed_value, data]).as_bytes().to_vec()
}

/// Derives the primary key of `template` from `seed` (see the module documentation) and
/// fills in its unique field; the private key and, for a storage key, the seedValue are
/// returned. The seedValue is KDFa(SHA-256, seed, "Primary Object Creation",
/// Name(template), sensitive.data || 0x00000000, nameAlg's digest bits): counter 0, which
/// no private key candidate uses, so the same template under the same seed always gives
/// the same storage parent, children included. `None` only if 255 candidates in a row were
/// out of range (probability about 2^-8160).
///
/// An RSA key's primes come from an HMAC_DRBG (SP 800-90A; Part 1 §26.3 lets the primary
/// seed and the template seed a DRBG the key is generated from) instantiated with 384 bits
/// (entropy and nonce at a 256-bit strength) of KDFa(SHA-256, primary seed,
/// "Primary Object Creation", Name(template), sensitive.data || 0x00000001) and the
/// personalization "RSA primes", then `rsa_keys::generate`: the same template under the
/// same seed always gives the same modulus; another seed (TPM2_Clear) another. Not
/// bit-identical with the reference implementation's derivation.
pub fn derive_primary(
    seed: &[u8],
    template: &mut Public,
    data: &[u8],
) -> Option<(Vec<u8>, Vec<u8>)> {
    let name = template.name();
    let seed_value = match template.kind {
        KeyKind::Storage => {
            let mut context = data.to_vec();
            context.extend_from_slice(&0u32.to_be_bytes());
            let bits = (template.name_alg.digest_size() * 8) as u32;
            kdfa(
                HashAlg::Sha256,
                seed,
                PRIMARY_OBJECT_CREATION,
                &name,
                &context,
                bits,
            )
        }
        KeyKind::Signing | KeyKind::SignDecrypt | KeyKind::Sealed => Vec::new(),
    };
    if let Some(exponent) = template.rsa_exponent {
        let mut context = data.to_vec();
        context.extend_from_slice(&1u32.to_be_bytes());
        let entropy = kdfa(
            HashAlg::Sha256,
            seed,
            PRIMARY_OBJECT_CREATION,
            &name,
            &context,
            384,
        );
        let mut drbg = HmacDrbg::new(&entropy, &[], RSA_PRIMES);
        let (n, p) = rsa_keys::generate(&mut drbg, exponent)?;
        template.x = n;
        template.y = Vec::new();
        return Some((p, seed_value));
    }
    for counter in 1u32..256 {
        let mut context = data.to_vec();
        context.extend_from_slice(&counter.to_be_bytes());
        let candidate = kdfa(
            HashAlg::Sha256,
            seed,
            PRIMARY_OBJECT_CREATION,
            &name,
            &context,
            256,
        );
        if let Ok(secret) = p256::SecretKey::from_slice(&candidate) {
            let point = secret.public_key();
            let affine = point.as_affine();
            template.x = affine.x().to_vec();
            template.y = affine.y().to_vec();
            return Some((secret.to_bytes().to_vec(), seed_value));
        }
    }
    None
}

/// Generates an ordinary (non-primary) key for `template` with the DRBG (TPM2_Create; Part
/// 1 §27.3: FIPS 186-5 A.4.2, candidates until 0 < d < n) and fills in its unique field;
/// the private key and, for a storage key, a random seedValue of nameAlg's digest size.
/// `None` only if 255 candidates in a row were out of range. An RSA key is
/// `rsa_keys::generate`'s from the DRBG; its private part is the prime p.
pub fn generate_key(template: &mut Public, drbg: &mut HmacDrbg) -> Option<(Vec<u8>, Vec<u8>)> {
    let seed_value = match template.kind {
        KeyKind::Storage => {
            let mut v = alloc::vec![0u8; template.name_alg.digest_size()];
            drbg.generate(&mut v, &[]);
            v
        }
        KeyKind::Signing | KeyKind::SignDecrypt | KeyKind::Sealed => Vec::new(),
    };
    if let Some(exponent) = template.rsa_exponent {
        let (n, p) = rsa_keys::generate(drbg, exponent)?;
        template.x = n;
        template.y = Vec::new();
        return Some((p, seed_value));
    }
    for _ in 0..255 {
        let mut candidate = [0u8; 32];
        drbg.generate(&mut candidate, &[]);
        if let Ok(secret) = p256::SecretKey::from_slice(&candidate) {
            let point = secret.public_key();
            let affine = point.as_affine();
            template.x = affine.x().to_vec();
            template.y = affine.y().to_vec();
            return Some((candidate.to_vec(), seed_value));
        }
    }
    None
}

/// Protection key label (Part 1 §23.4 "Symmetric Encryption": symKey = KDFa(pNameAlg,
/// seedValue, "STORAGE", Name, NULL, keyBits)).
const STORAGE: &[u8] = b"STORAGE";
/// Integrity key label (Part 1 §23.3 "Integrity": HMACkey = KDFa(pNameAlg, seedValue,
/// "INTEGRITY", NULL, NULL, digestBits)).
const INTEGRITY: &[u8] = b"INTEGRITY";

/// The storage parent's AES-128 key for the child named `name`.
fn storage_key(parent: &Object, name: &[u8]) -> [u8; 16] {
    let bits = kdfa(
        parent.public.name_alg,
        &parent.seed_value,
        STORAGE,
        name,
        &[],
        128,
    );
    let mut key = [0u8; 16];
    if let Some(k) = bits.get(..16) {
        key.copy_from_slice(k);
    }
    key
}

/// outerHMAC = HMAC_pNameAlg(HMACkey, encSensitive || Name) (Part 1 §23.3; Part 4
/// `ComputeOuterIntegrity`).
fn outer_integrity(parent: &Object, name: &[u8], encrypted: &[u8]) -> super::hash::Digest {
    let alg = parent.public.name_alg;
    let bits = (alg.digest_size() * 8) as u32;
    let key = kdfa(alg, &parent.seed_value, INTEGRITY, &[], &[], bits);
    alg.hmac(&key, &[encrypted, name])
}

/// TPM2B_PRIVATE's buffer for a child of the storage key `parent` (Part 1 §23; Part 4
/// `SensitiveToPrivate`, `ProduceOuterWrap`): integrityHMAC as TPM2B_DIGEST, then the
/// TPM2B_SENSITIVE (size-prefixed TPMT_SENSITIVE) encrypted with AES-128-CFB under the
/// storage key, IV zero (Part 1 §23.4: the key is unique to the Name).
pub fn wrap(parent: &Object, name: &[u8], sensitive: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.tpm2b(sensitive);
    let mut encrypted = w.into_vec();
    let key = storage_key(parent, name);
    Encryptor::<Aes128>::new(&key.into(), &[0u8; 16].into()).encrypt(&mut encrypted);
    let mut out = Writer::new();
    out.tpm2b(outer_integrity(parent, name, &encrypted).as_bytes());
    let mut out = out.into_vec();
    out.extend_from_slice(&encrypted);
    out
}

/// The TPMT_SENSITIVE octets of a TPM2B_PRIVATE buffer made by [`wrap`] (Part 4
/// `UnwrapOuter`): an integrity size other than pNameAlg's digest size, an HMAC that does
/// not match, or a decrypted TPM2B_SENSITIVE whose size is not the rest, is TPM_RC_INTEGRITY
/// (unnumbered; TPM2_Load numbers it with inPrivate).
pub fn unwrap(parent: &Object, name: &[u8], private: &[u8]) -> Result<Vec<u8>, Rc> {
    let mut r = Reader::new(private);
    let integrity = r.tpm2b(MAX_DIGEST_SIZE).map_err(|_| rc::INTEGRITY)?;
    let encrypted = r.rest();
    if integrity.len() != parent.public.name_alg.digest_size()
        || !constant_time_eq(
            outer_integrity(parent, name, encrypted).as_bytes(),
            integrity,
        )
    {
        return Err(rc::INTEGRITY);
    }
    let mut plain = encrypted.to_vec();
    let key = storage_key(parent, name);
    Decryptor::<Aes128>::new(&key.into(), &[0u8; 16].into()).decrypt(&mut plain);
    let mut inner = Reader::new(&plain);
    let sensitive = inner.tpm2b(MAX_COMMAND_SIZE).map_err(|_| rc::INTEGRITY)?;
    if !inner.is_empty() {
        return Err(rc::INTEGRITY);
    }
    Ok(sensitive.to_vec())
}

/// A TPMT_SENSITIVE's (authValue, seedValue, d or data).
pub type Sensitive = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The sensitiveType of a TPMT_SENSITIVE for `public` (its TPMT_PUBLIC's type).
fn sensitive_type(public: &Public) -> u16 {
    if public.kind == KeyKind::Sealed {
        TPM_ALG_KEYEDHASH
    } else if public.is_rsa() {
        TPM_ALG_RSA
    } else {
        TPM_ALG_ECC
    }
}

/// TPMT_SENSITIVE (Part 2 §12.3.2.4): sensitiveType (TPM_ALG_ECC, TPM_ALG_RSA, or
/// TPM_ALG_KEYEDHASH for a sealed object), authValue, seedValue, sensitive
/// (TPM2B_ECC_PARAMETER d, TPM2B_PRIVATE_KEY_RSA p, or TPM2B_SENSITIVE_DATA).
pub fn sensitive_bytes(public: &Public, auth: &[u8], seed_value: &[u8], private: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(sensitive_type(public));
    w.tpm2b(auth);
    w.tpm2b(seed_value);
    w.tpm2b(private);
    w.into_vec()
}

/// Reads a TPMT_SENSITIVE for `public` and checks they belong together (Part 4
/// `ObjectLoad`, `CryptValidateKeys`): type ECC, authValue at most nameAlg's digest,
/// seedValue of nameAlg's digest size for a storage key and empty otherwise, d a valid
/// P-256 private key whose public point is the unique field, nothing left over. Any failure
/// is TPM_RC_BINDING (unnumbered). Returns (authValue, seedValue, d).
pub fn read_sensitive(bytes: &[u8], public: &Public) -> Result<Sensitive, Rc> {
    let bad = |_| rc::BINDING;
    let mut r = Reader::new(bytes);
    let sealed = public.kind == KeyKind::Sealed;
    if r.u16().map_err(bad)? != sensitive_type(public) {
        return Err(rc::BINDING);
    }
    let auth = r.tpm2b(MAX_DIGEST_SIZE).map_err(bad)?.to_vec();
    let seed_value = r.tpm2b(MAX_DIGEST_SIZE).map_err(bad)?.to_vec();
    let d = r.tpm2b(MAX_SEALED_DATA).map_err(bad)?;
    let seed_size = match public.kind {
        KeyKind::Storage | KeyKind::Sealed => public.name_alg.digest_size(),
        KeyKind::Signing | KeyKind::SignDecrypt => 0,
    };
    if !r.is_empty() || auth.len() > public.name_alg.digest_size() || seed_value.len() != seed_size
    {
        return Err(rc::BINDING);
    }
    if sealed {
        if sealed_unique(public.name_alg, &seed_value, d) != public.x {
            return Err(rc::BINDING);
        }
        return Ok((auth, seed_value, d.to_vec()));
    }
    if let Some(exponent) = public.rsa_exponent {
        // p must divide the modulus and make a valid key with it (`rsa_keys::private_key`).
        rsa_keys::private_key(&public.x, d, exponent).ok_or(rc::BINDING)?;
        return Ok((auth, seed_value, d.to_vec()));
    }
    if d.len() > ECC_KEY_BYTES {
        return Err(rc::BINDING);
    }
    let mut private = [0u8; 32];
    private[ECC_KEY_BYTES - d.len()..].copy_from_slice(d);
    let secret = p256::SecretKey::from_slice(&private).map_err(|_| rc::BINDING)?;
    let point = secret.public_key();
    let affine = point.as_affine();
    if affine.x().as_slice() != public.x.as_slice() || affine.y().as_slice() != public.y.as_slice()
    {
        return Err(rc::BINDING);
    }
    Ok((auth, seed_value, private.to_vec()))
}

/// The DRBG as the random source `ecdsa` takes (rand_core's `TryRng`; it cannot fail).
struct DrbgRng<'a>(&'a mut HmacDrbg);

impl TryRng for DrbgRng<'_> {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.generate(&mut b, &[]);
        Ok(u32::from_be_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.generate(&mut b, &[]);
        Ok(u64::from_be_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.generate(dst, &[]);
        Ok(())
    }
}

impl TryCryptoRng for DrbgRng<'_> {}

/// An ECDSA signature's (r, s), each 32 octets big-endian.
pub type EcdsaSignature = ([u8; ECC_KEY_BYTES], [u8; ECC_KEY_BYTES]);

/// A signature made by [`Object::sign`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureValue {
    Ecdsa(EcdsaSignature),
    /// RSASSA or RSAPSS: the signature, as long as the modulus (256 octets).
    Rsa(Vec<u8>),
}

/// A TPMT_SIGNATURE's signature (TPMU_SIGNATURE) as VerifySignature reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureRef<'a> {
    /// signatureR, signatureS (each at most 32 octets).
    Ecdsa(&'a [u8], &'a [u8]),
    /// TPM2B_PUBLIC_KEY_RSA sig (at most 256 octets).
    Rsa(&'a [u8]),
}

/// A loaded transient object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub public: Public,
    /// The hierarchy it belongs to (its primary seed's).
    pub hierarchy: u32,
    /// The private key d (32 octets), or a sealed object's data.
    pub private: Vec<u8>,
    /// The authValue from inSensitive.userAuth.
    pub auth: Vec<u8>,
    /// TPMT_SENSITIVE.seedValue: a storage key's secret protecting its children (Part 1
    /// §23.2), nameAlg's digest size; empty for other keys.
    pub seed_value: Vec<u8>,
    /// The parent's qualified name; empty for a primary object (its parent is the
    /// hierarchy, whose qualified name is its handle).
    pub parent_qn: Vec<u8>,
}

impl Object {
    pub fn name(&self) -> Vec<u8> {
        self.public.name()
    }

    /// A primary object's qualified name: its parent is the hierarchy handle.
    pub fn qualified_name(&self) -> Vec<u8> {
        let hierarchy = self.hierarchy.to_be_bytes();
        let parent: &[u8] = if self.parent_qn.is_empty() {
            &hierarchy
        } else {
            &self.parent_qn
        };
        qualified_name(self.public.name_alg, parent, &self.name())
    }

    /// ECDSA over P-256 of `digest` (the caller checked it is a digest of the scheme's
    /// hash: 20, 32 or 48 octets, a longer one truncated to its leftmost 256 bits) with the
    /// private key (FIPS 186-5 §6.4.1). The per-signature secret k is RFC 6979's
    /// deterministic k with 32 octets of DRBG output as its additional data (RFC 6979
    /// §3.6, "hedged" signatures; `ecdsa`'s `sign_prehash_with_rng`): k is never the same
    /// for two signatures of the same digest, and stays safe if the DRBG were predictable.
    /// `None` only if the stored private key or the digest were refused (internal error).
    ///
    /// An RSA key signs with `scheme` (RSASSA or RSAPSS, `rsa_keys::sign`), blinded with
    /// the DRBG.
    pub fn sign(
        &self,
        scheme: SigScheme,
        digest: &[u8],
        drbg: &mut HmacDrbg,
    ) -> Option<SignatureValue> {
        if let Some(exponent) = self.public.rsa_exponent {
            let key = rsa_keys::private_key(&self.public.x, &self.private, exponent)?;
            return rsa_keys::sign(&key, scheme, digest, &mut DrbgRng(drbg))
                .map(SignatureValue::Rsa);
        }
        if scheme.is_rsa() {
            return None;
        }
        self.sign_ecdsa(digest, drbg).map(SignatureValue::Ecdsa)
    }

    /// RSA encryption of `message` under an RSA key's public key with `scheme`
    /// (`rsa_keys::encrypt`), randomized with the DRBG. `None` for an ECC key, a message
    /// the padding cannot hold, or (raw RSA) a value not below the modulus.
    pub fn rsa_encrypt(
        &self,
        scheme: rsa_keys::DecryptScheme,
        label: &[u8],
        message: &[u8],
        drbg: &mut HmacDrbg,
    ) -> Option<Vec<u8>> {
        let exponent = self.public.rsa_exponent?;
        let key = rsa_keys::public_key(&self.public.x, exponent)?;
        rsa_keys::encrypt(&key, scheme, label, message, &mut DrbgRng(drbg))
    }

    /// The RSA private key, rebuilt from the modulus and the prime p the sensitive area
    /// keeps; `None` for an ECC key or (internal error) parts that do not make a key.
    pub fn rsa_private_key(&self) -> Option<rsa::PrivateKey> {
        let exponent = self.public.rsa_exponent?;
        rsa_keys::private_key(&self.public.x, &self.private, exponent)
    }

    /// RSA decryption of `ciphertext` with `key` (this object's [`Object::rsa_private_key`])
    /// and `scheme` (`rsa_keys::decrypt`), blinded with the DRBG; `None` when the padding
    /// does not decode.
    pub fn rsa_decrypt(
        key: &rsa::PrivateKey,
        scheme: rsa_keys::DecryptScheme,
        label: &[u8],
        ciphertext: &[u8],
        drbg: &mut HmacDrbg,
    ) -> Option<Vec<u8>> {
        rsa_keys::decrypt(key, scheme, label, ciphertext, &mut DrbgRng(drbg))
    }

    fn sign_ecdsa(&self, digest: &[u8], drbg: &mut HmacDrbg) -> Option<EcdsaSignature> {
        let key = SigningKey::from_slice(&self.private).ok()?;
        let signature: Signature = key.sign_prehash_with_rng(&mut DrbgRng(drbg), digest).ok()?;
        let (r, s) = signature.split_bytes();
        let (mut rr, mut ss) = ([0u8; ECC_KEY_BYTES], [0u8; ECC_KEY_BYTES]);
        rr.copy_from_slice(&r);
        ss.copy_from_slice(&s);
        Some((rr, ss))
    }

    /// Whether `signature` is a valid `scheme` signature of `digest` under the public key:
    /// a scheme of the other key type is invalid; RSA by `rsa_keys::verify`.
    pub fn verify(&self, scheme: SigScheme, digest: &[u8], signature: SignatureRef) -> bool {
        match (self.public.rsa_exponent, signature) {
            (Some(exponent), SignatureRef::Rsa(sig)) if scheme.is_rsa() => {
                rsa_keys::public_key(&self.public.x, exponent)
                    .is_some_and(|key| rsa_keys::verify(&key, scheme, digest, sig))
            }
            (None, SignatureRef::Ecdsa(r, s)) if !scheme.is_rsa() => {
                self.verify_ecdsa(digest, r, s)
            }
            _ => false,
        }
    }

    /// Whether (r, s) (each at most 32 octets, big-endian) is a valid ECDSA signature of
    /// `digest` under the public key (FIPS 186-5 §6.4.2; r, s in [1, n-1], else invalid).
    fn verify_ecdsa(&self, digest: &[u8], r: &[u8], s: &[u8]) -> bool {
        let pad = |v: &[u8]| {
            let mut out = [0u8; ECC_KEY_BYTES];
            let start = ECC_KEY_BYTES.saturating_sub(v.len());
            if v.len() <= ECC_KEY_BYTES {
                out[start..].copy_from_slice(v);
            }
            out
        };
        if r.len() > ECC_KEY_BYTES || s.len() > ECC_KEY_BYTES {
            return false;
        }
        let Ok(signature) = Signature::from_scalars(pad(r), pad(s)) else {
            return false;
        };
        let mut sec1 = Vec::with_capacity(1 + 2 * ECC_KEY_BYTES);
        sec1.push(4);
        sec1.extend_from_slice(&pad(&self.public.x));
        sec1.extend_from_slice(&pad(&self.public.y));
        let Ok(key) = VerifyingKey::from_sec1_bytes(&sec1) else {
            return false;
        };
        key.verify_prehash(digest, &signature).is_ok()
    }

    /// The object inside a context blob (our format, as the reference's OBJECT is its
    /// own): hierarchy, TPMT_PUBLIC as TPM2B, private key, authValue, seedValue and the
    /// parent's qualified name, each as TPM2B.
    pub fn write(&self, w: &mut Writer) {
        w.u32(self.hierarchy);
        w.tpm2b(&self.public.to_bytes());
        w.tpm2b(&self.private);
        w.tpm2b(&self.auth);
        w.tpm2b(&self.seed_value);
        w.tpm2b(&self.parent_qn);
    }

    /// Reads what [`Object::write`] wrote; `None` if it does not decode exactly.
    pub fn read(mut r: Reader) -> Option<Self> {
        let hierarchy = r.u32().ok()?;
        let mut public = Reader::new(r.tpm2b(MAX_CONTEXT_SIZE).ok()?);
        let public_area = read_template(&mut public).ok()?;
        let private = r.tpm2b(MAX_SEALED_DATA).ok()?.to_vec();
        let auth = r.tpm2b(super::hash::MAX_DIGEST_SIZE).ok()?.to_vec();
        let seed_value = r.tpm2b(super::hash::MAX_DIGEST_SIZE).ok()?.to_vec();
        let parent_qn = r.tpm2b(2 + super::hash::MAX_DIGEST_SIZE).ok()?.to_vec();
        if !public.is_empty() || !r.is_empty() {
            return None;
        }
        Some(Self {
            public: public_area,
            hierarchy,
            private,
            auth,
            seed_value,
            parent_qn,
        })
    }
}

/// A hash or event sequence object (Part 3 §17.3, TPM2_HashSequenceStart): a transient
/// object with an authValue and no public area, in the NULL hierarchy and DA-exempt (Part 4
/// `AllocateSequenceSlot`). Its Name is its handle (no public area to hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// authValue, without trailing zeros (Part 1 §19.6.4.3).
    pub auth: Vec<u8>,
    pub kind: SequenceKind,
    /// Whether the first block of data came (Part 4 `firstBlock`), and whether it left the
    /// sequence safe for a ticket: at least 4 octets, not starting with TPM_GENERATED_VALUE
    /// (Part 4 `TicketIsSafe`, `ticketSafe`).
    pub first_block: bool,
    pub ticket_safe: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SequenceKind {
    /// A hash sequence of one algorithm.
    Hash(Hasher),
    /// An event sequence (hashAlg TPM_ALG_NULL): one computation per PCR bank, in
    /// [`HashAlg::ALL`] order.
    Event(Vec<Hasher>),
}

impl Sequence {
    pub fn new(alg: Option<HashAlg>, auth: &[u8]) -> Self {
        let end = auth.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        let kind = match alg {
            Some(alg) => SequenceKind::Hash(Hasher::new(alg)),
            None => SequenceKind::Event(HashAlg::ALL.into_iter().map(Hasher::new).collect()),
        };
        Self {
            auth: auth.get(..end).unwrap_or_default().to_vec(),
            kind,
            first_block: false,
            ticket_safe: false,
        }
    }

    /// Adds `data` to every computation; the first block decides ticket safety.
    pub fn update(&mut self, data: &[u8]) {
        if !self.first_block {
            self.first_block = true;
            self.ticket_safe =
                data.len() >= 4 && data.get(..4) != Some(&TPM_GENERATED_VALUE.to_be_bytes()[..]);
        }
        match &mut self.kind {
            SequenceKind::Hash(h) => h.update(data),
            SequenceKind::Event(hs) => hs.iter_mut().for_each(|h| h.update(data)),
        }
    }
}

/// The largest serialized hash state (SHA-384's: 64-octet chaining value, 16-octet block
/// count, 128-octet block buffer and its position, 209 octets in sha2 0.11), with room.
const MAX_HASH_STATE: usize = 256;

impl Sequence {
    /// The sequence inside a context blob (our format, as the reference's HASH_OBJECT is
    /// its own): hashAlg (TPM_ALG_NULL for an event sequence), authValue as TPM2B,
    /// firstBlock and ticketSafe (one octet each), then each computation's state as TPM2B
    /// (one, or one per PCR bank in [`HashAlg::ALL`] order).
    pub fn write(&self, w: &mut Writer) {
        let hashers: &[Hasher] = match &self.kind {
            SequenceKind::Hash(h) => {
                w.u16(h.alg().alg_id());
                core::slice::from_ref(h)
            }
            SequenceKind::Event(hs) => {
                w.u16(TPM_ALG_NULL);
                hs
            }
        };
        w.tpm2b(&self.auth);
        w.u8(u8::from(self.first_block));
        w.u8(u8::from(self.ticket_safe));
        for h in hashers {
            w.tpm2b(&h.export());
        }
    }

    /// Reads what [`Sequence::write`] wrote; `None` if it does not decode exactly.
    pub fn read(mut r: Reader) -> Option<Self> {
        let alg = match r.u16().ok()? {
            TPM_ALG_NULL => None,
            id => Some(HashAlg::from_alg_id(id)?),
        };
        let auth = r.tpm2b(MAX_DIGEST_SIZE).ok()?.to_vec();
        let flag = |b: u8| match b {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        let first_block = flag(r.u8().ok()?)?;
        let ticket_safe = flag(r.u8().ok()?)?;
        let mut state = |alg| Hasher::import(alg, r.tpm2b(MAX_HASH_STATE).ok()?);
        let kind = match alg {
            Some(alg) => SequenceKind::Hash(state(alg)?),
            None => SequenceKind::Event(
                HashAlg::ALL
                    .into_iter()
                    .map(&mut state)
                    .collect::<Option<Vec<_>>>()?,
            ),
        };
        if !r.is_empty() {
            return None;
        }
        Some(Self {
            auth,
            kind,
            first_block,
            ticket_safe,
        })
    }
}

/// What a transient slot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Loaded {
    Object(Object),
    Sequence(Box<Sequence>),
}

/// The transient object slots, shared by objects and sequence objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    slots: [Option<Loaded>; MAX_LOADED_OBJECTS],
}

impl Objects {
    fn slot(handle: u32) -> Option<usize> {
        let slot = handle.checked_sub(TRANSIENT_FIRST)? as usize;
        (slot < MAX_LOADED_OBJECTS).then_some(slot)
    }

    fn loaded(&self, handle: u32) -> Option<&Loaded> {
        self.slots.get(Self::slot(handle)?)?.as_ref()
    }

    /// The object (not sequence) loaded at `handle`.
    pub fn get(&self, handle: u32) -> Option<&Object> {
        match self.loaded(handle)? {
            Loaded::Object(object) => Some(object),
            Loaded::Sequence(_) => None,
        }
    }

    /// The sequence object loaded at `handle`.
    pub fn sequence(&self, handle: u32) -> Option<&Sequence> {
        match self.loaded(handle)? {
            Loaded::Sequence(sequence) => Some(sequence),
            Loaded::Object(_) => None,
        }
    }

    pub fn sequence_mut(&mut self, handle: u32) -> Option<&mut Sequence> {
        match self.slots.get_mut(Self::slot(handle)?)?.as_mut()? {
            Loaded::Sequence(sequence) => Some(sequence),
            Loaded::Object(_) => None,
        }
    }

    /// Whether anything, object or sequence, is loaded at `handle`.
    pub fn is_loaded(&self, handle: u32) -> bool {
        self.loaded(handle).is_some()
    }

    fn insert_loaded(&mut self, loaded: Loaded) -> Result<u32, Rc> {
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(rc::OBJECT_MEMORY)?;
        self.slots[slot] = Some(loaded);
        Ok(TRANSIENT_FIRST + slot as u32)
    }

    /// Loads `object` in the first free slot: its handle, or TPM_RC_OBJECT_MEMORY.
    pub fn insert(&mut self, object: Object) -> Result<u32, Rc> {
        self.insert_loaded(Loaded::Object(object))
    }

    /// Loads a sequence object in the first free slot: its handle, or TPM_RC_OBJECT_MEMORY.
    pub fn insert_sequence(&mut self, sequence: Sequence) -> Result<u32, Rc> {
        self.insert_loaded(Loaded::Sequence(Box::new(sequence)))
    }

    pub fn has_room(&self) -> bool {
        self.slots.iter().any(Option::is_none)
    }

    /// Flushes the object or sequence `handle`; whether there was one.
    pub fn remove(&mut self, handle: u32) -> bool {
        match Self::slot(handle).and_then(|s| self.slots.get_mut(s)) {
            Some(slot) => slot.take().is_some(),
            None => false,
        }
    }

    /// The loaded objects' handles, in order.
    pub fn handles(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, o)| o.is_some())
            .map(|(slot, _)| TRANSIENT_FIRST + slot as u32)
    }

    pub fn len(&self) -> usize {
        self.handles().count()
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Flushes every object of `hierarchy` (TPM2_Clear; Part 4 `ObjectFlushHierarchy`).
    pub fn flush_hierarchy(&mut self, hierarchy: u32) {
        for slot in &mut self.slots {
            if matches!(slot, Some(Loaded::Object(o)) if o.hierarchy == hierarchy) {
                *slot = None;
            }
        }
    }
}

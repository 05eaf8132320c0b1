//! Transient objects (Part 1 §27, §28; Part 2 §12.2): ECC NIST P-256 keys made by
//! TPM2_CreatePrimary, their TPMT_PUBLIC template rules, Names, and the slots they are
//! loaded in (handles TRANSIENT_FIRST + slot, TPM_RC_OBJECT_MEMORY when every slot is full).
//!
//! Supported templates (everything else is refused with the code Part 4 would give, or the
//! code of the first unsupported choice): type TPM_ALG_ECC, curve TPM_ECC_NIST_P256, kdf
//! TPM_ALG_NULL, and either
//! - a signing key: sign SET, decrypt CLEAR, scheme ECDSA with SHA-256, symmetric NULL; or
//! - a storage key: restricted and decrypt SET, sign CLEAR, scheme NULL, symmetric AES-128
//!   CFB (Part 1 §27.2.3, what `tpm2_createprimary` makes by default).
//!
//! Primary keys are derived (Part 1 §26.3; Part 4 `TPM2_CreatePrimary`,
//! `DRBG_InstantiateSeeded`, `CryptEccGenerateKey`): candidates are drawn from
//! KDFa(SHA-256, primary seed, "Primary Object Creation", Name(template),
//! sensitive.data || counter, 256) for counter 1, 2, … until one is a valid private key
//! (0 < d < n, FIPS 186-4 B.4.2 "testing candidates"). The same template under the same
//! seed always gives the same key. Not bit-identical with the reference implementation,
//! which runs an AES-256 CTR_DRBG seeded from that KDFa output.

use alloc::vec::Vec;

use p256::ecdsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use p256::ecdsa::signature::rand_core::{TryCryptoRng, TryRng};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::point::AffineCoordinates;

use super::constants::*;
use super::drbg::HmacDrbg;
use super::hash::HashAlg;
use super::marshal::{Reader, Writer};
use super::rc::{self, Rc};
use super::session::kdfa;

/// Octets of a P-256 coordinate or private key (MAX_ECC_KEY_BYTES here).
pub const ECC_KEY_BYTES: usize = 32;

/// Label of primary key derivation (Part 4 PRIMARY_OBJECT_CREATION, with its NUL).
const PRIMARY_OBJECT_CREATION: &[u8] = b"Primary Object Creation\0";

/// The kinds of key a template may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA-SHA256 signing key (restricted or not).
    Signing,
    /// Restricted decryption key with AES-128-CFB: a storage parent.
    Storage,
}

/// A validated TPMT_PUBLIC of an ECC P-256 key. `x`, `y` are the unique field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Public {
    pub name_alg: HashAlg,
    pub attributes: u32,
    pub auth_policy: Vec<u8>,
    pub kind: KeyKind,
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

impl Public {
    /// The marshalled TPMT_PUBLIC (Part 2 §12.2.4).
    pub fn write(&self, w: &mut Writer) {
        w.u16(TPM_ALG_ECC);
        w.u16(self.name_alg.alg_id());
        w.u32(self.attributes);
        w.tpm2b(&self.auth_policy);
        match self.kind {
            KeyKind::Signing => {
                w.u16(TPM_ALG_NULL);
                w.u16(TPM_ALG_ECDSA);
                w.u16(TPM_ALG_SHA256);
            }
            KeyKind::Storage => {
                w.u16(TPM_ALG_AES);
                w.u16(128);
                w.u16(TPM_ALG_CFB);
                w.u16(TPM_ALG_NULL);
            }
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
fn read_symmetric(r: &mut Reader) -> Result<bool, Rc> {
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
/// ID, or ECDSA with another hash, is TPM_RC_SCHEME. Returns whether it is ECDSA-SHA256.
fn read_scheme(r: &mut Reader) -> Result<bool, Rc> {
    match r.u16()? {
        TPM_ALG_NULL => Ok(false),
        TPM_ALG_ECDSA => match HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)? {
            HashAlg::Sha256 => Ok(true),
            _ => Err(rc::SCHEME),
        },
        _ => Err(rc::SCHEME),
    }
}

/// Unmarshals and validates a TPMT_PUBLIC template for TPM2_CreatePrimary; errors are
/// unnumbered (the caller numbers them with the parameter). Checks, in Part 4's order
/// (unmarshal, then `PublicAttributesValidation`, `CreateChecks`, `SchemeChecks`):
///
/// - type TPM_ALG_ECC (other types are not implemented: TPM_RC_TYPE); nameAlg an
///   implemented hash (TPM_RC_HASH, NULL included); reserved TPMA_OBJECT bits
///   (TPM_RC_RESERVED_BITS); curve P-256 (TPM_RC_CURVE); kdf NULL (TPM_RC_KDF); unique
///   coordinates ≤ 32 octets (TPM_RC_SIZE);
/// - authPolicy empty or of nameAlg's digest size (TPM_RC_SIZE);
/// - TPM_RC_ATTRIBUTES: x509sign; fixedTPM ≠ fixedParent (a primary's parent is a
///   hierarchy, which is fixedTPM); encryptedDuplication with fixedTPM or fixedParent;
///   sensitiveDataOrigin CLEAR (an ECC key is always generated by the TPM); neither sign
///   nor decrypt, or both with restricted; decrypt without restricted (unrestricted
///   decryption keys are not implemented);
/// - a storage key needs AES-128-CFB (TPM_RC_SYMMETRIC) and scheme NULL (TPM_RC_SCHEME);
///   a signing key symmetric NULL (TPM_RC_SYMMETRIC) and ECDSA-SHA256 (TPM_RC_SCHEME).
pub fn read_template(r: &mut Reader) -> Result<Public, Rc> {
    if r.u16()? != TPM_ALG_ECC {
        return Err(rc::TYPE);
    }
    let name_alg = HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)?;
    let attributes = r.u32()?;
    if attributes & TPMA_OBJECT_RESERVED != 0 {
        return Err(rc::RESERVED_BITS);
    }
    let auth_policy = r.tpm2b(super::hash::MAX_DIGEST_SIZE)?.to_vec();
    let aes = read_symmetric(r)?;
    let ecdsa = read_scheme(r)?;
    if r.u16()? != TPM_ECC_NIST_P256 {
        return Err(rc::CURVE);
    }
    match r.u16()? {
        TPM_ALG_NULL => {}
        _ => return Err(rc::KDF),
    }
    let x = r.tpm2b(ECC_KEY_BYTES)?.to_vec();
    let y = r.tpm2b(ECC_KEY_BYTES)?.to_vec();

    if !auth_policy.is_empty() && auth_policy.len() != name_alg.digest_size() {
        return Err(rc::SIZE);
    }
    let has = |bit| attributes & bit != 0;
    let fixed_tpm = has(TPMA_OBJECT_FIXED_TPM);
    let fixed_parent = has(TPMA_OBJECT_FIXED_PARENT);
    if has(TPMA_OBJECT_X509_SIGN)
        || fixed_tpm != fixed_parent
        || (has(TPMA_OBJECT_ENCRYPTED_DUPLICATION) && (fixed_tpm || fixed_parent))
        || !has(TPMA_OBJECT_SENSITIVE_DATA_ORIGIN)
    {
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
        _ => return Err(rc::ATTRIBUTES),
    };
    match kind {
        KeyKind::Storage if !aes => return Err(rc::SYMMETRIC),
        KeyKind::Storage if ecdsa => return Err(rc::SCHEME),
        KeyKind::Signing if aes => return Err(rc::SYMMETRIC),
        KeyKind::Signing if !ecdsa => return Err(rc::SCHEME),
        _ => {}
    }
    Ok(Public {
        name_alg,
        attributes,
        auth_policy,
        kind,
        x,
        y,
    })
}

/// Derives the primary key of `template` from `seed` (see the module documentation) and
/// fills in its unique field; the private key is returned. `None` only if 255 candidates
/// in a row were out of range (probability about 2^-8160).
pub fn derive_primary(seed: &[u8], template: &mut Public, data: &[u8]) -> Option<[u8; 32]> {
    let name = template.name();
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
            let mut d = [0u8; 32];
            d.copy_from_slice(&secret.to_bytes());
            return Some(d);
        }
    }
    None
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

/// A loaded transient object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub public: Public,
    /// The hierarchy it belongs to (its primary seed's).
    pub hierarchy: u32,
    /// The private key d.
    pub private: [u8; 32],
    /// The authValue from inSensitive.userAuth.
    pub auth: Vec<u8>,
}

impl Object {
    pub fn name(&self) -> Vec<u8> {
        self.public.name()
    }

    /// A primary object's qualified name: its parent is the hierarchy handle.
    pub fn qualified_name(&self) -> Vec<u8> {
        qualified_name(
            self.public.name_alg,
            &self.hierarchy.to_be_bytes(),
            &self.name(),
        )
    }

    /// ECDSA over P-256 of `digest` (the caller checked it is a SHA-256 digest) with the
    /// private key (FIPS 186-5 §6.4.1). The per-signature secret k is RFC 6979's
    /// deterministic k with 32 octets of DRBG output as its additional data (RFC 6979
    /// §3.6, "hedged" signatures; `ecdsa`'s `sign_prehash_with_rng`): k is never the same
    /// for two signatures of the same digest, and stays safe if the DRBG were predictable.
    /// `None` only if the stored private key or the digest were refused (internal error).
    pub fn sign(&self, digest: &[u8], drbg: &mut HmacDrbg) -> Option<EcdsaSignature> {
        let key = SigningKey::from_slice(&self.private).ok()?;
        let signature: Signature = key.sign_prehash_with_rng(&mut DrbgRng(drbg), digest).ok()?;
        let (r, s) = signature.split_bytes();
        let (mut rr, mut ss) = ([0u8; ECC_KEY_BYTES], [0u8; ECC_KEY_BYTES]);
        rr.copy_from_slice(&r);
        ss.copy_from_slice(&s);
        Some((rr, ss))
    }

    /// Whether (r, s) (each at most 32 octets, big-endian) is a valid ECDSA signature of
    /// `digest` under the public key (FIPS 186-5 §6.4.2; r, s in [1, n-1], else invalid).
    pub fn verify(&self, digest: &[u8], r: &[u8], s: &[u8]) -> bool {
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
    /// own): hierarchy, TPMT_PUBLIC as TPM2B, private key as TPM2B, authValue as TPM2B.
    pub fn write(&self, w: &mut Writer) {
        w.u32(self.hierarchy);
        w.tpm2b(&self.public.to_bytes());
        w.tpm2b(&self.private);
        w.tpm2b(&self.auth);
    }

    /// Reads what [`Object::write`] wrote; `None` if it does not decode exactly.
    pub fn read(mut r: Reader) -> Option<Self> {
        let hierarchy = r.u32().ok()?;
        let mut public = Reader::new(r.tpm2b(MAX_CONTEXT_SIZE).ok()?);
        let public_area = read_template(&mut public).ok()?;
        let private: [u8; 32] = r.tpm2b(32).ok()?.try_into().ok()?;
        let auth = r.tpm2b(super::hash::MAX_DIGEST_SIZE).ok()?.to_vec();
        if !public.is_empty() || !r.is_empty() {
            return None;
        }
        Some(Self {
            public: public_area,
            hierarchy,
            private,
            auth,
        })
    }
}

/// The transient object slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    slots: [Option<Object>; MAX_LOADED_OBJECTS],
}

impl Objects {
    fn slot(handle: u32) -> Option<usize> {
        let slot = handle.checked_sub(TRANSIENT_FIRST)? as usize;
        (slot < MAX_LOADED_OBJECTS).then_some(slot)
    }

    pub fn get(&self, handle: u32) -> Option<&Object> {
        self.slots.get(Self::slot(handle)?)?.as_ref()
    }

    /// Loads `object` in the first free slot: its handle, or TPM_RC_OBJECT_MEMORY.
    pub fn insert(&mut self, object: Object) -> Result<u32, Rc> {
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(rc::OBJECT_MEMORY)?;
        self.slots[slot] = Some(object);
        Ok(TRANSIENT_FIRST + slot as u32)
    }

    pub fn has_room(&self) -> bool {
        self.slots.iter().any(Option::is_none)
    }

    /// Flushes the object `handle`; whether there was one.
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
}

//! TPM2_ContextSave and TPM2_ContextLoad for sessions and transient objects (Part 3 §28.2, §28.3; Part 1 §30
//! "Context Management"; checks and their order from Part 4's `TPM2_ContextSave`,
//! `TPM2_ContextLoad`, `ComputeContextProtectionKey`, `ComputeContextIntegrity` and
//! `SequenceNumberForSavedContextIsValid`).
//!
//! A saved context is a TPMS_CONTEXT (Part 2 §14.5): sequence (UINT64), savedHandle (the
//! session's own handle, 0x02xxxxxx or 0x03xxxxxx), hierarchy (TPM_RH_NULL for a session)
//! and contextBlob = integrity (TPM2B_DIGEST) || encrypted, as Part 4 lays it out:
//!
//! - encrypted = AES-128-CFB(symKey, iv, sequence (the "fingerprint", 8 octets) || session),
//!   the session in `session::write_session`'s format;
//! - symKey || iv = KDFa(SHA-256, proof, "CONTEXT", sequence, savedHandle, 256) (Part 1
//!   §30.3.2; 16 octets each: CONTEXT_ENCRYPT_ALG AES-128, CONTEXT_INTEGRITY_HASH_ALG
//!   SHA-256 as in the reference implementation);
//! - integrity = HMAC-SHA256(proof, totalResetCount (UINT64) || epoch || sequence ||
//!   savedHandle || encrypted) (Part 1 §30.3.3).
//!
//! proof is the hierarchy's proof value (`Tpm::proof` for owner, endorsement, platform;
//! for TPM_RH_NULL the same derivation from the null seed, which is new at every TPM
//! Reset, as the reference's nullProof is). resetCount stands in for totalResetCount.
//!
//! Deviations, all simplifications: the reference keeps saved sessions (its contextArray)
//! across TPM Restart and Resume; here _TPM_Init drops them, and `epoch` (16 random octets
//! drawn at the first ContextSave after _TPM_Init or a state restore) makes a context of an
//! earlier epoch fail integrity, so a sequence number reused after the counter restarts can
//! never load an old blob. A saved session keeps its slot (`session.rs`), and the slot keeps
//! the whole 64-bit sequence, so there is no TPM_RC_CONTEXT_GAP or TPM_RC_TOO_MANY_CONTEXTS.
//!
//! Transient objects (`object.rs`): savedHandle is SAVED_OBJECT (0x80000000; no stClear
//! objects are made here, so never 0x80000002 in practice), hierarchy the object's, and the
//! encrypted part holds `Object::write`'s format. The object stays loaded after ContextSave
//! (Part 3 §28.2) and its context may be loaded any number of times (each ContextLoad takes
//! a new slot and handle, TPM_RC_OBJECT_MEMORY when there is none); a TPM_RH_NULL object's
//! context stops loading at the next TPM Reset (the null seed, hence its proof, changes).
//!
//! Hash and event sequence objects (Part 1 §30: transient objects too) save the same way
//! with savedHandle SAVED_SEQUENCE (0x80000001, Part 2 §14.6) and hierarchy TPM_RH_NULL
//! (Part 4 `AllocateSequenceSlot`); the encrypted part holds `Sequence::write`'s format:
//! hashAlg, authValue, the first-block flags and each bank's running hash state as the
//! hash crates serialize it (`Hasher::export`; one state, or three for an event sequence).
//! ContextLoad decodes it only after the integrity check, and `Sequence::read` still checks
//! every length, flag and state.
//!
//! ContextLoad errors, all numbered with parameter 1 (`context`): a savedHandle that is not
//! TPMI_DH_SAVED, a hierarchy not TPMI_RH_HIERARCHY+: TPM_RC_VALUE; a contextBlob over
//! MAX_CONTEXT_SIZE, an integrity not 32 octets, fewer than 8 octets after it: TPM_RC_SIZE;
//! a wrong HMAC (a changed octet, sequence, handle or hierarchy, another epoch or TPM
//! Reset): TPM_RC_INTEGRITY; a context whose session is not saved under that sequence (a
//! replay of a blob already loaded, a flushed session): TPM_RC_HANDLE, as Part 4's
//! `SequenceNumberForSavedContextIsValid`. The integrity check protects what follows: a
//! fingerprint, session, object or sequence that does not decode after it is an internal
//! fault (failure mode, as Part 4's FAIL).

use aes::Aes128;
use cfb_mode::cipher::KeyIvInit;
use cfb_mode::{Decryptor, Encryptor};

use super::super::constants::{
    HMAC_SESSION_FIRST, HMAC_SESSION_LAST, MAX_CONTEXT_SIZE, POLICY_SESSION_FIRST,
    POLICY_SESSION_LAST, SAVED_OBJECT, SAVED_SEQUENCE, SAVED_STCLEAR, TPM_RH_ENDORSEMENT,
    TPM_RH_NULL, TPM_RH_OWNER, TPM_RH_PLATFORM,
};
use super::super::hash::{Digest, HashAlg};
use super::super::marshal::{Reader, Writer};
use super::super::object::{Object, Sequence};
use super::super::rc::{self, Rc};
use super::super::session::{kdfa, read_session, write_session};
use super::super::Tpm;
use super::Call;

/// CONTEXT_INTEGRITY_HASH_ALG: SHA-256, 32-octet integrity values.
const INTEGRITY_ALG: HashAlg = HashAlg::Sha256;
const INTEGRITY_SIZE: usize = 32;
/// The fingerprint (the sequence) heading the encrypted part.
const FINGERPRINT_SIZE: usize = 8;

impl Tpm {
    /// The proof value that protects a context of `hierarchy` (Part 1 §30.3.1).
    fn context_proof(&self, hierarchy: u32) -> Option<Digest> {
        if hierarchy == TPM_RH_NULL {
            Some(INTEGRITY_ALG.hmac(&self.null_seed, &[super::hash::PROOF_LABEL]))
        } else {
            self.proof(hierarchy)
        }
    }
}

/// symKey and iv (Part 4 `ComputeContextProtectionKey`).
fn protection_key(proof: &[u8], sequence: u64, handle: u32) -> ([u8; 16], [u8; 16]) {
    let bits = kdfa(
        INTEGRITY_ALG,
        proof,
        b"CONTEXT",
        &sequence.to_be_bytes(),
        &handle.to_be_bytes(),
        256,
    );
    let (mut key, mut iv) = ([0u8; 16], [0u8; 16]);
    if let (Some(k), Some(v)) = (bits.get(..16), bits.get(16..32)) {
        key.copy_from_slice(k);
        iv.copy_from_slice(v);
    }
    (key, iv)
}

/// The integrity HMAC (Part 4 `ComputeContextIntegrity`, plus the epoch).
fn integrity(
    tpm: &Tpm,
    proof: &[u8],
    epoch: &[u8; 16],
    sequence: u64,
    handle: u32,
    encrypted: &[u8],
) -> Digest {
    INTEGRITY_ALG.hmac(
        proof,
        &[
            &u64::from(tpm.reset_count).to_be_bytes(),
            epoch,
            &sequence.to_be_bytes(),
            &handle.to_be_bytes(),
            encrypted,
        ],
    )
}

/// What ContextSave saves.
enum Saved {
    Object(Object),
    Sequence(Sequence),
    Session,
}

/// ContextSave: saveHandle (TPMI_DH_CONTEXT, a loaded session, object or sequence) →
/// context (TPMS_CONTEXT). A session leaves the loaded set and its slot becomes saved under
/// the new sequence; an object or sequence stays loaded.
pub fn context_save(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    let loaded = call.handles.first().copied().unwrap_or(0);
    let saved = match (tpm.objects.get(loaded), tpm.objects.sequence(loaded)) {
        (Some(object), _) => Saved::Object(object.clone()),
        (_, Some(sequence)) => Saved::Sequence(sequence.clone()),
        _ => Saved::Session,
    };
    let (handle, hierarchy) = match &saved {
        Saved::Object(object) => (SAVED_OBJECT, object.hierarchy),
        // A sequence object is in the NULL hierarchy (Part 4 `AllocateSequenceSlot`).
        Saved::Sequence(_) => (SAVED_SEQUENCE, TPM_RH_NULL),
        Saved::Session => (loaded, TPM_RH_NULL),
    };
    let Some(proof) = tpm.context_proof(hierarchy) else {
        tpm.failure = true;
        return Err(rc::FAILURE);
    };
    let drbg = &mut tpm.drbg;
    let epoch = tpm.sessions.epoch(|e| drbg.generate(e, &[]));
    let mut plain = Writer::new();
    let sequence = match &saved {
        Saved::Session => {
            let (sequence, session) = tpm.sessions.save(loaded).ok_or(rc::REFERENCE_H0)?;
            plain.u64(sequence);
            write_session(&mut plain, &session);
            sequence
        }
        Saved::Object(object) => {
            let sequence = tpm.sessions.next_sequence().ok_or(rc::REFERENCE_H0)?;
            plain.u64(sequence);
            object.write(&mut plain);
            sequence
        }
        Saved::Sequence(seq) => {
            let sequence = tpm.sessions.next_sequence().ok_or(rc::REFERENCE_H0)?;
            plain.u64(sequence);
            seq.write(&mut plain);
            sequence
        }
    };
    let mut encrypted = plain.into_vec();
    let (key, iv) = protection_key(proof.as_bytes(), sequence, handle);
    Encryptor::<Aes128>::new(&key.into(), &iv.into()).encrypt(&mut encrypted);
    let mac = integrity(tpm, proof.as_bytes(), &epoch, sequence, handle, &encrypted);
    let mut blob = Writer::new();
    blob.tpm2b(mac.as_bytes());
    blob.bytes(&encrypted);
    call.out.u64(sequence);
    call.out.u32(handle);
    call.out.u32(hierarchy);
    call.out.tpm2b(blob.as_slice());
    Ok(())
}

/// TPMI_DH_SAVED (Part 2 §9.10): a session handle or one of the three transient values.
fn read_saved_handle(r: &mut Reader) -> Result<u32, Rc> {
    match r.u32()? {
        h @ (HMAC_SESSION_FIRST..=HMAC_SESSION_LAST
        | POLICY_SESSION_FIRST..=POLICY_SESSION_LAST
        | SAVED_OBJECT..=SAVED_STCLEAR) => Ok(h),
        _ => Err(rc::VALUE),
    }
}

/// TPMI_RH_HIERARCHY+ (Part 2 §9.13).
fn read_hierarchy(r: &mut Reader) -> Result<u32, Rc> {
    match r.u32()? {
        h @ (TPM_RH_OWNER | TPM_RH_ENDORSEMENT | TPM_RH_PLATFORM | TPM_RH_NULL) => Ok(h),
        _ => Err(rc::VALUE),
    }
}

/// A TPMS_CONTEXT as ContextLoad reads it.
struct Context<'a> {
    sequence: u64,
    handle: u32,
    hierarchy: u32,
    blob: &'a [u8],
}

fn read_context<'a>(r: &mut Reader<'a>) -> Result<Context<'a>, Rc> {
    Ok(Context {
        sequence: r.u64()?,
        handle: read_saved_handle(r)?,
        hierarchy: read_hierarchy(r)?,
        blob: r.tpm2b(MAX_CONTEXT_SIZE)?,
    })
}

/// What a transient-object context holds.
enum Loaded {
    Object(Object),
    Sequence(Sequence),
}

/// ContextLoad: context (TPMS_CONTEXT) → loadedHandle (response handle, the savedHandle).
pub fn context_load(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let context = call.param(1, read_context)?;
    call.end()?;
    let p1 = |code| rc::parameter(code, 1);
    let mut blob = Reader::new(context.blob);
    let given = blob.tpm2b(MAX_CONTEXT_SIZE).map_err(p1)?;
    if given.len() != INTEGRITY_SIZE || blob.remaining() < FINGERPRINT_SIZE {
        return Err(p1(rc::SIZE));
    }
    let encrypted = blob.rest();
    let (Some(proof), Some(epoch)) = (
        tpm.context_proof(context.hierarchy),
        tpm.sessions.current_epoch(),
    ) else {
        // No context was saved since _TPM_Init: none can be valid.
        return Err(p1(rc::INTEGRITY));
    };
    let (sequence, handle) = (context.sequence, context.handle);
    let mac = integrity(tpm, proof.as_bytes(), &epoch, sequence, handle, encrypted);
    if !super::super::auth::constant_time_eq(mac.as_bytes(), given) {
        return Err(p1(rc::INTEGRITY));
    }
    let is_object = (SAVED_OBJECT..=SAVED_STCLEAR).contains(&handle);
    if is_object {
        if !tpm.objects.has_room() {
            return Err(rc::OBJECT_MEMORY);
        }
    } else if tpm.sessions.saved_sequence(handle) != Some(sequence) {
        return Err(p1(rc::HANDLE));
    }
    let mut plain = encrypted.to_vec();
    let (key, iv) = protection_key(proof.as_bytes(), sequence, handle);
    Decryptor::<Aes128>::new(&key.into(), &iv.into()).decrypt(&mut plain);
    if is_object {
        let rest = match plain.split_at_checked(FINGERPRINT_SIZE) {
            Some((fingerprint, rest)) if fingerprint == sequence.to_be_bytes() => Some(rest),
            _ => None,
        };
        let loaded = rest.and_then(|rest| {
            if handle == SAVED_SEQUENCE {
                let sequence = Sequence::read(Reader::new(rest))?;
                (context.hierarchy == TPM_RH_NULL).then_some(Loaded::Sequence(sequence))
            } else {
                Object::read(Reader::new(rest))
                    .filter(|o| o.hierarchy == context.hierarchy)
                    .map(Loaded::Object)
            }
        });
        call.out_handle = Some(match loaded {
            Some(Loaded::Object(object)) => tpm.objects.insert(object)?,
            Some(Loaded::Sequence(sequence)) => tpm.objects.insert_sequence(sequence)?,
            None => {
                tpm.failure = true;
                return Err(rc::FAILURE);
            }
        });
        return Ok(());
    }
    let session = match plain.split_at_checked(FINGERPRINT_SIZE) {
        Some((fingerprint, rest)) if fingerprint == sequence.to_be_bytes() => {
            read_session(Reader::new(rest))
        }
        _ => None,
    };
    match session.map(|s| tpm.sessions.restore(handle, sequence, s)) {
        Some(true) => {
            call.out_handle = Some(handle);
            Ok(())
        }
        _ => {
            tpm.failure = true;
            Err(rc::FAILURE)
        }
    }
}

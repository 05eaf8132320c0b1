//! TPM2_SelfTest, TPM2_IncrementalSelfTest, TPM2_GetTestResult and TPM2_TestParms (Part 3
//! §10; Part 4 `CryptSelfTest`, `CryptIncrementalSelfTest`, `TPM2_TestParms`).
//!
//! The testable algorithms are the implemented ones GetCapability(TPM_CAP_ALGS) lists: SHA-1,
//! SHA-256 and SHA-384, each tested by its FIPS 180-4 known answer. A full SelfTest also runs
//! the DRBG's NIST known answer. A failed test puts the TPM in failure mode: TPM_RC_FAILURE
//! for every command but GetTestResult (which then reports TPM_RC_FAILURE) and
//! GetCapability. Commands do not test an algorithm before its first use; these are pure
//! software implementations whose tests cannot fail unless the firmware image is corrupt.

use alloc::vec::Vec;

use super::super::constants::{MAX_ALG_LIST_SIZE, NO, YES};
use super::super::constants::{
    TPM_ALG_ECC, TPM_ALG_KEYEDHASH, TPM_ALG_NULL, TPM_ALG_RSA, TPM_ECC_NIST_P256,
};
use super::super::drbg::HmacDrbg;
use super::super::hash::HashAlg;
use super::super::marshal::Reader;
use super::super::object::{
    read_keyedhash_scheme, read_rsa_key_parms, read_rsa_scheme, read_scheme, read_symmetric,
};
use super::super::rc::{self, Rc};
use super::super::Tpm;
use super::Call;

impl Tpm {
    /// Runs the known answers of `algs`; failure mode on a mismatch.
    fn run_self_tests(
        &mut self,
        algs: impl Iterator<Item = HashAlg>,
        drbg: bool,
    ) -> Result<(), Rc> {
        for alg in algs {
            if !alg.self_test() {
                self.failure = true;
                return Err(rc::FAILURE);
            }
            self.tested |= 1 << alg.index();
        }
        if drbg && !HmacDrbg::self_test() {
            self.failure = true;
            return Err(rc::FAILURE);
        }
        Ok(())
    }

    fn untested(&self) -> impl Iterator<Item = HashAlg> + '_ {
        HashAlg::ALL
            .into_iter()
            .filter(|a| self.tested & (1 << a.index()) == 0)
    }

    #[cfg(test)]
    pub(crate) fn force_failure_mode(&mut self) {
        self.failure = true;
    }
}

/// TPMI_YES_NO (Part 2 §9.2): 0 or 1, otherwise TPM_RC_VALUE.
pub(super) fn read_yes_no(r: &mut Reader) -> Result<bool, Rc> {
    match r.u8()? {
        NO => Ok(false),
        YES => Ok(true),
        _ => Err(rc::VALUE),
    }
}

pub fn self_test(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let full = call.param(1, read_yes_no)?;
    call.end()?;
    if full {
        tpm.run_self_tests(HashAlg::ALL.into_iter(), true)
    } else {
        let untested: Vec<HashAlg> = tpm.untested().collect();
        tpm.run_self_tests(untested.into_iter(), false)
    }
}

/// TPML_ALG (Part 2 §10.9.2): count ≤ MAX_ALG_LIST_SIZE (TPM_RC_SIZE), then TPM_ALG_IDs.
fn read_alg_list(r: &mut Reader) -> Result<Vec<u16>, Rc> {
    let count = r.u32()? as usize;
    if count > MAX_ALG_LIST_SIZE {
        return Err(rc::SIZE);
    }
    (0..count).map(|_| r.u16()).collect()
}

pub fn incremental_self_test(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let to_test = call.param(1, read_alg_list)?;
    call.end()?;
    let mut algs = Vec::with_capacity(to_test.len());
    for id in to_test {
        // An algorithm this TPM does not implement (Part 4: TPM_RC_VALUE, parameter 1).
        algs.push(HashAlg::from_alg_id(id).ok_or(rc::parameter(rc::VALUE, 1))?);
    }
    tpm.run_self_tests(algs.into_iter(), false)?;
    // toDoList: what is still untested.
    let todo: Vec<HashAlg> = tpm.untested().collect();
    call.out.count(todo.len());
    for alg in todo {
        call.out.u16(alg.alg_id());
    }
    Ok(())
}

pub fn get_test_result(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.end()?;
    // outData (TPM2B_MAX_BUFFER): vendor-specific diagnostics, none.
    call.out.tpm2b(&[]);
    call.out.u32(if tpm.failure {
        rc::FAILURE
    } else {
        rc::SUCCESS
    });
    Ok(())
}

/// TPMT_PUBLIC_PARMS (Part 2 §12.2.3.8) with what this TPM implements:
///
/// - type (TPMI_ALG_PUBLIC): TPM_ALG_ECC, TPM_ALG_RSA or TPM_ALG_KEYEDHASH; SYMCIPHER and
///   anything else TPM_RC_TYPE;
/// - TPMS_ECC_PARMS: symmetric TPMT_SYM_DEF_OBJECT+ (NULL or AES-128-CFB: another
///   algorithm TPM_RC_SYMMETRIC, key size TPM_RC_VALUE, mode TPM_RC_MODE), scheme
///   TPMT_ECC_SCHEME+ (NULL or ECDSA-SHA256: TPM_RC_HASH for an unknown hash, TPM_RC_SCHEME
///   otherwise), curveID P-256 (TPM_RC_CURVE), kdf NULL (TPM_RC_KDF);
/// - TPMS_RSA_PARMS (Part 2 §12.2.3.5): symmetric as for ECC, scheme TPMT_RSA_SCHEME+ (NULL,
///   RSASSA or RSAPSS with an implemented hash; RSAES and OAEP TPM_RC_SCHEME, another ID
///   TPM_RC_VALUE), keyBits 2048 (1024, 3072, 4096 and anything else TPM_RC_VALUE, the
///   TPMI_RSA_KEY_BITS code), exponent 0 or 65537 (else TPM_RC_RANGE);
/// - TPMS_KEYEDHASH_PARMS: scheme NULL (HMAC, XOR TPM_RC_SCHEME; else TPM_RC_VALUE).
fn read_public_parms(r: &mut Reader) -> Result<(), Rc> {
    match r.u16()? {
        TPM_ALG_ECC => {
            read_symmetric(r)?;
            read_scheme(r)?;
            if r.u16()? != TPM_ECC_NIST_P256 {
                return Err(rc::CURVE);
            }
            if r.u16()? != TPM_ALG_NULL {
                return Err(rc::KDF);
            }
            Ok(())
        }
        TPM_ALG_RSA => {
            read_symmetric(r)?;
            read_rsa_scheme(r)?;
            read_rsa_key_parms(r)?;
            Ok(())
        }
        TPM_ALG_KEYEDHASH => read_keyedhash_scheme(r),
        _ => Err(rc::TYPE),
    }
}

/// TestParms: parameters (TPMT_PUBLIC_PARMS). As in Part 4, the test is the unmarshalling
/// (`read_public_parms`): errors are numbered parameter 1, and parameters that unmarshal
/// are supported.
pub fn test_parms(_tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    call.param(1, read_public_parms)?;
    call.end()
}

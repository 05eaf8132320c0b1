//! TPM2_GetRandom and TPM2_StirRandom (Part 3 §16.1, §16.2).

use super::super::constants::MAX_SYM_DATA;
use super::super::hash::MAX_DIGEST_SIZE;
use super::super::rc::Rc;
use super::super::Tpm;
use super::Call;

/// GetRandom returns at most sizeof(TPMU_HA) octets, the largest digest (48 here), however
/// many are asked for: randomBytes is a TPM2B_DIGEST (Part 3 §16.1.1).
pub fn get_random(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let requested = call.param(1, |r| r.u16())?;
    call.end()?;
    let mut bytes = [0u8; MAX_DIGEST_SIZE];
    let bytes = &mut bytes[..usize::from(requested).min(MAX_DIGEST_SIZE)];
    tpm.drbg.generate(bytes, &[]);
    call.out.tpm2b(bytes);
    Ok(())
}

/// StirRandom mixes inData (a TPM2B_SENSITIVE_DATA, at most MAX_SYM_DATA octets, else
/// TPM_RC_SIZE) into the DRBG as additional input (Part 3 §16.2.1; SP 800-90A reseed).
pub fn stir_random(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let data = call.param(1, |r| r.tpm2b(MAX_SYM_DATA))?;
    call.end()?;
    tpm.drbg.reseed(&[], data);
    Ok(())
}

//! What a platform's firmware does with its TPM before the OS runs: TPM2_Startup, and
//! measuring what it boots into PCRs, through the same commands a guest would send (the
//! TPM's own interface, not its insides): TPM2_Startup(TPM_SU_CLEAR) and TPM2_PCR_Extend
//! with the data's digest in every bank (Part 3 §10.3, §22.2).

use alloc::vec::Vec;

use super::constants::{
    TPM_CC_PCR_EXTEND, TPM_CC_STARTUP, TPM_RS_PW, TPM_ST_NO_SESSIONS, TPM_ST_SESSIONS, TPM_SU_CLEAR,
};
use super::hash::HashAlg;
use super::Tpm;

/// The locality platform firmware measures from (PC Client PFP: the static root of trust's
/// measurements are made at locality 0).
const LOCALITY: u8 = 0;

/// The response code of `response`, 0 for success.
fn response_code(response: &[u8]) -> u32 {
    response
        .get(6..10)
        .map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A command: tag, size, code, then `body`.
fn command(tag: u16, code: u32, body: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(10 + body.len());
    c.extend_from_slice(&tag.to_be_bytes());
    c.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    c.extend_from_slice(&code.to_be_bytes());
    c.extend_from_slice(body);
    c
}

impl Tpm {
    /// TPM2_Startup(CLEAR), as the platform sends it after power-on. Returns the response
    /// code (0, or TPM_RC_INITIALIZE if it had already started).
    pub fn startup_clear(&mut self) -> u32 {
        let c = command(
            TPM_ST_NO_SESSIONS,
            TPM_CC_STARTUP,
            &TPM_SU_CLEAR.to_be_bytes(),
        );
        response_code(&self.execute(LOCALITY, &c))
    }

    /// Extends PCR `pcr` in every bank with that bank's digest of `data` (TPM2_PCR_Extend
    /// with a TPML_DIGEST_VALUES of all banks, authorized by the PCR's empty password).
    /// Returns the digests extended, as (algorithm ID, digest), for the event log; or the
    /// response code of a refusal.
    pub fn measure(&mut self, pcr: u32, data: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, u32> {
        let mut body = Vec::new();
        body.extend_from_slice(&pcr.to_be_bytes());
        // TPMS_AUTH_COMMAND for TPM_RS_PW: handle, empty nonce, no attributes, empty hmac.
        let auth: [u8; 9] = {
            let mut a = [0u8; 9];
            a[..4].copy_from_slice(&TPM_RS_PW.to_be_bytes());
            a
        };
        body.extend_from_slice(&(auth.len() as u32).to_be_bytes());
        body.extend_from_slice(&auth);
        let digests: Vec<(u16, Vec<u8>)> = HashAlg::ALL
            .iter()
            .map(|alg| (alg.alg_id(), alg.digest(&[data]).as_bytes().to_vec()))
            .collect();
        body.extend_from_slice(&(digests.len() as u32).to_be_bytes());
        for (alg, digest) in &digests {
            body.extend_from_slice(&alg.to_be_bytes());
            body.extend_from_slice(digest);
        }
        let c = command(TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND, &body);
        match response_code(&self.execute(LOCALITY, &c)) {
            0 => Ok(digests),
            rc => Err(rc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::HashAlg;
    use super::super::Tpm;

    #[test]
    fn measurements_extend_every_bank_with_the_data_digest() {
        let mut tpm = Tpm::new([3; 32]);
        assert!(
            tpm.measure(9, b"kernel").is_err(),
            "no Startup yet: refused"
        );
        assert_eq!(tpm.startup_clear(), 0);
        let digests = tpm.measure(9, b"kernel").unwrap();
        assert_eq!(
            digests[1],
            (
                0x0b,
                HashAlg::Sha256.digest(&[b"kernel"]).as_bytes().to_vec()
            )
        );
        assert!(tpm.measure(9, b"initrd").is_ok());
        for alg in HashAlg::ALL {
            let zero = alloc::vec![0u8; alg.digest_size()];
            let once = alg.digest(&[&zero, alg.digest(&[b"kernel"]).as_bytes()]);
            let twice = alg.digest(&[once.as_bytes(), alg.digest(&[b"initrd"]).as_bytes()]);
            assert_eq!(tpm.pcrs.value(alg, 9), twice.as_bytes());
        }
        assert_ne!(tpm.startup_clear(), 0, "TPM_RC_INITIALIZE the second time");
    }
}

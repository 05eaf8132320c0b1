//! Parapet's own TPM (`devices::tpm`) behind the server: what `vmm-lite tpm-server` serves.

use devices::tpm::Tpm;

use super::CommandProcessor;

impl CommandProcessor for Tpm {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        Tpm::execute(self, locality, command)
    }

    /// `_TPM_Init`: the TPM waits for `TPM2_Startup`.
    fn power_on(&mut self) {
        self.init();
    }

    /// Nothing to drop: what a TPM keeps across power (its NV, seeds) is kept, and what it
    /// loses is rebuilt by the `_TPM_Init` and Startup that follow power-on.
    fn power_off(&mut self) {}
}

/// A new TPM seeded from the host's random source.
pub fn new_tpm() -> std::io::Result<Tpm> {
    use std::io::Read;
    let mut entropy = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut entropy)?;
    Ok(Tpm::new(entropy))
}

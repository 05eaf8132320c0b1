//! Debian's tpm2-tools against `vmm-lite tpm-server`: Parapet's TPM (`devices::tpm`) through
//! the simulator protocol tcti-mssim speaks, for the commands it has so far (`tpm2_pcrevent`
//! opens an HMAC session, which waits for StartAuthSession). PCR values are checked against a
//! hash computed outside any TPM (Python's hashlib): PCR 16 reset, then extended with the
//! bytes 00..1f, is SHA-256(32 zero bytes || 00..1f).
//!
//! Needs tpm2-tools (`cargo xtask setup` installs them).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

const EXTENDED: &str = "0xBB2275C49F28AD52CAE6D55E34A974A58C7A3BA26F976E8ECBBE7A536918DC73";
const DIGEST: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The server, killed when dropped.
struct Server {
    child: Child,
    tcti: String,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmm-lite"))
            .args(["tpm-server", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("vmm-lite starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("vmm-lite names its ports");
        let port = line
            .split("commands on 127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server {
            child,
            tcti: format!("mssim:host=127.0.0.1,port={port}"),
        }
    }

    /// Runs tpm2-tools' `tool` with `args` against the server.
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .args(args)
            .args(["-T", &self.tcti])
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e} (install tpm2-tools: cargo xtask setup)"))
    }

    /// Runs `tool`, which must succeed; its standard output.
    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let output = self.run(tool, args);
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[test]
fn tpm2_tools_start_read_extend_and_query_parapets_tpm() {
    let tpm = Server::start();
    // Before Startup every command is refused with TPM_RC_INITIALIZE.
    let early = tpm.run("tpm2_getrandom", &["8", "--hex"]);
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("0x100"));

    tpm.ok("tpm2_startup", &["-c"]);
    let random = tpm.ok("tpm2_getrandom", &["16", "--hex"]);
    assert_eq!(random.trim().len(), 32, "16 bytes in hex: {random:?}");
    assert!(random.trim().chars().all(|c| c.is_ascii_hexdigit()));

    let fixed = tpm.ok("tpm2_getcap", &["properties-fixed"]);
    assert!(fixed.contains("TPM2_PT_FAMILY_INDICATOR") && fixed.contains("value: \"2.0\""));
    assert!(fixed.contains("TPM2_PT_PCR_COUNT:\n  raw: 0x18"), "{fixed}");

    tpm.ok("tpm2_pcrreset", &["16"]);
    tpm.ok("tpm2_pcrextend", &[&format!("16:sha256={DIGEST}")]);
    let extended = tpm.ok("tpm2_pcrread", &["sha256:16"]);
    assert!(extended.contains(EXTENDED), "{extended}");

    // PCR 0 is not resettable: the TPM refuses (TPM_RC_LOCALITY).
    let refused = tpm.run("tpm2_pcrreset", &["0"]);
    assert!(!refused.status.success());
}

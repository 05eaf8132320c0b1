//! Debian's tpm2-tools against `vmm-lite tpm-server`: Parapet's TPM (`devices::tpm`) through
//! the simulator protocol tcti-mssim speaks, for the commands it has so far. `tpm2_pcrevent`,
//! and `tpm2_nvdefine`, `tpm2_nvwrite`, `tpm2_nvread` (tpm2-tools 5.4) authorize through an
//! unbound, unsalted SHA-256 HMAC session (symmetric TPM_ALG_NULL) they start first;
//! `tpm2_createpolicy --policy-pcr` runs a trial policy session. `tpm2_startauthsession -S`,
//! `tpm2_policypcr -S` and `tpm2_flushcontext` keep a policy session in a file between them
//! with TPM2_ContextSave and TPM2_ContextLoad. PCR values,
//! digests and Names are checked against hashes computed outside any TPM (Python's
//! hashlib): PCR 16 reset, then extended with the bytes 00..1f, is SHA-256(32 zero bytes ||
//! 00..1f).
//!
//! A restricted ECDSA P-256 signing primary signs through `tpm2_sign` (TPM2_Hash's ticket,
//! then TPM2_Sign), is checked by `tpm2_verifysignature` (TPM2_VerifySignature), and quotes
//! PCRs with `tpm2_quote`; `tpm2_checkquote` verifies the quote in software with OpenSSL
//! against the PEM public key `tpm2_readpublic` wrote, an independent verifier.
//!
//! Needs tpm2-tools (`cargo xtask setup` installs them).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

const EXTENDED: &str = "0xBB2275C49F28AD52CAE6D55E34A974A58C7A3BA26F976E8ECBBE7A536918DC73";
const DIGEST: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The text `tpm2_hash` hashes, and its digests: Python's
/// `hashlib.sha1(b"Parapet TPM 2.0\n").hexdigest()`, and the same with sha256 and sha384.
const TEXT: &[u8] = b"Parapet TPM 2.0\n";
const TEXT_SHA1: &str = "9ddb519e1b3ef36a1f26e01b9bf82fcb9575686c";
const TEXT_SHA256: &str = "de81877ee00e34252d6d78206f899d4bc2a6f09a6a0793ff8aca29bb90c21520";
const TEXT_SHA384: &str = "4068a6f0aecd73ecdca9825424022c3c2135bb320a17e54c1b5e122d27f92886\
                           d0d4a5c75fcb27a2bb396db744ea39f7";

/// TEXT 200 times (3200 octets, over MAX_DIGEST_BUFFER): `tpm2_hash` sends it through a hash
/// sequence (TPM2_HashSequenceStart, TPM2_SequenceUpdate, TPM2_SequenceComplete). Its digests:
/// Python's `hashlib.sha1(b"Parapet TPM 2.0\n" * 200).hexdigest()`, and sha256, sha384.
const LONG_TEXT_REPEAT: usize = 200;
const LONG_SHA1: &str = "6618d3946b8857245bc67d8418380ab1d65fd7ad";
const LONG_SHA256: &str = "bdbeb7af9fefb0c1098d3528ff1dead4c55fafa4a42bcd4f4a6663a788f98acd";
const LONG_SHA384: &str = "018e07a85da0a143cb802577d15e2f9ce8bfe8d0ee6f5236\
                           2e172ba72b7ea528adad0c75a5b23b1645e9c618e439c684";

/// PCR 16 after `tpm2_pcrevent 16` of TEXT on a reset PCR: SHA-256(32 zero octets ||
/// TEXT_SHA256), Python's `hashlib.sha256(bytes(32) + bytes.fromhex(TEXT_SHA256))`.
const PCR16_EVENT: &str = "0xD3DBD6614CF15689BB265911B8D19153072D8BCC9E7B3B7CD5E8BCCAB662539C";
/// The PolicyPCR digest of SHA-256 PCRs 0 (zeros) and 16 (PCR16_EVENT), Part 3 §23.7:
/// `sha256(bytes(32) + bytes.fromhex("0000017f" "00000001000b03010001") +
/// sha256(bytes(32) + pcr16))` in Python's hashlib.
const POLICY_PCR_0_16: &str = "fbf175cf9532a08ff5881f364bfc249a49a088a5a99d4ce336d26cb08c980d7c";
/// The same policy right after Startup, both PCRs zero: `sha256(bytes(32) +
/// bytes.fromhex("0000017f" "00000001000b03010001") + sha256(bytes(64)))` in Python.
const POLICY_PCR_0_16_AT_STARTUP: &str =
    "eaba795a1470d109ab9532d03d4eeec2ebcd8dff15bb650343d1edd10cfb8d5c";

/// TPM2_NV_DefineSpace (TPM 2.0 Part 3 §31.3) with TPM_RH_OWNER, an empty password session,
/// an empty authValue, and the TPMS_NV_PUBLIC of index 0x01500016: nameAlg SHA-256,
/// attributes ownerwrite|authwrite|ownerread|authread (0x00060006), no policy, 32 octets.
const DEFINE_SPACE: &str = "8002 0000002d 0000012a 40000001 00000009 40000009 0000 01 0000 \
                            0000 000e 01500016 000b 00060006 0000 0020";
/// Its response: success, an empty parameter area and the password session's answer.
const DEFINE_SPACE_OK: &str = "8002 00000013 00000000 00000000 0000 01 0000";
/// The index's Name: nameAlg (000b) || SHA-256 of the TPMS_NV_PUBLIC above, Python's
/// `hashlib.sha256(bytes.fromhex("01500016000b0006000600000020")).hexdigest()`.
const NV_NAME: &str = "000b5efc224a5ca11f53db485095134d993aa8c24c69fdf17cdc1d38dfa3fec20c80";

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

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

    /// Sends a raw command with `tpm2_send`; the raw response.
    fn send(&self, command: &[u8]) -> Vec<u8> {
        let mut child = Command::new("tpm2_send")
            .args(["-T", &self.tcti])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("tpm2_send: {e} (install tpm2-tools: cargo xtask setup)"));
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(command)
            .expect("tpm2_send reads the command");
        let output = child.wait_with_output().expect("tpm2_send runs");
        assert!(output.status.success(), "tpm2_send failed");
        output.stdout
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

#[test]
fn tpm2_tools_hash_and_read_nv_public_areas() {
    let tpm = Server::start();
    tpm.ok("tpm2_startup", &["-c"]);

    let file = std::env::temp_dir().join(format!("parapet-tpm2-hash-{}.txt", std::process::id()));
    std::fs::write(&file, TEXT).expect("temporary file");
    let path = file.to_str().expect("UTF-8 path");
    for (alg, expected) in [
        ("sha1", TEXT_SHA1),
        ("sha256", TEXT_SHA256),
        ("sha384", TEXT_SHA384),
    ] {
        let digest = tpm.ok("tpm2_hash", &["-g", alg, "--hex", path]);
        assert_eq!(digest.trim(), expected, "{alg}");
    }
    // In the null hierarchy too (a NULL ticket).
    let digest = tpm.ok("tpm2_hash", &["-g", "sha256", "-C", "n", "--hex", path]);
    assert_eq!(digest.trim(), TEXT_SHA256);
    // Over 1024 octets: a hash sequence, in each bank's algorithm, in the owner and the null
    // hierarchy.
    std::fs::write(&file, TEXT.repeat(LONG_TEXT_REPEAT)).expect("temporary file");
    for (alg, hierarchy, expected) in [
        ("sha1", "o", LONG_SHA1),
        ("sha256", "o", LONG_SHA256),
        ("sha256", "n", LONG_SHA256),
        ("sha384", "e", LONG_SHA384),
    ] {
        let digest = tpm.ok("tpm2_hash", &["-g", alg, "-C", hierarchy, "--hex", path]);
        assert_eq!(digest.trim(), expected, "{alg} -C {hierarchy}");
    }
    // SHA-512 is not implemented: TPM_RC_HASH + parameter 2.
    let refused = tpm.run("tpm2_hash", &["-g", "sha512", "--hex", path]);
    std::fs::remove_file(&file).ok();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("0x2C3"));

    assert_eq!(tpm.send(&unhex(DEFINE_SPACE)), unhex(DEFINE_SPACE_OK));
    let public = tpm.ok("tpm2_nvreadpublic", &[]);
    assert!(
        public.contains(&format!("0x1500016:\n  name: {NV_NAME}")),
        "{public}"
    );
    assert!(
        public.contains("value: 0x60006") && public.contains("size: 32"),
        "{public}"
    );
    let handles = tpm.ok("tpm2_getcap", &["handles-nv-index"]);
    assert_eq!(handles.trim(), "- 0x1500016");
}

#[test]
fn tpm2_tools_authorize_with_hmac_sessions_and_compute_a_pcr_policy() {
    let tpm = Server::start();
    tpm.ok("tpm2_startup", &["-c"]);
    let dir = std::env::temp_dir().join(format!("parapet-tpm2-sessions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let file = |name: &str| dir.join(name).to_str().expect("UTF-8 path").to_owned();

    // NV through HMAC sessions (the owner's empty authValue).
    tpm.ok(
        "tpm2_nvdefine",
        &[
            "0x1500016",
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            "ownerread|ownerwrite|authread|authwrite",
        ],
    );
    let public = tpm.ok("tpm2_nvreadpublic", &[]);
    assert!(
        public.contains(&format!("0x1500016:\n  name: {NV_NAME}")),
        "{public}"
    );
    let data: Vec<u8> = (0..32u8).map(|i| b'A' + i % 26).collect();
    std::fs::write(file("data.bin"), &data).expect("data file");
    tpm.ok(
        "tpm2_nvwrite",
        &["0x1500016", "-C", "o", "-i", &file("data.bin")],
    );
    let read = tpm.ok("tpm2_nvread", &["0x1500016", "-C", "o", "-s", "32"]);
    assert_eq!(read.as_bytes(), &data[..]);

    // PCR_Event through an HMAC session.
    std::fs::write(file("event.txt"), TEXT).expect("event file");
    tpm.ok("tpm2_pcrreset", &["16"]);
    let event = tpm.ok("tpm2_pcrevent", &["16", &file("event.txt")]);
    assert!(event.contains(&format!("sha256: {TEXT_SHA256}")), "{event}");
    let pcr = tpm.ok("tpm2_pcrread", &["sha256:16"]);
    assert!(pcr.contains(PCR16_EVENT), "{pcr}");

    // A trial policy session: PolicyPCR, PolicyGetDigest, FlushContext.
    tpm.ok(
        "tpm2_createpolicy",
        &[
            "--policy-pcr",
            "-l",
            "sha256:0,16",
            "-L",
            &file("policy.dat"),
        ],
    );
    let policy = std::fs::read(file("policy.dat")).expect("policy digest");
    assert_eq!(policy, unhex(POLICY_PCR_0_16));

    // A real policy session kept between tools with TPM2_ContextSave / TPM2_ContextLoad:
    // each tool loads session.ctx, uses the session and saves it again. PolicyPCR in a
    // policy session (not a trial) checks the PCRs as they are, so its digest is the one
    // computed outside the TPM for the same values.
    let session = file("session.ctx");
    tpm.ok(
        "tpm2_startauthsession",
        &["--policy-session", "-S", &session],
    );
    tpm.ok(
        "tpm2_policypcr",
        &[
            "-S",
            &session,
            "-l",
            "sha256:0,16",
            "-L",
            &file("session-policy.dat"),
        ],
    );
    let policy = std::fs::read(file("session-policy.dat")).expect("policy digest");
    assert_eq!(policy, unhex(POLICY_PCR_0_16));
    tpm.ok("tpm2_flushcontext", &[&session]);
    // Flushed: the saved context no longer loads.
    let again = tpm.run("tpm2_flushcontext", &[&session]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!again.status.success());
}

#[test]
fn tpm2_tools_policy_session_saved_between_tools_after_startup() {
    let tpm = Server::start();
    let dir = std::env::temp_dir().join(format!("parapet-tpm2-context-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let file = |name: &str| dir.join(name).to_str().expect("UTF-8 path").to_owned();
    let (session, policy) = (file("s.ctx"), file("p.dat"));
    tpm.ok("tpm2_startup", &["-c"]);
    tpm.ok(
        "tpm2_startauthsession",
        &["--policy-session", "-S", &session],
    );
    let saved = tpm.ok("tpm2_getcap", &["handles-saved-session"]);
    assert_eq!(saved.trim(), "- 0x3000000");
    tpm.ok(
        "tpm2_policypcr",
        &["-S", &session, "-l", "sha256:0,16", "-L", &policy],
    );
    let digest = std::fs::read(&policy).expect("policy digest");
    assert_eq!(digest, unhex(POLICY_PCR_0_16_AT_STARTUP));
    tpm.ok("tpm2_flushcontext", &[&session]);
    let saved = tpm.ok("tpm2_getcap", &["handles-saved-session"]);
    // A second flush loads the context again: TPM_RC_HANDLE + P1, the session is gone.
    let again = tpm.run("tpm2_flushcontext", &[&session]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(saved.trim(), "");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("Esys_ContextLoad(0x1CB)"));
}

#[test]
fn tpm2_tools_create_read_and_flush_an_ecc_storage_primary() {
    let tpm = Server::start();
    let dir = std::env::temp_dir().join(format!("parapet-tpm2-primary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let file = |name: &str| dir.join(name).to_str().expect("UTF-8 path").to_owned();
    let (owner, endorsement) = (file("o.ctx"), file("e.ctx"));
    tpm.ok("tpm2_startup", &["-c"]);
    let created = tpm.ok(
        "tpm2_createprimary",
        &["-C", "o", "-g", "sha256", "-G", "ecc256", "-c", &owner],
    );
    // The object is saved into the file (ContextSave) and loaded again by ReadPublic.
    let public = tpm.ok("tpm2_readpublic", &["-c", &owner]);
    tpm.ok(
        "tpm2_createprimary",
        &[
            "-C",
            "e",
            "-g",
            "sha256",
            "-G",
            "ecc256",
            "-c",
            &endorsement,
        ],
    );
    let transient = tpm.ok("tpm2_getcap", &["handles-transient"]);
    tpm.ok("tpm2_flushcontext", &["-t"]);
    let after = tpm.ok("tpm2_getcap", &["handles-transient"]);
    // The same template under the same seed: the same key again.
    let again = tpm.ok(
        "tpm2_createprimary",
        &["-C", "o", "-g", "sha256", "-G", "ecc256", "-c", &owner],
    );
    std::fs::remove_dir_all(&dir).ok();
    let x = |s: &str| s.lines().find(|l| l.starts_with("x: ")).map(str::to_owned);
    assert!(x(&created).is_some(), "{created}");
    assert_eq!(x(&created), x(&public));
    assert_eq!(x(&created), x(&again));
    assert!(public.contains("sym-keybits: 128"), "{public}");
    // The owner key, its copy tpm2_readpublic loaded from the file (and left loaded), the
    // endorsement key.
    assert_eq!(transient.trim(), "- 0x80000000\n- 0x80000001\n- 0x80000002");
    assert_eq!(after.trim(), "");
}

#[test]
fn tpm2_tools_sign_verify_and_quote_with_a_restricted_ecdsa_primary() {
    let tpm = Server::start();
    let dir = std::env::temp_dir().join(format!("parapet-tpm2-sign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let file = |name: &str| dir.join(name).to_str().expect("UTF-8 path").to_owned();
    let (key, pem, msg, sig, bad, der) = (
        file("key.ctx"),
        file("key.pem"),
        file("msg"),
        file("sig.bin"),
        file("bad.bin"),
        file("sig.der"),
    );
    let (quote, quote_sig, quote_pcrs) = (file("quote.msg"), file("quote.sig"), file("quote.pcrs"));
    std::fs::write(&msg, TEXT).expect("message");
    tpm.ok("tpm2_startup", &["-c"]);
    // A signing key's symmetric must be TPM_ALG_NULL (Part 2 §12.2.3.6): ":null".
    tpm.ok(
        "tpm2_createprimary",
        &[
            "-C",
            "o",
            "-G",
            "ecc256:ecdsa-sha256:null",
            "-c",
            &key,
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign",
        ],
    );
    // Without a resource manager every tool leaves what it loaded: flush after each.
    let flush = || tpm.ok("tpm2_flushcontext", &["-t"]);
    flush();
    tpm.ok("tpm2_readpublic", &["-c", &key, "-f", "pem", "-o", &pem]);
    flush();
    tpm.ok("tpm2_sign", &["-c", &key, "-g", "sha256", "-o", &sig, &msg]);
    flush();
    tpm.ok(
        "tpm2_verifysignature",
        &["-c", &key, "-g", "sha256", "-m", &msg, "-s", &sig],
    );
    flush();
    // One flipped bit of r: TPM_RC_SIGNATURE + TPM_RC_P + TPM_RC_2.
    let mut flipped = std::fs::read(&sig).expect("signature");
    flipped[10] ^= 1;
    std::fs::write(&bad, &flipped).expect("bad signature");
    let refused = tpm.run(
        "tpm2_verifysignature",
        &["-c", &key, "-g", "sha256", "-m", &msg, "-s", &bad],
    );
    flush();
    // The signature as DER, for OpenSSL's own ECDSA verification (when the CLI is there).
    tpm.ok(
        "tpm2_sign",
        &["-c", &key, "-g", "sha256", "-f", "plain", "-o", &der, &msg],
    );
    flush();
    let openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", &pem, "-signature", &der, &msg])
        .output();
    // PCR 16 extended, so the quoted digest is not all zeros.
    tpm.ok("tpm2_pcrextend", &[&format!("16:sha256={DIGEST}")]);
    let quoted = tpm.ok(
        "tpm2_quote",
        &[
            "-c",
            &key,
            "-l",
            "sha256:0,1,16",
            "-q",
            "0102030405060708",
            "-m",
            &quote,
            "-s",
            &quote_sig,
            "-o",
            &quote_pcrs,
            "-g",
            "sha256",
        ],
    );
    flush();
    // tpm2_checkquote talks to no TPM (it refuses -T).
    let checkquote = |args: &[&str]| {
        Command::new("tpm2_checkquote")
            .args(args)
            .output()
            .expect("tpm2_checkquote runs")
    };
    let checked = checkquote(&[
        "-u",
        &pem,
        "-m",
        &quote,
        "-s",
        &quote_sig,
        "-f",
        &quote_pcrs,
        "-g",
        "sha256",
        "-q",
        "0102030405060708",
    ]);
    let wrong_nonce = checkquote(&[
        "-u",
        &pem,
        "-m",
        &quote,
        "-s",
        &quote_sig,
        "-f",
        &quote_pcrs,
        "-g",
        "sha256",
        "-q",
        "0102030405060709",
    ]);
    let attest = std::fs::read(&quote).expect("quote");
    std::fs::remove_dir_all(&dir).ok();

    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("0x2DB"), "{stderr}");
    if let Ok(out) = openssl {
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        checked.status.success(),
        "tpm2_checkquote: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(!wrong_nonce.status.success());
    let stderr = String::from_utf8_lossy(&wrong_nonce.stderr);
    assert!(!stderr.contains("TCTI"), "{stderr}");
    // TPMS_ATTEST: TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, a SHA-256 qualified name,
    // extraData 0102030405060708; it ends with the selection of PCRs 0, 1, 16 and their
    // digest: `hashlib.sha256(bytes(64) + bytes.fromhex(EXTENDED[2:])).hexdigest()`.
    assert_eq!(&attest[..10], &unhex("ff544347 8018 0022 000b")[..]);
    assert_eq!(&attest[42..52], &unhex("0008 0102030405060708")[..]);
    let pcr_digest = "35ec2b53c6a4055c3eae29c5185aea946755f0bdf42bf2295653cec848acb954";
    let tail = unhex(&format!("00000001 000b 03 030001 0020 {pcr_digest}"));
    assert_eq!(&attest[attest.len() - tail.len()..], &tail[..], "{quoted}");
}

#[test]
fn tpm2_tools_create_load_sign_and_unseal_under_a_storage_primary() {
    let tpm = Server::start();
    let dir = std::env::temp_dir().join(format!("parapet-tpm2-create-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let file = |name: &str| dir.join(name).to_str().expect("UTF-8 path").to_owned();
    let (primary, secret, msg, sig) = (
        file("primary.ctx"),
        file("secret.txt"),
        file("msg"),
        file("sig"),
    );
    std::fs::write(&secret, b"sealed by parapet\n").expect("secret");
    std::fs::write(&msg, b"signed by a child key\n").expect("message");
    tpm.ok("tpm2_startup", &["-c"]);
    // Without a resource manager every tool leaves what it loaded: flush after each.
    let flush = || tpm.ok("tpm2_flushcontext", &["-t"]);
    tpm.ok(
        "tpm2_createprimary",
        &["-C", "o", "-g", "sha256", "-G", "ecc256", "-c", &primary],
    );
    flush();

    // An ECDSA child key, its signing attributes and scheme given.
    let (key_pub, key_priv, key) = (file("key.pub"), file("key.priv"), file("key.ctx"));
    let attributes = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign";
    let created = [
        "-C",
        &primary,
        "-G",
        "ecc256:ecdsa-sha256",
        "-a",
        attributes,
        "-u",
        &key_pub,
        "-r",
        &key_priv,
    ];
    tpm.ok("tpm2_create", &created);
    flush();
    tpm.ok(
        "tpm2_load",
        &["-C", &primary, "-u", &key_pub, "-r", &key_priv, "-c", &key],
    );
    flush();
    tpm.ok("tpm2_sign", &["-c", &key, "-g", "sha256", "-o", &sig, &msg]);
    flush();
    tpm.ok(
        "tpm2_verifysignature",
        &["-c", &key, "-g", "sha256", "-m", &msg, "-s", &sig],
    );
    flush();

    // tpm2_create's default ECC key: sign and decrypt, unrestricted, scheme NULL (Part 2
    // §12.2.3.6). tpm2_sign names ECDSA-SHA256 in TPM2_Sign's inScheme, which the TPM uses
    // since the key's scheme is NULL (Part 3 §20.2.1).
    let (dual_pub, dual_priv, dual) = (file("dual.pub"), file("dual.priv"), file("dual.ctx"));
    let public = tpm.ok(
        "tpm2_create",
        &[
            "-C", &primary, "-G", "ecc256", "-u", &dual_pub, "-r", &dual_priv,
        ],
    );
    assert!(public.contains("decrypt|sign"), "{public}");
    flush();
    tpm.ok(
        "tpm2_load",
        &[
            "-C", &primary, "-u", &dual_pub, "-r", &dual_priv, "-c", &dual,
        ],
    );
    flush();
    tpm.ok(
        "tpm2_sign",
        &["-c", &dual, "-g", "sha256", "-o", &sig, &msg],
    );
    flush();
    tpm.ok(
        "tpm2_verifysignature",
        &["-c", &dual, "-g", "sha256", "-m", &msg, "-s", &sig],
    );
    flush();

    // Sealed data: with an empty authValue, with a password, and under a PCR policy.
    let (seal_pub, seal_priv, seal) = (file("seal.pub"), file("seal.priv"), file("seal.ctx"));
    tpm.ok(
        "tpm2_create",
        &[
            "-C", &primary, "-i", &secret, "-u", &seal_pub, "-r", &seal_priv,
        ],
    );
    flush();
    tpm.ok(
        "tpm2_load",
        &[
            "-C", &primary, "-u", &seal_pub, "-r", &seal_priv, "-c", &seal,
        ],
    );
    flush();
    let unsealed = tpm.ok("tpm2_unseal", &["-c", &seal]);
    flush();
    let (pw_pub, pw_priv, pw) = (file("pw.pub"), file("pw.priv"), file("pw.ctx"));
    tpm.ok(
        "tpm2_create",
        &[
            "-C", &primary, "-p", "pw", "-i", &secret, "-u", &pw_pub, "-r", &pw_priv,
        ],
    );
    flush();
    tpm.ok(
        "tpm2_load",
        &["-C", &primary, "-u", &pw_pub, "-r", &pw_priv, "-c", &pw],
    );
    flush();
    let with_password = tpm.ok("tpm2_unseal", &["-c", &pw, "-p", "pw"]);
    flush();
    let wrong_password = tpm.run("tpm2_unseal", &["-c", &pw, "-p", "nope"]);
    flush();
    let (pcrs, policy) = (file("pcrs.bin"), file("pcr.policy"));
    tpm.ok("tpm2_pcrread", &["-o", &pcrs, "sha256:0,16"]);
    tpm.ok(
        "tpm2_createpolicy",
        &[
            "--policy-pcr",
            "-l",
            "sha256:0,16",
            "-f",
            &pcrs,
            "-L",
            &policy,
        ],
    );
    flush();
    let (pol_pub, pol_priv, pol) = (file("pol.pub"), file("pol.priv"), file("pol.ctx"));
    let sealed_with_policy = [
        "-C",
        &primary,
        "-L",
        &policy,
        "-a",
        "fixedtpm|fixedparent",
        "-i",
        &secret,
        "-u",
        &pol_pub,
        "-r",
        &pol_priv,
    ];
    tpm.ok("tpm2_create", &sealed_with_policy);
    flush();
    tpm.ok(
        "tpm2_load",
        &["-C", &primary, "-u", &pol_pub, "-r", &pol_priv, "-c", &pol],
    );
    flush();
    let with_policy = tpm.ok("tpm2_unseal", &["-c", &pol, "-p", "pcr:sha256:0,16"]);
    flush();
    tpm.ok("tpm2_pcrextend", &[&format!("16:sha256={DIGEST}")]);
    let moved = tpm.run("tpm2_unseal", &["-c", &pol, "-p", "pcr:sha256:0,16"]);
    flush();
    std::fs::remove_dir_all(&dir).ok();

    assert_eq!(unsealed, "sealed by parapet\n");
    assert_eq!(with_password, "sealed by parapet\n");
    assert!(!wrong_password.status.success());
    assert_eq!(with_policy, "sealed by parapet\n");
    assert!(!moved.status.success());
}

#[test]
fn tpm2_tools_evictcontrol_persists_reads_and_evicts_a_primary() {
    let tpm = Server::start();
    let dir = std::env::temp_dir().join(format!("parapet-tpm2-evict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let primary = dir
        .join("primary.ctx")
        .to_str()
        .expect("UTF-8 path")
        .to_owned();
    tpm.ok("tpm2_startup", &["-c"]);
    tpm.ok(
        "tpm2_createprimary",
        &["-C", "o", "-g", "sha256", "-G", "ecc256", "-c", &primary],
    );
    let transient = tpm.ok("tpm2_readpublic", &["-c", &primary]);
    let persisted = tpm.ok(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", &primary, "0x81000001"],
    );
    let handles = tpm.ok("tpm2_getcap", &["handles-persistent"]);
    let public = tpm.ok("tpm2_readpublic", &["-c", "0x81000001"]);
    // The same handle twice: TPM_RC_NV_DEFINED.
    let again = tpm.run(
        "tpm2_evictcontrol",
        &["-C", "o", "-c", &primary, "0x81000001"],
    );
    let evicted = tpm.ok("tpm2_evictcontrol", &["-C", "o", "-c", "0x81000001"]);
    let after = tpm.ok("tpm2_getcap", &["handles-persistent"]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(persisted.contains("action: persisted"), "{persisted}");
    assert_eq!(handles.trim(), "- 0x81000001");
    let name = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("name: "))
            .map(str::to_owned)
    };
    assert!(name(&public).is_some(), "{public}");
    assert_eq!(name(&public), name(&transient));
    assert!(!again.status.success());
    assert!(evicted.contains("action: evicted"), "{evicted}");
    assert_eq!(after.trim(), "");
}

#[test]
fn tpm2_tools_changeauth_clear_and_testparms() {
    let tpm = Server::start();
    let dir = std::env::temp_dir().join(format!("parapet-tpm2-clear-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let path = |name: &str| dir.join(name).to_str().expect("UTF-8 path").to_owned();
    let (before, after) = (path("before.ctx"), path("after.ctx"));
    tpm.ok("tpm2_startup", &["-c"]);
    // TPM2_HierarchyChangeAuth: the owner password is needed, then removed again.
    tpm.ok("tpm2_changeauth", &["-c", "o", "newpass"]);
    let no_password = tpm.run(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", &before],
    );
    tpm.ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-P", "newpass", "-c", &before],
    );
    let srk_before = tpm.ok("tpm2_readpublic", &["-c", &before]);
    tpm.ok("tpm2_flushcontext", &["-t"]);
    tpm.ok("tpm2_changeauth", &["-c", "o", "-p", "newpass"]);
    // TPM2_Clear under the (empty) lockout authorization: a new storage primary seed.
    tpm.ok("tpm2_clear", &[]);
    tpm.ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", &after],
    );
    let srk_after = tpm.ok("tpm2_readpublic", &["-c", &after]);
    tpm.ok("tpm2_flushcontext", &["-t"]);
    // A lockout password guards TPM2_Clear.
    tpm.ok("tpm2_changeauth", &["-c", "l", "lockpw"]);
    let clear_without = tpm.run("tpm2_clear", &[]);
    tpm.ok("tpm2_clear", &["-c", "l", "lockpw"]);
    // TPM2_TestParms: ECC P-256 with ECDSA and RSA-2048 are supported. tpm2_testparms
    // refuses by itself what the TPM's algorithm list lacks, so RSA-1024 (TPMS_RSA_PARMS
    // with keyBits 0x0400: TPMI_RSA_KEY_BITS' TPM_RC_VALUE + P + 1) and SYMCIPHER
    // (TPM_RC_TYPE + P + 1) go through tpm2_send.
    let ecc = tpm.run("tpm2_testparms", &["ecc256:ecdsa"]);
    let rsa = tpm.run("tpm2_testparms", &["rsa2048:rsassa"]);
    let rsa1024 = tpm.send(&unhex(
        "8001 00000016 0000018a 0001 0010 0010 0400 00000000",
    ));
    let symcipher = tpm.send(&unhex("8001 00000012 0000018a 0025 0006 0080 0043"));
    std::fs::remove_dir_all(&dir).ok();

    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!no_password.status.success());
    assert!(
        stderr(&no_password).contains("0x9A2"),
        "{}",
        stderr(&no_password)
    );
    let name = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("name: "))
            .map(str::to_owned)
    };
    assert!(name(&srk_before).is_some(), "{srk_before}");
    assert!(name(&srk_after).is_some(), "{srk_after}");
    assert_ne!(name(&srk_before), name(&srk_after));
    assert!(!clear_without.status.success());
    assert!(
        stderr(&clear_without).contains("0x0000098e"),
        "{}",
        stderr(&clear_without)
    );
    assert!(ecc.status.success(), "{}", stderr(&ecc));
    assert!(rsa.status.success(), "{}", stderr(&rsa));
    assert_eq!(rsa1024, unhex("8001 0000000a 000001c4"));
    assert_eq!(symcipher, unhex("8001 0000000a 000001ca"));
}

#[test]
fn tpm2_tools_rsa_primary_child_sign_verify_and_quote() {
    let tpm = Server::start();
    let dir = std::env::temp_dir().join(format!("parapet-tpm2-rsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let file = |name: &str| dir.join(name).to_str().expect("UTF-8 path").to_owned();
    let (primary, again, msg, tampered) = (
        file("primary.ctx"),
        file("again.ctx"),
        file("msg"),
        file("tampered"),
    );
    std::fs::write(&msg, b"signed by an RSA key\n").expect("message");
    std::fs::write(&tampered, b"signed by an RSA key!\n").expect("message");
    tpm.ok("tpm2_startup", &["-c"]);
    let flush = || tpm.ok("tpm2_flushcontext", &["-t"]);
    // tpm2_createprimary -G rsa: the RSA-2048 storage primary, twice: the same key (derived
    // from the owner seed and the template).
    let first = tpm.ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa", "-c", &primary],
    );
    flush();
    let second = tpm.ok(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa", "-c", &again],
    );
    flush();
    let field = |out: &str, key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert!(field(&first, "rsa: ").len() > 500, "{first}");
    assert_eq!(field(&first, "rsa: "), field(&second, "rsa: "));
    assert_eq!(field(&first, "bits: "), "bits: 2048");

    // tpm2_create -G rsa2048: sign + decrypt, scheme NULL; each signature names its scheme.
    let (key_pub, key_priv, key) = (file("key.pub"), file("key.priv"), file("key.ctx"));
    tpm.ok(
        "tpm2_create",
        &[
            "-C", &primary, "-G", "rsa2048", "-u", &key_pub, "-r", &key_priv,
        ],
    );
    flush();
    tpm.ok(
        "tpm2_load",
        &["-C", &primary, "-u", &key_pub, "-r", &key_priv, "-c", &key],
    );
    flush();
    let mut refused = Vec::new();
    for scheme in ["rsassa", "rsapss"] {
        let sig = file(&format!("{scheme}.sig"));
        tpm.ok(
            "tpm2_sign",
            &["-c", &key, "-g", "sha256", "-s", scheme, "-o", &sig, &msg],
        );
        flush();
        tpm.ok(
            "tpm2_verifysignature",
            &["-c", &key, "-g", "sha256", "-m", &msg, "-s", &sig],
        );
        flush();
        refused.push(tpm.run(
            "tpm2_verifysignature",
            &["-c", &key, "-g", "sha256", "-m", &tampered, "-s", &sig],
        ));
        flush();
    }
    // A quote signed with it, checked in software (OpenSSL) against its PEM.
    let (pem, quote, quote_sig, pcrs) = (
        file("key.pem"),
        file("quote.msg"),
        file("quote.sig"),
        file("quote.pcrs"),
    );
    tpm.ok("tpm2_readpublic", &["-c", &key, "-f", "pem", "-o", &pem]);
    flush();
    tpm.ok(
        "tpm2_quote",
        &[
            "-c",
            &key,
            "-l",
            "sha256:0,16",
            "-q",
            "abcd",
            "-m",
            &quote,
            "-s",
            &quote_sig,
            "-o",
            &pcrs,
            "-g",
            "sha256",
        ],
    );
    flush();
    let checked = Command::new("tpm2_checkquote")
        .args([
            "-u", &pem, "-m", &quote, "-s", &quote_sig, "-f", &pcrs, "-g", "sha256", "-q", "abcd",
        ])
        .output()
        .expect("tpm2_checkquote runs");
    std::fs::remove_dir_all(&dir).ok();
    for r in refused {
        assert!(!r.status.success());
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(stderr.contains("0x000002db"), "{stderr}");
    }
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

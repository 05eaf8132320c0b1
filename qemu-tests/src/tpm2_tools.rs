//! Debian's tpm2-tools against two TPMs, compared (issue 7, point 4).
//!
//! `sequence` is a fixed list of real tpm2-tools invocations (startup, getcap, getrandom, PCR
//! read/reset/extend/event, hash, primary and child keys (ECC P-256 and RSA-2048), sign and
//! verify (ECDSA, RSASSA, RSAPSS), RSA encrypt and decrypt (OAEP, the default scheme), quote and checkquote, TestParms, NV define/write/read, a PCR policy sealing a secret, evictcontrol,
//! flushcontext). `run_sequence` runs it against one TPM, reached through a `Tcti`, in a
//! scratch directory of its own, keeping each step's stdout, stderr and exit status, and reads
//! from each step the facts that any correct TPM must report identically: `compare` then puts
//! two runs side by side and lists every fact on which they differ, with both values.
//!
//! Two independent TPMs have different seeds, so keys, key names, signatures, random bytes and
//! the clock/firmware fields of attestations differ: none of those is compared. What is
//! compared (each extractor says why its facts are deterministic):
//! * every step's outcome: success, or for the deliberate failures the TPM response code
//!   (`TPM_RC_INITIALIZE` before startup, `TPM_RC_SIGNATURE` for a tampered message,
//!   `TPM_RC_AUTH_UNAVAILABLE` for a password on a policy-only object);
//! * the capabilities the specification or the PC Client profile fixes (`properties-fixed`:
//!   family "2.0", level 0, 24 PCRs, 3-octet PCR selections; the algorithms, curve and
//!   commands the sequence uses, with their spec-defined attributes; the sha256 PCR bank);
//! * PCR values: after Startup(CLEAR), after reset + extend of a known digest, after an event
//!   of a known file (every bank both TPMs allocate; sha256 always);
//! * digests the TPM computes from known input (`tpm2_hash`, also of a file over 1024 octets,
//!   which it hashes with a sequence; the event digests, the policy
//!   digest of PolicyPCR over known PCRs, the PCR digest inside the quote);
//! * public areas' template-derived fields (types, attributes, curves, schemes, policies), NV
//!   public areas and names (the name of an NV index hashes only its public area), NV and
//!   unsealed data, RSA-decrypted data (equal to the plaintext), handles created and removed;
//! * signature and quote verification succeeding (`tpm2_verifysignature` in the TPM,
//!   `tpm2_checkquote` in software against the key's PEM).
//!
//! What differs between implementations (manufacturer, vendor strings, firmware version, spec
//! revision, buffer sizes, slot counts, which extra banks and algorithms are present) is kept
//! as information: `report` shows both values and never fails on them.
//!
//! tpm2-tools talk to the TPM directly (no resource manager): a tool that loads an object from
//! a context file leaves it loaded when it exits, and swtpm holds three transient objects, so
//! the sequence flushes transient objects (`tpm2_flushcontext -t`) after each step that loads
//! one. Saved context files stay valid across the flushes.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How tpm2-tools reach a TPM (their `-T` option). Always on the loopback interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tcti {
    /// swtpm's TCTI: TPM commands on `port`, swtpm's control channel on `port + 1`.
    Swtpm { port: u16 },
    /// The TPM simulator's protocol (tcti-mssim): TPM commands on `port`, platform signals
    /// (power, NV) on `port + 1`. `vmm-lite tpm-server` speaks it.
    Mssim { port: u16 },
}

impl Tcti {
    /// The port TPM commands go to.
    pub fn port(&self) -> u16 {
        match self {
            Tcti::Swtpm { port } | Tcti::Mssim { port } => *port,
        }
    }
}

impl fmt::Display for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tcti::Swtpm { port } => write!(f, "swtpm:host=127.0.0.1,port={port}"),
            Tcti::Mssim { port } => write!(f, "mssim:host=127.0.0.1,port={port}"),
        }
    }
}

/// A TPM server process, killed (and reaped) when dropped, also when a test fails or panics.
#[derive(Debug)]
pub struct Server {
    child: Child,
    what: String,
}

impl Server {
    /// The server's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            if e.kind() != std::io::ErrorKind::InvalidInput {
                eprintln!("tpm2_tools: killing {} failed: {e}", self.what);
            }
        }
        let _ = self.child.wait();
    }
}

/// One TPM the sequence runs against: a name for the report, the TCTI that reaches it, and
/// the server process behind it (ended when this is dropped).
#[derive(Debug)]
pub struct TpmUnderTest {
    pub name: String,
    pub tcti: Tcti,
    pub server: Server,
}

/// How long a TPM server may take to accept connections on its command port.
const SERVER_READY: Duration = Duration::from_secs(10);

impl TpmUnderTest {
    /// Starts `command`, a TPM server that will listen on `tcti`'s port (and the next one), and
    /// waits until its command port accepts a connection. Fails if the server exits first or
    /// does not listen within 10 s (and then kills it).
    pub fn spawn(name: &str, mut command: Command, tcti: Tcti) -> Result<Self, String> {
        let what = format!("{name} ({command:?})");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {what}: {e}"))?;
        let mut server = Server { child, what };
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, tcti.port());
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("{} exited before listening: {status}", server.what));
            }
            if TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_ok() {
                // Another process may hold the port, and the server be about to exit for it.
                std::thread::sleep(Duration::from_millis(20));
                if let Ok(Some(status)) = server.child.try_wait() {
                    return Err(format!("{} exited: {status}", server.what));
                }
                break;
            }
            if start.elapsed() > SERVER_READY {
                return Err(format!(
                    "{} does not listen on {addr} after {SERVER_READY:?}",
                    server.what
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(TpmUnderTest {
            name: name.to_string(),
            tcti,
            server,
        })
    }
}

/// Parapet's own TPM (`devices::tpm`), served by `vmm-lite tpm-server` over the simulator
/// protocol (tcti-mssim) on two free loopback ports: side B of the comparison, against
/// swtpm. Builds vmm-lite first (`xtask::build::vmm_lite`, release); an error says why it
/// could not be built or started.
pub fn ours() -> Result<TpmUnderTest, String> {
    let vmm_lite = xtask::build::vmm_lite().map_err(|e| format!("building vmm-lite: {e:#}"))?;
    let server = |port: u16| {
        let mut command = Command::new(&vmm_lite);
        command.args(["tpm-server", "--listen", &format!("127.0.0.1:{port}")]);
        command
    };
    let tcti = |port| Tcti::Mssim { port };
    spawn_on_free_ports("Parapet's TPM (vmm-lite tpm-server)", server, tcti)
}

/// A port P such that P and P + 1 were both free on the loopback interface just now (the
/// command and control/platform ports of a TPM server).
pub fn free_port_pair() -> Option<u16> {
    for _ in 0..100 {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
        let port = first.local_addr().ok()?.port();
        if port < u16::MAX && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return Some(port);
        }
    }
    None
}

/// Starts a TPM server on two free loopback ports, P for TPM commands and P + 1 for its
/// control or platform channel: `command(P)` is the server's command line, `tcti(P)` how
/// tpm2-tools reach it. Waits until it listens (`TpmUnderTest::spawn`), and tries other ports
/// when the server exits first (another process may take the ports between choosing and
/// binding).
pub fn spawn_on_free_ports(
    name: &str,
    command: impl Fn(u16) -> Command,
    tcti: impl Fn(u16) -> Tcti,
) -> Result<TpmUnderTest, String> {
    let mut last_error = String::from("no free pair of ports on 127.0.0.1");
    for _ in 0..5 {
        let Some(port) = free_port_pair() else {
            continue;
        };
        match TpmUnderTest::spawn(name, command(port), tcti(port)) {
            Ok(tpm) => return Ok(tpm),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Starts Debian's swtpm as a TPM 2.0 with a fresh state in `state_dir` (emptied first, so
/// its seeds are its own), on two free ports, and waits until it listens.
///
/// `--flags not-need-init` leaves out `startup-clear` on purpose: the sequence's first real
/// step is `tpm2_startup -c`, which must send the TPM's TPM2_Startup as it will to Parapet's
/// TPM (with `startup-clear`, swtpm starts itself and `tpm2_startup` 5.4 hides the
/// resulting `TPM_RC_INITIALIZE`). swtpm's log goes to `state_dir/swtpm.log`.
pub fn swtpm(name: &str, state_dir: &Path) -> Result<TpmUnderTest, String> {
    if state_dir.exists() {
        fs::remove_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    }
    fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let server = |port: u16| {
        let mut command = xtask::tpm_bench::swtpm_socket(port, state_dir);
        command.args([
            "--log",
            &format!("file={},level=1", state_dir.join("swtpm.log").display()),
        ]);
        command
    };
    spawn_on_free_ports(name, server, |port| Tcti::Swtpm { port })
}

/// What a step must end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Success,
    /// The tool fails with this TPM response code (as tpm2-tools print it: `Esys_X(0x...)`).
    TpmError(u32),
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The tool failed and named this response code (TPM or TSS layer).
    Rc(u32),
    /// The tool failed without naming a response code, did not run, or timed out.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success => write!(f, "success"),
            Outcome::Rc(rc) => write!(f, "error, response code {rc:#x}"),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

impl Outcome {
    /// For the step table: `ok`, the response code, or `FAILED`.
    pub fn short(&self) -> String {
        match self {
            Outcome::Success => "ok".to_string(),
            Outcome::Rc(rc) => format!("{rc:#x}"),
            Outcome::Failed(_) => "FAILED".to_string(),
        }
    }
}

impl Expect {
    fn met_by(self, outcome: &Outcome) -> bool {
        match self {
            Expect::Success => *outcome == Outcome::Success,
            Expect::TpmError(rc) => *outcome == Outcome::Rc(rc),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Success => write!(f, "success"),
            Expect::TpmError(rc) => write!(f, "error, response code {rc:#x}"),
        }
    }
}

/// How a fact takes part in the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Both TPMs must report it, with the same value.
    Agree,
    /// Compared when both TPMs report it (a PCR bank beyond sha256, which a TPM need not
    /// allocate); shown when only one does.
    AgreeWhereBoth,
    /// Implementation-specific: shown side by side, never compared.
    Info,
}

/// One fact read from a step's output. Keys are unique within a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    pub key: String,
    pub value: String,
    pub kind: Kind,
}

fn agree(key: impl Into<String>, value: impl Into<String>) -> Fact {
    Fact {
        key: key.into(),
        value: value.into(),
        kind: Kind::Agree,
    }
}

fn where_both(key: impl Into<String>, value: impl Into<String>) -> Fact {
    Fact {
        key: key.into(),
        value: value.into(),
        kind: Kind::AgreeWhereBoth,
    }
}

fn info(key: impl Into<String>, value: impl Into<String>) -> Fact {
    Fact {
        key: key.into(),
        value: value.into(),
        kind: Kind::Info,
    }
}

/// What a finished step left: its output and its scratch directory (for output files).
#[derive(Debug)]
pub struct StepOutput<'a> {
    pub stdout: &'a str,
    pub stderr: &'a str,
    pub dir: &'a Path,
}

impl StepOutput<'_> {
    /// An output file of the step, as bytes.
    pub fn file(&self, name: &str) -> Result<Vec<u8>, String> {
        fs::read(self.dir.join(name)).map_err(|e| format!("reading {name}: {e}"))
    }
}

/// Reads a successful step's facts from its output (the step's label is prefixed to keys).
pub type Extract = Box<dyn Fn(&StepOutput) -> Result<Vec<Fact>, String> + Send>;

/// One tpm2-tools invocation.
pub struct Step {
    pub label: String,
    pub tool: &'static str,
    pub args: Vec<String>,
    /// Whether the tool talks to the TPM (and so gets `-T`); tpm2_checkquote and tpm2_print
    /// only read files.
    pub tpm: bool,
    pub expect: Expect,
    pub extract: Option<Extract>,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.label, self.command_line())
    }
}

impl Step {
    fn new(label: &str, tool: &'static str, args: &[&str]) -> Self {
        Step {
            label: label.to_string(),
            tool,
            args: args.iter().map(|a| a.to_string()).collect(),
            tpm: true,
            expect: Expect::Success,
            extract: None,
        }
    }

    fn facts(
        mut self,
        extract: impl Fn(&StepOutput) -> Result<Vec<Fact>, String> + Send + 'static,
    ) -> Self {
        self.extract = Some(Box::new(extract));
        self
    }

    fn files_only(mut self) -> Self {
        self.tpm = false;
        self
    }

    fn fails_with(mut self, rc: u32) -> Self {
        self.expect = Expect::TpmError(rc);
        self
    }

    /// The command as a shell would take it (without `-T`).
    pub fn command_line(&self) -> String {
        let mut line = self.tool.to_string();
        for arg in &self.args {
            line.push(' ');
            if arg.contains(['|', ' ', '"', '\'', ';', '&']) {
                line.push_str(&format!("\"{arg}\""));
            } else {
                line.push_str(arg);
            }
        }
        line
    }
}

/// The NV index the sequence defines (owner-authorized, 32 bytes).
pub const NV_INDEX: &str = "0x1500016";
/// The persistent handle the primary key is made persistent at.
pub const PERSISTENT_HANDLE: &str = "0x81000001";
/// The quote's qualifying data (nonce), as tpm2-tools take it: a hex string.
pub const NONCE: &str = "5061726170657421";
/// The digest extended into PCR 16's sha256 bank.
pub const EXTEND_DIGEST: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The data written to the NV index (exactly its 32 bytes).
pub const NV_DATA: &[u8; 32] = b"Parapet vTPM NV index 0x1500016!";

/// Octets of `long.bin`: over MAX_DIGEST_BUFFER (1024, the TPM2B_MAX_BUFFER bound), so
/// `tpm2_hash` cannot send it in one TPM2_Hash and hashes it with a sequence instead
/// (HashSequenceStart, SequenceUpdate per 1024-octet chunk, SequenceComplete; Part 3 §17).
pub const LONG_INPUT_SIZE: usize = 3000;

/// `long.bin`: octet i is (7 i + 3) mod 256, so it does not start with TPM_GENERATED_VALUE
/// and the sequence's ticket is a real one.
pub const LONG_INPUT: [u8; LONG_INPUT_SIZE] = {
    let mut bytes = [0u8; LONG_INPUT_SIZE];
    let mut i = 0;
    while i < LONG_INPUT_SIZE {
        bytes[i] = (i * 7 + 3) as u8;
        i += 1;
    }
    bytes
};

/// The files the sequence reads, written into each side's scratch directory first.
pub const INPUTS: &[(&str, &[u8])] = &[
    ("long.bin", &LONG_INPUT),
    ("event.txt", b"Parapet: an event measured into PCR 16\n"),
    ("msg", b"a message for the TPM to sign\n"),
    ("tampered", b"a message for the TPM to sign!\n"),
    ("nv.dat", NV_DATA),
    ("secret.txt", b"sealed to PCRs 0 and 16"),
    (RSA_PLAINTEXT_FILE, RSA_PLAINTEXT),
];

/// The short message `tpm2_rsaencrypt` encrypts and `tpm2_rsadecrypt` must give back.
pub const RSA_PLAINTEXT_FILE: &str = "plain.txt";
pub const RSA_PLAINTEXT: &[u8] = b"Parapet RSA_Encrypt / RSA_Decrypt\n";

/// TPM_RC_INITIALIZE: a command before TPM2_Startup.
pub const RC_INITIALIZE: u32 = 0x100;
/// TPM_RC_SIGNATURE for parameter 2 (VerifySignature's signature): RC_FMT1 | TPM_RC_P |
/// TPM_RC_2 | 0x1B.
pub const RC_SIGNATURE_PARAMETER_2: u32 = 0x2DB;
/// TPM_RC_AUTH_UNAVAILABLE: a password for an object without userWithAuth.
pub const RC_AUTH_UNAVAILABLE: u32 = 0x12F;

/// Properties in `tpm2_getcap properties-fixed` that every TPM 2.0 in the PC Client profile
/// reports the same: the family ("2.0", TPM_SPEC_FAMILY), the level (always 0 for the
/// library specification), the PCR count (24, required by the PC Client Platform TPM
/// Profile) and the minimum PCR selection size (the octets for those 24 PCRs, 3). Every other
/// property is the implementation's (spec revision and date, manufacturer, vendor strings and
/// type, firmware version, buffer and context sizes, slot and session counts, orderly count,
/// modes, the PS_* platform-specific values, command counts), reported for information.
pub const SPEC_FIXED_PROPERTIES: [&str; 4] = [
    "TPM2_PT_FAMILY_INDICATOR",
    "TPM2_PT_LEVEL",
    "TPM2_PT_PCR_COUNT",
    "TPM2_PT_PCR_SELECT_MIN",
];

/// The algorithms the sequence uses (ECC P-256 keys with ECDSA, RSA-2048 keys with RSASSA,
/// RSAPSS, RSAES and OAEP, AES-128-CFB parents, keyed-hash sealed objects, sha256 everywhere). Their
/// TPMA_ALGORITHM bits are fixed per algorithm (Part 2's algorithm-ID table, the reference
/// code's AlgorithmCap.c).
pub const USED_ALGORITHMS: [&str; 11] = [
    "sha256",
    "ecc",
    "ecdsa",
    "rsa",
    "rsassa",
    "rsapss",
    "rsaes",
    "oaep",
    "aes",
    "cfb",
    "keyedhash",
];

/// The commands the sequence sends. Each must be listed, with the handle counts Part 3 gives
/// it (cHandles: handles in the command's handle area; rHandle: a handle in the response).
pub const USED_COMMANDS: [&str; 34] = [
    "TPM2_CC_Startup",
    "TPM2_CC_GetCapability",
    "TPM2_CC_GetRandom",
    "TPM2_CC_PCR_Read",
    "TPM2_CC_PCR_Reset",
    "TPM2_CC_PCR_Extend",
    "TPM2_CC_PCR_Event",
    "TPM2_CC_Hash",
    "TPM2_CC_HashSequenceStart",
    "TPM2_CC_SequenceUpdate",
    "TPM2_CC_SequenceComplete",
    "TPM2_CC_CreatePrimary",
    "TPM2_CC_Create",
    "TPM2_CC_Load",
    "TPM2_CC_ReadPublic",
    "TPM2_CC_Sign",
    "TPM2_CC_VerifySignature",
    "TPM2_CC_Quote",
    "TPM2_CC_RSA_Encrypt",
    "TPM2_CC_RSA_Decrypt",
    "TPM2_CC_NV_DefineSpace",
    "TPM2_CC_NV_ReadPublic",
    "TPM2_CC_NV_Write",
    "TPM2_CC_NV_Read",
    "TPM2_CC_NV_UndefineSpace",
    "TPM2_CC_StartAuthSession",
    "TPM2_CC_PolicyPCR",
    "TPM2_CC_PolicyGetDigest",
    "TPM2_CC_Unseal",
    "TPM2_CC_EvictControl",
    "TPM2_CC_ContextSave",
    "TPM2_CC_ContextLoad",
    "TPM2_CC_TestParms",
    "TPM2_CC_FlushContext",
];

/// Fields of a public area (`tpm2_createprimary`, `tpm2_create`, `tpm2_readpublic` output)
/// that come from the key itself, not its template: the public point or modulus, the
/// keyed-hash commitment, and the names that hash them.
const KEY_DEPENDENT_FIELDS: [&str; 6] = ["x", "y", "rsa", "keyedhash", "name", "qualified name"];

/// The sequence, in order. Each step runs in the side's scratch directory, where `INPUTS`
/// are and the steps leave their output files (context files, keys, signatures, quotes).
pub fn sequence() -> Vec<Step> {
    let nv_index = NV_INDEX;
    let persistent = PERSISTENT_HANDLE;
    let extend = format!("16:sha256={EXTEND_DIGEST}");
    let mut steps = vec![
        // Before TPM2_Startup every command is refused with TPM_RC_INITIALIZE; tpm2_getrandom
        // first asks GetCapability, which is refused.
        Step::new(
            "getrandom before startup",
            "tpm2_getrandom",
            &["8", "--hex"],
        )
        .fails_with(RC_INITIALIZE),
        Step::new("startup", "tpm2_startup", &["-c"]),
        Step::new(
            "getcap properties-fixed",
            "tpm2_getcap",
            &["properties-fixed"],
        )
        .facts(properties_fixed),
        Step::new("getcap algorithms", "tpm2_getcap", &["algorithms"]).facts(algorithms),
        Step::new("getcap commands", "tpm2_getcap", &["commands"]).facts(commands),
        Step::new("getcap ecc-curves", "tpm2_getcap", &["ecc-curves"]).facts(ecc_curves),
        Step::new("getcap pcrs", "tpm2_getcap", &["pcrs"]).facts(pcr_banks),
        Step::new("getrandom", "tpm2_getrandom", &["16", "--hex"]).facts(random_bytes),
        // After Startup(CLEAR): PCRs 0-16 and 23 are zero, 17-22 (D-RTM) all ones.
        Step::new("pcrread after startup", "tpm2_pcrread", &[]).facts(pcr_values),
        // PCR 16, the debug PCR, may be reset from locality 0.
        Step::new("pcrreset 16", "tpm2_pcrreset", &["16"]),
        Step::new("pcrextend 16", "tpm2_pcrextend", &[&extend]),
        Step::new("pcrread 16 after extend", "tpm2_pcrread", &["sha256:16"]).facts(pcr_values),
        // Extends every allocated bank of PCR 16 with the file's digest in that bank, and
        // prints the digests.
        Step::new("pcrevent 16", "tpm2_pcrevent", &["16", "event.txt"]).facts(event_digests),
        Step::new("pcrread after event", "tpm2_pcrread", &[]).facts(pcr_values),
        Step::new("hash", "tpm2_hash", &["-g", "sha256", "--hex", "event.txt"])
            .facts(hex_stdout("sha256")),
        // Over 1024 octets: a hash sequence (tpm2-tools' tpm2_hash switches to
        // HashSequenceStart / SequenceUpdate / SequenceComplete above MAX_DIGEST_BUFFER). The
        // digest and the ticket's tag and hierarchy are the same for any TPM; its HMAC is
        // keyed with the TPM's own proof value, with a hash of the TPM's choosing.
        Step::new(
            "hash sequence",
            "tpm2_hash",
            &[
                "-g",
                "sha256",
                "-C",
                "o",
                "--hex",
                "-t",
                "long.ticket",
                "long.bin",
            ],
        )
        .facts(sequence_digest),
        // An ECC P-256 storage primary in the owner hierarchy: its template (tpm2-tools'
        // default for -G ecc256) is the same on both sides, its key is not.
        Step::new(
            "createprimary",
            "tpm2_createprimary",
            &[
                "-C",
                "o",
                "-g",
                "sha256",
                "-G",
                "ecc256",
                "-c",
                "primary.ctx",
            ],
        )
        .facts(public_area),
        flush_transient("createprimary"),
        Step::new(
            "create",
            "tpm2_create",
            &[
                "-C",
                "primary.ctx",
                "-G",
                "ecc256",
                "-u",
                "key.pub",
                "-r",
                "key.priv",
            ],
        )
        .facts(public_area),
        flush_transient("create"),
        Step::new(
            "load",
            "tpm2_load",
            &[
                "-C",
                "primary.ctx",
                "-u",
                "key.pub",
                "-r",
                "key.priv",
                "-c",
                "key.ctx",
            ],
        ),
        flush_transient("load"),
        Step::new(
            "readpublic",
            "tpm2_readpublic",
            &["-c", "key.ctx", "-f", "pem", "-o", "key.pem"],
        )
        .facts(public_area),
        flush_transient("readpublic"),
        Step::new(
            "sign",
            "tpm2_sign",
            &["-c", "key.ctx", "-g", "sha256", "-o", "sig.bin", "msg"],
        ),
        flush_transient("sign"),
        Step::new(
            "verifysignature",
            "tpm2_verifysignature",
            &[
                "-c", "key.ctx", "-g", "sha256", "-m", "msg", "-s", "sig.bin",
            ],
        ),
        flush_transient("verifysignature"),
        Step::new(
            "verifysignature of a tampered message",
            "tpm2_verifysignature",
            &[
                "-c", "key.ctx", "-g", "sha256", "-m", "tampered", "-s", "sig.bin",
            ],
        )
        .fails_with(RC_SIGNATURE_PARAMETER_2),
        flush_transient("verifysignature of a tampered message"),
        quote_step("quote", ""),
        flush_transient("quote"),
        // In software (OpenSSL), against the PEM tpm2_readpublic wrote: the signature over
        // the attestation, the nonce in it, and the PCR digest against quote.pcrs.
        checkquote_step("checkquote", ""),
        Step::new(
            "print quote",
            "tpm2_print",
            &["-t", "TPMS_ATTEST", "quote.msg"],
        )
        .files_only()
        .facts(attestation),
        // RSA-2048. TestParms: 2048 bits is implemented by both. (No other size is: swtpm
        // has 1024 and 3072, Parapet only 2048, and tpm2_testparms cannot ask for 4096.)
        Step::new("testparms rsa2048", "tpm2_testparms", &["rsa2048"]),
        // tpm2_createprimary -G rsa's template: an RSA-2048 restricted decryption key with
        // AES-128-CFB, scheme NULL (its modulus differs; its template fields do not).
        Step::new(
            "createprimary rsa",
            "tpm2_createprimary",
            &[
                "-C",
                "o",
                "-g",
                "sha256",
                "-G",
                "rsa",
                "-c",
                "rsa-primary.ctx",
            ],
        )
        .facts(public_area),
        flush_transient("createprimary rsa"),
        // tpm2_create -G rsa2048's default: unrestricted sign + decrypt, scheme NULL.
        Step::new(
            "create rsa",
            "tpm2_create",
            &[
                "-C",
                "rsa-primary.ctx",
                "-G",
                "rsa2048",
                "-u",
                "rsa-key.pub",
                "-r",
                "rsa-key.priv",
            ],
        )
        .facts(public_area),
        flush_transient("create rsa"),
        Step::new(
            "load rsa",
            "tpm2_load",
            &[
                "-C",
                "rsa-primary.ctx",
                "-u",
                "rsa-key.pub",
                "-r",
                "rsa-key.priv",
                "-c",
                "rsa-key.ctx",
            ],
        ),
        flush_transient("load rsa"),
        Step::new(
            "readpublic rsa",
            "tpm2_readpublic",
            &["-c", "rsa-key.ctx", "-f", "pem", "-o", "rsa-key.pem"],
        )
        .facts(public_area),
        flush_transient("readpublic rsa"),
    ];
    // Each RSA signature scheme: Sign, VerifySignature of the message and of a tampered one.
    for scheme in ["rsassa", "rsapss"] {
        let sig = format!("{scheme}.sig");
        steps.extend([
            Step::new(
                &format!("sign {scheme}"),
                "tpm2_sign",
                &[
                    "-c",
                    "rsa-key.ctx",
                    "-g",
                    "sha256",
                    "-s",
                    scheme,
                    "-o",
                    sig.as_str(),
                    "msg",
                ],
            ),
            flush_transient(&format!("sign {scheme}")),
            Step::new(
                &format!("verifysignature {scheme}"),
                "tpm2_verifysignature",
                &[
                    "-c",
                    "rsa-key.ctx",
                    "-g",
                    "sha256",
                    "-m",
                    "msg",
                    "-s",
                    sig.as_str(),
                ],
            ),
            flush_transient(&format!("verifysignature {scheme}")),
            Step::new(
                &format!("verifysignature {scheme} of a tampered message"),
                "tpm2_verifysignature",
                &[
                    "-c",
                    "rsa-key.ctx",
                    "-g",
                    "sha256",
                    "-m",
                    "tampered",
                    "-s",
                    sig.as_str(),
                ],
            )
            .fails_with(RC_SIGNATURE_PARAMETER_2),
            flush_transient(&format!("verifysignature {scheme} of a tampered message")),
        ]);
    }
    // RSA encryption with the sign + decrypt key: RSA_Encrypt then RSA_Decrypt of a short
    // message, with OAEP and with the tool's default scheme. Ciphertexts are randomized,
    // so only "the decrypted text is the original" is compared.
    for (name, scheme) in [("oaep", Some("oaep")), ("default", None)] {
        let cipher = format!("rsa-{name}.enc");
        let plain = format!("rsa-{name}.dec");
        let with_scheme = |mut args: Vec<String>| {
            if let Some(scheme) = scheme {
                args.splice(2..2, ["-s".to_string(), scheme.to_string()]);
            }
            args
        };
        let encrypt = with_scheme(vec![
            "-c".into(),
            "rsa-key.ctx".into(),
            "-o".into(),
            cipher.clone(),
            RSA_PLAINTEXT_FILE.into(),
        ]);
        let decrypt = with_scheme(vec![
            "-c".into(),
            "rsa-key.ctx".into(),
            "-o".into(),
            plain.clone(),
            cipher.clone(),
        ]);
        let encrypt: Vec<&str> = encrypt.iter().map(String::as_str).collect();
        let decrypt: Vec<&str> = decrypt.iter().map(String::as_str).collect();
        steps.extend([
            Step::new(&format!("rsaencrypt {name}"), "tpm2_rsaencrypt", &encrypt),
            flush_transient(&format!("rsaencrypt {name}")),
            Step::new(&format!("rsadecrypt {name}"), "tpm2_rsadecrypt", &decrypt)
                .facts(decrypts_to_plaintext(plain)),
            flush_transient(&format!("rsadecrypt {name}")),
        ]);
    }
    steps.extend([
        quote_step("quote rsa", "rsa-"),
        flush_transient("quote rsa"),
        checkquote_step("checkquote rsa", "rsa-"),
        Step::new(
            "nvdefine",
            "tpm2_nvdefine",
            &[
                nv_index,
                "-C",
                "o",
                "-s",
                "32",
                "-a",
                "ownerread|ownerwrite|authread|authwrite",
            ],
        )
        .facts(yaml_fields),
        Step::new(
            "nvreadpublic before write",
            "tpm2_nvreadpublic",
            &[nv_index],
        )
        .facts(yaml_fields),
        Step::new(
            "nvwrite",
            "tpm2_nvwrite",
            &[nv_index, "-C", "o", "-i", "nv.dat"],
        ),
        Step::new(
            "nvread",
            "tpm2_nvread",
            &[nv_index, "-C", "o", "-s", "32", "-o", "nv.out"],
        )
        .facts(file_bytes("nv.out")),
        // The name now hashes the public area with TPMA_NV_WRITTEN set.
        Step::new("nvreadpublic after write", "tpm2_nvreadpublic", &[nv_index]).facts(yaml_fields),
        Step::new(
            "startauthsession",
            "tpm2_startauthsession",
            &["--policy-session", "-S", "session.ctx"],
        ),
        // The policy digest: H(0..0 || TPM_CC_PolicyPCR || selection || H(PCR 0 || PCR 16)),
        // from PCR values both sides agree on.
        Step::new(
            "policypcr",
            "tpm2_policypcr",
            &["-S", "session.ctx", "-l", "sha256:0,16", "-L", "policy.dat"],
        )
        .facts(policy_digest(Some("policy.dat"))),
        Step::new(
            "flushcontext session",
            "tpm2_flushcontext",
            &["session.ctx"],
        ),
        // A secret sealed to that policy (keyed-hash object without userWithAuth).
        Step::new(
            "create sealed",
            "tpm2_create",
            &[
                "-C",
                "primary.ctx",
                "-L",
                "policy.dat",
                "-i",
                "secret.txt",
                "-u",
                "seal.pub",
                "-r",
                "seal.priv",
            ],
        )
        .facts(public_area),
        flush_transient("create sealed"),
        Step::new(
            "load sealed",
            "tpm2_load",
            &[
                "-C",
                "primary.ctx",
                "-u",
                "seal.pub",
                "-r",
                "seal.priv",
                "-c",
                "seal.ctx",
            ],
        ),
        flush_transient("load sealed"),
        Step::new(
            "startauthsession for unseal",
            "tpm2_startauthsession",
            &["--policy-session", "-S", "unseal-session.ctx"],
        ),
        Step::new(
            "policypcr for unseal",
            "tpm2_policypcr",
            &["-S", "unseal-session.ctx", "-l", "sha256:0,16"],
        )
        .facts(policy_digest(None)),
        Step::new(
            "unseal with the policy session",
            "tpm2_unseal",
            &[
                "-c",
                "seal.ctx",
                "-p",
                "session:unseal-session.ctx",
                "-o",
                "unsealed.dat",
            ],
        )
        .facts(file_bytes("unsealed.dat")),
        Step::new(
            "flushcontext unseal session",
            "tpm2_flushcontext",
            &["unseal-session.ctx"],
        ),
        flush_transient("unseal with the policy session"),
        Step::new(
            "unseal with a password",
            "tpm2_unseal",
            &["-c", "seal.ctx", "-o", "unsealed-by-password.dat"],
        )
        .fails_with(RC_AUTH_UNAVAILABLE),
        flush_transient("unseal with a password"),
        Step::new(
            "evictcontrol persist",
            "tpm2_evictcontrol",
            &["-C", "o", "-c", "primary.ctx", persistent],
        )
        .facts(yaml_fields),
        flush_transient("evictcontrol persist"),
        Step::new(
            "getcap handles-persistent after persist",
            "tpm2_getcap",
            &["handles-persistent"],
        )
        .facts(handle_listed(persistent)),
        Step::new(
            "evictcontrol evict",
            "tpm2_evictcontrol",
            &["-C", "o", "-c", persistent],
        )
        .facts(yaml_fields),
        Step::new(
            "getcap handles-persistent after evict",
            "tpm2_getcap",
            &["handles-persistent"],
        )
        .facts(handle_listed(persistent)),
        Step::new("nvundefine", "tpm2_nvundefine", &[nv_index, "-C", "o"]),
        Step::new(
            "getcap handles-nv-index after undefine",
            "tpm2_getcap",
            &["handles-nv-index"],
        )
        .facts(handle_listed(nv_index)),
        flush_transient("the sequence"),
    ]);
    for (label, capability) in [
        ("getcap handles-transient at the end", "handles-transient"),
        (
            "getcap handles-loaded-session at the end",
            "handles-loaded-session",
        ),
        (
            "getcap handles-saved-session at the end",
            "handles-saved-session",
        ),
    ] {
        steps.push(Step::new(label, "tpm2_getcap", &[capability]).facts(handle_count));
    }
    steps
}

/// `tpm2_flushcontext -t`: flushes the transient objects the previous tool left loaded.
/// tpm2_quote of SHA-256 PCRs 0, 1 and 16 with the key `{prefix}key.ctx` and the test's
/// nonce, into `{prefix}quote.msg`, `.sig` and `.pcrs`.
fn quote_step(label: &str, prefix: &str) -> Step {
    let (key, msg, sig, pcrs) = quote_files(prefix);
    Step::new(
        label,
        "tpm2_quote",
        &[
            "-c",
            &key,
            "-l",
            "sha256:0,1,16",
            "-q",
            NONCE,
            "-m",
            &msg,
            "-s",
            &sig,
            "-o",
            &pcrs,
            "-g",
            "sha256",
        ],
    )
    .facts(quote_output)
}

/// tpm2_checkquote, in software (OpenSSL), of what [`quote_step`] wrote for `prefix`, against
/// the PEM `{prefix}key.pem`: the signature over the attestation, the nonce in it, and the
/// PCR digest against the `.pcrs` file.
fn checkquote_step(label: &str, prefix: &str) -> Step {
    let (_, msg, sig, pcrs) = quote_files(prefix);
    let pem = format!("{prefix}key.pem");
    Step::new(
        label,
        "tpm2_checkquote",
        &[
            "-u", &pem, "-m", &msg, "-s", &sig, "-f", &pcrs, "-g", "sha256", "-q", NONCE,
        ],
    )
    .files_only()
    .facts(quote_output)
}

/// The key context and the quote's message, signature and PCR files for `prefix`.
fn quote_files(prefix: &str) -> (String, String, String, String) {
    (
        format!("{prefix}key.ctx"),
        format!("{prefix}quote.msg"),
        format!("{prefix}quote.sig"),
        format!("{prefix}quote.pcrs"),
    )
}

fn flush_transient(after: &str) -> Step {
    Step::new(
        &format!("flushcontext -t after {after}"),
        "tpm2_flushcontext",
        &["-t"],
    )
}

/// Flattens tpm2-tools' YAML output into (path, value) pairs in order: a value's path is its
/// enclosing keys and its own joined by '/'; a list item `- x` is a value at its parent's
/// path, and `- key: value` a value at `parent/key`. Keys are trimmed (`tpm2_pcrread` prints
/// `0 : 0x...`). Enough for what tpm2-tools print; not a YAML parser.
pub fn flatten(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        while open.last().is_some_and(|(i, _)| *i >= indent) {
            open.pop();
        }
        let parent = open
            .iter()
            .map(|(_, k)| k.as_str())
            .collect::<Vec<_>>()
            .join("/");
        let join = |key: &str| {
            if parent.is_empty() {
                key.to_string()
            } else {
                format!("{parent}/{key}")
            }
        };
        let (item, body) = match trimmed.strip_prefix("- ") {
            Some(rest) => (true, rest.trim()),
            None => (false, trimmed),
        };
        match split_key(body) {
            Some((key, "")) if !item => open.push((indent, key.to_string())),
            Some((key, value)) => out.push((join(key), value.to_string())),
            None => out.push((parent.clone(), body.to_string())),
        }
    }
    out
}

/// `key: value` or `key:` (value ""), split at the first colon followed by a space or the end.
fn split_key(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let at = (0..bytes.len())
        .find(|&i| bytes[i] == b':' && bytes.get(i + 1).is_none_or(|&b| b == b' '))?;
    Some((line[..at].trim(), line[at + 1..].trim()))
}

fn lookup<'a>(pairs: &'a [(String, String)], path: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v.as_str())
}

fn yaml(out: &StepOutput) -> Vec<(String, String)> {
    flatten(out.stdout)
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// See `SPEC_FIXED_PROPERTIES`. A fixed property that is missing is the value "absent".
fn properties_fixed(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let pairs = yaml(out);
    let mut facts = Vec::new();
    for name in SPEC_FIXED_PROPERTIES {
        let value = match (
            lookup(&pairs, &format!("{name}/raw")),
            lookup(&pairs, &format!("{name}/value")),
        ) {
            (Some(raw), Some(value)) => format!("{raw} ({value})"),
            (Some(raw), None) => raw.to_string(),
            _ => "absent".to_string(),
        };
        facts.push(agree(name, value));
    }
    for (path, raw) in &pairs {
        let Some(name) = path.strip_suffix("/raw") else {
            continue;
        };
        if SPEC_FIXED_PROPERTIES.contains(&name) {
            continue;
        }
        let value = match lookup(&pairs, &format!("{name}/value")) {
            Some(value) => format!("{raw} ({value})"),
            None => raw.clone(),
        };
        facts.push(info(name, value));
    }
    if facts.len() == SPEC_FIXED_PROPERTIES.len() {
        return Err("no TPM2_PT_* properties in the output".into());
    }
    Ok(facts)
}

/// See `USED_ALGORITHMS`: each one's TPMA_ALGORITHM bits; which others are listed is the
/// implementation's.
fn algorithms(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let pairs = yaml(out);
    let mut facts = Vec::new();
    for alg in USED_ALGORITHMS {
        let bits: Vec<String> = pairs
            .iter()
            .filter_map(|(p, v)| {
                let field = p.strip_prefix(alg)?.strip_prefix('/')?;
                Some(format!("{field}={v}"))
            })
            .collect();
        let value = if bits.is_empty() {
            "absent".to_string()
        } else {
            bits.join(" ")
        };
        facts.push(agree(alg, value));
    }
    let mut listed: Vec<&str> = pairs
        .iter()
        .filter_map(|(p, _)| p.strip_suffix("/value"))
        .collect();
    listed.dedup();
    facts.push(info("listed", listed.join(" ")));
    Ok(facts)
}

/// See `USED_COMMANDS`.
fn commands(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let pairs = yaml(out);
    let mut facts = Vec::new();
    for cc in USED_COMMANDS {
        let value = match lookup(&pairs, &format!("{cc}/value")) {
            None => "not listed".to_string(),
            Some(_) => format!(
                "listed, cHandles {}, rHandle {}",
                lookup(&pairs, &format!("{cc}/cHandles")).unwrap_or("?"),
                lookup(&pairs, &format!("{cc}/rHandle")).unwrap_or("?"),
            ),
        };
        facts.push(agree(cc, value));
    }
    let count = pairs.iter().filter(|(p, _)| p.ends_with("/value")).count();
    facts.push(info("commands listed", count.to_string()));
    Ok(facts)
}

/// NIST P-256, which the keys use, must be listed with its TPM_ECC_CURVE value (3); the other
/// curves are the implementation's.
fn ecc_curves(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let pairs = yaml(out);
    let p256 = "TPM2_ECC_NIST_P256";
    let mut facts = vec![agree(p256, lookup(&pairs, p256).unwrap_or("absent"))];
    let listed: Vec<&str> = pairs.iter().map(|(p, _)| p.as_str()).collect();
    facts.push(info("listed", listed.join(" ")));
    Ok(facts)
}

/// The sha256 bank with all 24 PCRs (PC Client profile); which other banks are allocated is
/// the implementation's (and the platform's).
fn pcr_banks(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let pairs = yaml(out);
    let mut facts = vec![agree(
        "sha256 bank",
        lookup(&pairs, "selected-pcrs/sha256").unwrap_or("not allocated"),
    )];
    let banks: Vec<&str> = pairs
        .iter()
        .filter_map(|(p, _)| p.strip_prefix("selected-pcrs/"))
        .collect();
    if banks.is_empty() {
        return Err("no selected-pcrs in the output".into());
    }
    facts.push(info("banks", banks.join(" ")));
    Ok(facts)
}

/// Random bytes differ; how many the TPM gave does not.
fn random_bytes(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let text = out.stdout.trim();
    if !is_hex(text) || !text.len().is_multiple_of(2) {
        return Err(format!("not a hex string: {text:?}"));
    }
    Ok(vec![agree("bytes", (text.len() / 2).to_string())])
}

/// `tpm2_pcrread`'s `bank: index: value` lines: sha256 must agree, other banks where both
/// TPMs allocate them.
fn pcr_values(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let facts: Vec<Fact> = yaml(out)
        .into_iter()
        .filter_map(|(path, value)| {
            let (bank, index) = path.split_once('/')?;
            let key = format!("{bank}:{index}");
            Some(if bank == "sha256" {
                agree(key, value)
            } else {
                where_both(key, value)
            })
        })
        .collect();
    if !facts.iter().any(|f| f.key.starts_with("sha256:")) {
        return Err("no sha256 PCR values in the output".into());
    }
    Ok(facts)
}

/// `tpm2_pcrevent`'s digests of the event file, one per allocated bank.
fn event_digests(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let facts: Vec<Fact> = yaml(out)
        .into_iter()
        .map(|(bank, digest)| {
            let key = format!("{bank} digest");
            if bank == "sha256" {
                agree(key, digest)
            } else {
                where_both(key, digest)
            }
        })
        .collect();
    if !facts.iter().any(|f| f.key == "sha256 digest") {
        return Err("no sha256 digest in the output".into());
    }
    Ok(facts)
}

/// `tpm2_hash` of `long.bin`: the digest on stdout, and from the ticket file (a marshalled
/// TPMT_TK_HASHCHECK, Part 2 §10.7.6) the tag and the hierarchy, compared: a safe first
/// block in the owner hierarchy gets a real ticket (not the NULL ticket, 8024 40000007).
/// The HMAC's size is the TPM's choice of hash (swtpm: SHA-512), shown only.
fn sequence_digest(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let mut facts = hex_stdout("sha256")(out)?;
    let ticket = out.file("long.ticket")?;
    let head = ticket
        .get(..8)
        .ok_or_else(|| format!("a ticket of {} octets", ticket.len()))?;
    let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
    facts.push(agree(
        "ticket tag, hierarchy",
        format!("{} {}", &hex[..4], &hex[4..12]),
    ));
    facts.push(info("ticket HMAC size", format!("0x{}", &hex[12..])));
    Ok(facts)
}

/// A hex string on stdout (`tpm2_hash --hex`).
fn hex_stdout(what: &'static str) -> impl Fn(&StepOutput) -> Result<Vec<Fact>, String> {
    move |out| {
        let text = out.stdout.trim();
        if !is_hex(text) {
            return Err(format!("not a hex string: {text:?}"));
        }
        Ok(vec![agree(what, text.to_lowercase())])
    }
}

/// A public area's fields but those of `KEY_DEPENDENT_FIELDS`: what the template and the
/// tool's defaults put there (type, nameAlg, attributes, curve, schemes, symmetric
/// parameters, authPolicy) is the same for any TPM.
fn public_area(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let pairs = yaml(out);
    let facts: Vec<Fact> = pairs
        .into_iter()
        .filter(|(path, _)| {
            let top = path.split('/').next().unwrap_or_default();
            !KEY_DEPENDENT_FIELDS.contains(&top)
        })
        .map(|(path, value)| agree(path, value))
        .collect();
    if !facts.iter().any(|f| f.key.starts_with("type")) {
        return Err("no public area (type) in the output".into());
    }
    Ok(facts)
}

/// Every field of the YAML output, for outputs that hold no key material
/// (`tpm2_nvdefine`, `tpm2_nvreadpublic`, `tpm2_evictcontrol`).
fn yaml_fields(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let facts: Vec<Fact> = yaml(out)
        .into_iter()
        .map(|(path, value)| agree(path, value))
        .collect();
    if facts.is_empty() {
        return Err("no output".into());
    }
    Ok(facts)
}

/// An output file's bytes, in hex.
/// Whether `tpm2_rsadecrypt`'s output file `name` holds exactly `RSA_PLAINTEXT`: the one
/// deterministic outcome of a randomized encryption followed by its decryption.
fn decrypts_to_plaintext(name: String) -> impl Fn(&StepOutput) -> Result<Vec<Fact>, String> {
    move |out| {
        let data = out.file(&name)?;
        let value = if data == RSA_PLAINTEXT {
            "the plaintext".to_string()
        } else {
            format!("other data: {}", hex(&data))
        };
        Ok(vec![agree(format!("{name} holds"), value)])
    }
}

fn file_bytes(name: &'static str) -> impl Fn(&StepOutput) -> Result<Vec<Fact>, String> {
    move |out| Ok(vec![agree(format!("{name} bytes"), hex(&out.file(name)?))])
}

/// `tpm2_quote` and `tpm2_checkquote` print the quoted PCR values and the digest computed
/// from them (`calcDigest`); the attestation blob and the signature are not deterministic.
fn quote_output(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let facts: Vec<Fact> = yaml(out)
        .into_iter()
        .filter(|(path, _)| path.starts_with("pcrs/") || path == "calcDigest")
        .map(|(path, value)| agree(path, value))
        .collect();
    if !facts.iter().any(|f| f.key.starts_with("pcrs/sha256/")) {
        return Err("no quoted sha256 PCR values in the output".into());
    }
    Ok(facts)
}

/// The quote's TPMS_ATTEST as `tpm2_print` reads it: magic, type, extraData (the nonce) and
/// the quote itself (PCR selection and digest) are deterministic. qualifiedSigner names the
/// key; clockInfo and firmwareVersion are the TPM's (and obfuscated for keys outside the
/// endorsement and platform hierarchies).
fn attestation(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let pairs = yaml(out);
    let mut facts = Vec::new();
    for field in ["magic", "type", "extraData"] {
        facts.push(agree(field, lookup(&pairs, field).unwrap_or("absent")));
    }
    facts.extend(
        pairs
            .iter()
            .filter(|(path, _)| path.starts_with("attested/"))
            .map(|(path, value)| agree(path.clone(), value.clone())),
    );
    if !facts.iter().any(|f| f.key == "attested/quote/pcrDigest") {
        return Err("no attested/quote/pcrDigest in the output".into());
    }
    Ok(facts)
}

/// `tpm2_policypcr` prints the session's policy digest; with `-L` it also writes it to
/// `file`, which must hold the same bytes.
fn policy_digest(file: Option<&'static str>) -> impl Fn(&StepOutput) -> Result<Vec<Fact>, String> {
    move |out| {
        let text = out.stdout.trim().to_lowercase();
        if !is_hex(&text) {
            return Err(format!("not a policy digest: {text:?}"));
        }
        if let Some(file) = file {
            let written = hex(&out.file(file)?);
            if written != text {
                return Err(format!("{file} holds {written}, stdout says {text}"));
            }
        }
        Ok(vec![agree("policy digest", text)])
    }
}

/// Whether `handle` is in a `tpm2_getcap handles-*` list (other handles, such as NV indices
/// a manufacturer provisions, are the TPM's own).
fn handle_listed(handle: &'static str) -> impl Fn(&StepOutput) -> Result<Vec<Fact>, String> {
    move |out| {
        let listed: Vec<String> = yaml(out).into_iter().map(|(_, v)| v).collect();
        let wanted = u32::from_str_radix(handle.trim_start_matches("0x"), 16)
            .map_err(|e| format!("{handle}: {e}"))?;
        let present = listed.iter().any(|h| {
            u32::from_str_radix(h.trim_start_matches("0x"), 16).is_ok_and(|h| h == wanted)
        });
        Ok(vec![
            agree(
                format!("{handle} listed"),
                if present { "yes" } else { "no" },
            ),
            info(
                "handles",
                if listed.is_empty() {
                    "(none)".to_string()
                } else {
                    listed.join(" ")
                },
            ),
        ])
    }
}

/// How many handles a `tpm2_getcap handles-*` list holds.
fn handle_count(out: &StepOutput) -> Result<Vec<Fact>, String> {
    let listed: Vec<String> = yaml(out).into_iter().map(|(_, v)| v).collect();
    Ok(vec![agree("count", listed.len().to_string())])
}

/// The response code a failed tool names: `ERROR: Esys_Unseal(0x12F) - tpm:...`, or failing
/// that ESYS's `ErrorCode (0x0000012f)`.
pub fn response_code(stderr: &str) -> Option<u32> {
    let tool_line = stderr.lines().find_map(|line| {
        let rest = line.strip_prefix("ERROR: ")?;
        let (_, after) = rest.split_once("(0x")?;
        let (code, _) = after.split_once(')')?;
        u32::from_str_radix(code, 16).ok()
    });
    tool_line.or_else(|| {
        stderr.lines().find_map(|line| {
            let (_, after) = line.split_once("ErrorCode (0x")?;
            let (code, _) = after.split_once(')')?;
            u32::from_str_radix(code, 16).ok()
        })
    })
}

/// One step as it ran against one TPM.
#[derive(Debug)]
pub struct StepRun {
    pub label: String,
    pub command: String,
    pub expect: Expect,
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
    pub facts: Vec<Fact>,
    /// What went wrong on this side: an unexpected outcome, output the facts could not be read
    /// from.
    pub problems: Vec<String>,
    pub timed_out: bool,
}

/// The sequence as it ran against one TPM.
#[derive(Debug)]
pub struct SideRun {
    pub name: String,
    pub tcti: String,
    pub dir: PathBuf,
    pub steps: Vec<StepRun>,
    pub elapsed: Duration,
}

impl SideRun {
    /// Every fact of every step, keyed `<step label>: <fact>`, in sequence order; each step's
    /// outcome is a fact (`<step label>: outcome`) that must agree.
    pub fn facts(&self) -> Vec<Fact> {
        let mut facts = Vec::new();
        for step in &self.steps {
            facts.push(agree(
                format!("{}: outcome", step.label),
                step.outcome.to_string(),
            ));
            facts.extend(step.facts.iter().map(|f| Fact {
                key: format!("{}: {}", step.label, f.key),
                ..f.clone()
            }));
        }
        facts
    }

    /// Every problem of every step, each with its step.
    pub fn problems(&self) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(|s| {
                s.problems
                    .iter()
                    .map(move |p| format!("{}: {} ({}): {p}", self.name, s.label, s.command))
            })
            .collect()
    }
}

const TIMED_OUT: &str = "timed out after";

/// How long one tool may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `sequence()` against `tpm` in `dir` (emptied first, then given `INPUTS`), one tool at
/// a time, each with stdout and stderr kept in `dir` (`NN-<tool>.stdout`, `.stderr`), and
/// reads each successful step's facts. A failed step is recorded and the next one runs; but
/// after a step that timed out (`STEP_TIMEOUT`) the TPM is taken to hang, and the remaining
/// steps are recorded as not run, so that a run takes at most one timeout.
pub fn run_sequence(tpm: &TpmUnderTest, dir: &Path) -> Result<SideRun, String> {
    let start = Instant::now();
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, bytes) in INPUTS {
        fs::write(dir.join(name), bytes).map_err(|e| format!("writing {name}: {e}"))?;
    }
    let tcti = tpm.tcti.to_string();
    let mut steps: Vec<StepRun> = Vec::new();
    let mut hung: Option<String> = None;
    for (i, step) in sequence().into_iter().enumerate() {
        let run = match &hung {
            None => run_step(i + 1, &step, &tcti, dir),
            Some(why) => not_run(&step, why),
        };
        if hung.is_none() && run.timed_out {
            hung = Some(format!(
                "not run: step {} ({}) timed out",
                i + 1,
                step.label
            ));
        }
        steps.push(run);
    }
    Ok(SideRun {
        name: tpm.name.clone(),
        tcti,
        dir: dir.to_path_buf(),
        steps,
        elapsed: start.elapsed(),
    })
}

fn not_run(step: &Step, why: &str) -> StepRun {
    StepRun {
        label: step.label.clone(),
        command: step.command_line(),
        expect: step.expect,
        outcome: Outcome::Failed(why.to_string()),
        elapsed: Duration::ZERO,
        stdout: String::new(),
        stderr: String::new(),
        facts: Vec::new(),
        // The step that timed out is the problem; the outcome `why` shows on each step.
        problems: Vec::new(),
        timed_out: false,
    }
}

fn run_step(number: usize, step: &Step, tcti: &str, dir: &Path) -> StepRun {
    let start = Instant::now();
    let stem = format!("{number:02}-{}", step.tool);
    let stdout_path = dir.join(format!("{stem}.stdout"));
    let stderr_path = dir.join(format!("{stem}.stderr"));
    let outcome = spawn_and_wait(step, tcti, dir, &stdout_path, &stderr_path);
    let elapsed = start.elapsed();
    let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    let outcome = outcome.unwrap_or_else(Outcome::Failed);
    let timed_out = matches!(&outcome, Outcome::Failed(why) if why.starts_with(TIMED_OUT));
    let mut problems = Vec::new();
    if !step.expect.met_by(&outcome) {
        problems.push(format!(
            "expected {}, got {outcome}; stderr:\n{}",
            step.expect,
            indent(&stderr)
        ));
    }
    let mut facts = Vec::new();
    if outcome == Outcome::Success {
        if let Some(extract) = &step.extract {
            let output = StepOutput {
                stdout: &stdout,
                stderr: &stderr,
                dir,
            };
            match extract(&output) {
                Ok(f) => facts = f,
                Err(e) => problems.push(format!(
                    "reading its facts: {e}; stdout:\n{}",
                    indent(&stdout)
                )),
            }
        }
    }
    StepRun {
        label: step.label.clone(),
        command: step.command_line(),
        expect: step.expect,
        outcome,
        elapsed,
        stdout,
        stderr,
        facts,
        problems,
        timed_out,
    }
}

fn spawn_and_wait(
    step: &Step,
    tcti: &str,
    dir: &Path,
    stdout: &Path,
    stderr: &Path,
) -> Result<Outcome, String> {
    let file = |p: &Path| fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut command = Command::new(step.tool);
    if step.tpm {
        command.args(["-T", tcti]);
    }
    command
        .args(&step.args)
        .current_dir(dir)
        .env_remove("TPM2TOOLS_TCTI")
        .env_remove("TPM2TOOLS_ENABLE_ERRATA")
        .stdin(Stdio::null())
        .stdout(file(stdout)?)
        .stderr(file(stderr)?);
    let mut child = command
        .spawn()
        .map_err(|e| format!("running {}: {e}", step.tool))?;
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > STEP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Outcome::Failed(format!("{TIMED_OUT} {STEP_TIMEOUT:?}")));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    };
    if status.success() {
        return Ok(Outcome::Success);
    }
    let err = fs::read_to_string(stderr).unwrap_or_default();
    Ok(match response_code(&err) {
        Some(rc) => Outcome::Rc(rc),
        None => Outcome::Failed(format!("{status}")),
    })
}

fn indent(text: &str) -> String {
    let text = text.trim_end();
    if text.is_empty() {
        return "    (empty)".to_string();
    }
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fact on which the two sides differ (None: that side does not report it).
#[derive(Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub key: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// Two runs side by side.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Facts both sides report with the same value (key, value).
    pub agreed: Vec<(String, String)>,
    pub mismatches: Vec<Mismatch>,
    /// `Kind::AgreeWhereBoth` facts only one side reports (key, side A's, side B's).
    pub one_sided: Vec<(String, Option<String>, Option<String>)>,
    /// `Kind::Info` facts (key, side A's, side B's).
    pub info: Vec<(String, Option<String>, Option<String>)>,
}

/// Compares every fact of `a` and `b` by key: `Kind::Agree` facts must be on both sides with
/// the same value, `Kind::AgreeWhereBoth` ones must agree where both have them, `Kind::Info`
/// ones are only collected. Keys keep `a`'s order, then `b`'s own.
pub fn compare(a: &SideRun, b: &SideRun) -> Comparison {
    let a_facts = a.facts();
    let b_facts = b.facts();
    let a_map: BTreeMap<&str, &Fact> = a_facts.iter().map(|f| (f.key.as_str(), f)).collect();
    let b_map: BTreeMap<&str, &Fact> = b_facts.iter().map(|f| (f.key.as_str(), f)).collect();
    let mut keys: Vec<&str> = a_facts.iter().map(|f| f.key.as_str()).collect();
    keys.extend(
        b_facts
            .iter()
            .map(|f| f.key.as_str())
            .filter(|k| !a_map.contains_key(k)),
    );
    let mut c = Comparison::default();
    for key in keys {
        let (fa, fb) = (a_map.get(key), b_map.get(key));
        let kind = fa.or(fb).map(|f| f.kind).unwrap_or(Kind::Agree);
        let (va, vb) = (fa.map(|f| f.value.clone()), fb.map(|f| f.value.clone()));
        match kind {
            Kind::Info => c.info.push((key.to_string(), va, vb)),
            Kind::AgreeWhereBoth if va.is_none() || vb.is_none() => {
                c.one_sided.push((key.to_string(), va, vb))
            }
            Kind::Agree | Kind::AgreeWhereBoth => {
                if va == vb {
                    c.agreed.push((key.to_string(), va.unwrap_or_default()));
                } else {
                    c.mismatches.push(Mismatch {
                        key: key.to_string(),
                        a: va,
                        b: vb,
                    });
                }
            }
        }
    }
    c
}

/// Merges consecutive facts `<prefix>:<n>`, `<prefix>:<n + 1>`, ... with one value into
/// `<prefix>:<first>-<last>` (PCR runs), for the report.
fn condense(facts: &[(String, String)]) -> Vec<(String, String)> {
    let numbered = |key: &str| -> Option<(String, u32)> {
        let (prefix, n) = key.rsplit_once(':')?;
        Some((prefix.to_string(), n.parse().ok()?))
    };
    let mut out: Vec<(String, String)> = Vec::new();
    // The run being built: prefix, first and last index, value.
    let mut run: Option<(String, u32, u32, String)> = None;
    let flush = |run: &mut Option<(String, u32, u32, String)>, out: &mut Vec<(String, String)>| {
        if let Some((prefix, first, last, value)) = run.take() {
            let key = if first == last {
                format!("{prefix}:{first}")
            } else {
                format!("{prefix}:{first}-{last}")
            };
            out.push((key, value));
        }
    };
    for (key, value) in facts {
        match numbered(key) {
            Some((prefix, n)) => {
                let extends = run
                    .as_ref()
                    .is_some_and(|(p, _, last, v)| *p == prefix && n == last + 1 && v == value);
                if extends {
                    if let Some(r) = run.as_mut() {
                        r.2 = n;
                    }
                } else {
                    flush(&mut run, &mut out);
                    run = Some((prefix, n, n, value.clone()));
                }
            }
            None => {
                flush(&mut run, &mut out);
                out.push((key.clone(), value.clone()));
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

fn shown(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(not reported)")
}

/// The report: the two TPMs, every step with both outcomes and times, every compared fact
/// with its value, the information-only facts side by side, then the problems and
/// mismatches (each with both sides' values).
pub fn report(a: &SideRun, b: &SideRun, c: &Comparison) -> String {
    let mut r = String::new();
    let mut line = |s: String| {
        r.push_str(&s);
        r.push('\n');
    };
    line(format!(
        "side A: {} ({}), scratch {}, {} steps in {:.2} s",
        a.name,
        a.tcti,
        a.dir.display(),
        a.steps.len(),
        a.elapsed.as_secs_f64()
    ));
    line(format!(
        "side B: {} ({}), scratch {}, {} steps in {:.2} s",
        b.name,
        b.tcti,
        b.dir.display(),
        b.steps.len(),
        b.elapsed.as_secs_f64()
    ));
    line("steps (outcome on A and B: ok, or the response code of an expected failure):".into());
    line(format!(
        "  {:>2} {:<6} {:<6} {:>5} {:>5}  step: command",
        "#", "A", "B", "A ms", "B ms"
    ));
    for (i, sa) in a.steps.iter().enumerate() {
        let sb = b.steps.get(i);
        line(format!(
            "  {:>2} {:<6} {:<6} {:>5} {:>5}  {}: {}",
            i + 1,
            sa.outcome.short(),
            sb.map(|s| s.outcome.short()).unwrap_or_default(),
            sa.elapsed.as_millis(),
            sb.map(|s| s.elapsed.as_millis()).unwrap_or_default(),
            sa.label,
            sa.command
        ));
    }
    line(format!(
        "compared facts, both sides equal ({}; runs of PCRs with one value shown as one line):",
        c.agreed.len()
    ));
    for (key, value) in condense(&c.agreed) {
        line(format!("  {key} = {value}"));
    }
    if !c.one_sided.is_empty() {
        line(format!(
            "reported by one side only, not compared ({}):",
            c.one_sided.len()
        ));
        for (key, va, vb) in &c.one_sided {
            line(format!("  {key}: A {} / B {}", shown(va), shown(vb)));
        }
    }
    line(format!(
        "implementation-specific, not compared ({}):",
        c.info.len()
    ));
    for (key, va, vb) in &c.info {
        if va == vb {
            line(format!("  {key}: both {}", shown(va)));
        } else {
            line(format!("  {key}: A {} / B {}", shown(va), shown(vb)));
        }
    }
    let problems: Vec<String> = a.problems().into_iter().chain(b.problems()).collect();
    if !problems.is_empty() {
        line(format!("problems ({}):", problems.len()));
        for p in &problems {
            line(format!("  {p}"));
        }
    }
    if !c.mismatches.is_empty() {
        line(format!("mismatches ({}):", c.mismatches.len()));
        for m in &c.mismatches {
            line(format!("  {}", m.key));
            line(format!("    A ({}): {}", a.name, shown(&m.a)));
            line(format!("    B ({}): {}", b.name, shown(&m.b)));
        }
    }
    line(format!(
        "{} facts compared: {} agree, {} mismatches; {} problems",
        c.agreed.len() + c.mismatches.len(),
        c.agreed.len(),
        c.mismatches.len(),
        problems.len()
    ));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_reads_tpm2_tools_yaml() {
        let pcrread = "  sha256:\n    0 : 0x00\n    16: 0xAB\n";
        assert_eq!(
            flatten(pcrread),
            vec![
                ("sha256/0".to_string(), "0x00".to_string()),
                ("sha256/16".to_string(), "0xAB".to_string())
            ]
        );
        let getcap = "TPM2_PT_FAMILY_INDICATOR:\n  raw: 0x322E3000\n  value: \"2.0\"\n\
                      TPM2_PT_LEVEL:\n  raw: 0\n";
        let pairs = flatten(getcap);
        assert_eq!(
            lookup(&pairs, "TPM2_PT_FAMILY_INDICATOR/value"),
            Some("\"2.0\"")
        );
        assert_eq!(lookup(&pairs, "TPM2_PT_LEVEL/raw"), Some("0"));
        let banks = "selected-pcrs:\n  - sha1: [ 0, 1 ]\n  - sha256: [ 0, 1 ]\n";
        assert_eq!(
            lookup(&flatten(banks), "selected-pcrs/sha256"),
            Some("[ 0, 1 ]")
        );
        let handles = "- 0x81000001\n- 0x81000002\n";
        assert_eq!(
            flatten(handles),
            vec![
                (String::new(), "0x81000001".to_string()),
                (String::new(), "0x81000002".to_string())
            ]
        );
        let nv = "0x1500016:\n  name: 000b5e\n  hash algorithm:\n    friendly: sha256\n";
        assert_eq!(
            lookup(&flatten(nv), "0x1500016/hash algorithm/friendly"),
            Some("sha256")
        );
        let attest = "attested:\n  quote:\n    pcrSelect:\n      pcrSelections:\n        0:\n          hash: 11 (sha256)\n";
        assert_eq!(
            lookup(
                &flatten(attest),
                "attested/quote/pcrSelect/pcrSelections/0/hash"
            ),
            Some("11 (sha256)")
        );
    }

    #[test]
    fn response_codes_are_read_from_stderr() {
        let stderr = "WARNING:esys:src/tss2-esys/api/Esys_Unseal.c:295:Esys_Unseal_Finish() Received TPM Error \n\
            ERROR:esys:src/tss2-esys/api/Esys_Unseal.c:98:Esys_Unseal() Esys Finish ErrorCode (0x0000012f) \n\
            ERROR: Esys_Unseal(0x12F) - tpm:error(2.0): authValue or authPolicy is not available for selected entity\n\
            ERROR: Unable to run tpm2_unseal\n";
        assert_eq!(response_code(stderr), Some(0x12F));
        assert_eq!(response_code("ERROR: Unable to run tpm2_x\n"), None);
    }

    fn side(facts: Vec<Fact>) -> SideRun {
        SideRun {
            name: "t".into(),
            tcti: String::new(),
            dir: PathBuf::new(),
            steps: vec![StepRun {
                label: "s".into(),
                command: String::new(),
                expect: Expect::Success,
                outcome: Outcome::Success,
                elapsed: Duration::ZERO,
                stdout: String::new(),
                stderr: String::new(),
                facts,
                problems: Vec::new(),
                timed_out: false,
            }],
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn every_kind_of_difference_is_reported() {
        let a = side(vec![
            agree("same", "1"),
            agree("differs", "1"),
            agree("only a", "1"),
            where_both("bank a only", "1"),
            where_both("bank both", "1"),
            info("vendor", "IBM"),
        ]);
        let b = side(vec![
            agree("same", "1"),
            agree("differs", "2"),
            where_both("bank both", "2"),
            info("vendor", "Parapet"),
        ]);
        let c = compare(&a, &b);
        let keys: Vec<&str> = c.mismatches.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["s: differs", "s: only a", "s: bank both"]);
        assert_eq!(c.mismatches[1].b, None);
        assert_eq!(c.one_sided.len(), 1);
        assert_eq!(c.info.len(), 1);
        assert!(c.agreed.iter().any(|(k, _)| k == "s: same"));
        assert!(c.agreed.iter().any(|(k, _)| k == "s: outcome"));
        let text = report(&a, &b, &c);
        assert!(text.contains("3 mismatches"), "{text}");
    }

    #[test]
    fn runs_of_equal_pcrs_are_condensed() {
        let facts: Vec<(String, String)> = [
            ("r: sha256:0", "0"),
            ("r: sha256:1", "0"),
            ("r: sha256:2", "1"),
            ("r: sha256:3", "0"),
            ("r: sha1:4", "0"),
            ("r: outcome", "success"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let keys: Vec<String> = condense(&facts).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "r: sha256:0-1",
                "r: sha256:2",
                "r: sha256:3",
                "r: sha1:4",
                "r: outcome"
            ]
        );
    }
}

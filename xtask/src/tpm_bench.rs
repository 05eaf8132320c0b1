//! `cargo xtask bench tpm`: TPM command throughput of Parapet's TPM (`devices::tpm`, served by
//! `vmm-lite tpm-server`) against swtpm (libtpms), side by side in one run.
//!
//! A small client here builds the commands by hand (TPM 2.0 Library Part 3 command layouts,
//! Part 2 structures) and sends the same octets to both: to swtpm raw over its TCP command
//! port, to ours inside the TPM simulator's framing (`TPM_SEND_COMMAND`, locality, size,
//! command; back: size, response, a UINT32 0), after powering the simulator on through its
//! platform port. Both TPMs get TPM2_Startup(CLEAR) (swtpm is started with `not-need-init`
//! only, as the tpm2-tools comparison starts it, so the same Startup applies to both), then
//! TPM2_CreatePrimary of an ECC P-256 ECDSA-SHA256 signing key under the owner hierarchy.
//! Each round times `EXTENDS` × TPM2_PCR_Extend(16, one SHA-256 digest) and `SIGNS` ×
//! TPM2_Sign(key, a 32-octet digest, ECDSA-SHA256, the NULL hashcheck ticket), each command
//! authorized with an empty password session; every response code must be TPM_RC_SUCCESS.
//! Rounds alternate (ours, swtpm, ours, swtpm, …) so drift hits both; medians are reported,
//! with ratio = ours / swtpm in commands per second (above 1: ours is faster).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::build;

const ROUNDS: usize = 5;
const EXTENDS: usize = 10_000;
const SIGNS: usize = 500;
/// How long a server may take to listen.
const READY: Duration = Duration::from_secs(10);
/// A response this long would be no TPM response (MAX_RESPONSE_SIZE is a few KiB).
const MAX_RESPONSE: usize = 1 << 16;

// Part 2 constants.
const TPM_ST_NO_SESSIONS: u16 = 0x8001;
const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_ST_HASHCHECK: u16 = 0x8024;
const TPM_CC_STARTUP: u32 = 0x144;
const TPM_CC_CREATE_PRIMARY: u32 = 0x131;
const TPM_CC_PCR_EXTEND: u32 = 0x182;
const TPM_CC_SIGN: u32 = 0x15D;
const TPM_SU_CLEAR: u16 = 0x0000;
const TPM_RH_OWNER: u32 = 0x4000_0001;
const TPM_RH_NULL: u32 = 0x4000_0007;
const TPM_RS_PW: u32 = 0x4000_0009;
const TPM_ALG_SHA256: u16 = 0x000B;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ALG_ECDSA: u16 = 0x0018;
const TPM_ALG_ECC: u16 = 0x0023;
const TPM_ECC_NIST_P256: u16 = 0x0003;
/// TPMA_OBJECT (Part 2 §8.3): fixedTPM (1), fixedParent (4), sensitiveDataOrigin (5),
/// userWithAuth (6), sign (18).
const SIGNING_KEY_ATTRIBUTES: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 18);
/// TPM_RC_RETRY (TPM_RC_WARN + 0x022).
const TPM_RC_RETRY: u32 = 0x922;
/// Retries allowed in one run, over every command.
const MAX_RETRIES: usize = 1000;
/// The simulator protocol's codes (vmm-lite's `tpm_server::protocol`).
const TPM_SIGNAL_POWER_ON: u32 = 1;
const TPM_SEND_COMMAND: u32 = 8;
const TPM_SIGNAL_NV_ON: u32 = 11;

/// A command: header (tag, commandSize, commandCode), then `body`.
fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(10 + body.len());
    c.extend_from_slice(&tag.to_be_bytes());
    c.extend_from_slice(&(10 + body.len() as u32).to_be_bytes());
    c.extend_from_slice(&cc.to_be_bytes());
    c.extend_from_slice(body);
    c
}

/// A command with a handle area and one empty password session (Part 1 §19.6.4: a
/// TPMS_AUTH_COMMAND of TPM_RS_PW, empty nonce, continueSession, empty password).
fn with_password(cc: u32, handle: u32, params: &[u8]) -> Vec<u8> {
    let mut body = handle.to_be_bytes().to_vec();
    body.extend_from_slice(&9u32.to_be_bytes());
    body.extend_from_slice(&TPM_RS_PW.to_be_bytes());
    body.extend_from_slice(&[0, 0, 0x01, 0, 0]);
    body.extend_from_slice(params);
    command(TPM_ST_SESSIONS, cc, &body)
}

/// TPM2_Startup(TPM_SU_CLEAR) (Part 3 §9.3).
fn startup() -> Vec<u8> {
    command(
        TPM_ST_NO_SESSIONS,
        TPM_CC_STARTUP,
        &TPM_SU_CLEAR.to_be_bytes(),
    )
}

/// TPM2_CreatePrimary (Part 3 §24.1) under TPM_RH_OWNER: empty TPM2B_SENSITIVE_CREATE, a
/// TPMT_PUBLIC (Part 2 §12.2.4) of an ECC P-256 key with scheme ECDSA-SHA256, symmetric and
/// kdf NULL, empty unique; empty outsideInfo, no creation PCRs.
fn create_primary() -> Vec<u8> {
    let mut public = Vec::new();
    public.extend_from_slice(&TPM_ALG_ECC.to_be_bytes());
    public.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    public.extend_from_slice(&SIGNING_KEY_ATTRIBUTES.to_be_bytes());
    public.extend_from_slice(&[0, 0]); // authPolicy
    public.extend_from_slice(&TPM_ALG_NULL.to_be_bytes()); // symmetric
    public.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes()); // scheme
    public.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes()); // scheme's hash
    public.extend_from_slice(&TPM_ECC_NIST_P256.to_be_bytes());
    public.extend_from_slice(&TPM_ALG_NULL.to_be_bytes()); // kdf
    public.extend_from_slice(&[0, 0, 0, 0]); // unique: empty x, y
    let mut params = vec![0, 4, 0, 0, 0, 0]; // TPM2B_SENSITIVE_CREATE: empty userAuth, data
    params.extend_from_slice(&(public.len() as u16).to_be_bytes());
    params.extend_from_slice(&public);
    params.extend_from_slice(&[0, 0]); // outsideInfo
    params.extend_from_slice(&[0, 0, 0, 0]); // creationPCR: TPML_PCR_SELECTION, count 0
    with_password(TPM_CC_CREATE_PRIMARY, TPM_RH_OWNER, &params)
}

/// TPM2_PCR_Extend (Part 3 §22.2) of PCR 16 with one SHA-256 digest (TPML_DIGEST_VALUES).
fn pcr_extend(digest: &[u8; 32]) -> Vec<u8> {
    let mut params = 1u32.to_be_bytes().to_vec();
    params.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    params.extend_from_slice(digest);
    with_password(TPM_CC_PCR_EXTEND, 16, &params)
}

/// TPM2_Sign (Part 3 §20.2) of a 32-octet digest, inScheme ECDSA-SHA256, validation the NULL
/// TPMT_TK_HASHCHECK (Part 2 §10.7.1: TPM_ST_HASHCHECK, TPM_RH_NULL, empty digest).
fn sign(key: u32, digest: &[u8; 32]) -> Vec<u8> {
    let mut params = 32u16.to_be_bytes().to_vec();
    params.extend_from_slice(digest);
    params.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes());
    params.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    params.extend_from_slice(&TPM_ST_HASHCHECK.to_be_bytes());
    params.extend_from_slice(&TPM_RH_NULL.to_be_bytes());
    params.extend_from_slice(&[0, 0]);
    with_password(TPM_CC_SIGN, key, &params)
}

/// A server process, killed and reaped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How commands reach a TPM.
enum Framing {
    /// swtpm's command port: a command, then a response whose header gives its size.
    Raw,
    /// The TPM simulator's protocol (`vmm-lite tpm-server`), locality 0.
    Mssim,
}

/// One TPM under measurement.
struct Tpm {
    name: &'static str,
    stream: TcpStream,
    framing: Framing,
    _server: Server,
    /// Commands answered TPM_RC_RETRY and sent again.
    retries: usize,
    /// swtpm's state directory, removed at the end.
    state: Option<PathBuf>,
}

impl Drop for Tpm {
    fn drop(&mut self) {
        if let Some(dir) = &self.state {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn read_u32(s: &mut TcpStream) -> Result<u32> {
    let mut b = [0; 4];
    s.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

impl Tpm {
    /// Sends `cmd`, returns the response; an error unless its response code is
    /// TPM_RC_SUCCESS.
    fn run(&mut self, cmd: &[u8], what: &str) -> Result<Vec<u8>> {
        let response = match self.framing {
            Framing::Raw => {
                self.stream.write_all(cmd)?;
                let mut header = [0u8; 10];
                self.stream.read_exact(&mut header)?;
                let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
                let size = size as usize;
                ensure!(
                    (10..=MAX_RESPONSE).contains(&size),
                    "{what}: response size {size}"
                );
                let mut response = header.to_vec();
                response.resize(size, 0);
                self.stream.read_exact(&mut response[10..])?;
                response
            }
            Framing::Mssim => {
                let mut request = Vec::with_capacity(9 + cmd.len());
                request.extend_from_slice(&TPM_SEND_COMMAND.to_be_bytes());
                request.push(0);
                request.extend_from_slice(&(cmd.len() as u32).to_be_bytes());
                request.extend_from_slice(cmd);
                self.stream.write_all(&request)?;
                let size = read_u32(&mut self.stream)? as usize;
                ensure!(
                    (10..=MAX_RESPONSE).contains(&size),
                    "{what}: response size {size}"
                );
                let mut response = vec![0; size];
                self.stream.read_exact(&mut response)?;
                ensure!(read_u32(&mut self.stream)? == 0, "{what}: no trailing 0");
                response
            }
        };
        let rc = u32::from_be_bytes([response[6], response[7], response[8], response[9]]);
        if rc == TPM_RC_RETRY && self.retries < MAX_RETRIES {
            // Part 2 §6.6.3: "the TPM was not able to start the command"; a TSS sends it
            // again, and so does this client (counted and reported).
            self.retries += 1;
            return self.run(cmd, what);
        }
        if rc != 0 {
            bail!("{}: {what}: TPM response code {rc:#x}", self.name);
        }
        Ok(response)
    }
}

/// A port P such that P and P + 1 were both free on the loopback interface just now.
fn free_port_pair() -> Result<u16> {
    for _ in 0..100 {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = first.local_addr()?.port();
        if port < u16::MAX && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no two consecutive free ports on 127.0.0.1")
}

/// Connects to `port` once the server `child` listens there.
fn connect(child: &mut Child, port: u16, what: &str) -> Result<TcpStream> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited before listening: {status}");
        }
        if let Ok(s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            s.set_nodelay(true)?;
            return Ok(s);
        }
        ensure!(
            start.elapsed() < READY,
            "{what} does not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parapet's TPM: `vmm-lite tpm-server`, powered on (and NV on) through the platform port.
fn ours(vmm_lite: &Path) -> Result<Tpm> {
    let port = free_port_pair()?;
    let mut child = Command::new(vmm_lite)
        .args(["tpm-server", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", vmm_lite.display()))?;
    let stream = connect(&mut child, port, "vmm-lite tpm-server");
    let server = Server(child);
    let stream = stream?;
    let mut platform = TcpStream::connect((Ipv4Addr::LOCALHOST, port + 1))?;
    for signal in [TPM_SIGNAL_POWER_ON, TPM_SIGNAL_NV_ON] {
        platform.write_all(&signal.to_be_bytes())?;
        ensure!(
            read_u32(&mut platform)? == 0,
            "platform signal {signal} refused"
        );
    }
    Ok(Tpm {
        name: "ours",
        stream,
        framing: Framing::Mssim,
        _server: server,
        retries: 0,
        state: None,
    })
}

/// Debian's swtpm as a TPM 2.0 on 127.0.0.1: raw TPM commands on `port`, its control channel
/// on `port + 1`, its state in `state_dir`, waiting for TPM2_Startup (no power-on signal
/// needed first). The benchmark and the tpm2-tools comparison start it alike.
pub fn swtpm_socket(port: u16, state_dir: &Path) -> Command {
    let mut command = Command::new("swtpm");
    command
        .args(["socket", "--tpm2"])
        .args([
            "--server",
            &format!("type=tcp,bindaddr=127.0.0.1,port={port}"),
        ])
        .args([
            "--ctrl",
            &format!("type=tcp,bindaddr=127.0.0.1,port={}", port + 1),
        ])
        .args(["--flags", "not-need-init"])
        .args(["--tpmstate", &format!("dir={}", state_dir.display())]);
    command
}

/// swtpm as a TPM 2.0 with a fresh state directory, waiting for TPM2_Startup.
fn swtpm() -> Result<Tpm> {
    let port = free_port_pair()?;
    let state = std::env::temp_dir().join(format!("parapet-bench-tpm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state)?;
    let mut child = swtpm_socket(port, &state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting swtpm (Debian's swtpm package; `cargo xtask setup` installs it)")?;
    let stream = connect(&mut child, port, "swtpm");
    let server = Server(child);
    Ok(Tpm {
        name: "swtpm",
        stream: stream?,
        framing: Framing::Raw,
        _server: server,
        retries: 0,
        state: Some(state),
    })
}

/// Commands per second of `count` runs of `cmd`.
fn rate(tpm: &mut Tpm, cmd: &[u8], count: usize, what: &str) -> Result<f64> {
    let start = Instant::now();
    for _ in 0..count {
        tpm.run(cmd, what)?;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// Runs the benchmark and prints the rounds and the medians.
pub fn tpm() -> Result<()> {
    let vmm_lite = build::vmm_lite()?;
    let mut tpms = [ours(&vmm_lite)?, swtpm()?];
    let extend = pcr_extend(&[0x5a; 32]);
    let mut signs = Vec::new();
    for tpm in &mut tpms {
        tpm.run(&startup(), "TPM2_Startup")?;
        let r = tpm.run(&create_primary(), "TPM2_CreatePrimary")?;
        let key = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
        signs.push(sign(key, &[0xa5; 32]));
    }
    ensure!(
        signs[0] == signs[1],
        "the keys got different handles: the Sign octets differ"
    );
    let (mut extend_rates, mut sign_rates) = ([vec![], vec![]], [vec![], vec![]]);
    for round in 1..=ROUNDS {
        for (i, tpm) in tpms.iter_mut().enumerate() {
            let e = rate(tpm, &extend, EXTENDS, "TPM2_PCR_Extend")?;
            let s = rate(tpm, &signs[i], SIGNS, "TPM2_Sign")?;
            println!(
                "tpm round {round} {}: pcr_extend {e:.0}/s, sign {s:.0}/s",
                tpm.name
            );
            extend_rates[i].push(e);
            sign_rates[i].push(s);
        }
    }
    for tpm in &tpms {
        if tpm.retries > 0 {
            println!(
                "tpm {}: {} commands answered TPM_RC_RETRY, sent again (timed)",
                tpm.name, tpm.retries
            );
        }
    }
    for (what, rates) in [("pcr_extend", extend_rates), ("sign", sign_rates)] {
        let [ours, swtpm] = rates.map(median);
        println!(
            "tpm {what} ours={ours:.0}/s swtpm={swtpm:.0}/s ratio={:.2}",
            ours / swtpm
        );
    }
    Ok(())
}

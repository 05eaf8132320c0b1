//! The TPM server over real TCP connections, with a TPM that records what reaches it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vmm_lite::tpm_server::protocol::*;
use vmm_lite::tpm_server::{CommandProcessor, Signal, TpmServer, TpmServerError, Unsupported};

/// What reached the TPM, in order.
type Log = Arc<Mutex<Vec<String>>>;

/// Answers a command with its bytes reversed (a TPM2_Startup with `TPM_RC_SUCCESS`'s header
/// when the command is TPM2_Startup, so that real clients are satisfied).
struct Recorder(Log);

const STARTUP_CLEAR: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0];
const SUCCESS: [u8; 10] = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0];

impl CommandProcessor for Recorder {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        let hex: String = command.iter().map(|b| format!("{b:02x}")).collect();
        self.0
            .lock()
            .unwrap()
            .push(format!("execute {locality} {hex}"));
        if command.get(6..10) == Some(&STARTUP_CLEAR[6..10]) {
            return SUCCESS.to_vec();
        }
        command.iter().rev().copied().collect()
    }
    fn power_on(&mut self) {
        self.0.lock().unwrap().push("power_on".into());
    }
    fn power_off(&mut self) {
        self.0.lock().unwrap().push("power_off".into());
    }
    fn signal(&mut self, signal: Signal) -> Result<(), Unsupported> {
        self.0.lock().unwrap().push(format!("{signal:?}"));
        match signal {
            Signal::PhysicalPresence(_) => Err(Unsupported),
            _ => Ok(()),
        }
    }
}

struct Server {
    command: SocketAddr,
    platform: SocketAddr,
    log: Log,
    handle: JoinHandle<Result<Recorder, TpmServerError>>,
}

impl Server {
    fn start() -> Self {
        let log = Log::default();
        let server =
            TpmServer::bind("127.0.0.1:0".parse().unwrap(), Recorder(log.clone())).unwrap();
        let (command, platform) = (server.command_addr(), server.platform_addr());
        assert_eq!(platform.port(), command.port() + 1);
        let handle = std::thread::spawn(move || server.serve());
        Self {
            command,
            platform,
            log,
            handle,
        }
    }

    fn connect_command(&self) -> TcpStream {
        connect(self.command)
    }

    fn connect_platform(&self) -> TcpStream {
        connect(self.platform)
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends TPM_STOP on the command port and waits (bounded) for `serve` to return.
    fn stop(self) -> Vec<String> {
        let mut c = self.connect_command();
        c.write_all(&TPM_STOP.to_be_bytes()).unwrap();
        assert_closed(&mut c);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.handle.is_finished() {
            assert!(
                Instant::now() < deadline,
                "serve did not return after TPM_STOP"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let Recorder(log) = self.handle.join().unwrap().unwrap();
        let log = log.lock().unwrap().clone();
        log
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn read_u32(s: &mut TcpStream) -> u32 {
    let mut bytes = [0; 4];
    s.read_exact(&mut bytes).unwrap();
    u32::from_be_bytes(bytes)
}

/// Sends one platform request and returns the server's answer.
fn platform(s: &mut TcpStream, code: u32) -> u32 {
    s.write_all(&code.to_be_bytes()).unwrap();
    read_u32(s)
}

fn send_command_frame(locality: u8, command: &[u8]) -> Vec<u8> {
    let mut frame = TPM_SEND_COMMAND.to_be_bytes().to_vec();
    frame.push(locality);
    frame.extend_from_slice(&(command.len() as u32).to_be_bytes());
    frame.extend_from_slice(command);
    frame
}

/// Sends one TPM command and returns the response, checking the trailing 0.
fn send_command(s: &mut TcpStream, locality: u8, command: &[u8]) -> Vec<u8> {
    s.write_all(&send_command_frame(locality, command)).unwrap();
    let length = read_u32(s);
    let mut response = vec![0; length as usize];
    s.read_exact(&mut response).unwrap();
    assert_eq!(read_u32(s), 0, "the trailer after a response");
    response
}

/// The server closed the connection (EOF, or a reset when it closed with our bytes unread).
fn assert_closed(s: &mut TcpStream) {
    let mut byte = [0];
    match s.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
}

#[test]
fn a_tcti_mssim_session_then_a_second_client_then_stop() {
    let server = Server::start();
    // tcti-mssim's order: the command socket, the platform socket, POWER_ON, NV_ON.
    let mut tpm = server.connect_command();
    let mut plat = server.connect_platform();
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_ON), 0);
    assert_eq!(platform(&mut plat, TPM_SIGNAL_NV_ON), 0);
    assert_eq!(send_command(&mut tpm, 0, &STARTUP_CLEAR), SUCCESS);
    assert_eq!(send_command(&mut tpm, 3, &[1, 2, 3]), [3, 2, 1]);
    assert_eq!(platform(&mut plat, TPM_SIGNAL_CANCEL_ON), 0);
    assert_eq!(platform(&mut plat, TPM_SIGNAL_CANCEL_OFF), 0);
    // Finalize: SESSION_END on both (tpm2-tss from 4.2 on; earlier ones just close).
    plat.write_all(&TPM_SESSION_END.to_be_bytes()).unwrap();
    tpm.write_all(&TPM_SESSION_END.to_be_bytes()).unwrap();
    assert_closed(&mut plat);
    assert_closed(&mut tpm);

    // A second client finds the TPM as the first left it: powered, no second power_on.
    let mut tpm = server.connect_command();
    let mut plat = server.connect_platform();
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_ON), 0);
    assert_eq!(send_command(&mut tpm, 0, &[9]), [9]);
    drop((tpm, plat));

    let log = server.stop();
    assert_eq!(
        log,
        [
            "power_on",
            "NvAvailable(true)",
            "execute 0 80010000000c000001440000",
            "execute 3 010203",
            "Cancel(true)",
            "Cancel(false)",
            "execute 0 09",
        ]
    );
}

#[test]
fn power_off_on_and_commands_while_off() {
    let server = Server::start();
    let mut tpm = server.connect_command();
    let mut plat = server.connect_platform();
    // Before power-on: an empty response (then the trailer), and the TPM never sees it.
    assert_eq!(send_command(&mut tpm, 0, &STARTUP_CLEAR), Vec::<u8>::new());
    // Signals while off are acknowledged and dropped, as in the reference.
    assert_eq!(platform(&mut plat, TPM_SIGNAL_NV_ON), 0);
    assert_eq!(platform(&mut plat, TPM_SIGNAL_RESET), 0);
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_OFF), 0);
    assert!(server.log().is_empty(), "{:?}", server.log());
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_ON), 0);
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_ON), 0);
    assert_eq!(send_command(&mut tpm, 0, &[7]), [7]);
    assert_eq!(platform(&mut plat, TPM_SIGNAL_RESET), 0);
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_OFF), 0);
    assert_eq!(send_command(&mut tpm, 0, &[8]), Vec::<u8>::new());
    drop((tpm, plat));
    assert_eq!(
        server.stop(),
        [
            "power_on",
            "execute 0 07",
            "power_off",
            "power_on",
            "power_off"
        ]
    );
}

#[test]
fn hostile_clients_lose_their_connection_and_the_server_goes_on() {
    let server = Server::start();
    let mut plat = server.connect_platform();
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_ON), 0);

    // A 4 GiB length: closed without reading on or allocating.
    let mut c = server.connect_command();
    let mut frame = TPM_SEND_COMMAND.to_be_bytes().to_vec();
    frame.push(0);
    frame.extend_from_slice(&u32::MAX.to_be_bytes());
    c.write_all(&frame).unwrap();
    assert_closed(&mut c);

    // One byte over the transport's limit.
    let mut c = server.connect_command();
    let mut frame = TPM_SEND_COMMAND.to_be_bytes().to_vec();
    frame.push(0);
    frame.extend_from_slice(&(MAX_BUFFER + 1).to_be_bytes());
    c.write_all(&frame).unwrap();
    assert_closed(&mut c);

    // A frame cut short, then the client half-closes: the server ends the connection.
    for cut in [2, 4, 5, 7, 9, 12] {
        let mut c = server.connect_command();
        c.write_all(&send_command_frame(0, &STARTUP_CLEAR)[..cut])
            .unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_closed(&mut c);
    }

    // Codes the command port does not serve (the reference closes without an answer),
    // platform codes among them.
    for code in [0, TPM_SIGNAL_POWER_ON, TPM_SIGNAL_HASH_START, 99, u32::MAX] {
        let mut c = server.connect_command();
        c.write_all(&code.to_be_bytes()).unwrap();
        assert_closed(&mut c);
    }

    // A handshake from version 0 is refused the same way; from 1, answered.
    let mut c = server.connect_command();
    c.write_all(&[TPM_REMOTE_HANDSHAKE, 0].map(u32::to_be_bytes).concat())
        .unwrap();
    assert_closed(&mut c);
    let mut c = server.connect_command();
    c.write_all(&[TPM_REMOTE_HANDSHAKE, 1].map(u32::to_be_bytes).concat())
        .unwrap();
    assert_eq!(
        [read_u32(&mut c), read_u32(&mut c), read_u32(&mut c)],
        [SERVER_VERSION, TPM_PLATFORM_AVAILABLE | TPM_IN_RAW_MODE, 0]
    );
    drop(c);

    // Codes the platform port does not serve: answered 1, then closed.
    drop(plat);
    for code in [
        0,
        TPM_SEND_COMMAND,
        TPM_SIGNAL_KEY_CACHE_ON,
        TPM_SIGNAL_RESTART,
        TPM_GET_COMMAND_RESPONSE_SIZES,
        99,
    ] {
        let mut p = server.connect_platform();
        assert_eq!(platform(&mut p, code), 1, "code {code}");
        assert_closed(&mut p);
    }
    // A signal the TPM does not model: the same.
    let mut p = server.connect_platform();
    assert_eq!(platform(&mut p, TPM_SIGNAL_PHYS_PRES_ON), 1);
    assert_closed(&mut p);
    // A platform code cut short.
    let mut p = server.connect_platform();
    p.write_all(&[0, 0]).unwrap();
    p.shutdown(Shutdown::Write).unwrap();
    assert_closed(&mut p);

    // The TPM is still there, still powered.
    let mut c = server.connect_command();
    assert_eq!(send_command(&mut c, 0, &[1, 2]), [2, 1]);
    // A command between the TPM's limit and the transport's reaches the TPM.
    let big = vec![0x11; 8192];
    assert_eq!(send_command(&mut c, 0, &big), big);
    drop(c);
    let log = server.stop();
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(
        log[..3],
        ["power_on", "PhysicalPresence(true)", "execute 0 0102"]
    );
}

#[test]
fn one_client_at_a_time_the_next_waits_its_turn() {
    let server = Server::start();
    let mut plat = server.connect_platform();
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_ON), 0);
    let mut first = server.connect_command();
    assert_eq!(send_command(&mut first, 0, &[1]), [1]);

    // The second connects (the listen queue takes it) but is not served yet.
    let mut second = server.connect_command();
    second.write_all(&send_command_frame(0, &[2])).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0];
    let waited = second.read(&mut byte);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{waited:?}"
    );
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // The first leaves (no SESSION_END: Debian 12's tcti-mssim just closes); the second is
    // served.
    drop(first);
    let mut answer = [0; 9];
    second.read_exact(&mut answer).unwrap();
    assert_eq!(answer, [0, 0, 0, 1, 2, 0, 0, 0, 0]);
    drop(second);
    // Same on the platform port.
    let mut plat2 = server.connect_platform();
    drop(plat);
    assert_eq!(platform(&mut plat2, TPM_SIGNAL_CANCEL_ON), 0);
    drop(plat2);
    assert_eq!(
        server.stop(),
        ["power_on", "execute 0 01", "execute 0 02", "Cancel(true)"]
    );
}

#[test]
fn stop_while_a_platform_client_is_connected_ends_serve() {
    let server = Server::start();
    let mut plat = server.connect_platform();
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_ON), 0);
    // `stop` waits for serve to return with the platform client still connected and idle.
    assert_eq!(server.stop(), ["power_on"]);
    assert_closed(&mut plat);
}

#[test]
fn stop_on_the_platform_port_ends_the_platform_service_only() {
    let server = Server::start();
    let mut plat = server.connect_platform();
    assert_eq!(platform(&mut plat, TPM_SIGNAL_POWER_ON), 0);
    plat.write_all(&TPM_STOP.to_be_bytes()).unwrap();
    assert_closed(&mut plat);
    // Platform signals are no longer answered...
    let mut plat = server.connect_platform();
    plat.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    plat.write_all(&TPM_SIGNAL_POWER_OFF.to_be_bytes()).unwrap();
    let mut byte = [0];
    assert!(plat.read(&mut byte).is_err());
    // ...but commands are, and TPM_STOP on the command port still ends serve.
    let mut c = server.connect_command();
    assert_eq!(send_command(&mut c, 0, &[5]), [5]);
    drop(c);
    assert_eq!(server.stop(), ["power_on", "execute 0 05"]);
}

/// Debian's tpm2-tools against the server: what `tpm2_startup -c` sends through tcti-mssim.
/// `cargo test -p vmm-lite --test tpm_server -- --ignored --nocapture` after
/// `apt-get install tpm2-tools`.
#[test]
#[ignore = "needs tpm2-tools (apt-get install tpm2-tools)"]
fn tpm2_startup_through_tcti_mssim() {
    let server = Server::start();
    let tcti = format!("mssim:host=127.0.0.1,port={}", server.command.port());
    let output = std::process::Command::new("tpm2_startup")
        .args(["-c", "-T", &tcti])
        .env("TSS2_LOG", "tcti+debug")
        .output()
        .expect("tpm2_startup (apt-get install tpm2-tools)");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        server.stop(),
        [
            "power_on",
            "NvAvailable(true)",
            "execute 0 80010000000c000001440000"
        ]
    );
}

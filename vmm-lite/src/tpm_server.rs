//! A TPM served over the TPM simulator's TCP protocol ("mssim", `protocol`): TPM commands on
//! one port, platform signals (power, NV, cancel) on the next, so that tpm2-tools
//! (`--tcti mssim:host=127.0.0.1,port=PORT`), tpm2-tss and anything else written for
//! Microsoft's reference simulator can talk to a `CommandProcessor`.
//!
//! Like the reference simulator (`TcpServer.c`), each port serves one client at a time: a
//! second client's connection waits in the listen queue until the first one ends. The two
//! ports are served on two threads and share the TPM. The server keeps the power state as the
//! reference does (`TPMCmdp.c`): power starts off; a TPM command sent while power is off is
//! answered with an empty response (length 0) and never reaches the TPM; power-on while on,
//! power-off while off, reset and the other signals while off change nothing and are still
//! acknowledged.
//!
//! The server allocates no more for a request than its bytes that have arrived, and never more
//! than `protocol::MAX_BUFFER`; a client that breaks the protocol loses its connection, with
//! one line on stderr saying why, and the server goes on. `TPM_STOP` on the command port ends
//! `TpmServer::serve`; on the platform port it ends the platform service only (as in the
//! reference).

mod parapet_tpm;
pub mod protocol;

pub use parapet_tpm::new_tpm;

use std::io::{BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use thiserror::Error;

pub use protocol::Signal;
use protocol::{CommandRequest, FrameError, PlatformRequest};

/// A signal the TPM behind the server does not model. The server answers it with 1 and ends
/// the platform connection, as the reference simulator does for a request it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsupported;

/// The TPM behind the server. The server calls it from one thread at a time.
pub trait CommandProcessor {
    /// Runs one TPM command (a full command buffer, header included) at `locality` and returns
    /// the full response buffer. Malformed commands are the TPM's to answer (with an error
    /// response); it is only called while power is on.
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8>;

    /// Power comes on, and with it `_TPM_Init`: the TPM then wants `TPM2_Startup`. Called only
    /// when power was off.
    fn power_on(&mut self);

    /// Power goes off: volatile state is lost. Called only when power was on.
    fn power_off(&mut self);

    /// `TPM_SIGNAL_RESET`: `_TPM_Init` with power kept on. Called only while power is on.
    /// Unless the TPM tells the two apart, this is a power cycle.
    fn reset(&mut self) {
        self.power_off();
        self.power_on();
    }

    /// A platform signal, given only while power is on. By default a TPM serves what holds
    /// without modelling it: NV always available, and cancel (a hint that commands long
    /// enough to be cancelled may check; none has to be). It refuses what it would have to
    /// model: NV made unavailable, and physical presence.
    fn signal(&mut self, signal: Signal) -> Result<(), Unsupported> {
        match signal {
            Signal::NvAvailable(true) | Signal::Cancel(_) => Ok(()),
            Signal::NvAvailable(false) | Signal::PhysicalPresence(_) => Err(Unsupported),
        }
    }
}

/// Why the server could not start or go on.
#[derive(Debug, Error)]
pub enum TpmServerError {
    #[error("cannot listen for TPM commands on {addr}: {source}")]
    ListenCommand {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot listen for platform signals on {addr} (the port after the command port): {source}"
    )]
    ListenPlatform {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve TPM commands on port 65535: the platform port is the next one")]
    NoPlatformPort,
    #[error("found no two free adjacent ports on {0} for the command and platform ports")]
    NoFreePortPair(IpAddr),
    #[error("accepting a connection on {addr} failed: {source}")]
    Accept {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The TPM and its power, as the reference's `TPMCmdp.c` keeps them.
struct Platform<P> {
    tpm: P,
    powered: bool,
}

impl<P: CommandProcessor> Platform<P> {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        if self.powered {
            self.tpm.execute(locality, command)
        } else {
            Vec::new()
        }
    }

    fn platform(&mut self, request: PlatformRequest) -> Result<(), Unsupported> {
        match request {
            PlatformRequest::PowerOn if !self.powered => {
                self.tpm.power_on();
                self.powered = true;
            }
            PlatformRequest::PowerOff if self.powered => {
                self.tpm.power_off();
                self.powered = false;
            }
            PlatformRequest::Reset if self.powered => self.tpm.reset(),
            PlatformRequest::Signal(signal) if self.powered => self.tpm.signal(signal)?,
            _ => {}
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many ephemeral command ports `bind` tries when asked for port 0 before giving up on
/// finding a free port after one.
const PORT_PAIR_TRIES: usize = 32;

/// A TPM listening on a command port and the platform port after it.
pub struct TpmServer<P> {
    command: TcpListener,
    platform: TcpListener,
    command_addr: SocketAddr,
    platform_addr: SocketAddr,
    tpm: P,
}

impl<P: CommandProcessor + Send> TpmServer<P> {
    /// Listens for TPM commands on `addr` and for platform signals on the port after it. Port
    /// 0 picks a free pair.
    pub fn bind(addr: SocketAddr, tpm: P) -> Result<Self, TpmServerError> {
        let tries = if addr.port() == 0 { PORT_PAIR_TRIES } else { 1 };
        for _ in 0..tries {
            let command = TcpListener::bind(addr)
                .map_err(|source| TpmServerError::ListenCommand { addr, source })?;
            let command_addr = command
                .local_addr()
                .map_err(|source| TpmServerError::ListenCommand { addr, source })?;
            let Some(platform_port) = command_addr.port().checked_add(1) else {
                if addr.port() == 0 {
                    continue;
                }
                return Err(TpmServerError::NoPlatformPort);
            };
            let platform_addr = SocketAddr::new(command_addr.ip(), platform_port);
            match TcpListener::bind(platform_addr) {
                Ok(platform) => {
                    return Ok(Self {
                        command,
                        platform,
                        command_addr,
                        platform_addr,
                        tpm,
                    })
                }
                Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => {}
                Err(source) => {
                    return Err(TpmServerError::ListenPlatform {
                        addr: platform_addr,
                        source,
                    })
                }
            }
        }
        Err(TpmServerError::NoFreePortPair(addr.ip()))
    }

    /// Where TPM commands are served.
    pub fn command_addr(&self) -> SocketAddr {
        self.command_addr
    }

    /// Where platform signals are served.
    pub fn platform_addr(&self) -> SocketAddr {
        self.platform_addr
    }

    /// Serves clients until one sends `TPM_STOP` on the command port, then gives the TPM
    /// back. An error accepting a command connection ends it too.
    pub fn serve(self) -> Result<P, TpmServerError> {
        let Self {
            command,
            platform,
            command_addr,
            platform_addr,
            tpm,
        } = self;
        let shared = Mutex::new(Platform {
            tpm,
            powered: false,
        });
        let stop = Stop::default();
        let result = std::thread::scope(|scope| {
            scope.spawn(|| serve_platform(&platform, platform_addr, &shared, &stop));
            let result = serve_commands(&command, command_addr, &shared);
            stop.stop_platform(platform_addr);
            result
        });
        result.map(|()| {
            shared
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .tpm
        })
    }
}

/// How the command thread ends the platform thread: a flag, the platform client's connection
/// (shut down, so that a read waiting on it returns), and a connection of its own (so that
/// an `accept` waiting returns).
#[derive(Default)]
struct Stop {
    stopping: AtomicBool,
    platform_client: Mutex<Option<TcpStream>>,
}

impl Stop {
    fn stop_platform(&self, platform_addr: SocketAddr) {
        {
            let client = lock(&self.platform_client);
            self.stopping.store(true, Ordering::SeqCst);
            if let Some(client) = client.as_ref() {
                let _ = client.shutdown(Shutdown::Both);
            }
        }
        let ip = match platform_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let _ = TcpStream::connect((ip, platform_addr.port()));
    }

    /// Registers the platform thread's new client; false if the server is stopping.
    fn register(&self, client: &TcpStream) -> bool {
        let mut slot = lock(&self.platform_client);
        if self.stopping.load(Ordering::SeqCst) {
            return false;
        }
        *slot = client.try_clone().ok();
        true
    }

    fn unregister(&self) {
        *lock(&self.platform_client) = None;
    }
}

fn complain(port: &str, peer: Option<SocketAddr>, what: impl std::fmt::Display) {
    match peer {
        Some(peer) => eprintln!("vmm-lite: tpm-server: {port} client {peer}: {what}"),
        None => eprintln!("vmm-lite: tpm-server: {port} client: {what}"),
    }
}

/// Whether to go on after a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Stop,
}

fn accept(listener: &TcpListener, addr: SocketAddr) -> Result<TcpStream, TpmServerError> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Ok(stream),
            // The client gave up before we took it, or a signal: take the next one.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::Interrupted
                ) => {}
            Err(source) => return Err(TpmServerError::Accept { addr, source }),
        }
    }
}

fn serve_commands<P: CommandProcessor>(
    listener: &TcpListener,
    addr: SocketAddr,
    platform: &Mutex<Platform<P>>,
) -> Result<(), TpmServerError> {
    loop {
        let stream = accept(listener, addr)?;
        if command_client(stream, platform) == Next::Stop {
            return Ok(());
        }
    }
}

fn command_client<P: CommandProcessor>(stream: TcpStream, platform: &Mutex<Platform<P>>) -> Next {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return Next::Continue;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let request = match protocol::read_command_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return Next::Continue,
            Err(e) => {
                complain("command", peer, format!("{e}; closing the connection"));
                return Next::Continue;
            }
        };
        let answer = match request {
            CommandRequest::SendCommand { locality, command } => {
                let response = lock(platform).execute(locality, &command);
                match protocol::send_command_answer(&response) {
                    Ok(answer) => answer,
                    Err(e) => {
                        complain("command", peer, format!("{e}; closing the connection"));
                        return Next::Continue;
                    }
                }
            }
            CommandRequest::Handshake { .. } => protocol::handshake_answer().to_vec(),
            CommandRequest::SessionEnd => return Next::Continue,
            CommandRequest::Stop => return Next::Stop,
        };
        if let Err(e) = writer.write_all(&answer) {
            complain("command", peer, format!("{e}; closing the connection"));
            return Next::Continue;
        }
    }
}

fn serve_platform<P: CommandProcessor>(
    listener: &TcpListener,
    addr: SocketAddr,
    platform: &Mutex<Platform<P>>,
    stop: &Stop,
) {
    loop {
        let stream = match accept(listener, addr) {
            Ok(stream) => stream,
            Err(e) => {
                if !stop.stopping.load(Ordering::SeqCst) {
                    eprintln!("vmm-lite: tpm-server: {e}; platform signals are no longer served");
                }
                return;
            }
        };
        if !stop.register(&stream) {
            return;
        }
        let next = platform_client(stream, platform, stop);
        stop.unregister();
        if next == Next::Stop {
            return;
        }
    }
}

fn platform_client<P: CommandProcessor>(
    stream: TcpStream,
    platform: &Mutex<Platform<P>>,
    stop: &Stop,
) -> Next {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return Next::Continue;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let request = match protocol::read_platform_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return Next::Continue,
            Err(e @ FrameError::Unsupported(_)) => {
                complain("platform", peer, format!("{e}; answering 1 and closing"));
                let _ = writer.write_all(&protocol::FAILURE);
                return Next::Continue;
            }
            Err(e) => {
                // The server's own shutdown of this connection is no news.
                if !stop.stopping.load(Ordering::SeqCst) {
                    complain("platform", peer, format!("{e}; closing the connection"));
                }
                return Next::Continue;
            }
        };
        match request {
            PlatformRequest::SessionEnd => return Next::Continue,
            PlatformRequest::Stop => return Next::Stop,
            request => {
                if lock(platform).platform(request).is_err() {
                    complain(
                        "platform",
                        peer,
                        format!("this TPM does not model {request:?}; answering 1 and closing"),
                    );
                    let _ = writer.write_all(&protocol::FAILURE);
                    return Next::Continue;
                }
                if let Err(e) = writer.write_all(&protocol::ACK) {
                    complain("platform", peer, format!("{e}; closing the connection"));
                    return Next::Continue;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what reaches it; answers a command with its own bytes reversed.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl CommandProcessor for Recorder {
        fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
            self.0.push(format!("execute {locality} {command:02x?}"));
            command.iter().rev().copied().collect()
        }
        fn power_on(&mut self) {
            self.0.push("power_on".into());
        }
        fn power_off(&mut self) {
            self.0.push("power_off".into());
        }
    }

    fn platform() -> Platform<Recorder> {
        Platform {
            tpm: Recorder::default(),
            powered: false,
        }
    }

    #[test]
    fn commands_before_power_on_get_an_empty_response_and_miss_the_tpm() {
        let mut p = platform();
        assert_eq!(p.execute(0, &[1, 2, 3]), Vec::<u8>::new());
        assert!(p.tpm.0.is_empty());
        p.platform(PlatformRequest::PowerOn).unwrap();
        assert_eq!(p.execute(2, &[1, 2, 3]), [3, 2, 1]);
        assert_eq!(p.tpm.0, ["power_on", "execute 2 [01, 02, 03]"]);
    }

    #[test]
    fn power_transitions_reach_the_tpm_once_and_signals_only_while_on() {
        let mut p = platform();
        use PlatformRequest::*;
        for request in [
            PowerOff,
            Reset,
            PlatformRequest::Signal(super::Signal::NvAvailable(false)),
            PowerOn,
            PowerOn,
            Reset,
            PowerOff,
            PowerOff,
        ] {
            p.platform(request).unwrap();
        }
        assert_eq!(
            p.tpm.0,
            ["power_on", "power_off", "power_on", "power_off"],
            "reset is a power cycle by default"
        );
        assert!(!p.powered);
    }

    #[test]
    fn by_default_a_tpm_serves_nv_on_and_cancel_and_refuses_nv_off_and_presence() {
        let mut p = platform();
        p.platform(PlatformRequest::PowerOn).unwrap();
        for (signal, served) in [
            (super::Signal::NvAvailable(true), true),
            (super::Signal::Cancel(true), true),
            (super::Signal::Cancel(false), true),
            (super::Signal::NvAvailable(false), false),
            (super::Signal::PhysicalPresence(true), false),
            (super::Signal::PhysicalPresence(false), false),
        ] {
            assert_eq!(
                p.platform(PlatformRequest::Signal(signal)).is_ok(),
                served,
                "{signal:?}"
            );
        }
    }

    #[test]
    fn bind_names_the_port_that_is_taken() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = TpmServer::bind(addr, Recorder::default()).err().unwrap();
        assert!(matches!(e, TpmServerError::ListenCommand { .. }), "{e}");
        let prefix = format!("cannot listen for TPM commands on {addr}: ");
        assert!(e.to_string().starts_with(&prefix), "{e}");

        // Hold a port and ask for the one before it: the platform port is the one taken
        // (unless someone else holds the one before; then try another).
        for _ in 0..20 {
            let held = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = held.local_addr().unwrap().port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port - 1));
            match TpmServer::bind(addr, Recorder::default()) {
                Err(e @ TpmServerError::ListenPlatform { addr: a, .. }) => {
                    assert_eq!(a.port(), port);
                    let text = e.to_string();
                    assert!(
                        text.contains(&format!("on 127.0.0.1:{port} (the port after")),
                        "{text}"
                    );
                    return;
                }
                Err(TpmServerError::ListenCommand { .. }) => continue,
                other => panic!("{:?}", other.err()),
            }
        }
        panic!("every port before a free one was taken");
    }

    #[test]
    fn port_65535_leaves_no_platform_port() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 65535));
        match TpmServer::bind(addr, Recorder::default()) {
            Err(TpmServerError::NoPlatformPort) => {}
            // Someone holds 65535 itself.
            Err(TpmServerError::ListenCommand { .. }) => {}
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn port_zero_binds_an_adjacent_pair() {
        let server = TpmServer::bind("127.0.0.1:0".parse().unwrap(), Recorder::default()).unwrap();
        assert_eq!(
            server.platform_addr().port(),
            server.command_addr().port() + 1
        );
    }
}

//! The TPM simulator's TCP protocol ("mssim"), as the reference simulator's
//! `Simulator/include/TpmTcpProtocol.h` and `Simulator/src/TcpServer.c` (ms-tpm-20-ref) define
//! it and tpm2-tss's `tcti-mssim` speaks it.
//!
//! Every number on the wire is a big-endian `u32`, except a command's locality (one byte).
//! A request starts with a `u32` code. On the command port:
//! - `TPM_SEND_COMMAND` (8): `u8 locality, u32 length, length bytes` → `u32 length, length
//!   bytes` (the TPM's response), then `u32 0`.
//! - `TPM_REMOTE_HANDSHAKE` (15): `u32 client version` (0 is refused) → `u32 server version`,
//!   `u32 endpoint flags`, then `u32 0`.
//! - `TPM_SESSION_END` (20) and `TPM_STOP` (21): no answer; the connection ends (and for
//!   `TPM_STOP`, the server).
//! - anything else: no answer; the connection ends.
//!
//! On the platform port (the command port + 1) every request is the code alone, answered with
//! `u32 0`; `TPM_SESSION_END` and `TPM_STOP` end the connection unanswered, and a code the
//! server does not serve is answered with `u32 1` and ends the connection.

use std::io::{self, Read};

use thiserror::Error;

pub const TPM_SIGNAL_POWER_ON: u32 = 1;
pub const TPM_SIGNAL_POWER_OFF: u32 = 2;
pub const TPM_SIGNAL_PHYS_PRES_ON: u32 = 3;
pub const TPM_SIGNAL_PHYS_PRES_OFF: u32 = 4;
pub const TPM_SIGNAL_HASH_START: u32 = 5;
pub const TPM_SIGNAL_HASH_DATA: u32 = 6;
pub const TPM_SIGNAL_HASH_END: u32 = 7;
pub const TPM_SEND_COMMAND: u32 = 8;
pub const TPM_SIGNAL_CANCEL_ON: u32 = 9;
pub const TPM_SIGNAL_CANCEL_OFF: u32 = 10;
pub const TPM_SIGNAL_NV_ON: u32 = 11;
pub const TPM_SIGNAL_NV_OFF: u32 = 12;
pub const TPM_SIGNAL_KEY_CACHE_ON: u32 = 13;
pub const TPM_SIGNAL_KEY_CACHE_OFF: u32 = 14;
pub const TPM_REMOTE_HANDSHAKE: u32 = 15;
pub const TPM_SET_ALTERNATIVE_RESULT: u32 = 16;
pub const TPM_SIGNAL_RESET: u32 = 17;
pub const TPM_SIGNAL_RESTART: u32 = 18;
pub const TPM_SESSION_END: u32 = 20;
pub const TPM_STOP: u32 = 21;
pub const TPM_GET_COMMAND_RESPONSE_SIZES: u32 = 25;
pub const TPM_TEST_FAILURE_MODE: u32 = 30;

/// The port tcti-mssim and the reference simulator use when none is given.
pub const DEFAULT_PORT: u16 = 2321;

/// The largest command or response the transport carries: the reference simulator's
/// `MAX_BUFFER`. A TPM's own limit (`TPM_PT_MAX_COMMAND_SIZE`, 4096 in most) is smaller: a
/// command between the two reaches the TPM, which answers `TPM_RC_COMMAND_SIZE` as it would
/// on any interface. A longer one ends the connection unread, as in the reference.
pub const MAX_BUFFER: u32 = 1 << 20;

/// The version `TPM_REMOTE_HANDSHAKE` reports (the reference's `ServerVersion`).
pub const SERVER_VERSION: u32 = 1;
/// `TpmEndPointInfo` flags.
pub const TPM_PLATFORM_AVAILABLE: u32 = 0x01;
pub const TPM_USES_TBS: u32 = 0x02;
pub const TPM_IN_RAW_MODE: u32 = 0x04;
pub const TPM_SUPPORTS_PP: u32 = 0x08;
/// What this server's handshake reports: the platform port is there, commands go to the TPM
/// as they are. Not `TPM_SUPPORTS_PP` (the reference's): physical presence is not served.
pub const ENDPOINT_INFO: u32 = TPM_PLATFORM_AVAILABLE | TPM_IN_RAW_MODE;

/// The answer to a platform request that was carried out (and the trailer of every answer on
/// the command port).
pub const ACK: [u8; 4] = 0u32.to_be_bytes();
/// The answer to a platform request the server does not serve (the reference's answer to an
/// unrecognized one).
pub const FAILURE: [u8; 4] = 1u32.to_be_bytes();

/// A platform signal other than power: the pins and indications a platform drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `TPM_SIGNAL_PHYS_PRES_ON` / `_OFF`: the physical-presence indication.
    PhysicalPresence(bool),
    /// `TPM_SIGNAL_CANCEL_ON` / `_OFF`: ask the command under way to stop with
    /// `TPM_RC_CANCELED`; it stays set until turned off.
    Cancel(bool),
    /// `TPM_SIGNAL_NV_ON` / `_OFF`: whether the TPM's NV memory can be written.
    NvAvailable(bool),
}

/// A request on the command port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandRequest {
    /// `TPM_SEND_COMMAND`: a TPM command at a locality.
    SendCommand { locality: u8, command: Vec<u8> },
    /// `TPM_REMOTE_HANDSHAKE`.
    Handshake { client_version: u32 },
    /// `TPM_SESSION_END`: the client is done with this connection.
    SessionEnd,
    /// `TPM_STOP`: the client asks the server to exit.
    Stop,
}

/// A request on the platform port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformRequest {
    /// `TPM_SIGNAL_POWER_ON`: power and `_TPM_Init`; nothing if power is on already.
    PowerOn,
    /// `TPM_SIGNAL_POWER_OFF`.
    PowerOff,
    /// `TPM_SIGNAL_RESET`: `_TPM_Init` with power kept; nothing if power is off.
    Reset,
    Signal(Signal),
    /// `TPM_SESSION_END`: the client is done with this connection.
    SessionEnd,
    /// `TPM_STOP`: in the reference, ends the platform service (the command port stays).
    Stop,
}

/// Why a request could not be read.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("the connection ended inside {0}")]
    Truncated(&'static str),
    #[error("{what} of {length} bytes is over the limit of {MAX_BUFFER}")]
    TooLarge { what: &'static str, length: u32 },
    #[error("request code {0} is not served on this port")]
    Unsupported(u32),
    #[error("TPM_REMOTE_HANDSHAKE from a client of version 0")]
    ClientVersionZero,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Fills `buf`; `Ok(false)` if the stream ended before its first byte.
fn read_all_or_eof(
    r: &mut impl Read,
    buf: &mut [u8],
    what: &'static str,
) -> Result<bool, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(FrameError::Truncated(what)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), FrameError> {
    match read_all_or_eof(r, buf, what)? {
        true => Ok(()),
        false if buf.is_empty() => Ok(()),
        false => Err(FrameError::Truncated(what)),
    }
}

fn read_u32(r: &mut impl Read, what: &'static str) -> Result<u32, FrameError> {
    let mut bytes = [0; 4];
    read_exact(r, &mut bytes, what)?;
    Ok(u32::from_be_bytes(bytes))
}

/// A request's code; `None` when the client closed the connection between requests.
fn read_code(r: &mut impl Read) -> Result<Option<u32>, FrameError> {
    let mut bytes = [0; 4];
    Ok(read_all_or_eof(r, &mut bytes, "a request code")?.then(|| u32::from_be_bytes(bytes)))
}

/// A `u32`-length-prefixed byte string of at most `MAX_BUFFER` bytes. Memory grows with what
/// arrives, not with what the length claims.
fn read_var_bytes(r: &mut impl Read, what: &'static str) -> Result<Vec<u8>, FrameError> {
    let length = read_u32(r, what)?;
    if length > MAX_BUFFER {
        return Err(FrameError::TooLarge { what, length });
    }
    let mut bytes = Vec::with_capacity((length as usize).min(4096));
    let got = r.take(length.into()).read_to_end(&mut bytes)?;
    if got != length as usize {
        return Err(FrameError::Truncated(what));
    }
    Ok(bytes)
}

/// Reads the next request on the command port; `None` when the client closed the connection
/// between requests.
pub fn read_command_request(r: &mut impl Read) -> Result<Option<CommandRequest>, FrameError> {
    let Some(code) = read_code(r)? else {
        return Ok(None);
    };
    let request = match code {
        TPM_SEND_COMMAND => {
            let mut locality = [0];
            read_exact(r, &mut locality, "a TPM_SEND_COMMAND locality")?;
            let command = read_var_bytes(r, "a TPM command")?;
            CommandRequest::SendCommand {
                locality: locality[0],
                command,
            }
        }
        TPM_REMOTE_HANDSHAKE => match read_u32(r, "a TPM_REMOTE_HANDSHAKE client version")? {
            0 => return Err(FrameError::ClientVersionZero),
            client_version => CommandRequest::Handshake { client_version },
        },
        TPM_SESSION_END => CommandRequest::SessionEnd,
        TPM_STOP => CommandRequest::Stop,
        other => return Err(FrameError::Unsupported(other)),
    };
    Ok(Some(request))
}

/// Reads the next request on the platform port; `None` when the client closed the connection
/// between requests.
pub fn read_platform_request(r: &mut impl Read) -> Result<Option<PlatformRequest>, FrameError> {
    let Some(code) = read_code(r)? else {
        return Ok(None);
    };
    let request = match code {
        TPM_SIGNAL_POWER_ON => PlatformRequest::PowerOn,
        TPM_SIGNAL_POWER_OFF => PlatformRequest::PowerOff,
        TPM_SIGNAL_RESET => PlatformRequest::Reset,
        TPM_SIGNAL_PHYS_PRES_ON => PlatformRequest::Signal(Signal::PhysicalPresence(true)),
        TPM_SIGNAL_PHYS_PRES_OFF => PlatformRequest::Signal(Signal::PhysicalPresence(false)),
        TPM_SIGNAL_CANCEL_ON => PlatformRequest::Signal(Signal::Cancel(true)),
        TPM_SIGNAL_CANCEL_OFF => PlatformRequest::Signal(Signal::Cancel(false)),
        TPM_SIGNAL_NV_ON => PlatformRequest::Signal(Signal::NvAvailable(true)),
        TPM_SIGNAL_NV_OFF => PlatformRequest::Signal(Signal::NvAvailable(false)),
        TPM_SESSION_END => PlatformRequest::SessionEnd,
        TPM_STOP => PlatformRequest::Stop,
        other => return Err(FrameError::Unsupported(other)),
    };
    Ok(Some(request))
}

/// The answer to `TPM_SEND_COMMAND`: the response with its length, then the trailing 0.
pub fn send_command_answer(response: &[u8]) -> Result<Vec<u8>, FrameError> {
    let length = u32::try_from(response.len())
        .ok()
        .filter(|&length| length <= MAX_BUFFER)
        .ok_or(FrameError::TooLarge {
            what: "a TPM response",
            length: u32::try_from(response.len()).unwrap_or(u32::MAX),
        })?;
    let mut answer = Vec::with_capacity(response.len() + 8);
    answer.extend_from_slice(&length.to_be_bytes());
    answer.extend_from_slice(response);
    answer.extend_from_slice(&ACK);
    Ok(answer)
}

/// The answer to `TPM_REMOTE_HANDSHAKE`.
pub fn handshake_answer() -> [u8; 12] {
    let mut answer = [0; 12];
    answer[..4].copy_from_slice(&SERVER_VERSION.to_be_bytes());
    answer[4..8].copy_from_slice(&ENDPOINT_INFO.to_be_bytes());
    answer[8..].copy_from_slice(&ACK);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    fn send_command(locality: u8, command: &[u8]) -> Vec<u8> {
        let mut bytes = be(&[TPM_SEND_COMMAND]);
        bytes.push(locality);
        bytes.extend_from_slice(&(command.len() as u32).to_be_bytes());
        bytes.extend_from_slice(command);
        bytes
    }

    const STARTUP_CLEAR: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0];

    #[test]
    fn codes_match_the_reference_header() {
        let codes = [
            (TPM_SIGNAL_POWER_ON, 1),
            (TPM_SIGNAL_POWER_OFF, 2),
            (TPM_SIGNAL_PHYS_PRES_ON, 3),
            (TPM_SIGNAL_PHYS_PRES_OFF, 4),
            (TPM_SIGNAL_HASH_START, 5),
            (TPM_SIGNAL_HASH_DATA, 6),
            (TPM_SIGNAL_HASH_END, 7),
            (TPM_SEND_COMMAND, 8),
            (TPM_SIGNAL_CANCEL_ON, 9),
            (TPM_SIGNAL_CANCEL_OFF, 10),
            (TPM_SIGNAL_NV_ON, 11),
            (TPM_SIGNAL_NV_OFF, 12),
            (TPM_SIGNAL_KEY_CACHE_ON, 13),
            (TPM_SIGNAL_KEY_CACHE_OFF, 14),
            (TPM_REMOTE_HANDSHAKE, 15),
            (TPM_SET_ALTERNATIVE_RESULT, 16),
            (TPM_SIGNAL_RESET, 17),
            (TPM_SIGNAL_RESTART, 18),
            (TPM_SESSION_END, 20),
            (TPM_STOP, 21),
            (TPM_GET_COMMAND_RESPONSE_SIZES, 25),
            (TPM_TEST_FAILURE_MODE, 30),
        ];
        for (code, value) in codes {
            assert_eq!(code, value);
        }
    }

    #[test]
    fn send_command_parses_locality_and_command() {
        let bytes = send_command(3, &STARTUP_CLEAR);
        assert_eq!(
            bytes[..9],
            [0, 0, 0, 8, 3, 0, 0, 0, 12],
            "tcti-mssim's 9-byte header"
        );
        let mut r = &bytes[..];
        assert_eq!(
            read_command_request(&mut r).unwrap(),
            Some(CommandRequest::SendCommand {
                locality: 3,
                command: STARTUP_CLEAR.to_vec()
            })
        );
        assert!(read_command_request(&mut r).unwrap().is_none(), "clean end");
    }

    #[test]
    fn requests_follow_each_other_on_one_stream() {
        let mut bytes = send_command(0, &STARTUP_CLEAR);
        bytes.extend(send_command(4, &[]));
        bytes.extend(be(&[TPM_REMOTE_HANDSHAKE, 7, TPM_SESSION_END, TPM_STOP]));
        let mut r = &bytes[..];
        let mut requests = Vec::new();
        while let Some(request) = read_command_request(&mut r).unwrap() {
            requests.push(request);
        }
        assert_eq!(
            requests,
            [
                CommandRequest::SendCommand {
                    locality: 0,
                    command: STARTUP_CLEAR.to_vec()
                },
                CommandRequest::SendCommand {
                    locality: 4,
                    command: vec![]
                },
                CommandRequest::Handshake { client_version: 7 },
                CommandRequest::SessionEnd,
                CommandRequest::Stop,
            ]
        );
    }

    #[test]
    fn platform_requests_parse() {
        let codes = [1, 2, 17, 3, 4, 9, 10, 11, 12, 20, 21];
        let bytes = be(&codes);
        let mut r = &bytes[..];
        let mut requests = Vec::new();
        while let Some(request) = read_platform_request(&mut r).unwrap() {
            requests.push(request);
        }
        use PlatformRequest::*;
        assert_eq!(
            requests,
            [
                PowerOn,
                PowerOff,
                Reset,
                PlatformRequest::Signal(super::Signal::PhysicalPresence(true)),
                PlatformRequest::Signal(super::Signal::PhysicalPresence(false)),
                PlatformRequest::Signal(super::Signal::Cancel(true)),
                PlatformRequest::Signal(super::Signal::Cancel(false)),
                PlatformRequest::Signal(super::Signal::NvAvailable(true)),
                PlatformRequest::Signal(super::Signal::NvAvailable(false)),
                SessionEnd,
                Stop,
            ]
        );
    }

    #[test]
    fn codes_the_server_does_not_serve_are_refused_on_each_port() {
        for code in [0, 5, 6, 7, 9, 11, 1, 13, 16, 25, 30, 0xffff_ffff] {
            let bytes = be(&[code, 0, 0]);
            assert!(
                matches!(read_command_request(&mut &bytes[..]), Err(FrameError::Unsupported(c)) if c == code),
                "command port, code {code}"
            );
        }
        for code in [0, 5, 6, 7, 8, 13, 14, 15, 16, 18, 19, 25, 30, 0xffff_ffff] {
            let bytes = be(&[code]);
            assert!(
                matches!(read_platform_request(&mut &bytes[..]), Err(FrameError::Unsupported(c)) if c == code),
                "platform port, code {code}"
            );
        }
    }

    #[test]
    fn every_truncation_of_a_request_is_an_error_not_a_clean_end() {
        let full = send_command(0, &STARTUP_CLEAR);
        for cut in 1..full.len() {
            let result = read_command_request(&mut &full[..cut]);
            assert!(
                matches!(result, Err(FrameError::Truncated(_))),
                "cut at {cut}: {result:?}"
            );
        }
        let handshake = be(&[TPM_REMOTE_HANDSHAKE, 1]);
        for cut in 1..handshake.len() {
            let result = read_command_request(&mut &handshake[..cut]);
            assert!(matches!(result, Err(FrameError::Truncated(_))), "{cut}");
        }
        for cut in 1..4 {
            let result = read_platform_request(&mut &be(&[TPM_SIGNAL_POWER_ON])[..cut]);
            assert!(matches!(result, Err(FrameError::Truncated(_))), "{cut}");
        }
    }

    #[test]
    fn lengths_over_the_limit_are_refused_before_reading_or_allocating() {
        for length in [MAX_BUFFER + 1, 0x8000_0000, u32::MAX] {
            let mut bytes = be(&[TPM_SEND_COMMAND]);
            bytes.push(0);
            bytes.extend_from_slice(&length.to_be_bytes());
            let result = read_command_request(&mut &bytes[..]);
            assert!(
                matches!(result, Err(FrameError::TooLarge { length: l, .. }) if l == length),
                "{length}: {result:?}"
            );
        }
        // At the limit: read (and here, truncated).
        let mut bytes = be(&[TPM_SEND_COMMAND]);
        bytes.push(0);
        bytes.extend_from_slice(&MAX_BUFFER.to_be_bytes());
        bytes.extend_from_slice(&[0; 100]);
        assert!(matches!(
            read_command_request(&mut &bytes[..]),
            Err(FrameError::Truncated(_))
        ));
        let command = vec![0x5a; MAX_BUFFER as usize];
        let bytes = send_command(0, &command);
        assert!(matches!(
            read_command_request(&mut &bytes[..]).unwrap(),
            Some(CommandRequest::SendCommand { command: c, .. }) if c == command
        ));
    }

    #[test]
    fn a_claimed_length_costs_nothing_until_its_bytes_arrive() {
        // A reader that hands over 10 bytes and then fails, standing in for a client that
        // claims a megabyte and stalls.
        struct Stalls(Vec<u8>);
        impl Read for Stalls {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0.drain(..n);
                Ok(n)
            }
        }
        let mut bytes = be(&[TPM_SEND_COMMAND]);
        bytes.push(0);
        bytes.extend_from_slice(&MAX_BUFFER.to_be_bytes());
        bytes.extend_from_slice(&[0; 10]);
        let result = read_command_request(&mut Stalls(bytes));
        assert!(matches!(result, Err(FrameError::Io(_))), "{result:?}");
    }

    #[test]
    fn handshake_from_version_zero_is_refused() {
        let bytes = be(&[TPM_REMOTE_HANDSHAKE, 0]);
        assert!(matches!(
            read_command_request(&mut &bytes[..]),
            Err(FrameError::ClientVersionZero)
        ));
    }

    #[test]
    fn answers_are_framed_as_the_reference_frames_them() {
        assert_eq!(
            send_command_answer(&[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]).unwrap(),
            [0, 0, 0, 10, 0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(send_command_answer(&[]).unwrap(), [0; 8]);
        assert!(send_command_answer(&vec![0; MAX_BUFFER as usize + 1]).is_err());
        assert_eq!(handshake_answer(), [0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0]);
        assert_eq!(ACK, [0; 4]);
        assert_eq!(FAILURE, [0, 0, 0, 1]);
    }
}

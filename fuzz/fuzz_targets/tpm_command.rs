//! The TPM's command parser on hostile input.
//!
//! Each input runs twice: whole, as one command to a newly made TPM (the header checks and
//! TPM2_Startup), and as a sequence of commands to one TPM after TPM2_Startup(CLEAR), so that
//! sessions, objects, NV indices and PCRs carry state from one command to the next. The
//! sequence is cut where each command's header says it ends (its commandSize, at least a
//! header's 10 octets, at most what is left), so a seed file of commands laid end to end is
//! a session. Every response must be well formed whatever the command was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parapet_devices::tpm::{Tpm, MAX_COMMAND_SIZE, MAX_RESPONSE_SIZE};

const HEADER: usize = 10;
const TPM_ST_RSP_COMMAND: u16 = 0x00c4;
const TPM_ST_NO_SESSIONS: u16 = 0x8001;
const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_RC_BAD_TAG: u32 = 0x01e;
const TPM_RC_FAILURE: u32 = 0x101;
/// TPM2_Startup(TPM_SU_CLEAR).
const STARTUP_CLEAR: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0];
/// Commands one input may run: enough for a session's worth, few enough to stay fast.
const MAX_COMMANDS: usize = 32;

fuzz_target!(|data: &[u8]| {
    let mut tpm = Tpm::new([0x5a; 32]);
    check(data, &tpm.execute(0, data));

    let mut tpm = Tpm::new([0xa5; 32]);
    let started = tpm.execute(0, &STARTUP_CLEAR);
    assert_eq!(started, [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]);
    let mut rest = data;
    for _ in 0..MAX_COMMANDS {
        if rest.is_empty() {
            break;
        }
        let (command, tail) = rest.split_at(next_length(rest));
        check(command, &tpm.execute(0, command));
        rest = tail;
    }
});

/// The length of the command at the start of `bytes`: its header's commandSize, bounded by
/// a header and by what there is.
fn next_length(bytes: &[u8]) -> usize {
    let declared = bytes
        .get(2..6)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize);
    declared.clamp(HEADER, MAX_COMMAND_SIZE).min(bytes.len())
}

/// What every response must be (TPM 2.0 Part 1 §18, Part 2 §6.9): a header at least, whose
/// responseSize is its length, tagged TPM_ST_NO_SESSIONS or TPM_ST_SESSIONS (TPM_RC_BAD_TAG
/// alone carries TPM 1.2's TPM_ST_RSP_COMMAND), within MAX_RESPONSE_SIZE; and no command
/// puts the TPM in failure mode, which only its own inconsistencies do.
fn check(command: &[u8], response: &[u8]) {
    assert!(
        response.len() >= HEADER,
        "short response {response:02x?} to {command:02x?}"
    );
    assert!(response.len() <= MAX_RESPONSE_SIZE, "oversized response");
    let tag = u16::from_be_bytes([response[0], response[1]]);
    let size = u32::from_be_bytes([response[2], response[3], response[4], response[5]]);
    let code = u32::from_be_bytes([response[6], response[7], response[8], response[9]]);
    assert_eq!(
        size as usize,
        response.len(),
        "responseSize of {response:02x?}"
    );
    assert!(
        tag == TPM_ST_NO_SESSIONS
            || tag == TPM_ST_SESSIONS
            || (tag == TPM_ST_RSP_COMMAND && code == TPM_RC_BAD_TAG),
        "tag {tag:#06x} of {response:02x?}"
    );
    if code != 0 {
        assert_eq!(
            response.len(),
            HEADER,
            "an error response has a header only"
        );
    }
    assert_ne!(code, TPM_RC_FAILURE, "failure mode after {command:02x?}");
}

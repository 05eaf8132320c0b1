//! Whole-command tests: golden byte vectors, PCR values checked against the hash crates,
//! authorization and locality rules, startup kinds, capabilities, malformed input (every
//! truncation, lying sizes, bit flips, random bytes), serialisation.

use alloc::vec::Vec;

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384};

use super::constants::*;
use super::{rc, StateError, Tpm};

/// Bytes from a hex string; spaces are ignored.
fn h(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(core::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// A command with a correct header.
fn cmd(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&tag.to_be_bytes());
    c.extend_from_slice(&(10 + body.len() as u32).to_be_bytes());
    c.extend_from_slice(&cc.to_be_bytes());
    c.extend_from_slice(body);
    c
}

/// A command carrying one password session with `password` for the handle(s) in `handles`.
fn with_pw(cc: u32, handles: &[u8], password: &[u8], params: &[u8]) -> Vec<u8> {
    let mut body = handles.to_vec();
    let auth_len = 4 + 2 + 1 + 2 + password.len() as u32;
    body.extend_from_slice(&auth_len.to_be_bytes());
    body.extend_from_slice(&TPM_RS_PW.to_be_bytes());
    body.extend_from_slice(&[0, 0, 1]);
    body.extend_from_slice(&(password.len() as u16).to_be_bytes());
    body.extend_from_slice(password);
    body.extend_from_slice(params);
    cmd(TPM_ST_SESSIONS, cc, &body)
}

fn rc_of(response: &[u8]) -> u32 {
    u32::from_be_bytes(response[6..10].try_into().unwrap())
}

/// The response is well formed: a known tag, its size field equals its length, and an error
/// is the header alone.
fn check_response(response: &[u8]) {
    assert!(response.len() >= 10 && response.len() <= MAX_RESPONSE_SIZE);
    let tag = u16::from_be_bytes([response[0], response[1]]);
    let size = u32::from_be_bytes(response[2..6].try_into().unwrap()) as usize;
    assert_eq!(size, response.len());
    if rc_of(response) != 0 {
        assert_eq!(response.len(), 10);
        let expected = if rc_of(response) == rc::BAD_TAG {
            TPM_ST_RSP_COMMAND
        } else {
            TPM_ST_NO_SESSIONS
        };
        assert_eq!(tag, expected);
    } else {
        assert!(tag == TPM_ST_NO_SESSIONS || tag == TPM_ST_SESSIONS);
    }
}

fn run(tpm: &mut Tpm, command: &[u8]) -> Vec<u8> {
    let response = tpm.execute(0, command);
    check_response(&response);
    response
}

fn run_ok(tpm: &mut Tpm, command: &[u8]) -> Vec<u8> {
    let response = run(tpm, command);
    assert_eq!(rc_of(&response), 0, "command {command:02x?}");
    response
}

const STARTUP_CLEAR: &str = "80 01 00 00 00 0c 00 00 01 44 00 00";
const STARTUP_STATE: &str = "80 01 00 00 00 0c 00 00 01 44 00 01";
const SHUTDOWN_CLEAR: &str = "80 01 00 00 00 0c 00 00 01 45 00 00";
const SHUTDOWN_STATE: &str = "80 01 00 00 00 0c 00 00 01 45 00 01";
const SUCCESS: &str = "80 01 00 00 00 0a 00 00 00 00";

fn started() -> Tpm {
    let mut tpm = Tpm::new([0x42; 32]);
    run_ok(&mut tpm, &h(STARTUP_CLEAR));
    tpm
}

fn pcr_read(tpm: &mut Tpm, alg: u16, pcr: usize) -> Vec<u8> {
    let mut select = [0u8; 3];
    select[pcr / 8] = 1 << (pcr % 8);
    let mut body = h("00 00 00 01");
    body.extend_from_slice(&alg.to_be_bytes());
    body.push(3);
    body.extend_from_slice(&select);
    let r = run_ok(tpm, &cmd(TPM_ST_NO_SESSIONS, TPM_CC_PCR_READ, &body));
    // counter(4) selection(4 + 6) count(4) size(2) digest
    assert_eq!(&r[14..24], &body[..]);
    assert_eq!(&r[24..28], &[0, 0, 0, 1]);
    let size = usize::from(u16::from_be_bytes([r[28], r[29]]));
    assert_eq!(r.len(), 30 + size);
    r[30..].to_vec()
}

fn update_counter(tpm: &mut Tpm) -> u32 {
    let r = run_ok(tpm, &h("80 01 00 00 00 0e 00 00 01 7e 00 00 00 00"));
    u32::from_be_bytes(r[10..14].try_into().unwrap())
}

fn extend_sha256(tpm: &mut Tpm, locality: u8, pcr: u32, digest: &[u8; 32]) -> Vec<u8> {
    let mut params = h("00 00 00 01 00 0b");
    params.extend_from_slice(digest);
    let command = with_pw(TPM_CC_PCR_EXTEND, &pcr.to_be_bytes(), b"", &params);
    let response = tpm.execute(locality, &command);
    check_response(&response);
    response
}

// ---------------------------------------------------------------------------------------
// Framing.

#[test]
fn startup_golden_vectors_and_initialize() {
    let mut tpm = Tpm::new([1; 32]);
    assert!(!tpm.is_started());
    // Nothing but Startup before Startup.
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0c 00 00 01 7b 00 08")),
        h("80 01 00 00 00 0a 00 00 01 00")
    );
    assert_eq!(tpm.execute(0, &h(STARTUP_CLEAR)), h(SUCCESS));
    assert!(tpm.is_started());
    // No Startup after Startup.
    assert_eq!(
        tpm.execute(0, &h(STARTUP_CLEAR)),
        h("80 01 00 00 00 0a 00 00 01 00")
    );
    // _TPM_Init: Startup again.
    tpm.init();
    assert!(!tpm.is_started());
    assert_eq!(tpm.execute(0, &h(STARTUP_CLEAR)), h(SUCCESS));
}

#[test]
fn header_errors() {
    let mut tpm = started();
    // A TPM 1.2 command: TPM_RC_BAD_TAG with the TPM 1.2 response tag.
    assert_eq!(
        tpm.execute(0, &h("00 c1 00 00 00 0a 00 00 00 65")),
        h("00 c4 00 00 00 0a 00 00 00 1e")
    );
    // commandSize not the octets received, either way.
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0b 00 00 01 7c")),
        h("80 01 00 00 00 0a 00 00 01 42")
    );
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0a 00 00 01 7c 00")),
        h("80 01 00 00 00 0a 00 00 01 42")
    );
    // Over MAX_COMMAND_SIZE, even when consistent.
    let mut big = cmd(
        TPM_ST_NO_SESSIONS,
        TPM_CC_STIR_RANDOM,
        &[0; MAX_COMMAND_SIZE],
    );
    assert_eq!(rc_of(&tpm.execute(0, &big)), rc::COMMAND_SIZE);
    big.truncate(MAX_COMMAND_SIZE);
    big[2..6].copy_from_slice(&(MAX_COMMAND_SIZE as u32).to_be_bytes());
    assert_eq!(
        rc_of(&tpm.execute(0, &big)),
        rc::SIZE,
        "an empty inData, then 4094 octets too many"
    );
    // Unimplemented command codes: CreateLoaded, a vendor code, garbage.
    for cc in [0x0000_0191u32, 0x2000_0000, 0xffff_ffff, 0] {
        let r = tpm.execute(0, &cmd(TPM_ST_NO_SESSIONS, cc, &[]));
        assert_eq!(r, h("80 01 00 00 00 0a 00 00 01 43"), "{cc:#x}");
    }
    // Shorter than the header: the missing field is TPM_RC_INSUFFICIENT (Part 4).
    assert_eq!(rc_of(&tpm.execute(0, &[])), rc::INSUFFICIENT);
    assert_eq!(rc_of(&tpm.execute(0, &h("80"))), rc::INSUFFICIENT);
    assert_eq!(rc_of(&tpm.execute(0, &h("80 01 00 00"))), rc::INSUFFICIENT);
    assert_eq!(
        rc_of(&tpm.execute(0, &h("80 01 00 00 00 08 00 00"))),
        rc::INSUFFICIENT
    );
    assert_eq!(
        rc_of(&tpm.execute(0, &h("80 01 00 00 00 09 00 00"))),
        rc::COMMAND_SIZE
    );
    // A locality the interface does not have.
    assert_eq!(
        rc_of(&tpm.execute(5, &h("80 01 00 00 00 0a 00 00 01 7c"))),
        rc::LOCALITY
    );
}

#[test]
fn session_area_errors() {
    let mut tpm = started();
    let digest = [0u8; 32];
    let mut params = h("00 00 00 01 00 0b");
    params.extend_from_slice(&digest);
    let pcr16 = 16u32.to_be_bytes();
    // PCR_Extend needs an authorization.
    let no_session = {
        let mut body = pcr16.to_vec();
        body.extend_from_slice(&params);
        cmd(TPM_ST_NO_SESSIONS, TPM_CC_PCR_EXTEND, &body)
    };
    assert_eq!(rc_of(&run(&mut tpm, &no_session)), rc::AUTH_MISSING);
    // Wrong password on a PCR (DA-exempt): TPM_RC_BAD_AUTH + TPM_RC_S + TPM_RC_1.
    let wrong = with_pw(TPM_CC_PCR_EXTEND, &pcr16, b"secret", &params);
    assert_eq!(rc_of(&run(&mut tpm, &wrong)), 0x9A2);
    // Trailing zeros of a password do not count.
    let zeros = with_pw(TPM_CC_PCR_EXTEND, &pcr16, &[0, 0, 0], &params);
    run_ok(&mut tpm, &zeros);
    // authorizationSize below 9, or past the end.
    let mut short = with_pw(TPM_CC_PCR_EXTEND, &pcr16, b"", &params);
    short[17] = 8;
    assert_eq!(rc_of(&run(&mut tpm, &short)), rc::SIZE);
    short[17] = 0xff;
    assert_eq!(rc_of(&run(&mut tpm, &short)), rc::SIZE);
    // Startup takes no sessions.
    let mut tpm2 = Tpm::new([2; 32]);
    let startup = with_pw(TPM_CC_STARTUP, &[], b"", &h("00 00"));
    assert_eq!(rc_of(&run(&mut tpm2, &startup)), rc::AUTH_CONTEXT);
    // A session for a command without handles: TPM_RC_HANDLE + TPM_RC_S + TPM_RC_1.
    let random = with_pw(TPM_CC_GET_RANDOM, &[], b"", &h("00 08"));
    assert_eq!(rc_of(&run(&mut tpm, &random)), 0x98B);
    // An HMAC session handle that references nothing: TPM_RC_REFERENCE_S0.
    let mut hmac = with_pw(TPM_CC_PCR_EXTEND, &pcr16, b"", &params);
    hmac[18..22].copy_from_slice(&0x0200_0000u32.to_be_bytes());
    assert_eq!(rc_of(&run(&mut tpm, &hmac)), rc::REFERENCE_S0);
}

// ---------------------------------------------------------------------------------------
// PCRs.

#[test]
fn pcr_extend_golden_vector_and_values_match_the_hash_crates() {
    let mut tpm = started();
    let digest: [u8; 32] = Sha256::digest(b"event").into();
    // PCR_Extend(PCR 16, SHA-256) with a password session:
    let mut expected = h("80 02 00 00 00 41 00 00 01 82 00 00 00 10 00 00 00 09");
    expected.extend_from_slice(&h("40 00 00 09 00 00 01 00 00 00 00 00 01 00 0b"));
    expected.extend_from_slice(&digest);
    let command = with_pw(TPM_CC_PCR_EXTEND, &16u32.to_be_bytes(), b"", &{
        let mut p = h("00 00 00 01 00 0b");
        p.extend_from_slice(&digest);
        p
    });
    assert_eq!(command, expected);
    // The response: parameterSize 0, one session: empty nonce, continueSession, empty HMAC.
    assert_eq!(
        tpm.execute(0, &command),
        h("80 02 00 00 00 13 00 00 00 00 00 00 00 00 00 00 01 00 00")
    );
    let pcr16 = Sha256::new()
        .chain_update([0u8; 32])
        .chain_update(digest)
        .finalize();
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA256, 16), pcr16.to_vec());
    // The other banks were not extended.
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA1, 16), [0u8; 20]);
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA384, 16), [0u8; 48]);

    // All three banks at once, PCR 0 (extendable from every locality).
    let d1: [u8; 20] = Sha1::digest(b"one").into();
    let d2: [u8; 32] = Sha256::digest(b"two").into();
    let d3: [u8; 48] = Sha384::digest(b"three").into();
    let mut params = h("00 00 00 03");
    for (alg, d) in [
        (TPM_ALG_SHA1, &d1[..]),
        (TPM_ALG_SHA256, &d2[..]),
        (TPM_ALG_SHA384, &d3[..]),
    ] {
        params.extend_from_slice(&alg.to_be_bytes());
        params.extend_from_slice(d);
    }
    let before = update_counter(&mut tpm);
    run_ok(
        &mut tpm,
        &with_pw(TPM_CC_PCR_EXTEND, &0u32.to_be_bytes(), b"", &params),
    );
    assert_eq!(update_counter(&mut tpm), before + 3, "one per bank");
    let e1 = Sha1::new()
        .chain_update([0u8; 20])
        .chain_update(d1)
        .finalize();
    let e2 = Sha256::new()
        .chain_update([0u8; 32])
        .chain_update(d2)
        .finalize();
    let e3 = Sha384::new()
        .chain_update([0u8; 48])
        .chain_update(d3)
        .finalize();
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA1, 0), e1.to_vec());
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA256, 0), e2.to_vec());
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA384, 0), e3.to_vec());

    // TPM_RH_NULL: success, nothing changes.
    let before = update_counter(&mut tpm);
    let null = with_pw(TPM_CC_PCR_EXTEND, &TPM_RH_NULL.to_be_bytes(), b"", &params);
    run_ok(&mut tpm, &null);
    assert_eq!(update_counter(&mut tpm), before);
}

#[test]
fn pcr_read_golden_vector() {
    let mut tpm = started();
    // PCR_Read(SHA-256, PCR 16 and 23) right after Startup(CLEAR).
    let r = run_ok(
        &mut tpm,
        &h("80 01 00 00 00 14 00 00 01 7e 00 00 00 01 00 0b 03 00 00 81"),
    );
    let mut expected = h("80 01 00 00 00 60 00 00 00 00");
    expected.extend_from_slice(&h("00 00 00 15")); // 24 PCRs initialised, minus 20-22
    expected.extend_from_slice(&h("00 00 00 01 00 0b 03 00 00 81"));
    expected.extend_from_slice(&h("00 00 00 02 00 20"));
    expected.extend_from_slice(&[0; 32]);
    expected.extend_from_slice(&h("00 20"));
    expected.extend_from_slice(&[0; 32]);
    assert_eq!(r, expected);
    // DRTM PCRs start as all ones, PCR 0 records the Startup locality.
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA1, 17), [0xff; 20]);
    let mut tpm3 = Tpm::new([3; 32]);
    assert_eq!(rc_of(&tpm3.execute(1, &h(STARTUP_CLEAR))), rc::LOCALITY);
    assert_eq!(tpm3.execute(3, &h(STARTUP_CLEAR)), h(SUCCESS));
    let mut pcr0 = [0u8; 32];
    pcr0[31] = 3;
    assert_eq!(pcr_read(&mut tpm3, TPM_ALG_SHA256, 0), pcr0);
}

#[test]
fn pcr_read_returns_at_most_eight_and_checks_its_selection() {
    let mut tpm = started();
    let all = h("80 01 00 00 00 1a 00 00 01 7e 00 00 00 02 00 04 03 ff ff ff 00 0c 03 01 00 00");
    let r = run_ok(&mut tpm, &all);
    // pcrSelectionOut: SHA-1 PCRs 0-7 only, the SHA-384 selection emptied.
    assert_eq!(
        &r[14..30],
        &h("00 00 00 02 00 04 03 ff 00 00 00 0c 03 00 00 00")[..]
    );
    assert_eq!(&r[30..34], &[0, 0, 0, 8]);
    assert_eq!(r.len(), 34 + 8 * 22);
    // count above the number of banks, an unimplemented hash, a wrong sizeofSelect.
    let cases = [
        ("00 00 00 04", 0x1D5),
        ("00 00 00 01 00 0d 03 01 00 00", 0x1C3),
        ("00 00 00 01 00 10 03 01 00 00", 0x1C3),
        ("00 00 00 01 00 0b 04 01 00 00 00", 0x1C4),
        ("00 00 00 01 00 0b 02 01 00", 0x1C4),
        ("00 00 00 01 00 0b 03 01 00", 0x1DA),
        ("00 00 00 00 00", rc::SIZE),
    ];
    for (body, code) in cases {
        let r = run(
            &mut tpm,
            &cmd(TPM_ST_NO_SESSIONS, TPM_CC_PCR_READ, &h(body)),
        );
        assert_eq!(rc_of(&r), code, "{body}");
    }
    // An empty selection reads nothing.
    let r = run_ok(&mut tpm, &h("80 01 00 00 00 0e 00 00 01 7e 00 00 00 00"));
    assert_eq!(&r[14..], &h("00 00 00 00 00 00 00 00")[..]);
}

#[test]
fn pcr_extend_errors() {
    let mut tpm = started();
    let pcr16 = 16u32.to_be_bytes();
    let cases: [(&[u8], &str, u32); 6] = [
        (&pcr16, "00 00 00 04", 0x1D5),
        (&pcr16, "00 00 00 01 00 0d", 0x1C3),
        (&pcr16, "00 00 00 01 00 04 00", 0x1DA),
        (&pcr16, "00 00 00 00 00", rc::SIZE),
        (&24u32.to_be_bytes(), "00 00 00 00", 0x184),
        (&TPM_RH_OWNER.to_be_bytes(), "00 00 00 00", 0x184),
    ];
    for (handle, params, code) in cases {
        let r = run(
            &mut tpm,
            &with_pw(TPM_CC_PCR_EXTEND, handle, b"", &h(params)),
        );
        assert_eq!(rc_of(&r), code, "{params}");
    }
    // A missing handle.
    let r = run(&mut tpm, &cmd(TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND, &[0, 0]));
    assert_eq!(rc_of(&r), 0x19A, "INSUFFICIENT + H + 1");
}

#[test]
fn localities_guard_extend_and_reset() {
    let mut tpm = started();
    let d = [7u8; 32];
    // PCR 21 and 22 only from locality 2; PCR 19 not from locality 4.
    assert_eq!(rc_of(&extend_sha256(&mut tpm, 0, 21, &d)), rc::LOCALITY);
    assert_eq!(rc_of(&extend_sha256(&mut tpm, 2, 21, &d)), 0);
    assert_eq!(rc_of(&extend_sha256(&mut tpm, 4, 19, &d)), rc::LOCALITY);
    assert_eq!(rc_of(&extend_sha256(&mut tpm, 4, 17, &d)), 0);

    let reset = |pcr: u32| with_pw(TPM_CC_PCR_RESET, &pcr.to_be_bytes(), b"", &[]);
    // PCR 16 and 23 from localities 0-3, never PCR 0-15.
    assert_eq!(rc_of(&extend_sha256(&mut tpm, 0, 16, &d)), 0);
    assert_ne!(pcr_read(&mut tpm, TPM_ALG_SHA256, 16), [0u8; 32]);
    let before = update_counter(&mut tpm);
    assert_eq!(
        tpm.execute(0, &reset(16)),
        h("80 02 00 00 00 13 00 00 00 00 00 00 00 00 00 00 01 00 00")
    );
    assert_eq!(update_counter(&mut tpm), before + 1);
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA256, 16), [0u8; 32]);
    assert_eq!(rc_of(&tpm.execute(3, &reset(23))), 0);
    assert_eq!(rc_of(&tpm.execute(4, &reset(23))), rc::LOCALITY);
    assert_eq!(rc_of(&tpm.execute(0, &reset(0))), rc::LOCALITY);
    assert_eq!(rc_of(&tpm.execute(0, &reset(15))), rc::LOCALITY);
    // PCR 20-22 from locality 2: the DRTM values (all ones) become zero.
    assert_eq!(rc_of(&tpm.execute(0, &reset(20))), rc::LOCALITY);
    assert_eq!(rc_of(&tpm.execute(2, &reset(20))), 0);
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA1, 20), [0u8; 20]);
    // PCR_Reset's handle is TPMI_DH_PCR without NULL.
    assert_eq!(rc_of(&tpm.execute(0, &reset(TPM_RH_NULL))), 0x184);
    // And takes no parameters.
    let mut extra = reset(16);
    extra.push(0);
    extra[5] += 1;
    assert_eq!(rc_of(&tpm.execute(0, &extra)), rc::SIZE);
}

#[test]
fn pcr_event_hashes_into_every_bank() {
    let mut tpm = started();
    let mut params = h("00 05");
    params.extend_from_slice(b"hello");
    let r = run_ok(
        &mut tpm,
        &with_pw(TPM_CC_PCR_EVENT, &23u32.to_be_bytes(), b"", &params),
    );
    // parameterSize, then TPML_DIGEST_VALUES.
    let param_size = u32::from_be_bytes(r[10..14].try_into().unwrap()) as usize;
    assert_eq!(param_size, 4 + 3 * 2 + 20 + 32 + 48);
    let mut expected = h("00 00 00 03 00 04");
    expected.extend_from_slice(&Sha1::digest(b"hello"));
    expected.extend_from_slice(&h("00 0b"));
    expected.extend_from_slice(&Sha256::digest(b"hello"));
    expected.extend_from_slice(&h("00 0c"));
    expected.extend_from_slice(&Sha384::digest(b"hello"));
    assert_eq!(&r[14..14 + param_size], &expected[..]);
    let e = Sha256::new()
        .chain_update([0u8; 32])
        .chain_update(Sha256::digest(b"hello"))
        .finalize();
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA256, 23), e.to_vec());
    // eventData over 1024 octets.
    let mut big = h("04 01");
    big.extend_from_slice(&[0; 1025]);
    let r = run(
        &mut tpm,
        &with_pw(TPM_CC_PCR_EVENT, &23u32.to_be_bytes(), b"", &big),
    );
    assert_eq!(rc_of(&r), 0x1D5);
}

#[test]
fn shutdown_and_the_three_kinds_of_startup() {
    let mut tpm = started();
    let d = [9u8; 32];
    extend_sha256(&mut tpm, 0, 0, &d);
    extend_sha256(&mut tpm, 0, 16, &d);
    let pcr0 = pcr_read(&mut tpm, TPM_ALG_SHA256, 0);
    let counter = update_counter(&mut tpm);

    // Resume: Shutdown(STATE), platform reset, Startup(STATE).
    run_ok(&mut tpm, &h(SHUTDOWN_STATE));
    tpm.init();
    run_ok(&mut tpm, &h(STARTUP_STATE));
    assert_eq!(
        pcr_read(&mut tpm, TPM_ALG_SHA256, 0),
        pcr0,
        "state-saved PCR kept"
    );
    assert_eq!(
        pcr_read(&mut tpm, TPM_ALG_SHA256, 16),
        [0u8; 32],
        "PCR 16 reset"
    );
    assert_eq!(
        update_counter(&mut tpm),
        counter + 5,
        "PCRs 16-19 and 23 re-initialised"
    );
    assert_eq!(
        (tpm.reset_count, tpm.restart_count, tpm.clear_count),
        (1, 1, 0)
    );

    // Startup(STATE) without a Shutdown(STATE) before it: TPM_RC_VALUE on parameter 1, and
    // the TPM still waits for Startup(CLEAR).
    tpm.init();
    assert_eq!(
        tpm.execute(0, &h(STARTUP_STATE)),
        h("80 01 00 00 00 0a 00 00 01 c4")
    );
    assert!(!tpm.is_started());
    run_ok(&mut tpm, &h(STARTUP_CLEAR));
    assert_eq!(
        pcr_read(&mut tpm, TPM_ALG_SHA256, 0),
        [0u8; 32],
        "TPM Reset"
    );
    assert_eq!((tpm.reset_count, tpm.restart_count), (2, 0));

    // Restart: Shutdown(STATE), Startup(CLEAR).
    extend_sha256(&mut tpm, 0, 0, &d);
    run_ok(&mut tpm, &h(SHUTDOWN_STATE));
    tpm.init();
    run_ok(&mut tpm, &h(STARTUP_CLEAR));
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA256, 0), [0u8; 32]);
    assert_eq!(
        (tpm.reset_count, tpm.restart_count, tpm.clear_count),
        (2, 1, 1)
    );

    // Extending a state-saved PCR after Shutdown(STATE) voids it.
    run_ok(&mut tpm, &h(SHUTDOWN_STATE));
    extend_sha256(&mut tpm, 0, 1, &d);
    tpm.init();
    assert_eq!(rc_of(&tpm.execute(0, &h(STARTUP_STATE))), 0x1C4);

    // Shutdown(CLEAR) then Startup(CLEAR): an orderly TPM Reset.
    run_ok(&mut tpm, &h(STARTUP_CLEAR));
    run_ok(&mut tpm, &h(SHUTDOWN_CLEAR));
    tpm.init();
    run_ok(&mut tpm, &h(STARTUP_CLEAR));
    assert!(tpm.orderly_startup);
    // A bad TPM_SU.
    let r = run(&mut tpm, &h("80 01 00 00 00 0c 00 00 01 45 00 02"));
    assert_eq!(rc_of(&r), 0x1C4);
}

// ---------------------------------------------------------------------------------------
// Testing, random numbers.

#[test]
fn self_test_golden_vectors() {
    let mut tpm = started();
    // IncrementalSelfTest(SHA-256): the others are still to do.
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 10 00 00 01 42 00 00 00 01 00 0b")),
        h("80 01 00 00 00 12 00 00 00 00 00 00 00 02 00 04 00 0c")
    );
    // SelfTest(NO) tests what is left.
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0b 00 00 01 43 00")),
        h(SUCCESS)
    );
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0e 00 00 01 42 00 00 00 00")),
        h("80 01 00 00 00 0e 00 00 00 00 00 00 00 00")
    );
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0b 00 00 01 43 01")),
        h(SUCCESS)
    );
    // GetTestResult: empty outData, TPM_RC_SUCCESS.
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0a 00 00 01 7c")),
        h("80 01 00 00 00 10 00 00 00 00 00 00 00 00 00 00")
    );
    // fullTest must be YES or NO; an unimplemented algorithm; too long a list.
    assert_eq!(
        rc_of(&run(&mut tpm, &h("80 01 00 00 00 0b 00 00 01 43 02"))),
        0x1C4
    );
    let r = run(
        &mut tpm,
        &h("80 01 00 00 00 10 00 00 01 42 00 00 00 01 00 0d"),
    );
    assert_eq!(rc_of(&r), 0x1C4);
    let r = run(&mut tpm, &h("80 01 00 00 00 0e 00 00 01 42 00 00 00 41"));
    assert_eq!(rc_of(&r), 0x1D5);
}

#[test]
fn failure_mode_answers_only_get_test_result_and_get_capability() {
    let mut tpm = started();
    tpm.force_failure_mode();
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0c 00 00 01 7b 00 08")),
        h("80 01 00 00 00 0a 00 00 01 01")
    );
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0a 00 00 01 7c")),
        h("80 01 00 00 00 10 00 00 00 00 00 00 00 00 01 01")
    );
    let cap = h("80 01 00 00 00 16 00 00 01 7a 00 00 00 06 00 00 01 05 00 00 00 01");
    assert_eq!(rc_of(&run(&mut tpm, &cap)), 0);
    // Even before Startup.
    tpm.init();
    tpm.force_failure_mode();
    assert_eq!(
        rc_of(&tpm.execute(0, &h("80 01 00 00 00 0a 00 00 01 7c"))),
        0
    );
    assert_eq!(rc_of(&tpm.execute(0, &h(STARTUP_CLEAR))), rc::FAILURE);
}

#[test]
fn get_random_and_stir_random() {
    let mut tpm = started();
    let a = run_ok(&mut tpm, &h("80 01 00 00 00 0c 00 00 01 7b 00 08"));
    assert_eq!(&a[..12], &h("80 01 00 00 00 14 00 00 00 00 00 08")[..]);
    let b = run_ok(&mut tpm, &h("80 01 00 00 00 0c 00 00 01 7b 00 08"));
    assert_ne!(a, b);
    // At most the largest digest, 48 octets; 0 gives an empty buffer.
    let big = run_ok(&mut tpm, &h("80 01 00 00 00 0c 00 00 01 7b ff ff"));
    assert_eq!(&big[..12], &h("80 01 00 00 00 3c 00 00 00 00 00 30")[..]);
    let none = run_ok(&mut tpm, &h("80 01 00 00 00 0c 00 00 01 7b 00 00"));
    assert_eq!(none, h("80 01 00 00 00 0c 00 00 00 00 00 00"));
    // Same entropy, same stream; StirRandom changes it.
    let mut x = started();
    let mut y = started();
    assert_eq!(
        run_ok(&mut x, &h("80 01 00 00 00 0c 00 00 01 7b 00 10")),
        run_ok(&mut y, &h("80 01 00 00 00 0c 00 00 01 7b 00 10"))
    );
    assert_eq!(
        tpm.execute(0, &h("80 01 00 00 00 0d 00 00 01 46 00 01 aa")),
        h(SUCCESS)
    );
    run_ok(&mut x, &h("80 01 00 00 00 0d 00 00 01 46 00 01 aa"));
    assert_ne!(
        run_ok(&mut x, &h("80 01 00 00 00 0c 00 00 01 7b 00 10")),
        run_ok(&mut y, &h("80 01 00 00 00 0c 00 00 01 7b 00 10"))
    );
    // inData over MAX_SYM_DATA; GetRandom with a parameter too many or too few.
    let mut stir = h("00 81");
    stir.extend_from_slice(&[0; 129]);
    let r = run(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, TPM_CC_STIR_RANDOM, &stir),
    );
    assert_eq!(rc_of(&r), 0x1D5);
    assert_eq!(
        rc_of(&run(&mut tpm, &h("80 01 00 00 00 0d 00 00 01 7b 00 08 00"))),
        rc::SIZE
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &h("80 01 00 00 00 0b 00 00 01 7b 00"))),
        0x1DA
    );
}

// ---------------------------------------------------------------------------------------
// GetCapability.

fn get_cap(tpm: &mut Tpm, capability: u32, property: u32, count: u32) -> Vec<u8> {
    let mut body = Vec::new();
    for v in [capability, property, count] {
        body.extend_from_slice(&v.to_be_bytes());
    }
    run(tpm, &cmd(TPM_ST_NO_SESSIONS, TPM_CC_GET_CAPABILITY, &body))
}

fn u32_at(r: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(r[at..at + 4].try_into().unwrap())
}

#[test]
fn get_capability_properties_golden_vector() {
    let mut tpm = started();
    // TPM_PT_MANUFACTURER alone: "PRPT", and more properties follow in the group.
    assert_eq!(
        tpm.execute(
            0,
            &h("80 01 00 00 00 16 00 00 01 7a 00 00 00 06 00 00 01 05 00 00 00 01")
        ),
        h("80 01 00 00 00 1b 00 00 00 00 01 00 00 00 06 00 00 00 01 00 00 01 05 50 52 50 54")
    );
    // The fixed group from the start.
    let r = get_cap(&mut tpm, TPM_CAP_TPM_PROPERTIES, 0, 1000);
    assert_eq!(r[10], NO);
    let n = u32_at(&r, 15) as usize;
    let props: Vec<(u32, u32)> = (0..n)
        .map(|i| (u32_at(&r, 19 + 8 * i), u32_at(&r, 23 + 8 * i)))
        .collect();
    let get = |pt: u32| props.iter().find(|p| p.0 == pt).map(|p| p.1);
    assert_eq!(get(TPM_PT_FAMILY_INDICATOR), Some(0x322E_3000));
    assert_eq!(get(TPM_PT_LEVEL), Some(0));
    assert_eq!(get(TPM_PT_REVISION), Some(159));
    assert_eq!(
        get(TPM_PT_VENDOR_STRING_1),
        Some(u32::from_be_bytes(*b"Para"))
    );
    assert_eq!(
        get(TPM_PT_VENDOR_STRING_3),
        Some(u32::from_be_bytes(*b"vTPM"))
    );
    assert_eq!(get(TPM_PT_VENDOR_STRING_4), Some(0));
    assert_eq!(get(TPM_PT_PCR_COUNT), Some(24));
    assert_eq!(get(TPM_PT_MAX_COMMAND_SIZE), Some(4096));
    assert_eq!(get(TPM_PT_MAX_DIGEST), Some(48));
    assert_eq!(get(TPM_PT_INPUT_BUFFER), Some(1024));
    assert_eq!(get(TPM_PT_TOTAL_COMMANDS), Some(43));
    assert_eq!(get(TPM_PT_NV_INDEX_MAX), Some(2048));
    assert_eq!(get(TPM_PT_NV_BUFFER_MAX), Some(1024));
    assert!(props.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(
        props.iter().all(|p| (PT_FIXED..PT_VAR).contains(&p.0)),
        "one group only"
    );
    // The variable group, and past it nothing.
    let r = get_cap(&mut tpm, TPM_CAP_TPM_PROPERTIES, PT_VAR, 2);
    assert_eq!(r[10], YES);
    assert_eq!(u32_at(&r, 19), TPM_PT_PERMANENT);
    assert_eq!(u32_at(&r, 27), TPM_PT_STARTUP_CLEAR);
    assert_eq!(u32_at(&r, 31), 0xF, "not an orderly startup");
    let r = get_cap(&mut tpm, TPM_CAP_TPM_PROPERTIES, PT_VAR + PT_GROUP, 10);
    assert_eq!(&r[10..], &h("00 00 00 00 06 00 00 00 00")[..]);
}

#[test]
fn get_capability_commands_as_linux_reads_them() {
    let mut tpm = started();
    // Linux: TPM_PT_TOTAL_COMMANDS, then that many TPMA_CC from TPM_CC_FIRST (0x11F) in one
    // response, and it requires exactly that many back.
    let r = get_cap(&mut tpm, TPM_CAP_TPM_PROPERTIES, TPM_PT_TOTAL_COMMANDS, 1);
    let total = u32_at(&r, 23);
    let r = get_cap(&mut tpm, TPM_CAP_COMMANDS, 0x11F, total);
    assert_eq!(r[10], NO);
    assert_eq!(u32_at(&r, 15), total);
    let attrs: Vec<u32> = (0..total as usize)
        .map(|i| u32_at(&r, 19 + 4 * i))
        .collect();
    assert_eq!(attrs[0], 0x0440_0120, "EvictControl: nv, two handles");
    assert_eq!(attrs[1], 0x0440_0122, "NV_UndefineSpace: nv, two handles");
    assert!(attrs.contains(&0x0240_013C), "PCR_Event: nv, one handle");
    for cc in [0x12A, 0x137, 0x14E, 0x169, 0x17D] {
        assert!(attrs.iter().any(|a| a & 0xFFFF == cc), "{cc:#x}");
    }
    assert!(attrs.contains(&0x0000_017E), "PCR_Read");
    assert!(attrs.contains(&0x0040_0144), "Startup: nv");
    // From a later code, with fewer asked for: moreData.
    let r = get_cap(&mut tpm, TPM_CAP_COMMANDS, 0x17A, 2);
    assert_eq!(r[10], YES);
    assert_eq!((u32_at(&r, 19), u32_at(&r, 23)), (0x017A, 0x017B));
}

#[test]
fn get_capability_pcrs_algs_handles() {
    let mut tpm = started();
    // TPM_CAP_PCRS: three full banks.
    let r = get_cap(&mut tpm, TPM_CAP_PCRS, 0, 1);
    assert_eq!(
        &r[10..],
        &h("00 00 00 00 05 00 00 00 03 00 04 03 ff ff ff 00 0b 03 ff ff ff 00 0c 03 ff ff ff")[..]
    );
    assert_eq!(
        &get_cap(&mut tpm, TPM_CAP_PCRS, 0, 0)[10..],
        &h("01 00 00 00 05 00 00 00 00")[..]
    );
    assert_eq!(rc_of(&get_cap(&mut tpm, TPM_CAP_PCRS, 1, 1)), 0x2C4);
    // TPM_CAP_ALGS: the hashes (TPMA_ALGORITHM hash), AES (symmetric), RSASSA, RSAPSS and
    // ECDSA (asymmetric, signing), RSAES and OAEP (asymmetric, encrypting: 0x201), RSA and
    // ECC (asymmetric, object), CFB (symmetric,
    // encrypting: 0x202), KEYEDHASH (hash, object, signing, encrypting: 0x30C), in
    // TPM_ALG_ID order.
    let r = get_cap(&mut tpm, TPM_CAP_ALGS, 0, 100);
    assert_eq!(
        &r[10..],
        &h("00 00 00 00 00 00 00 00 0d \
            00 01 00 00 00 09 \
            00 04 00 00 00 04  00 06 00 00 00 02  00 08 00 00 03 0c \
            00 0b 00 00 00 04  00 0c 00 00 00 04 \
            00 14 00 00 01 01  00 15 00 00 02 01  00 16 00 00 01 01  00 17 00 00 02 01 \
            00 18 00 00 01 01  00 23 00 00 00 09  00 43 00 00 02 02")[..]
    );
    let r = get_cap(&mut tpm, TPM_CAP_ALGS, 0x0005, 1);
    assert_eq!(
        &r[10..],
        &h("01 00 00 00 00 00 00 00 01 00 06 00 00 00 02")[..]
    );
    // Handles: PCRs from 20, permanent handles, empty transient list, bad type.
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, 20, 3);
    assert_eq!(
        &r[10..],
        &h("01 00 00 00 01 00 00 00 03 00 00 00 14 00 00 00 15 00 00 00 16")[..]
    );
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, 0x4000_0000, 100);
    assert_eq!(u32_at(&r, 15), 7);
    assert_eq!(u32_at(&r, 19), TPM_RH_OWNER);
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, 0x8000_0000, 100);
    assert_eq!(&r[10..], &h("00 00 00 00 01 00 00 00 00")[..]);
    assert_eq!(
        rc_of(&get_cap(&mut tpm, TPM_CAP_HANDLES, 0x0500_0000, 1)),
        0x2CB
    );
    // PCR properties: RESET_L0 is PCR 16 and 23.
    let r = get_cap(&mut tpm, TPM_CAP_PCR_PROPERTIES, TPM_PT_PCR_RESET_L0, 1);
    assert_eq!(
        &r[10..],
        &h("01 00 00 00 07 00 00 00 01 00 00 00 02 03 00 00 81")[..]
    );
    // ECC curves: NIST P-256 only. Bad capabilities and properties.
    let r = get_cap(&mut tpm, TPM_CAP_ECC_CURVES, 0, 10);
    assert_eq!(&r[10..], &h("00 00 00 00 08 00 00 00 01 00 03")[..]);
    assert_eq!(
        rc_of(&get_cap(&mut tpm, TPM_CAP_VENDOR_PROPERTY, 0, 1)),
        0x1C4
    );
    assert_eq!(rc_of(&get_cap(&mut tpm, 0x0B, 0, 1)), 0x1C4);
    assert_eq!(rc_of(&get_cap(&mut tpm, TPM_CAP_ACT, 0, 1)), 0x2C4);
    assert_eq!(
        rc_of(&get_cap(&mut tpm, TPM_CAP_AUTH_POLICIES, 0, 1)),
        0x2C4
    );
    let r = get_cap(&mut tpm, TPM_CAP_AUDIT_COMMANDS, 0, 10);
    assert_eq!(&r[10..], &h("00 00 00 00 04 00 00 00 00")[..]);
    // A truncated GetCapability with a bad capability reports the capability first.
    let r = run(&mut tpm, &h("80 01 00 00 00 0e 00 00 01 7a 00 00 00 0b"));
    assert_eq!(rc_of(&r), 0x1C4);
}

// ---------------------------------------------------------------------------------------
// Hostile input.

/// Valid commands of every implemented kind, for the mutation tests.
fn corpus() -> Vec<Vec<u8>> {
    let mut extend = h("00 00 00 02 00 04");
    extend.extend_from_slice(&[1; 20]);
    extend.extend_from_slice(&h("00 0b"));
    extend.extend_from_slice(&[2; 32]);
    vec![
        h(STARTUP_CLEAR),
        h(SHUTDOWN_STATE),
        h("80 01 00 00 00 0b 00 00 01 43 01"),
        h("80 01 00 00 00 12 00 00 01 42 00 00 00 02 00 04 00 0c"),
        h("80 01 00 00 00 0a 00 00 01 7c"),
        h("80 01 00 00 00 0c 00 00 01 7b 00 20"),
        h("80 01 00 00 00 0e 00 00 01 46 00 02 01 02"),
        h("80 01 00 00 00 16 00 00 01 7a 00 00 00 06 00 00 01 00 00 00 00 40"),
        h("80 01 00 00 00 1a 00 00 01 7e 00 00 00 02 00 04 03 ff 00 00 00 0c 03 00 00 81"),
        with_pw(TPM_CC_PCR_EXTEND, &16u32.to_be_bytes(), b"", &extend),
        with_pw(
            TPM_CC_PCR_EVENT,
            &23u32.to_be_bytes(),
            &[0, 0],
            &h("00 03 61 62 63"),
        ),
        with_pw(TPM_CC_PCR_RESET, &16u32.to_be_bytes(), b"", &[]),
        hash_cmd(b"abc", TPM_ALG_SHA256, TPM_RH_OWNER),
        define_cmd(
            TPM_RH_OWNER,
            b"",
            b"secret",
            &nv_public(0x0100_0001, TPM_ALG_SHA256, NV_ATTRS, &[0; 32], 16),
        ),
        undefine_cmd(TPM_RH_OWNER, NV_INDEX),
        read_public_cmd(NV_INDEX),
        write_cmd(NV_INDEX, NV_INDEX, b"pw", b"abcd", 4),
        read_cmd(TPM_RH_OWNER, NV_INDEX, b"", 8, 2),
        start_cmd(
            NV_INDEX,
            &[1; 16],
            1,
            &h("00 06 00 80 00 43"),
            TPM_ALG_SHA256,
        ),
        start_cmd(TPM_RH_NULL, &[1; 20], 0, &h("00 10"), TPM_ALG_SHA1),
        cmd(TPM_ST_NO_SESSIONS, FLUSH_CONTEXT, &h("02 00 00 00")),
        policy_pcr_cmd(0x0300_0000, &[2; 32], &h(SEL_0_16)),
        cmd(TPM_ST_NO_SESSIONS, POLICY_GET_DIGEST, &h("03 00 00 00")),
        seq_start_cmd(b"pw", TPM_ALG_SHA256),
        seq_update_cmd(0x8000_0000, b"pw", b"abcd"),
        seq_complete_cmd(0x8000_0000, b"pw", b"efgh", TPM_RH_OWNER),
        event_complete_cmd(16, 0x8000_0000, b"pw", b"ijkl"),
    ]
}

#[test]
fn every_truncation_of_every_command_is_an_error() {
    for command in corpus() {
        for len in 0..command.len() {
            // As sent: the size field no longer matches (or is missing).
            let mut tpm = started_with_nv();
            let r = run(&mut tpm, &command[..len]);
            assert_ne!(rc_of(&r), 0, "{:02x?}", &command[..len]);
            // With the size field made consistent: the unmarshalling finds the gap.
            if len >= 10 {
                let mut c = command[..len].to_vec();
                c[2..6].copy_from_slice(&(len as u32).to_be_bytes());
                let r = run(&mut tpm, &c);
                let code = rc_of(&r);
                assert_ne!(code, 0, "{c:02x?}");
                if c[6..10] != h("00 00 01 44")[..] {
                    assert_ne!(code, rc::COMMAND_SIZE);
                }
            }
        }
    }
}

#[test]
fn lying_sizes_are_command_size_errors() {
    for command in corpus() {
        let len = command.len() as u32;
        for size in [0, 9, 10, len - 1, len + 1, len + 1000, u32::MAX] {
            if size == len {
                continue;
            }
            let mut c = command.clone();
            c[2..6].copy_from_slice(&size.to_be_bytes());
            let mut tpm = started_with_nv();
            assert_eq!(rc_of(&run(&mut tpm, &c)), rc::COMMAND_SIZE);
        }
        // Trailing parameter octets with a consistent size: TPM_RC_SIZE.
        let mut c = command.clone();
        c.push(0);
        c[2..6].copy_from_slice(&(len + 1).to_be_bytes());
        let mut tpm = Tpm::new([5; 32]);
        if c[6..10] != h("00 00 01 44")[..] {
            tpm = started_with_nv();
            // The policy commands' session, 0x03000000.
            start(&mut tpm, TPM_RH_NULL, 1);
            // The sequence commands' sequence, 0x80000000.
            seq_start(&mut tpm, b"pw", TPM_ALG_SHA256);
        }
        assert_eq!(rc_of(&run(&mut tpm, &c)), rc::SIZE, "{c:02x?}");
    }
}

/// xorshift64*: a fixed, dependency-free stream for the fuzz tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn bit_flips_of_valid_commands_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let corpus = corpus();
    let mut tpm = started_with_nv();
    for i in 0..20_000 {
        let mut c = corpus[rng.below(corpus.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(c.len());
            c[at] ^= 1 << rng.below(8);
        }
        // Mostly keep the size consistent, so the flips reach the handlers.
        if rng.below(4) != 0 {
            let len = c.len() as u32;
            c[2..6].copy_from_slice(&len.to_be_bytes());
        }
        let locality = rng.below(6) as u8;
        let r = tpm.execute(locality, &c);
        check_response(&r);
        if i % 1000 == 0 {
            // Keep some commands running on a fresh, started TPM.
            tpm = started_with_nv();
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let codes: Vec<u32> = super::commands::COMMANDS.iter().map(|c| c.cc).collect();
    let mut tpm = started_with_nv();
    for _ in 0..20_000 {
        let len = rng.below(96);
        let mut c: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 10 && rng.below(3) != 0 {
            let tag = [TPM_ST_NO_SESSIONS, TPM_ST_SESSIONS][rng.below(2)];
            c[..2].copy_from_slice(&tag.to_be_bytes());
            c[2..6].copy_from_slice(&(len as u32).to_be_bytes());
            c[6..10].copy_from_slice(&codes[rng.below(codes.len())].to_be_bytes());
        }
        check_response(&tpm.execute(rng.below(5) as u8, &c));
    }
    // Whatever happened, the TPM still works.
    let r = tpm.execute(0, &h("80 01 00 00 00 0a 00 00 01 7c"));
    check_response(&r);
}

// ---------------------------------------------------------------------------------------
// State.

#[test]
fn state_round_trips_and_continues_identically() {
    let mut tpm = started();
    extend_sha256(&mut tpm, 0, 3, &[4; 32]);
    run_ok(&mut tpm, &h(SHUTDOWN_STATE));
    tpm.advance_clock(1234);
    let bytes = tpm.to_bytes();
    let mut copy = Tpm::from_bytes(&bytes).unwrap();
    assert_eq!(copy, tpm);
    assert_eq!(copy.to_bytes(), bytes);
    // Both produce the same responses from here on...
    let get_random = h("80 01 00 00 00 0c 00 00 01 7b 00 20");
    assert_eq!(copy.execute(0, &get_random), tpm.execute(0, &get_random));
    // ...unless one is reseeded, as a restore of a snapshot should be.
    copy.reseed(b"fresh entropy");
    assert_ne!(copy.execute(0, &get_random), tpm.execute(0, &get_random));
    // Persistent state survives a platform reset and a restore.
    tpm.init();
    let mut restored = Tpm::from_bytes(&tpm.to_bytes()).unwrap();
    run_ok(&mut restored, &h(STARTUP_STATE));
    let expected = Sha256::new()
        .chain_update([0u8; 32])
        .chain_update([4u8; 32])
        .finalize();
    assert_eq!(
        pcr_read(&mut restored, TPM_ALG_SHA256, 3),
        expected.to_vec()
    );
    assert_eq!(restored.clock_ms, 1234);
    // Debug shows no secret.
    let debug = alloc::format!("{restored:?}");
    assert!(
        debug.contains("started: true") && !debug.contains("eps"),
        "{debug}"
    );
    // A fresh TPM, unstarted, round-trips too.
    let fresh = Tpm::new([8; 32]);
    assert_eq!(Tpm::from_bytes(&fresh.to_bytes()), Ok(fresh));
}

#[test]
fn corrupt_states_are_rejected_without_panicking() {
    let mut tpm = started();
    run_ok(&mut tpm, &h(SHUTDOWN_STATE));
    let bytes = tpm.to_bytes();
    for len in 0..bytes.len() {
        let err = Tpm::from_bytes(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, StateError::Truncated | StateError::NotAState),
            "{len}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Tpm::from_bytes(&longer), Err(StateError::TrailingData));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert_eq!(Tpm::from_bytes(&magic), Err(StateError::NotAState));
    let mut version = bytes.clone();
    version[5] = 5;
    assert_eq!(
        Tpm::from_bytes(&version),
        Err(StateError::UnsupportedVersion(5))
    );
    // The orderly tag sits after magic, version, seeds, counters and clock.
    let orderly_at = 4 + 2 + 96 + 12 + 8;
    let mut orderly = bytes.clone();
    orderly[orderly_at] = 3;
    assert_eq!(
        Tpm::from_bytes(&orderly),
        Err(StateError::InvalidField("orderly"))
    );
    // Flipping any bit gives a state or an error, never a panic.
    let mut rng = Rng(77);
    for _ in 0..2000 {
        let mut c = bytes.clone();
        let at = rng.below(c.len());
        c[at] ^= 1 << rng.below(8);
        let _ = Tpm::from_bytes(&c);
    }
}

// ---------------------------------------------------------------------------------------
// TPM2_Hash.

const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

fn hash_cmd(data: &[u8], alg: u16, hierarchy: u32) -> Vec<u8> {
    let mut body = (data.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(data);
    body.extend_from_slice(&alg.to_be_bytes());
    body.extend_from_slice(&hierarchy.to_be_bytes());
    cmd(TPM_ST_NO_SESSIONS, TPM_CC_HASH, &body)
}

#[test]
fn hash_golden_vectors_and_null_ticket() {
    let mut tpm = started();
    // SHA-256("abc") in the null hierarchy: the NULL ticket.
    let command = h("80 01 00 00 00 15 00 00 01 7d 00 03 61 62 63 00 0b 40 00 00 07");
    assert_eq!(command, hash_cmd(b"abc", TPM_ALG_SHA256, TPM_RH_NULL));
    let expected = h(&alloc::format!(
        "80 01 00 00 00 34 00 00 00 00 00 20 {SHA256_ABC} 80 24 40 00 00 07 00 00"
    ));
    assert_eq!(tpm.execute(0, &command), expected);
    // SHA-1 and SHA-384 of "abc" (FIPS 180-4 examples), and of nothing.
    let r = run_ok(&mut tpm, &hash_cmd(b"abc", TPM_ALG_SHA1, TPM_RH_NULL));
    assert_eq!(
        &r[10..32],
        &h("00 14 a9993e364706816aba3e25717850c26c9cd0d89d")[..]
    );
    let r = run_ok(&mut tpm, &hash_cmd(b"abc", TPM_ALG_SHA384, TPM_RH_NULL));
    assert_eq!(&r[12..60], &Sha384::digest(b"abc")[..]);
    assert_eq!(&r[60..], &h("80 24 40 00 00 07 00 00")[..]);
    let r = run_ok(&mut tpm, &hash_cmd(b"", TPM_ALG_SHA1, TPM_RH_NULL));
    assert_eq!(&r[12..32], &Sha1::digest(b"")[..]);
    // The largest buffer, TPM_PT_INPUT_BUFFER octets.
    let big = [0x5a; MAX_DIGEST_BUFFER as usize];
    let r = run_ok(&mut tpm, &hash_cmd(&big, TPM_ALG_SHA256, TPM_RH_NULL));
    assert_eq!(&r[12..44], &Sha256::digest(big)[..]);
}

#[test]
fn hash_tickets_are_hmacs_with_the_hierarchy_proof() {
    use hmac::{Hmac, KeyInit, Mac};
    let mut tpm = started();
    for (hierarchy, seed) in [
        (TPM_RH_OWNER, tpm.sps),
        (TPM_RH_ENDORSEMENT, tpm.eps),
        (TPM_RH_PLATFORM, tpm.pps),
    ] {
        let r = run_ok(&mut tpm, &hash_cmd(b"abc", TPM_ALG_SHA256, hierarchy));
        let mut proof = <Hmac<Sha256> as KeyInit>::new_from_slice(&seed).unwrap();
        proof.update(b"Parapet hierarchy proof");
        let proof = proof.finalize().into_bytes();
        let mut ticket = <Hmac<Sha256> as KeyInit>::new_from_slice(&proof).unwrap();
        ticket.update(&h("80 24"));
        ticket.update(&h(SHA256_ABC));
        let mut expected = h(&alloc::format!("00 20 {SHA256_ABC} 80 24"));
        expected.extend_from_slice(&hierarchy.to_be_bytes());
        expected.extend_from_slice(&h("00 20"));
        expected.extend_from_slice(&ticket.finalize().into_bytes());
        assert_eq!(&r[10..], &expected[..], "{hierarchy:#x}");
    }
    // SHA-1: a 20-octet HMAC-SHA1 ticket.
    let r = run_ok(&mut tpm, &hash_cmd(b"abc", TPM_ALG_SHA1, TPM_RH_OWNER));
    assert_eq!(r.len(), 10 + 22 + 2 + 4 + 22);
    // Data starting with TPM_GENERATED_VALUE gets the NULL ticket in any hierarchy.
    let r = run_ok(
        &mut tpm,
        &hash_cmd(&h("ff 54 43 47 00"), TPM_ALG_SHA256, TPM_RH_OWNER),
    );
    assert_eq!(&r[44..], &h("80 24 40 00 00 07 00 00")[..]);
    let r = run_ok(
        &mut tpm,
        &hash_cmd(&h("ff 54 43"), TPM_ALG_SHA256, TPM_RH_OWNER),
    );
    assert_eq!(&r[46..50], &TPM_RH_OWNER.to_be_bytes());
}

#[test]
fn hash_errors() {
    let mut tpm = started();
    // Unsupported or NULL hashAlg: TPM_RC_HASH + P2.
    for alg in [TPM_ALG_NULL, 0x000D, 0x0012, 0xFFFF] {
        let r = run(&mut tpm, &hash_cmd(b"abc", alg, TPM_RH_NULL));
        assert_eq!(rc_of(&r), 0x2C3, "{alg:#x}");
    }
    // Not a TPMI_RH_HIERARCHY+: TPM_RC_VALUE + P3.
    for hierarchy in [TPM_RH_LOCKOUT, TPM_RS_PW, 0, 0x4000_0008] {
        let r = run(&mut tpm, &hash_cmd(b"abc", TPM_ALG_SHA256, hierarchy));
        assert_eq!(rc_of(&r), 0x3C4, "{hierarchy:#x}");
    }
    // More than MAX_DIGEST_BUFFER octets: TPM_RC_SIZE + P1.
    let big = [0; MAX_DIGEST_BUFFER as usize + 1];
    let r = run(&mut tpm, &hash_cmd(&big, TPM_ALG_SHA256, TPM_RH_NULL));
    assert_eq!(rc_of(&r), 0x1D5);
    // A password session is accepted (no handle to authorize: TPM_RC_HANDLE + S1).
    let mut params = h("00 03 61 62 63 00 0b");
    params.extend_from_slice(&TPM_RH_NULL.to_be_bytes());
    let r = run(&mut tpm, &with_pw(TPM_CC_HASH, &[], b"", &params));
    assert_eq!(rc_of(&r), 0x98B);
}

// ---------------------------------------------------------------------------------------
// NV indices.

const NV_INDEX: u32 = 0x0150_0016;
/// ownerread | ownerwrite | authread | authwrite, TPM_NT_ORDINARY.
const NV_ATTRS: u32 = 0x0006_0006;

/// A TPM2B_NV_PUBLIC.
fn nv_public(index: u32, name_alg: u16, attributes: u32, policy: &[u8], size: u16) -> Vec<u8> {
    let mut p = index.to_be_bytes().to_vec();
    p.extend_from_slice(&name_alg.to_be_bytes());
    p.extend_from_slice(&attributes.to_be_bytes());
    p.extend_from_slice(&(policy.len() as u16).to_be_bytes());
    p.extend_from_slice(policy);
    p.extend_from_slice(&size.to_be_bytes());
    let mut b = (p.len() as u16).to_be_bytes().to_vec();
    b.extend(p);
    b
}

fn define_cmd(auth_handle: u32, password: &[u8], auth: &[u8], public: &[u8]) -> Vec<u8> {
    let mut params = (auth.len() as u16).to_be_bytes().to_vec();
    params.extend_from_slice(auth);
    params.extend_from_slice(public);
    with_pw(
        TPM_CC_NV_DEFINE_SPACE,
        &auth_handle.to_be_bytes(),
        password,
        &params,
    )
}

fn define(tpm: &mut Tpm, index: u32, attributes: u32, auth: &[u8], size: u16) -> Vec<u8> {
    let public = nv_public(index, TPM_ALG_SHA256, attributes, &[], size);
    run(tpm, &define_cmd(TPM_RH_OWNER, b"", auth, &public))
}

fn two(a: u32, b: u32) -> Vec<u8> {
    [a.to_be_bytes(), b.to_be_bytes()].concat()
}

fn write_cmd(auth_handle: u32, index: u32, password: &[u8], data: &[u8], offset: u16) -> Vec<u8> {
    let mut params = (data.len() as u16).to_be_bytes().to_vec();
    params.extend_from_slice(data);
    params.extend_from_slice(&offset.to_be_bytes());
    with_pw(TPM_CC_NV_WRITE, &two(auth_handle, index), password, &params)
}

fn read_cmd(auth_handle: u32, index: u32, password: &[u8], size: u16, offset: u16) -> Vec<u8> {
    let params = [size.to_be_bytes(), offset.to_be_bytes()].concat();
    with_pw(TPM_CC_NV_READ, &two(auth_handle, index), password, &params)
}

fn undefine_cmd(auth_handle: u32, index: u32) -> Vec<u8> {
    with_pw(TPM_CC_NV_UNDEFINE_SPACE, &two(auth_handle, index), b"", &[])
}

fn read_public_cmd(index: u32) -> Vec<u8> {
    cmd(
        TPM_ST_NO_SESSIONS,
        TPM_CC_NV_READ_PUBLIC,
        &index.to_be_bytes(),
    )
}

/// A started TPM with NV_INDEX defined (32 octets) and written.
fn started_with_nv() -> Tpm {
    let mut tpm = started();
    assert_eq!(rc_of(&define(&mut tpm, NV_INDEX, NV_ATTRS, b"pw", 32)), 0);
    run_ok(
        &mut tpm,
        &write_cmd(TPM_RH_OWNER, NV_INDEX, b"", &[7; 32], 0),
    );
    tpm
}

const PW_SUCCESS: &str = "80 02 00 00 00 13 00 00 00 00 00 00 00 00 00 00 01 00 00";

#[test]
fn nv_lifecycle_golden_vectors() {
    let mut tpm = started();
    // DefineSpace(owner, auth "", 32 octets, ownerread|ownerwrite|authread|authwrite).
    let define = h(
        "80 02 00 00 00 2d 00 00 01 2a 40 00 00 01 00 00 00 09 40 00 00 09 00 00 01 00 00
                    00 00 00 0e 01 50 00 16 00 0b 00 06 00 06 00 00 00 20",
    );
    assert_eq!(
        define,
        define_cmd(
            TPM_RH_OWNER,
            b"",
            b"",
            &nv_public(NV_INDEX, TPM_ALG_SHA256, NV_ATTRS, &[], 32)
        )
    );
    assert_eq!(tpm.execute(0, &define), h(PW_SUCCESS));

    // ReadPublic: the public area, and the Name = nameAlg || SHA-256(TPMS_NV_PUBLIC).
    let read_public = h("80 01 00 00 00 0e 00 00 01 69 01 50 00 16");
    assert_eq!(read_public, read_public_cmd(NV_INDEX));
    let public = h("01 50 00 16 00 0b 00 06 00 06 00 00 00 20");
    let mut expected = h("80 01 00 00 00 3e 00 00 00 00 00 0e");
    expected.extend_from_slice(&public);
    expected.extend_from_slice(&h("00 22 00 0b"));
    expected.extend_from_slice(&Sha256::digest(&public));
    assert_eq!(tpm.execute(0, &read_public), expected);

    // Read before any write: TPM_RC_NV_UNINITIALIZED.
    let read = h(
        "80 02 00 00 00 23 00 00 01 4e 40 00 00 01 01 50 00 16 00 00 00 09 40 00 00 09 00
                  00 01 00 00 00 04 00 00",
    );
    assert_eq!(read, read_cmd(TPM_RH_OWNER, NV_INDEX, b"", 4, 0));
    assert_eq!(tpm.execute(0, &read), h("80 01 00 00 00 0a 00 00 01 4a"));

    // Write de ad be ef at offset 0.
    let write = h(
        "80 02 00 00 00 27 00 00 01 37 40 00 00 01 01 50 00 16 00 00 00 09 40 00 00 09 00
                   00 01 00 00 00 04 de ad be ef 00 00",
    );
    assert_eq!(
        write,
        write_cmd(TPM_RH_OWNER, NV_INDEX, b"", &h("de ad be ef"), 0)
    );
    assert_eq!(tpm.execute(0, &write), h(PW_SUCCESS));

    // Read it back.
    assert_eq!(
        tpm.execute(0, &read),
        h("80 02 00 00 00 19 00 00 00 00 00 00 00 06 00 04 de ad be ef 00 00 01 00 00")
    );
    // The unwritten octets are 0xFF.
    let r = run_ok(&mut tpm, &read_cmd(TPM_RH_OWNER, NV_INDEX, b"", 32, 0));
    assert_eq!(
        &r[14..48],
        &[&h("00 20 de ad be ef")[..], &[0xff; 28]].concat()[..]
    );

    // ReadPublic now shows TPMA_NV_WRITTEN, and the Name changed with it.
    let public = h("01 50 00 16 00 0b 20 06 00 06 00 00 00 20");
    let mut expected = h("80 01 00 00 00 3e 00 00 00 00 00 0e");
    expected.extend_from_slice(&public);
    expected.extend_from_slice(&h("00 22 00 0b"));
    expected.extend_from_slice(&Sha256::digest(&public));
    assert_eq!(tpm.execute(0, &read_public), expected);

    // The handle list.
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, 0x0100_0000, 10);
    assert_eq!(&r[10..], &h("00 00 00 00 01 00 00 00 01 01 50 00 16")[..]);
    let r = get_cap(&mut tpm, TPM_CAP_TPM_PROPERTIES, TPM_PT_HR_NV_INDEX, 1);
    assert_eq!((u32_at(&r, 19), u32_at(&r, 23)), (TPM_PT_HR_NV_INDEX, 1));

    // Undefine: gone.
    let undefine = h(
        "80 02 00 00 00 1f 00 00 01 22 40 00 00 01 01 50 00 16 00 00 00 09 40 00 00 09
                      00 00 01 00 00",
    );
    assert_eq!(undefine, undefine_cmd(TPM_RH_OWNER, NV_INDEX));
    assert_eq!(tpm.execute(0, &undefine), h(PW_SUCCESS));
    assert_eq!(
        tpm.execute(0, &read_public),
        h("80 01 00 00 00 0a 00 00 01 8b"),
        "TPM_RC_HANDLE + H1"
    );
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, 0x0100_0000, 10);
    assert_eq!(&r[10..], &h("00 00 00 00 01 00 00 00 00")[..]);
}

#[test]
fn nv_names_of_other_name_algorithms_and_policies() {
    let mut tpm = started();
    for (index, alg, policy) in [
        (0x0100_0001u32, TPM_ALG_SHA1, alloc::vec![0x11; 20]),
        (0x0100_0002, TPM_ALG_SHA384, alloc::vec![0x22; 48]),
        (0x01FF_FFFF, TPM_ALG_SHA256, alloc::vec![]),
    ] {
        let public = nv_public(index, alg, NV_ATTRS | TPMA_NV_NO_DA, &policy, 0);
        run_ok(&mut tpm, &define_cmd(TPM_RH_OWNER, b"", b"", &public));
        let r = run_ok(&mut tpm, &read_public_cmd(index));
        assert_eq!(&r[10..10 + public.len()], &public[..]);
        let digest: Vec<u8> = match alg {
            TPM_ALG_SHA1 => Sha1::digest(&public[2..]).to_vec(),
            TPM_ALG_SHA384 => Sha384::digest(&public[2..]).to_vec(),
            _ => Sha256::digest(&public[2..]).to_vec(),
        };
        let name = &r[10 + public.len()..];
        assert_eq!(name[..2], ((digest.len() + 2) as u16).to_be_bytes());
        assert_eq!(name[2..4], alg.to_be_bytes());
        assert_eq!(&name[4..], &digest[..]);
    }
    // Listed in handle order, from a starting handle, with moreData.
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, 0x0100_0002, 1);
    assert_eq!(&r[10..], &h("01 00 00 00 01 00 00 00 01 01 00 00 02")[..]);
}

#[test]
fn nv_define_space_errors() {
    let mut tpm = started();
    let ok = nv_public(NV_INDEX, TPM_ALG_SHA256, NV_ATTRS, &[], 32);
    let attempt = |tpm: &mut Tpm, auth: &[u8], public: &[u8]| {
        rc_of(&run(tpm, &define_cmd(TPM_RH_OWNER, b"", auth, public)))
    };
    // authHandle not a TPMI_RH_PROVISION: TPM_RC_VALUE + H1.
    for handle in [TPM_RH_ENDORSEMENT, TPM_RH_NULL, TPM_RH_LOCKOUT, NV_INDEX] {
        assert_eq!(
            rc_of(&run(&mut tpm, &define_cmd(handle, b"", b"", &ok))),
            0x184
        );
    }
    // auth longer than a TPM2B_AUTH (48) or than nameAlg's digest: TPM_RC_SIZE + P1.
    assert_eq!(attempt(&mut tpm, &[1; 49], &ok), 0x1D5);
    assert_eq!(attempt(&mut tpm, &[1; 33], &ok), 0x1D5);
    let sha1 = nv_public(NV_INDEX, TPM_ALG_SHA1, NV_ATTRS, &[], 32);
    assert_eq!(attempt(&mut tpm, &[1; 21], &sha1), 0x1D5);
    // publicInfo: empty, size lying either way, bad index handle, hash, reserved bits.
    assert_eq!(attempt(&mut tpm, b"", &h("00 00")), 0x2D5);
    let mut longer = ok.clone();
    longer[1] += 1;
    longer.push(0);
    assert_eq!(attempt(&mut tpm, b"", &longer), 0x2D5);
    let mut shorter = ok.clone();
    shorter[1] -= 1;
    assert_eq!(
        attempt(&mut tpm, b"", &shorter),
        0x2D5,
        "leftover in the command"
    );
    for index in [0x0000_0001, 0x0200_0000, 0x8100_0000, TPM_RH_OWNER] {
        let p = nv_public(index, TPM_ALG_SHA256, NV_ATTRS, &[], 32);
        assert_eq!(attempt(&mut tpm, b"", &p), 0x2C4, "{index:#x}");
    }
    for alg in [TPM_ALG_NULL, 0x000D] {
        let p = nv_public(NV_INDEX, alg, NV_ATTRS, &[], 32);
        assert_eq!(attempt(&mut tpm, b"", &p), 0x2C3);
    }
    for bit in [8, 9, 20, 24] {
        let p = nv_public(NV_INDEX, TPM_ALG_SHA256, NV_ATTRS | 1 << bit, &[], 32);
        assert_eq!(attempt(&mut tpm, b"", &p), 0x2E1, "bit {bit}");
    }
    // authPolicy neither empty nor a nameAlg digest; dataSize over MAX_NV_INDEX_SIZE.
    let p = nv_public(NV_INDEX, TPM_ALG_SHA256, NV_ATTRS, &[0; 20], 32);
    assert_eq!(attempt(&mut tpm, b"", &p), 0x2D5);
    let p = nv_public(NV_INDEX, TPM_ALG_SHA256, NV_ATTRS, &[], 2049);
    assert_eq!(attempt(&mut tpm, b"", &p), 0x2D5);
    // Attributes (TPM_RC_ATTRIBUTES + P2): a type other than ordinary; no way to read or
    // to write; WRITTEN, WRITELOCKED, READLOCKED; PLATFORMCREATE by the owner;
    // POLICY_DELETE.
    for attributes in [
        NV_ATTRS | 1 << 4,
        NV_ATTRS | 2 << 4,
        NV_ATTRS | 4 << 4,
        NV_ATTRS | 8 << 4,
        NV_ATTRS | 9 << 4,
        TPMA_NV_OWNERWRITE | TPMA_NV_AUTHWRITE,
        TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD,
        NV_ATTRS | TPMA_NV_WRITTEN,
        NV_ATTRS | TPMA_NV_WRITELOCKED,
        NV_ATTRS | TPMA_NV_READLOCKED,
        NV_ATTRS | TPMA_NV_PLATFORMCREATE,
        NV_ATTRS | TPMA_NV_POLICY_DELETE,
    ] {
        let p = nv_public(NV_INDEX, TPM_ALG_SHA256, attributes, &[], 32);
        assert_eq!(attempt(&mut tpm, b"", &p), 0x2C2, "{attributes:#x}");
    }
    // The platform must set PLATFORMCREATE.
    assert_eq!(
        rc_of(&run(&mut tpm, &define_cmd(TPM_RH_PLATFORM, b"", b"", &ok))),
        0x2C2
    );
    // Authorization: none, a wrong owner password, an HMAC session handle.
    let mut params = h("00 00");
    params.extend_from_slice(&ok);
    let mut body = TPM_RH_OWNER.to_be_bytes().to_vec();
    body.extend_from_slice(&params);
    let r = run(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, TPM_CC_NV_DEFINE_SPACE, &body),
    );
    assert_eq!(rc_of(&r), rc::AUTH_MISSING);
    let r = run(&mut tpm, &define_cmd(TPM_RH_OWNER, b"x", b"", &ok));
    assert_eq!(
        rc_of(&r),
        0x9A2,
        "TPM_RC_BAD_AUTH + S1: the owner is DA-exempt"
    );
    let mut hmac = define_cmd(TPM_RH_OWNER, b"", b"", &ok);
    hmac[18..22].copy_from_slice(&0x0200_0000u32.to_be_bytes());
    assert_eq!(rc_of(&run(&mut tpm, &hmac)), rc::REFERENCE_S0);
    // Defined once; the second time TPM_RC_NV_DEFINED.
    assert_eq!(attempt(&mut tpm, b"", &ok), 0);
    assert_eq!(attempt(&mut tpm, b"", &ok), 0x14C);
    // NV space: 16 KiB of data in all, 64 indices.
    let mut tpm = started();
    for n in 0..8 {
        assert_eq!(
            rc_of(&define(&mut tpm, 0x0100_0000 + n, NV_ATTRS, b"", 2048)),
            0
        );
    }
    assert_eq!(
        rc_of(&define(&mut tpm, 0x0100_0100, NV_ATTRS, b"", 1)),
        0x14B
    );
    for n in 0..56 {
        assert_eq!(
            rc_of(&define(&mut tpm, 0x0100_0100 + n, NV_ATTRS, b"", 0)),
            0
        );
    }
    assert_eq!(
        rc_of(&define(&mut tpm, 0x0100_0200, NV_ATTRS, b"", 0)),
        0x14B
    );
    // Trailing zeros of the authValue do not count.
    let mut tpm = started();
    let mut auth = [0u8; 48];
    auth[..2].copy_from_slice(b"pw");
    assert_eq!(rc_of(&define(&mut tpm, NV_INDEX, NV_ATTRS, &auth, 32)), 0);
    run_ok(&mut tpm, &write_cmd(NV_INDEX, NV_INDEX, b"pw", b"x", 0));
}

#[test]
fn nv_platform_indices() {
    let mut tpm = started();
    let attributes = TPMA_NV_PPREAD | TPMA_NV_PPWRITE | TPMA_NV_PLATFORMCREATE;
    let p = nv_public(NV_INDEX, TPM_ALG_SHA256, attributes, &[], 8);
    run_ok(&mut tpm, &define_cmd(TPM_RH_PLATFORM, b"", b"", &p));
    // The owner may neither write, read nor delete it.
    let r = run(&mut tpm, &write_cmd(TPM_RH_OWNER, NV_INDEX, b"", b"a", 0));
    assert_eq!(rc_of(&r), rc::NV_AUTHORIZATION);
    run_ok(
        &mut tpm,
        &write_cmd(TPM_RH_PLATFORM, NV_INDEX, b"", b"a", 0),
    );
    let r = run(&mut tpm, &read_cmd(TPM_RH_OWNER, NV_INDEX, b"", 1, 0));
    assert_eq!(rc_of(&r), rc::NV_AUTHORIZATION);
    let r = run_ok(&mut tpm, &read_cmd(TPM_RH_PLATFORM, NV_INDEX, b"", 1, 0));
    assert_eq!(&r[14..17], &h("00 01 61")[..]);
    let r = run(&mut tpm, &undefine_cmd(TPM_RH_OWNER, NV_INDEX));
    assert_eq!(rc_of(&r), rc::NV_AUTHORIZATION);
    run_ok(&mut tpm, &undefine_cmd(TPM_RH_PLATFORM, NV_INDEX));
}

#[test]
fn nv_write_and_read_errors() {
    let mut tpm = started_with_nv();
    let write = |tpm: &mut Tpm, auth: u32, pw: &[u8], data: &[u8], offset: u16| {
        rc_of(&run(tpm, &write_cmd(auth, NV_INDEX, pw, data, offset)))
    };
    let read = |tpm: &mut Tpm, auth: u32, pw: &[u8], size: u16, offset: u16| {
        rc_of(&run(tpm, &read_cmd(auth, NV_INDEX, pw, size, offset)))
    };
    // Offsets and sizes: offset past the end TPM_RC_VALUE + P2; past the end with the data
    // TPM_RC_NV_RANGE; exactly to the end is fine.
    assert_eq!(write(&mut tpm, TPM_RH_OWNER, b"", b"", 32), 0);
    assert_eq!(write(&mut tpm, TPM_RH_OWNER, b"", b"ab", 30), 0);
    assert_eq!(write(&mut tpm, TPM_RH_OWNER, b"", b"", 33), 0x2C4);
    assert_eq!(write(&mut tpm, TPM_RH_OWNER, b"", b"abc", 30), rc::NV_RANGE);
    assert_eq!(
        write(&mut tpm, TPM_RH_OWNER, b"", &[0; 33], 0),
        rc::NV_RANGE
    );
    assert_eq!(write(&mut tpm, TPM_RH_OWNER, b"", &[0; 1025], 0), 0x1D5);
    assert_eq!(read(&mut tpm, TPM_RH_OWNER, b"", 2, 30), 0);
    assert_eq!(read(&mut tpm, TPM_RH_OWNER, b"", 0, 32), 0);
    assert_eq!(read(&mut tpm, TPM_RH_OWNER, b"", 0, 33), 0x2C4);
    assert_eq!(read(&mut tpm, TPM_RH_OWNER, b"", 3, 30), rc::NV_RANGE);
    assert_eq!(read(&mut tpm, TPM_RH_OWNER, b"", 1025, 0), 0x1C4);
    // The index's own authValue, "pw" (the index is not DA-exempt: TPM_RC_AUTH_FAIL).
    assert_eq!(write(&mut tpm, NV_INDEX, b"pw", b"z", 0), 0);
    assert_eq!(read(&mut tpm, NV_INDEX, b"pw\0", 1, 0), 0);
    assert_eq!(write(&mut tpm, NV_INDEX, b"", b"z", 0), 0x98E);
    assert_eq!(read(&mut tpm, NV_INDEX, b"px", 1, 0), 0x98E);
    assert_eq!(write(&mut tpm, TPM_RH_OWNER, b"pw", b"z", 0), 0x9A2);
    // Another index's authorization: TPM_RC_NV_AUTHORIZATION.
    assert_eq!(rc_of(&define(&mut tpm, 0x0100_0000, NV_ATTRS, b"", 1)), 0);
    let r = run(&mut tpm, &write_cmd(0x0100_0000, NV_INDEX, b"", b"z", 0));
    assert_eq!(rc_of(&r), rc::NV_AUTHORIZATION);
    let r = run(&mut tpm, &read_cmd(0x0100_0000, NV_INDEX, b"", 1, 0));
    assert_eq!(rc_of(&r), rc::NV_AUTHORIZATION);
    // Undefined indices: TPM_RC_HANDLE + H1 (as authHandle) or H2.
    let r = run(&mut tpm, &write_cmd(0x0100_0001, NV_INDEX, b"", b"z", 0));
    assert_eq!(rc_of(&r), 0x18B);
    let r = run(&mut tpm, &read_cmd(TPM_RH_OWNER, 0x0100_0001, b"", 1, 0));
    assert_eq!(rc_of(&r), 0x28B);
    let r = run(&mut tpm, &undefine_cmd(TPM_RH_OWNER, 0x0100_0001));
    assert_eq!(rc_of(&r), 0x28B);
    let r = run(
        &mut tpm,
        &write_cmd(TPM_RH_ENDORSEMENT, NV_INDEX, b"", b"z", 0),
    );
    assert_eq!(rc_of(&r), 0x184, "TPMI_RH_NV_AUTH");
    assert_eq!(rc_of(&run(&mut tpm, &read_public_cmd(0x4000_0001))), 0x184);
    assert_eq!(rc_of(&run(&mut tpm, &undefine_cmd(TPM_RH_OWNER, 5))), 0x284);

    // Which authorizations the attributes allow.
    let mut tpm = started();
    let owner_only = TPMA_NV_OWNERREAD | TPMA_NV_OWNERWRITE | TPMA_NV_NO_DA;
    let auth_only = TPMA_NV_AUTHREAD | TPMA_NV_AUTHWRITE | TPMA_NV_NO_DA;
    assert_eq!(
        rc_of(&define(&mut tpm, 0x0100_0001, owner_only, b"pw", 4)),
        0
    );
    assert_eq!(
        rc_of(&define(&mut tpm, 0x0100_0002, auth_only, b"pw", 4)),
        0
    );
    let r = run(
        &mut tpm,
        &write_cmd(0x0100_0001, 0x0100_0001, b"pw", b"a", 0),
    );
    assert_eq!(rc_of(&r), rc::AUTH_UNAVAILABLE, "no AUTHWRITE");
    let r = run(
        &mut tpm,
        &write_cmd(TPM_RH_OWNER, 0x0100_0002, b"", b"a", 0),
    );
    assert_eq!(rc_of(&r), rc::NV_AUTHORIZATION, "no OWNERWRITE");
    run_ok(
        &mut tpm,
        &write_cmd(TPM_RH_OWNER, 0x0100_0001, b"", b"a", 0),
    );
    run_ok(
        &mut tpm,
        &write_cmd(0x0100_0002, 0x0100_0002, b"pw", b"a", 0),
    );
    let r = run(
        &mut tpm,
        &write_cmd(0x0100_0002, 0x0100_0002, b"p", b"a", 0),
    );
    assert_eq!(rc_of(&r), 0x9A2, "NO_DA: TPM_RC_BAD_AUTH");
    let r = run(&mut tpm, &read_cmd(0x0100_0001, 0x0100_0001, b"pw", 1, 0));
    assert_eq!(rc_of(&r), rc::AUTH_UNAVAILABLE, "no AUTHREAD");
    let r = run(&mut tpm, &read_cmd(TPM_RH_OWNER, 0x0100_0002, b"", 1, 0));
    assert_eq!(rc_of(&r), rc::NV_AUTHORIZATION, "no OWNERREAD");
    // Authorization errors come before TPM_RC_NV_UNINITIALIZED.
    assert_eq!(rc_of(&define(&mut tpm, 0x0100_0003, auth_only, b"", 4)), 0);
    let r = run(&mut tpm, &read_cmd(TPM_RH_OWNER, 0x0100_0003, b"", 1, 0));
    assert_eq!(rc_of(&r), rc::NV_AUTHORIZATION);
    let r = run(&mut tpm, &read_cmd(0x0100_0003, 0x0100_0003, b"", 1, 0));
    assert_eq!(rc_of(&r), rc::NV_UNINITIALIZED);

    // TPMA_NV_WRITEALL: only whole writes.
    let write_all = NV_ATTRS | TPMA_NV_WRITEALL;
    assert_eq!(rc_of(&define(&mut tpm, 0x0100_0004, write_all, b"", 4)), 0);
    let r = run(
        &mut tpm,
        &write_cmd(TPM_RH_OWNER, 0x0100_0004, b"", b"abc", 0),
    );
    assert_eq!(rc_of(&r), rc::NV_RANGE);
    run_ok(
        &mut tpm,
        &write_cmd(TPM_RH_OWNER, 0x0100_0004, b"", b"abcd", 0),
    );

    // A policy-only index cannot be reached with a password.
    let policy = TPMA_NV_POLICYREAD | TPMA_NV_POLICYWRITE;
    let p = nv_public(0x0100_0005, TPM_ALG_SHA256, policy, &[0; 32], 4);
    run_ok(&mut tpm, &define_cmd(TPM_RH_OWNER, b"", b"", &p));
    let r = run(
        &mut tpm,
        &write_cmd(TPM_RH_OWNER, 0x0100_0005, b"", b"a", 0),
    );
    assert_eq!(rc_of(&r), rc::NV_AUTHORIZATION);
    let r = run(&mut tpm, &write_cmd(0x0100_0005, 0x0100_0005, b"", b"a", 0));
    assert_eq!(rc_of(&r), rc::AUTH_UNAVAILABLE);
    // ReadPublic takes no session for its handle, and NV_Write needs one.
    let mut body = two(TPM_RH_OWNER, 0x0100_0001);
    body.extend_from_slice(&h("00 01 61 00 00"));
    let r = run(&mut tpm, &cmd(TPM_ST_NO_SESSIONS, TPM_CC_NV_WRITE, &body));
    assert_eq!(rc_of(&r), rc::AUTH_MISSING);
}

#[test]
fn nv_clear_stclear_and_state_round_trip() {
    let mut tpm = started_with_nv();
    let clear_stclear = NV_ATTRS | TPMA_NV_CLEAR_STCLEAR;
    assert_eq!(
        rc_of(&define(&mut tpm, 0x0100_0000, clear_stclear, b"", 2)),
        0
    );
    run_ok(
        &mut tpm,
        &write_cmd(TPM_RH_OWNER, 0x0100_0000, b"", b"hi", 0),
    );
    // Saved, restored, both indices as they were.
    let bytes = tpm.to_bytes();
    let mut copy = Tpm::from_bytes(&bytes).unwrap();
    assert_eq!(copy, tpm);
    assert_eq!(copy.to_bytes(), bytes);
    let r = run_ok(&mut copy, &read_cmd(NV_INDEX, NV_INDEX, b"pw", 32, 0));
    assert_eq!(&r[16..48], &[7; 32]);
    assert_eq!(
        copy.execute(0, &read_public_cmd(NV_INDEX)),
        tpm.execute(0, &read_public_cmd(NV_INDEX))
    );
    // Resume keeps CLEAR_STCLEAR indices written, Restart and Reset do not.
    run_ok(&mut copy, &h(SHUTDOWN_STATE));
    copy.init();
    run_ok(&mut copy, &h(STARTUP_STATE));
    run_ok(&mut copy, &read_cmd(TPM_RH_OWNER, 0x0100_0000, b"", 2, 0));
    run_ok(&mut copy, &h(SHUTDOWN_STATE));
    copy.init();
    run_ok(&mut copy, &h(STARTUP_CLEAR));
    let r = run(&mut copy, &read_cmd(TPM_RH_OWNER, 0x0100_0000, b"", 2, 0));
    assert_eq!(rc_of(&r), rc::NV_UNINITIALIZED);
    run_ok(&mut copy, &read_cmd(TPM_RH_OWNER, NV_INDEX, b"", 32, 0));
    // A version 1 state (before NV indices) is still read: no indices.
    let fresh = started();
    let mut v1 = fresh.to_bytes();
    // No NV indices, no persistent objects (version 3's last field), empty hierarchy
    // authorizations and disableClear CLEAR (version 4's).
    assert_eq!(v1.split_off(v1.len() - 17), [0; 17]);
    v1[5] = 1;
    assert_eq!(Tpm::from_bytes(&v1), Ok(fresh));
    // Every truncation of a state with NV content is an error.
    for len in 0..bytes.len() {
        let err = Tpm::from_bytes(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, StateError::Truncated | StateError::NotAState),
            "{len}"
        );
    }
    // The NV part is checked: a bad nameAlg, an out-of-order list.
    // (Before the persistent objects' count and version 4's 9 octets of authorizations.)
    let nv_at = bytes.len() - 9 - 4 - (4 + 14 + 4 + 32 + 14 + 2 + 2);
    assert_eq!(&bytes[nv_at..nv_at + 4], &[0, 0, 0, 2]);
    let mut bad = bytes.clone();
    bad[nv_at + 4 + 5] = 0x10;
    assert_eq!(
        Tpm::from_bytes(&bad),
        Err(StateError::InvalidField("NV nameAlg"))
    );
    let mut bad = bytes.clone();
    bad[nv_at + 4..nv_at + 8].copy_from_slice(&0x0200_0000u32.to_be_bytes());
    assert_eq!(
        Tpm::from_bytes(&bad),
        Err(StateError::InvalidField("NV index"))
    );
    let mut bad = bytes.clone();
    bad[nv_at + 4..nv_at + 8].copy_from_slice(&0x01FF_0000u32.to_be_bytes());
    assert_eq!(
        Tpm::from_bytes(&bad),
        Err(StateError::InvalidField("NV index order"))
    );
    let mut rng = Rng(99);
    for _ in 0..2000 {
        let mut c = bytes.clone();
        let at = nv_at + rng.below(c.len() - nv_at);
        c[at] ^= 1 << rng.below(8);
        let _ = Tpm::from_bytes(&c);
    }
}

// ---------------------------------------------------------------------------------------
// Sessions. Every HMAC, cpHash, rpHash, sessionKey and policyDigest here is computed from
// the Part 1 formulas written out with the `sha2` and `hmac` crates, not with the TPM's own
// code.

use hmac::{Hmac, KeyInit, Mac};

const POLICY_PCR: u32 = 0x0000_017F;
const POLICY_GET_DIGEST: u32 = 0x0000_0189;
const START_AUTH_SESSION: u32 = 0x0000_0176;
const FLUSH_CONTEXT: u32 = 0x0000_0165;

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().to_vec()
}

/// TPM2_StartAuthSession(tpmKey = TPM_RH_NULL, bind) body: nonceCaller, an empty salt,
/// sessionType, symmetric (the raw TPMT_SYM_DEF octets), authHash.
fn start_cmd(bind: u32, nonce: &[u8], session_type: u8, symmetric: &[u8], hash: u16) -> Vec<u8> {
    let mut body = two(TPM_RH_NULL, bind);
    body.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
    body.extend_from_slice(nonce);
    body.extend_from_slice(&[0, 0, session_type]);
    body.extend_from_slice(symmetric);
    body.extend_from_slice(&hash.to_be_bytes());
    cmd(TPM_ST_NO_SESSIONS, START_AUTH_SESSION, &body)
}

/// A client's view of one session: what it needs to compute HMACs.
struct Client {
    handle: u32,
    nonce_tpm: Vec<u8>,
    nonce_caller: Vec<u8>,
    session_key: Vec<u8>,
}

/// Starts an unsalted SHA-256 session with symmetric TPM_ALG_NULL.
fn start(tpm: &mut Tpm, bind: u32, session_type: u8) -> Client {
    let nonce_caller = [0x5a; 32].to_vec();
    let r = run_ok(
        tpm,
        &start_cmd(
            bind,
            &nonce_caller,
            session_type,
            &h("00 10"),
            TPM_ALG_SHA256,
        ),
    );
    // tag, size 48, success, sessionHandle, nonceTPM (TPM2B, 32 octets).
    assert_eq!(&r[..10], &h("80 01 00 00 00 30 00 00 00 00")[..]);
    assert_eq!(&r[14..16], &[0, 32]);
    Client {
        handle: u32_at(&r, 10),
        nonce_tpm: r[16..48].to_vec(),
        nonce_caller,
        session_key: Vec::new(),
    }
}

/// A command authorized by one HMAC or policy session: the command HMAC is
/// HMAC-SHA256(sessionKey || authValue, cpHash || nonceCaller || nonceTPM || attributes),
/// cpHash = SHA-256(commandCode || Names || parameters) (Part 1 §19.6.5, §18.7).
fn with_session(
    c: &Client,
    cc: u32,
    handles: &[u32],
    names: &[Vec<u8>],
    auth_value: &[u8],
    attributes: u8,
    params: &[u8],
) -> Vec<u8> {
    let mut cp_parts: Vec<&[u8]> = Vec::new();
    let cc_bytes = cc.to_be_bytes();
    cp_parts.push(&cc_bytes);
    for n in names {
        cp_parts.push(n);
    }
    cp_parts.push(params);
    let cp_hash = sha256(&cp_parts);
    let key = [&c.session_key[..], auth_value].concat();
    let hmac = hmac256(
        &key,
        &[&cp_hash, &c.nonce_caller, &c.nonce_tpm, &[attributes]],
    );
    let mut body: Vec<u8> = handles.iter().flat_map(|h| h.to_be_bytes()).collect();
    let mut area = c.handle.to_be_bytes().to_vec();
    area.extend_from_slice(&(c.nonce_caller.len() as u16).to_be_bytes());
    area.extend_from_slice(&c.nonce_caller);
    area.push(attributes);
    area.extend_from_slice(&(hmac.len() as u16).to_be_bytes());
    area.extend_from_slice(&hmac);
    body.extend_from_slice(&(area.len() as u32).to_be_bytes());
    body.extend(area);
    body.extend_from_slice(params);
    cmd(TPM_ST_SESSIONS, cc, &body)
}

/// Checks a session response's HMAC, HMAC-SHA256(key, rpHash || nonceTPM || nonceCaller ||
/// attributes) with rpHash = SHA-256(TPM_RC_SUCCESS || commandCode || parameters) (Part 1
/// §19.6.9), and takes the rolled nonceTPM. Returns the response parameters.
fn check_session_response(
    c: &mut Client,
    cc: u32,
    auth_value: &[u8],
    attributes: u8,
    r: &[u8],
) -> Vec<u8> {
    assert_eq!(rc_of(r), 0, "{r:02x?}");
    assert_eq!(&r[..2], &[0x80, 0x02]);
    let psize = u32_at(r, 10) as usize;
    let params = r[14..14 + psize].to_vec();
    let auth = &r[14 + psize..];
    assert_eq!(&auth[..2], &[0, 32]);
    let nonce = auth[2..34].to_vec();
    assert_ne!(nonce, c.nonce_tpm, "nonceTPM rolls");
    assert_eq!(auth[34], attributes);
    assert_eq!(&auth[35..37], &[0, 32]);
    let rp_hash = sha256(&[&[0, 0, 0, 0], &cc.to_be_bytes(), &params]);
    let key = [&c.session_key[..], auth_value].concat();
    let want = hmac256(&key, &[&rp_hash, &nonce, &c.nonce_caller, &[attributes]]);
    assert_eq!(&auth[37..], &want[..]);
    assert_eq!(auth.len(), 69);
    c.nonce_tpm = nonce;
    params
}

/// The Name of an NV index from its TPMS_NV_PUBLIC: 000b || SHA-256(public).
fn nv_name(index: u32, attributes: u32, policy: &[u8], size: u16) -> Vec<u8> {
    let public = nv_public(index, TPM_ALG_SHA256, attributes, policy, size);
    [&[0x00, 0x0b][..], &sha256(&[&public[2..]])].concat()
}

fn nv_write_params(data: &[u8], offset: u16) -> Vec<u8> {
    let mut p = (data.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(data);
    p.extend_from_slice(&offset.to_be_bytes());
    p
}

fn flush(tpm: &mut Tpm, handle: u32) -> Vec<u8> {
    run(
        tpm,
        &cmd(TPM_ST_NO_SESSIONS, FLUSH_CONTEXT, &handle.to_be_bytes()),
    )
}

#[test]
fn start_auth_session_slots_handles_and_flush() {
    let mut tpm = started();
    let a = start(&mut tpm, TPM_RH_NULL, 0);
    assert_eq!(a.handle, 0x0200_0000, "HMAC session, slot 0");
    let b = start(&mut tpm, TPM_RH_NULL, 1);
    assert_eq!(b.handle, 0x0300_0001, "policy session, slot 1");
    let c = start(&mut tpm, TPM_RH_NULL, 3);
    assert_eq!(c.handle, 0x0300_0002, "trial session, slot 2");
    assert_ne!(a.nonce_tpm, b.nonce_tpm);
    // Every slot taken: TPM_RC_SESSION_MEMORY.
    let again = start_cmd(TPM_RH_NULL, &[1; 16], 0, &h("00 10"), TPM_ALG_SHA256);
    assert_eq!(rc_of(&run(&mut tpm, &again)), 0x903);
    // Loaded-session properties.
    let r = get_cap(&mut tpm, TPM_CAP_TPM_PROPERTIES, TPM_PT_HR_LOADED, 2);
    assert_eq!(
        (u32_at(&r, 23), u32_at(&r, 27), u32_at(&r, 31)),
        (3, TPM_PT_HR_LOADED_AVAIL, 0)
    );
    // GetCapability(TPM_CAP_HANDLES, TPM_HT_LOADED_SESSION) lists them, by slot.
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, 0x0200_0001, 8);
    assert_eq!(
        &r[10..],
        &h("00 00 00 00 01 00 00 00 02 03 00 00 01 03 00 00 02")[..]
    );
    // FlushContext frees a slot; a flushed or never loaded handle is TPM_RC_HANDLE + P1; a
    // handle of no context type TPM_RC_VALUE + P1.
    assert_eq!(flush(&mut tpm, b.handle), h(SUCCESS));
    assert_eq!(rc_of(&flush(&mut tpm, b.handle)), 0x1CB);
    assert_eq!(
        rc_of(&flush(&mut tpm, 0x0200_0001)),
        0x1CB,
        "slot 1 is free"
    );
    assert_eq!(
        rc_of(&flush(&mut tpm, 0x0300_0000)),
        0x1CB,
        "slot 0 is HMAC"
    );
    assert_eq!(rc_of(&flush(&mut tpm, 0x8000_0000)), 0x1CB);
    assert_eq!(rc_of(&flush(&mut tpm, TPM_RH_OWNER)), 0x1C4);
    assert_eq!(rc_of(&flush(&mut tpm, 0x02FF_FFFF)), 0x1C4);
    let d = start(&mut tpm, TPM_RH_NULL, 0);
    assert_eq!(d.handle, 0x0200_0001);
    // FlushContext takes no sessions.
    let with = with_pw(FLUSH_CONTEXT, &[], b"", &d.handle.to_be_bytes());
    assert_eq!(rc_of(&run(&mut tpm, &with)), rc::AUTH_CONTEXT);
    // _TPM_Init drops every session.
    tpm.init();
    run_ok(&mut tpm, &h(STARTUP_CLEAR));
    assert_eq!(rc_of(&flush(&mut tpm, a.handle)), 0x1CB);
}

#[test]
fn start_auth_session_errors() {
    let mut tpm = started();
    let null = h("00 10");
    let aes = h("00 06 00 80 00 43");
    let e = |tpm: &mut Tpm, c: Vec<u8>| rc_of(&run(tpm, &c));
    // nonceCaller: 16 octets up to the digest size (TPM_RC_SIZE + P1).
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(TPM_RH_NULL, &[1; 15], 0, &null, TPM_ALG_SHA256)
        ),
        0x1D5
    );
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(TPM_RH_NULL, &[1; 33], 0, &null, TPM_ALG_SHA256)
        ),
        0x1D5
    );
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(TPM_RH_NULL, &[1; 21], 0, &null, TPM_ALG_SHA1)
        ),
        0x1D5
    );
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(TPM_RH_NULL, &[1; 49], 0, &null, TPM_ALG_SHA384)
        ),
        0x1D5
    );
    // sessionType 2 (none), symmetric XOR, AES-256, AES-128-CBC, authHash SM3.
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(TPM_RH_NULL, &[1; 16], 2, &null, TPM_ALG_SHA256)
        ),
        0x3C4
    );
    let xor = h("00 0a 00 0b");
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(TPM_RH_NULL, &[1; 16], 0, &xor, TPM_ALG_SHA256)
        ),
        0x4D6
    );
    let aes256 = h("00 06 01 00 00 43");
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(TPM_RH_NULL, &[1; 16], 0, &aes256, TPM_ALG_SHA256)
        ),
        0x4C4
    );
    let cbc = h("00 06 00 80 00 42");
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(TPM_RH_NULL, &[1; 16], 0, &cbc, TPM_ALG_SHA256)
        ),
        0x4C9
    );
    assert_eq!(
        e(&mut tpm, start_cmd(TPM_RH_NULL, &[1; 16], 0, &null, 0x0012)),
        0x5C3
    );
    // An encrypted salt without tpmKey: TPM_RC_VALUE + P2.
    let mut salted = start_cmd(TPM_RH_NULL, &[1; 16], 0, &null, TPM_ALG_SHA256);
    salted.splice(36..38, h("00 01 ff"));
    let len = salted.len() as u32;
    salted[2..6].copy_from_slice(&len.to_be_bytes());
    assert_eq!(e(&mut tpm, salted), 0x2C4);
    // tpmKey: an object that is not loaded (TPM_RC_HANDLE + H1), not an object (VALUE + H1).
    let mut key = start_cmd(TPM_RH_NULL, &[1; 16], 0, &null, TPM_ALG_SHA256);
    key[10..14].copy_from_slice(&0x8000_0000u32.to_be_bytes());
    assert_eq!(e(&mut tpm, key.clone()), 0x18B);
    key[10..14].copy_from_slice(&TPM_RH_OWNER.to_be_bytes());
    assert_eq!(e(&mut tpm, key), 0x184);
    // bind: an undefined NV index (HANDLE + H2), an entity this TPM cannot bind to.
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(0x0100_0000, &[1; 16], 0, &null, TPM_ALG_SHA256)
        ),
        0x28B
    );
    assert_eq!(
        e(
            &mut tpm,
            start_cmd(TPM_RS_PW, &[1; 16], 0, &null, TPM_ALG_SHA256)
        ),
        0x284
    );
    // Nothing was loaded by the failures; SHA-1, SHA-384 and AES-128-CFB are accepted.
    run_ok(
        &mut tpm,
        &start_cmd(TPM_RH_NULL, &[1; 20], 0, &null, TPM_ALG_SHA1),
    );
    let r = run_ok(
        &mut tpm,
        &start_cmd(TPM_RH_OWNER, &[1; 48], 1, &aes, TPM_ALG_SHA384),
    );
    assert_eq!(r.len(), 10 + 4 + 2 + 48);
    assert_eq!(u32_at(&r, 10), 0x0300_0001);
    run_ok(
        &mut tpm,
        &start_cmd(TPM_RH_NULL, &[1; 16], 3, &aes, TPM_ALG_SHA256),
    );
}

#[test]
fn hmac_sessions_authorize_nv_and_pcrs_and_roll_nonces() {
    let mut tpm = started();
    // An index with authValue "secret", not NO_DA.
    let attrs = NV_ATTRS;
    assert_eq!(rc_of(&define(&mut tpm, NV_INDEX, attrs, b"secret", 32)), 0);
    let mut s = start(&mut tpm, TPM_RH_NULL, 0);
    let first_nonce = s.nonce_tpm.clone();
    let name = nv_name(NV_INDEX, attrs, &[], 32);
    let names = [name.clone(), name];
    let params = nv_write_params(b"parapet", 3);
    let write = with_session(
        &s,
        TPM_CC_NV_WRITE,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"secret",
        1,
        &params,
    );
    let r = run(&mut tpm, &write);
    let out = check_session_response(&mut s, TPM_CC_NV_WRITE, b"secret", 1, &r);
    assert!(out.is_empty());
    // The same command again: the nonce rolled, the old HMAC fails (TPM_RC_AUTH_FAIL + S1).
    assert_eq!(rc_of(&run(&mut tpm, &write)), 0x98E);
    // Read it back with the new nonce; the index is now written, so its Name changed.
    let name = nv_name(NV_INDEX, attrs | TPMA_NV_WRITTEN, &[], 32);
    let names = [name.clone(), name];
    let read_params = [7u16.to_be_bytes(), 3u16.to_be_bytes()].concat();
    let read = with_session(
        &s,
        TPM_CC_NV_READ,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"secret",
        1,
        &read_params,
    );
    let r = run(&mut tpm, &read);
    let out = check_session_response(&mut s, TPM_CC_NV_READ, b"secret", 1, &r);
    assert_eq!(out, h("00 07 70 61 72 61 70 65 74"));
    assert_ne!(s.nonce_tpm, first_nonce);
    // A wrong authValue, the old nonce, and the owner's (empty, DA-exempt) authorization
    // with a wrong key: TPM_RC_AUTH_FAIL + S1 for the index, TPM_RC_BAD_AUTH + S1 for the
    // owner.
    let wrong = with_session(
        &s,
        TPM_CC_NV_READ,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"x",
        1,
        &read_params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &wrong)), 0x98E);
    let owner_names = [TPM_RH_OWNER.to_be_bytes().to_vec(), names[1].clone()];
    let owner = with_session(
        &s,
        TPM_CC_NV_READ,
        &[TPM_RH_OWNER, NV_INDEX],
        &owner_names,
        b"x",
        1,
        &read_params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &owner)), 0x9A2);
    let owner = with_session(
        &s,
        TPM_CC_NV_READ,
        &[TPM_RH_OWNER, NV_INDEX],
        &owner_names,
        b"",
        1,
        &read_params,
    );
    let out = check_session_response(&mut s, TPM_CC_NV_READ, b"", 1, &run(&mut tpm, &owner));
    assert_eq!(out, h("00 07 70 61 72 61 70 65 74"));
    // PCR_Extend of PCR 16 with the session (a PCR's Name is its handle).
    let mut extend = h("00 00 00 01 00 0b");
    extend.extend_from_slice(&[9; 32]);
    let c = with_session(
        &s,
        TPM_CC_PCR_EXTEND,
        &[16],
        &[h("00 00 00 10")],
        b"",
        1,
        &extend,
    );
    check_session_response(&mut s, TPM_CC_PCR_EXTEND, b"", 1, &run(&mut tpm, &c));
    assert_eq!(
        pcr_read(&mut tpm, TPM_ALG_SHA256, 16),
        sha256(&[&[0; 32], &[9; 32]])
    );
    // A wrong HMAC on a PCR (DA-exempt): TPM_RC_BAD_AUTH + S1, and the PCR is unchanged.
    let mut bad = with_session(
        &s,
        TPM_CC_PCR_EXTEND,
        &[16],
        &[h("00 00 00 10")],
        b"",
        1,
        &extend,
    );
    let at = bad.len() - extend.len() - 1;
    bad[at] ^= 1;
    assert_eq!(rc_of(&run(&mut tpm, &bad)), 0x9A2);
    assert_eq!(
        pcr_read(&mut tpm, TPM_ALG_SHA256, 16),
        sha256(&[&[0; 32], &[9; 32]])
    );
    // continueSession clear: the command runs, then the session is gone.
    let c = with_session(
        &s,
        TPM_CC_PCR_EXTEND,
        &[16],
        &[h("00 00 00 10")],
        b"",
        0,
        &extend,
    );
    check_session_response(&mut s, TPM_CC_PCR_EXTEND, b"", 0, &run(&mut tpm, &c));
    let c = with_session(
        &s,
        TPM_CC_PCR_EXTEND,
        &[16],
        &[h("00 00 00 10")],
        b"",
        1,
        &extend,
    );
    assert_eq!(rc_of(&run(&mut tpm, &c)), rc::REFERENCE_S0);
    assert_eq!(rc_of(&flush(&mut tpm, s.handle)), 0x1CB);
}

#[test]
fn bound_sessions_use_kdfa_session_keys() {
    let mut tpm = started();
    assert_eq!(
        rc_of(&define(&mut tpm, NV_INDEX, NV_ATTRS, b"secret", 32)),
        0
    );
    let mut s = start(&mut tpm, NV_INDEX, 0);
    // sessionKey = KDFa(SHA-256, "secret", "ATH", nonceTPM, nonceCaller, 256): one block,
    // HMAC-SHA256("secret", 00000001 || "ATH" 00 || nonceTPM || nonceCaller || 00000100).
    s.session_key = hmac256(
        b"secret",
        &[
            &[0, 0, 0, 1],
            b"ATH\0",
            &s.nonce_tpm,
            &s.nonce_caller,
            &[0, 0, 1, 0],
        ],
    );
    // Authorizing the bind entity: the key is sessionKey alone.
    let name = nv_name(NV_INDEX, NV_ATTRS, &[], 32);
    let names = [name.clone(), name];
    let params = nv_write_params(b"bound", 0);
    let c = with_session(
        &s,
        TPM_CC_NV_WRITE,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"",
        1,
        &params,
    );
    check_session_response(&mut s, TPM_CC_NV_WRITE, b"", 1, &run(&mut tpm, &c));
    // Another entity (the owner, empty authValue): sessionKey || authValue.
    let owner_names = [
        TPM_RH_OWNER.to_be_bytes().to_vec(),
        nv_name(NV_INDEX, NV_ATTRS | TPMA_NV_WRITTEN, &[], 32),
    ];
    let read_params = [5u16.to_be_bytes(), 0u16.to_be_bytes()].concat();
    let c = with_session(
        &s,
        TPM_CC_NV_READ,
        &[TPM_RH_OWNER, NV_INDEX],
        &owner_names,
        b"",
        1,
        &read_params,
    );
    let out = check_session_response(&mut s, TPM_CC_NV_READ, b"", 1, &run(&mut tpm, &c));
    assert_eq!(out, [&[0, 5][..], b"bound"].concat());
    // The bound entity with its authValue appended is wrong.
    let names = [owner_names[1].clone(), owner_names[1].clone()];
    let c = with_session(
        &s,
        TPM_CC_NV_READ,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"secret",
        1,
        &read_params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x98E);
}

/// The TPML_PCR_SELECTION of SHA-256 PCRs 0 and 16.
const SEL_0_16: &str = "00 00 00 01 00 0b 03 01 00 01";

fn policy_pcr_cmd(session: u32, pcr_digest: &[u8], selection: &[u8]) -> Vec<u8> {
    let mut body = session.to_be_bytes().to_vec();
    body.extend_from_slice(&(pcr_digest.len() as u16).to_be_bytes());
    body.extend_from_slice(pcr_digest);
    body.extend_from_slice(selection);
    cmd(TPM_ST_NO_SESSIONS, POLICY_PCR, &body)
}

fn policy_digest(tpm: &mut Tpm, session: u32) -> Vec<u8> {
    let r = run_ok(
        tpm,
        &cmd(
            TPM_ST_NO_SESSIONS,
            POLICY_GET_DIGEST,
            &session.to_be_bytes(),
        ),
    );
    assert_eq!(&r[10..12], &[0, 32]);
    r[12..].to_vec()
}

#[test]
fn policy_pcr_digest_and_policy_authorized_nv() {
    let mut tpm = started();
    assert_eq!(
        extend_sha256(&mut tpm, 0, 16, &[3; 32])[6..10],
        [0, 0, 0, 0]
    );
    // PCR 0 after Startup at locality 0 is zeros; PCR 16 is SHA-256(0^32 || 03^32).
    let pcr16 = sha256(&[&[0; 32], &[3; 32]]);
    let pcr_digest = sha256(&[&[0; 32], &pcr16]);
    // Part 3 §23.7: policyDigest = SHA-256(0^32 || TPM_CC_PolicyPCR || pcrs || digestTPM).
    let expected = sha256(&[
        &[0; 32],
        &POLICY_PCR.to_be_bytes(),
        &h(SEL_0_16),
        &pcr_digest,
    ]);

    let p = start(&mut tpm, TPM_RH_NULL, 1);
    assert_eq!(policy_digest(&mut tpm, p.handle), [0; 32]);
    run_ok(&mut tpm, &policy_pcr_cmd(p.handle, &[], &h(SEL_0_16)));
    assert_eq!(policy_digest(&mut tpm, p.handle), expected);
    // With the PCR digest given: it must match (TPM_RC_VALUE + P1).
    let q = start(&mut tpm, TPM_RH_NULL, 1);
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &policy_pcr_cmd(q.handle, &[1; 32], &h(SEL_0_16))
        )),
        0x1C4
    );
    run_ok(
        &mut tpm,
        &policy_pcr_cmd(q.handle, &pcr_digest, &h(SEL_0_16)),
    );
    assert_eq!(policy_digest(&mut tpm, q.handle), expected);
    // A trial session takes the digest as given.
    let t = start(&mut tpm, TPM_RH_NULL, 3);
    run_ok(
        &mut tpm,
        &policy_pcr_cmd(t.handle, &pcr_digest, &h(SEL_0_16)),
    );
    assert_eq!(policy_digest(&mut tpm, t.handle), expected);
    assert_eq!(flush(&mut tpm, t.handle), h(SUCCESS));
    assert_eq!(flush(&mut tpm, q.handle), h(SUCCESS));
    // Handle errors: an HMAC session handle (VALUE + H1), no session (REFERENCE_H0).
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &policy_pcr_cmd(0x0200_0000, &[], &h(SEL_0_16))
        )),
        0x184
    );
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &policy_pcr_cmd(0x0300_0001, &[], &h(SEL_0_16))
        )),
        0x910
    );

    // An index readable and writable only with that policy.
    let attrs = TPMA_NV_POLICYWRITE | TPMA_NV_POLICYREAD | TPMA_NV_AUTHREAD;
    let public = nv_public(NV_INDEX, TPM_ALG_SHA256, attrs, &expected, 8);
    run_ok(&mut tpm, &define_cmd(TPM_RH_OWNER, b"", b"", &public));
    let mut p = p;
    let name = nv_name(NV_INDEX, attrs, &expected, 8);
    let params = nv_write_params(b"policy!!", 0);
    // A policy session without PolicyAuthValue: the HMAC key is the (empty) sessionKey.
    let c = with_session(
        &p,
        TPM_CC_NV_WRITE,
        &[NV_INDEX, NV_INDEX],
        &[name.clone(), name],
        b"",
        1,
        &params,
    );
    check_session_response(&mut p, TPM_CC_NV_WRITE, b"", 1, &run(&mut tpm, &c));
    let name = nv_name(NV_INDEX, attrs | TPMA_NV_WRITTEN, &expected, 8);
    let names = [name.clone(), name];
    let read_params = [8u16.to_be_bytes(), 0u16.to_be_bytes()].concat();
    let c = with_session(
        &p,
        TPM_CC_NV_READ,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"",
        1,
        &read_params,
    );
    let out = check_session_response(&mut p, TPM_CC_NV_READ, b"", 1, &run(&mut tpm, &c));
    assert_eq!(out, [&[0, 8][..], b"policy!!"].concat());
    // A wrong HMAC still fails (the index is not NO_DA: TPM_RC_AUTH_FAIL + S1).
    let c = with_session(
        &p,
        TPM_CC_NV_READ,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"x",
        1,
        &read_params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x98E);
    // A session with another policyDigest: TPM_RC_POLICY_FAIL + S1.
    let fresh = start(&mut tpm, TPM_RH_NULL, 1);
    let c = with_session(
        &fresh,
        TPM_CC_NV_READ,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"",
        1,
        &read_params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x99D);
    // A policy on the owner (empty authPolicy): TPM_RC_POLICY_FAIL + S1.
    let owner_names = [TPM_RH_OWNER.to_be_bytes().to_vec(), names[1].clone()];
    let c = with_session(
        &p,
        TPM_CC_NV_READ,
        &[TPM_RH_OWNER, NV_INDEX],
        &owner_names,
        b"",
        1,
        &read_params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x99D);
    // The PCRs changed after PolicyPCR: TPM_RC_PCR_CHANGED.
    assert_eq!(
        extend_sha256(&mut tpm, 0, 23, &[1; 32])[6..10],
        [0, 0, 0, 0]
    );
    let c = with_session(
        &p,
        TPM_CC_NV_READ,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"",
        1,
        &read_params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x128);
    assert_eq!(
        rc_of(&run(&mut tpm, &policy_pcr_cmd(p.handle, &[], &h(SEL_0_16)))),
        0x128
    );
    // A trial session cannot authorize (TPM_RC_ATTRIBUTES + S1); an index without
    // TPMA_NV_POLICYWRITE may not be written with a policy (TPM_RC_AUTH_UNAVAILABLE).
    assert_eq!(flush(&mut tpm, fresh.handle), h(SUCCESS));
    let t = start(&mut tpm, TPM_RH_NULL, 3);
    let c = with_session(
        &t,
        TPM_CC_NV_READ,
        &[NV_INDEX, NV_INDEX],
        &names,
        b"",
        1,
        &read_params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x982);
    assert_eq!(flush(&mut tpm, p.handle), h(SUCCESS));
    assert_eq!(flush(&mut tpm, t.handle), h(SUCCESS));
    let other = 0x0150_0017;
    assert_eq!(rc_of(&define(&mut tpm, other, NV_ATTRS, b"", 8)), 0);
    let p = start(&mut tpm, TPM_RH_NULL, 1);
    let name = nv_name(other, NV_ATTRS, &[], 8);
    let c = with_session(
        &p,
        TPM_CC_NV_WRITE,
        &[other, other],
        &[name.clone(), name],
        b"",
        1,
        &params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &c)), rc::AUTH_UNAVAILABLE);
}

#[test]
fn session_attribute_and_nonce_errors() {
    let mut tpm = started();
    let s = start(&mut tpm, TPM_RH_NULL, 0);
    let aes = h("00 06 00 80 00 43");
    let r = run_ok(
        &mut tpm,
        &start_cmd(TPM_RH_NULL, &[1; 32], 0, &aes, TPM_ALG_SHA256),
    );
    let a = Client {
        handle: u32_at(&r, 10),
        nonce_tpm: r[16..48].to_vec(),
        nonce_caller: [1; 32].to_vec(),
        session_key: Vec::new(),
    };
    let mut extend = h("00 00 00 01 00 0b");
    extend.extend_from_slice(&[9; 32]);
    let pcr = [h("00 00 00 10")];
    let e = |tpm: &mut Tpm, c: &Client, attrs: u8| {
        rc_of(&run(
            tpm,
            &with_session(c, TPM_CC_PCR_EXTEND, &[16], &pcr, b"", attrs, &extend),
        ))
    };
    // decrypt/encrypt without a symmetric algorithm: TPM_RC_SYMMETRIC + S1; with AES-CFB
    // (parameter encryption is not implemented): TPM_RC_ATTRIBUTES + S1; audit: ATTRIBUTES.
    assert_eq!(e(&mut tpm, &s, 0x21), 0x996);
    assert_eq!(e(&mut tpm, &s, 0x41), 0x996);
    assert_eq!(e(&mut tpm, &a, 0x21), 0x982);
    assert_eq!(e(&mut tpm, &a, 0x41), 0x982);
    assert_eq!(e(&mut tpm, &s, 0x81), 0x982);
    assert_eq!(e(&mut tpm, &s, 0x03), 0x982);
    assert_eq!(
        e(&mut tpm, &s, 0x09),
        0x9A1,
        "reserved bit: RESERVED_BITS + S1"
    );
    // The AES session without decrypt/encrypt authorizes normally.
    assert_eq!(e(&mut tpm, &a, 1), 0);
    // nonceCaller shorter than 16 octets: TPM_RC_NONCE + S1.
    let short = Client {
        nonce_caller: vec![1; 15],
        ..start(&mut tpm, TPM_RH_NULL, 0)
    };
    assert_eq!(e(&mut tpm, &short, 1), 0x98F);
    // The same session twice: TPM_RC_HANDLE + S2.
    let c = with_session(&s, TPM_CC_PCR_EXTEND, &[16], &pcr, b"", 1, &extend);
    let area_len = u32_at(&c, 14) as usize;
    let area = c[18..18 + area_len].to_vec();
    let mut body = c[10..14].to_vec();
    body.extend_from_slice(&(2 * area_len as u32).to_be_bytes());
    body.extend_from_slice(&area);
    body.extend_from_slice(&area);
    body.extend_from_slice(&extend);
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &cmd(TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND, &body)
        )),
        0xA8B
    );
    // A session that authorizes no handle: TPM_RC_HANDLE + S1.
    let c = with_session(&s, TPM_CC_GET_RANDOM, &[], &[], b"", 1, &h("00 08"));
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x98B);
}

#[test]
fn every_bit_flip_of_an_hmac_authorized_command_fails() {
    let mut tpm = started_with_nv();
    let mut s = start(&mut tpm, TPM_RH_NULL, 0);
    let name = tpm_name_written();
    let params = nv_write_params(b"abcd", 4);
    let c = with_session(
        &s,
        TPM_CC_NV_WRITE,
        &[NV_INDEX, NV_INDEX],
        &[name.clone(), name],
        b"pw",
        1,
        &params,
    );
    for bit in 0..c.len() * 8 {
        let mut m = c.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        let r = run(&mut tpm, &m);
        assert_ne!(rc_of(&r), 0, "bit {bit}");
    }
    // Nothing rolled: the original still works.
    check_session_response(&mut s, TPM_CC_NV_WRITE, b"pw", 1, &run(&mut tpm, &c));
}

/// The Name of `started_with_nv`'s index once written.
fn tpm_name_written() -> Vec<u8> {
    nv_name(NV_INDEX, NV_ATTRS | TPMA_NV_WRITTEN, &[], 32)
}

// --- ContextSave / ContextLoad (Part 3 §28.2, §28.3) ---

const CONTEXT_LOAD: u32 = 0x0000_0161;
const CONTEXT_SAVE: u32 = 0x0000_0162;

/// ContextSave(handle); the TPMS_CONTEXT of the response.
fn context_save(tpm: &mut Tpm, handle: u32) -> Vec<u8> {
    let r = run_ok(
        tpm,
        &cmd(TPM_ST_NO_SESSIONS, CONTEXT_SAVE, &handle.to_be_bytes()),
    );
    r[10..].to_vec()
}

fn context_load_cmd(context: &[u8]) -> Vec<u8> {
    cmd(TPM_ST_NO_SESSIONS, CONTEXT_LOAD, context)
}

/// Checks a saved session context from the outside: the layout, the integrity HMAC and
/// the decryption written out from Part 1 §30.3 with the hmac, aes and cfb-mode crates.
/// Returns the decrypted session (after the fingerprint).
fn open_context(tpm: &Tpm, context: &[u8], sequence: u64, handle: u32) -> Vec<u8> {
    use cfb_mode::cipher::KeyIvInit;
    assert_eq!(&context[..8], &sequence.to_be_bytes());
    assert_eq!(u32_at(context, 8), handle);
    assert_eq!(u32_at(context, 12), TPM_RH_NULL);
    let size = usize::from(u16::from_be_bytes([context[16], context[17]]));
    assert_eq!(context.len(), 18 + size);
    let blob = &context[18..];
    assert_eq!(&blob[..2], &[0, 32]);
    let encrypted = &blob[34..];
    // The null hierarchy's proof: HMAC-SHA256(nullSeed, "Parapet hierarchy proof").
    let proof = hmac256(&tpm.null_seed, &[b"Parapet hierarchy proof"]);
    let epoch = tpm.sessions.current_epoch().unwrap();
    let reset = u64::from(tpm.reset_count).to_be_bytes();
    let want = hmac256(
        &proof,
        &[
            &reset,
            &epoch,
            &sequence.to_be_bytes(),
            &handle.to_be_bytes(),
            encrypted,
        ],
    );
    assert_eq!(&blob[2..34], &want[..]);
    // KDFa(SHA-256, proof, "CONTEXT", sequence, handle, 256): one HMAC block.
    let kdf = hmac256(
        &proof,
        &[
            &[0, 0, 0, 1],
            b"CONTEXT\0",
            &sequence.to_be_bytes(),
            &handle.to_be_bytes(),
            &[0, 0, 1, 0],
        ],
    );
    let mut plain = encrypted.to_vec();
    let (key, iv): ([u8; 16], [u8; 16]) =
        (kdf[..16].try_into().unwrap(), kdf[16..].try_into().unwrap());
    cfb_mode::Decryptor::<aes::Aes128>::new(&key.into(), &iv.into()).decrypt(&mut plain);
    assert_eq!(&plain[..8], &sequence.to_be_bytes(), "fingerprint");
    plain[8..].to_vec()
}

#[test]
fn context_save_load_round_trip_continues_hmac_session() {
    let mut tpm = started_with_nv();
    let mut s = start(&mut tpm, TPM_RH_NULL, 0);
    let name = tpm_name_written();
    let names = [name.clone(), name];
    let write = |s: &Client, data: &[u8]| {
        with_session(
            s,
            TPM_CC_NV_WRITE,
            &[NV_INDEX, NV_INDEX],
            &names,
            b"pw",
            1,
            &nv_write_params(data, 0),
        )
    };
    let r = run(&mut tpm, &write(&s, b"one"));
    check_session_response(&mut s, TPM_CC_NV_WRITE, b"pw", 1, &r);

    let context = context_save(&mut tpm, s.handle);
    let session = open_context(&tpm, &context, 1, s.handle);
    // HMAC session, SHA-256, TPM_ALG_NULL, empty sessionKey, unbound, nonceTPM, a zero
    // policyDigest, no PolicyPCR.
    let mut want = h("00 00 0b 00 10 00 00 00 00 20");
    want.extend_from_slice(&s.nonce_tpm);
    want.extend_from_slice(&h("00 20"));
    want.extend_from_slice(&[0; 32]);
    want.push(0);
    assert_eq!(session, want);
    // Saved: not loaded, listed as a saved session, and not usable.
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, 0x0200_0000, 8);
    assert_eq!(u32_at(&r, 15), 0, "no loaded session");
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, 0x0300_0000, 8);
    assert_eq!((u32_at(&r, 15), u32_at(&r, 19)), (1, s.handle));
    let r = get_cap(&mut tpm, TPM_CAP_TPM_PROPERTIES, TPM_PT_HR_LOADED, 4);
    // HR_LOADED 0, HR_LOADED_AVAIL 2, HR_ACTIVE 1, HR_ACTIVE_AVAIL 2.
    assert_eq!(
        (
            u32_at(&r, 23),
            u32_at(&r, 31),
            u32_at(&r, 39),
            u32_at(&r, 47)
        ),
        (0, 2, 1, 2)
    );
    assert_ne!(rc_of(&run(&mut tpm, &write(&s, b"two"))), 0);
    // Saving it again: not loaded, TPM_RC_REFERENCE_H0.
    let again = cmd(TPM_ST_NO_SESSIONS, CONTEXT_SAVE, &s.handle.to_be_bytes());
    assert_eq!(rc_of(&run(&mut tpm, &again)), 0x910);

    // Load: the same handle back, and the session continues with its nonces.
    let r = run_ok(&mut tpm, &context_load_cmd(&context));
    assert_eq!(
        r,
        [
            &h("80 01 00 00 00 0e 00 00 00 00")[..],
            &s.handle.to_be_bytes()
        ]
        .concat()
    );
    let r = run(&mut tpm, &write(&s, b"two"));
    check_session_response(&mut s, TPM_CC_NV_WRITE, b"pw", 1, &r);
    // Replay of the loaded blob: its session is not saved under that sequence any more,
    // TPM_RC_HANDLE + P1 (Part 4 SequenceNumberForSavedContextIsValid).
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&context))), 0x1CB);
    // Save again: sequence 2; the first blob stays dead, the second loads once.
    let second = context_save(&mut tpm, s.handle);
    open_context(&tpm, &second, 2, s.handle);
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&context))), 0x1CB);
    // The old blob relabelled with the new sequence: TPM_RC_INTEGRITY + P1.
    let mut relabelled = context.clone();
    relabelled[..8].copy_from_slice(&2u64.to_be_bytes());
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&relabelled))), 0x1DF);
    run_ok(&mut tpm, &context_load_cmd(&second));
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&second))), 0x1CB);
    let r = run(&mut tpm, &write(&s, b"three"));
    check_session_response(&mut s, TPM_CC_NV_WRITE, b"pw", 1, &r);
}

#[test]
fn policy_session_context_keeps_its_digest_and_pcr_check() {
    let mut tpm = started();
    let s = start(&mut tpm, TPM_RH_NULL, 1);
    run_ok(
        &mut tpm,
        &policy_pcr_cmd(s.handle, &[], &h("00 00 00 01 00 0b 03 01 00 01")),
    );
    let digest = policy_digest(&mut tpm, s.handle);
    let context = context_save(&mut tpm, s.handle);
    let session = open_context(&tpm, &context, 1, s.handle);
    // Policy session type, and pcrUpdateCounter recorded at the end.
    assert_eq!(session[0], 1);
    assert_eq!(session[session.len() - 5], 1);
    let get = cmd(
        TPM_ST_NO_SESSIONS,
        POLICY_GET_DIGEST,
        &s.handle.to_be_bytes(),
    );
    assert_eq!(rc_of(&run(&mut tpm, &get)), 0x910, "saved: not loaded");
    run_ok(&mut tpm, &context_load_cmd(&context));
    assert_eq!(policy_digest(&mut tpm, s.handle), digest);
}

#[test]
fn context_blobs_are_tamper_evident() {
    let mut tpm = started();
    let s = start(&mut tpm, TPM_RH_NULL, 0);
    let context = context_save(&mut tpm, s.handle);
    let load = context_load_cmd(&context);
    // Every bit of the command flipped: never a success, never a panic, nothing changes.
    for bit in 0..load.len() * 8 {
        let mut m = load.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        let r = run(&mut tpm, &m);
        assert_ne!(rc_of(&r), 0, "bit {bit}");
        if bit / 8 >= 10 + 18 {
            // Inside the blob past its size: the integrity octets or the ciphertext.
            let at = bit / 8 - 28;
            // The integrity's size: TPM_RC_SIZE + P1, or TPM_RC_INSUFFICIENT + P1 when it
            // runs past the blob.
            let ok = if at < 2 {
                [0x1D5, 0x1DA].contains(&rc_of(&r))
            } else {
                rc_of(&r) == 0x1DF
            };
            assert!(ok, "blob octet {at}: {:#x}", rc_of(&r));
        }
    }
    assert!(!tpm.failure);
    // The header fields: another sequence or handle of the same type fails integrity;
    // another hierarchy too (another proof); a value outside the types is TPM_RC_VALUE.
    let with = |at: usize, bytes: &[u8]| {
        let mut c = context.clone();
        c[at..at + bytes.len()].copy_from_slice(bytes);
        context_load_cmd(&c)
    };
    assert_eq!(rc_of(&run(&mut tpm, &with(0, &[0; 8]))), 0x1DF);
    assert_eq!(rc_of(&run(&mut tpm, &with(8, &h("02 00 00 01")))), 0x1DF);
    assert_eq!(rc_of(&run(&mut tpm, &with(8, &h("03 00 00 00")))), 0x1DF);
    assert_eq!(rc_of(&run(&mut tpm, &with(8, &h("80 00 00 00")))), 0x1DF);
    assert_eq!(rc_of(&run(&mut tpm, &with(8, &h("80 00 00 03")))), 0x1C4);
    assert_eq!(rc_of(&run(&mut tpm, &with(8, &h("01 00 00 00")))), 0x1C4);
    for hierarchy in [TPM_RH_OWNER, TPM_RH_ENDORSEMENT, TPM_RH_PLATFORM] {
        let r = run(&mut tpm, &with(12, &hierarchy.to_be_bytes()));
        assert_eq!(rc_of(&r), 0x1DF);
    }
    assert_eq!(rc_of(&run(&mut tpm, &with(12, &h("40 00 00 0a")))), 0x1C4);
    // Every truncation of the blob (its size field kept consistent).
    let blob = &context[18..];
    for n in 0..blob.len() {
        let mut c = context[..16].to_vec();
        c.extend_from_slice(&(n as u16).to_be_bytes());
        c.extend_from_slice(&blob[..n]);
        let want = match n {
            0..=1 => 0x1DA, // the integrity's size: TPM_RC_INSUFFICIENT + P1
            2..=33 => 0x1DA,
            34..=41 => 0x1D5, // fewer than 8 octets after the integrity: TPM_RC_SIZE
            _ => 0x1DF,
        };
        assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&c))), want, "{n}");
    }
    // An over-long contextBlob: TPM_RC_SIZE + P1 before its octets are looked for.
    let mut c = context[..16].to_vec();
    c.extend_from_slice(&h("04 01"));
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&c))), 0x1D5);
    // Trailing octets: TPM_RC_SIZE.
    let mut c = context.clone();
    c.push(0);
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&c))), 0x095);
    // After all of it the original loads.
    run_ok(&mut tpm, &load);
    assert!(!tpm.failure);
}

#[test]
fn context_save_errors_slots_flush_and_init() {
    let mut tpm = started();
    let save = |h: u32| cmd(TPM_ST_NO_SESSIONS, CONTEXT_SAVE, &h.to_be_bytes());
    // Not loaded: TPM_RC_REFERENCE_H0; not a TPMI_DH_CONTEXT: TPM_RC_VALUE + H1.
    assert_eq!(rc_of(&run(&mut tpm, &save(0x0200_0000))), 0x910);
    assert_eq!(rc_of(&run(&mut tpm, &save(0x8000_0000))), 0x910);
    assert_eq!(rc_of(&run(&mut tpm, &save(0))), 0x184);
    assert_eq!(rc_of(&run(&mut tpm, &save(TPM_RH_OWNER))), 0x184);
    // Parameters where there are none: TPM_RC_SIZE.
    let s = start(&mut tpm, TPM_RH_NULL, 0);
    let mut extra = save(s.handle);
    extra.push(0);
    extra[5] += 1;
    assert_eq!(rc_of(&run(&mut tpm, &extra)), 0x095);
    // A context load before any save in this epoch: TPM_RC_INTEGRITY.
    let mut fresh = started();
    let a = start(&mut fresh, TPM_RH_NULL, 0);
    let context = context_save(&mut fresh, a.handle);
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&context))), 0x1DF);

    // Slots: one saved and two loaded fill them: TPM_RC_SESSION_HANDLES; flushing the
    // saved one makes room, and its context no longer loads.
    let context = context_save(&mut tpm, s.handle);
    let b = start(&mut tpm, TPM_RH_NULL, 0);
    start(&mut tpm, TPM_RH_NULL, 1);
    let another = start_cmd(TPM_RH_NULL, &[1; 16], 0, &h("00 10"), TPM_ALG_SHA256);
    assert_eq!(rc_of(&run(&mut tpm, &another)), 0x905);
    assert_eq!(rc_of(&flush(&mut tpm, s.handle)), 0);
    assert_eq!(rc_of(&flush(&mut tpm, s.handle)), 0x1CB);
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&context))), 0x1CB);
    let c = start(&mut tpm, TPM_RH_NULL, 0);
    assert_eq!(c.handle, s.handle, "the freed slot");
    // A blob saved before _TPM_Init does not load after it (a new epoch), even once the
    // same sequence number is reached again.
    let context = context_save(&mut tpm, b.handle);
    tpm.init();
    run_ok(&mut tpm, &h(STARTUP_CLEAR));
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&context))), 0x1DF);
    let s = start(&mut tpm, TPM_RH_NULL, 0);
    let s2 = start(&mut tpm, TPM_RH_NULL, 0);
    assert_eq!(s2.handle, b.handle);
    context_save(&mut tpm, s.handle);
    context_save(&mut tpm, s2.handle);
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&context))), 0x1DF);
}

#[test]
fn context_load_hostile_sweep() {
    let mut tpm = started();
    let s = start(&mut tpm, TPM_RH_NULL, 1);
    let context = context_save(&mut tpm, s.handle);
    let load = context_load_cmd(&context);
    // Every truncation (with a consistent commandSize).
    for n in 10..load.len() {
        let mut m = load[..n].to_vec();
        m[2..6].copy_from_slice(&(n as u32).to_be_bytes());
        assert_ne!(rc_of(&run(&mut tpm, &m)), 0, "{n}");
    }
    // Random parameters, and random blobs behind a valid header.
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for i in 0..3000 {
        let len = rng.below(300);
        let mut body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 {
            let mut c = context[..16].to_vec();
            c.extend_from_slice(&(len as u16).to_be_bytes());
            c.append(&mut body);
            body = c;
        }
        let r = run(&mut tpm, &context_load_cmd(&body));
        assert_ne!(rc_of(&r), 0);
        let r = run(&mut tpm, &cmd(TPM_ST_NO_SESSIONS, CONTEXT_SAVE, &body));
        assert_ne!(rc_of(&r), 0);
    }
    assert!(!tpm.failure);
    run_ok(&mut tpm, &load);
}

// --- Objects: CreatePrimary, ReadPublic, FlushContext, ContextSave/ContextLoad. ---

/// An ECC P-256 template (TPMT_PUBLIC) with nameAlg SHA-256 and empty unique.
fn ecc_template(attributes: u32, sym: &[u8], scheme: &[u8], curve: u16, kdf: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&TPM_ALG_ECC.to_be_bytes());
    t.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    t.extend_from_slice(&attributes.to_be_bytes());
    t.extend_from_slice(&[0, 0]); // authPolicy
    t.extend_from_slice(sym);
    t.extend_from_slice(scheme);
    t.extend_from_slice(&curve.to_be_bytes());
    t.extend_from_slice(kdf);
    t.extend_from_slice(&[0, 0, 0, 0]); // unique x, y
    t
}

/// tpm2_createprimary's default: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth,
/// restricted, decrypt (0x00030072), AES-128-CFB, scheme NULL.
const STORAGE_ATTRS: u32 = 0x0003_0072;
const SIGNING_ATTRS: u32 = 0x0004_0072;
fn storage_template() -> Vec<u8> {
    ecc_template(
        STORAGE_ATTRS,
        &h("0006 0080 0043"),
        &h("0010"),
        TPM_ECC_NIST_P256,
        &h("0010"),
    )
}
fn signing_template() -> Vec<u8> {
    ecc_template(
        SIGNING_ATTRS,
        &h("0010"),
        &h("0018 000B"),
        TPM_ECC_NIST_P256,
        &h("0010"),
    )
}

fn create_primary_cmd(hierarchy: u32, template: &[u8]) -> Vec<u8> {
    let mut p = h("0004 0000 0000"); // inSensitive: empty userAuth and data
    p.extend_from_slice(&(template.len() as u16).to_be_bytes());
    p.extend_from_slice(template);
    p.extend_from_slice(&h("0000 00000000")); // outsideInfo, creationPCR
    with_pw(0x131, &hierarchy.to_be_bytes(), b"", &p)
}

/// Reads a TPM2B at `*at`.
fn take2b<'a>(r: &'a [u8], at: &mut usize) -> &'a [u8] {
    let n = usize::from(u16::from_be_bytes([r[*at], r[*at + 1]]));
    let v = &r[*at + 2..*at + 2 + n];
    *at += 2 + n;
    v
}

struct Primary {
    handle: u32,
    public: Vec<u8>,
    name: Vec<u8>,
}

fn create_primary(tpm: &mut Tpm, hierarchy: u32, template: &[u8]) -> Primary {
    let r = run_ok(tpm, &create_primary_cmd(hierarchy, template));
    let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
    let mut at = 18; // after the parameterSize
    let public = take2b(&r, &mut at).to_vec();
    let creation = take2b(&r, &mut at).to_vec();
    let creation_hash = take2b(&r, &mut at).to_vec();
    assert_eq!(creation_hash, Sha256::digest(&creation).to_vec());
    assert_eq!(&r[at..at + 2], &TPM_ST_CREATION.to_be_bytes());
    let ticket_hierarchy = u32::from_be_bytes(r[at + 2..at + 6].try_into().unwrap());
    at += 6;
    let ticket = take2b(&r, &mut at).to_vec();
    if hierarchy == TPM_RH_NULL {
        assert_eq!((ticket_hierarchy, ticket.len()), (TPM_RH_NULL, 0));
    } else {
        assert_eq!((ticket_hierarchy, ticket.len()), (hierarchy, 32));
    }
    let name = take2b(&r, &mut at).to_vec();
    // The Name, computed here: nameAlg || SHA-256(TPMT_PUBLIC).
    let mut expected = TPM_ALG_SHA256.to_be_bytes().to_vec();
    expected.extend_from_slice(&Sha256::digest(&public));
    assert_eq!(name, expected);
    Primary {
        handle,
        public,
        name,
    }
}

/// The unique x || y of an outPublic.
fn unique(public: &[u8]) -> Vec<u8> {
    public[public.len() - 68..].to_vec()
}

#[test]
fn create_primary_is_deterministic_per_seed_and_hierarchy() {
    let mut tpm = started();
    let a = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    assert_eq!(a.handle, 0x8000_0000);
    // The point is on P-256 (p256 checks the SEC1 encoding).
    let mut sec1 = alloc::vec![4u8];
    sec1.extend_from_slice(&a.public[a.public.len() - 66..a.public.len() - 34]);
    sec1.extend_from_slice(&a.public[a.public.len() - 32..]);
    assert!(p256::PublicKey::from_sec1_bytes(&sec1).is_ok());
    let b = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    assert_eq!((b.handle, &b.public), (0x8000_0001, &a.public));
    assert_eq!(rc_of(&flush(&mut tpm, a.handle)), 0);
    assert_eq!(rc_of(&flush(&mut tpm, b.handle)), 0);
    let again = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    assert_eq!(again.public, a.public);
    let e = create_primary(&mut tpm, TPM_RH_ENDORSEMENT, &storage_template());
    let n = create_primary(&mut tpm, TPM_RH_NULL, &storage_template());
    assert_ne!(unique(&e.public), unique(&a.public));
    assert_ne!(unique(&n.public), unique(&a.public));
    assert_ne!(unique(&n.public), unique(&e.public));
    // Slots: three objects fill them: TPM_RC_OBJECT_MEMORY.
    let full = run(
        &mut tpm,
        &create_primary_cmd(TPM_RH_OWNER, &signing_template()),
    );
    assert_eq!(rc_of(&full), 0x902);
    for h in [again.handle, e.handle, n.handle] {
        assert_eq!(rc_of(&flush(&mut tpm, h)), 0);
    }
    assert_eq!(rc_of(&flush(&mut tpm, n.handle)), 0x1CB);
    // A signing key of the same seed differs; another TPM's seed gives another key.
    let s = create_primary(&mut tpm, TPM_RH_OWNER, &signing_template());
    assert_ne!(unique(&s.public), unique(&a.public));
    let mut other = Tpm::new([9; 32]);
    run_ok(
        &mut other,
        &cmd(TPM_ST_NO_SESSIONS, TPM_CC_STARTUP, &h("0000")),
    );
    let o = create_primary(&mut other, TPM_RH_OWNER, &storage_template());
    assert_ne!(unique(&o.public), unique(&a.public));
    // The null seed is new at every TPM Reset.
    let mut reset = started();
    let n1 = create_primary(&mut reset, TPM_RH_NULL, &storage_template());
    reset.init();
    run_ok(
        &mut reset,
        &cmd(TPM_ST_NO_SESSIONS, TPM_CC_STARTUP, &h("0000")),
    );
    let n2 = create_primary(&mut reset, TPM_RH_NULL, &storage_template());
    assert_ne!(unique(&n1.public), unique(&n2.public));
}

#[test]
fn read_public_returns_public_name_and_qualified_name() {
    let mut tpm = started();
    let p = create_primary(&mut tpm, TPM_RH_ENDORSEMENT, &signing_template());
    let r = run_ok(
        &mut tpm,
        &cmd(
            TPM_ST_NO_SESSIONS,
            TPM_CC_READ_PUBLIC,
            &p.handle.to_be_bytes(),
        ),
    );
    let mut at = 10;
    assert_eq!(take2b(&r, &mut at), p.public.as_slice());
    assert_eq!(take2b(&r, &mut at), p.name.as_slice());
    let mut qn = TPM_ALG_SHA256.to_be_bytes().to_vec();
    let mut hasher = Sha256::new();
    hasher.update(TPM_RH_ENDORSEMENT.to_be_bytes());
    hasher.update(&p.name);
    qn.extend_from_slice(&hasher.finalize());
    assert_eq!(take2b(&r, &mut at), qn.as_slice());
    assert_eq!(at, r.len());
    // Not loaded: TPM_RC_REFERENCE_H0; persistent: TPM_RC_HANDLE + H1; other: VALUE + H1.
    let read = |h: u32| cmd(TPM_ST_NO_SESSIONS, TPM_CC_READ_PUBLIC, &h.to_be_bytes());
    assert_eq!(rc_of(&run(&mut tpm, &read(0x8000_0002))), 0x910);
    assert_eq!(rc_of(&run(&mut tpm, &read(0x8100_0001))), 0x18B);
    assert_eq!(rc_of(&run(&mut tpm, &read(TPM_RH_OWNER))), 0x184);
    // Capabilities list the object.
    let cap = run_ok(
        &mut tpm,
        &cmd(
            TPM_ST_NO_SESSIONS,
            TPM_CC_GET_CAPABILITY,
            &h("00000001 80000000 00000010"),
        ),
    );
    assert_eq!(&cap[15..], &h("00000001 80000000"));
}

#[test]
fn create_primary_template_errors_have_their_codes() {
    let mut tpm = started();
    let null = h("0010");
    let aes = h("0006 0080 0043");
    let ecdsa = h("0018 000B");
    let p256 = TPM_ECC_NIST_P256;
    let cases: &[(Vec<u8>, u32)] = &[
        // Parameter 2 (inPublic).
        (
            ecc_template(STORAGE_ATTRS, &aes, &null, 0x0004, &null),
            0x2E6,
        ), // CURVE
        (
            ecc_template(STORAGE_ATTRS, &aes, &null, p256, &h("0020 000B")),
            0x2CC,
        ), // KDF
        (
            ecc_template(STORAGE_ATTRS, &aes, &h("0019 000B"), p256, &null),
            0x2D2,
        ), // SCHEME
        (
            ecc_template(STORAGE_ATTRS, &aes, &ecdsa, p256, &null),
            0x2D2,
        ), // storage: NULL scheme
        (
            ecc_template(SIGNING_ATTRS, &null, &null, p256, &null),
            0x2D2,
        ), // signing: ECDSA
        (
            ecc_template(SIGNING_ATTRS, &null, &h("0018 0004"), p256, &null),
            0x2D2,
        ),
        (
            ecc_template(SIGNING_ATTRS, &null, &h("0018 0005"), p256, &null),
            0x2C3,
        ), // HASH
        (
            ecc_template(STORAGE_ATTRS, &null, &null, p256, &null),
            0x2D6,
        ), // SYMMETRIC
        (
            ecc_template(SIGNING_ATTRS, &aes, &ecdsa, p256, &null),
            0x2D6,
        ),
        (
            ecc_template(STORAGE_ATTRS, &h("0025"), &null, p256, &null),
            0x2D6,
        ),
        (
            ecc_template(STORAGE_ATTRS, &h("0006 0100 0043"), &null, p256, &null),
            0x2C4,
        ), // VALUE
        (
            ecc_template(STORAGE_ATTRS, &h("0006 0080 0044"), &null, p256, &null),
            0x2C9,
        ), // MODE
        (
            ecc_template(STORAGE_ATTRS | 1, &aes, &null, p256, &null),
            0x2E1,
        ), // RESERVED_BITS
        (
            ecc_template(STORAGE_ATTRS & !0x10, &aes, &null, p256, &null),
            0x2C2,
        ), // fixedParent
        (
            ecc_template(STORAGE_ATTRS & !0x20, &aes, &null, p256, &null),
            0x2C2,
        ), // sDO
        (
            ecc_template(STORAGE_ATTRS | 0x800, &aes, &null, p256, &null),
            0x2C2,
        ), // encDup
        (
            ecc_template(STORAGE_ATTRS | 0x8_0000, &aes, &null, p256, &null),
            0x2C2,
        ), // x509
        (
            ecc_template(STORAGE_ATTRS | 0x4_0000, &aes, &null, p256, &null),
            0x2C2,
        ), // both
        (ecc_template(0x0002_0072, &null, &null, p256, &null), 0x2C2), // unrestricted decrypt
        (ecc_template(0x0000_0072, &null, &null, p256, &null), 0x2C2), // neither
    ];
    for (template, code) in cases {
        let r = run(&mut tpm, &create_primary_cmd(TPM_RH_OWNER, template));
        assert_eq!(rc_of(&r), *code, "template {template:02x?}");
    }
    // Type SYMCIPHER: TPM_RC_TYPE; nameAlg NULL: TPM_RC_HASH; authPolicy of 5 octets: SIZE.
    let mut symcipher = storage_template();
    symcipher[1] = 0x25;
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &create_primary_cmd(TPM_RH_OWNER, &symcipher)
        )),
        0x2CA
    );
    let mut null_alg = storage_template();
    null_alg[3] = 0x10;
    assert_eq!(
        rc_of(&run(&mut tpm, &create_primary_cmd(TPM_RH_OWNER, &null_alg))),
        0x2C3
    );
    let mut policy = storage_template();
    policy.splice(8..10, h("0005 0102030405"));
    assert_eq!(
        rc_of(&run(&mut tpm, &create_primary_cmd(TPM_RH_OWNER, &policy))),
        0x2D5
    );
    // inSensitive with data: SIZE + P1; a lockout or PCR handle: VALUE + H1.
    let mut c = create_primary_cmd(TPM_RH_OWNER, &storage_template());
    c.splice(27..33, h("0005 0000 0001 AA"));
    c[5] += 1;
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x1D5);
    let c = create_primary_cmd(0x4000_000A, &storage_template());
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x184);
    // No sessions: TPM_RC_AUTH_MISSING.
    let mut c = create_primary_cmd(TPM_RH_OWNER, &storage_template());
    c.splice(14..27, []);
    c[0..2].copy_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
    let len = c.len() as u32;
    c[2..6].copy_from_slice(&len.to_be_bytes());
    assert_eq!(rc_of(&run(&mut tpm, &c)), rc::AUTH_MISSING);
    assert_eq!(tpm.objects.len(), 0);
}

#[test]
fn object_context_save_load_round_trip() {
    let mut tpm = started();
    let p = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let context = context_save(&mut tpm, p.handle);
    assert_eq!(&context[8..16], &h("80000000 40000001"));
    // Still loaded; the context loads into another slot, as often as there is room.
    let r = run_ok(&mut tpm, &context_load_cmd(&context));
    assert_eq!(&r[10..14], &h("80000001"));
    let r = run_ok(&mut tpm, &context_load_cmd(&context));
    assert_eq!(&r[10..14], &h("80000002"));
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&context))), 0x902);
    let read = run_ok(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, TPM_CC_READ_PUBLIC, &h("80000002")),
    );
    assert_eq!(&read[12..12 + p.public.len()], p.public.as_slice());
    // A changed octet anywhere: TPM_RC_INTEGRITY + P1 (or the hierarchy: VALUE/INTEGRITY).
    run_ok(&mut tpm, &flush_cmd(0x8000_0001));
    for i in 0..context.len() {
        let mut bad = context.clone();
        bad[i] ^= 1;
        let r = run(&mut tpm, &context_load_cmd(&bad));
        assert_ne!(rc_of(&r), 0, "octet {i}");
        assert!(!tpm.failure);
    }
    // After _TPM_Init the context no longer loads.
    tpm.init();
    run_ok(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, TPM_CC_STARTUP, &h("0000")),
    );
    assert_eq!(rc_of(&run(&mut tpm, &context_load_cmd(&context))), 0x1DF);
}

fn flush_cmd(handle: u32) -> Vec<u8> {
    cmd(
        TPM_ST_NO_SESSIONS,
        TPM_CC_FLUSH_CONTEXT,
        &handle.to_be_bytes(),
    )
}

#[test]
fn hostile_create_primary_inputs_never_panic() {
    let mut tpm = started();
    let good = create_primary_cmd(TPM_RH_OWNER, &storage_template());
    for len in 0..good.len() {
        let mut c = good[..len].to_vec();
        if c.len() >= 6 {
            c[2..6].copy_from_slice(&(len as u32).to_be_bytes());
        }
        assert_ne!(rc_of(&run(&mut tpm, &c)), 0);
    }
    let mut x = 0x1234_5678u32;
    for i in 14..good.len() {
        for bit in 0..8 {
            let mut c = good.clone();
            c[i] ^= 1 << bit;
            let r = run(&mut tpm, &c);
            if rc_of(&r) == 0 {
                let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
                run_ok(&mut tpm, &flush_cmd(handle));
            }
        }
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let mut c = good.clone();
        c[i] = (x >> 16) as u8;
        let r = run(&mut tpm, &c);
        if rc_of(&r) == 0 {
            let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
            run_ok(&mut tpm, &flush_cmd(handle));
        }
    }
    assert!(!tpm.failure);
}

// --- Signing: object authorization, Sign, VerifySignature, Quote. ---

use p256::ecdsa::signature::hazmat::PrehashVerifier;

const SIGN: u32 = 0x0000_015D;
const VERIFY_SIGNATURE: u32 = 0x0000_0177;
const QUOTE: u32 = 0x0000_0158;
/// fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign.
const RESTRICTED_SIGNING_ATTRS: u32 = 0x0005_0072;
/// The NULL hashcheck ticket (Part 2 §10.7.1).
const NULL_HASHCHECK: &str = "8024 40000007 0000";
const SCHEME_NULL: &str = "0010";
const SCHEME_ECDSA_SHA256: &str = "0018 000b";

fn signing_template_with(attributes: u32) -> Vec<u8> {
    ecc_template(
        attributes,
        &h("0010"),
        &h("0018 000B"),
        TPM_ECC_NIST_P256,
        &h("0010"),
    )
}

/// CreatePrimary in the owner hierarchy with inSensitive.userAuth = `auth`.
fn create_primary_with_auth(tpm: &mut Tpm, template: &[u8], auth: &[u8]) -> Primary {
    let mut c = create_primary_cmd(TPM_RH_OWNER, template);
    // inSensitive sits after header(10), handle(4), authSize(4), the empty password (9).
    let mut sensitive = ((4 + auth.len()) as u16).to_be_bytes().to_vec();
    sensitive.extend_from_slice(&(auth.len() as u16).to_be_bytes());
    sensitive.extend_from_slice(auth);
    sensitive.extend_from_slice(&[0, 0]);
    c.splice(27..33, sensitive);
    let len = c.len() as u32;
    c[2..6].copy_from_slice(&len.to_be_bytes());
    let r = run_ok(tpm, &c);
    let mut at = 18;
    let public = take2b(&r, &mut at).to_vec();
    let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
    let name = [&h("000b")[..], &sha256(&[&public])].concat();
    Primary {
        handle,
        public,
        name,
    }
}

/// The p256 verifying key of an outPublic's unique point.
fn verifying_key(public: &[u8]) -> p256::ecdsa::VerifyingKey {
    let u = unique(public);
    assert_eq!((&u[..2], &u[34..36]), (&[0, 32][..], &[0, 32][..]));
    let mut sec1 = alloc::vec![4u8];
    sec1.extend_from_slice(&u[2..34]);
    sec1.extend_from_slice(&u[36..68]);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap()
}

fn sign_params(digest: &[u8], scheme: &[u8], ticket: &[u8]) -> Vec<u8> {
    let mut p = (digest.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(digest);
    p.extend_from_slice(scheme);
    p.extend_from_slice(ticket);
    p
}

fn sign_cmd(handle: u32, password: &[u8], digest: &[u8], scheme: &str, ticket: &[u8]) -> Vec<u8> {
    with_pw(
        SIGN,
        &handle.to_be_bytes(),
        password,
        &sign_params(digest, &h(scheme), ticket),
    )
}

/// A TPMT_SIGNATURE (ECDSA, SHA-256, r and s of 32 octets) at the start of `r`: the
/// marshalled signature and the p256 signature.
fn take_signature(r: &[u8]) -> (Vec<u8>, p256::ecdsa::Signature) {
    assert_eq!(&r[..6], &h("0018 000b 0020")[..]);
    assert_eq!(&r[38..40], &[0, 32]);
    let r32: [u8; 32] = r[6..38].try_into().unwrap();
    let s32: [u8; 32] = r[40..72].try_into().unwrap();
    (
        r[..72].to_vec(),
        p256::ecdsa::Signature::from_scalars(r32, s32).unwrap(),
    )
}

/// Sign's response parameters (after the parameterSize) with a password session.
fn signed(r: &[u8]) -> (Vec<u8>, p256::ecdsa::Signature) {
    assert_eq!(u32_at(r, 10) as usize, 72);
    let sig = take_signature(&r[14..]);
    assert_eq!(&r[86..], &h("0000 01 0000")[..]);
    sig
}

/// TPM2_Hash's digest and its ticket octets.
fn hash_ticket(tpm: &mut Tpm, data: &[u8], alg: u16, hierarchy: u32) -> (Vec<u8>, Vec<u8>) {
    let r = run_ok(tpm, &hash_cmd(data, alg, hierarchy));
    let mut at = 10;
    let digest = take2b(&r, &mut at).to_vec();
    (digest, r[at..].to_vec())
}

fn proof(seed: &[u8]) -> Vec<u8> {
    hmac256(seed, &[b"Parapet hierarchy proof"])
}

#[test]
fn sign_unrestricted_key_signatures_verify_with_p256() {
    let mut tpm = started();
    let key = create_primary(&mut tpm, TPM_RH_OWNER, &signing_template());
    let vk = verifying_key(&key.public);
    let digest = sha256(&[b"message"]);
    let null = h(NULL_HASHCHECK);
    let a = signed(&run_ok(
        &mut tpm,
        &sign_cmd(key.handle, b"", &digest, SCHEME_NULL, &null),
    ));
    assert!(vk.verify_prehash(&digest, &a.1).is_ok());
    // Hedged k: the same digest signs differently, and both verify; the explicit scheme too.
    let b = signed(&run_ok(
        &mut tpm,
        &sign_cmd(key.handle, b"", &digest, SCHEME_ECDSA_SHA256, &null),
    ));
    assert_ne!(a.0, b.0);
    assert!(vk.verify_prehash(&digest, &b.1).is_ok());
    // Not over another digest.
    assert!(vk.verify_prehash(&sha256(&[b"other"]), &a.1).is_err());
    // A good ticket for an unrestricted key is checked and accepted.
    let (d, ticket) = hash_ticket(&mut tpm, b"message", TPM_ALG_SHA256, TPM_RH_ENDORSEMENT);
    assert_eq!(d, digest);
    let c = signed(&run_ok(
        &mut tpm,
        &sign_cmd(key.handle, b"", &digest, SCHEME_NULL, &ticket),
    ));
    assert!(vk.verify_prehash(&digest, &c.1).is_ok());

    let sign = |digest: &[u8], scheme: &str, ticket: &[u8]| {
        sign_cmd(key.handle, b"", digest, scheme, ticket)
    };
    let cases: &[(Vec<u8>, u32)] = &[
        // Digest of the wrong size: TPM_RC_SIZE + P1.
        (sign(&digest[..20], SCHEME_NULL, &null), 0x1D5),
        (sign(&[], SCHEME_NULL, &null), 0x1D5),
        // ECDSA-SHA1 (not the key's scheme), RSASSA: SCHEME + P2; hash 0005: HASH + P2.
        (sign(&digest, "0018 0004", &null), 0x2D2),
        (sign(&digest, "0014 000b", &null), 0x2D2),
        (sign(&digest, "0018 0005", &null), 0x2C3),
        // A non-empty ticket that is not the TPM's: TICKET + P3; bad tag: TAG + P3;
        // bad hierarchy: VALUE + P3.
        (
            sign(&digest, SCHEME_NULL, &h("8024 40000001 0001 00")),
            0x3E0,
        ),
        (sign(&digest, SCHEME_NULL, &h("8021 40000007 0000")), 0x3D7),
        (sign(&digest, SCHEME_NULL, &h("8024 4000000A 0000")), 0x3C4),
    ];
    for (c, code) in cases {
        assert_eq!(rc_of(&run(&mut tpm, c)), *code, "{c:02x?}");
    }
    // A ticket for another digest.
    let mut t = ticket.clone();
    let last = t.len() - 1;
    t[last] ^= 1;
    assert_eq!(
        rc_of(&run(&mut tpm, &sign(&digest, SCHEME_NULL, &t))),
        0x3E0
    );
    // A storage key cannot sign: TPM_RC_KEY + H1; no session: AUTH_MISSING.
    let storage = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let c = sign_cmd(storage.handle, b"", &digest, SCHEME_NULL, &null);
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x19C);
    let mut body = key.handle.to_be_bytes().to_vec();
    body.extend(sign_params(&digest, &h(SCHEME_NULL), &null));
    let c = cmd(TPM_ST_NO_SESSIONS, SIGN, &body);
    assert_eq!(rc_of(&run(&mut tpm, &c)), rc::AUTH_MISSING);
    // Not loaded: REFERENCE_H0.
    let c = sign_cmd(0x8000_0002, b"", &digest, SCHEME_NULL, &null);
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x910);
    assert!(!tpm.failure);
}

#[test]
fn restricted_keys_sign_only_digests_with_a_hashcheck_ticket() {
    let mut tpm = started();
    let key = create_primary(
        &mut tpm,
        TPM_RH_OWNER,
        &signing_template_with(RESTRICTED_SIGNING_ATTRS),
    );
    let vk = verifying_key(&key.public);
    let digest = sha256(&[b"message"]);
    let null = h(NULL_HASHCHECK);
    let sign =
        |digest: &[u8], ticket: &[u8]| sign_cmd(key.handle, b"", digest, SCHEME_NULL, ticket);
    // No ticket (the NULL ticket): TPM_RC_TICKET + P3.
    assert_eq!(rc_of(&run(&mut tpm, &sign(&digest, &null))), 0x3E0);
    // TPM2_Hash's ticket, in any hierarchy but NULL; computed here independently too.
    for (hierarchy, seed) in [
        (TPM_RH_OWNER, tpm.sps),
        (TPM_RH_ENDORSEMENT, tpm.eps),
        (TPM_RH_PLATFORM, tpm.pps),
    ] {
        let (d, ticket) = hash_ticket(&mut tpm, b"message", TPM_ALG_SHA256, hierarchy);
        assert_eq!(d, digest);
        let mut expected = h("8024");
        expected.extend_from_slice(&hierarchy.to_be_bytes());
        expected.extend_from_slice(&h("0020"));
        expected.extend(hmac256(&proof(&seed), &[&h("8024"), &digest]));
        assert_eq!(ticket, expected);
        let s = signed(&run_ok(&mut tpm, &sign(&digest, &ticket)));
        assert!(vk.verify_prehash(&digest, &s.1).is_ok());
        // The ticket does not carry over to another digest.
        let other = sha256(&[b"messagf"]);
        assert_eq!(rc_of(&run(&mut tpm, &sign(&other, &ticket))), 0x3E0);
    }
    // The null hierarchy's ticket is the NULL ticket.
    let (_, ticket) = hash_ticket(&mut tpm, b"message", TPM_ALG_SHA256, TPM_RH_NULL);
    assert_eq!(ticket, null);
    assert_eq!(rc_of(&run(&mut tpm, &sign(&digest, &ticket))), 0x3E0);
    // Data starting with TPM_GENERATED_VALUE (a forged TPMS_ATTEST) gets no ticket, so a
    // restricted key never signs its digest.
    let forged = h("ff544347 8018 0000");
    let (d, ticket) = hash_ticket(&mut tpm, &forged, TPM_ALG_SHA256, TPM_RH_OWNER);
    assert_eq!(d, sha256(&[&forged]));
    assert_eq!(ticket, null);
    assert_eq!(rc_of(&run(&mut tpm, &sign(&d, &ticket))), 0x3E0);
    // A SHA-1 ticket does not do for the SHA-256 scheme.
    let (d, ticket) = hash_ticket(&mut tpm, b"message", TPM_ALG_SHA1, TPM_RH_OWNER);
    assert_eq!(rc_of(&run(&mut tpm, &sign(&d, &ticket))), 0x3E0);
    // A ticket made up with another key: TICKET.
    let mut fake = h("8024 40000001 0020");
    fake.extend(hmac256(&[0; 32], &[&h("8024"), &digest]));
    assert_eq!(rc_of(&run(&mut tpm, &sign(&digest, &fake))), 0x3E0);
    assert!(!tpm.failure);
}

#[test]
fn objects_authorize_with_their_auth_value_password_and_hmac() {
    let mut tpm = started();
    let key = create_primary_with_auth(&mut tpm, &signing_template(), b"secret");
    let digest = sha256(&[b"m"]);
    let null = h(NULL_HASHCHECK);
    let c = sign_cmd(key.handle, b"secret", &digest, SCHEME_NULL, &null);
    run_ok(&mut tpm, &c);
    // Trailing zeros do not count; a wrong password is AUTH_FAIL + S1 (not noDA).
    run_ok(
        &mut tpm,
        &sign_cmd(key.handle, b"secret\0", &digest, SCHEME_NULL, &null),
    );
    let c = sign_cmd(key.handle, b"secreT", &digest, SCHEME_NULL, &null);
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x98E);
    let c = sign_cmd(key.handle, b"", &digest, SCHEME_NULL, &null);
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x98E);
    // HMAC session: cpHash has the object's Name (nameAlg || SHA-256(TPMT_PUBLIC)).
    let mut s = start(&mut tpm, TPM_RH_NULL, 0);
    let params = sign_params(&digest, &h(SCHEME_NULL), &null);
    let c = with_session(
        &s,
        SIGN,
        &[key.handle],
        core::slice::from_ref(&key.name),
        b"secret",
        1,
        &params,
    );
    let r = run(&mut tpm, &c);
    let out = check_session_response(&mut s, SIGN, b"secret", 1, &r);
    let sig = take_signature(&out);
    assert!(verifying_key(&key.public)
        .verify_prehash(&digest, &sig.1)
        .is_ok());
    // The handle instead of the Name in cpHash, or a wrong authValue: AUTH_FAIL + S1.
    let handle_name = key.handle.to_be_bytes().to_vec();
    let c = with_session(
        &s,
        SIGN,
        &[key.handle],
        &[handle_name],
        b"secret",
        1,
        &params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x98E);
    let names = [key.name.clone()];
    let c = with_session(&s, SIGN, &[key.handle], &names, b"secreT", 1, &params);
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x98E);
    // A policy session: the empty authPolicy matches no policyDigest (POLICY_FAIL + S1).
    let p = start(&mut tpm, TPM_RH_NULL, 1);
    let c = with_session(&p, SIGN, &[key.handle], &names, b"", 1, &params);
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x99D);
    // noDA: BAD_AUTH + S1. Without userWithAuth the authValue may not serve (USER role):
    // TPM_RC_AUTH_UNAVAILABLE, for the password and for an HMAC session.
    let no_da = create_primary_with_auth(
        &mut tpm,
        &signing_template_with(SIGNING_ATTRS | 0x400),
        b"x",
    );
    let c = sign_cmd(no_da.handle, b"y", &digest, SCHEME_NULL, &null);
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x9A2);
    run_ok(&mut tpm, &flush_cmd(no_da.handle));
    let policy_only = create_primary(
        &mut tpm,
        TPM_RH_OWNER,
        &signing_template_with(SIGNING_ATTRS & !0x40),
    );
    let c = sign_cmd(policy_only.handle, b"", &digest, SCHEME_NULL, &null);
    assert_eq!(rc_of(&run(&mut tpm, &c)), rc::AUTH_UNAVAILABLE);
    let names = [policy_only.name.clone()];
    let c = with_session(&s, SIGN, &[policy_only.handle], &names, b"", 1, &params);
    assert_eq!(rc_of(&run(&mut tpm, &c)), rc::AUTH_UNAVAILABLE);
    // StartAuthSession may still not bind to an object: VALUE + H2.
    let c = start_cmd(key.handle, &[0x5a; 32], 0, &h("0010"), TPM_ALG_SHA256);
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x284);
    assert!(!tpm.failure);
}

fn verify_cmd(handle: u32, digest: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut body = handle.to_be_bytes().to_vec();
    body.extend_from_slice(&(digest.len() as u16).to_be_bytes());
    body.extend_from_slice(digest);
    body.extend_from_slice(signature);
    cmd(TPM_ST_NO_SESSIONS, VERIFY_SIGNATURE, &body)
}

#[test]
fn verify_signature_accepts_good_signatures_with_a_ticket_and_rejects_flipped_bits() {
    let mut tpm = started();
    let key = create_primary(&mut tpm, TPM_RH_OWNER, &signing_template());
    let digest = sha256(&[b"message"]);
    let (sig, _) = signed(&run_ok(
        &mut tpm,
        &sign_cmd(key.handle, b"", &digest, SCHEME_NULL, &h(NULL_HASHCHECK)),
    ));
    let r = run_ok(&mut tpm, &verify_cmd(key.handle, &digest, &sig));
    // TPMT_TK_VERIFIED: HMAC-SHA256(proof, TPM_ST_VERIFIED || digest || keyName).
    let mut expected = h("8022 40000001 0020");
    expected.extend(hmac256(&proof(&tpm.sps), &[&h("8022"), &digest, &key.name]));
    assert_eq!(&r[10..], &expected[..]);
    // Every flipped bit of r or s, or of the digest: TPM_RC_SIGNATURE + P2.
    for i in (6..38).chain(40..72) {
        for bit in [0, 7] {
            let mut bad = sig.clone();
            bad[i] ^= 1 << bit;
            let r = run(&mut tpm, &verify_cmd(key.handle, &digest, &bad));
            assert_eq!(rc_of(&r), 0x2DB, "octet {i} bit {bit}");
        }
    }
    let mut other = digest.clone();
    other[31] ^= 1;
    assert_eq!(
        rc_of(&run(&mut tpm, &verify_cmd(key.handle, &other, &sig))),
        0x2DB
    );
    // A signature by another key (p256 signs independently) fails; r = 0, s = n fail.
    let foreign = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    let fs: p256::ecdsa::Signature =
        p256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&foreign, &digest).unwrap();
    let (fr, fs) = fs.split_bytes();
    let mut foreign_sig = h("0018 000b 0020");
    foreign_sig.extend_from_slice(&fr);
    foreign_sig.extend_from_slice(&h("0020"));
    foreign_sig.extend_from_slice(&fs);
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &verify_cmd(key.handle, &digest, &foreign_sig)
        )),
        0x2DB
    );
    let mut zero_r = sig.clone();
    zero_r[6..38].fill(0);
    assert_eq!(
        rc_of(&run(&mut tpm, &verify_cmd(key.handle, &digest, &zero_r))),
        0x2DB
    );
    let n = h("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let mut big_s = sig.clone();
    big_s[40..72].copy_from_slice(&n);
    assert_eq!(
        rc_of(&run(&mut tpm, &verify_cmd(key.handle, &digest, &big_s))),
        0x2DB
    );
    // Short r (leading zeros dropped) is the same number: r = 0x01 fails as a signature only.
    let short = h("0018 000b 0001 01 0001 01");
    assert_eq!(
        rc_of(&run(&mut tpm, &verify_cmd(key.handle, &digest, &short))),
        0x2DB
    );
    // Unmarshalling: NULL or RSASSA: SCHEME + P2; hash 0005: HASH + P2; r of 33: SIZE + P2.
    let cases: &[(&str, u32)] = &[
        ("0010", 0x2D2),
        ("0014 000b 0000", 0x2D2),
        ("0018 0005 0000 0000", 0x2C3),
        ("0018 000b 0021 00", 0x2D5),
    ];
    for (s, code) in cases {
        let r = run(&mut tpm, &verify_cmd(key.handle, &digest, &h(s)));
        assert_eq!(rc_of(&r), *code, "{s}");
    }
    // A storage key cannot verify: ATTRIBUTES + H1.
    let storage = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let r = run(&mut tpm, &verify_cmd(storage.handle, &digest, &sig));
    assert_eq!(rc_of(&r), 0x182);
    // A null-hierarchy key's ticket is the NULL ticket.
    run_ok(&mut tpm, &flush_cmd(storage.handle));
    let null_key = create_primary(&mut tpm, TPM_RH_NULL, &signing_template());
    let (sig, _) = signed(&run_ok(
        &mut tpm,
        &sign_cmd(
            null_key.handle,
            b"",
            &digest,
            SCHEME_NULL,
            &h(NULL_HASHCHECK),
        ),
    ));
    let r = run_ok(&mut tpm, &verify_cmd(null_key.handle, &digest, &sig));
    assert_eq!(&r[10..], &h("8022 40000007 0000")[..]);
    assert!(!tpm.failure);
}

fn quote_cmd(handle: u32, qualifying: &[u8], scheme: &str, selection: &str) -> Vec<u8> {
    let mut p = (qualifying.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(qualifying);
    p.extend(h(scheme));
    p.extend(h(selection));
    with_pw(QUOTE, &handle.to_be_bytes(), b"", &p)
}

/// SHA-256 PCRs 0, 1 and 16.
const SEL_0_1_16: &str = "00000001 000b 03 030001";

/// Checks a quote response against values computed here; returns the TPMS_ATTEST.
fn check_quote(tpm: &Tpm, key: &Primary, hierarchy: u32, r: &[u8], pcrs: &[&[u8]]) -> Vec<u8> {
    let mut at = 14;
    let attest = take2b(r, &mut at).to_vec();
    let (_, sig) = take_signature(&r[at..]);
    assert_eq!(&r[at + 72..], &h("0000 01 0000")[..]);
    assert!(verifying_key(&key.public)
        .verify_prehash(&sha256(&[&attest]), &sig)
        .is_ok());
    let qn = [
        &h("000b")[..],
        &sha256(&[&hierarchy.to_be_bytes(), &key.name]),
    ]
    .concat();
    let mut expected = h("ff544347 8018 0022");
    expected.extend_from_slice(&qn);
    expected.extend(h("0008 0102030405060708"));
    expected.extend_from_slice(&tpm.clock_ms.to_be_bytes());
    let mut firmware: u64 = 0x0001_0000_0000_0000;
    let (mut reset, mut restart) = (tpm.reset_count, tpm.restart_count);
    if hierarchy == TPM_RH_OWNER || hierarchy == TPM_RH_NULL {
        // KDFa(SHA-256, shProof, "OBFUSCATE", QN, "", 128): one HMAC block (Part 1 §11.4.10.2).
        let block = hmac256(
            &proof(&tpm.sps),
            &[
                &1u32.to_be_bytes(),
                b"OBFUSCATE\0",
                &qn,
                &128u32.to_be_bytes(),
            ],
        );
        let first = u64::from_be_bytes(block[..8].try_into().unwrap());
        let second = u64::from_be_bytes(block[8..16].try_into().unwrap());
        firmware = firmware.wrapping_add(first);
        reset = reset.wrapping_add((second >> 32) as u32);
        restart = restart.wrapping_add(second as u32);
    }
    expected.extend_from_slice(&reset.to_be_bytes());
    expected.extend_from_slice(&restart.to_be_bytes());
    expected.push(1);
    expected.extend_from_slice(&firmware.to_be_bytes());
    expected.extend(h(SEL_0_1_16));
    expected.extend(h("0020"));
    expected.extend(sha256(pcrs));
    assert_eq!(attest, expected);
    attest
}

#[test]
fn quote_attests_pcrs_clock_and_qualifying_data() {
    let mut tpm = started();
    tpm.advance_clock(123_456);
    // PCR 16 extended once: SHA-256(zeros || 00..1f).
    let extend: [u8; 32] = core::array::from_fn(|i| i as u8);
    assert_eq!(rc_of(&extend_sha256(&mut tpm, 0, 16, &extend)), 0);
    let pcr16 = sha256(&[&[0; 32], &extend]);
    assert_eq!(pcr_read(&mut tpm, TPM_ALG_SHA256, 16), pcr16);
    let pcrs: [&[u8]; 3] = [&[0; 32], &[0; 32], &pcr16];

    // Endorsement key: clockInfo and firmwareVersion in the clear.
    let ek = create_primary(
        &mut tpm,
        TPM_RH_ENDORSEMENT,
        &signing_template_with(RESTRICTED_SIGNING_ATTRS),
    );
    let q = h("0102030405060708");
    let r = run_ok(&mut tpm, &quote_cmd(ek.handle, &q, SCHEME_NULL, SEL_0_1_16));
    let attest = check_quote(&tpm, &ek, TPM_RH_ENDORSEMENT, &r, &pcrs);
    assert_eq!(&attest[0x34..0x3c], &123_456u64.to_be_bytes());
    run_ok(&mut tpm, &flush_cmd(ek.handle));
    // An owner key (unrestricted too may quote): obfuscated counts, after a restart.
    run_ok(&mut tpm, &h(SHUTDOWN_STATE));
    tpm.init();
    run_ok(&mut tpm, &h(STARTUP_CLEAR));
    assert_eq!(tpm.restart_count, 1);
    assert_eq!(rc_of(&extend_sha256(&mut tpm, 0, 16, &extend)), 0);
    let key = create_primary(&mut tpm, TPM_RH_OWNER, &signing_template());
    let r = run_ok(
        &mut tpm,
        &quote_cmd(key.handle, &q, SCHEME_ECDSA_SHA256, SEL_0_1_16),
    );
    check_quote(&tpm, &key, TPM_RH_OWNER, &r, &pcrs);
    // Null-hierarchy keys are obfuscated too.
    let null_key = create_primary(&mut tpm, TPM_RH_NULL, &signing_template());
    let r = run_ok(
        &mut tpm,
        &quote_cmd(null_key.handle, &q, SCHEME_NULL, SEL_0_1_16),
    );
    check_quote(&tpm, &null_key, TPM_RH_NULL, &r, &pcrs);
    // Errors: storage key (KEY + H1), ECDSA-SHA384 (SCHEME + P2), bad bank (HASH + P3),
    // qualifyingData over 66 octets (SIZE + P1), TPM_RH_NULL signHandle (VALUE + H1).
    run_ok(&mut tpm, &flush_cmd(null_key.handle));
    let storage = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let cases: &[(Vec<u8>, u32)] = &[
        (
            quote_cmd(storage.handle, &q, SCHEME_NULL, SEL_0_1_16),
            0x19C,
        ),
        (quote_cmd(key.handle, &q, "0018 000c", SEL_0_1_16), 0x2D2),
        (
            quote_cmd(key.handle, &q, SCHEME_NULL, "00000001 0005 03 030001"),
            0x3C3,
        ),
        (
            quote_cmd(key.handle, &[0; 67], SCHEME_NULL, SEL_0_1_16),
            0x1D5,
        ),
        (quote_cmd(TPM_RH_NULL, &q, SCHEME_NULL, SEL_0_1_16), 0x184),
    ];
    for (c, code) in cases {
        assert_eq!(rc_of(&run(&mut tpm, c)), *code, "{c:02x?}");
    }
    assert!(!tpm.failure);
}

#[test]
fn hostile_sign_verify_and_quote_inputs_never_panic() {
    let mut tpm = started();
    let key = create_primary(
        &mut tpm,
        TPM_RH_OWNER,
        &signing_template_with(RESTRICTED_SIGNING_ATTRS),
    );
    let (digest, ticket) = hash_ticket(&mut tpm, b"message", TPM_ALG_SHA256, TPM_RH_OWNER);
    let sign = sign_cmd(key.handle, b"", &digest, SCHEME_NULL, &ticket);
    let (sig, _) = signed(&run_ok(&mut tpm, &sign));
    let verify = verify_cmd(key.handle, &digest, &sig);
    run_ok(&mut tpm, &verify);
    let quote = quote_cmd(key.handle, &h("0102"), SCHEME_NULL, SEL_0_1_16);
    run_ok(&mut tpm, &quote);
    let mut x = 0x9e37_79b9u32;
    for good in [&sign, &verify, &quote] {
        for len in 0..good.len() {
            let mut c = good[..len].to_vec();
            if c.len() >= 6 {
                c[2..6].copy_from_slice(&(len as u32).to_be_bytes());
            }
            assert_ne!(rc_of(&run(&mut tpm, &c)), 0);
        }
        for i in 10..good.len() {
            for bit in 0..8 {
                let mut c = good.clone();
                c[i] ^= 1 << bit;
                run(&mut tpm, &c);
            }
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let mut c = good.clone();
            c[i] = (x >> 16) as u8;
            run(&mut tpm, &c);
        }
    }
    assert!(!tpm.failure);
    assert_eq!(tpm.objects.len(), 1);
    // Still signs afterwards.
    run_ok(&mut tpm, &sign);
}

// --- TPM2_Create and TPM2_Load: protected storage (Part 1 §23) ---

const CREATE: u32 = 0x0000_0153;
const LOAD: u32 = 0x0000_0157;

/// KDFa (Part 1 §11.4.10.2, SP 800-108 counter mode with HMAC-SHA256) for at most 256
/// bits, written out here: one block HMAC(key, 00000001 || label || 00 || u || v || bits).
fn kdfa_sha256(key: &[u8], label: &[u8], u: &[u8], v: &[u8], bits: u32) -> Vec<u8> {
    assert!(bits <= 256 && bits.is_multiple_of(8));
    let mut block = hmac256(
        key,
        &[&1u32.to_be_bytes(), label, &[0], u, v, &bits.to_be_bytes()],
    );
    block.truncate(bits as usize / 8);
    block
}

fn create_cmd(parent: u32, template: &[u8]) -> Vec<u8> {
    let mut p = h("0004 0000 0000");
    p.extend_from_slice(&(template.len() as u16).to_be_bytes());
    p.extend_from_slice(template);
    p.extend_from_slice(&h("0000 00000000"));
    with_pw(CREATE, &parent.to_be_bytes(), b"", &p)
}

fn load_cmd(parent: u32, private: &[u8], public: &[u8]) -> Vec<u8> {
    let mut p = (private.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(private);
    p.extend_from_slice(&(public.len() as u16).to_be_bytes());
    p.extend_from_slice(public);
    with_pw(LOAD, &parent.to_be_bytes(), b"", &p)
}

/// Create's outPrivate and outPublic; checks creationData names the parent.
fn create(tpm: &mut Tpm, parent: &Primary, template: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let r = run_ok(tpm, &create_cmd(parent.handle, template));
    let mut at = 14;
    let private = take2b(&r, &mut at).to_vec();
    let public = take2b(&r, &mut at).to_vec();
    let creation = take2b(&r, &mut at).to_vec();
    let creation_hash = take2b(&r, &mut at).to_vec();
    assert_eq!(creation_hash, Sha256::digest(&creation).to_vec());
    // pcrSelect (count 0), pcrDigest (SHA-256 of nothing), locality 0, parentNameAlg.
    let mut c = 0usize;
    assert_eq!(&creation[..4], &[0, 0, 0, 0]);
    c += 4;
    assert_eq!(take2b(&creation, &mut c), &Sha256::digest(b"")[..]);
    assert_eq!(creation[c], 1);
    c += 1;
    assert_eq!(&creation[c..c + 2], &TPM_ALG_SHA256.to_be_bytes());
    c += 2;
    assert_eq!(take2b(&creation, &mut c), &parent.name[..]);
    (private, public)
}

fn name_of(public: &[u8]) -> Vec<u8> {
    let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(public));
    name
}

#[test]
fn create_wraps_under_the_storage_seed_and_load_sign_verify() {
    use cfb_mode::cipher::KeyIvInit;
    let mut tpm = started();
    let parent = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let (private, public) = create(&mut tpm, &parent, &signing_template());
    let name = name_of(&public);

    // The parent's seedValue, computed here from the SPS (see `object::derive_primary`).
    let template_name = name_of(&storage_template());
    let seed = kdfa_sha256(
        &tpm.sps,
        b"Primary Object Creation\0",
        &template_name,
        &0u32.to_be_bytes(),
        256,
    );
    // integrityHMAC (TPM2B_DIGEST) || AES-128-CFB(IV 0) of TPM2B_SENSITIVE.
    assert_eq!(&private[..2], &[0, 32]);
    let (integrity, encrypted) = (&private[2..34], &private[34..]);
    let hmac_key = kdfa_sha256(&seed, b"INTEGRITY", b"", b"", 256);
    assert_eq!(integrity, &hmac256(&hmac_key, &[encrypted, &name])[..]);
    let sym = kdfa_sha256(&seed, b"STORAGE", &name, b"", 128);
    let mut plain = encrypted.to_vec();
    cfb_mode::Decryptor::<aes::Aes128>::new(
        &<[u8; 16]>::try_from(&sym[..]).unwrap().into(),
        &[0u8; 16].into(),
    )
    .decrypt(&mut plain);
    // TPM2B_SENSITIVE: size, TPM_ALG_ECC, empty authValue, empty seedValue, d (32 octets).
    assert_eq!(&plain[..10], &h("0028 0023 0000 0000 0020")[..]);
    assert_eq!(plain.len(), 42);
    let d = p256::SecretKey::from_slice(&plain[10..42]).unwrap();
    assert_eq!(
        d.public_key(),
        p256::PublicKey::from(verifying_key(&public))
    );

    // Load: the handle and the Name.
    let r = run_ok(&mut tpm, &load_cmd(parent.handle, &private, &public));
    let handle = u32_at(&r, 10);
    assert_eq!(handle, 0x8000_0001);
    let mut at = 18;
    assert_eq!(take2b(&r, &mut at), &name[..]);
    // ReadPublic's qualifiedName: QN = nameAlg || H(QN(parent) || Name), QN(parent) =
    // nameAlg || H(TPM_RH_OWNER || Name(parent)).
    let read_public = cmd(TPM_ST_NO_SESSIONS, 0x173, &handle.to_be_bytes());
    let r = run_ok(&mut tpm, &read_public);
    let mut at = 10;
    assert_eq!(take2b(&r, &mut at), &public[..]);
    assert_eq!(take2b(&r, &mut at), &name[..]);
    let mut parent_qn = TPM_ALG_SHA256.to_be_bytes().to_vec();
    parent_qn.extend_from_slice(&sha256(&[&TPM_RH_OWNER.to_be_bytes(), &parent.name]));
    let mut qn = TPM_ALG_SHA256.to_be_bytes().to_vec();
    qn.extend_from_slice(&sha256(&[&parent_qn, &name]));
    assert_eq!(take2b(&r, &mut at), &qn[..]);

    // Sign with the loaded child, verify with p256 and with VerifySignature.
    let digest = sha256(&[b"child"]);
    let (sig, p256_sig) = signed(&run_ok(
        &mut tpm,
        &sign_cmd(handle, b"", &digest, "0010", &h("8024 40000007 0000")),
    ));
    verifying_key(&public)
        .verify_prehash(&digest, &p256_sig)
        .unwrap();
    run_ok(&mut tpm, &verify_cmd(handle, &digest, &sig));

    // Two Creates of the same template give different keys.
    let (_, other) = create(&mut tpm, &parent, &signing_template());
    assert_ne!(unique(&other), unique(&public));
}

/// tpm2_create's default ECC template: fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, sign, decrypt (0x00060072), restricted CLEAR, symmetric and scheme NULL
/// (Part 2 §12.2.3.6: both sign and decrypt SET needs restricted CLEAR and scheme NULL).
const SIGN_DECRYPT_ATTRS: u32 = 0x0006_0072;
fn sign_decrypt_template() -> Vec<u8> {
    ecc_template(
        SIGN_DECRYPT_ATTRS,
        &h("0010"),
        &h("0010"),
        TPM_ECC_NIST_P256,
        &h("0010"),
    )
}

#[test]
fn sign_decrypt_key_is_created_loaded_and_read_back() {
    let mut tpm = started();
    let parent = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let (private, public) = create(&mut tpm, &parent, &sign_decrypt_template());
    // outPublic keeps the template: attributes, symmetric NULL, scheme NULL, P-256, kdf NULL.
    assert_eq!(&public[..8], &h("0023 000b 00060072")[..]);
    assert_eq!(&public[8..18], &h("0000 0010 0010 0003 0010")[..]);
    verifying_key(&public);
    let r = run_ok(&mut tpm, &load_cmd(parent.handle, &private, &public));
    let handle = u32_at(&r, 10);
    let mut at = 18;
    assert_eq!(take2b(&r, &mut at), &name_of(&public)[..]);
    let r = run_ok(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, 0x173, &handle.to_be_bytes()),
    );
    let mut at = 10;
    assert_eq!(take2b(&r, &mut at), &public[..]);
    // It is no storage parent: Create under it is TPM_RC_TYPE + H1.
    let c = create_cmd(handle, &signing_template());
    assert_eq!(rc_of(&run(&mut tpm, &c)), rc::handle(rc::TYPE, 1));
    // A primary of the same template too; context save and load keep it.
    run_ok(&mut tpm, &flush_cmd(handle));
    let primary = create_primary(&mut tpm, TPM_RH_OWNER, &sign_decrypt_template());
    let context = context_save(&mut tpm, primary.handle);
    run_ok(&mut tpm, &context_load_cmd(&context));
    // Both SET with restricted: ATTRIBUTES; with a scheme: SCHEME; with AES: SYMMETRIC
    // (all + P2).
    let (null, p256) = (h("0010"), TPM_ECC_NIST_P256);
    let cases: &[(Vec<u8>, u32)] = &[
        (
            ecc_template(SIGN_DECRYPT_ATTRS | 0x1_0000, &null, &null, p256, &null),
            0x2C2,
        ),
        (
            ecc_template(SIGN_DECRYPT_ATTRS, &null, &h("0018 000b"), p256, &null),
            0x2D2,
        ),
        (
            ecc_template(SIGN_DECRYPT_ATTRS, &h("0006 0080 0043"), &null, p256, &null),
            0x2D6,
        ),
    ];
    for (template, code) in cases {
        let r = run(&mut tpm, &create_cmd(parent.handle, template));
        assert_eq!(rc_of(&r), *code, "template {template:02x?}");
    }
    assert!(!tpm.failure);
}

#[test]
fn sign_decrypt_key_signs_with_the_commands_scheme_only() {
    let mut tpm = started();
    let parent = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let (private, public) = create(&mut tpm, &parent, &sign_decrypt_template());
    let handle = u32_at(
        &run_ok(&mut tpm, &load_cmd(parent.handle, &private, &public)),
        10,
    );
    let vk = verifying_key(&public);
    let null = h(NULL_HASHCHECK);

    // inScheme ECDSA-SHA256 (Part 3 §20.2.1: the key's scheme is NULL, so inScheme is used):
    // verifies with p256 and with VerifySignature.
    let digest = sha256(&[b"message"]);
    let (sig, p256_sig) = signed(&run_ok(
        &mut tpm,
        &sign_cmd(handle, b"", &digest, SCHEME_ECDSA_SHA256, &null),
    ));
    vk.verify_prehash(&digest, &p256_sig).unwrap();
    run_ok(&mut tpm, &verify_cmd(handle, &digest, &sig));
    let mut tampered = sig.clone();
    tampered[10] ^= 1;
    assert_eq!(
        rc_of(&run(&mut tpm, &verify_cmd(handle, &digest, &tampered))),
        rc::parameter(rc::SIGNATURE, 2)
    );

    // ECDSA-SHA384: the signature names SHA-384 and verifies over the 48-octet digest.
    let digest384 = Sha384::digest(b"message").to_vec();
    let r = run_ok(
        &mut tpm,
        &sign_cmd(handle, b"", &digest384, "0018 000c", &null),
    );
    let sig384 = r[14..86].to_vec();
    assert_eq!(&sig384[..6], &h("0018 000c 0020")[..]);
    run_ok(&mut tpm, &verify_cmd(handle, &digest384, &sig384));
    // ECDSA-SHA1 over a 20-octet digest likewise.
    let digest1 = Sha1::digest(b"message").to_vec();
    let r = run_ok(
        &mut tpm,
        &sign_cmd(handle, b"", &digest1, "0018 0004", &null),
    );
    let sig1 = r[14..86].to_vec();
    assert_eq!(&sig1[..6], &h("0018 0004 0020")[..]);
    run_ok(&mut tpm, &verify_cmd(handle, &digest1, &sig1));
    // A digest not of the scheme's size: SIZE + P1.
    let c = sign_cmd(handle, b"", &digest, "0018 000c", &null);
    assert_eq!(rc_of(&run(&mut tpm, &c)), rc::parameter(rc::SIZE, 1));

    // inScheme NULL with the key's NULL scheme: TPM_RC_SCHEME + P2 (0x2D2), for Sign and
    // for Quote.
    let c = sign_cmd(handle, b"", &digest, SCHEME_NULL, &null);
    assert_eq!(rc_of(&run(&mut tpm, &c)), rc::parameter(rc::SCHEME, 2));
    assert_eq!(rc::parameter(rc::SCHEME, 2), 0x2D2);
    let q = h("0102");
    let c = quote_cmd(handle, &q, SCHEME_NULL, SEL_0_1_16);
    assert_eq!(rc_of(&run(&mut tpm, &c)), 0x2D2);
    run_ok(
        &mut tpm,
        &quote_cmd(handle, &q, SCHEME_ECDSA_SHA256, SEL_0_1_16),
    );
    assert!(!tpm.failure);
}

#[test]
fn load_refuses_any_flipped_byte_and_foreign_parts() {
    let mut tpm = started();
    let parent = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let (private, public) = create(&mut tpm, &parent, &signing_template());
    let integrity_p1 = rc::INTEGRITY + 0x140;
    for i in 0..private.len() {
        for bit in [0x01u8, 0x80] {
            let mut p = private.clone();
            p[i] ^= bit;
            let r = run(&mut tpm, &load_cmd(parent.handle, &p, &public));
            assert_eq!(rc_of(&r), integrity_p1, "octet {i}");
        }
    }
    // Truncated or extended private, another key's public: integrity.
    let r = run(&mut tpm, &load_cmd(parent.handle, &private[..40], &public));
    assert_eq!(rc_of(&r), integrity_p1);
    let mut longer = private.clone();
    longer.push(0);
    let r = run(&mut tpm, &load_cmd(parent.handle, &longer, &public));
    assert_eq!(rc_of(&r), integrity_p1);
    let (_, other_public) = create(&mut tpm, &parent, &signing_template());
    let r = run(&mut tpm, &load_cmd(parent.handle, &private, &other_public));
    assert_eq!(rc_of(&r), integrity_p1);
    // Another storage parent (the endorsement hierarchy's): a different seedValue.
    let other_parent = create_primary(&mut tpm, TPM_RH_ENDORSEMENT, &storage_template());
    let r = run(&mut tpm, &load_cmd(other_parent.handle, &private, &public));
    assert_eq!(rc_of(&r), integrity_p1);
    // A signing key as parent: TPM_RC_TYPE + handle 1, for Create and Load.
    assert_eq!(rc_of(&flush(&mut tpm, other_parent.handle)), 0);
    let signer = create_primary(&mut tpm, TPM_RH_OWNER, &signing_template());
    let r = run(&mut tpm, &create_cmd(signer.handle, &signing_template()));
    assert_eq!(rc_of(&r), rc::TYPE + 0x100);
    let r = run(&mut tpm, &load_cmd(signer.handle, &private, &public));
    assert_eq!(rc_of(&r), rc::TYPE + 0x100);
    // Still loadable under the right parent.
    assert_eq!(rc_of(&flush(&mut tpm, signer.handle)), 0);
    run_ok(&mut tpm, &load_cmd(parent.handle, &private, &public));
}

#[test]
fn storage_children_are_parents_and_create_load_never_panic() {
    let mut tpm = started();
    let parent = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let (private, public) = create(&mut tpm, &parent, &storage_template());
    let r = run_ok(&mut tpm, &load_cmd(parent.handle, &private, &public));
    let child = Primary {
        handle: u32_at(&r, 10),
        name: name_of(&public),
        public: public.clone(),
    };
    let (gp, gpub) = create(&mut tpm, &child, &signing_template());
    // The grandchild loads under the child only.
    let r = run(&mut tpm, &load_cmd(parent.handle, &gp, &gpub));
    assert_eq!(rc_of(&r), rc::INTEGRITY + 0x140);
    let r = run_ok(&mut tpm, &load_cmd(child.handle, &gp, &gpub));
    let grandchild = u32_at(&r, 10);
    assert_eq!(rc_of(&flush(&mut tpm, grandchild)), 0);

    // Every truncation of Create and Load is an error; random flips never panic.
    let commands = [
        create_cmd(parent.handle, &signing_template()),
        load_cmd(child.handle, &gp, &gpub),
    ];
    for c in &commands {
        for n in 0..c.len() {
            assert_ne!(rc_of(&run(&mut tpm, &c[..n])), 0);
        }
    }
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let mut c = commands[rng.below(2)].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(c.len());
            c[at] ^= 1 << rng.below(8);
        }
        if rng.below(4) != 0 {
            let len = c.len() as u32;
            c[2..6].copy_from_slice(&len.to_be_bytes());
        }
        let r = run(&mut tpm, &c);
        if rc_of(&r) == 0 && u32::from_be_bytes(c[6..10].try_into().unwrap()) == LOAD {
            // A flip outside the private and public (e.g. in the session) may load.
            assert_eq!(rc_of(&flush(&mut tpm, u32_at(&r, 10))), 0);
        }
    }
}

const UNSEAL: u32 = 0x0000_015E;

/// A sealed data object's TPMT_PUBLIC template: KEYEDHASH, SHA-256, scheme NULL, empty unique.
fn sealed_template(attributes: u32, policy: &[u8]) -> Vec<u8> {
    let mut t = h("0008 000b");
    t.extend_from_slice(&attributes.to_be_bytes());
    t.extend_from_slice(&(policy.len() as u16).to_be_bytes());
    t.extend_from_slice(policy);
    t.extend_from_slice(&h("0010 0000"));
    t
}

fn create_sealed_cmd(parent: u32, auth: &[u8], data: &[u8], template: &[u8]) -> Vec<u8> {
    let mut sensitive = (auth.len() as u16).to_be_bytes().to_vec();
    sensitive.extend_from_slice(auth);
    sensitive.extend_from_slice(&(data.len() as u16).to_be_bytes());
    sensitive.extend_from_slice(data);
    let mut p = (sensitive.len() as u16).to_be_bytes().to_vec();
    p.extend(sensitive);
    p.extend_from_slice(&(template.len() as u16).to_be_bytes());
    p.extend_from_slice(template);
    p.extend_from_slice(&h("0000 00000000"));
    with_pw(CREATE, &parent.to_be_bytes(), b"", &p)
}

/// Create's outPrivate and outPublic from a response.
fn created(r: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut at = 14;
    let private = take2b(r, &mut at).to_vec();
    let public = take2b(r, &mut at).to_vec();
    (private, public)
}

/// The TPMT_SENSITIVE inside an outPrivate made under the owner's default storage primary,
/// decrypted here (seedValue from the SPS, KDFa, AES-128-CFB with IV 0).
fn open_private(tpm: &Tpm, private: &[u8], name: &[u8]) -> Vec<u8> {
    use cfb_mode::cipher::KeyIvInit;
    let seed = kdfa_sha256(
        &tpm.sps,
        b"Primary Object Creation\0",
        &name_of(&storage_template()),
        &0u32.to_be_bytes(),
        256,
    );
    let hmac_key = kdfa_sha256(&seed, b"INTEGRITY", b"", b"", 256);
    assert_eq!(
        &private[2..34],
        &hmac256(&hmac_key, &[&private[34..], name])[..]
    );
    let sym = kdfa_sha256(&seed, b"STORAGE", name, b"", 128);
    let mut plain = private[34..].to_vec();
    cfb_mode::Decryptor::<aes::Aes128>::new(
        &<[u8; 16]>::try_from(&sym[..]).unwrap().into(),
        &[0u8; 16].into(),
    )
    .decrypt(&mut plain);
    assert_eq!(
        usize::from(u16::from_be_bytes([plain[0], plain[1]])),
        plain.len() - 2
    );
    plain[2..].to_vec()
}

fn unseal_pw(handle: u32, password: &[u8]) -> Vec<u8> {
    with_pw(UNSEAL, &handle.to_be_bytes(), password, &[])
}

#[test]
fn sealed_data_create_load_unseal_with_a_password() {
    let mut tpm = started();
    let parent = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    // fixedTPM | fixedParent | userWithAuth: what `tpm2_create -i` asks for.
    let template = sealed_template(0x52, &[]);
    let data = b"the sealed secret";
    let r = run_ok(
        &mut tpm,
        &create_sealed_cmd(parent.handle, b"pw", data, &template),
    );
    let (private, public) = created(&r);
    let name = name_of(&public);
    // TPMT_SENSITIVE: KEYEDHASH, authValue "pw", seedValue (32), data; unique =
    // SHA-256(seedValue || data).
    let sensitive = open_private(&tpm, &private, &name);
    assert_eq!(&sensitive[..6], &h("0008 0002 7077")[..]);
    assert_eq!(&sensitive[6..8], &[0, 32]);
    let seed_value = &sensitive[8..40];
    assert_eq!(&sensitive[40..42], &(data.len() as u16).to_be_bytes());
    assert_eq!(&sensitive[42..], data);
    let mut expected_public = template[..template.len() - 2].to_vec();
    expected_public.extend_from_slice(&[0, 32]);
    expected_public.extend_from_slice(&sha256(&[seed_value, data]));
    assert_eq!(public, expected_public);

    let r = run_ok(&mut tpm, &load_cmd(parent.handle, &private, &public));
    let handle = u32_at(&r, 10);
    let r = run_ok(&mut tpm, &unseal_pw(handle, b"pw"));
    // parameterSize, TPM2B data, the password response session.
    assert_eq!(u32_at(&r, 10) as usize, 2 + data.len());
    assert_eq!(&r[14..16], &(data.len() as u16).to_be_bytes());
    assert_eq!(&r[16..16 + data.len()], data);
    assert_eq!(&r[16 + data.len()..], &h("0000 01 0000")[..]);
    assert_ne!(rc_of(&run(&mut tpm, &unseal_pw(handle, b"no"))), 0);
    // A signing key, the storage parent: not sealed data (TPM_RC_TYPE + handle 1).
    assert_eq!(rc_of(&run(&mut tpm, &unseal_pw(parent.handle, b""))), 0x18A);
    // Sign refuses the sealed object (TPM_RC_KEY + handle 1).
    let r = run(
        &mut tpm,
        &sign_cmd(handle, b"pw", &[0; 32], "0010", &h("8024 40000007 0000")),
    );
    assert_eq!(rc_of(&r), rc::KEY + 0x100);
    // Any flipped byte of the private: TPM_RC_INTEGRITY + P1.
    for i in 0..private.len() {
        let mut p = private.clone();
        p[i] ^= 0x10;
        let r = run(&mut tpm, &load_cmd(parent.handle, &p, &public));
        assert_eq!(rc_of(&r), rc::INTEGRITY + 0x140);
    }
    // Template errors: sensitiveDataOrigin or sign set, HMAC scheme, too much data;
    // CreatePrimary of sealed data is not implemented (TPM_RC_TYPE + P2).
    let bad = |tpm: &mut Tpm, data: &[u8], t: &[u8]| {
        rc_of(&run(tpm, &create_sealed_cmd(parent.handle, b"", data, t)))
    };
    assert_eq!(bad(&mut tpm, b"x", &sealed_template(0x72, &[])), 0x2C2);
    assert_eq!(bad(&mut tpm, b"x", &sealed_template(0x4_0052, &[])), 0x2C2);
    let mut hmac_scheme = sealed_template(0x52, &[]);
    let n = hmac_scheme.len();
    hmac_scheme[n - 4..n - 2].copy_from_slice(&TPM_ALG_HMAC.to_be_bytes());
    assert_eq!(bad(&mut tpm, b"x", &hmac_scheme), 0x2D2);
    assert_eq!(bad(&mut tpm, &[0; 129], &sealed_template(0x52, &[])), 0x1D5);
    let r = run(&mut tpm, &create_primary_cmd(TPM_RH_OWNER, &template));
    assert_eq!(rc_of(&r), 0x2CA);
}

#[test]
fn sealed_data_unseals_with_a_pcr_policy_session_only() {
    let mut tpm = started();
    extend_sha256(&mut tpm, 0, 16, &[3; 32]);
    // The policy, computed here: SHA-256(0^32 || TPM_CC_PolicyPCR || selection || pcrDigest).
    let pcr16 = sha256(&[&[0; 32], &[3; 32]]);
    let pcr_digest = sha256(&[&[0; 32], &pcr16]);
    let policy = sha256(&[
        &[0; 32],
        &POLICY_PCR.to_be_bytes(),
        &h(SEL_0_16),
        &pcr_digest,
    ]);
    let parent = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    // fixedTPM | fixedParent, no userWithAuth: a policy session is the only way.
    let data = b"policy-sealed";
    let r = run_ok(
        &mut tpm,
        &create_sealed_cmd(parent.handle, b"", data, &sealed_template(0x12, &policy)),
    );
    let (private, public) = created(&r);
    let name = name_of(&public);
    let r = run_ok(&mut tpm, &load_cmd(parent.handle, &private, &public));
    let handle = u32_at(&r, 10);
    // A password is refused: TPM_RC_AUTH_UNAVAILABLE.
    assert_eq!(rc_of(&run(&mut tpm, &unseal_pw(handle, b""))), 0x12F);

    let mut p = start(&mut tpm, TPM_RH_NULL, 1);
    run_ok(&mut tpm, &policy_pcr_cmd(p.handle, &[], &h(SEL_0_16)));
    let unseal = with_session(
        &p,
        UNSEAL,
        &[handle],
        core::slice::from_ref(&name),
        b"",
        1,
        &[],
    );
    let r = run(&mut tpm, &unseal);
    let params = check_session_response(&mut p, UNSEAL, b"", 1, &r);
    assert_eq!(&params[..2], &(data.len() as u16).to_be_bytes());
    assert_eq!(&params[2..], data);
    assert_eq!(flush(&mut tpm, p.handle), h(SUCCESS));

    // PCR 16 moves: the policy no longer matches (TPM_RC_POLICY_FAIL + session 1).
    extend_sha256(&mut tpm, 0, 16, &[4; 32]);
    let q = start(&mut tpm, TPM_RH_NULL, 1);
    run_ok(&mut tpm, &policy_pcr_cmd(q.handle, &[], &h(SEL_0_16)));
    let unseal = with_session(&q, UNSEAL, &[handle], &[name], b"", 1, &[]);
    assert_eq!(rc_of(&run(&mut tpm, &unseal)), 0x99D);
}

const EVICT_CONTROL: u32 = 0x0000_0120;

fn evict_cmd(auth: u32, object: u32, persistent: u32) -> Vec<u8> {
    with_pw(
        EVICT_CONTROL,
        &two(auth, object),
        b"",
        &persistent.to_be_bytes(),
    )
}

#[test]
fn evict_control_makes_objects_persistent_and_removes_them() {
    let mut tpm = started();
    let p1 = 0x8100_0001u32;
    let p2 = 0x8100_0002u32;
    // Part 3 §28.5 errors, numbered as Part 3 §5.8.2 says (handle 2 = objectHandle).
    let h2 = |e: u32| e + 0x200;
    let flush = |h: u32| cmd(TPM_ST_NO_SESSIONS, TPM_CC_FLUSH_CONTEXT, &h.to_be_bytes());
    // A null-hierarchy object is temporary (Part 4): TPM_RC_ATTRIBUTES.
    let null = create_primary(&mut tpm, TPM_RH_NULL, &signing_template());
    assert_eq!(
        rc_of(&run(&mut tpm, &evict_cmd(TPM_RH_OWNER, null.handle, p1))),
        h2(0x082)
    );
    run_ok(&mut tpm, &flush(null.handle));
    let srk = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let key = create_primary(&mut tpm, TPM_RH_OWNER, &signing_template());
    let platform = create_primary(&mut tpm, TPM_RH_PLATFORM, &signing_template());
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &evict_cmd(TPM_RH_OWNER, platform.handle, 0x8180_0000)
        )),
        h2(0x085)
    );
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &evict_cmd(TPM_RH_PLATFORM, key.handle, 0x8180_0000)
        )),
        h2(0x085)
    );
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &evict_cmd(TPM_RH_OWNER, key.handle, 0x8180_0000)
        )),
        0x1CD
    ); // RANGE + P1
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &evict_cmd(TPM_RH_PLATFORM, platform.handle, p1)
        )),
        0x1CD
    );
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &evict_cmd(TPM_RH_OWNER, key.handle, 0x8200_0000)
        )),
        0x1C4
    ); // VALUE + P1
    assert_eq!(
        rc_of(&run(&mut tpm, &evict_cmd(TPM_RH_OWNER, p1, p1))),
        0x28B
    ); // HANDLE + H2
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &evict_cmd(TPM_RH_ENDORSEMENT, key.handle, p1)
        )),
        0x184
    ); // VALUE + H1

    run_ok(&mut tpm, &evict_cmd(TPM_RH_OWNER, srk.handle, p1));
    run_ok(
        &mut tpm,
        &evict_cmd(TPM_RH_PLATFORM, platform.handle, 0x81FF_FFFF),
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &evict_cmd(TPM_RH_OWNER, key.handle, p1))),
        0x14C
    ); // NV_DEFINED
       // The owner may not remove a platform object; a persistent handle must match.
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &evict_cmd(TPM_RH_OWNER, 0x81FF_FFFF, 0x81FF_FFFF)
        )),
        h2(0x085)
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &evict_cmd(TPM_RH_OWNER, p1, p2))),
        h2(0x08B)
    );

    // The persistent SRK: ReadPublic names it as the loaded one; Create and Load under it.
    let read = |h: u32| cmd(TPM_ST_NO_SESSIONS, TPM_CC_READ_PUBLIC, &h.to_be_bytes());
    assert_eq!(
        run_ok(&mut tpm, &read(p1)),
        run_ok(&mut tpm, &read(srk.handle))
    );
    run_ok(&mut tpm, &flush(srk.handle));
    run_ok(&mut tpm, &flush(platform.handle));
    let persistent_srk = Primary {
        handle: p1,
        public: srk.public.clone(),
        name: srk.name.clone(),
    };
    let (private, public) = create(&mut tpm, &persistent_srk, &signing_template());
    let r = run_ok(&mut tpm, &load_cmd(p1, &private, &public));
    let child = u32::from_be_bytes(r[10..14].try_into().unwrap());
    // The child signs once persistent, too; the signature verifies with p256.
    run_ok(&mut tpm, &evict_cmd(TPM_RH_OWNER, child, p2));
    let digest = Sha256::digest(b"persistent");
    let r = run_ok(
        &mut tpm,
        &sign_cmd(p2, b"", &digest, "0010", &h("8024 40000007 0000")),
    );
    let (_, signature) = signed(&r);
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(
        &[&[4u8][..], &unique(&public)[2..34], &unique(&public)[36..]].concat(),
    );
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    assert!(key.unwrap().verify_prehash(&digest, &signature).is_ok());

    // GetCapability: the handles in order, the counts.
    let r = get_cap(&mut tpm, 1, 0x8100_0000, 8);
    assert_eq!(
        &r[10..],
        &h("00 00000001 00000003 81000001 81000002 81FFFFFF")[..]
    );
    let r = get_cap(&mut tpm, 1, 0x8100_0002, 1);
    assert_eq!(&r[10..], &h("01 00000001 00000001 81000002")[..]);
    let prop = |tpm: &mut Tpm, p: u32| u32_at(&get_cap(tpm, 6, p, 1), 23);
    assert_eq!(prop(&mut tpm, TPM_PT_HR_PERSISTENT), 3);
    assert_eq!(prop(&mut tpm, TPM_PT_HR_PERSISTENT_AVAIL), 4);
    assert_eq!(prop(&mut tpm, TPM_PT_HR_PERSISTENT_MIN), 7);

    // They survive _TPM_Init and the state blob; a version-2 blob loads with none.
    tpm.init();
    run_ok(&mut tpm, &cmd(TPM_ST_NO_SESSIONS, 0x144, &h("0000")));
    let bytes = tpm.to_bytes();
    let mut restored = Tpm::from_bytes(&bytes).unwrap();
    assert_eq!(restored, tpm);
    assert_eq!(
        run_ok(&mut restored, &read(p1)),
        run_ok(&mut tpm, &read(p1))
    );
    let mut v2 = bytes.clone();
    v2[4..6].copy_from_slice(&2u16.to_be_bytes());
    let persistent_len = v2.len()
        - tpm
            .persistent
            .values()
            .map(|o| {
                let mut w = super::marshal::Writer::new();
                o.write(&mut w);
                4 + 2 + w.as_slice().len()
            })
            .sum::<usize>()
        - 4
        - 9; // version 4's hierarchy authorizations and disableClear
    v2.truncate(persistent_len);
    let old = Tpm::from_bytes(&v2).unwrap();
    assert!(old.persistent.is_empty());
    let mut bad = bytes.clone();
    let at = persistent_len + 4;
    bad[at] = 0x80; // a handle outside the persistent range
    assert!(Tpm::from_bytes(&bad).is_err());

    // Removing: the platform may remove any; then the handles are free again.
    run_ok(&mut tpm, &evict_cmd(TPM_RH_PLATFORM, p2, p2));
    run_ok(&mut tpm, &evict_cmd(TPM_RH_OWNER, p1, p1));
    assert_eq!(rc_of(&run(&mut tpm, &read(p1))), 0x18B);
    assert_eq!(prop(&mut tpm, TPM_PT_HR_PERSISTENT), 1);

    // TPM_RC_NV_SPACE once MAX_PERSISTENT_OBJECTS are taken.
    let key = create_primary(&mut tpm, TPM_RH_OWNER, &signing_template());
    for i in 0..6 {
        run_ok(
            &mut tpm,
            &evict_cmd(TPM_RH_OWNER, key.handle, 0x8100_0010 + i),
        );
    }
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &evict_cmd(TPM_RH_OWNER, key.handle, 0x8100_0020)
        )),
        0x14B
    );
}

// --- TPM2_HierarchyChangeAuth, TPM2_Clear, TPM2_ClearControl, TPM2_TestParms ---

fn change_auth_cmd(hierarchy: u32, password: &[u8], new_auth: &[u8]) -> Vec<u8> {
    let mut params = (new_auth.len() as u16).to_be_bytes().to_vec();
    params.extend_from_slice(new_auth);
    with_pw(
        TPM_CC_HIERARCHY_CHANGE_AUTH,
        &hierarchy.to_be_bytes(),
        password,
        &params,
    )
}

/// CreatePrimary as `create_primary_cmd`, authorized with `password`.
fn create_primary_pw(hierarchy: u32, password: &[u8], template: &[u8]) -> Vec<u8> {
    let mut p = h("0004 0000 0000");
    p.extend_from_slice(&(template.len() as u16).to_be_bytes());
    p.extend_from_slice(template);
    p.extend_from_slice(&h("0000 00000000"));
    with_pw(
        TPM_CC_CREATE_PRIMARY,
        &hierarchy.to_be_bytes(),
        password,
        &p,
    )
}

fn clear_cmd(auth: u32, password: &[u8]) -> Vec<u8> {
    with_pw(TPM_CC_CLEAR, &auth.to_be_bytes(), password, &[])
}

fn clear_control_cmd(auth: u32, disable: u8) -> Vec<u8> {
    with_pw(TPM_CC_CLEAR_CONTROL, &auth.to_be_bytes(), b"", &[disable])
}

#[test]
fn hierarchy_change_auth_sets_the_password_of_each_hierarchy() {
    let mut tpm = started();
    // BAD_AUTH + S + 1 (DA-exempt hierarchies) and AUTH_FAIL + S + 1 (lockout).
    let (bad_auth, auth_fail) = (0x9A2, 0x98E);
    for hierarchy in [
        TPM_RH_OWNER,
        TPM_RH_ENDORSEMENT,
        TPM_RH_LOCKOUT,
        TPM_RH_PLATFORM,
    ] {
        let r = run_ok(&mut tpm, &change_auth_cmd(hierarchy, b"", b"newpass"));
        assert_eq!(r, h(PW_SUCCESS));
        // The old (empty) password is refused, the new one works, trailing zeros or not.
        let refused = if hierarchy == TPM_RH_LOCKOUT {
            auth_fail
        } else {
            bad_auth
        };
        let r = run(&mut tpm, &change_auth_cmd(hierarchy, b"", b"x"));
        assert_eq!(rc_of(&r), refused);
        run_ok(
            &mut tpm,
            &change_auth_cmd(hierarchy, b"newpass\0\0", b"second"),
        );
        let r = run(&mut tpm, &change_auth_cmd(hierarchy, b"newpass", b""));
        assert_eq!(rc_of(&r), refused);
        // A new authValue's trailing zeros are dropped.
        run_ok(&mut tpm, &change_auth_cmd(hierarchy, b"second", b"p\0\0"));
        run_ok(&mut tpm, &change_auth_cmd(hierarchy, b"p", b""));
    }
    // The owner's password authorizes what the owner authorizes.
    run_ok(&mut tpm, &change_auth_cmd(TPM_RH_OWNER, b"", b"newpass"));
    let r = run(
        &mut tpm,
        &create_primary_pw(TPM_RH_OWNER, b"", &storage_template()),
    );
    assert_eq!(rc_of(&r), bad_auth);
    run_ok(
        &mut tpm,
        &create_primary_pw(TPM_RH_OWNER, b"newpass", &storage_template()),
    );
    let public = nv_public(NV_INDEX, TPM_ALG_SHA256, NV_ATTRS, &[], 8);
    let r = run(&mut tpm, &define_cmd(TPM_RH_OWNER, b"", b"", &public));
    assert_eq!(rc_of(&r), bad_auth);
    run_ok(
        &mut tpm,
        &define_cmd(TPM_RH_OWNER, b"newpass", b"", &public),
    );

    // newAuth: 32 octets (SHA-256, the context integrity hash) after trailing zeros are
    // removed; longer is TPM_RC_SIZE + TPM_RC_P + TPM_RC_1, also from unmarshalling (> 48).
    let mut long = [0x61u8; 33].to_vec();
    let r = run(&mut tpm, &change_auth_cmd(TPM_RH_OWNER, b"newpass", &long));
    assert_eq!(rc_of(&r), 0x1D5);
    long[32] = 0;
    run_ok(&mut tpm, &change_auth_cmd(TPM_RH_OWNER, b"newpass", &long));
    assert_eq!(tpm.owner_auth, [0x61u8; 32].to_vec());
    let r = run(&mut tpm, &change_auth_cmd(TPM_RH_OWNER, &long, &[0; 49]));
    assert_eq!(rc_of(&r), 0x1D5);
    // TPMI_RH_HIERARCHY_AUTH: TPM_RC_VALUE + TPM_RC_H + TPM_RC_1.
    for handle in [TPM_RH_NULL, TPM_RS_PW, NV_INDEX, 0] {
        let r = run(&mut tpm, &change_auth_cmd(handle, b"", b""));
        assert_eq!(rc_of(&r), 0x184, "{handle:#x}");
    }
    // Without a session: TPM_RC_AUTH_MISSING.
    let mut body = TPM_RH_OWNER.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0]);
    let r = run(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, TPM_CC_HIERARCHY_CHANGE_AUTH, &body),
    );
    assert_eq!(rc_of(&r), rc::AUTH_MISSING);
}

#[test]
fn hierarchy_change_auth_with_an_hmac_session_answers_under_the_new_auth() {
    let mut tpm = started();
    run_ok(&mut tpm, &change_auth_cmd(TPM_RH_OWNER, b"", b"old"));
    let mut c = start(&mut tpm, TPM_RH_NULL, 0);
    let params = h("0003 6e6577"); // newAuth "new"
    let owner = TPM_RH_OWNER.to_be_bytes().to_vec();
    let command = with_session(
        &c,
        TPM_CC_HIERARCHY_CHANGE_AUTH,
        &[TPM_RH_OWNER],
        core::slice::from_ref(&owner),
        b"old",
        1,
        &params,
    );
    let r = run(&mut tpm, &command);
    // The response HMAC is keyed with the new authValue.
    let out = check_session_response(&mut c, TPM_CC_HIERARCHY_CHANGE_AUTH, b"new", 1, &r);
    assert!(out.is_empty());
    // The old value no longer authorizes, the new one does.
    let command = with_session(
        &c,
        TPM_CC_HIERARCHY_CHANGE_AUTH,
        &[TPM_RH_OWNER],
        core::slice::from_ref(&owner),
        b"old",
        1,
        &params,
    );
    assert_eq!(rc_of(&run(&mut tpm, &command)), 0x9A2);
    let command = with_session(
        &c,
        TPM_CC_HIERARCHY_CHANGE_AUTH,
        &[TPM_RH_OWNER],
        core::slice::from_ref(&owner),
        b"new",
        1,
        &params,
    );
    let r = run(&mut tpm, &command);
    check_session_response(&mut c, TPM_CC_HIERARCHY_CHANGE_AUTH, b"new", 1, &r);
}

#[test]
fn hierarchy_auths_persist_in_the_state_and_platform_auth_ends_at_startup_clear() {
    let mut tpm = started();
    for (hierarchy, auth) in [
        (TPM_RH_OWNER, &b"o"[..]),
        (TPM_RH_ENDORSEMENT, b"e"),
        (TPM_RH_LOCKOUT, b"l"),
        (TPM_RH_PLATFORM, b"p"),
    ] {
        run_ok(&mut tpm, &change_auth_cmd(hierarchy, b"", auth));
    }
    run_ok(&mut tpm, &clear_control_cmd_pw(TPM_RH_PLATFORM, b"p", 1));
    let bytes = tpm.to_bytes();
    assert_eq!(&bytes[4..6], &[0, 4], "format version 4");
    // The tail: four TPM2Bs and disableClear.
    assert_eq!(
        &bytes[bytes.len() - 13..],
        &h("0001 6f 0001 65 0001 6c 0001 70 01")[..]
    );
    let mut restored = Tpm::from_bytes(&bytes).unwrap();
    assert_eq!(restored, tpm);
    for (hierarchy, auth) in [(TPM_RH_OWNER, &b"o"[..]), (TPM_RH_ENDORSEMENT, b"e")] {
        run_ok(&mut restored, &change_auth_cmd(hierarchy, auth, auth));
    }
    // A version 3 state (no authorizations) loads with empty ones and disableClear CLEAR.
    let fresh = started();
    let mut v3 = fresh.to_bytes();
    v3.truncate(v3.len() - 9);
    v3[5] = 3;
    assert_eq!(Tpm::from_bytes(&v3), Ok(fresh));
    // Corrupt tails: a trailing zero, an overlong value, a bad flag, a missing octet.
    let tail = bytes.len() - 13;
    let mut bad = bytes.clone();
    bad[tail + 2] = 0;
    assert_eq!(
        Tpm::from_bytes(&bad),
        Err(StateError::InvalidField("hierarchy authValue"))
    );
    let mut bad = bytes.clone();
    bad[tail + 1] = 33;
    assert!(Tpm::from_bytes(&bad).is_err());
    let mut bad = bytes.clone();
    *bad.last_mut().unwrap() = 2;
    assert_eq!(
        Tpm::from_bytes(&bad),
        Err(StateError::InvalidField("disableClear"))
    );
    assert_eq!(
        Tpm::from_bytes(&bytes[..bytes.len() - 1]),
        Err(StateError::Truncated)
    );
    // platformAuth lasts until the next Startup(CLEAR); the others stay.
    run_ok(&mut tpm, &h(SHUTDOWN_CLEAR));
    tpm.init();
    run_ok(&mut tpm, &h(STARTUP_CLEAR));
    run_ok(&mut tpm, &change_auth_cmd(TPM_RH_PLATFORM, b"", b""));
    run_ok(&mut tpm, &change_auth_cmd(TPM_RH_OWNER, b"o", b"o"));
}

fn clear_control_cmd_pw(auth: u32, password: &[u8], disable: u8) -> Vec<u8> {
    with_pw(
        TPM_CC_CLEAR_CONTROL,
        &auth.to_be_bytes(),
        password,
        &[disable],
    )
}

#[test]
fn clear_makes_a_new_storage_hierarchy() {
    let mut tpm = started();
    let srk = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let ek = create_primary(&mut tpm, TPM_RH_ENDORSEMENT, &storage_template());
    let pk = create_primary(&mut tpm, TPM_RH_PLATFORM, &storage_template());
    let persistent_owner = 0x8100_0001u32;
    let persistent_platform = 0x8180_0001u32;
    run_ok(
        &mut tpm,
        &evict_cmd(TPM_RH_OWNER, srk.handle, persistent_owner),
    );
    run_ok(
        &mut tpm,
        &evict_cmd(TPM_RH_PLATFORM, pk.handle, persistent_platform),
    );
    assert_eq!(rc_of(&define(&mut tpm, NV_INDEX, NV_ATTRS, b"", 8)), 0);
    let platform_index = NV_INDEX + 1;
    let attributes = TPMA_NV_PPREAD | TPMA_NV_PPWRITE | TPMA_NV_PLATFORMCREATE;
    let p = nv_public(platform_index, TPM_ALG_SHA256, attributes, &[], 8);
    run_ok(&mut tpm, &define_cmd(TPM_RH_PLATFORM, b"", b"", &p));
    for (hierarchy, auth) in [
        (TPM_RH_OWNER, &b"o"[..]),
        (TPM_RH_ENDORSEMENT, b"e"),
        (TPM_RH_LOCKOUT, b"l"),
        (TPM_RH_PLATFORM, b"p"),
    ] {
        run_ok(&mut tpm, &change_auth_cmd(hierarchy, b"", auth));
    }
    tpm.advance_clock(5000);
    let sps = tpm.sps;
    let counter = update_counter(&mut tpm);

    // TPMI_RH_CLEAR: lockout or platform; the lockout password is needed.
    let r = run(&mut tpm, &clear_cmd(TPM_RH_OWNER, b"o"));
    assert_eq!(rc_of(&r), 0x184);
    let r = run(&mut tpm, &clear_cmd(TPM_RH_LOCKOUT, b""));
    assert_eq!(rc_of(&r), 0x98E, "AUTH_FAIL + S + 1");
    let r = run_ok(&mut tpm, &clear_cmd(TPM_RH_LOCKOUT, b"l"));
    assert_eq!(r, h(PW_SUCCESS));

    assert_ne!(tpm.sps, sps);
    assert_eq!(update_counter(&mut tpm), counter + 1);
    assert_eq!(
        (
            tpm.clock_ms,
            tpm.reset_count,
            tpm.restart_count,
            tpm.clear_count
        ),
        (0, 0, 0, 0)
    );
    // Owner, endorsement and lockout authValues are empty again; platform's stays.
    for hierarchy in [TPM_RH_OWNER, TPM_RH_ENDORSEMENT, TPM_RH_LOCKOUT] {
        run_ok(&mut tpm, &change_auth_cmd(hierarchy, b"", b""));
    }
    let r = run(&mut tpm, &change_auth_cmd(TPM_RH_PLATFORM, b"", b""));
    assert_eq!(rc_of(&r), 0x9A2);
    // Owner and endorsement objects are flushed, platform ones stay; owner indices go.
    let read_public = |h: u32| cmd(TPM_ST_NO_SESSIONS, TPM_CC_READ_PUBLIC, &h.to_be_bytes());
    assert_eq!(rc_of(&run(&mut tpm, &read_public(srk.handle))), 0x910);
    assert_eq!(rc_of(&run(&mut tpm, &read_public(ek.handle))), 0x910);
    run_ok(&mut tpm, &read_public(pk.handle));
    assert_eq!(rc_of(&run(&mut tpm, &read_public(persistent_owner))), 0x18B);
    run_ok(&mut tpm, &read_public(persistent_platform));
    assert_eq!(
        rc_of(&run(&mut tpm, &read_public_cmd(NV_INDEX))),
        0x18B,
        "HANDLE + H + 1"
    );
    run_ok(&mut tpm, &read_public_cmd(platform_index));
    // The same template gives a different storage primary key, the same endorsement one.
    let srk2 = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    assert_ne!(unique(&srk2.public), unique(&srk.public));
    let ek2 = create_primary(&mut tpm, TPM_RH_ENDORSEMENT, &storage_template());
    assert_eq!(unique(&ek2.public), unique(&ek.public));
    // ... and it is what KDFa(SHA-256, new SPS, ...) gives: the same as a TPM with that SPS.
    let mut other = started();
    other.sps = tpm.sps;
    let srk3 = create_primary(&mut other, TPM_RH_OWNER, &storage_template());
    assert_eq!(unique(&srk3.public), unique(&srk2.public));
    // The platform may clear too.
    run_ok(&mut tpm, &clear_cmd(TPM_RH_PLATFORM, b"p"));
}

#[test]
fn clear_control_disables_clear() {
    let mut tpm = started();
    // Lockout may set disableClear but not clear it (TPM_RC_AUTH_FAIL); platform may.
    run_ok(&mut tpm, &clear_control_cmd(TPM_RH_LOCKOUT, 1));
    assert!(tpm.disable_clear);
    let r = run(&mut tpm, &clear_cmd(TPM_RH_LOCKOUT, b""));
    assert_eq!(rc_of(&r), rc::DISABLED);
    assert_eq!(rc::DISABLED, 0x120);
    let r = run(&mut tpm, &clear_cmd(TPM_RH_PLATFORM, b""));
    assert_eq!(rc_of(&r), 0x120);
    let r = run(&mut tpm, &clear_control_cmd(TPM_RH_LOCKOUT, 0));
    assert_eq!(rc_of(&r), 0x08E);
    // TPMI_YES_NO: TPM_RC_VALUE + TPM_RC_P + TPM_RC_1; TPMI_RH_CLEAR: VALUE + H + 1.
    let r = run(&mut tpm, &clear_control_cmd(TPM_RH_PLATFORM, 2));
    assert_eq!(rc_of(&r), 0x1C4);
    let r = run(&mut tpm, &clear_control_cmd(TPM_RH_OWNER, 0));
    assert_eq!(rc_of(&r), 0x184);
    run_ok(&mut tpm, &clear_control_cmd(TPM_RH_PLATFORM, 0));
    assert!(!tpm.disable_clear);
    run_ok(&mut tpm, &clear_cmd(TPM_RH_LOCKOUT, b""));
}

fn test_parms_cmd(parms: &str) -> Vec<u8> {
    cmd(TPM_ST_NO_SESSIONS, TPM_CC_TEST_PARMS, &h(parms))
}

#[test]
fn test_parms_accepts_what_is_implemented() {
    let mut tpm = started();
    for ok in [
        "0023 0010 0018 000b 0003 0010",          // ECC P-256, ECDSA-SHA256
        "0023 0010 0010 0003 0010",               // ECC P-256, scheme NULL
        "0023 0006 0080 0043 0010 0003 0010",     // storage: AES-128-CFB
        "0008 0010",                              // keyedhash, scheme NULL
        "0001 0010 0010 0800 00000000",           // RSA-2048, scheme NULL, exponent 0
        "0001 0010 0014 000b 0800 00010001",      // RSASSA-SHA256, exponent 65537
        "0001 0010 0016 0004 0800 00000000",      // RSAPSS-SHA1
        "0001 0006 0080 0043 0010 0800 00000000", // RSA storage: AES-128-CFB
    ] {
        assert_eq!(run(&mut tpm, &test_parms_cmd(ok)), h(SUCCESS), "{ok}");
    }
    // Errors are parameter 1's: TPM_RC_P + TPM_RC_1 = 0x140.
    for (parms, rc) in [
        ("0001 0010 0010 0400 00000000", 0x1C4), // RSA-1024: TPM_RC_VALUE
        ("0001 0010 0010 0c00 00000000", 0x1C4), // RSA-3072: TPM_RC_VALUE
        ("0001 0010 0010 1000 00000000", 0x1C4), // RSA-4096: TPM_RC_VALUE
        ("0001 0010 0010 0800 00000003", 0x1CD), // exponent 3: TPM_RC_RANGE
        ("0001 0010 0015 0800 00000000", 0x1D2), // RSAES: TPM_RC_SCHEME
        ("0001 0010 0018 000b 0800 00000000", 0x1C4), // ECDSA on RSA: TPM_RC_VALUE
        ("0001 0010 0014 0099 0800 00000000", 0x1C3), // unknown hash: TPM_RC_HASH
        ("0025 0010", 0x1CA),                    // SYMCIPHER: TPM_RC_TYPE
        ("0023 0010 0018 000b 0004 0010", 0x1E6), // P-384: TPM_RC_CURVE
        ("0023 0010 0018 000c 0003 0010", 0x1D2), // ECDSA-SHA384: TPM_RC_SCHEME
        ("0023 0010 0018 0099 0003 0010", 0x1C3), // unknown hash: TPM_RC_HASH
        ("0023 0010 001a 000b 0003 0010", 0x1D2), // ECDAA: TPM_RC_SCHEME
        ("0023 0006 0100 0043 0010 0003 0010", 0x1C4), // AES-256: TPM_RC_VALUE
        ("0023 0006 0080 0040 0010 0003 0010", 0x1C9), // AES-128-CTR: TPM_RC_MODE
        ("0023 0025 0010 0003 0010", 0x1D6),     // TPM_RC_SYMMETRIC
        ("0023 0010 0010 0003 0022 000b", 0x1CC), // a KDF: TPM_RC_KDF
        ("0008 0005 000b", 0x1D2),               // keyedhash HMAC: TPM_RC_SCHEME
        ("0008 0099", 0x1C4),                    // TPM_RC_VALUE
        ("0023 0010 0018 000b 0003", 0x1DA),     // truncated: TPM_RC_INSUFFICIENT
        ("", 0x1DA),
    ] {
        assert_eq!(rc_of(&run(&mut tpm, &test_parms_cmd(parms))), rc, "{parms}");
    }
    // Octets after the parameters: TPM_RC_SIZE.
    let r = run(&mut tpm, &test_parms_cmd("0008 0010 00"));
    assert_eq!(rc_of(&r), rc::SIZE);
}

// ---------------------------------------------------------------------------------------
// Hash and event sequences (Part 3 §17).

fn tpm2b(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

fn seq_start_cmd(auth: &[u8], alg: u16) -> Vec<u8> {
    let mut body = tpm2b(auth);
    body.extend_from_slice(&alg.to_be_bytes());
    cmd(TPM_ST_NO_SESSIONS, TPM_CC_HASH_SEQUENCE_START, &body)
}

fn seq_start(tpm: &mut Tpm, auth: &[u8], alg: u16) -> u32 {
    let r = run_ok(tpm, &seq_start_cmd(auth, alg));
    assert_eq!(r.len(), 14);
    u32_at(&r, 10)
}

fn seq_update_cmd(handle: u32, password: &[u8], data: &[u8]) -> Vec<u8> {
    with_pw(
        TPM_CC_SEQUENCE_UPDATE,
        &handle.to_be_bytes(),
        password,
        &tpm2b(data),
    )
}

fn seq_complete_cmd(handle: u32, password: &[u8], data: &[u8], hierarchy: u32) -> Vec<u8> {
    let mut params = tpm2b(data);
    params.extend_from_slice(&hierarchy.to_be_bytes());
    with_pw(
        TPM_CC_SEQUENCE_COMPLETE,
        &handle.to_be_bytes(),
        password,
        &params,
    )
}

/// EventSequenceComplete with two password sessions: empty for the PCR, `password` for
/// the sequence.
fn event_complete_cmd(pcr: u32, handle: u32, password: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = two(pcr, handle);
    let mut area = Vec::new();
    for pw in [&b""[..], password] {
        area.extend_from_slice(&TPM_RS_PW.to_be_bytes());
        area.extend_from_slice(&[0, 0, 1]);
        area.extend_from_slice(&tpm2b(pw));
    }
    body.extend_from_slice(&(area.len() as u32).to_be_bytes());
    body.extend(area);
    body.extend_from_slice(&tpm2b(data));
    cmd(TPM_ST_SESSIONS, TPM_CC_EVENT_SEQUENCE_COMPLETE, &body)
}

/// The response parameters of a command with sessions (password sessions answer 5 octets
/// each).
fn session_params(r: &[u8]) -> &[u8] {
    let size = u32_at(r, 10) as usize;
    &r[14..14 + size]
}

#[test]
fn hash_sequence_of_3000_octets_matches_sha256_with_a_ticket() {
    let mut tpm = started();
    let message: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();
    let handle = seq_start(&mut tpm, b"pw", TPM_ALG_SHA256);
    assert_eq!(handle, 0x8000_0000, "the first object slot");
    for chunk in message.chunks(1000) {
        run_ok(&mut tpm, &seq_update_cmd(handle, b"pw", chunk));
    }
    let r = run_ok(
        &mut tpm,
        &seq_complete_cmd(handle, b"pw", b"", TPM_RH_OWNER),
    );
    let p = session_params(&r);
    let digest = Sha256::digest(&message);
    assert_eq!(&p[..2], &[0, 32]);
    assert_eq!(&p[2..34], &digest[..]);
    // The ticket: HMAC-SHA256(ownerProof, TPM_ST_HASHCHECK || digest), as TPM2_Hash's.
    let proof = hmac256(&tpm.sps, &[b"Parapet hierarchy proof"]);
    let ticket = hmac256(&proof, &[&h("80 24"), &digest]);
    let mut expected = h("80 24 40 00 00 01 00 20");
    expected.extend_from_slice(&ticket);
    assert_eq!(&p[34..], &expected[..]);
    // TPM2_Hash of a short message gives the same digest and ticket as a sequence of it.
    let handle = seq_start(&mut tpm, b"", TPM_ALG_SHA256);
    run_ok(&mut tpm, &seq_update_cmd(handle, b"", b"ab"));
    run_ok(&mut tpm, &seq_update_cmd(handle, b"", b"cdef"));
    let r = run_ok(&mut tpm, &seq_complete_cmd(handle, b"", b"g", TPM_RH_NULL));
    let hashed = run_ok(&mut tpm, &hash_cmd(b"abcdefg", TPM_ALG_SHA256, TPM_RH_NULL));
    assert_eq!(session_params(&r), &hashed[10..]);
    // SequenceComplete flushed the object.
    assert_eq!(
        rc_of(&flush(&mut tpm, handle)),
        rc::parameter(rc::HANDLE, 1)
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &seq_update_cmd(handle, b"", b"x"))),
        rc::REFERENCE_H0
    );
    // SHA-1 and SHA-384 sequences, with all the data in SequenceComplete.
    for (alg, want) in [
        (TPM_ALG_SHA1, Sha1::digest(&message[..1024]).to_vec()),
        (TPM_ALG_SHA384, Sha384::digest(&message[..1024]).to_vec()),
    ] {
        let handle = seq_start(&mut tpm, b"", alg);
        let r = run_ok(
            &mut tpm,
            &seq_complete_cmd(handle, b"", &message[..1024], TPM_RH_ENDORSEMENT),
        );
        let p = session_params(&r);
        assert_eq!(&p[2..2 + want.len()], &want[..]);
        assert_eq!(u32_at(p, 4 + want.len()), TPM_RH_ENDORSEMENT);
    }
}

#[test]
fn sequence_tickets_follow_the_first_block() {
    let mut tpm = started();
    let null_ticket = h("80 24 40 00 00 07 00 00");
    // First block starting with TPM_GENERATED_VALUE, or shorter than 4 octets: NULL ticket
    // (Part 4 TicketIsSafe), whatever follows.
    for first in [&h("ff 54 43 47 01 02")[..], b"abc", b""] {
        let handle = seq_start(&mut tpm, b"", TPM_ALG_SHA256);
        run_ok(&mut tpm, &seq_update_cmd(handle, b"", first));
        let r = run_ok(
            &mut tpm,
            &seq_complete_cmd(handle, b"", b"more data", TPM_RH_OWNER),
        );
        assert_eq!(&session_params(&r)[34..], &null_ticket[..], "{first:02x?}");
    }
    // No update: the complete's buffer is the first block.
    let handle = seq_start(&mut tpm, b"", TPM_ALG_SHA256);
    let r = run_ok(
        &mut tpm,
        &seq_complete_cmd(handle, b"", &h("ff 54 43 47"), TPM_RH_OWNER),
    );
    assert_eq!(&session_params(&r)[34..], &null_ticket[..]);
    let handle = seq_start(&mut tpm, b"", TPM_ALG_SHA256);
    let r = run_ok(
        &mut tpm,
        &seq_complete_cmd(handle, b"", b"abcd", TPM_RH_OWNER),
    );
    assert_eq!(u32_at(session_params(&r), 36), TPM_RH_OWNER);
}

#[test]
fn event_sequence_extends_every_bank() {
    let mut tpm = started();
    let data: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let handle = seq_start(&mut tpm, b"ev", TPM_ALG_NULL);
    for chunk in data[..2000].chunks(1000) {
        run_ok(&mut tpm, &seq_update_cmd(handle, b"ev", chunk));
    }
    complete_event_sequence_into_pcr16(&mut tpm, handle, &data, 2000);
    // Flushed.
    assert_eq!(
        rc_of(&flush(&mut tpm, handle)),
        rc::parameter(rc::HANDLE, 1)
    );
    // TPM_RH_NULL: the digests, no extend.
    let handle = seq_start(&mut tpm, b"", TPM_ALG_NULL);
    let counter = update_counter(&mut tpm);
    let r = run_ok(
        &mut tpm,
        &event_complete_cmd(TPM_RH_NULL, handle, b"", b"abc"),
    );
    assert_eq!(&session_params(&r)[28..60], &h(SHA256_ABC)[..]);
    assert_eq!(update_counter(&mut tpm), counter);
    // A locality that may not extend the PCR (PCR 17: localities 2-4 only; PC Client).
    let handle = seq_start(&mut tpm, b"", TPM_ALG_NULL);
    let r = tpm.execute(0, &event_complete_cmd(17, handle, b"", b"abc"));
    assert_eq!(rc_of(&r), rc::LOCALITY);
    assert_eq!(
        rc_of(&flush(&mut tpm, handle)),
        0,
        "still loaded after an error"
    );
}

#[test]
fn sequence_errors() {
    let mut tpm = started();
    // hashAlg: unimplemented is TPM_RC_HASH + P2; auth over 48 octets TPM_RC_SIZE + P1.
    for alg in [0x000D, 0x0012, 0x0001] {
        let r = run(&mut tpm, &seq_start_cmd(b"", alg));
        assert_eq!(rc_of(&r), rc::parameter(rc::HASH, 2), "{alg:#x}");
    }
    let r = run(&mut tpm, &seq_start_cmd(&[1; 49], TPM_ALG_SHA256));
    assert_eq!(rc_of(&r), rc::parameter(rc::SIZE, 1));
    // Wrong auth: TPM_RC_BAD_AUTH + S1 (sequences are DA-exempt); trailing zeros of the
    // password do not matter; no session at all is TPM_RC_AUTH_MISSING.
    let hash = seq_start(&mut tpm, b"pw", TPM_ALG_SHA256);
    let r = run(&mut tpm, &seq_update_cmd(hash, b"bad", b"abcd"));
    assert_eq!(rc_of(&r), rc::session(rc::BAD_AUTH, 1));
    run_ok(&mut tpm, &seq_update_cmd(hash, b"pw\0\0", b"abcd"));
    let mut body = hash.to_be_bytes().to_vec();
    body.extend_from_slice(&tpm2b(b"abcd"));
    let r = run(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, TPM_CC_SEQUENCE_UPDATE, &body),
    );
    assert_eq!(rc_of(&r), rc::AUTH_MISSING);
    // Over MAX_DIGEST_BUFFER: TPM_RC_SIZE + P1, in an update and in a complete.
    let r = run(&mut tpm, &seq_update_cmd(hash, b"pw", &[0; 1025]));
    assert_eq!(rc_of(&r), rc::parameter(rc::SIZE, 1));
    let r = run(
        &mut tpm,
        &seq_complete_cmd(hash, b"pw", &[0; 1025], TPM_RH_NULL),
    );
    assert_eq!(rc_of(&r), rc::parameter(rc::SIZE, 1));
    // A bad hierarchy: TPM_RC_VALUE + P2.
    let r = run(
        &mut tpm,
        &seq_complete_cmd(hash, b"pw", b"", TPM_RH_LOCKOUT),
    );
    assert_eq!(rc_of(&r), rc::parameter(rc::VALUE, 2));
    // The wrong kind of sequence: TPM_RC_MODE on the sequence handle.
    let event = seq_start(&mut tpm, b"", TPM_ALG_NULL);
    let r = run(&mut tpm, &seq_complete_cmd(event, b"", b"", TPM_RH_NULL));
    assert_eq!(rc_of(&r), rc::handle(rc::MODE, 1));
    let r = run(&mut tpm, &event_complete_cmd(16, hash, b"pw", b""));
    assert_eq!(rc_of(&r), rc::handle(rc::MODE, 2));
    // Three slots: a third sequence fills them, a fourth is TPM_RC_OBJECT_MEMORY.
    let third = seq_start(&mut tpm, b"", TPM_ALG_SHA1);
    let r = run(&mut tpm, &seq_start_cmd(b"", TPM_ALG_SHA1));
    assert_eq!(rc_of(&r), rc::OBJECT_MEMORY);
    let r = get_cap(&mut tpm, TPM_CAP_HANDLES, TRANSIENT_FIRST, 8);
    assert_eq!(
        u32_at(&r, 15),
        3,
        "sequences are listed as transient handles"
    );
    // FlushContext frees a slot; the flushed handle is gone.
    assert_eq!(rc_of(&flush(&mut tpm, third)), 0);
    let r = run(&mut tpm, &seq_update_cmd(third, b"", b"x"));
    assert_eq!(rc_of(&r), rc::REFERENCE_H0);
    assert_eq!(seq_start(&mut tpm, b"", TPM_ALG_SHA384), third);
    // Handles that are not transient objects: TPM_RC_VALUE + H1.
    let r = run(&mut tpm, &seq_update_cmd(TPM_RH_OWNER, b"", b"x"));
    assert_eq!(rc_of(&r), rc::handle(rc::VALUE, 1));
    // ContextSave of a sequence: savedHandle 0x80000001 (Part 2 §14.6).
    let r = run_ok(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, TPM_CC_CONTEXT_SAVE, &hash.to_be_bytes()),
    );
    assert_eq!(u32_at(&r, 18), 0x8000_0001);
}

/// ContextSave, FlushContext and ContextLoad of a sequence: its new handle.
fn seq_save_flush_load(tpm: &mut Tpm, handle: u32) -> u32 {
    let context = context_save(tpm, handle);
    assert_eq!(
        u32_at(&context, 8),
        0x8000_0001,
        "savedHandle of a sequence"
    );
    assert_eq!(u32_at(&context, 12), TPM_RH_NULL);
    assert_eq!(rc_of(&flush(tpm, handle)), 0);
    let r = run_ok(tpm, &context_load_cmd(&context));
    u32_at(&r, 10)
}

#[test]
fn hash_sequence_survives_context_save_and_load() {
    let mut tpm = started();
    let message: Vec<u8> = (0..3000u32).map(|i| (i * 13 + 5) as u8).collect();
    let handle = seq_start(&mut tpm, b"pw", TPM_ALG_SHA256);
    run_ok(&mut tpm, &seq_update_cmd(handle, b"pw", &message[..1000]));
    run_ok(
        &mut tpm,
        &seq_update_cmd(handle, b"pw", &message[1000..1500]),
    );
    // The plaintext: hashAlg, authValue, firstBlock, ticketSafe, one state.
    let context = context_save(&mut tpm, handle);
    let sequence = u64::from_be_bytes(context[..8].try_into().unwrap());
    let plain = open_context(&tpm, &context, sequence, 0x8000_0001);
    assert_eq!(&plain[..8], &h("00 0b 00 02 70 77 01 01"));
    let handle = seq_save_flush_load(&mut tpm, handle);
    // The auth survived: a wrong password is refused, the right one works.
    let r = run(&mut tpm, &seq_update_cmd(handle, b"bad", b"x"));
    assert_eq!(rc_of(&r), rc::session(rc::BAD_AUTH, 1));
    run_ok(
        &mut tpm,
        &seq_update_cmd(handle, b"pw", &message[1500..2500]),
    );
    let handle = seq_save_flush_load(&mut tpm, handle);
    let r = run_ok(
        &mut tpm,
        &seq_complete_cmd(handle, b"pw", &message[2500..], TPM_RH_OWNER),
    );
    let p = session_params(&r);
    assert_eq!(&p[2..34], &Sha256::digest(&message)[..]);
    // The ticket is still made (ticketSafe survived).
    assert_eq!(u32_at(p, 36), TPM_RH_OWNER);
    // The same context loads again (a saved object's context is not used up), and twice
    // into two slots.
    let a = run_ok(&mut tpm, &context_load_cmd(&context));
    let b = run_ok(&mut tpm, &context_load_cmd(&context));
    assert_ne!(u32_at(&a, 10), u32_at(&b, 10));
    assert!(!tpm.failure);
}

#[test]
fn event_sequence_survives_context_save_and_load() {
    let mut tpm = started();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let handle = seq_start(&mut tpm, b"ev", TPM_ALG_NULL);
    run_ok(&mut tpm, &seq_update_cmd(handle, b"ev", &data[..1000]));
    run_ok(&mut tpm, &seq_update_cmd(handle, b"ev", &data[1000..1500]));
    let handle = seq_save_flush_load(&mut tpm, handle);
    let r = run(&mut tpm, &seq_update_cmd(handle, b"", b"x"));
    assert_eq!(rc_of(&r), rc::session(rc::BAD_AUTH, 1));
    run_ok(&mut tpm, &seq_update_cmd(handle, b"ev", &data[1500..2500]));
    complete_event_sequence_into_pcr16(&mut tpm, handle, &data, 2500);
}

/// EventSequenceComplete on PCR 16 with `data[from..]` as the last part of an event
/// sequence (auth "ev") that has taken the rest of `data`: the response lists every bank's
/// digest of the whole `data`, and PCR[16] in each bank is H(old || digest).
fn complete_event_sequence_into_pcr16(tpm: &mut Tpm, handle: u32, data: &[u8], from: usize) {
    let banks = [TPM_ALG_SHA1, TPM_ALG_SHA256, TPM_ALG_SHA384];
    let before: Vec<Vec<u8>> = banks.iter().map(|&alg| pcr_read(tpm, alg, 16)).collect();
    let r = run_ok(tpm, &event_complete_cmd(16, handle, b"ev", &data[from..]));
    let digests = [
        Sha1::digest(data).to_vec(),
        Sha256::digest(data).to_vec(),
        Sha384::digest(data).to_vec(),
    ];
    let mut expected = h("00 00 00 03");
    for (alg, d) in banks.iter().zip(&digests) {
        expected.extend_from_slice(&alg.to_be_bytes());
        expected.extend_from_slice(d);
    }
    assert_eq!(session_params(&r), &expected[..]);
    assert_eq!(
        pcr_read(tpm, TPM_ALG_SHA1, 16),
        Sha1::digest([&before[0][..], &digests[0]].concat()).to_vec()
    );
    assert_eq!(
        pcr_read(tpm, TPM_ALG_SHA256, 16),
        sha256(&[&before[1], &digests[1]])
    );
    assert_eq!(
        pcr_read(tpm, TPM_ALG_SHA384, 16),
        Sha384::digest([&before[2][..], &digests[2]].concat()).to_vec()
    );
}

#[test]
fn sequence_state_decoding_refuses_garbage() {
    use super::marshal::{Reader, Writer};
    use super::object::Sequence;
    for alg in [Some(super::hash::HashAlg::Sha256), None] {
        let mut seq = Sequence::new(alg, b"pw");
        seq.update(&[1; 77]);
        let mut w = Writer::new();
        seq.write(&mut w);
        let bytes = w.into_vec();
        assert_eq!(Sequence::read(Reader::new(&bytes)), Some(seq.clone()));
        // Every truncation, a trailing octet, every octet flipped: None or a sequence,
        // never a panic; a flag octet other than 0 or 1 is refused.
        for n in 0..bytes.len() {
            assert_eq!(Sequence::read(Reader::new(&bytes[..n])), None, "{n}");
        }
        assert_eq!(
            Sequence::read(Reader::new(&[&bytes[..], &[0]].concat())),
            None
        );
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0xff;
            let _ = Sequence::read(Reader::new(&b)).map(|s| s.kind);
        }
        let mut b = bytes.clone();
        b[6] = 2;
        assert_eq!(Sequence::read(Reader::new(&b)), None, "firstBlock 2");
    }
}

#[test]
fn sequence_contexts_are_tamper_evident() {
    let mut tpm = started();
    for alg in [TPM_ALG_SHA1, TPM_ALG_SHA384, TPM_ALG_NULL] {
        let handle = seq_start(&mut tpm, b"pw", alg);
        run_ok(&mut tpm, &seq_update_cmd(handle, b"pw", &[7; 100]));
        let context = context_save(&mut tpm, handle);
        assert_eq!(rc_of(&flush(&mut tpm, handle)), 0);
        // Every octet of the ciphertext and integrity changed: TPM_RC_INTEGRITY + P1.
        for at in 20..context.len() {
            let mut c = context.clone();
            c[at] ^= 0x5a;
            let r = run(&mut tpm, &context_load_cmd(&c));
            assert_eq!(rc_of(&r), rc::parameter(rc::INTEGRITY, 1), "{alg:#x} {at}");
        }
        // Another transient savedHandle: a different key and HMAC, integrity fails.
        for saved in [0x8000_0000u32, 0x8000_0002] {
            let mut c = context.clone();
            c[8..12].copy_from_slice(&saved.to_be_bytes());
            let r = run(&mut tpm, &context_load_cmd(&c));
            assert_eq!(rc_of(&r), rc::parameter(rc::INTEGRITY, 1));
        }
        // Every truncation: a size or integrity error, never a panic.
        for n in 0..context.len() - 18 {
            let mut c = context[..16].to_vec();
            c.extend_from_slice(&(n as u16).to_be_bytes());
            c.extend_from_slice(&context[18..18 + n]);
            assert_ne!(rc_of(&run(&mut tpm, &context_load_cmd(&c))), 0);
        }
        assert!(!tpm.failure);
        // The original still loads and completes.
        let r = run_ok(&mut tpm, &context_load_cmd(&context));
        assert_eq!(rc_of(&flush(&mut tpm, u32_at(&r, 10))), 0);
    }
}

#[test]
fn sequences_take_hmac_sessions() {
    let mut tpm = started();
    let handle = seq_start(&mut tpm, b"secret", TPM_ALG_SHA256);
    let mut c = start(&mut tpm, TPM_RH_NULL, 0);
    // The Name of a sequence object is its handle.
    let names = [handle.to_be_bytes().to_vec()];
    let params = tpm2b(b"hello");
    let command = with_session(
        &c,
        TPM_CC_SEQUENCE_UPDATE,
        &[handle],
        &names,
        b"secret",
        1,
        &params,
    );
    let r = run(&mut tpm, &command);
    check_session_response(&mut c, TPM_CC_SEQUENCE_UPDATE, b"secret", 1, &r);
    let command = with_session(
        &c,
        TPM_CC_SEQUENCE_UPDATE,
        &[handle],
        &names,
        b"wrong",
        1,
        &params,
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &command)),
        rc::session(rc::BAD_AUTH, 1)
    );
    let r = run_ok(
        &mut tpm,
        &seq_complete_cmd(handle, b"secret", b"", TPM_RH_NULL),
    );
    assert_eq!(&session_params(&r)[2..34], &Sha256::digest(b"hello")[..]);
}

// --- RSA-2048 keys (Part 1 §11.4.2, Annex B; Part 2 §12.2.3.5). ---
//
// Each RSA key generation searches for two 1024-bit primes: about a second in a debug
// build (crypto-bigint unoptimized), a few tens of milliseconds in release. The tests below
// generate as few keys as they can; `cargo test --release` runs them fast.

/// An RSA template (TPMT_PUBLIC) with nameAlg SHA-256, empty authPolicy and `unique`.
fn rsa_template(attributes: u32, sym: &str, scheme: &str, bits: u16, exponent: u32) -> Vec<u8> {
    rsa_template_unique(attributes, sym, scheme, bits, exponent, &[])
}

fn rsa_template_unique(
    attributes: u32,
    sym: &str,
    scheme: &str,
    bits: u16,
    exponent: u32,
    unique: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&TPM_ALG_RSA.to_be_bytes());
    t.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    t.extend_from_slice(&attributes.to_be_bytes());
    t.extend_from_slice(&[0, 0]); // authPolicy
    t.extend(h(sym));
    t.extend(h(scheme));
    t.extend_from_slice(&bits.to_be_bytes());
    t.extend_from_slice(&exponent.to_be_bytes());
    t.extend_from_slice(&(unique.len() as u16).to_be_bytes());
    t.extend_from_slice(unique);
    t
}

/// `tpm2_createprimary -G rsa`'s template: restricted decrypt, AES-128-CFB, scheme NULL.
fn rsa_storage_template() -> Vec<u8> {
    rsa_template(STORAGE_ATTRS, "0006 0080 0043", "0010", 2048, 0)
}

/// An unrestricted RSA signing key with `scheme`.
fn rsa_signing_template(scheme: &str) -> Vec<u8> {
    rsa_template(SIGNING_ATTRS, "0010", scheme, 2048, 0)
}

/// The modulus of an RSA outPublic (its last field, TPM2B_PUBLIC_KEY_RSA of 256 octets).
fn rsa_modulus(public: &[u8]) -> Vec<u8> {
    let at = public.len() - 258;
    assert_eq!(&public[at..at + 2], &[1, 0]);
    public[at + 2..].to_vec()
}

fn rsa_public_key(public: &[u8]) -> rsa::PublicKey {
    let n = rsa::BoxedUint::from_be_slice(&rsa_modulus(public), 2048).unwrap();
    rsa::PublicKey::new(n, rsa::BoxedUint::from(65537u64)).unwrap()
}

/// Reads a Sign response's TPMT_SIGNATURE: (sigAlg, hash, sig).
fn rsa_signature(r: &[u8]) -> (u16, u16, Vec<u8>) {
    let mut at = 14;
    let alg = u16::from_be_bytes([r[at], r[at + 1]]);
    let hash = u16::from_be_bytes([r[at + 2], r[at + 3]]);
    at += 4;
    let sig = take2b(r, &mut at).to_vec();
    (alg, hash, sig)
}

#[test]
fn rsa_primary_is_derived_from_the_seed_and_template() {
    let mut tpm = started();
    let a = create_primary(&mut tpm, TPM_RH_OWNER, &rsa_storage_template());
    let n = rsa_modulus(&a.public);
    assert!(n[0] & 0x80 != 0, "a 2048-bit modulus");
    // The public area: type RSA, SHA-256, the attributes, AES-128-CFB, NULL, 2048, 0.
    assert_eq!(
        &a.public[..a.public.len() - 258],
        &h("0001 000b 00030072 0000 0006 0080 0043 0010 0800 00000000")[..]
    );
    run_ok(&mut tpm, &flush_cmd(a.handle));
    // The same template under the same seed: the same key.
    let b = create_primary(&mut tpm, TPM_RH_OWNER, &rsa_storage_template());
    assert_eq!(b.public, a.public);
    run_ok(&mut tpm, &flush_cmd(b.handle));
    // Another unique (a different Name): another key.
    let other = rsa_template_unique(STORAGE_ATTRS, "0006 0080 0043", "0010", 2048, 0, b"abcd");
    let c = create_primary(&mut tpm, TPM_RH_OWNER, &other);
    assert_ne!(rsa_modulus(&c.public), n);
    run_ok(&mut tpm, &flush_cmd(c.handle));
    // TPM2_Clear: a new owner seed, another key.
    run_ok(&mut tpm, &clear_cmd(TPM_RH_LOCKOUT, b""));
    let d = create_primary(&mut tpm, TPM_RH_OWNER, &rsa_storage_template());
    assert_ne!(rsa_modulus(&d.public), n);
    assert!(!tpm.failure);
}

#[test]
fn rsa_template_errors_have_their_codes() {
    let mut tpm = started();
    let storage_sym = "0006 0080 0043";
    // Parameter 2 (inPublic): TPM_RC_P + TPM_RC_2 = 0x240.
    let cases: &[(Vec<u8>, u32)] = &[
        (
            rsa_template(STORAGE_ATTRS, storage_sym, "0010", 1024, 0),
            0x2C4,
        ), // keyBits: VALUE
        (
            rsa_template(STORAGE_ATTRS, storage_sym, "0010", 3072, 0),
            0x2C4,
        ),
        (
            rsa_template(STORAGE_ATTRS, storage_sym, "0010", 4096, 0),
            0x2C4,
        ),
        (
            rsa_template(STORAGE_ATTRS, storage_sym, "0010", 2047, 0),
            0x2C4,
        ),
        (
            rsa_template(STORAGE_ATTRS, storage_sym, "0010", 2048, 3),
            0x2CD,
        ), // RANGE
        (
            rsa_template(STORAGE_ATTRS, storage_sym, "0010", 2048, 65536),
            0x2CD,
        ),
        // A storage key with a signing scheme, a decryption scheme: TPM_RC_SCHEME.
        (
            rsa_template(STORAGE_ATTRS, storage_sym, "0014 000b", 2048, 0),
            0x2D2,
        ),
        (
            rsa_template(STORAGE_ATTRS, storage_sym, "0015", 2048, 0),
            0x2D2,
        ),
        // Not an RSA scheme ID (ECDSA): TPMI_ALG_RSA_SCHEME's TPM_RC_VALUE.
        (
            rsa_template(SIGNING_ATTRS, "0010", "0018 000b", 2048, 0),
            0x2C4,
        ),
        // RSASSA with an unknown hash: TPM_RC_HASH.
        (
            rsa_template(SIGNING_ATTRS, "0010", "0014 0099", 2048, 0),
            0x2C3,
        ),
        // A restricted signing key needs a scheme: TPM_RC_SCHEME.
        (
            rsa_template(RESTRICTED_SIGNING_ATTRS, "0010", "0010", 2048, 0),
            0x2D2,
        ),
        // A signing key with AES: TPM_RC_SYMMETRIC; a storage key without: same.
        (
            rsa_template(SIGNING_ATTRS, storage_sym, "0014 000b", 2048, 0),
            0x2D6,
        ),
        (rsa_template(STORAGE_ATTRS, "0010", "0010", 2048, 0), 0x2D6),
        // sign + decrypt with a scheme: TPM_RC_SCHEME.
        (
            rsa_template(SIGN_DECRYPT_ATTRS, "0010", "0016 000b", 2048, 0),
            0x2D2,
        ),
        // unique longer than MAX_RSA_KEY_BYTES: TPM_RC_SIZE.
        (
            rsa_template_unique(STORAGE_ATTRS, storage_sym, "0010", 2048, 0, &[1; 257]),
            0x2D5,
        ),
    ];
    for (template, code) in cases {
        let r = run(&mut tpm, &create_primary_cmd(TPM_RH_OWNER, template));
        assert_eq!(rc_of(&r), *code, "template {template:02x?}");
    }
    // Truncated after keyBits: TPM_RC_INSUFFICIENT (0x09A + P + 2).
    let mut short = rsa_signing_template("0010");
    short.truncate(short.len() - 6);
    assert_eq!(
        rc_of(&run(&mut tpm, &create_primary_cmd(TPM_RH_OWNER, &short))),
        0x2DA
    );
    assert!(!tpm.failure);
    assert_eq!(tpm.objects.len(), 0);
}

#[test]
fn rsa_signatures_verify_independently_and_in_the_tpm() {
    use rsa::traits::SignatureScheme;
    let mut tpm = started();
    // An unrestricted signing key with scheme NULL: each Sign names its scheme.
    let key = create_primary(&mut tpm, TPM_RH_OWNER, &rsa_signing_template("0010"));
    let public = rsa_public_key(&key.public);
    let message = b"RSA signatures";
    for (scheme, hash) in [
        (TPM_ALG_RSASSA, TPM_ALG_SHA256),
        (TPM_ALG_RSASSA, TPM_ALG_SHA1),
        (TPM_ALG_RSASSA, TPM_ALG_SHA384),
        (TPM_ALG_RSAPSS, TPM_ALG_SHA256),
        (TPM_ALG_RSAPSS, TPM_ALG_SHA384),
    ] {
        let digest = match hash {
            TPM_ALG_SHA1 => Sha1::digest(message).to_vec(),
            TPM_ALG_SHA256 => Sha256::digest(message).to_vec(),
            _ => Sha384::digest(message).to_vec(),
        };
        let scheme_hex = alloc::format!("{scheme:04x} {hash:04x}");
        let r = run_ok(
            &mut tpm,
            &sign_cmd(key.handle, b"", &digest, &scheme_hex, &h(NULL_HASHCHECK)),
        );
        let (alg, sig_hash, sig) = rsa_signature(&r);
        assert_eq!((alg, sig_hash, sig.len()), (scheme, hash, 256));
        // Checked with the rsa crate, independently of the TPM's verification.
        let ok = match (scheme, hash) {
            (TPM_ALG_RSASSA, TPM_ALG_SHA1) => {
                rsa::Pkcs1v15Sign::new::<Sha1>().verify(&public, &digest, &sig)
            }
            (TPM_ALG_RSASSA, TPM_ALG_SHA256) => {
                rsa::Pkcs1v15Sign::new::<Sha256>().verify(&public, &digest, &sig)
            }
            (TPM_ALG_RSASSA, _) => {
                rsa::Pkcs1v15Sign::new::<Sha384>().verify(&public, &digest, &sig)
            }
            // The salt is as long as the digest.
            (_, TPM_ALG_SHA256) => rsa::pss::Pss::<Sha256>::new().verify(&public, &digest, &sig),
            _ => rsa::pss::Pss::<Sha384>::new().verify(&public, &digest, &sig),
        };
        assert!(ok.is_ok(), "{scheme_hex}");
        // VerifySignature: TPMT_SIGNATURE as Sign returned it (sigAlg, hash, TPM2B).
        let signature = &r[14..14 + 6 + 256];
        let v = run_ok(&mut tpm, &verify_cmd(key.handle, &digest, signature));
        assert_eq!(&v[10..16], &h("8022 40000001")[..]);
        let mut bad = signature.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            rc_of(&run(&mut tpm, &verify_cmd(key.handle, &digest, &bad))),
            0x2DB,
            "{scheme_hex}: TPM_RC_SIGNATURE + P + 2"
        );
        // Verified under the other scheme: invalid.
        let mut other = signature.to_vec();
        other[1] = if scheme == TPM_ALG_RSASSA { 0x16 } else { 0x14 };
        assert_eq!(
            rc_of(&run(&mut tpm, &verify_cmd(key.handle, &digest, &other))),
            0x2DB
        );
    }
    // ECDSA with an RSA key (Sign and VerifySignature), NULL with a NULL-scheme key:
    // TPM_RC_SCHEME + P + 2.
    let digest = Sha256::digest(message).to_vec();
    for scheme in [SCHEME_ECDSA_SHA256, SCHEME_NULL] {
        let r = run(
            &mut tpm,
            &sign_cmd(key.handle, b"", &digest, scheme, &h(NULL_HASHCHECK)),
        );
        assert_eq!(rc_of(&r), 0x2D2, "{scheme}");
    }
    let ecdsa_sig = h("0018 000b 0001 01 0001 01");
    assert_eq!(
        rc_of(&run(&mut tpm, &verify_cmd(key.handle, &digest, &ecdsa_sig))),
        0x2D2
    );
    // An RSA signature longer than MAX_RSA_KEY_BYTES: TPM_RC_SIZE + P + 2.
    let mut long = h("0014 000b 0101");
    long.extend_from_slice(&[0; 257]);
    assert_eq!(
        rc_of(&run(&mut tpm, &verify_cmd(key.handle, &digest, &long))),
        0x2D5
    );
    // A wrong digest size: TPM_RC_SIZE + P + 1.
    let r = run(
        &mut tpm,
        &sign_cmd(
            key.handle,
            b"",
            &digest[..20],
            "0014 000b",
            &h(NULL_HASHCHECK),
        ),
    );
    assert_eq!(rc_of(&r), 0x1D5);
    assert!(!tpm.failure);
}

#[test]
fn rsa_keys_are_created_and_loaded_under_rsa_and_ecc_parents_and_quote() {
    use rsa::traits::SignatureScheme;
    let mut tpm = started();
    let rsa_parent = create_primary(&mut tpm, TPM_RH_OWNER, &rsa_storage_template());
    // An RSASSA-SHA256 signing key under the RSA parent.
    let (private, public) = create(&mut tpm, &rsa_parent, &rsa_signing_template("0014 000b"));
    assert_eq!(
        &public[..public.len() - 258],
        &h("0001 000b 00040072 0000 0010 0014 000b 0800 00000000")[..]
    );
    let r = run_ok(&mut tpm, &load_cmd(rsa_parent.handle, &private, &public));
    let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
    // ReadPublic gives the same public area.
    let rp = run_ok(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, 0x173, &handle.to_be_bytes()),
    );
    let mut at = 10;
    assert_eq!(take2b(&rp, &mut at), &public[..]);
    // A quote signed with it (the key's scheme: inScheme NULL).
    let r = run_ok(
        &mut tpm,
        &quote_cmd(handle, b"nonce", SCHEME_NULL, SEL_0_1_16),
    );
    let mut at = 14;
    let attest = take2b(&r, &mut at).to_vec();
    assert_eq!(&r[at..at + 4], &h("0014 000b")[..]);
    at += 4;
    let sig = take2b(&r, &mut at).to_vec();
    let digest = Sha256::digest(&attest).to_vec();
    assert!(rsa::Pkcs1v15Sign::new::<Sha256>()
        .verify(&rsa_public_key(&public), &digest, &sig)
        .is_ok());
    // RSAPSS is not this key's scheme: TPM_RC_SCHEME + P + 2.
    let r = run(&mut tpm, &quote_cmd(handle, b"", "0016 000b", SEL_0_1_16));
    assert_eq!(rc_of(&r), 0x2D2);
    // The private part is bound to the public: another modulus is TPM_RC_BINDING + P + 1,
    // a flipped private octet TPM_RC_INTEGRITY + P + 1.
    run_ok(&mut tpm, &flush_cmd(handle));
    let mut other = public.clone();
    let last = other.len() - 1;
    other[last] ^= 2;
    // Another Name: the integrity check (keyed with it) fails first.
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &load_cmd(rsa_parent.handle, &private, &other)
        )),
        0x1DF
    );
    let mut bad = private.clone();
    bad[40] ^= 1;
    assert_eq!(
        rc_of(&run(&mut tpm, &load_cmd(rsa_parent.handle, &bad, &public))),
        0x1DF
    );
    run_ok(&mut tpm, &flush_cmd(rsa_parent.handle));

    // An RSA key with scheme NULL under an ECC parent, signing with RSAPSS.
    let ecc_parent = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    let (private, public) = create(&mut tpm, &ecc_parent, &rsa_signing_template("0010"));
    let r = run_ok(&mut tpm, &load_cmd(ecc_parent.handle, &private, &public));
    let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
    let digest = Sha256::digest(b"pss").to_vec();
    let r = run_ok(
        &mut tpm,
        &sign_cmd(handle, b"", &digest, "0016 000b", &h(NULL_HASHCHECK)),
    );
    let (alg, _, sig) = rsa_signature(&r);
    assert_eq!(alg, TPM_ALG_RSAPSS);
    assert!(rsa::pss::Pss::<Sha256>::new()
        .verify(&rsa_public_key(&public), &digest, &sig)
        .is_ok());
    // An RSA storage key under the ECC parent is a parent too: an ECC child under it.
    run_ok(&mut tpm, &flush_cmd(handle));
    let (private, public) = create(&mut tpm, &ecc_parent, &rsa_storage_template());
    let r = run_ok(&mut tpm, &load_cmd(ecc_parent.handle, &private, &public));
    let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
    let name = [&h("000b")[..], &Sha256::digest(&public)[..]].concat();
    let child_parent = Primary {
        handle,
        public,
        name,
    };
    let (private, public) = create(&mut tpm, &child_parent, &signing_template());
    run_ok(&mut tpm, &flush_cmd(ecc_parent.handle));
    run_ok(&mut tpm, &load_cmd(child_parent.handle, &private, &public));
    assert!(!tpm.failure);
}

#[test]
fn rsa_objects_survive_context_save_and_load() {
    let mut tpm = started();
    let key = create_primary(&mut tpm, TPM_RH_OWNER, &rsa_signing_template("0016 000b"));
    let saved = run_ok(
        &mut tpm,
        &cmd(TPM_ST_NO_SESSIONS, 0x162, &key.handle.to_be_bytes()),
    );
    run_ok(&mut tpm, &flush_cmd(key.handle));
    let r = run_ok(&mut tpm, &cmd(TPM_ST_NO_SESSIONS, 0x161, &saved[10..]));
    let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
    let digest = Sha256::digest(b"context").to_vec();
    let r = run_ok(
        &mut tpm,
        &sign_cmd(handle, b"", &digest, SCHEME_NULL, &h(NULL_HASHCHECK)),
    );
    let signature = &r[14..14 + 6 + 256];
    run_ok(&mut tpm, &verify_cmd(handle, &digest, signature));
}

#[test]
fn rsa_persistent_primary_survives_the_state_blob_and_parents_a_child() {
    let mut tpm = started();
    let srk = create_primary(&mut tpm, TPM_RH_OWNER, &rsa_storage_template());
    let persistent = 0x8100_0001u32;
    run_ok(&mut tpm, &evict_cmd(TPM_RH_OWNER, srk.handle, persistent));
    let (private, public) = create(&mut tpm, &srk, &rsa_signing_template("0014 000b"));
    // The state, serialized and read back: the persistent RSA key is whole.
    let mut restored = Tpm::from_bytes(&tpm.to_bytes()).unwrap();
    assert_eq!(restored.to_bytes(), tpm.to_bytes());
    let r = run_ok(&mut restored, &load_cmd(persistent, &private, &public));
    let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
    let digest = Sha256::digest(b"after a restore").to_vec();
    let r = run_ok(
        &mut restored,
        &sign_cmd(handle, b"", &digest, SCHEME_NULL, &h(NULL_HASHCHECK)),
    );
    run_ok(
        &mut restored,
        &verify_cmd(handle, &digest, &r[14..14 + 6 + 256]),
    );
}

mod rsa_crypt;

//! TPM2_RSA_Encrypt and TPM2_RSA_Decrypt through the command interface (Part 3 §14.2,
//! §14.3): round trips with every scheme, encryptions checked against the `rsa` crate, the
//! label rules, the key and attribute checks, and hostile input.

use super::*;

const RSA_ENCRYPT: u32 = 0x174;
const RSA_DECRYPT: u32 = 0x159;
const OAEP_SHA256: &str = "0017 000b";
const RSAES: &str = "0015";
/// TPM_RC_VALUE and TPM_RC_SIZE as `CryptRsaEncrypt` / `CryptRsaDecrypt` return them.
const VALUE: u32 = 0x084;
const SIZE: u32 = 0x095;

/// A TPM2B of `data`.
fn b(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

fn encrypt_cmd(handle: u32, message: &[u8], scheme: &str, label: &[u8]) -> Vec<u8> {
    let mut body = handle.to_be_bytes().to_vec();
    body.extend(b(message));
    body.extend(h(scheme));
    body.extend(b(label));
    cmd(TPM_ST_NO_SESSIONS, RSA_ENCRYPT, &body)
}

fn decrypt_cmd(handle: u32, ciphertext: &[u8], scheme: &str, label: &[u8]) -> Vec<u8> {
    let mut params = b(ciphertext);
    params.extend(h(scheme));
    params.extend(b(label));
    with_pw(RSA_DECRYPT, &handle.to_be_bytes(), b"", &params)
}

/// outData of a successful RSA_Encrypt (no sessions: right after the header).
fn encrypted(tpm: &mut Tpm, handle: u32, message: &[u8], scheme: &str, label: &[u8]) -> Vec<u8> {
    let r = run_ok(tpm, &encrypt_cmd(handle, message, scheme, label));
    let mut at = 10;
    let out = take2b(&r, &mut at).to_vec();
    assert_eq!(at, r.len());
    out
}

/// message of a successful RSA_Decrypt (after the parameterSize).
fn decrypted(tpm: &mut Tpm, handle: u32, ciphertext: &[u8], scheme: &str, label: &[u8]) -> Vec<u8> {
    let r = run_ok(tpm, &decrypt_cmd(handle, ciphertext, scheme, label));
    let mut at = 14;
    take2b(&r, &mut at).to_vec()
}

/// The keys: an RSA storage primary, and under it `tpm2_create -G rsa2048`'s default key
/// (sign + decrypt, scheme NULL), loaded. Returns (storage primary, key handle, key public).
fn keys(tpm: &mut Tpm) -> (Primary, u32, Vec<u8>) {
    let parent = create_primary(tpm, TPM_RH_OWNER, &rsa_storage_template());
    let template = rsa_template(SIGN_DECRYPT_ATTRS, "0010", "0010", 2048, 0);
    let (private, public) = create(tpm, &parent, &template);
    let r = run_ok(tpm, &load_cmd(parent.handle, &private, &public));
    let handle = u32::from_be_bytes(r[10..14].try_into().unwrap());
    (parent, handle, public)
}

/// A deterministic random source for the `rsa` crate's encryption in the tests.
struct TestRng(u64);

impl rsa::rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Ok(self.0 >> 11)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            *byte = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}

impl rsa::rand_core::TryCryptoRng for TestRng {}

#[test]
fn rsa_encrypt_and_decrypt_round_trip_with_every_scheme() {
    let mut tpm = started();
    let (_, key, public) = keys(&mut tpm);
    let message = b"RSA_Encrypt then RSA_Decrypt";
    for scheme in [OAEP_SHA256, "0017 0004", "0017 000c", RSAES] {
        let c = encrypted(&mut tpm, key, message, scheme, b"");
        assert_eq!(c.len(), 256, "{scheme}");
        // Randomized padding: another encryption differs.
        assert_ne!(
            encrypted(&mut tpm, key, message, scheme, b""),
            c,
            "{scheme}"
        );
        assert_eq!(
            decrypted(&mut tpm, key, &c, scheme, b""),
            message,
            "{scheme}"
        );
        // inScheme NULL with this NULL-scheme key is raw RSA: the encoded message (RFC
        // 8017 §7.1.1, §7.2.1: it starts with 0x00; EME-PKCS1-v1_5 ends with M).
        let em = decrypted(&mut tpm, key, &c, "0010", b"");
        assert_eq!((em.len(), em[0]), (256, 0), "{scheme}");
        if scheme == RSAES {
            assert_eq!(em[1], 2);
            assert_eq!(&em[em.len() - message.len()..], message);
        }
    }
    // Ciphertexts made by the rsa crate decrypt in the TPM.
    let pk = rsa_public_key(&public);
    let mut rng = TestRng(7);
    let c = pk
        .encrypt(&mut rng, rsa::Oaep::<Sha256>::new(), message)
        .unwrap();
    assert_eq!(decrypted(&mut tpm, key, &c, OAEP_SHA256, b""), message);
    let c = pk.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, message).unwrap();
    assert_eq!(decrypted(&mut tpm, key, &c, RSAES, b""), message);
    // Raw RSA: leading zero octets are dropped, the value comes back left-padded.
    let c = encrypted(&mut tpm, key, &[0, 0, 5, 6], "0010", b"");
    let m = decrypted(&mut tpm, key, &c, "0010", b"");
    assert_eq!((m.len(), &m[254..]), (256, &[5u8, 6][..]));
    assert!(m[..254].iter().all(|&x| x == 0));
    // The empty message.
    let c = encrypted(&mut tpm, key, b"", OAEP_SHA256, b"");
    assert_eq!(decrypted(&mut tpm, key, &c, OAEP_SHA256, b""), b"");
    assert!(!tpm.failure);
}

#[test]
fn rsa_labels_schemes_sizes_and_keys_are_checked() {
    let mut tpm = started();
    let (parent, key, public) = keys(&mut tpm);
    let message = b"labelled";
    // OAEP's label, with its terminating zero, as the rsa crate uses it.
    let label = b"label\0";
    let c = encrypted(&mut tpm, key, message, OAEP_SHA256, label);
    assert_eq!(decrypted(&mut tpm, key, &c, OAEP_SHA256, label), message);
    let pk = rsa_public_key(&public);
    let theirs = pk
        .encrypt(
            &mut TestRng(3),
            rsa::Oaep::<Sha256>::new_with_label(label.to_vec()),
            message,
        )
        .unwrap();
    assert_eq!(
        decrypted(&mut tpm, key, &theirs, OAEP_SHA256, label),
        message
    );
    // Another label, or none: the padding does not decode.
    for wrong in [&b"other\0"[..], b""] {
        let r = run(&mut tpm, &decrypt_cmd(key, &c, OAEP_SHA256, wrong));
        assert_eq!(rc_of(&r), VALUE);
    }
    // RSAES ignores the label.
    let c2 = encrypted(&mut tpm, key, message, RSAES, label);
    assert_eq!(decrypted(&mut tpm, key, &c2, RSAES, b"x\0"), message);
    // A label not ending with 0: TPM_RC_VALUE + P + 3.
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &encrypt_cmd(key, message, OAEP_SHA256, b"label")
        )),
        0x3C4
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &decrypt_cmd(key, &c, OAEP_SHA256, b"label"))),
        0x3C4
    );
    // Another scheme than the one encrypted with: the padding does not decode.
    assert_eq!(
        rc_of(&run(&mut tpm, &decrypt_cmd(key, &c, RSAES, b""))),
        VALUE
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &decrypt_cmd(key, &c2, "0017 0004", b""))),
        VALUE
    );
    // inScheme: not a TPMI_ALG_RSA_DECRYPT (RSASSA): TPM_RC_VALUE + P + 2; OAEP with an
    // unknown hash or NULL: TPM_RC_HASH + P + 2.
    for (scheme, code) in [
        ("0014 000b", 0x2C4),
        ("0017 0099", 0x2C3),
        ("0017 0010", 0x2C3),
    ] {
        assert_eq!(
            rc_of(&run(&mut tpm, &encrypt_cmd(key, message, scheme, b""))),
            code
        );
        assert_eq!(
            rc_of(&run(&mut tpm, &decrypt_cmd(key, &c, scheme, b""))),
            code
        );
    }
    // Messages the padding cannot hold: OAEP k − 2·hLen − 2, RSAES k − 11.
    for (scheme, max) in [
        (OAEP_SHA256, 190),
        ("0017 000c", 158),
        ("0017 0004", 214),
        (RSAES, 245),
    ] {
        encrypted(&mut tpm, key, &[0x55; 256][..max], scheme, b"");
        let r = run(
            &mut tpm,
            &encrypt_cmd(key, &[0x55; 256][..max + 1], scheme, b""),
        );
        assert_eq!(rc_of(&r), VALUE, "{scheme}");
    }
    // Raw: not below the modulus.
    let r = run(&mut tpm, &encrypt_cmd(key, &[0xFF; 256], "0010", b""));
    assert_eq!(rc_of(&r), VALUE);
    // Over MAX_RSA_KEY_BYTES: TPM_RC_SIZE + P + 1.
    assert_eq!(
        rc_of(&run(&mut tpm, &encrypt_cmd(key, &[1; 257], RSAES, b""))),
        0x1D5
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &decrypt_cmd(key, &[1; 257], RSAES, b""))),
        0x1D5
    );
    // A label over sizeof(TPMT_HA): TPM_RC_SIZE + P + 3.
    assert_eq!(
        rc_of(&run(&mut tpm, &decrypt_cmd(key, &c, OAEP_SHA256, &[0; 51]))),
        0x3D5
    );
    // A cipherText shorter than the modulus, or not below it: TPM_RC_SIZE.
    assert_eq!(
        rc_of(&run(&mut tpm, &decrypt_cmd(key, &c[1..], RSAES, b""))),
        SIZE
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &decrypt_cmd(key, &[0xFF; 256], RSAES, b""))),
        SIZE
    );
    // A flipped ciphertext bit: the padding does not decode.
    for scheme in [OAEP_SHA256, RSAES] {
        let mut bad = encrypted(&mut tpm, key, message, scheme, b"");
        bad[100] ^= 4;
        assert_eq!(
            rc_of(&run(&mut tpm, &decrypt_cmd(key, &bad, scheme, b""))),
            VALUE
        );
    }

    // The storage parent (restricted decrypt) encrypts but does not decrypt:
    // TPM_RC_ATTRIBUTES + handle 1.
    let c3 = encrypted(&mut tpm, parent.handle, message, OAEP_SHA256, b"");
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &decrypt_cmd(parent.handle, &c3, OAEP_SHA256, b"")
        )),
        0x182
    );
    run_ok(&mut tpm, &flush_cmd(parent.handle));
    run_ok(&mut tpm, &flush_cmd(key));
    // A signing key without decrypt: TPM_RC_ATTRIBUTES + handle 1 for both.
    let signer = create_primary(&mut tpm, TPM_RH_OWNER, &rsa_signing_template("0010"));
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &encrypt_cmd(signer.handle, message, RSAES, b"")
        )),
        0x182
    );
    assert_eq!(
        rc_of(&run(&mut tpm, &decrypt_cmd(signer.handle, &c3, RSAES, b""))),
        0x182
    );
    run_ok(&mut tpm, &flush_cmd(signer.handle));
    // An ECC key: TPM_RC_KEY + handle 1.
    let ecc = create_primary(&mut tpm, TPM_RH_OWNER, &storage_template());
    assert_eq!(
        rc_of(&run(
            &mut tpm,
            &encrypt_cmd(ecc.handle, message, RSAES, b"")
        )),
        0x19C
    );
    let ecc_parent = ecc;
    let (private, public) = create(&mut tpm, &ecc_parent, &sign_decrypt_template());
    let r = run_ok(&mut tpm, &load_cmd(ecc_parent.handle, &private, &public));
    let ecc_key = u32::from_be_bytes(r[10..14].try_into().unwrap());
    assert_eq!(
        rc_of(&run(&mut tpm, &decrypt_cmd(ecc_key, &c3, RSAES, b""))),
        0x19C
    );
    // Parameters left over: TPM_RC_SIZE.
    let mut long = encrypt_cmd(ecc_key, message, RSAES, b"");
    long.push(0);
    let size = long.len() as u32;
    long[2..6].copy_from_slice(&size.to_be_bytes());
    assert_eq!(rc_of(&run(&mut tpm, &long)), SIZE);
    assert!(!tpm.failure);
}

#[test]
fn hostile_rsa_encrypt_and_decrypt_inputs_never_panic() {
    let mut tpm = started();
    let (_, key, _) = keys(&mut tpm);
    let c = encrypted(&mut tpm, key, b"hostile", OAEP_SHA256, b"l\0");
    let commands = [
        encrypt_cmd(key, b"hostile", OAEP_SHA256, b"l\0"),
        decrypt_cmd(key, &c, OAEP_SHA256, b"l\0"),
    ];
    for command in &commands {
        // Every truncation (the size field told the truth about the shorter command).
        for len in 10..command.len() {
            let mut cut = command[..len].to_vec();
            cut[2..6].copy_from_slice(&(len as u32).to_be_bytes());
            let r = run(&mut tpm, &cut);
            assert_ne!(rc_of(&r), 0, "truncated to {len}");
        }
        // Every single bit flip of the handle and parameter area except the ciphertext
        // body (sampled every 7th octet there: each decryption costs a private operation).
        for at in 10..command.len() {
            if at > 30 && at < command.len() - 12 && at % 7 != 0 {
                continue;
            }
            for bit in [0x01u8, 0x80] {
                let mut flipped = command.clone();
                flipped[at] ^= bit;
                run(&mut tpm, &flipped);
            }
        }
    }
    // Lying TPM2B sizes at every value of the first size field's high octet.
    for high in 0..=255u8 {
        let mut lying = commands[1].clone();
        lying[10 + 4 + 4 + 9] = high;
        run(&mut tpm, &lying);
    }
    assert!(!tpm.failure);
    // The key still works.
    assert_eq!(
        decrypted(&mut tpm, key, &c, OAEP_SHA256, b"l\0"),
        b"hostile"
    );
}

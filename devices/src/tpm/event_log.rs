//! The event log a platform hands its OS beside a TPM 2.0, so that whoever reads the PCRs can
//! tell what went into them: the crypto-agile format of the TCG PC Client Platform Firmware
//! Profile (PFP) 1.05, all fields little-endian.
//!
//! The log starts with one event in the old SHA-1 layout (§10.2.1 TCG_PCClientPCREvent:
//! pcrIndex, eventType, a 20-byte digest, eventDataSize, event), of type EV_NO_ACTION, whose
//! data is the Spec ID event (§10.4.5.1 TCG_EfiSpecIdEvent): the signature
//! "Spec ID Event03", the PFP version, and the algorithm ID and digest size of every bank the
//! log has digests for. Every event after it is a TCG_PCR_EVENT2 (§10.2.2): pcrIndex,
//! eventType, a TPML_DIGEST_VALUES (count, then each bank's algorithm ID and digest), and
//! the event data with its size.
//!
//! Linux finds the log through the ACPI TPM2 table's LAML and LASA (x86) or the TPM node's
//! `linux,sml-base` and `linux,sml-size` (device tree), and shows it in
//! /sys/kernel/security/tpm0/binary_bios_measurements; `tpm2_eventlog` replays it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::hash::HashAlg;

/// Event types (PFP §10.4.1 Table 9).
pub const EV_NO_ACTION: u32 = 0x03;
/// "Used to record events from the boot loader": what a loader measures before the OS runs.
pub const EV_IPL: u32 = 0x0d;

/// The Spec ID event's signature, NUL-terminated (PFP §10.4.5.1).
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// platformClass 0: a client platform; PFP 1.05 is version 2.0, errata 2 (revision 1.03
/// onward, as the spec's Table 20 gives for this structure).
const PLATFORM_CLASS_CLIENT: u32 = 0;
const SPEC_VERSION_MINOR: u8 = 0;
const SPEC_VERSION_MAJOR: u8 = 2;
const SPEC_ERRATA: u8 = 2;
/// uintnSize: 2 for UINTN of 64 bits.
const UINTN_SIZE_64: u8 = 2;
/// The first event's SHA-1-sized digest field.
const LEGACY_DIGEST_SIZE: usize = 20;

/// A log being written.
#[derive(Clone, Debug)]
pub struct EventLog {
    bytes: Vec<u8>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// A log for the TPM's banks (SHA-1, SHA-256, SHA-384), holding its Spec ID event.
    pub fn new() -> Self {
        let mut spec = Vec::new();
        spec.extend_from_slice(SPEC_ID_SIGNATURE);
        spec.extend_from_slice(&PLATFORM_CLASS_CLIENT.to_le_bytes());
        spec.extend_from_slice(&[
            SPEC_VERSION_MINOR,
            SPEC_VERSION_MAJOR,
            SPEC_ERRATA,
            UINTN_SIZE_64,
        ]);
        spec.extend_from_slice(&(HashAlg::ALL.len() as u32).to_le_bytes());
        for alg in HashAlg::ALL {
            spec.extend_from_slice(&alg.alg_id().to_le_bytes());
            spec.extend_from_slice(&(alg.digest_size() as u16).to_le_bytes());
        }
        // vendorInfoSize: none.
        spec.push(0);

        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
        bytes.extend_from_slice(&[0; LEGACY_DIGEST_SIZE]);
        bytes.extend_from_slice(&(spec.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&spec);
        Self { bytes }
    }

    /// Records that `pcr` was extended with `digests` (one per bank, as `(algorithm ID,
    /// digest)`) for an event of `event_type` described by `data`.
    pub fn record<D: AsRef<[u8]>>(
        &mut self,
        pcr: u32,
        event_type: u32,
        digests: &[(u16, D)],
        data: &[u8],
    ) {
        let b = &mut self.bytes;
        b.extend_from_slice(&pcr.to_le_bytes());
        b.extend_from_slice(&event_type.to_le_bytes());
        b.extend_from_slice(&(digests.len() as u32).to_le_bytes());
        for (alg, digest) in digests {
            b.extend_from_slice(&alg.to_le_bytes());
            b.extend_from_slice(digest.as_ref());
        }
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Why a log could not be replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogError {
    /// It ends inside an event, at this offset.
    Truncated(usize),
    /// The first event is not a Spec ID event.
    NoSpecId,
    /// An event at this offset has a digest of an algorithm the Spec ID event does not list,
    /// or not one digest for each algorithm it lists.
    UnknownAlgorithm(usize),
}

/// The PCR values `log` gives, replayed from all-zero PCRs: for every (PCR, algorithm ID)
/// extended, the value. Banks this TPM has no hash for are skipped. Events of type
/// EV_NO_ACTION extend nothing (PFP §10.4.1). Zero bytes after the last event (an unused log
/// area) end the log. As strict as Linux's reader: every event carries a digest for every
/// algorithm the Spec ID event lists, whose sizes are those algorithms' own.
pub fn replay(log: &[u8]) -> Result<BTreeMap<(u32, u16), Vec<u8>>, LogError> {
    let mut reader = Reader { log, at: 0 };
    reader.u32()?;
    let first_type = reader.u32()?;
    reader.take(LEGACY_DIGEST_SIZE)?;
    let spec_len = reader.u32()? as usize;
    let spec = reader.take(spec_len)?;
    if first_type != EV_NO_ACTION || !spec.starts_with(SPEC_ID_SIGNATURE) {
        return Err(LogError::NoSpecId);
    }
    let sizes = spec_id_sizes(spec).ok_or(LogError::NoSpecId)?;

    let mut pcrs = BTreeMap::new();
    while reader.at < log.len() {
        if log[reader.at..].iter().all(|&b| b == 0) {
            break;
        }
        let start = reader.at;
        let pcr = reader.u32()?;
        let event_type = reader.u32()?;
        let count = reader.u32()? as usize;
        if count != sizes.len() {
            return Err(LogError::UnknownAlgorithm(start));
        }
        let mut digests = Vec::with_capacity(count);
        for _ in 0..count {
            let alg = reader.u16()?;
            let size = sizes
                .iter()
                .find(|(id, _)| *id == alg)
                .map(|(_, size)| *size)
                .ok_or(LogError::UnknownAlgorithm(start))?;
            digests.push((alg, reader.take(size)?));
        }
        let data_len = reader.u32()? as usize;
        reader.take(data_len)?;
        if event_type == EV_NO_ACTION {
            continue;
        }
        for (alg, digest) in digests {
            let Some(hash) = HashAlg::from_alg_id(alg) else {
                continue;
            };
            let value = pcrs
                .entry((pcr, alg))
                .or_insert_with(|| alloc::vec![0u8; hash.digest_size()]);
            *value = hash.digest(&[value, digest]).as_bytes().to_vec();
        }
    }
    Ok(pcrs)
}

/// The Spec ID event's (algorithm ID, digest size) list.
fn spec_id_sizes(spec: &[u8]) -> Option<Vec<(u16, usize)>> {
    // Signature (16), platformClass (4), versions, errata and uintnSize (4), then the count.
    let mut reader = Reader { log: spec, at: 24 };
    let count = reader.u32().ok()?;
    (0..count)
        .map(|_| {
            let (alg, size) = (reader.u16().ok()?, usize::from(reader.u16().ok()?));
            // A size that is not the algorithm's own would misplace every later field.
            let known = HashAlg::from_alg_id(alg).map(HashAlg::digest_size);
            known.is_none_or(|own| own == size).then_some((alg, size))
        })
        .collect::<Option<Vec<_>>>()
        .filter(|sizes| !sizes.is_empty())
}

struct Reader<'a> {
    log: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.log.len())
            .ok_or(LogError::Truncated(self.at))?;
        let bytes = &self.log[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, LogError> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, LogError> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::Tpm;

    #[test]
    fn the_spec_id_event_lists_every_bank() {
        let log = EventLog::new();
        let b = log.bytes();
        assert_eq!(&b[0..8], &[0, 0, 0, 0, 3, 0, 0, 0], "PCR 0, EV_NO_ACTION");
        assert!(b[8..28].iter().all(|&x| x == 0));
        let size = u32::from_le_bytes(b[28..32].try_into().unwrap()) as usize;
        assert_eq!(b.len(), 32 + size);
        let spec = &b[32..];
        assert_eq!(&spec[..16], b"Spec ID Event03\0");
        assert_eq!(&spec[20..24], &[0, 2, 2, 2]);
        assert_eq!(u32::from_le_bytes(spec[24..28].try_into().unwrap()), 3);
        // SHA-1 (4, 20), SHA-256 (0xB, 32), SHA-384 (0xC, 48); no vendor info.
        assert_eq!(
            &spec[28..],
            &[4, 0, 20, 0, 0x0b, 0, 32, 0, 0x0c, 0, 48, 0, 0]
        );
    }

    #[test]
    fn replaying_the_log_gives_the_pcrs_the_tpm_holds() {
        let mut tpm = Tpm::new([1; 32]);
        assert_eq!(tpm.startup_clear(), 0);
        let mut log = EventLog::new();
        for (pcr, data) in [(9, &b"kernel"[..]), (9, b"initrd"), (8, b"console=ttyS0")] {
            let digests = tpm.measure(pcr, data).unwrap();
            log.record(pcr, EV_IPL, &digests, data);
        }
        // An unused log area after it.
        let mut area = log.bytes().to_vec();
        area.resize(area.len() + 64, 0);
        let replayed = replay(&area).unwrap();
        assert_eq!(replayed.len(), 2 * HashAlg::ALL.len());
        for ((pcr, alg), value) in replayed {
            let alg = HashAlg::from_alg_id(alg).unwrap();
            assert_eq!(
                tpm.pcrs.value(alg, pcr as usize),
                &value[..],
                "PCR {pcr} {alg:?}"
            );
        }
    }

    #[test]
    fn broken_logs_are_refused_without_panicking() {
        let mut log = EventLog::new();
        let all_banks: [(u16, &[u8]); 3] = [(0x04, &[7; 20]), (0x0b, &[7; 32]), (0x0c, &[7; 48])];
        log.record(8, EV_IPL, &all_banks, b"x");
        let bytes = log.bytes();
        for cut in 0..bytes.len() {
            let _ = replay(&bytes[..cut]);
        }
        assert_eq!(
            replay(&bytes[..bytes.len() - 1]),
            Err(LogError::Truncated(bytes.len() - 1))
        );
        let mut unknown = EventLog::new();
        let mut banks = all_banks;
        banks[0] = (0x12, &[7; 32]);
        unknown.record(8, EV_IPL, &banks, b"x");
        assert!(matches!(
            replay(unknown.bytes()),
            Err(LogError::UnknownAlgorithm(_))
        ));
        let mut one_bank = EventLog::new();
        one_bank.record(8, EV_IPL, &all_banks[1..], b"x");
        assert!(matches!(
            replay(one_bank.bytes()),
            Err(LogError::UnknownAlgorithm(_))
        ));
        let mut not_spec = bytes.to_vec();
        not_spec[32] = b'X';
        assert_eq!(replay(&not_spec), Err(LogError::NoSpecId));
    }
}

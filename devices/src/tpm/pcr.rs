//! Platform Configuration Registers: 24 PCRs in each of three banks (SHA-1, SHA-256,
//! SHA-384), all allocated, with the PC Client attributes.
//!
//! # Attributes (TCG PC Client Platform TPM Profile, "PCR Attributes"; the same table as the
//! TCG reference implementation's `s_initAttributes` in PCR.c)
//!
//! | PCR   | saved by Shutdown(STATE) | reset by PCR_Reset from | extend from       | initial |
//! |-------|--------------------------|-------------------------|-------------------|---------|
//! | 0-15  | yes                      | never                   | localities 0-4    | 0 (PCR 0: last octet = Startup's locality) |
//! | 16    | no (debug)               | localities 0-3          | localities 0-4    | 0       |
//! | 17-18 | no (DRTM)                | never (locality 4 only, by _TPM_Hash_Start) | 2-4 | all ones |
//! | 19    | no (DRTM)                | never (locality 4 only) | localities 2-3    | all ones |
//! | 20    | no (DRTM)                | localities 2 (and 4)    | localities 1-3    | all ones |
//! | 21-22 | no (DRTM)                | localities 2 (and 4)    | locality 2        | all ones |
//! | 23    | no (application)         | localities 0-3          | localities 0-4    | 0       |
//!
//! A PCR whose reset localities include 4 starts as all ones after Startup, so a DRTM PCR
//! that reads all ones tells that no dynamic launch happened (Part 1 §17.5). Locality 4 is
//! never allowed PCR_Reset (Part 4 `PCRIsResetAllowed`, DRTM build). There is no DRTM
//! (`_TPM_Hash_Start`) interface here: the backend has no locality-4 hardware path.
//!
//! # Update counter
//!
//! pcrUpdateCounter follows Part 4's `PCRChanged`: every PCR value that changes adds one —
//! each bank an extend touches, each PCR_Reset, and each PCR (re)initialised by Startup —
//! except PCRs 20-22, the PC Client's TPM_PT_PCR_NO_INCREMENT group. TPM Reset zeroes it
//! before Startup initialises the PCRs.

use alloc::vec::Vec;

use super::hash::{HashAlg, MAX_DIGEST_SIZE};
use super::marshal::{Reader, Writer};
use super::rc::{self, Rc};

/// Number of PCRs (TPM_PT_PCR_COUNT).
pub const PCR_COUNT: usize = 24;
/// Octets of a PCR selection bitmap: PCR_SELECT_MIN = PCR_SELECT_MAX = 3 here, so
/// sizeofSelect must be exactly 3 (Part 2 §10.6.2; TPM_PT_PCR_SELECT_MIN).
pub const PCR_SELECT_SIZE: usize = PCR_COUNT.div_ceil(8);
/// TPML_DIGEST holds at most 8 digests (Part 2 §10.9.3), so PCR_Read returns at most 8.
pub const MAX_PCR_READ: usize = 8;
/// Number of banks (HASH_COUNT): the bound of TPML_PCR_SELECTION and TPML_DIGEST_VALUES.
pub const BANKS: usize = HashAlg::ALL.len();

#[derive(Clone, Copy, Debug)]
struct Attributes {
    state_save: bool,
    /// Bit n: locality n may reset.
    reset: u8,
    /// Bit n: locality n may extend.
    extend: u8,
}

const fn attr(state_save: bool, reset: u8, extend: u8) -> Attributes {
    Attributes {
        state_save,
        reset,
        extend,
    }
}

const STATIC: Attributes = attr(true, 0, 0x1F);
const ATTRIBUTES: [Attributes; PCR_COUNT] = [
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    STATIC,
    attr(false, 0x0F, 0x1F), // 16: debug
    attr(false, 0x10, 0x1C), // 17: locality 4
    attr(false, 0x10, 0x1C), // 18: locality 3
    attr(false, 0x10, 0x0C), // 19: locality 2
    attr(false, 0x14, 0x0E), // 20: locality 1
    attr(false, 0x14, 0x04), // 21: dynamic OS
    attr(false, 0x14, 0x04), // 22: dynamic OS
    attr(false, 0x0F, 0x1F), // 23: application specific
];

/// PCRs 20-22 do not increment pcrUpdateCounter (TPM_PT_PCR_NO_INCREMENT).
pub fn counts_changes(pcr: usize) -> bool {
    !(20..=22).contains(&pcr)
}

pub fn state_saved(pcr: usize) -> bool {
    ATTRIBUTES.get(pcr).is_some_and(|a| a.state_save)
}

pub fn extend_allowed(pcr: usize, locality: u8) -> bool {
    ATTRIBUTES
        .get(pcr)
        .is_some_and(|a| locality < 5 && a.extend & (1 << locality) != 0)
}

pub fn reset_allowed(pcr: usize, locality: u8) -> bool {
    // Locality 4 resets DRTM PCRs only through _TPM_Hash_Start, never by PCR_Reset.
    ATTRIBUTES
        .get(pcr)
        .is_some_and(|a| locality < 4 && a.reset & (1 << locality) != 0)
}

/// The PCR_PROPERTIES bitmap for `tag` (TPM_PT_PCR_*): SAVE, EXTEND_Ln, RESET_Ln,
/// NO_INCREMENT. `None` for tags this TPM does not report.
pub fn property_bitmap(tag: u32) -> Option<[u8; PCR_SELECT_SIZE]> {
    use super::constants::{TPM_PT_PCR_EXTEND_L0, TPM_PT_PCR_NO_INCREMENT, TPM_PT_PCR_SAVE};
    match tag {
        TPM_PT_PCR_SAVE => Some(bitmap(state_saved)),
        // EXTEND_L0 = 1, RESET_L0 = 2, EXTEND_L1 = 3, ... RESET_L4 = 10.
        t if (TPM_PT_PCR_EXTEND_L0..=TPM_PT_PCR_EXTEND_L0 + 9).contains(&t) => {
            let n = t - TPM_PT_PCR_EXTEND_L0;
            let locality = (n / 2) as u8;
            Some(if n.is_multiple_of(2) {
                bitmap(|pcr| extend_allowed(pcr, locality))
            } else {
                bitmap(|pcr| reset_allowed(pcr, locality))
            })
        }
        TPM_PT_PCR_NO_INCREMENT => Some(bitmap(|pcr| !counts_changes(pcr))),
        _ => None,
    }
}

fn bitmap(test: impl Fn(usize) -> bool) -> [u8; PCR_SELECT_SIZE] {
    let mut map = [0u8; PCR_SELECT_SIZE];
    for pcr in (0..PCR_COUNT).filter(|&p| test(p)) {
        map[pcr / 8] |= 1 << (pcr % 8);
    }
    map
}

/// One TPMS_PCR_SELECTION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    pub hash: HashAlg,
    pub select: [u8; PCR_SELECT_SIZE],
}

impl Selection {
    pub fn is_selected(&self, pcr: usize) -> bool {
        self.select
            .get(pcr / 8)
            .is_some_and(|byte| byte & (1 << (pcr % 8)) != 0)
    }

    fn write(&self, w: &mut Writer) {
        w.u16(self.hash.alg_id());
        w.u8(PCR_SELECT_SIZE as u8);
        w.bytes(&self.select);
    }
}

/// Unmarshals a TPML_PCR_SELECTION (Part 2 §10.9.7): count ≤ HASH_COUNT (TPM_RC_SIZE), each
/// hash a TPMI_ALG_HASH without NULL (TPM_RC_HASH), each sizeofSelect exactly
/// PCR_SELECT_SIZE (TPM_RC_VALUE). Every implemented hash has an allocated bank.
pub fn read_selection_list(r: &mut Reader) -> Result<Vec<Selection>, Rc> {
    let count = r.u32()?;
    if count as usize > BANKS {
        return Err(rc::SIZE);
    }
    let mut list = Vec::with_capacity(BANKS);
    for _ in 0..count {
        let hash = HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)?;
        let size = usize::from(r.u8()?);
        if size != PCR_SELECT_SIZE {
            return Err(rc::VALUE);
        }
        let mut select = [0u8; PCR_SELECT_SIZE];
        select.copy_from_slice(r.bytes(size)?);
        list.push(Selection { hash, select });
    }
    Ok(list)
}

pub fn write_selection_list(w: &mut Writer, list: &[Selection]) {
    w.count(list.len());
    for s in list {
        s.write(w);
    }
}

/// The PCR values of every bank and the update counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcrs {
    /// `values[bank][pcr]`, each padded to the largest digest; a bank uses the first
    /// `digest_size()` octets.
    values: [[[u8; MAX_DIGEST_SIZE]; PCR_COUNT]; BANKS],
    update_counter: u32,
}

impl Default for Pcrs {
    fn default() -> Self {
        Self {
            values: [[[0; MAX_DIGEST_SIZE]; PCR_COUNT]; BANKS],
            update_counter: 0,
        }
    }
}

impl Pcrs {
    pub fn value(&self, alg: HashAlg, pcr: usize) -> &[u8] {
        &self.values[alg.index()][pcr % PCR_COUNT][..alg.digest_size()]
    }

    fn value_mut(&mut self, alg: HashAlg, pcr: usize) -> &mut [u8] {
        &mut self.values[alg.index()][pcr % PCR_COUNT][..alg.digest_size()]
    }

    pub fn update_counter(&self) -> u32 {
        self.update_counter
    }

    /// TPM2_Clear increments pcrUpdateCounter (Part 3 §24.6).
    pub fn bump_update_counter(&mut self) {
        self.update_counter = self.update_counter.wrapping_add(1);
    }

    fn changed(&mut self, pcr: usize) {
        if counts_changes(pcr) {
            self.update_counter = self.update_counter.wrapping_add(1);
        }
    }

    /// Startup's PCR initialisation (Part 4 `PCRStartup`). `saved` holds the values of the
    /// state-saved PCRs (TPM Resume) or is `None` (TPM Reset and TPM Restart).
    pub fn startup(&mut self, reset_counter: bool, locality: u8, saved: Option<&Pcrs>) {
        if reset_counter {
            self.update_counter = 0;
        }
        for (pcr, attributes) in ATTRIBUTES.iter().enumerate() {
            let restore = saved.filter(|_| attributes.state_save);
            if restore.is_none() {
                self.changed(pcr);
            }
            for alg in HashAlg::ALL {
                let value = self.value_mut(alg, pcr);
                if let Some(saved) = restore {
                    value.copy_from_slice(saved.value(alg, pcr));
                } else if attributes.reset & 0x10 != 0 {
                    value.fill(0xFF);
                } else {
                    value.fill(0);
                    if pcr == 0 {
                        // The H-CRTM PCR records the locality of Startup (0 or 3).
                        if let Some(last) = value.last_mut() {
                            *last = locality;
                        }
                    }
                }
            }
        }
    }

    /// PCR[pcr] := H(PCR[pcr] || digest) in `alg`'s bank. `digest` is the algorithm's size.
    pub fn extend(&mut self, pcr: usize, alg: HashAlg, digest: &[u8]) {
        let new = alg.digest(&[self.value(alg, pcr), digest]);
        self.value_mut(alg, pcr).copy_from_slice(new.as_bytes());
        self.changed(pcr);
    }

    /// Every bank of PCR[pcr] to zero (PCR_Reset).
    pub fn reset(&mut self, pcr: usize) {
        for alg in HashAlg::ALL {
            self.value_mut(alg, pcr).fill(0);
        }
        self.changed(pcr);
    }

    /// PCR_Read's selection walk (Part 4 `PCRRead`): the selected PCRs in selection order,
    /// then PCR order, at most [`MAX_PCR_READ`]; the returned selection has exactly the bits
    /// of the PCRs read.
    pub fn read(&self, selections: &[Selection]) -> (Vec<Selection>, Vec<&[u8]>) {
        let mut out = Vec::with_capacity(selections.len());
        let mut digests = Vec::new();
        for s in selections {
            let mut returned = Selection {
                hash: s.hash,
                select: [0; PCR_SELECT_SIZE],
            };
            for pcr in (0..PCR_COUNT).filter(|&p| s.is_selected(p)) {
                if digests.len() == MAX_PCR_READ {
                    break;
                }
                returned.select[pcr / 8] |= 1 << (pcr % 8);
                digests.push(self.value(s.hash, pcr));
            }
            out.push(returned);
        }
        (out, digests)
    }

    /// The raw values, bank by bank, PCR by PCR, for serialisation.
    pub fn write_state(&self, w: &mut Writer) {
        w.u32(self.update_counter);
        for alg in HashAlg::ALL {
            for pcr in 0..PCR_COUNT {
                w.bytes(self.value(alg, pcr));
            }
        }
    }

    pub fn read_state(r: &mut Reader) -> Result<Self, Rc> {
        let mut pcrs = Pcrs {
            update_counter: r.u32()?,
            ..Pcrs::default()
        };
        for alg in HashAlg::ALL {
            for pcr in 0..PCR_COUNT {
                let size = alg.digest_size();
                pcrs.value_mut(alg, pcr).copy_from_slice(r.bytes(size)?);
            }
        }
        Ok(pcrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locality_rules_follow_the_pc_client_table() {
        for pcr in 0..16 {
            assert!(state_saved(pcr));
            assert!((0..5).all(|l| extend_allowed(pcr, l)));
            assert!((0..5).all(|l| !reset_allowed(pcr, l)), "PCR {pcr}");
        }
        for pcr in [16, 23] {
            assert!(!state_saved(pcr));
            assert!((0..4).all(|l| reset_allowed(pcr, l)));
            assert!(!reset_allowed(pcr, 4));
        }
        assert!(reset_allowed(20, 2) && !reset_allowed(20, 0) && !reset_allowed(17, 3));
        assert!(extend_allowed(21, 2) && !extend_allowed(21, 0) && !extend_allowed(19, 4));
        assert!(!extend_allowed(0, 5) && !reset_allowed(24, 0) && !extend_allowed(24, 0));
        assert_eq!(property_bitmap(0x00), Some([0xff, 0xff, 0x00]), "SAVE");
        assert_eq!(property_bitmap(0x02), Some([0x00, 0x00, 0x81]), "RESET_L0");
        assert_eq!(property_bitmap(0x06), Some([0x00, 0x00, 0xf1]), "RESET_L2");
        assert_eq!(property_bitmap(0x09), Some([0xff, 0xff, 0x87]), "EXTEND_L4");
        assert_eq!(property_bitmap(0x0A), Some([0, 0, 0]), "RESET_L4");
        assert_eq!(
            property_bitmap(0x11),
            Some([0x00, 0x00, 0x70]),
            "NO_INCREMENT"
        );
        assert_eq!(property_bitmap(0x0B), None);
    }

    #[test]
    fn startup_values_and_counter() {
        let mut pcrs = Pcrs::default();
        pcrs.startup(true, 3, None);
        assert_eq!(
            pcrs.update_counter(),
            21,
            "24 PCRs initialised, 20-22 not counted"
        );
        let mut pcr0 = [0u8; 32];
        pcr0[31] = 3;
        assert_eq!(pcrs.value(HashAlg::Sha256, 0), pcr0);
        assert_eq!(pcrs.value(HashAlg::Sha1, 17), [0xff; 20]);
        assert_eq!(pcrs.value(HashAlg::Sha384, 23), [0; 48]);
    }

    #[test]
    fn read_caps_at_eight_and_trims_the_selection() {
        let mut pcrs = Pcrs::default();
        pcrs.startup(true, 0, None);
        let all = Selection {
            hash: HashAlg::Sha256,
            select: [0xff; 3],
        };
        let sha1 = Selection {
            hash: HashAlg::Sha1,
            select: [0x01, 0, 0],
        };
        let (out, digests) = pcrs.read(&[all, sha1]);
        assert_eq!(digests.len(), 8);
        assert_eq!(out[0].select, [0xff, 0, 0]);
        assert_eq!(
            out[1].select,
            [0, 0, 0],
            "nothing left for the second selection"
        );
        assert_eq!(out[1].hash, HashAlg::Sha1);
    }
}

//! TPM2_GetCapability (Part 3 §30.2; Part 4 `TPM2_GetCapability` and its helpers).
//!
//! Every list starts at `property` (an algorithm, handle, command code or property tag),
//! holds at most `propertyCount` entries (capped by what fits MAX_CAP_BUFFER), and
//! `moreData` is YES when entries of the same kind were left out. Lists of things that do
//! not exist yet here (loaded objects, saved sessions, ECC curves, audited or
//! physical-presence commands, policies, ACTs) are empty, with moreData NO.

use super::super::constants::*;
use super::super::handles::{handle_type, pcr_handle, PERMANENT_HANDLES};
use super::super::hash::MAX_DIGEST_SIZE;
use super::super::marshal::Writer;
use super::super::pcr::{self, PCR_COUNT, PCR_SELECT_SIZE};
use super::super::rc::{self, Rc};
use super::super::Tpm;
use super::{Call, COMMANDS};

/// TPM_PT_MANUFACTURER: "PRPT", not a TCG-registered vendor ID (the registry has none for
/// software TPMs of this project), chosen not to collide with one.
const MANUFACTURER: [u8; 4] = *b"PRPT";
/// The algorithms implemented, in TPM_ALG_ID order, with their TPMA_ALGORITHM bits (Part 2
/// §8.2, Table 32: asymmetric 0, symmetric 1, hash 2, object 3, signing 8, encrypting 9), as
/// the reference implementation's table gives them for each.
///
/// TPM_ALG_KEYEDHASH is hash, object, signing and encrypting, as the reference's
/// AlgorithmCap.c lists it (sealed data objects are its only use here). TPM_ALG_CFB is
/// symmetric and encrypting: Part 2 §6.3, Table 9 types it "S E" (a symmetric block
/// cipher mode, an encryption mode). TPM_ALG_RSA is asymmetric and object ("A O"),
/// TPM_ALG_RSASSA and TPM_ALG_RSAPSS asymmetric and signing ("A X"), TPM_ALG_RSAES and
/// TPM_ALG_OAEP asymmetric and encrypting ("A E"), as Table 9 types them.
const ALGORITHMS: [(u16, u32); 13] = [
    (
        TPM_ALG_RSA,
        TPMA_ALGORITHM_ASYMMETRIC | TPMA_ALGORITHM_OBJECT,
    ),
    (TPM_ALG_SHA1, TPMA_ALGORITHM_HASH),
    (TPM_ALG_AES, TPMA_ALGORITHM_SYMMETRIC),
    (
        TPM_ALG_KEYEDHASH,
        TPMA_ALGORITHM_HASH
            | TPMA_ALGORITHM_OBJECT
            | TPMA_ALGORITHM_SIGNING
            | TPMA_ALGORITHM_ENCRYPTING,
    ),
    (TPM_ALG_SHA256, TPMA_ALGORITHM_HASH),
    (TPM_ALG_SHA384, TPMA_ALGORITHM_HASH),
    (
        TPM_ALG_RSASSA,
        TPMA_ALGORITHM_ASYMMETRIC | TPMA_ALGORITHM_SIGNING,
    ),
    (
        TPM_ALG_RSAES,
        TPMA_ALGORITHM_ASYMMETRIC | TPMA_ALGORITHM_ENCRYPTING,
    ),
    (
        TPM_ALG_RSAPSS,
        TPMA_ALGORITHM_ASYMMETRIC | TPMA_ALGORITHM_SIGNING,
    ),
    (
        TPM_ALG_OAEP,
        TPMA_ALGORITHM_ASYMMETRIC | TPMA_ALGORITHM_ENCRYPTING,
    ),
    (
        TPM_ALG_ECDSA,
        TPMA_ALGORITHM_ASYMMETRIC | TPMA_ALGORITHM_SIGNING,
    ),
    (
        TPM_ALG_ECC,
        TPMA_ALGORITHM_ASYMMETRIC | TPMA_ALGORITHM_OBJECT,
    ),
    (
        TPM_ALG_CFB,
        TPMA_ALGORITHM_SYMMETRIC | TPMA_ALGORITHM_ENCRYPTING,
    ),
];
/// TPM_PT_VENDOR_STRING_1..4: "Parapet vTPM", NUL-padded.
const VENDOR_STRING: [u8; 16] = *b"Parapet vTPM\0\0\0\0";
/// TPM_PT_FIRMWARE_VERSION_1/2: version 1.0 of this implementation's behaviour.
pub(super) const FIRMWARE_VERSION: (u32, u32) = (0x0001_0000, 0);
/// TPM_PT_REVISION etc.: the specification followed, Level 00 Revision 01.59 of
/// November 8, 2019 (day 312).
const SPEC_REVISION: u32 = 159;
const SPEC_DAY_OF_YEAR: u32 = 312;
const SPEC_YEAR: u32 = 2019;
/// "2.0\0", TPM_PT_FAMILY_INDICATOR.
const FAMILY_2_0: u32 = 0x322E_3000;

fn be32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(b)
}

impl Tpm {
    /// The value of TPM property `pt`, if this TPM reports it (Part 2 §6.13, Table 23).
    fn property(&self, pt: u32) -> Option<u32> {
        let commands = COMMANDS.len() as u32;
        Some(match pt {
            TPM_PT_FAMILY_INDICATOR => FAMILY_2_0,
            TPM_PT_LEVEL => 0,
            TPM_PT_REVISION => SPEC_REVISION,
            TPM_PT_DAY_OF_YEAR => SPEC_DAY_OF_YEAR,
            TPM_PT_YEAR => SPEC_YEAR,
            TPM_PT_MANUFACTURER => u32::from_be_bytes(MANUFACTURER),
            TPM_PT_VENDOR_STRING_1..=TPM_PT_VENDOR_STRING_4 => {
                let i = (pt - TPM_PT_VENDOR_STRING_1) as usize * 4;
                be32(&VENDOR_STRING[i..])
            }
            TPM_PT_VENDOR_TPM_TYPE => 1,
            TPM_PT_FIRMWARE_VERSION_1 => FIRMWARE_VERSION.0,
            TPM_PT_FIRMWARE_VERSION_2 => FIRMWARE_VERSION.1,
            TPM_PT_INPUT_BUFFER => MAX_DIGEST_BUFFER,
            // No objects can be loaded yet.
            TPM_PT_HR_TRANSIENT_MIN => MAX_LOADED_OBJECTS as u32,
            TPM_PT_HR_PERSISTENT_MIN => MAX_PERSISTENT_OBJECTS as u32,
            // Sessions: the slots of `session.rs`; a saved session keeps its slot.
            TPM_PT_HR_LOADED_MIN | TPM_PT_ACTIVE_SESSIONS_MAX => MAX_LOADED_SESSIONS as u32,
            TPM_PT_PCR_COUNT => PCR_COUNT as u32,
            TPM_PT_PCR_SELECT_MIN => PCR_SELECT_SIZE as u32,
            TPM_PT_NV_INDEX_MAX => u32::from(MAX_NV_INDEX_SIZE),
            TPM_PT_NV_BUFFER_MAX => MAX_NV_BUFFER_SIZE as u32,
            TPM_PT_MAX_COMMAND_SIZE => MAX_COMMAND_SIZE as u32,
            TPM_PT_MAX_RESPONSE_SIZE => MAX_RESPONSE_SIZE as u32,
            TPM_PT_MAX_DIGEST => MAX_DIGEST_SIZE as u32,
            TPM_PT_TOTAL_COMMANDS | TPM_PT_LIBRARY_COMMANDS => commands,
            TPM_PT_VENDOR_COMMANDS => 0,
            // TPMA_MODES: no FIPS 140-2 claim.
            TPM_PT_MODES => 0,
            TPM_PT_MAX_CAP_BUFFER => MAX_CAP_BUFFER,
            TPM_PT_PERMANENT => TPMA_PERMANENT_TPM_GENERATED_EPS,
            TPM_PT_STARTUP_CLEAR => {
                let orderly = if self.orderly_startup {
                    TPMA_STARTUP_CLEAR_ORDERLY
                } else {
                    0
                };
                TPMA_STARTUP_CLEAR_ENABLES | orderly
            }
            TPM_PT_HR_NV_INDEX => self.nv.len() as u32,
            TPM_PT_HR_LOADED => self.sessions.len() as u32,
            TPM_PT_HR_ACTIVE => self.sessions.active() as u32,
            TPM_PT_HR_LOADED_AVAIL | TPM_PT_HR_ACTIVE_AVAIL => {
                MAX_LOADED_SESSIONS.saturating_sub(self.sessions.active()) as u32
            }
            TPM_PT_HR_TRANSIENT_AVAIL => {
                MAX_LOADED_OBJECTS.saturating_sub(self.objects.len()) as u32
            }
            TPM_PT_HR_PERSISTENT => self.persistent.len() as u32,
            TPM_PT_HR_PERSISTENT_AVAIL => {
                MAX_PERSISTENT_OBJECTS.saturating_sub(self.persistent.len()) as u32
            }
            _ => return None,
        })
    }
}

/// Writes up to `max` of `items` (already those ≥ property, in order), returning moreData.
fn list<T: Copy>(
    out: &mut Writer,
    items: impl Iterator<Item = T>,
    max: u32,
    mut write: impl FnMut(&mut Writer, T),
) -> bool {
    let mut body = Writer::new();
    let mut n = 0u32;
    for item in items {
        if n == max {
            out.u32(n);
            out.bytes(body.as_slice());
            return true;
        }
        write(&mut body, item);
        n += 1;
    }
    out.u32(n);
    out.bytes(body.as_slice());
    false
}

pub fn get_capability(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    // TPM_CAP (Part 2 §6.12): an unknown value is TPM_RC_VALUE.
    let capability = call.param(1, |r| match r.u32()? {
        c @ (TPM_CAP_ALGS..=TPM_CAP_ACT | TPM_CAP_VENDOR_PROPERTY) => Ok(c),
        _ => Err(rc::VALUE),
    })?;
    let property = call.param(2, |r| r.u32())?;
    let count = call.param(3, |r| r.u32())?;
    call.end()?;

    let mut data = Writer::new();
    data.u32(capability);
    let more = match capability {
        TPM_CAP_ALGS => {
            // TPML_ALG_PROPERTY: algorithms ≥ property (a TPM_ALG_ID in the low 16 bits;
            // a larger property is past every algorithm).
            let algs = ALGORITHMS
                .into_iter()
                .filter(|&(id, _)| u32::from(id) >= property);
            list(
                &mut data,
                algs,
                count.min(MAX_CAP_ALGS),
                |w, (id, attributes)| {
                    w.u16(id);
                    w.u32(attributes);
                },
            )
        }
        TPM_CAP_HANDLES => {
            let max = count.min(MAX_CAP_HANDLES);
            match handle_type(property) {
                TPM_HT_PCR => {
                    let pcrs = (0..PCR_COUNT).map(pcr_handle).filter(|&h| h >= property);
                    list(&mut data, pcrs, max, |w, h| w.u32(h))
                }
                TPM_HT_PERMANENT => {
                    let handles = PERMANENT_HANDLES.into_iter().filter(|&h| h >= property);
                    list(&mut data, handles, max, |w, h| w.u32(h))
                }
                TPM_HT_NV_INDEX => {
                    let indices = tpm.nv.handles().filter(|&h| h >= property);
                    list(&mut data, indices, max, |w, h| w.u32(h))
                }
                // TPM_HT_LOADED_SESSION (= TPM_HT_HMAC_SESSION): every loaded session, HMAC
                // and policy, by slot (Part 4 `SessionCapGetLoaded`).
                TPM_HT_HMAC_SESSION => {
                    let slot = property & 0x00FF_FFFF;
                    let loaded = tpm.sessions.handles().filter(|&h| h & 0x00FF_FFFF >= slot);
                    list(&mut data, loaded, max, |w, h| w.u32(h))
                }
                // TPM_HT_SAVED_SESSION (= TPM_HT_POLICY_SESSION): the saved sessions, by slot
                // (Part 4 `SessionCapGetSaved`).
                TPM_HT_POLICY_SESSION => {
                    let slot = property & 0x00FF_FFFF;
                    let saved = tpm.sessions.saved_handles();
                    let saved = saved.filter(|&h| h & 0x00FF_FFFF >= slot);
                    list(&mut data, saved, max, |w, h| w.u32(h))
                }
                TPM_HT_TRANSIENT => {
                    let loaded = tpm.objects.handles().filter(|&h| h >= property);
                    list(&mut data, loaded, max, |w, h| w.u32(h))
                }
                TPM_HT_PERSISTENT => {
                    let persistent = tpm.persistent.range(property..).map(|(&h, _)| h);
                    list(&mut data, persistent, max, |w, h| w.u32(h))
                }
                _ => return Err(rc::parameter(rc::HANDLE, 2)),
            }
        }
        TPM_CAP_COMMANDS => {
            let commands = COMMANDS
                .iter()
                .filter(|c| c.cc >= property)
                .map(|c| c.attributes());
            list(&mut data, commands, count.min(MAX_CAP_CC), |w, a| w.u32(a))
        }
        TPM_CAP_PP_COMMANDS | TPM_CAP_AUDIT_COMMANDS => {
            list(&mut data, core::iter::empty::<u32>(), 0, |w, c| w.u32(c))
        }
        TPM_CAP_PCRS => {
            if property != 0 {
                return Err(rc::parameter(rc::VALUE, 2));
            }
            // Part 4 PCRCapGetAllocation: all banks, or none and moreData when count is 0.
            if count == 0 {
                data.u32(0);
                true
            } else {
                pcr::write_selection_list(&mut data, &super::pcr::allocation());
                false
            }
        }
        TPM_CAP_TPM_PROPERTIES => {
            // Part 4 TPMCapGetProperties: from property (at least PT_FIXED) to the end of its
            // group; the variable group is the last.
            let start = property.max(PT_FIXED);
            let end = (start / PT_GROUP + 1).saturating_mul(PT_GROUP);
            let props = (start..end.min(PT_VAR + PT_GROUP))
                .filter_map(|pt| tpm.property(pt).map(|v| (pt, v)));
            list(
                &mut data,
                props,
                count.min(MAX_TPM_PROPERTIES),
                |w, (pt, v)| {
                    w.u32(pt);
                    w.u32(v);
                },
            )
        }
        TPM_CAP_PCR_PROPERTIES => {
            let props = (property..=TPM_PT_PCR_LAST)
                .filter_map(|tag| pcr::property_bitmap(tag).map(|map| (tag, map)));
            list(
                &mut data,
                props,
                count.min(MAX_PCR_PROPERTIES),
                |w, (tag, map)| {
                    w.u32(tag);
                    w.u8(PCR_SELECT_SIZE as u8);
                    w.bytes(&map);
                },
            )
        }
        TPM_CAP_ECC_CURVES => {
            let curves = [TPM_ECC_NIST_P256]
                .into_iter()
                .filter(|&c| u32::from(c) >= property);
            list(&mut data, curves, count.min(MAX_CAP_ALGS), |w, c| w.u16(c))
        }
        TPM_CAP_AUTH_POLICIES => {
            if handle_type(property) != TPM_HT_PERMANENT {
                return Err(rc::parameter(rc::VALUE, 2));
            }
            list(&mut data, core::iter::empty::<u32>(), 0, |w, h| w.u32(h))
        }
        TPM_CAP_ACT => {
            if !(TPM_RH_ACT_0..=TPM_RH_ACT_F).contains(&property) {
                return Err(rc::parameter(rc::VALUE, 2));
            }
            list(&mut data, core::iter::empty::<u32>(), 0, |w, h| w.u32(h))
        }
        // TPM_CAP_VENDOR_PROPERTY: none.
        _ => return Err(rc::parameter(rc::VALUE, 1)),
    };
    call.out.u8(if more { YES } else { NO });
    call.out.bytes(data.as_slice());
    Ok(())
}

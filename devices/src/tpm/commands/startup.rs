//! TPM2_Startup and TPM2_Shutdown (Part 3 §9.3, §9.4; the kinds of startup are Part 1
//! §12.2.4-12.2.6 and Part 4's `TPM2_Startup`).
//!
//! | last Shutdown | Startup | is a         | PCRs                              | counters |
//! |---------------|---------|--------------|-----------------------------------|----------|
//! | none or CLEAR | CLEAR   | TPM Reset    | initialised, update counter 0     | resetCount + 1, restartCount = clearCount = 0 |
//! | STATE         | CLEAR   | TPM Restart  | initialised, update counter kept  | restartCount + 1, clearCount + 1 |
//! | STATE         | STATE   | TPM Resume   | 0-15 restored, others initialised | restartCount + 1 |
//! | none or CLEAR | STATE   | TPM_RC_VALUE (parameter 1)                                   ||
//!
//! A TPM Reset and a TPM Restart also clear TPMA_NV_WRITTEN of the NV indices with
//! TPMA_NV_CLEAR_STCLEAR (Part 2 §13.4) and set platformAuth to the Empty Buffer (Part 1
//! §13.8: the platform hierarchy's authorization lasts until the next Startup(CLEAR)). A TPM Reset also draws a new null seed. A PCR_Extend, PCR_Event or PCR_Reset of a
//! state-saved PCR after Shutdown voids the saved state (Part 4 `RETURN_IF_ORDERLY` /
//! `g_clearOrderly`): the next Startup is a TPM Reset.

use alloc::boxed::Box;

use super::super::constants::{TPM_SU_CLEAR, TPM_SU_STATE};
use super::super::marshal::Reader;
use super::super::rc::{self, Rc};
use super::super::{Orderly, Tpm};
use super::Call;

/// TPM_SU (Part 2 §6.11): CLEAR or STATE, otherwise TPM_RC_VALUE.
fn read_su(r: &mut Reader) -> Result<u16, Rc> {
    match r.u16()? {
        su @ (TPM_SU_CLEAR | TPM_SU_STATE) => Ok(su),
        _ => Err(rc::VALUE),
    }
}

pub fn startup(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let startup_type = call.param(1, read_su)?;
    call.end()?;
    // Startup is accepted at locality 0 (the normal case) and 3 (an H-CRTM platform).
    if call.locality != 0 && call.locality != 3 {
        return Err(rc::LOCALITY);
    }
    let orderly = core::mem::replace(&mut tpm.orderly, Orderly::None);
    match (startup_type, orderly) {
        (TPM_SU_STATE, Orderly::State(saved)) => {
            // TPM Resume.
            let mut pcrs = (*saved).clone();
            pcrs.startup(false, call.locality, Some(&saved));
            tpm.pcrs = pcrs;
            tpm.restart_count = tpm.restart_count.wrapping_add(1);
            tpm.orderly_startup = true;
        }
        (TPM_SU_STATE, other) => {
            // Nothing to resume: the TPM stays as it was, waiting for Startup(CLEAR).
            tpm.orderly = other;
            return Err(rc::parameter(rc::VALUE, 1));
        }
        (_, Orderly::State(saved)) => {
            // TPM Restart.
            let mut pcrs = *saved;
            pcrs.startup(false, call.locality, None);
            tpm.pcrs = pcrs;
            tpm.nv.startup_clear();
            tpm.platform_auth.clear();
            tpm.restart_count = tpm.restart_count.wrapping_add(1);
            tpm.clear_count = tpm.clear_count.wrapping_add(1);
            tpm.orderly_startup = true;
        }
        (_, previous) => {
            // TPM Reset.
            tpm.pcrs.startup(true, call.locality, None);
            tpm.nv.startup_clear();
            tpm.platform_auth.clear();
            tpm.reset_count = tpm.reset_count.wrapping_add(1);
            tpm.restart_count = 0;
            tpm.clear_count = 0;
            tpm.drbg.generate(&mut tpm.null_seed, &[]);
            tpm.orderly_startup = previous == Orderly::Clear;
        }
    }
    tpm.started = true;
    Ok(())
}

pub fn shutdown(tpm: &mut Tpm, call: &mut Call) -> Result<(), Rc> {
    let shutdown_type = call.param(1, read_su)?;
    call.end()?;
    tpm.orderly = if shutdown_type == TPM_SU_STATE {
        Orderly::State(Box::new(tpm.pcrs.clone()))
    } else {
        Orderly::Clear
    };
    Ok(())
}

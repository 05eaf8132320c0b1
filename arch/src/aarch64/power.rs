//! Ending a run so that the machine's exit status tells success from failure.
//!
//! Success: PSCI SYSTEM_OFF (QEMU exits 0). Failure: the semihosting exit call with status 1
//! (Arm semihosting v2, SYS_EXIT 0x18 with ADP_Stopped_ApplicationExit), which QEMU turns
//! into exit status 1 when started with semihosting enabled; elsewhere it traps and the CPU
//! halts.

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::devicetree::PsciConduit;
use super::{psci, registers::halt_forever};
use crate::ExitStatus;

const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// 0 = unknown, 1 = SMC, 2 = HVC.
static CONDUIT: AtomicU8 = AtomicU8::new(0);
static EXITING: AtomicBool = AtomicBool::new(false);

/// Records how PSCI is reached, for [`exit`].
pub fn set_psci_conduit(conduit: Option<PsciConduit>) {
    let v = match conduit {
        None => 0,
        Some(PsciConduit::Smc) => 1,
        Some(PsciConduit::Hvc) => 2,
    };
    CONDUIT.store(v, Ordering::Relaxed);
}

fn semihosting_exit(code: u64) {
    let block = [ADP_STOPPED_APPLICATION_EXIT, code];
    // SAFETY: HLT #0xf000 is the A64 semihosting trap; the block outlives the call. Without a
    // semihosting host it raises an exception, which the fatal path turns into a halt (the
    // EXITING flag stops recursion).
    unsafe {
        core::arch::asm!("hlt #0xf000", inout("x0") SYS_EXIT => _, in("x1") block.as_ptr(), options(nostack));
    }
}

pub fn exit(status: ExitStatus) -> ! {
    if EXITING.swap(true, Ordering::SeqCst) {
        halt_forever();
    }
    match status {
        ExitStatus::Success => {
            let conduit = match CONDUIT.load(Ordering::Relaxed) {
                1 => Some(PsciConduit::Smc),
                2 => Some(PsciConduit::Hvc),
                _ => None,
            };
            if let Some(c) = conduit {
                // SAFETY: powering off is what the caller asked for.
                unsafe { psci::call(c, psci::SYSTEM_OFF, 0, 0, 0) };
            }
            semihosting_exit(0);
        }
        ExitStatus::Failure => semihosting_exit(1),
    }
    halt_forever()
}

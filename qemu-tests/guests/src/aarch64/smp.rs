//! Starting a second CPU the way an arm64 OS does: PSCI CPU_ON with the target's MPIDR, an
//! entry that sets up a stack of its own (`start::secondary_entry`), and a context (here the
//! function to run). The CPUs meet through a flag in memory with plain loads and stores: the
//! MMU is off, so memory is Device-nGnRnE and exclusives are not to be relied on.

use core::arch::asm;

use crate::start::{self, Stack, STACK_SIZE};
use crate::{psci, timer};

/// The stack of every CPU started here: one at a time.
pub(crate) static mut SECOND_STACK: Stack = Stack([0; STACK_SIZE]);

/// Set to 1 by the second CPU once it has run.
static mut SECOND_VP_RAN: u32 = 0;

/// Starts the CPU with affinity `mpidr` at `entry` on the second stack; returns CPU_ON's
/// status (0: started).
///
/// # Safety
/// No other CPU started here may still be running: they would share a stack.
pub unsafe fn start_vp(mpidr: u64, entry: extern "C" fn() -> !) -> i32 {
    // SAFETY: only this CPU writes the flag before the other CPU runs.
    unsafe { (&raw mut SECOND_VP_RAN).write_volatile(0) };
    // SAFETY: the secondary entry sets its own stack (the caller vouches no one else uses
    // it) and vectors, then calls `entry`.
    unsafe { psci::cpu_on(mpidr, start::secondary_entry(), entry as usize as u64) }
}

/// Marks the second CPU as having run, then powers it off (CPU_OFF), or parks it in WFE if
/// that is refused.
pub fn report_and_park() -> ! {
    // SAFETY: a plain store to a flag only the waiting CPU reads; the DSB makes it visible
    // before anything this CPU does next.
    unsafe {
        (&raw mut SECOND_VP_RAN).write_volatile(1);
        asm!("dsb sy", options(nostack));
    }
    psci::cpu_off();
    loop {
        // SAFETY: WFE only waits (for an event, or whatever the hypervisor decides).
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}

/// Waits up to about ten seconds of counter time for the second CPU.
pub fn wait_for_second_vp() -> bool {
    let limit = match timer::frequency() {
        0 => 1 << 34,
        hz => hz.saturating_mul(10),
    };
    let start = timer::ticks();
    // SAFETY: a plain load of the flag the second CPU sets.
    while unsafe { (&raw const SECOND_VP_RAN).read_volatile() } == 0 {
        if timer::ticks().wrapping_sub(start) > limit {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

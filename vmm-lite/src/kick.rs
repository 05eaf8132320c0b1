//! Getting VTL2 its interrupts while VTL0 runs.
//!
//! On Hyper-V an interrupt for VTL2 preempts VTL0 (VTL entry reason "interrupt", TLFS
//! §15.6.2). Here VTL2's vCPU sits outside KVM_RUN while its VP runs VTL0, so nothing would
//! deliver VTL2's timer until VTL0 happened to exit. A kicker thread signals every VP thread
//! that is running VTL0, at the rate of a timer tick; the signal ends KVM_RUN with EINTR, and
//! the VP enters VTL2 if VTL2's local APIC has an interrupt pending.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

/// How often VP threads running VTL0 are checked: a 100 Hz tick, as Parapet's own.
pub const PERIOD: Duration = Duration::from_millis(10);
/// The signal used; its handler does nothing, its delivery ends KVM_RUN.
const KICK_SIGNAL: libc::c_int = libc::SIGUSR1;

extern "C" fn ignore(_: libc::c_int) {}

/// Installs the do-nothing handler, once per process, without SA_RESTART so KVM_RUN returns.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe (it does
        // nothing) and lives for the whole process.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(KICK_SIGNAL, &action, std::ptr::null_mut());
        }
    });
}

pub struct Kicker {
    /// Per VP: its thread (pthread_t), once registered; 0 before.
    threads: Vec<AtomicU64>,
    /// Per VP: its thread is running VTL0.
    in_vtl0: Vec<AtomicBool>,
}

impl Kicker {
    /// A kicker for `vps` VPs, with its thread started.
    pub fn start(vps: usize) -> Arc<Self> {
        install_handler();
        let kicker = Arc::new(Self {
            threads: (0..vps).map(|_| AtomicU64::new(0)).collect(),
            in_vtl0: (0..vps).map(|_| AtomicBool::new(false)).collect(),
        });
        let worker = Arc::clone(&kicker);
        std::thread::spawn(move || loop {
            std::thread::sleep(PERIOD);
            worker.kick_vtl0_runners();
        });
        kicker
    }

    /// Records the calling thread as VP `vp`'s.
    pub fn register_current_thread(&self, vp: usize) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        self.threads[vp].store(me as u64, Ordering::Release);
    }

    /// Forgets VP `vp`'s thread, which is ending: no signal may reach a thread that is gone.
    pub fn unregister(&self, vp: usize) {
        self.in_vtl0[vp].store(false, Ordering::Release);
        self.threads[vp].store(0, Ordering::Release);
    }

    /// Marks whether VP `vp`'s thread is (about to be) running VTL0.
    pub fn set_in_vtl0(&self, vp: usize, running: bool) {
        self.in_vtl0[vp].store(running, Ordering::Release);
    }

    fn kick_vtl0_runners(&self) {
        for (thread, running) in self.threads.iter().zip(&self.in_vtl0) {
            let thread = thread.load(Ordering::Acquire);
            if thread != 0 && running.load(Ordering::Acquire) {
                // SAFETY: `thread` is a registered VP thread; a VP thread unregisters before
                // it ends (`Vp::run`, also when unwinding), so it is alive. The signal's
                // handler does nothing.
                unsafe { libc::pthread_kill(thread as libc::pthread_t, KICK_SIGNAL) };
            }
        }
    }
}

/// A 32-bit local APIC register from KVM_GET_LAPIC's page image.
fn register(lapic: &kvm_bindings::kvm_lapic_state, offset: usize) -> u32 {
    let b = |i: usize| lapic.regs[offset + i] as u8;
    u32::from_le_bytes([b(0), b(1), b(2), b(3)])
}

/// Local APIC registers (Intel SDM Vol. 3A §11.4.1, §11.5.4).
const IRR: usize = 0x200;
const LVT_TIMER: usize = 0x320;
const TIMER_CURRENT_COUNT: usize = 0x390;
const TIMER_INITIAL_COUNT: usize = 0x380;
const LVT_MASKED: u32 = 1 << 16;
const TIMER_MODE_SHIFT: u32 = 17;
const TIMER_ONE_SHOT: u32 = 0;

/// Whether VTL2, kept from running for `waited`, has an interrupt due, judged from its local
/// APIC state `lapic` (KVM_GET_LAPIC): a requested vector (any IRR bit — IPIs land there at
/// once), or its timer. KVM raises a timer interrupt only when the vCPU runs again, so the
/// timer is judged by its programming: an expired one-shot count, or a periodic or
/// TSC-deadline timer after a kicker period — at most one entry per tick, as a hardware
/// timer preempting VTL0 would cause.
pub fn interrupt_due(lapic: &kvm_bindings::kvm_lapic_state, waited: Duration) -> bool {
    if (0..8).any(|i| register(lapic, IRR + 0x10 * i) != 0) {
        return true;
    }
    let lvt = register(lapic, LVT_TIMER);
    if lvt & LVT_MASKED != 0 {
        return false;
    }
    if (lvt >> TIMER_MODE_SHIFT) & 0b11 == TIMER_ONE_SHOT {
        register(lapic, TIMER_INITIAL_COUNT) != 0 && register(lapic, TIMER_CURRENT_COUNT) == 0
    } else {
        waited >= PERIOD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lapic(lvt_timer: u32, initial: u32, current: u32) -> kvm_bindings::kvm_lapic_state {
        let mut lapic = kvm_bindings::kvm_lapic_state { regs: [0; 1024] };
        for (offset, value) in [
            (LVT_TIMER, lvt_timer),
            (TIMER_INITIAL_COUNT, initial),
            (TIMER_CURRENT_COUNT, current),
        ] {
            for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
                lapic.regs[offset + i] = byte as i8;
            }
        }
        lapic
    }

    #[test]
    fn requested_vectors_and_due_timers_are_interrupts() {
        let short = Duration::from_millis(1);
        let masked = lapic(LVT_MASKED | 0x30, 0, 0);
        assert!(
            !interrupt_due(&masked, PERIOD * 10),
            "a masked timer never fires"
        );
        let mut with_irr = masked;
        with_irr.regs[IRR + 0x70 + 3] = i8::MIN; // vector 255
        assert!(interrupt_due(&with_irr, short));
        let mut isr_only = masked;
        isr_only.regs[0x100] = 1;
        assert!(!interrupt_due(&isr_only, PERIOD));
        let periodic = lapic(1 << TIMER_MODE_SHIFT | 0x30, 1000, 500);
        assert!(!interrupt_due(&periodic, short));
        assert!(interrupt_due(&periodic, PERIOD));
        assert!(
            interrupt_due(&lapic(0x30, 1000, 0), short),
            "an expired one-shot"
        );
        assert!(
            !interrupt_due(&lapic(0x30, 1000, 10), PERIOD),
            "a one-shot still counting"
        );
        assert!(
            !interrupt_due(&lapic(0x30, 0, 0), PERIOD),
            "a stopped one-shot"
        );
    }

    #[test]
    fn a_kick_ends_kvm_run_of_a_spinning_guest() {
        let memory = crate::guest_memory::GuestMemory::new(1 << 20).unwrap();
        memory.write(0x1000, &[0xeb, 0xfe]).unwrap(); // jmp $
        let (_vm, mut vcpu) = crate::vm::test_vm::real_mode_vcpu(&memory);
        let kicker = Kicker::start(1);
        kicker.register_current_thread(0);
        kicker.set_in_vtl0(0, true);
        let error = vcpu.run().err().map(|e| e.errno());
        kicker.set_in_vtl0(0, false);
        assert_eq!(error, Some(libc::EINTR));
    }
}

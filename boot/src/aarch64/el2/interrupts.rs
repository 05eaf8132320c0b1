//! The guest's interrupts: its GICv3 distributor and redistributors emulated
//! (`devices::vgic`, in `GuestDevices`), and what they hold for each guest CPU put into that
//! CPU's list registers (`arch::aarch64::gic::virtual_cpu`), where the guest's EL1 takes,
//! acknowledges and ends them through its own ICC_* registers without exiting.
//!
//! The list registers are brought up to date before every entry into the guest: those the
//! guest has ended go back to the model (`completed`), the virtual timer's line is sampled,
//! and free ones are filled, highest priority first.
//!
//! The virtual timer's own interrupt (PPI 27, which the EL1 virtual timer raises on the
//! physical GIC whatever EL runs) is Parapet's signal that the guest's timer is due: it ends
//! a run of the guest (physical interrupts go to EL2) or wakes its parked CPU, and is then
//! disabled until the guest has dealt with its timer (its condition gone), since the line
//! stays high until then.

use core::sync::atomic::{AtomicBool, Ordering};

use arch::aarch64::gic::virtual_cpu::{self, MAX_LIST_REGISTERS};
use arch::aarch64::registers;
use devices::vgic::CpuSet;
use kernel::executor::MAX_CPUS;

use super::devices::GuestDevices;

/// The EL1 virtual timer's PPI (the device tree's `<1 11 4>`: PPI 11 is INTID 27).
pub const VIRTUAL_TIMER_INTID: u32 = 27;
/// CNTV_CTL_EL0: ENABLE, IMASK, ISTATUS (Arm ARM D23.8.14).
const TIMER_ENABLE: u64 = 1 << 0;
const TIMER_IMASK: u64 = 1 << 1;
const TIMER_ISTATUS: u64 = 1 << 2;

/// Per CPU: PPI 27 fired and is disabled until the guest's timer condition is gone.
static TIMER_SIGNAL_OFF: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// From the IRQ handler: this CPU's guest has its virtual timer due. PPI 27 is disabled (its
/// line stays high until the guest acts) and the CPU's doorbell rung.
pub fn virtual_timer_fired() {
    let cpu = kernel::platform::cpu_index();
    set_timer_signal(false);
    if let Some(off) = TIMER_SIGNAL_OFF.get(cpu) {
        off.store(true, Ordering::Relaxed);
    }
    crate::guest::doorbell::ring(cpu);
}

/// Enables or disables PPI 27 on this CPU.
fn set_timer_signal(on: bool) {
    let gic = crate::machine::platform::gic();
    let Some(cpu) = crate::machine::percpu::gic_cpu() else {
        return;
    };
    // SAFETY: this CPU's own interface; the IRQ handler deals with PPI 27.
    unsafe {
        if on {
            gic.enable_private(cpu, VIRTUAL_TIMER_INTID);
        } else {
            gic.disable_private(cpu, VIRTUAL_TIMER_INTID);
        }
    }
}

/// What one guest CPU's list registers hold, as Parapet put it there.
pub struct ListRegisters {
    cpu: usize,
    count: usize,
    listed: [Option<u32>; MAX_LIST_REGISTERS],
}

impl ListRegisters {
    /// Guest CPU `cpu`'s, on this CPU, whose virtual interface is turned on, empty.
    pub fn new(cpu: usize) -> Self {
        // SAFETY: this CPU hosts guest CPU `cpu` from now on; its GICv3 interface exists (the
        // caller checked the GIC's version).
        unsafe { virtual_cpu::enable() };
        set_timer_signal(true);
        Self {
            cpu,
            count: virtual_cpu::list_register_count(),
            listed: [None; MAX_LIST_REGISTERS],
        }
    }

    /// Brings the list registers up to date with the model; returns the CPUs that may have
    /// something new to take (for the caller to kick).
    pub fn sync(&mut self, devices: &mut GuestDevices) -> CpuSet {
        devices.take_input();
        let mut kicks = devices.take_kicks();
        let vgic = devices.vgic();
        for (n, slot) in self.listed.iter_mut().enumerate().take(self.count) {
            let Some(intid) = *slot else { continue };
            let lr = virtual_cpu::read_lr(n);
            if lr & virtual_cpu::LR_STATE_MASK == virtual_cpu::LR_STATE_INVALID {
                // Ended by the guest.
                if let Ok(again) = vgic.completed(self.cpu, intid) {
                    kicks = kicks.union(again);
                }
                *slot = None;
            }
        }
        let timer = registers::cntv_ctl_el0();
        let due =
            timer & (TIMER_ENABLE | TIMER_IMASK | TIMER_ISTATUS) == TIMER_ENABLE | TIMER_ISTATUS;
        kicks = kicks.union(vgic.set_ppi_level(self.cpu, VIRTUAL_TIMER_INTID, due));
        // The guest dealt with its timer: the next expiry may signal again.
        if !due && TIMER_SIGNAL_OFF[self.cpu].swap(false, Ordering::Relaxed) {
            set_timer_signal(true);
        }
        for (n, slot) in self.listed.iter_mut().enumerate().take(self.count) {
            if slot.is_some() {
                continue;
            }
            let Some(next) = vgic.highest_deliverable(self.cpu) else {
                break;
            };
            if vgic.inject(self.cpu, next.intid).is_err() {
                break;
            }
            // SAFETY: a Group 1 interrupt of the guest's own, for its EL1.
            unsafe { virtual_cpu::write_lr(n, virtual_cpu::pending_lr(next.intid, next.priority)) };
            *slot = Some(next.intid);
        }
        kicks
    }

    /// Whether the guest has an interrupt waiting in a list register (it would take it at
    /// once: a WFI is over).
    pub fn guest_has_pending(&self) -> bool {
        (0..self.count).any(|n| {
            self.listed[n].is_some()
                && virtual_cpu::read_lr(n) & virtual_cpu::LR_STATE_MASK
                    == virtual_cpu::LR_STATE_PENDING
        })
    }
}

/// Makes the CPUs in `cpus` (other than this one) look at their list registers: out of the
/// guest if they are in it, awake if they wait (their doorbells).
pub fn kick(cpus: CpuSet) {
    let this = kernel::platform::cpu_index();
    let Some(platform) = kernel::platform::get() else {
        return;
    };
    for cpu in cpus.iter().filter(|&c| c != this) {
        crate::guest::doorbell::ring(cpu);
        (platform.kick)(cpu);
    }
}

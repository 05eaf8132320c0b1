//! What the guest's VPs share, each running on its own CPU: the I/O devices and I/O APIC, and
//! every VP's local APIC and start-up state, through which one VP's IPIs and the I/O APIC's
//! messages reach another. A VP that gets something to do while it runs in the guest is
//! kicked (a physical IPI to its CPU, which ends its VMRUN through the INTR intercept).
//!
//! Locks are taken in one order: devices, then the I/O APIC, then a local APIC; nothing that
//! holds a local APIC takes another lock.

use alloc::vec::Vec;

use devices::ioapic::{DeliveryMode as IoApicDelivery, DestinationMode, Interrupts, IoApic};
use devices::x2apic::{Delivery, Ipi, LocalApic};
use spin::Mutex;

use crate::machine::guest::devices::{GuestDevices, IOAPIC_ID};

/// Where a VP is in its life (Intel SDM Vol. 3A §9.4: INIT, then a start-up IPI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Startup {
    /// Running since the guest booted (the first VP), or since a start-up IPI.
    Running,
    /// Reset by INIT (or never started): start-up IPIs start it.
    WaitingForSipi,
    /// A start-up IPI came: the VP starts in real mode at `vector << 12`.
    StartAt(u8),
    /// Halted with interrupts disabled: an INIT makes it wait for a start-up IPI again.
    Stopped,
}

pub struct Vp {
    pub apic: Mutex<LocalApic>,
    pub startup: Mutex<Startup>,
}

pub struct Machine {
    pub devices: Mutex<GuestDevices>,
    pub ioapic: Mutex<IoApic>,
    /// VP n runs on CPU n.
    pub vps: Vec<Vp>,
}

/// The APIC timer's input clock. Any rate works: guests calibrate it against another clock.
pub const APIC_TIMER_HZ: u64 = 1_000_000_000;

impl Machine {
    /// `vps` VPs as after RESET: APIC ID = index, xAPIC mode, VP 0 the boot processor and
    /// running, the others waiting for INIT and a start-up IPI.
    pub fn new(devices: GuestDevices, vps: usize) -> Self {
        Self {
            devices: Mutex::new(devices),
            ioapic: Mutex::new(IoApic::new(IOAPIC_ID)),
            vps: (0..vps)
                .map(|i| Vp {
                    apic: Mutex::new(LocalApic::new_xapic(i as u8, APIC_TIMER_HZ).with_bsp(i == 0)),
                    startup: Mutex::new(if i == 0 {
                        Startup::Running
                    } else {
                        Startup::WaitingForSipi
                    }),
                })
                .collect(),
        }
    }

    /// Marks VP `index` stopped; returns whether every VP now is stopped or waits for a
    /// start-up IPI, that is, nothing in the guest runs that could wake any of them.
    pub fn stop(&self, index: usize) -> bool {
        *self.vps[index].startup.lock() = Startup::Stopped;
        self.vps.iter().all(|vp| {
            matches!(
                *vp.startup.lock(),
                Startup::Stopped | Startup::WaitingForSipi
            )
        })
    }

    /// Delivers an IPI VP `from` sent to every local APIC it reaches.
    pub fn send_ipi(&self, from: usize, ipi: Ipi) {
        for (index, vp) in self.vps.iter().enumerate() {
            let mut apic = vp.apic.lock();
            if !ipi.reaches_apic(&apic) {
                continue;
            }
            match ipi.delivery {
                Delivery::Fixed | Delivery::LowestPriority => {
                    apic.accept(ipi.vector);
                }
                Delivery::Init => {
                    apic.init_reset();
                    *vp.startup.lock() = Startup::WaitingForSipi;
                }
                Delivery::StartUp => {
                    let mut startup = vp.startup.lock();
                    // Ignored unless the VP waits for one (§9.4.4: the second SIPI of the
                    // INIT-SIPI-SIPI sequence finds the VP running).
                    if *startup == Startup::WaitingForSipi {
                        *startup = Startup::StartAt(ipi.vector);
                    }
                }
                other => {
                    log::info!("svm: VP {from} sent a {other:?} IPI to VP {index}; not delivered")
                }
            }
            drop(apic);
            if index != from {
                kick(index);
            }
        }
    }

    /// Hands the I/O APIC's messages to the local APICs they name.
    pub fn deliver(&self, interrupts: Interrupts) {
        for interrupt in interrupts.iter() {
            let mut delivered = false;
            for (index, vp) in self.vps.iter().enumerate() {
                let mut apic = vp.apic.lock();
                let ours = match interrupt.destination_mode {
                    _ if interrupt.destination == 0xff => true,
                    DestinationMode::Physical => u32::from(interrupt.destination) == apic.id(),
                    DestinationMode::Logical => {
                        u32::from(interrupt.destination) & (apic.ldr() >> 24) != 0
                    }
                };
                if !ours {
                    continue;
                }
                match interrupt.delivery {
                    IoApicDelivery::Fixed | IoApicDelivery::LowestPriority => {
                        if interrupt.level_triggered {
                            apic.accept_level(interrupt.vector);
                        } else {
                            apic.accept(interrupt.vector);
                        }
                        delivered = true;
                    }
                    other => {
                        log::info!("svm: the I/O APIC sent a {other:?} message; not delivered")
                    }
                }
                drop(apic);
                kick(index);
                // Lowest priority goes to one APIC: the first that matches.
                if delivered && interrupt.delivery == IoApicDelivery::LowestPriority {
                    break;
                }
            }
        }
    }

    /// Sets I/O APIC input `gsi` to `level`, delivering what that sends.
    pub fn set_irq_line(&self, gsi: u32, level: bool) {
        let mut ioapic = self.ioapic.lock();
        let sent = ioapic.set_irq_level(gsi, level);
        self.deliver(sent.into());
    }

    /// A level-triggered interrupt ended on some local APIC: the I/O APIC may send it again.
    pub fn eoi(&self, vector: u8) {
        let mut ioapic = self.ioapic.lock();
        let again = ioapic.eoi(vector);
        self.deliver(again);
    }
}

/// Makes the CPU running VP `index` look at its APIC: out of the guest if it is in it, awake
/// if the VP waits (its doorbell).
fn kick(index: usize) {
    if index == kernel::platform::cpu_index() {
        return;
    }
    crate::guest::doorbell::ring(index);
    if let Some(platform) = kernel::platform::get() {
        (platform.kick)(index);
    }
}

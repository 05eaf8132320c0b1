//! VTL0's device interrupts: Parapet emulates VTL0's I/O APIC (its window is an intercept,
//! the host keeping only the local APICs), routes its devices' lines through it, and asserts
//! what it sends into VTL0 with HvCallAssertVirtualInterrupt, as a paravisor that emulates a
//! guest's chipset does.
//!
//! What the hypervisor does not tell VTL2 is the local APIC's EOI. A level-triggered entry's
//! remote IRR therefore cannot wait for it: here it clears when the line drops, so each
//! assertion of the line is one interrupt. ISA devices (COM1) are edge-triggered, which is
//! exact.

use devices::ioapic::{self, DeliveryMode, DestinationMode, Interrupt, Interrupts, IoApic};
use hvdef::hypercall::{AssertVirtualInterrupt, InterruptType, PARTITION_SELF};
use hvdef::vtl::Vtl;
use spin::Mutex;

use crate::machine::guest::devices::{COM1_IRQ, IOAPIC_BASE, IOAPIC_ID};
use crate::machine::hv;

struct Chipset {
    ioapic: IoApic,
    /// The level COM1 last drove its line to.
    com1_level: bool,
}

static CHIPSET: Mutex<Option<Chipset>> = Mutex::new(None);

fn with_chipset<R>(f: impl FnOnce(&mut Chipset) -> R) -> R {
    let mut chipset = CHIPSET.lock();
    f(chipset.get_or_insert_with(|| Chipset {
        ioapic: IoApic::new(IOAPIC_ID),
        com1_level: false,
    }))
}

/// The offset in the I/O APIC's window of `gpa`, if it is there.
fn window_offset(gpa: u64) -> Option<u64> {
    gpa.checked_sub(IOAPIC_BASE)
        .filter(|&offset| offset < ioapic::WINDOW_SIZE)
}

/// A VTL0 read of `size` bytes at `gpa`, if it is the I/O APIC's.
pub fn mmio_read(gpa: u64, size: u8) -> Option<u64> {
    let offset = window_offset(gpa)?;
    Some(u64::from(with_chipset(|c| c.ioapic.read(offset, size))))
}

/// A VTL0 write at `gpa`; false if it is not the I/O APIC's.
pub fn mmio_write(gpa: u64, size: u8, value: u64) -> bool {
    let Some(offset) = window_offset(gpa) else {
        return false;
    };
    let sent = with_chipset(|c| c.ioapic.write(offset, size, value as u32));
    deliver(sent);
    true
}

/// COM1 drives its line (ISA IRQ 4, the I/O APIC's pin 4) to `level`; a change may send an
/// interrupt.
pub fn set_com1_line(level: bool) {
    let sent = with_chipset(|c| {
        if c.com1_level == level {
            return None;
        }
        c.com1_level = level;
        let pin = u32::from(COM1_IRQ);
        let sent = c.ioapic.set_irq_level(pin, level);
        if !level {
            // The line dropped: a level-triggered entry may send again (see above).
            let entry = c.ioapic.entry(usize::from(COM1_IRQ)).unwrap_or(0);
            if entry & ioapic::RTE_LEVEL != 0 {
                let _ = c.ioapic.eoi((entry & ioapic::RTE_VECTOR) as u8);
            }
        }
        sent
    });
    deliver(sent.into());
}

/// Asserts each interrupt into VTL0.
fn deliver(interrupts: Interrupts) {
    for interrupt in interrupts.iter() {
        let Some(input) = assertion(&interrupt) else {
            log::info!(
                "hv_vtl: the I/O APIC sent {interrupt:?}, which VTL0 cannot be sent; dropped"
            );
            continue;
        };
        let status = hv::simple_call(
            hvdef::hypercall::code::ASSERT_VIRTUAL_INTERRUPT,
            &input.encode(),
        );
        if !status.is_success() {
            log::warn!(
                "hv_vtl: AssertVirtualInterrupt of vector {:#x} into VTL0 failed: status {:#x}",
                interrupt.vector,
                status.0
            );
        }
    }
}

/// The HvCallAssertVirtualInterrupt input that delivers `interrupt` to VTL0; `None` for an
/// ExtINT, whose vector only an 8259 PIC could supply, and VTL0 has none.
fn assertion(interrupt: &Interrupt) -> Option<AssertVirtualInterrupt> {
    let interrupt_type = match interrupt.delivery {
        DeliveryMode::Fixed => InterruptType::Fixed,
        DeliveryMode::LowestPriority => InterruptType::LowestPriority,
        DeliveryMode::Nmi => InterruptType::Nmi,
        DeliveryMode::Init => InterruptType::Init,
        DeliveryMode::ExtInt => return None,
    };
    Some(AssertVirtualInterrupt {
        partition_id: PARTITION_SELF,
        interrupt_type,
        level_triggered: interrupt.level_triggered,
        logical_destination: interrupt.destination_mode == DestinationMode::Logical,
        destination: u64::from(interrupt.destination),
        vector: u32::from(interrupt.vector),
        target_vtl: Vtl::Vtl0,
    })
}

//! The devices Parapet emulates for its guest: COM1 (a 16550A, whose output reaches Parapet's
//! console with a prefix naming the guest, `vtl0| ` or `guest| `), the power port, where
//! the guest reports how it ended in the isa-debug-exit protocol (0x10 success), and the 8254
//! PIT with port 0x61 (what OSes calibrate their clocks against). svm sends Parapet every
//! port the guest touches; hv_vtl intercepts the ranges of [`GuestDevices::intercepted_ranges`].

use devices::pit::Pit;
use devices::uart16550::emulator::Uart16550Emulator;

use crate::guest::console::GuestConsole;

pub const COM1_BASE: u16 = 0x3f8;
pub const COM1_LAST: u16 = 0x3ff;
/// COM1's ISA IRQ, which is also its I/O APIC input (GSI).
pub const COM1_IRQ: u8 = 4;
pub const POWER_PORT: u16 = 0xf4;
const POWER_SUCCESS: u32 = 0x10;
/// The I/O APIC, where PCs have it; its ID is the top of the 82093AA's 4-bit ID field, clear
/// of the CPUs' APIC IDs.
pub const IOAPIC_BASE: u64 = devices::ioapic::DEFAULT_BASE;
pub const IOAPIC_ID: u8 = 15;
/// The ACPI hardware-reduced sleep control and status registers and the reset register
/// (ACPI 6.5 §4.8.3.6-7) the FADT names (`abi::acpi_tables::PowerPorts`): one byte each,
/// at ports no PC device uses.
pub const SLEEP_CONTROL_PORT: u16 = 0x600;
pub const SLEEP_STATUS_PORT: u16 = 0x601;
pub const RESET_PORT: u16 = 0x602;

/// The 8254's counters and mode register, and port 0x61 (channel 2's gate and output), as
/// `Pit::claims` takes them.
const PIT_FIRST: u16 = 0x40;
const PIT_LAST: u16 = 0x43;
const PORT_61: u16 = 0x61;

/// What the guest asked of the machine by a port write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortEffect {
    None,
    PowerOff { success: bool },
}

pub struct GuestDevices {
    com1: Uart16550Emulator,
    console: GuestConsole,
    pit: Pit,
}

impl GuestDevices {
    pub fn new(prefix: &'static str) -> Self {
        Self {
            com1: Uart16550Emulator::new(),
            console: GuestConsole::new(prefix),
            pit: Pit::new(),
        }
    }

    /// The ports the guest must not reach on the host: (first, last).
    pub fn intercepted_ranges() -> [(u16, u16); 5] {
        [
            (COM1_BASE, COM1_LAST),
            (POWER_PORT, POWER_PORT),
            (SLEEP_CONTROL_PORT, RESET_PORT),
            (PIT_FIRST, PIT_LAST),
            (PORT_61, PORT_61),
        ]
    }

    /// An IN of `size` bytes at `port`. COM1's registers are 8-bit: a wider access reads
    /// each byte lane from the next register, as on an ISA bus.
    pub fn read(&mut self, port: u16, size: u8) -> u32 {
        let mut value = 0u32;
        for lane in 0..u16::from(size.min(4)) {
            let byte = match port.checked_add(lane) {
                Some(p @ COM1_BASE..=COM1_LAST) => self.com1.read((p - COM1_BASE) as u8),
                Some(p) if Pit::claims(p) => self.pit.read_port(p, kernel::platform::now_ns()),
                // No wake event ever happened: WAK_STS stays clear.
                Some(SLEEP_STATUS_PORT) => 0,
                _ => 0xff, // nothing answers: the bus floats high
            };
            value |= u32::from(byte) << (8 * lane);
        }
        value
    }

    /// An OUT of the low `size` bytes of `value` at `port`.
    pub fn write(&mut self, port: u16, size: u8, value: u32) -> PortEffect {
        if port == POWER_PORT {
            let success = value == POWER_SUCCESS;
            return PortEffect::PowerOff { success };
        }
        if let Some(effect) = acpi_power(port, value as u8) {
            return effect;
        }
        for lane in 0..u16::from(size.min(4)) {
            let byte = (value >> (8 * lane)) as u8;
            match port.checked_add(lane) {
                Some(p @ COM1_BASE..=COM1_LAST) => self.com1.write((p - COM1_BASE) as u8, byte),
                Some(p) if Pit::claims(p) => {
                    self.pit.write_port(p, byte, kernel::platform::now_ns())
                }
                _ => {}
            }
        }
        self.drain_output();
        PortEffect::None
    }

    /// Moves what was typed on Parapet's console into COM1's receive FIFO, as far as it has
    /// room.
    pub fn take_input(&mut self) {
        let room = self.com1.receive_room();
        crate::guest::console::take_input(room, |bytes| self.com1.receive(bytes));
    }

    /// Whether COM1's interrupt line is asserted (ISA IRQ 4; OUT2 gates it, as on PCs).
    pub fn com1_interrupt(&self) -> bool {
        self.com1.interrupt_asserted()
    }

    /// Moves what the guest transmitted to the console.
    fn drain_output(&mut self) {
        for byte in self.com1.drain_transmitted() {
            self.console.push(byte);
        }
    }

    /// Prints the pending partial line (also on power-off, so nothing is lost).
    pub fn flush_line(&mut self) {
        self.console.flush_line();
    }

    pub fn has_partial_line(&self) -> bool {
        self.console.has_partial_line()
    }
}

/// A write to the ACPI sleep or reset register: S5 is a power-off the guest chose (success);
/// a reset ends the run as a failure, since Parapet does not restart its guest and an OS that
/// resets unasked has usually panicked. Other sleep states are not offered: ignored.
fn acpi_power(port: u16, value: u8) -> Option<PortEffect> {
    use abi::acpi_tables::{
        RESET_VALUE, S5_SLEEP_TYPE, SLEEP_CONTROL_SLP_EN, SLEEP_CONTROL_SLP_TYP_MASK,
        SLEEP_CONTROL_SLP_TYP_SHIFT,
    };
    match port {
        SLEEP_CONTROL_PORT if value & SLEEP_CONTROL_SLP_EN != 0 => {
            let sleep_type = (value & SLEEP_CONTROL_SLP_TYP_MASK) >> SLEEP_CONTROL_SLP_TYP_SHIFT;
            if sleep_type == S5_SLEEP_TYPE {
                log::info!("the guest entered ACPI S5 (soft off)");
                return Some(PortEffect::PowerOff { success: true });
            }
            log::info!("the guest asked for ACPI sleep type {sleep_type}, not offered; ignored");
            Some(PortEffect::None)
        }
        RESET_PORT if value == RESET_VALUE => {
            log::warn!("the guest reset the machine through ACPI; Parapet does not restart it");
            Some(PortEffect::PowerOff { success: false })
        }
        SLEEP_CONTROL_PORT..=RESET_PORT => Some(PortEffect::None),
        _ => None,
    }
}

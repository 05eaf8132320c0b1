//! The devices Parapet emulates for its aarch64 guest, where QEMU's virt board has its own so
//! guests find them where they expect (`abi::arm64_boot::qemu_virt`): a PL011 at 0x0900_0000,
//! whose output reaches Parapet's console prefixed `guest| ` and whose interrupt is SPI 1,
//! and a GICv3 distributor and redistributors (`devices::vgic`). When the guest has a TPM,
//! a PL061 at 0x0903_0000 (SPI 7) carries its SPI bus, or (`parapet.tpm=tis-mmio`) its
//! registers are at 0x0c00_0000; either lives with the TPM (`guest::tpm`), outside this
//! lock, and only the PL061's interrupt line comes here. Everything
//! else the guest touches outside its RAM has nothing behind it.

use devices::gpio_spi;
use devices::pl011::{self, emulator::Pl011Emulator};
use devices::vgic::{CpuSet, VGic};
use isolation::exit::MmioAccess;

use crate::guest::console::GuestConsole;

/// The guest's PL011 frame and its interrupt (SPI 1, INTID 33).
pub const UART_BASE: u64 = abi::arm64_boot::qemu_virt::UART_BASE;
pub const UART_SIZE: u64 = abi::arm64_boot::qemu_virt::UART_SIZE;
pub const UART_SPI: u32 = abi::arm64_boot::qemu_virt::UART_SPI;
const UART_INTID: u32 = 32 + UART_SPI;
/// The guest's GICv3 distributor and first redistributor.
pub const GICD_BASE: u64 = abi::arm64_boot::qemu_virt::GICD_BASE;
pub const GICR_BASE: u64 = abi::arm64_boot::qemu_virt::GICR_BASE;
/// The guest's PL061, which carries the TPM's SPI bus.
pub const GPIO_BASE: u64 = abi::arm64_boot::qemu_virt::GPIO_BASE;
pub const GPIO_SIZE: u64 = abi::arm64_boot::qemu_virt::GPIO_SIZE;
pub const GPIO_SPI: u32 = abi::arm64_boot::qemu_virt::GPIO_SPI;
const GPIO_INTID: u32 = 32 + GPIO_SPI;
/// SPIs the guest's distributor implements: one block of 32 holds the UART's and the GPIO's.
const SPI_COUNT: u32 = 32;

/// The memory-mapped TPM's window (`parapet.tpm=tis-mmio`): where QEMU's `virt` puts its
/// own `tpm-tis-device` (the platform bus at 0x0c00_0000), five 4 KiB localities.
pub const TIS_BASE: u64 = 0x0c00_0000;
pub const TIS_SIZE: u64 = 0x5000;

/// The guest's TPM as its device tree describes it, with its event log's area if it has one.
pub fn tpm_description(
    kind: crate::guest::tpm::Kind,
    event_log: Option<(u64, u32)>,
) -> abi::arm64_boot::GuestTpm {
    use abi::arm64_boot::{GpioSpiTpm, GuestTpm, TpmInterface};
    let interface = match kind {
        crate::guest::tpm::Kind::GpioSpi => TpmInterface::GpioSpi(GpioSpiTpm {
            gpio_base: GPIO_BASE,
            gpio_size: GPIO_SIZE,
            gpio_spi: GPIO_SPI,
            clock_pin: u32::from(gpio_spi::pins::CLOCK),
            mosi_pin: u32::from(gpio_spi::pins::MOSI),
            miso_pin: u32::from(gpio_spi::pins::MISO),
            chip_select_pin: u32::from(gpio_spi::pins::CHIP_SELECT),
        }),
        crate::guest::tpm::Kind::TisMmio => TpmInterface::TisMmio {
            base: TIS_BASE,
            size: TIS_SIZE,
        },
    };
    GuestTpm {
        interface,
        event_log,
    }
}

/// The offset of `gpa` in the memory-mapped TPM's window, if it is there.
pub fn tis_offset(gpa: u64) -> Option<u64> {
    gpa.checked_sub(TIS_BASE).filter(|&o| o < TIS_SIZE)
}

/// The offset of `gpa` in the PL061's frame, if it is there.
pub fn gpio_offset(gpa: u64) -> Option<u64> {
    gpa.checked_sub(GPIO_BASE).filter(|&o| o < GPIO_SIZE)
}

pub struct GuestDevices {
    uart: Pl011Emulator,
    console: GuestConsole,
    vgic: VGic,
    /// CPUs an access made something deliverable for, to be kicked once the lock is gone.
    kicks: CpuSet,
}

impl GuestDevices {
    /// For `cpus` guest CPUs, CPU n with affinity n. The UART starts as boot firmware leaves
    /// it (enabled, 8 bits, FIFOs on), so a guest console that does not set it up itself
    /// (Linux's earlycon) can print at once.
    pub fn new(cpus: usize) -> Self {
        let mut uart = Pl011Emulator::new();
        uart.write(
            u64::from(pl011::registers::LCR_H),
            4,
            pl011::registers::LCR_H_8BIT_FIFO,
        );
        let enable =
            pl011::registers::CR_UARTEN | pl011::registers::CR_TXE | pl011::registers::CR_RXE;
        uart.write(u64::from(pl011::registers::CR), 4, enable);
        let affinities: alloc::vec::Vec<u32> = (0..cpus as u32).collect();
        Self {
            uart,
            console: GuestConsole::new("guest"),
            vgic: VGic::new(&affinities, SPI_COUNT),
            kicks: CpuSet::default(),
        }
    }

    /// An access of `size` bytes at `gpa`: the value read (or 0 for a write) when a device
    /// answers, `None` when nothing is there.
    pub fn access(&mut self, gpa: u64, size: u8, access: MmioAccess) -> Option<u64> {
        if let Some(offset) = gpa
            .checked_sub(GICD_BASE)
            .filter(|&o| o < abi::arm64_boot::GICD_SIZE)
        {
            return Some(match access {
                MmioAccess::Read { .. } => self.vgic.read_distributor(offset, size),
                MmioAccess::Write(value) => {
                    let kicks = self.vgic.write_distributor(offset, size, value);
                    self.kicks = self.kicks.union(kicks);
                    0
                }
            });
        }
        if let Some(offset) = gpa
            .checked_sub(GICR_BASE)
            .filter(|&o| o < self.vgic.redistributor_region_size())
        {
            return Some(match access {
                MmioAccess::Read { .. } => self.vgic.read_redistributor(offset, size),
                MmioAccess::Write(value) => {
                    let kicks = self.vgic.write_redistributor(offset, size, value);
                    self.kicks = self.kicks.union(kicks);
                    0
                }
            });
        }
        let offset = gpa.checked_sub(UART_BASE).filter(|&o| o < UART_SIZE)?;
        let value = match access {
            MmioAccess::Read { .. } => u64::from(self.uart.read(offset, size)),
            MmioAccess::Write(value) => {
                self.uart.write(offset, size, value as u32);
                for byte in self.uart.drain_transmitted() {
                    self.console.push(byte);
                }
                0
            }
        };
        // The UART's line follows what the access did to it.
        let kicks = self
            .vgic
            .set_spi_level(UART_INTID, self.uart.interrupt_asserted());
        self.kicks = self.kicks.union(kicks);
        Some(value)
    }

    /// The PL061's interrupt line is at `asserted` (after an access to it).
    pub fn set_gpio_interrupt(&mut self, asserted: bool) {
        let kicks = self.vgic.set_spi_level(GPIO_INTID, asserted);
        self.kicks = self.kicks.union(kicks);
    }

    /// Moves what was typed on Parapet's console into the UART's receive FIFO, as far as it
    /// has room, and updates the UART's interrupt line.
    pub fn take_input(&mut self) {
        let room = self.uart.receive_room();
        crate::guest::console::take_input(room, |bytes| self.uart.receive(bytes));
        let kicks = self
            .vgic
            .set_spi_level(UART_INTID, self.uart.interrupt_asserted());
        self.kicks = self.kicks.union(kicks);
    }

    /// The guest's interrupt controller.
    pub fn vgic(&mut self) -> &mut VGic {
        &mut self.vgic
    }

    /// The CPUs accesses since the last call made something deliverable for.
    pub fn take_kicks(&mut self) -> CpuSet {
        core::mem::take(&mut self.kicks)
    }

    /// Prints a partial last line (at power-off, so nothing is lost).
    pub fn flush(&mut self) {
        if self.console.has_partial_line() {
            self.console.flush_line();
        }
    }
}

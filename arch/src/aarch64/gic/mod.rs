//! The Arm Generic Interrupt Controller, version 2 (memory-mapped CPU interface) or 3
//! (system-register CPU interface), behind one interface: Parapet uses it for its own timer
//! tick and for SGIs between CPUs.

pub mod v2;
pub mod v3;
pub mod virtual_cpu;

use crate::aarch64::devicetree::GicDescription;

/// INTID returned by an acknowledge when nothing is pending (GICv2 and v3: 1023).
pub const SPURIOUS: u32 = 1023;

/// The machine's interrupt controller, as the device tree describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    V2 {
        distributor: u64,
        cpu_interface: u64,
    },
    V3 {
        distributor: u64,
        redistributors: (u64, u64),
    },
}

impl From<GicDescription> for Gic {
    fn from(d: GicDescription) -> Self {
        match d {
            GicDescription::V2 {
                distributor,
                cpu_interface,
            } => Gic::V2 {
                distributor,
                cpu_interface,
            },
            GicDescription::V3 {
                distributor,
                redistributors,
            } => Gic::V3 {
                distributor,
                redistributors,
            },
        }
    }
}

/// One CPU's view of the controller, from [`Gic::init_cpu`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicCpu {
    /// How other CPUs address this one for SGIs: the MPIDR on v3, the CPU-interface bit on v2.
    pub sgi_target: u64,
    /// This CPU's redistributor (RD_base) on v3; unused on v2.
    redistributor: u64,
}

impl Gic {
    /// Enables the distributor. Once, on the boot CPU.
    ///
    /// # Safety
    /// The distributor must be mapped as device memory.
    pub unsafe fn init_distributor(&self) {
        // SAFETY: forwarded to the caller.
        unsafe {
            match *self {
                Gic::V2 { distributor, .. } => v2::init_distributor(distributor),
                Gic::V3 { distributor, .. } => v3::init_distributor(distributor),
            }
        }
    }

    /// Sets up this CPU's interface (and redistributor on v3). `None` when the controller has
    /// nothing for this CPU.
    ///
    /// # Safety
    /// The registers must be mapped; call once per CPU with IRQs masked.
    pub unsafe fn init_cpu(&self) -> Option<GicCpu> {
        // SAFETY: forwarded to the caller.
        unsafe {
            match *self {
                Gic::V2 {
                    distributor,
                    cpu_interface,
                } => v2::init_cpu(distributor, cpu_interface),
                Gic::V3 { redistributors, .. } => v3::init_cpu(redistributors),
            }
        }
    }

    /// Enables SGI/PPI `intid` (0-31) for this CPU, which `cpu` describes.
    ///
    /// # Safety
    /// `cpu` must be what `init_cpu` returned on this CPU, and the vectors must handle the
    /// interrupt.
    pub unsafe fn enable_private(&self, cpu: &GicCpu, intid: u32) {
        // SAFETY: forwarded to the caller.
        unsafe {
            match *self {
                Gic::V2 { distributor, .. } => v2::enable_private(distributor, intid),
                Gic::V3 { .. } => v3::enable_private(cpu.redistributor, intid),
            }
        }
    }

    /// Disables SGI/PPI `intid` (0-31) for this CPU, which `cpu` describes.
    ///
    /// # Safety
    /// `cpu` must be what `init_cpu` returned on this CPU.
    pub unsafe fn disable_private(&self, cpu: &GicCpu, intid: u32) {
        // SAFETY: forwarded to the caller.
        unsafe {
            match *self {
                Gic::V2 { distributor, .. } => v2::disable_private(distributor, intid),
                Gic::V3 { .. } => v3::disable_private(cpu.redistributor, intid),
            }
        }
    }

    /// Acknowledges the pending interrupt: its INTID, or [`SPURIOUS`].
    ///
    /// # Safety
    /// The caller must pass the INTID to [`end_of_interrupt`](Self::end_of_interrupt) once
    /// handled (unless spurious).
    pub unsafe fn acknowledge(&self) -> u32 {
        // SAFETY: forwarded to the caller.
        unsafe {
            match *self {
                Gic::V2 { cpu_interface, .. } => v2::acknowledge(cpu_interface),
                Gic::V3 { .. } => v3::acknowledge(),
            }
        }
    }

    /// Ends interrupt `intid` (drops priority and deactivates it).
    pub fn end_of_interrupt(&self, intid: u32) {
        match *self {
            Gic::V2 { cpu_interface, .. } => v2::end_of_interrupt(cpu_interface, intid),
            Gic::V3 { .. } => v3::end_of_interrupt(intid),
        }
    }

    /// Sends SGI `intid` (0-15) to the CPU whose [`GicCpu::sgi_target`] is `target`.
    ///
    /// # Safety
    /// The target's vectors must handle the SGI.
    pub unsafe fn send_sgi(&self, target: u64, intid: u32) {
        // SAFETY: forwarded to the caller.
        unsafe {
            match *self {
                Gic::V2 { distributor, .. } => v2::send_sgi(distributor, target, intid),
                Gic::V3 { .. } => v3::send_sgi(target, intid),
            }
        }
    }

    /// Register ranges (base, size) to map as device memory.
    pub fn register_ranges(&self) -> [(u64, u64); 2] {
        match *self {
            Gic::V2 {
                distributor,
                cpu_interface,
            } => [
                (distributor, v2::DISTRIBUTOR_SIZE),
                (cpu_interface, v2::CPU_INTERFACE_SIZE),
            ],
            Gic::V3 {
                distributor,
                redistributors,
            } => [(distributor, v3::DISTRIBUTOR_SIZE), redistributors],
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Gic::V2 { .. } => 2,
            Gic::V3 { .. } => 3,
        }
    }
}

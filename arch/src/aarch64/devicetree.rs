//! What Parapet needs from the flattened device tree a loader passes in x0 (Devicetree
//! Specification v0.4; bindings: `arm,gic-v3`, `arm,armv8-timer`, `arm,pl011`, `arm,psci`).
//!
//! One walk over the blob picks out the few facts boot needs and checks them, so the rest of
//! boot works from plain numbers.

use super::fdt::{as_str, cell, cells, is_compatible, Fdt, Token, MAX_DEPTH};
use crate::memory_map::{MemoryMap, RegionKind};

pub const MAX_CPUS: usize = 64;
/// Reserved ranges kept; a tree with more is refused rather than half-honoured.
pub const MAX_RESERVED: usize = 16;

/// How PSCI calls reach the firmware that implements them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    Smc,
    Hvc,
}

/// The interrupt controller's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicDescription {
    /// `arm,gic-400`, `arm,cortex-a15-gic`: distributor and CPU interface frames.
    V2 {
        distributor: u64,
        cpu_interface: u64,
    },
    /// `arm,gic-v3`: distributor and the (first) redistributor region (base, size).
    V3 {
        distributor: u64,
        redistributors: (u64, u64),
    },
}

const GIC_V2_COMPATIBLE: [&str; 3] = ["arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a7-gic"];

#[derive(Clone, Debug)]
pub struct Platform<'a> {
    pub memory: MemoryMap,
    /// MPIDR affinity values of the CPUs, in tree order.
    pub cpus: [u64; MAX_CPUS],
    pub cpu_count: usize,
    pub uart: Option<u64>,
    pub gic: GicDescription,
    /// INTID of the EL2 physical timer (CNTHP): the fourth `interrupts` entry of the timer.
    pub hyp_timer_intid: u32,
    pub psci: Option<PsciConduit>,
    pub bootargs: &'a str,
    pub initrd: Option<(u64, u64)>,
    /// Memory the loader keeps, (start, size): the reservation block and `/reserved-memory`'s
    /// children (spec §3.5). Parapet must not hand it out.
    pub reserved: [(u64, u64); MAX_RESERVED],
    pub reserved_count: usize,
    /// Size of the blob, to keep it out of the frame allocator.
    pub total_size: usize,
}

impl Platform<'_> {
    pub fn cpus(&self) -> &[u64] {
        &self.cpus[..self.cpu_count]
    }

    pub fn reserved(&self) -> &[(u64, u64)] {
        &self.reserved[..self.reserved_count]
    }

    fn reserve(&mut self, start: u64, size: u64) -> Result<(), DeviceTreeError> {
        let slot = self
            .reserved
            .get_mut(self.reserved_count)
            .ok_or(DeviceTreeError::Bad("reserved memory (too many ranges)"))?;
        *slot = (start, size);
        self.reserved_count += 1;
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceTreeError {
    Malformed,
    Missing(&'static str),
    Bad(&'static str),
}

impl core::fmt::Display for DeviceTreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DeviceTreeError::Malformed => write!(f, "the device tree blob is malformed"),
            DeviceTreeError::Missing(what) => write!(f, "the device tree has no {what}"),
            DeviceTreeError::Bad(what) => write!(f, "the device tree's {what} is malformed"),
        }
    }
}

/// GIC interrupt specifier types (GIC binding: 0 = SPI, 1 = PPI).
const GIC_PPI: u32 = 1;
/// PPIs are INTIDs 16-31.
const PPI_BASE: u32 = 16;

/// A node being read: the properties we care about, and the cell sizes its parent set.
#[derive(Clone, Copy, Default)]
struct Node<'a> {
    name: &'a str,
    /// Cell sizes of this node's `reg` (set by the parent).
    reg_cells: (usize, usize),
    /// Cell sizes this node sets for its children (spec defaults: 2 and 1).
    child_cells: (usize, usize),
    compatible: &'a [u8],
    reg: &'a [u8],
    device_type: &'a [u8],
    interrupts: &'a [u8],
    interrupt_cells: Option<usize>,
    method: &'a [u8],
    disabled: bool,
    bootargs: Option<&'a str>,
    initrd_start: &'a [u8],
    initrd_end: &'a [u8],
}

impl<'a> Node<'a> {
    /// Entry `i` of `reg` as (address, size).
    fn reg(&self, i: usize) -> Option<(u64, u64)> {
        let (a, s) = self.reg_cells;
        let at = i * (a + s);
        Some((
            cells(self.reg, at, a)?,
            if s == 0 {
                0
            } else {
                cells(self.reg, at + a, s)?
            },
        ))
    }

    fn reg_count(&self) -> usize {
        let per = (self.reg_cells.0 + self.reg_cells.1).max(1);
        self.reg.len() / 4 / per
    }
}

/// Parses the blob in `bytes`.
pub fn parse(bytes: &[u8]) -> Result<Platform<'_>, DeviceTreeError> {
    let fdt = Fdt::new(bytes).map_err(|_| DeviceTreeError::Malformed)?;
    let mut p = Platform {
        memory: MemoryMap::new(),
        cpus: [0; MAX_CPUS],
        cpu_count: 0,
        uart: None,
        gic: GicDescription::V3 {
            distributor: 0,
            redistributors: (0, 0),
        },
        hyp_timer_intid: 0,
        psci: None,
        bootargs: "",
        initrd: None,
        reserved: [(0, 0); MAX_RESERVED],
        reserved_count: 0,
        total_size: fdt.total_size,
    };
    let mut error = None;
    fdt.reservations(|start, size| {
        if let Err(e) = p.reserve(start, size) {
            error = Some(e);
        }
    })
    .map_err(|_| DeviceTreeError::Malformed)?;
    let mut stack = [Node::default(); MAX_DEPTH + 1];
    let mut depth = 0usize;
    let mut gic_interrupt_cells = 3;
    let mut timer_interrupts: &[u8] = &[];
    let mut have_gic = false;

    fdt.walk(|token| match token {
        Token::Begin(name) => {
            let parent_cells = if depth == 0 {
                (2, 1)
            } else {
                stack[depth].child_cells
            };
            depth += 1;
            stack[depth] = Node {
                name,
                reg_cells: parent_cells,
                child_cells: (2, 1),
                ..Node::default()
            };
        }
        Token::Property { name, value } => {
            let node = &mut stack[depth];
            match name {
                "compatible" => node.compatible = value,
                "reg" => node.reg = value,
                "device_type" => node.device_type = value,
                "interrupts" => node.interrupts = value,
                "method" => node.method = value,
                "status" => node.disabled = as_str(value).is_some_and(|s| s != "okay" && s != "ok"),
                "bootargs" => node.bootargs = as_str(value),
                "linux,initrd-start" => node.initrd_start = value,
                "linux,initrd-end" => node.initrd_end = value,
                "#address-cells" => node.child_cells.0 = cell(value, 0).map_or(2, |c| c as usize),
                "#size-cells" => node.child_cells.1 = cell(value, 0).map_or(1, |c| c as usize),
                "#interrupt-cells" => node.interrupt_cells = cell(value, 0).map(|c| c as usize),
                _ => {}
            }
        }
        Token::End => {
            let node = stack[depth];
            let parent = if depth > 1 { stack[depth - 1].name } else { "" };
            depth = depth.saturating_sub(1);
            if node.disabled || error.is_some() {
                return;
            }
            let is_memory =
                node.device_type == b"memory\0" || (depth == 1 && node.name.starts_with("memory"));
            if parent == "reserved-memory" && depth == 2 {
                for i in 0..node.reg_count() {
                    match node.reg(i).map(|(start, size)| p.reserve(start, size)) {
                        Some(Ok(())) => {}
                        Some(Err(e)) => error = Some(e),
                        None => error = Some(DeviceTreeError::Bad("reserved-memory reg")),
                    }
                }
            } else if is_memory {
                for i in 0..node.reg_count() {
                    match node.reg(i) {
                        Some((start, size)) if p.memory.push(start, size, RegionKind::Ram) => {}
                        _ => error = Some(DeviceTreeError::Bad("memory node")),
                    }
                }
            } else if parent == "cpus"
                && (node.device_type == b"cpu\0" || node.name.starts_with("cpu@"))
            {
                match cells(node.reg, 0, node.reg_cells.0) {
                    Some(mpidr) if p.cpu_count < MAX_CPUS => {
                        p.cpus[p.cpu_count] = mpidr;
                        p.cpu_count += 1;
                    }
                    Some(_) => {}
                    None => error = Some(DeviceTreeError::Bad("cpu reg")),
                }
            } else if is_compatible(node.compatible, "arm,pl011") {
                p.uart = p.uart.or(node.reg(0).map(|r| r.0));
            } else if is_compatible(node.compatible, "arm,gic-v3") {
                match (node.reg(0), node.reg(1)) {
                    (Some(d), Some(r)) if !have_gic => {
                        p.gic = GicDescription::V3 {
                            distributor: d.0,
                            redistributors: r,
                        };
                        gic_interrupt_cells = node.interrupt_cells.unwrap_or(3);
                        have_gic = true;
                    }
                    (Some(_), Some(_)) => {}
                    _ => error = Some(DeviceTreeError::Bad("GIC reg")),
                }
            } else if GIC_V2_COMPATIBLE
                .iter()
                .any(|c| is_compatible(node.compatible, c))
            {
                match (node.reg(0), node.reg(1)) {
                    (Some(d), Some(c)) if !have_gic => {
                        p.gic = GicDescription::V2 {
                            distributor: d.0,
                            cpu_interface: c.0,
                        };
                        gic_interrupt_cells = node.interrupt_cells.unwrap_or(3);
                        have_gic = true;
                    }
                    (Some(_), Some(_)) => {}
                    _ => error = Some(DeviceTreeError::Bad("GIC reg")),
                }
            } else if is_compatible(node.compatible, "arm,armv8-timer") {
                timer_interrupts = node.interrupts;
            } else if ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
                .iter()
                .any(|c| is_compatible(node.compatible, c))
            {
                p.psci = match as_str(node.method) {
                    Some("smc") => Some(PsciConduit::Smc),
                    Some("hvc") => Some(PsciConduit::Hvc),
                    _ => None,
                };
            } else if depth == 1 && node.name == "chosen" {
                p.bootargs = node.bootargs.unwrap_or("");
                let start = cells(node.initrd_start, 0, node.initrd_start.len() / 4);
                let end = cells(node.initrd_end, 0, node.initrd_end.len() / 4);
                p.initrd = start.zip(end).filter(|(s, e)| e > s);
            }
        }
    })
    .map_err(|_| DeviceTreeError::Malformed)?;

    if let Some(e) = error {
        return Err(e);
    }
    if p.memory.ram_bytes() == 0 {
        return Err(DeviceTreeError::Missing("memory"));
    }
    if p.cpu_count == 0 {
        return Err(DeviceTreeError::Missing("cpus"));
    }
    if !have_gic {
        return Err(DeviceTreeError::Missing(
            "GICv2 or GICv3 interrupt controller",
        ));
    }
    if timer_interrupts.is_empty() {
        return Err(DeviceTreeError::Missing("architected timer"));
    }
    // Entries: secure phys, non-secure phys, virtual, hypervisor (timer binding).
    let kind = cell(timer_interrupts, 3 * gic_interrupt_cells)
        .ok_or(DeviceTreeError::Bad("timer interrupts"))?;
    let number = cell(timer_interrupts, 3 * gic_interrupt_cells + 1)
        .ok_or(DeviceTreeError::Bad("timer interrupts"))?;
    if kind != GIC_PPI || number > 15 {
        return Err(DeviceTreeError::Bad("hypervisor timer interrupt"));
    }
    p.hyp_timer_intid = PPI_BASE + number;
    Ok(p)
}

/// The blob's total size from its header (big-endian word 1): what the loader set aside.
pub fn header_total_size(header: &[u8]) -> Option<usize> {
    let word = |at: usize| Some(u32::from_be_bytes(header.get(at..at + 4)?.try_into().ok()?));
    (word(0)? == 0xd00d_feed)
        .then(|| word(4).map(|v| v as usize))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dumped from `qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -smp 2 -m 256
    /// -append parapet.log=debug` (with an empty -initrd), then packed.
    const QEMU_VIRT: &[u8] = include_bytes!("../../tests/data/qemu-virt-gicv3-smp2.dtb");

    #[test]
    fn reads_qemu_virt() {
        let p = parse(QEMU_VIRT).unwrap();
        assert_eq!(p.memory.regions().len(), 1);
        assert_eq!(p.memory.regions()[0].start, 0x4000_0000);
        assert_eq!(p.memory.ram_bytes(), 256 << 20);
        assert_eq!(p.cpus(), &[0, 1]);
        assert_eq!(p.uart, Some(0x0900_0000));
        assert!(matches!(
            p.gic,
            GicDescription::V3 {
                distributor: 0x0800_0000,
                redistributors: (0x080a_0000, _)
            }
        ));
        assert_eq!(p.hyp_timer_intid, 26);
        assert_eq!(p.psci, Some(PsciConduit::Smc));
        assert_eq!(p.bootargs, "parapet.log=debug");
        assert_eq!(p.total_size, QEMU_VIRT.len());
    }

    /// As QEMU_VIRT, without `gic-version=3`: QEMU's default GICv2.
    const QEMU_VIRT_GICV2: &[u8] = include_bytes!("../../tests/data/qemu-virt-gicv2-smp2.dtb");

    #[test]
    fn reads_qemu_virt_with_its_default_gicv2() {
        let p = parse(QEMU_VIRT_GICV2).unwrap();
        assert_eq!(
            p.gic,
            GicDescription::V2 {
                distributor: 0x0800_0000,
                cpu_interface: 0x0801_0000
            }
        );
        assert_eq!(p.hyp_timer_intid, 26);
        assert_eq!(p.cpus(), &[0, 1]);
    }

    /// QEMU_VIRT decompiled with dtc, given `/memreserve/ 0x48000000 0x10000;` and a
    /// `/reserved-memory/firmware@4a000000` node of 2 MiB, and compiled again.
    const QEMU_VIRT_RESERVED: &[u8] =
        include_bytes!("../../tests/data/qemu-virt-gicv3-reserved.dtb");

    #[test]
    fn reserved_memory_comes_from_both_places() {
        let p = parse(QEMU_VIRT_RESERVED).unwrap();
        assert_eq!(
            p.reserved(),
            &[(0x4800_0000, 0x1_0000), (0x4a00_0000, 0x20_0000)]
        );
        assert_eq!(
            p.memory.ram_bytes(),
            256 << 20,
            "reserved nodes are not RAM"
        );
        assert!(parse(QEMU_VIRT).unwrap().reserved().is_empty());
    }

    #[test]
    fn header_size_needs_the_magic() {
        assert_eq!(header_total_size(&QEMU_VIRT[..8]), Some(QEMU_VIRT.len()));
        assert_eq!(header_total_size(&[0; 8]), None);
    }

    #[test]
    fn a_compacted_copy_parses_like_the_whole_blob() {
        // Pretend the loader declared 1 MiB, as QEMU does, and copy only the used part.
        let mut blob = QEMU_VIRT.to_vec();
        blob[4..8].copy_from_slice(&(1u32 << 20).to_be_bytes());
        let header: [u8; super::super::fdt::HEADER_SIZE] = blob[..40].try_into().unwrap();
        let used = super::super::fdt::used_size(&header).unwrap();
        assert!(used <= QEMU_VIRT.len());
        let p = parse(&blob[..used]).unwrap();
        assert_eq!(p.cpus(), &[0, 1]);
        assert_eq!(p.total_size, 1 << 20);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse(&[0u8; 64]).unwrap_err(), DeviceTreeError::Malformed);
        let mut truncated = QEMU_VIRT.to_vec();
        truncated.truncate(100);
        assert!(parse(&truncated).is_err());
        // Flip every byte in turn: parsing may fail, but must never panic.
        for i in 0..QEMU_VIRT.len() {
            let mut bad = QEMU_VIRT.to_vec();
            bad[i] ^= 0xff;
            let _ = parse(&bad);
        }
    }
}

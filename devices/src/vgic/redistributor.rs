//! The redistributors' frames (§12.10 "The GIC Redistributor register map", §12.11): CPU `i`
//! has RD_base at `i * REDISTRIBUTOR_STRIDE` of the region and SGI_base 64 KiB above it.

use super::distributor::Part;
use super::registers::*;
use super::state::BitRegister;
use super::{CpuSet, VGic};

/// A redistributor register an access reaches (the CPU aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Register {
    /// An architected register that reads 0 and ignores writes here (GICR_CTLR, STATUSR,
    /// the LPI registers, IGRPMODR0, NSACR).
    RazWi,
    Iidr,
    Typer(Part),
    Waker,
    Id(u64),
    Bits(BitRegister),
    /// GICR_IPRIORITYR bytes for `count` INTIDs from `first`.
    Priority {
        first: u32,
        count: u32,
    },
    /// GICR_ICFGR0 (SGIs) or GICR_ICFGR1 (PPIs).
    Config(u32),
}

/// The CPU and register an access of `size` bytes at `offset` into the region reaches.
fn decode(offset: u64, size: u8, cpus: usize) -> Option<(usize, Register)> {
    let cpu = offset / REDISTRIBUTOR_STRIDE;
    if cpu >= cpus as u64 || !matches!(size, 1 | 4 | 8) {
        return None;
    }
    let local = offset % REDISTRIBUTOR_STRIDE;
    if !local.is_multiple_of(u64::from(size)) {
        return None;
    }
    let register = if local < SGI_BASE {
        decode_rd(local, size)?
    } else {
        decode_sgi(local - SGI_BASE, size)?
    };
    Some((cpu as usize, register))
}

/// RD_base: control, identification, wake; LPI registers RAZ/WI.
fn decode_rd(offset: u64, size: u8) -> Option<Register> {
    let lpi64 = [
        GICR_SETLPIR,
        GICR_CLRLPIR,
        GICR_PROPBASER,
        GICR_PENDBASER,
        GICR_INVLPIR,
        GICR_INVALLR,
    ];
    let base64 = offset & !7;
    match (offset, size) {
        (GICR_TYPER | 0x000c, 4) | (GICR_TYPER, 8) => {
            Some(Register::Typer(Part::of(offset - GICR_TYPER, size)?))
        }
        (_, 4 | 8) if lpi64.contains(&base64) => Some(Register::RazWi),
        (GICR_CTLR | GICR_STATUSR | GICR_SYNCR, 4) => Some(Register::RazWi),
        (GICR_IIDR, 4) => Some(Register::Iidr),
        (GICR_WAKER, 4) => Some(Register::Waker),
        (o, 4) if ID_REGISTERS.contains(&o) => Some(Register::Id(o)),
        _ => None,
    }
}

/// SGI_base: the SGI and PPI registers.
fn decode_sgi(offset: u64, size: u8) -> Option<Register> {
    let priority = GICR_IPRIORITYR..GICR_IPRIORITYR + u64::from(PRIVATE_COUNT);
    match (offset, size) {
        (o, 1 | 4) if priority.contains(&o) => Some(Register::Priority {
            first: (o - GICR_IPRIORITYR) as u32,
            count: u32::from(size),
        }),
        (
            GICR_IGROUPR0 | GICR_ISENABLER0 | GICR_ICENABLER0 | GICR_ISPENDR0 | GICR_ICPENDR0
            | GICR_ISACTIVER0 | GICR_ICACTIVER0,
            4,
        ) => BitRegister::decode(offset).map(|(reg, _)| Register::Bits(reg)),
        (GICR_ICFGR0, 4) => Some(Register::Config(0)),
        (GICR_ICFGR1, 4) => Some(Register::Config(1)),
        (GICR_IGRPMODR0 | GICR_NSACR, 4) => Some(Register::RazWi),
        _ => None,
    }
}

impl VGic {
    /// GICR_TYPER of CPU `cpu`'s redistributor (0 if there is none).
    pub fn gicr_typer(&self, cpu: usize) -> u64 {
        let Some(rd) = self.cpus.get(cpu) else {
            return 0;
        };
        let last = if cpu + 1 == self.cpus.len() {
            GICR_TYPER_LAST
        } else {
            0
        };
        (u64::from(rd.affinity) << GICR_TYPER_AFFINITY_SHIFT)
            | ((cpu as u64 & 0xffff) << GICR_TYPER_PROCESSOR_NUMBER_SHIFT)
            | last
    }

    /// A guest read of `size` bytes at `offset` into the redistributor region. Accesses that
    /// reach no register (including any beyond the last CPU's frames) read 0 (and are
    /// counted in [`super::Stats`]).
    pub fn read_redistributor(&mut self, offset: u64, size: u8) -> u64 {
        let Some((cpu, register)) = decode(offset, size, self.cpus.len()) else {
            self.stats.redistributor_rejected = self.stats.redistributor_rejected.saturating_add(1);
            return 0;
        };
        let typer = self.gicr_typer(cpu);
        let Some(rd) = self.cpus.get(cpu) else {
            return 0;
        };
        match register {
            Register::RazWi => 0,
            Register::Iidr => u64::from(IIDR_VALUE),
            Register::Typer(part) => part.read(typer),
            Register::Waker => {
                if rd.asleep {
                    u64::from(WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP)
                } else {
                    0
                }
            }
            Register::Id(o) => u64::from(if o == GICR_PIDR2 { PIDR2_VALUE } else { 0 }),
            Register::Bits(reg) => u64::from(rd.bank.read(reg)),
            Register::Priority { first, count } => (0..count).fold(0, |acc, i| {
                let p = rd.priority.get((first + i) as usize).copied().unwrap_or(0);
                acc | (u64::from(p) << (8 * i))
            }),
            Register::Config(half) => u64::from(rd.bank.read_config(half)),
        }
    }

    /// A guest write of the low `size` bytes of `value` at `offset` into the redistributor
    /// region. Returns the CPUs that may now have a new deliverable interrupt (kick them).
    /// Accesses that reach no register are ignored (and counted in [`super::Stats`]).
    pub fn write_redistributor(&mut self, offset: u64, size: u8, value: u64) -> CpuSet {
        let Some((cpu, register)) = decode(offset, size, self.cpus.len()) else {
            self.stats.redistributor_rejected = self.stats.redistributor_rejected.saturating_add(1);
            return CpuSet::default();
        };
        let Some(rd) = self.cpus.get_mut(cpu) else {
            return CpuSet::default();
        };
        match register {
            Register::RazWi | Register::Iidr | Register::Typer(_) | Register::Id(_) => {}
            Register::Waker => {
                let was_asleep = rd.asleep;
                rd.asleep = value as u32 & WAKER_PROCESSOR_SLEEP != 0;
                if was_asleep && !rd.asleep {
                    // Its own interrupts, and 1 of N SPIs may now pick it.
                    return self.kick_all();
                }
            }
            Register::Bits(reg) => {
                rd.bank.write(reg, value as u32, u32::MAX);
                if reg.may_raise() {
                    return self.kick_private(cpu, value as u32);
                }
            }
            Register::Priority { first, count } => {
                for i in 0..count {
                    if let Some(p) = rd.priority.get_mut((first + i) as usize) {
                        *p = (value >> (8 * i)) as u8;
                    }
                }
            }
            Register::Config(half) => {
                // SGIs are edge-triggered, always: GICR_ICFGR0 is read-only.
                if half == 1 {
                    rd.bank.write_config(1, value as u32, 0xffff_0000);
                    return self.kick_private(cpu, 0xffff_0000);
                }
            }
        }
        CpuSet::default()
    }
}

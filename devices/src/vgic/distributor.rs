//! The distributor's 64 KiB frame (§12.8 "The GIC Distributor register map", §12.9).

use super::registers::*;
use super::state::{bits_below, BitRegister};
use super::{CpuSet, VGic};

/// Which half of a 64-bit register a 32-bit access reaches, or the whole of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Whole,
    Low,
    High,
}

impl Part {
    /// The part an access of `size` bytes at `offset` (relative to the register's start,
    /// 0 or 4) reaches.
    pub(super) fn of(offset: u64, size: u8) -> Option<Self> {
        match (offset % 8, size) {
            (0, 8) => Some(Self::Whole),
            (0, 4) => Some(Self::Low),
            (4, 4) => Some(Self::High),
            _ => None,
        }
    }

    pub(super) fn read(self, value: u64) -> u64 {
        match self {
            Self::Whole => value,
            Self::Low => value & 0xffff_ffff,
            Self::High => value >> 32,
        }
    }

    /// `old` with this part replaced by `value`.
    pub(super) fn merge(self, old: u64, value: u64) -> u64 {
        match self {
            Self::Whole => value,
            Self::Low => (old & !0xffff_ffff) | (value & 0xffff_ffff),
            Self::High => (old & 0xffff_ffff) | (value << 32),
        }
    }
}

/// A distributor register an access reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Register {
    Ctlr,
    Typer,
    Iidr,
    /// An architected register that reads 0 and ignores writes in this configuration.
    RazWi,
    /// IGROUPR..ICACTIVER register `n` (INTIDs 32n..32n+31).
    Bits(BitRegister, usize),
    /// IPRIORITYR bytes for `count` INTIDs from `first`.
    Priority {
        first: u32,
        count: u32,
    },
    /// ICFGR register `n` (INTIDs 16n..16n+15).
    Config(u32),
    /// IROUTER of INTID `intid`.
    Router(u32, Part),
    /// An identification register at this offset.
    Id(u64),
}

/// What an access of `size` bytes at `offset` reaches, or `None` if it reaches no register
/// (see the module comment's "Accesses").
fn decode(offset: u64, size: u8) -> Option<Register> {
    if offset >= DISTRIBUTOR_SIZE || !matches!(size, 1 | 4 | 8) {
        return None;
    }
    if !offset.is_multiple_of(u64::from(size)) {
        return None;
    }
    let priority = GICD_IPRIORITYR..GICD_IPRIORITYR + PRIORITY_BLOCK;
    let targets = GICD_ITARGETSR..GICD_ITARGETSR + PRIORITY_BLOCK;
    let routers = GICD_IROUTER..GICD_IROUTER + ROUTER_BLOCK;
    match size {
        1 if priority.contains(&offset) => Some(Register::Priority {
            first: (offset - GICD_IPRIORITYR) as u32,
            count: 1,
        }),
        1 if targets.contains(&offset) => Some(Register::RazWi),
        8 if routers.contains(&offset) => Some(Register::Router(
            ((offset - GICD_IROUTER) / 8) as u32,
            Part::Whole,
        )),
        4 => decode_word(offset),
        _ => None,
    }
}

/// What an aligned 32-bit access at `offset` (inside the frame) reaches.
fn decode_word(offset: u64) -> Option<Register> {
    Some(match offset {
        GICD_CTLR => Register::Ctlr,
        GICD_TYPER => Register::Typer,
        GICD_IIDR => Register::Iidr,
        GICD_TYPER2 | GICD_STATUSR => Register::RazWi,
        GICD_SETSPI_NSR | GICD_CLRSPI_NSR | GICD_SETSPI_SR | GICD_CLRSPI_SR => Register::RazWi,
        0x0080..=0x03fc => {
            let (reg, n) = BitRegister::decode(offset)?;
            Register::Bits(reg, n)
        }
        0x0400..=0x07fc => Register::Priority {
            first: (offset - GICD_IPRIORITYR) as u32,
            count: 4,
        },
        0x0800..=0x0bfc => Register::RazWi, // GICD_ITARGETSR<n>
        0x0c00..=0x0cfc => Register::Config(((offset - GICD_ICFGR) / 4) as u32),
        0x0d00..=0x0d7c => Register::RazWi, // GICD_IGRPMODR<n>
        0x0e00..=0x0efc => Register::RazWi, // GICD_NSACR<n>
        GICD_SGIR => Register::RazWi,
        0x0f10..=0x0f1c | 0x0f20..=0x0f2c => Register::RazWi, // GICD_C/SPENDSGIR<n>
        0x6000..=0x7ffc => {
            let part = Part::of(offset - GICD_IROUTER, 4)?;
            Register::Router(((offset - GICD_IROUTER) / 8) as u32, part)
        }
        o if ID_REGISTERS.contains(&o) => Register::Id(o),
        _ => return None,
    })
}

impl VGic {
    /// GICD_TYPER as this distributor reports it.
    pub fn gicd_typer(&self) -> u32 {
        let it_lines = (PRIVATE_COUNT + self.spis.count).div_ceil(32) - 1;
        (it_lines & TYPER_ITLINES_MASK)
            | ((ID_BITS - 1) << TYPER_IDBITS_SHIFT)
            | TYPER_A3V
            | TYPER_RSS
    }

    /// GICD_CTLR as the guest reads it.
    pub fn gicd_ctlr(&self) -> u32 {
        CTLR_RESET | (self.ctlr & CTLR_WRITABLE)
    }

    /// A guest read of `size` bytes at `offset` into the distributor frame. Accesses that
    /// reach no register read 0 (and are counted in [`super::Stats`]).
    pub fn read_distributor(&mut self, offset: u64, size: u8) -> u64 {
        let Some(register) = decode(offset, size) else {
            self.stats.distributor_rejected = self.stats.distributor_rejected.saturating_add(1);
            return 0;
        };
        match register {
            Register::Ctlr => u64::from(self.gicd_ctlr()),
            Register::Typer => u64::from(self.gicd_typer()),
            Register::Iidr => u64::from(IIDR_VALUE),
            Register::RazWi => 0,
            Register::Bits(reg, n) => match n.checked_sub(1).and_then(|w| self.spis.banks.get(w)) {
                Some(bank) => u64::from(bank.read(reg)),
                None => 0, // word 0: the redistributors'; beyond: unimplemented
            },
            Register::Priority { first, count } => (0..count).fold(0, |acc, i| {
                acc | (u64::from(self.spi_priority(first + i)) << (8 * i))
            }),
            Register::Config(n) => self.spi_config_word(n).map_or(0, |(bank, half, _)| {
                u64::from(self.spis.banks.get(bank).map_or(0, |b| b.read_config(half)))
            }),
            Register::Router(intid, part) => match self.spi_index(intid) {
                Some(spi) => part.read(self.spis.router.get(spi).copied().unwrap_or(0)),
                None => 0,
            },
            Register::Id(o) => u64::from(if o == GICD_PIDR2 { PIDR2_VALUE } else { 0 }),
        }
    }

    /// A guest write of the low `size` bytes of `value` at `offset` into the distributor
    /// frame. Returns the CPUs that may now have a new deliverable interrupt (kick them).
    /// Accesses that reach no register are ignored (and counted in [`super::Stats`]).
    pub fn write_distributor(&mut self, offset: u64, size: u8, value: u64) -> CpuSet {
        let Some(register) = decode(offset, size) else {
            self.stats.distributor_rejected = self.stats.distributor_rejected.saturating_add(1);
            return CpuSet::default();
        };
        match register {
            Register::Ctlr => {
                let was = self.group1_enabled();
                self.ctlr = value as u32 & CTLR_WRITABLE;
                if self.group1_enabled() && !was {
                    return self.kick_all();
                }
            }
            Register::Typer | Register::Iidr | Register::RazWi | Register::Id(_) => {}
            Register::Bits(reg, n) => {
                let Some(word) = n.checked_sub(1) else {
                    return CpuSet::default();
                };
                let implemented = self.spi_bits(word);
                if let Some(bank) = self.spis.banks.get_mut(word) {
                    bank.write(reg, value as u32, implemented);
                    if reg.may_raise() {
                        return self.kick_spis(word, value as u32 & implemented);
                    }
                }
            }
            Register::Priority { first, count } => {
                for i in 0..count {
                    let byte = (value >> (8 * i)) as u8;
                    if let Some(spi) = self.spi_index(first + i) {
                        if let Some(p) = self.spis.priority.get_mut(spi) {
                            *p = byte;
                        }
                    }
                }
            }
            Register::Config(n) => {
                if let Some((word, half, writable)) = self.spi_config_word(n) {
                    if let Some(bank) = self.spis.banks.get_mut(word) {
                        bank.write_config(half, value as u32, writable);
                        // Edge to level with the input high makes it pending.
                        return self.kick_spis(word, writable & (0xffff << (half * 16)));
                    }
                }
            }
            Register::Router(intid, part) => {
                if let Some(spi) = self.spi_index(intid) {
                    if let Some(router) = self.spis.router.get_mut(spi) {
                        *router = part.merge(*router, value) & IROUTER_WRITABLE;
                    }
                    return self.kick_spis(spi / 32, 1 << (spi % 32));
                }
            }
        }
        CpuSet::default()
    }

    /// The implemented bits of SPI bank `word` (INTIDs 32(word + 1) ..).
    fn spi_bits(&self, word: usize) -> u32 {
        bits_below(
            PRIVATE_COUNT.saturating_mul(word as u32 + 1),
            PRIVATE_COUNT + self.spis.count,
        )
    }

    fn spi_priority(&self, intid: u32) -> u8 {
        self.spi_index(intid)
            .and_then(|spi| self.spis.priority.get(spi).copied())
            .unwrap_or(0)
    }

    /// GICD_ICFGR<n>'s bank, half and writable bits, if it covers implemented SPIs.
    fn spi_config_word(&self, n: u32) -> Option<(usize, u32, u32)> {
        let word = (n / 2).checked_sub(1)? as usize;
        (word < self.spis.banks.len()).then(|| (word, n % 2, self.spi_bits(word)))
    }
}

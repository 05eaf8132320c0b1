//! A GICv3 distributor and redistributors as a guest sees them (Arm IHI 0069H, "GIC
//! architecture version 3 and version 4"): the memory-mapped GICD frame and each CPU's GICR
//! RD_base and SGI_base frames, with the per-CPU pending state Parapet needs to fill the
//! virtual CPU interface's list registers.
//!
//! # Where this sits
//!
//! Parapet runs at EL2 and gives its EL1 guest the GIC's virtual CPU interface: the guest's
//! ICC_* accesses (acknowledge, EOI, deactivate, priority mask) are done by hardware against
//! the list registers ICH_LR<n>_EL2. What hardware does not give the guest is a distributor and
//! redistributors; this model is them. It holds, per interrupt, what the architecture does
//! (group, enable, priority, trigger, routing, pending, active) and says per CPU which
//! interrupts are ready to be placed in a list register.
//!
//! # How a backend drives it
//!
//! - One `VGic` for the guest, made by [`VGic::new`] with each guest CPU's affinity (packed as
//!   GICR_TYPER bits 63:32: Aff3 in 31:24, Aff2 23:16, Aff1 15:8, Aff0 7:0; CPU `i` is the
//!   `i`th entry) and the number of SPIs wanted. Shared between CPUs behind a lock.
//! - The guest's accesses to the distributor's 64 KiB frame go to [`VGic::read_distributor`] /
//!   [`VGic::write_distributor`]; those to the redistributor region
//!   ([`VGic::redistributor_region_size`] bytes: CPU `i`'s RD_base at `i * 0x20000`, its
//!   SGI_base 0x10000 above) go to [`VGic::read_redistributor`] / [`VGic::write_redistributor`]
//!   with the offset from the region's start. The device tree's GIC node names both regions.
//! - The guest's writes of ICC_SGI1R_EL1 trap to EL2 (with HCR_EL2.IMO set, as the virtual
//!   CPU interface needs); they go to [`VGic::send_sgi1r`].
//! - Devices drive their lines: [`VGic::set_spi_level`] (the PL011 on INTID 33),
//!   [`VGic::set_ppi_level`] (the virtual timer on PPI 27).
//! - Every call that can make an interrupt deliverable returns a [`CpuSet`]: the CPUs that may
//!   now have a new one. Kick those that wait (WFI) or run elsewhere. It may name a CPU that
//!   turns out to have nothing new; it never leaves out one that has.
//! - Before entering the guest on CPU `c`: for each list register that went invalid
//!   (ICH_ELRSR_EL2), [`VGic::completed`]; then fill free list registers from
//!   [`VGic::deliverable`] (highest priority first) or [`VGic::highest_deliverable`], calling
//!   [`VGic::inject`] for each one placed. A [`Pending`] with `level` set is level-sensitive:
//!   request an EOI maintenance interrupt for it (ICH_LR_EL2.EOI) so its completion is seen
//!   while the device may still hold the line high.
//!
//! # Lifecycle
//!
//! The spec's states (IHI 0069H chapter 4, "Interrupt lifecycle" and the interrupt handling
//! state machine) are inactive, pending, active, and active and pending. Here:
//!
//! ```text
//!            line rises / edge / SGI / ISPENDR          inject (Parapet writes the LR)
//!  inactive ─────────────────────────────────▶ pending ───────────────────────────▶ active
//!     ▲                                                                               │
//!     │                      completed (the LR went invalid: the guest deactivated it)│
//!     └───────────────────────────────────────────────────────────────────────────────┘
//!                 (back to pending instead if a level input is still high, or a new
//!                  edge / SGI / ISPENDR arrived meanwhile: "active and pending")
//! ```
//!
//! - `inject` clears the pending latch (an edge, an SGI, a set-pending write). A
//!   level-sensitive interrupt's pending state then follows its input only: still high means
//!   active and pending.
//! - From `inject` to `completed` the interrupt is in a list register, where its own pending →
//!   active transition (the guest's acknowledge) happens unseen. The model calls it active for
//!   that whole time and never offers it again until `completed`, so it is never in two list
//!   registers.
//! - Delivery requires: pending, enabled, Group 1, not active, not in a list register,
//!   GICD_CTLR.EnableGrp1 set, the CPU's redistributor awake (GICR_WAKER.ProcessorSleep
//!   clear), and routed to the CPU (SGIs and PPIs: their own CPU; SPIs: GICD_IROUTER).
//!
//! # Choices where the spec leaves room
//!
//! - **One Security state** (GICD_CTLR.DS reads 1, RAO/WI), as QEMU's virt machine without
//!   `secure=on` and as the guest's view of KVM: the guest owns both groups, GICD_IGRPMODR,
//!   GICD_NSACR and their GICR counterparts are RAZ/WI, GICD_TYPER.SecurityExtn is 0.
//! - **Affinity routing only**: GICD_CTLR.ARE is RAO/WI (an implementation without legacy
//!   operation). The distributor's registers for INTIDs 0-31 (IGROUPR0, ISENABLER0, ...,
//!   IPRIORITYR0-7, ICFGR0-1, IROUTER0-31), GICD_ITARGETSR and the GICD_*SGIR registers are
//!   RAZ/WI; SGIs and PPIs live in the redistributors.
//! - **Group 1 only is delivered.** Interrupts in Group 0 (FIQs) are held and never offered:
//!   Linux puts everything in Group 1 (`gic_dist_init`, `gic_cpu_init`). IGROUPR bits reset to
//!   1 (the spec leaves them UNKNOWN; KVM resets GICv3 guests' to Group 1 too), so a guest
//!   that never writes them still gets its interrupts. GICD_CTLR.EnableGrp0 is kept as
//!   written and gates nothing.
//! - **No LPIs, no ITS, no MBIs, no extended ranges**: GICD_TYPER.LPIS, MBIS, ESPI and
//!   GICR_TYPER.PLPIS, VLPIS, DirectLPI, PPInum read 0; their registers are RAZ/WI.
//! - **Sizes** (ITLinesNumber): `spi_count` rounded up to a multiple of 32, at most 988
//!   (INTIDs 32-1019); IDbits says 10. 0 SPIs is allowed (ITLinesNumber 0).
//! - **Reset values** the spec leaves UNKNOWN: priorities 0, every SPI and PPI
//!   level-sensitive, every IROUTER 0 (affinity 0.0.0.0, IRM 0), enables, pending and active
//!   clear. GICR_WAKER resets to ProcessorSleep = ChildrenAsleep = 1 (the spec's reset).
//! - **Writes take effect at once**: GICD_CTLR.RWP and GICR_CTLR.RWP/UWP read 0.
//! - **GICR_WAKER**: ChildrenAsleep follows ProcessorSleep immediately. While ProcessorSleep
//!   is set the CPU is offered nothing (interrupts "are held in the pending state at the
//!   Redistributor"); interrupts already in its list registers are the backend's.
//! - **1 of N SPIs** (IROUTER.IRM = 1; GICD_TYPER.No1N = 0): the participating node is the
//!   lowest-numbered CPU whose redistributor is awake, so exactly one CPU is offered it. None
//!   awake: held. **IRM = 0 naming no CPU**: held pending, never forwarded, IROUTER reads back
//!   as written (one of the CONSTRAINED UNPREDICTABLE choices in "GICD_IROUTER<n>").
//! - **Priorities** keep all 8 bits (the virtual CPU interface uses the top PRIbits of the
//!   list register's priority field). Among equal priorities the lower INTID goes first.
//! - **PPI trigger mode** (GICR_ICFGR1) is programmable, so Linux's `gic_configure_irq`
//!   read-back succeeds; SGIs are always edge-triggered (GICR_ICFGR0 reads 0xAAAAAAAA).
//! - **SGIs** from ICC_SGI1R_EL1 reach a target only if that SGI is in Group 1 there (the
//!   "Forwarding an SGI to a target PE" table of "ICC_SGI1R_EL1", for DS = 1; KVM's
//!   `vgic_v3_dispatch_sgi` does the same). GICD_TYPER.RSS is 1: the RS field is honoured, so
//!   CPUs with Aff0 above 15 can be targeted. Target-list bits naming no CPU are ignored.
//! - **Guest writes to an interrupt held in a list register**: the model's state changes
//!   (ICPENDR clears the latch, ICACTIVER the active bit) but the interrupt is not offered
//!   again until its list register empties (`completed`); the list register itself is the
//!   backend's. Linux clears pending and active state only at initialisation, when nothing
//!   is listed.
//! - **Accesses** (chapter 12, "GIC memory-mapped register access"): 32-bit accesses to every
//!   register; 64-bit accesses to GICD_IROUTER<n>, GICR_TYPER and the 64-bit LPI registers,
//!   which also take 32-bit accesses to either half; byte accesses to GICD_IPRIORITYR<n>,
//!   GICR_IPRIORITYR<n> and GICD_ITARGETSR<n>. Every access must be aligned to its size.
//!   Anything else — another size, misaligned, a reserved offset, beyond the frames — reads 0,
//!   is ignored, and is counted in [`Stats`]. Bits of unimplemented interrupts are RAZ/WI.
//! - **Identification**: GICD_IIDR = GICR_IIDR = [`IIDR_VALUE`], GICD_PIDR2 = GICR_PIDR2 =
//!   0x30 (ArchRev 3); the other ID registers read 0.
//! - At most [`MAX_CPUS`] CPUs: further entries of `cpu_affinities` are ignored.
#![forbid(unsafe_code)]

mod distributor;
mod redistributor;
mod registers;
mod sgi;
mod state;

#[cfg(test)]
mod tests;

use alloc::vec;
use alloc::vec::Vec;

pub use registers::*;
pub use sgi::{Sgi1r, SgiTargets};

use state::{each_bit, Bank};

/// The most CPUs (redistributors) a `VGic` has.
pub const MAX_CPUS: usize = 512;

/// An interrupt ready to go into a list register of one CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The INTID: 0-15 SGI, 16-31 PPI, 32-1019 SPI (ICH_LR_EL2.vINTID).
    pub intid: u32,
    /// Its GICD_IPRIORITYR / GICR_IPRIORITYR byte (ICH_LR_EL2.Priority): lower is higher.
    pub priority: u8,
    /// Level-sensitive (ICFGR says so): ask for a maintenance interrupt on its EOI.
    pub level: bool,
}

/// Why `inject`, `completed` or a source call refused: the backend's mistake, not the guest's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListError {
    /// No CPU with that index.
    NoCpu,
    /// Not an implemented INTID of the kind the call takes.
    NoInterrupt,
    /// `inject` of an interrupt not deliverable to that CPU now.
    NotDeliverable,
    /// `completed` of an interrupt that CPU did not hold in a list register.
    NotListed,
}

/// Counts of what the model refused, for diagnostics. Every refused access read 0 or was
/// ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Distributor accesses that reached no register: reserved offsets, sizes or alignments
    /// the register does not take, offsets beyond the 64 KiB frame.
    pub distributor_rejected: u64,
    /// The same for the redistributor region, including offsets beyond the last CPU's frames.
    pub redistributor_rejected: u64,
    /// ICC_SGI1R_EL1 writes from a sender that is not a CPU.
    pub sgis_rejected: u64,
    /// Backend calls refused (`set_*_level`, `inject`, `completed` naming no CPU or INTID,
    /// or breaking the lifecycle).
    pub calls_rejected: u64,
}

/// A set of CPU indices (below [`MAX_CPUS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct CpuSet {
    bits: [u64; MAX_CPUS / 64],
}

impl CpuSet {
    /// Adds `cpu`; indices from [`MAX_CPUS`] up are ignored.
    pub fn insert(&mut self, cpu: usize) {
        if let Some(word) = self.bits.get_mut(cpu / 64) {
            *word |= 1 << (cpu % 64);
        }
    }

    pub fn contains(&self, cpu: usize) -> bool {
        self.bits
            .get(cpu / 64)
            .is_some_and(|word| word & (1 << (cpu % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The members of either set.
    pub fn union(self, other: Self) -> Self {
        let mut bits = self.bits;
        for (word, theirs) in bits.iter_mut().zip(other.bits) {
            *word |= theirs;
        }
        Self { bits }
    }

    /// The members, lowest first (only the set bits are visited: a backend walks this on
    /// every guest entry).
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            core::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(w * 64 + bit)
            })
        })
    }
}

impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = Self::default();
        for cpu in iter {
            set.insert(cpu);
        }
        set
    }
}

/// One CPU's redistributor: its SGIs and PPIs, and its wake state.
#[derive(Clone, Debug)]
struct Redistributor {
    /// Aff3.Aff2.Aff1.Aff0 as GICR_TYPER bits 63:32 show it.
    affinity: u32,
    /// GICR_WAKER.ProcessorSleep (ChildrenAsleep reads the same).
    asleep: bool,
    bank: Bank,
    priority: [u8; PRIVATE_COUNT as usize],
}

/// The SPIs: one bank per 32, and per SPI its priority, IROUTER and the CPU holding it in a
/// list register (meaningful while its `listed` bit is set).
#[derive(Clone, Debug)]
struct Spis {
    /// Implemented SPIs: INTIDs 32 to 32 + count - 1.
    count: u32,
    banks: Vec<Bank>,
    priority: Vec<u8>,
    router: Vec<u64>,
    owner: Vec<u16>,
}

#[derive(Clone, Debug)]
pub struct VGic {
    /// GICD_CTLR's EnableGrp0 and EnableGrp1; ARE and DS always read set.
    ctlr: u32,
    cpus: Vec<Redistributor>,
    spis: Spis,
    stats: Stats,
}

impl VGic {
    /// A distributor with `spi_count` SPIs (rounded up to a multiple of 32, at most 988) and a
    /// redistributor per entry of `cpu_affinities` (Aff3.Aff2.Aff1.Aff0 packed as
    /// GICR_TYPER[63:32]; at most [`MAX_CPUS`]), all at reset (see the module comment).
    pub fn new(cpu_affinities: &[u32], spi_count: u32) -> Self {
        let count = spi_count
            .min(MAX_SPIS)
            .div_ceil(PRIVATE_COUNT)
            .saturating_mul(PRIVATE_COUNT)
            .min(MAX_SPIS);
        let words = count.div_ceil(32) as usize;
        let banks = (0..words)
            .map(|w| Bank {
                group1: state::bits_below(PRIVATE_COUNT * (w as u32 + 1), PRIVATE_COUNT + count),
                ..Bank::default()
            })
            .collect();
        let cpus = cpu_affinities
            .iter()
            .take(MAX_CPUS)
            .map(|&affinity| Redistributor {
                affinity,
                asleep: true,
                bank: Bank {
                    group1: u32::MAX,
                    // SGIs are edge-triggered, always (GICR_ICFGR0).
                    edge: 0xffff,
                    ..Bank::default()
                },
                priority: [0; PRIVATE_COUNT as usize],
            })
            .collect();
        Self {
            ctlr: 0,
            cpus,
            spis: Spis {
                count,
                banks,
                priority: vec![0; count as usize],
                router: vec![0; count as usize],
                owner: vec![0; count as usize],
            },
            stats: Stats::default(),
        }
    }

    pub fn cpu_count(&self) -> usize {
        self.cpus.len()
    }

    /// SPIs implemented (INTIDs 32 to 32 + this - 1).
    pub fn spi_count(&self) -> u32 {
        self.spis.count
    }

    /// Bytes of the redistributor region: one 128 KiB stride per CPU.
    pub fn redistributor_region_size(&self) -> u64 {
        REDISTRIBUTOR_STRIDE * self.cpus.len() as u64
    }

    /// CPU `cpu`'s affinity (GICR_TYPER[63:32] form).
    pub fn affinity(&self, cpu: usize) -> Option<u32> {
        self.cpus.get(cpu).map(|rd| rd.affinity)
    }

    /// The CPU with this affinity (GICR_TYPER[63:32] form), if any (the first, if several).
    pub fn cpu_with_affinity(&self, affinity: u32) -> Option<usize> {
        self.cpus.iter().position(|rd| rd.affinity == affinity)
    }

    /// Whether CPU `cpu`'s redistributor is awake (GICR_WAKER.ProcessorSleep clear).
    pub fn awake(&self, cpu: usize) -> bool {
        self.cpus.get(cpu).is_some_and(|rd| !rd.asleep)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn reject_call<T>(&mut self, error: ListError) -> Result<T, ListError> {
        self.stats.calls_rejected = self.stats.calls_rejected.saturating_add(1);
        Err(error)
    }

    fn group1_enabled(&self) -> bool {
        self.ctlr & CTLR_ENABLE_GRP1 != 0
    }

    /// The lowest-numbered CPU whose redistributor is awake: where 1 of N SPIs go.
    fn first_awake(&self) -> Option<usize> {
        self.cpus.iter().position(|rd| !rd.asleep)
    }

    /// The CPU SPI `spi` (0 = INTID 32) is routed to, given the 1 of N choice `any`.
    fn spi_target(&self, spi: usize, any: Option<usize>) -> Option<usize> {
        let router = *self.spis.router.get(spi)?;
        if router & IROUTER_IRM != 0 {
            return any;
        }
        self.cpu_with_affinity(router_affinity(router))
    }

    /// The SPI index and bit for `intid`, if it is an implemented SPI.
    fn spi_index(&self, intid: u32) -> Option<usize> {
        let spi = intid.checked_sub(PRIVATE_COUNT)?;
        (spi < self.spis.count).then_some(spi as usize)
    }

    fn spi_bank(&self, spi: usize) -> Option<&Bank> {
        self.spis.banks.get(spi / 32)
    }

    fn spi_pending_entry(&self, spi: usize) -> Pending {
        let edge = self
            .spi_bank(spi)
            .is_some_and(|b| b.edge & spi_bit(spi) != 0);
        Pending {
            intid: spi as u32 + PRIVATE_COUNT,
            priority: self.spis.priority.get(spi).copied().unwrap_or(0),
            level: !edge,
        }
    }

    /// Calls `f` with every interrupt deliverable to `cpu` now, in INTID order.
    fn for_each_deliverable(&self, cpu: usize, mut f: impl FnMut(Pending)) {
        let Some(rd) = self.cpus.get(cpu) else {
            return;
        };
        if rd.asleep || !self.group1_enabled() {
            return;
        }
        for n in each_bit(rd.bank.ready()) {
            f(Pending {
                intid: n,
                priority: rd.priority[n as usize],
                level: rd.bank.edge & (1 << n) == 0,
            });
        }
        let any = self.first_awake();
        for (word, bank) in self.spis.banks.iter().enumerate() {
            for n in each_bit(bank.ready()) {
                let spi = word * 32 + n as usize;
                if self.spi_target(spi, any) == Some(cpu) {
                    f(self.spi_pending_entry(spi));
                }
            }
        }
    }

    /// Every interrupt deliverable to `cpu` now, highest priority (lowest value) first, equal
    /// priorities by INTID. Empty for a CPU that does not exist.
    pub fn deliverable(&self, cpu: usize) -> Vec<Pending> {
        let mut all = Vec::new();
        self.for_each_deliverable(cpu, |p| all.push(p));
        all.sort_by_key(|p| (p.priority, p.intid));
        all
    }

    /// The first entry of [`VGic::deliverable`], without allocating.
    pub fn highest_deliverable(&self, cpu: usize) -> Option<Pending> {
        let mut best: Option<Pending> = None;
        self.for_each_deliverable(cpu, |p| {
            if best.is_none_or(|b| (p.priority, p.intid) < (b.priority, b.intid)) {
                best = Some(p);
            }
        });
        best
    }

    fn has_deliverable(&self, cpu: usize) -> bool {
        let mut any = false;
        self.for_each_deliverable(cpu, |_| any = true);
        any
    }

    /// Every CPU with something deliverable: what a change of global state (GICD_CTLR, a
    /// redistributor waking) may have released.
    fn kick_all(&self) -> CpuSet {
        (0..self.cpus.len())
            .filter(|cpu| self.has_deliverable(*cpu))
            .collect()
    }

    /// The targets of the SPIs of bank `word` in `bits` that are deliverable now.
    fn kick_spis(&self, word: usize, bits: u32) -> CpuSet {
        let mut set = CpuSet::default();
        if !self.group1_enabled() {
            return set;
        }
        let Some(bank) = self.spis.banks.get(word) else {
            return set;
        };
        let any = self.first_awake();
        for n in each_bit(bank.ready() & bits) {
            if let Some(cpu) = self.spi_target(word * 32 + n as usize, any) {
                if self.cpus.get(cpu).is_some_and(|rd| !rd.asleep) {
                    set.insert(cpu);
                }
            }
        }
        set
    }

    /// A device drives SPI `intid`'s input (an edge-triggered SPI latches on a rising edge).
    /// Cheap to call with an unchanged level. Returns the CPU to kick if the SPI became
    /// pending and is deliverable. INTIDs that are not implemented SPIs
    /// are refused (counted in [`Stats::calls_rejected`]).
    pub fn set_spi_level(&mut self, intid: u32, high: bool) -> CpuSet {
        let Some(spi) = self.spi_index(intid) else {
            let _ = self.reject_call::<()>(ListError::NoInterrupt);
            return CpuSet::default();
        };
        let rose = self
            .spis
            .banks
            .get_mut(spi / 32)
            .is_some_and(|bank| bank.drive(spi as u32 % 32, high));
        if !rose {
            return CpuSet::default();
        }
        self.kick_spis(spi / 32, spi_bit(spi))
    }

    /// A device drives PPI `intid` (16-31) of CPU `cpu`. Returns `cpu` if the PPI became
    /// pending and is deliverable. Other INTIDs and CPUs are refused.
    pub fn set_ppi_level(&mut self, cpu: usize, intid: u32, high: bool) -> CpuSet {
        if !(SGI_COUNT..PRIVATE_COUNT).contains(&intid) {
            let _ = self.reject_call::<()>(ListError::NoInterrupt);
            return CpuSet::default();
        }
        let Some(rd) = self.cpus.get_mut(cpu) else {
            let _ = self.reject_call::<()>(ListError::NoCpu);
            return CpuSet::default();
        };
        if !rd.bank.drive(intid, high) {
            return CpuSet::default();
        }
        self.kick_private(cpu, 1 << intid)
    }

    /// `cpu` if any of its private interrupts in `bits` is deliverable now.
    fn kick_private(&self, cpu: usize, bits: u32) -> CpuSet {
        let mut set = CpuSet::default();
        if let Some(rd) = self.cpus.get(cpu) {
            if !rd.asleep && self.group1_enabled() && rd.bank.ready() & bits != 0 {
                set.insert(cpu);
            }
        }
        set
    }

    /// Parapet put `intid` into one of `cpu`'s list registers: it becomes active (see the
    /// module comment), its pending latch is cleared, and it is not offered again until
    /// [`VGic::completed`]. Refused unless the interrupt is deliverable to `cpu` now.
    pub fn inject(&mut self, cpu: usize, intid: u32) -> Result<Pending, ListError> {
        if cpu >= self.cpus.len() {
            return self.reject_call(ListError::NoCpu);
        }
        let mut found = None;
        self.for_each_deliverable(cpu, |p| {
            if p.intid == intid {
                found = Some(p);
            }
        });
        let Some(pending) = found else {
            return if intid < PRIVATE_COUNT || self.spi_index(intid).is_some() {
                self.reject_call(ListError::NotDeliverable)
            } else {
                self.reject_call(ListError::NoInterrupt)
            };
        };
        if let Some(spi) = self.spi_index(intid) {
            let bit = spi_bit(spi);
            if let Some(bank) = self.spis.banks.get_mut(spi / 32) {
                bank.latch &= !bit;
                bank.active |= bit;
                bank.listed |= bit;
            }
            if let Some(owner) = self.spis.owner.get_mut(spi) {
                *owner = cpu as u16;
            }
        } else if let Some(rd) = self.cpus.get_mut(cpu) {
            let bit = 1 << intid;
            rd.bank.latch &= !bit;
            rd.bank.active |= bit;
            rd.bank.listed |= bit;
        }
        Ok(pending)
    }

    /// `intid`'s list register on `cpu` went invalid: the guest deactivated it. It becomes
    /// inactive, or pending again if its level input is still high or a new edge, SGI or
    /// set-pending write arrived meanwhile. Returns the CPUs to kick: the interrupt's current
    /// target if it is deliverable again (an SPI may have been rerouted while listed).
    /// Refused unless `cpu` held `intid` in a list register.
    pub fn completed(&mut self, cpu: usize, intid: u32) -> Result<CpuSet, ListError> {
        if cpu >= self.cpus.len() {
            return self.reject_call(ListError::NoCpu);
        }
        if let Some(spi) = self.spi_index(intid) {
            let bit = spi_bit(spi);
            let owner = self.spis.owner.get(spi).copied().map(usize::from);
            let listed = self.spi_bank(spi).is_some_and(|b| b.listed & bit != 0);
            if !listed || owner != Some(cpu) {
                return self.reject_call(ListError::NotListed);
            }
            if let Some(bank) = self.spis.banks.get_mut(spi / 32) {
                bank.listed &= !bit;
                bank.active &= !bit;
            }
            return Ok(self.kick_spis(spi / 32, bit));
        }
        if intid >= PRIVATE_COUNT {
            return self.reject_call(ListError::NoInterrupt);
        }
        let bit = 1u32 << intid;
        let listed = self
            .cpus
            .get(cpu)
            .is_some_and(|rd| rd.bank.listed & bit != 0);
        if !listed {
            return self.reject_call(ListError::NotListed);
        }
        if let Some(rd) = self.cpus.get_mut(cpu) {
            rd.bank.listed &= !bit;
            rd.bank.active &= !bit;
        }
        Ok(self.kick_private(cpu, bit))
    }
}

/// The bit of SPI `spi` in its bank.
fn spi_bit(spi: usize) -> u32 {
    1 << (spi % 32)
}

/// IROUTER's affinity fields as GICR_TYPER[63:32] packs them: Aff3 (IROUTER 39:32) to bits
/// 31:24, Aff2.Aff1.Aff0 (IROUTER 23:0) as they are.
pub fn router_affinity(router: u64) -> u32 {
    ((((router >> 32) & 0xff) << 24) | (router & 0xff_ffff)) as u32
}

/// The IROUTER value (IRM 0) that routes to the CPU with `affinity` (GICR_TYPER[63:32] form).
pub fn affinity_router(affinity: u32) -> u64 {
    (u64::from(affinity >> 24) << 32) | u64::from(affinity & 0xff_ffff)
}

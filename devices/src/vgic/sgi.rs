//! SGIs from the guest's writes of ICC_SGI1R_EL1 (chapter 12, "ICC_SGI1R_EL1"), which trap to EL2.

use super::registers::*;
use super::{CpuSet, VGic};

/// An ICC_SGI1R_EL1 value taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sgi1r {
    /// INTID, bits 27:24.
    pub intid: u32,
    pub targets: SgiTargets,
}

/// Whom an SGI goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiTargets {
    /// IRM = 0: the PEs with affinity `Aff3.Aff2.Aff1.(RS * 16 + n)` for each bit n set in
    /// `target_list`. `cluster` is Aff3.Aff2.Aff1 in GICR_TYPER[63:32] form with Aff0 = 0.
    List {
        cluster: u32,
        range_selector: u32,
        target_list: u16,
    },
    /// IRM = 1: every PE but the sender (the affinity fields are RES0 and ignored).
    AllButSelf,
}

impl Sgi1r {
    /// Decodes a value written to ICC_SGI1R_EL1. Reserved bits (63:56, 43:41, 31:28) are
    /// ignored.
    pub fn decode(value: u64) -> Self {
        let intid = ((value >> SGI1R_INTID_SHIFT) & 0xf) as u32;
        let targets = if value & SGI1R_IRM != 0 {
            SgiTargets::AllButSelf
        } else {
            let aff1 = (value >> SGI1R_AFF1_SHIFT) & 0xff;
            let aff2 = (value >> SGI1R_AFF2_SHIFT) & 0xff;
            let aff3 = (value >> SGI1R_AFF3_SHIFT) & 0xff;
            SgiTargets::List {
                cluster: ((aff3 << 24) | (aff2 << 16) | (aff1 << 8)) as u32,
                range_selector: ((value >> SGI1R_RS_SHIFT) & 0xf) as u32,
                target_list: (value & SGI1R_TARGET_LIST) as u16,
            }
        };
        Self { intid, targets }
    }
}

impl VGic {
    /// CPU `from_cpu` wrote `value` to ICC_SGI1R_EL1: the SGI becomes pending on each target
    /// CPU where that SGI is in Group 1 (the forwarding rule for a single Security state).
    /// Returns those CPUs, to kick. Target-list bits that name no CPU are ignored; a sender
    /// that is not a CPU sends nothing (counted in [`super::Stats::sgis_rejected`]).
    pub fn send_sgi1r(&mut self, from_cpu: usize, value: u64) -> CpuSet {
        let mut forwarded = CpuSet::default();
        if from_cpu >= self.cpus.len() {
            self.stats.sgis_rejected = self.stats.sgis_rejected.saturating_add(1);
            return forwarded;
        }
        let sgi = Sgi1r::decode(value);
        let targets: CpuSet = match sgi.targets {
            SgiTargets::AllButSelf => (0..self.cpus.len()).filter(|c| *c != from_cpu).collect(),
            SgiTargets::List {
                cluster,
                range_selector,
                target_list,
            } => (0..16u32)
                .filter(|n| target_list & (1 << n) != 0)
                .filter_map(|n| self.cpu_with_affinity(cluster | (range_selector * 16 + n)))
                .collect(),
        };
        let bit = 1u32 << sgi.intid;
        for cpu in targets.iter() {
            let Some(rd) = self.cpus.get_mut(cpu) else {
                continue;
            };
            if rd.bank.group1 & bit != 0 {
                rd.bank.latch |= bit;
                forwarded.insert(cpu);
            }
        }
        forwarded
    }
}

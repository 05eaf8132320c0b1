//! Which VTLs are enabled, partition-wide and per VP, and the initial state VTL2 gave each
//! VP's VTL0 (TLFS §15.4-15.5: HvCallEnablePartitionVtl, HvCallEnableVpVtl).
//!
//! The partition starts with VTL2 enabled, where the paravisor runs. VTL2 enables VTL0 for
//! the partition (vmm-lite's VTL0 view of memory), then on each VP with the context VTL0
//! starts from. The VTL0 view and the VTL switch build on this state.

use hvdef::hypercall::{
    EnablePartitionVtl, InitialVpContext, VpVtlInput, PARTITION_SELF, VP_INDEX_SELF,
};
use hvdef::status::HvStatus;
use hvdef::vtl::Vtl;

/// The VTL the paravisor runs in.
pub const PARAVISOR_VTL: Vtl = Vtl::Vtl2;

#[derive(Debug)]
pub struct VsmState {
    /// Bit n: VTL n enabled for the partition.
    partition_vtls: u16,
    /// Per VP: bit n set when VTL n is enabled on it.
    vp_vtls: Vec<u16>,
    /// Per VP: VTL0's initial context, once enabled.
    vtl0_contexts: Vec<Option<InitialVpContext>>,
    /// Per VP: HvCallStartVirtualProcessor has started VTL0 there.
    vtl0_started: Vec<bool>,
}

impl VsmState {
    pub fn new(vps: usize) -> Self {
        let vtl2 = 1 << PARAVISOR_VTL as u16;
        Self {
            partition_vtls: vtl2,
            vp_vtls: vec![vtl2; vps],
            vtl0_contexts: vec![None; vps],
            vtl0_started: vec![false; vps],
        }
    }

    /// HvCallEnablePartitionVtl from VTL2. Only VTL0 can be enabled (VTL1 is not offered);
    /// no flags (MBEC) are supported.
    pub fn enable_partition_vtl(&mut self, input: &EnablePartitionVtl) -> Result<(), HvStatus> {
        self.check_enable_partition_vtl(input)?;
        self.partition_vtls |= 1 << input.target_vtl as u16;
        Ok(())
    }

    /// What HvCallEnablePartitionVtl would answer, without enabling anything.
    pub fn check_enable_partition_vtl(&self, input: &EnablePartitionVtl) -> Result<(), HvStatus> {
        if input.partition_id != PARTITION_SELF {
            return Err(HvStatus::INVALID_PARTITION_ID);
        }
        if input.flags != 0 || input.target_vtl == Vtl::Vtl1 {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        if input.target_vtl > PARAVISOR_VTL {
            return Err(HvStatus::ACCESS_DENIED);
        }
        let bit = 1 << input.target_vtl as u16;
        if self.partition_vtls & bit != 0 {
            return Err(HvStatus::INVALID_VTL_STATE);
        }
        Ok(())
    }

    /// HvCallEnableVpVtl from VTL2 on VP `caller`.
    pub fn enable_vp_vtl(&mut self, caller: usize, input: &VpVtlInput) -> Result<(), HvStatus> {
        let vp = self.check_enable_vp_vtl(caller, input)?;
        self.vp_vtls[vp] |= 1 << Vtl::Vtl0 as u16;
        self.vtl0_contexts[vp] = Some(input.context);
        Ok(())
    }

    /// What HvCallEnableVpVtl would answer, without enabling anything: the target VP's index.
    pub fn check_enable_vp_vtl(
        &self,
        caller: usize,
        input: &VpVtlInput,
    ) -> Result<usize, HvStatus> {
        if input.partition_id != PARTITION_SELF {
            return Err(HvStatus::INVALID_PARTITION_ID);
        }
        let vp = match input.vp_index {
            VP_INDEX_SELF => caller,
            i if (i as usize) < self.vp_vtls.len() => i as usize,
            _ => return Err(HvStatus::INVALID_VP_INDEX),
        };
        if input.target_vtl != Vtl::Vtl0 {
            return Err(if input.target_vtl > PARAVISOR_VTL {
                HvStatus::ACCESS_DENIED
            } else {
                HvStatus::INVALID_PARAMETER
            });
        }
        let bit = 1 << Vtl::Vtl0 as u16;
        if self.partition_vtls & bit == 0 {
            return Err(HvStatus::INVALID_VTL_STATE);
        }
        if self.vp_vtls[vp] & bit != 0 {
            return Err(HvStatus::VTL_ALREADY_ENABLED);
        }
        Ok(vp)
    }

    /// What HvCallStartVirtualProcessor from `caller` would answer: the target VP's index.
    /// Only VTL0 can be started: VTL2 runs on every VP from the start.
    pub fn check_start_vp(&self, caller: Vtl, input: &VpVtlInput) -> Result<usize, HvStatus> {
        if input.partition_id != PARTITION_SELF {
            return Err(HvStatus::INVALID_PARTITION_ID);
        }
        let vp = input.vp_index as usize;
        if vp >= self.vp_vtls.len() {
            return Err(HvStatus::INVALID_VP_INDEX);
        }
        match input.target_vtl {
            t if t > caller => return Err(HvStatus::ACCESS_DENIED),
            Vtl::Vtl1 => return Err(HvStatus::INVALID_PARAMETER),
            Vtl::Vtl2 => return Err(HvStatus::INVALID_VP_STATE),
            Vtl::Vtl0 => {}
        }
        if self.vtl0_contexts[vp].is_none() {
            return Err(HvStatus::INVALID_VTL_STATE);
        }
        if self.vtl0_started[vp] {
            return Err(HvStatus::INVALID_VP_STATE);
        }
        Ok(vp)
    }

    /// Records that VTL0 was started on `vp`.
    pub fn mark_started(&mut self, vp: usize) {
        self.vtl0_started[vp] = true;
    }

    /// HvRegisterVsmVpStatus: 3:0 ActiveVtl, 31:16 EnabledVtlSet.
    pub fn vp_status(&self, vp: usize, active: Vtl) -> u64 {
        active as u64 | (u64::from(self.vp_vtls[vp]) << 16)
    }

    /// HvRegisterVsmPartitionStatus: 15:0 EnabledVtlSet, 19:16 MaximumVtl.
    pub fn partition_status(&self) -> u64 {
        u64::from(self.partition_vtls) | ((PARAVISOR_VTL as u64) << 16)
    }

    /// VTL0's initial context on VP `vp`, once VTL2 has enabled it there.
    pub fn vtl0_context(&self, vp: usize) -> Option<&InitialVpContext> {
        self.vtl0_contexts.get(vp)?.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(target: Vtl) -> EnablePartitionVtl {
        EnablePartitionVtl {
            partition_id: PARTITION_SELF,
            target_vtl: target,
            flags: 0,
        }
    }

    fn vp(index: u32, target: Vtl, rip: u64) -> VpVtlInput {
        let context = InitialVpContext {
            rip,
            ..Default::default()
        };
        VpVtlInput {
            partition_id: PARTITION_SELF,
            vp_index: index,
            target_vtl: target,
            context,
        }
    }

    #[test]
    fn vtl0_is_enabled_for_the_partition_then_once_per_vp() {
        let mut s = VsmState::new(2);
        assert_eq!(
            s.enable_vp_vtl(0, &vp(0, Vtl::Vtl0, 0x1000)),
            Err(HvStatus::INVALID_VTL_STATE),
            "partition first"
        );
        s.enable_partition_vtl(&partition(Vtl::Vtl0)).unwrap();
        assert_eq!(
            s.enable_partition_vtl(&partition(Vtl::Vtl0)),
            Err(HvStatus::INVALID_VTL_STATE)
        );
        s.enable_vp_vtl(0, &vp(VP_INDEX_SELF, Vtl::Vtl0, 0x1000))
            .unwrap();
        s.enable_vp_vtl(0, &vp(1, Vtl::Vtl0, 0x2000)).unwrap();
        assert_eq!(
            s.enable_vp_vtl(1, &vp(1, Vtl::Vtl0, 0x3000)),
            Err(HvStatus::VTL_ALREADY_ENABLED)
        );
        assert_eq!(
            s.vtl0_context(1).map(|c| c.rip),
            Some(0x2000),
            "the first context stays"
        );
        assert_eq!(s.vp_status(1, Vtl::Vtl2), 2 | (0b101 << 16));
        assert_eq!(s.partition_status(), 0b101 | (2 << 16));
    }

    #[test]
    fn vtl0_starts_once_on_an_enabled_vp() {
        let mut s = VsmState::new(2);
        let start = |vp_index| VpVtlInput {
            vp_index,
            ..vp(vp_index, Vtl::Vtl0, 0x2000)
        };
        assert_eq!(
            s.check_start_vp(Vtl::Vtl2, &start(1)),
            Err(HvStatus::INVALID_VTL_STATE)
        );
        s.enable_partition_vtl(&partition(Vtl::Vtl0)).unwrap();
        s.enable_vp_vtl(0, &vp(1, Vtl::Vtl0, 0x1000)).unwrap();
        assert_eq!(s.check_start_vp(Vtl::Vtl2, &start(1)), Ok(1));
        s.mark_started(1);
        assert_eq!(
            s.check_start_vp(Vtl::Vtl0, &start(1)),
            Err(HvStatus::INVALID_VP_STATE)
        );
        assert_eq!(
            s.check_start_vp(Vtl::Vtl2, &start(7)),
            Err(HvStatus::INVALID_VP_INDEX)
        );
        let vtl2 = VpVtlInput {
            target_vtl: Vtl::Vtl2,
            ..start(0)
        };
        assert_eq!(
            s.check_start_vp(Vtl::Vtl0, &vtl2),
            Err(HvStatus::ACCESS_DENIED)
        );
        assert_eq!(
            s.check_start_vp(Vtl::Vtl2, &vtl2),
            Err(HvStatus::INVALID_VP_STATE)
        );
    }

    #[test]
    fn bad_targets_partitions_and_vps_get_the_spec_statuses() {
        let mut s = VsmState::new(2);
        assert_eq!(
            s.enable_partition_vtl(&partition(Vtl::Vtl1)),
            Err(HvStatus::INVALID_PARAMETER),
            "no VTL1 here"
        );
        assert_eq!(
            s.enable_partition_vtl(&partition(Vtl::Vtl2)),
            Err(HvStatus::INVALID_VTL_STATE),
            "already on"
        );
        let other = EnablePartitionVtl {
            partition_id: 7,
            ..partition(Vtl::Vtl0)
        };
        assert_eq!(
            s.enable_partition_vtl(&other),
            Err(HvStatus::INVALID_PARTITION_ID)
        );
        let mbec = EnablePartitionVtl {
            flags: 1,
            ..partition(Vtl::Vtl0)
        };
        assert_eq!(
            s.enable_partition_vtl(&mbec),
            Err(HvStatus::INVALID_PARAMETER)
        );
        s.enable_partition_vtl(&partition(Vtl::Vtl0)).unwrap();
        assert_eq!(
            s.enable_vp_vtl(0, &vp(9, Vtl::Vtl0, 0)),
            Err(HvStatus::INVALID_VP_INDEX)
        );
        assert_eq!(
            s.enable_vp_vtl(0, &vp(0, Vtl::Vtl1, 0)),
            Err(HvStatus::INVALID_PARAMETER)
        );
        assert_eq!(s.vtl0_context(0), None);
    }
}

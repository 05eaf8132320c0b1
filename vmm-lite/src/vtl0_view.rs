//! VTL0's view of the partition: a second KVM VM over the same guest RAM, without the
//! paravisor's region, and one vCPU per VP on which VTL0 has been enabled.
//!
//! KVM has no VTLs, so vmm-lite gives each VTL its own VM (../shared/MACHINE-FACTS.md, "Two
//! KVM VMs as two VTL views"): both map the one host mapping, so memory VTL0 writes is what
//! VTL2 reads, and a VTL0 access to the hole is an MMIO exit that never reaches VTL2's bytes.

use std::sync::Mutex;

use hvdef::hypercall::InitialVpContext;
use kvm_bindings::{kvm_userspace_memory_region, CpuId};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use crate::error::VmmError;
use crate::guest_memory::GuestMemory;
use crate::vcpu_state::kvm_segment_of;
use crate::vm::{cpuid_for, kvm, synthetic_msrs_exit_to_user_space, TSS_ADDRESS};

const PAGE: u64 = 4096;

/// The guest-physical runs VTL0 sees: RAM `[0, ram)` less every `hidden` (start, size) range,
/// widened to whole pages (KVM maps pages). Sorted, non-empty, non-overlapping.
pub fn visible_runs(ram: u64, hidden: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut holes: Vec<(u64, u64)> = hidden
        .iter()
        .filter(|(_, size)| *size > 0)
        .map(|&(start, size)| {
            let end = start.saturating_add(size).min(ram);
            (
                start & !(PAGE - 1),
                end.saturating_add(PAGE - 1) & !(PAGE - 1),
            )
        })
        .collect();
    holes.sort_unstable();
    let mut runs = Vec::new();
    let mut at = 0;
    for (start, end) in holes {
        if start > at {
            runs.push((at, start.min(ram) - at));
        }
        at = at.max(end);
    }
    if at < ram {
        runs.push((at, ram - at));
    }
    runs.retain(|&(_, size)| size > 0);
    runs
}

pub struct Vtl0View {
    vm: VmFd,
    cpuid: CpuId,
    vps: u32,
}

impl Vtl0View {
    /// Creates the view of `memory` without `hidden`, with an in-kernel local APIC per VP
    /// and `cpuid` as every VP's CPUID table.
    ///
    /// The view's slots point into `memory`'s mapping, so `memory` must outlive the view.
    pub fn new(
        kvm_fd: &Kvm,
        memory: &GuestMemory,
        hidden: &[(u64, u64)],
        cpuid: CpuId,
        vps: u32,
    ) -> Result<Self, VmmError> {
        let vm = kvm("KVM_CREATE_VM (VTL0)", kvm_fd.create_vm())?;
        kvm("KVM_SET_TSS_ADDR (VTL0)", vm.set_tss_address(TSS_ADDRESS))?;
        kvm("KVM_CREATE_IRQCHIP (VTL0)", vm.create_irq_chip())?;
        // VTL0's synthetic MSRs are vmm-lite's, or VTL2's when it intercepts MSRs.
        synthetic_msrs_exit_to_user_space(&vm)?;
        for (slot, (start, size)) in visible_runs(memory.size(), hidden).into_iter().enumerate() {
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: start,
                memory_size: size,
                userspace_addr: memory.host_address() + start,
            };
            // SAFETY: the run lies inside `memory`'s mapping (visible_runs stays below its
            // size), which the caller keeps alive as long as the view.
            kvm("KVM_SET_USER_MEMORY_REGION (VTL0)", unsafe {
                vm.set_user_memory_region(region)
            })?;
        }
        Ok(Self { vm, cpuid, vps })
    }

    /// Creates VP `index`'s VTL0 vCPU in the state VTL2 gave (HvCallEnableVpVtl's
    /// HV_INITIAL_VP_CONTEXT); the general-purpose registers other than RSP start at zero.
    pub fn create_vp(&self, index: u32, ctx: &InitialVpContext) -> Result<VcpuFd, VmmError> {
        let vcpu = kvm(
            "KVM_CREATE_VCPU (VTL0)",
            self.vm.create_vcpu(u64::from(index)),
        )?;
        kvm(
            "KVM_SET_CPUID2 (VTL0)",
            vcpu.set_cpuid2(&cpuid_for(&self.cpuid, index, self.vps)),
        )?;
        let mut sregs = kvm("KVM_GET_SREGS (VTL0)", vcpu.get_sregs())?;
        sregs.cs = kvm_segment_of(&ctx.cs);
        sregs.ds = kvm_segment_of(&ctx.ds);
        sregs.es = kvm_segment_of(&ctx.es);
        sregs.fs = kvm_segment_of(&ctx.fs);
        sregs.gs = kvm_segment_of(&ctx.gs);
        sregs.ss = kvm_segment_of(&ctx.ss);
        sregs.tr = kvm_segment_of(&ctx.tr);
        sregs.ldt = kvm_segment_of(&ctx.ldtr);
        (sregs.idt.base, sregs.idt.limit) = (ctx.idtr.base, ctx.idtr.limit);
        (sregs.gdt.base, sregs.gdt.limit) = (ctx.gdtr.base, ctx.gdtr.limit);
        (sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer) = (ctx.cr0, ctx.cr3, ctx.cr4, ctx.efer);
        kvm("KVM_SET_SREGS (VTL0)", vcpu.set_sregs(&sregs))?;
        let mut regs = kvm("KVM_GET_REGS (VTL0)", vcpu.get_regs())?;
        regs.rip = ctx.rip;
        regs.rsp = ctx.rsp;
        // Bit 1 of RFLAGS is reserved as one (Intel SDM Vol. 1 §3.4.3).
        regs.rflags = ctx.rflags | 0x2;
        kvm("KVM_SET_REGS (VTL0)", vcpu.set_regs(&regs))?;
        Ok(vcpu)
    }
}

/// VTL0 on the host, built as VTL2 enables it: the view at HvCallEnablePartitionVtl, a VP's
/// vCPU at HvCallEnableVpVtl. A VP's own thread takes its vCPU when it first enters VTL0.
pub struct Vtl0Host {
    kvm: Kvm,
    hidden: Vec<(u64, u64)>,
    cpuid: CpuId,
    vps: u32,
    view: Mutex<Option<Vtl0View>>,
    vcpus: Vec<Mutex<Option<VcpuFd>>>,
}

impl Vtl0Host {
    /// `hidden`: the paravisor's (start, size) regions; `cpuid`: VTL0's CPUID table.
    pub fn new(hidden: Vec<(u64, u64)>, cpuid: CpuId, vps: u32) -> Result<Self, VmmError> {
        Ok(Self {
            kvm: Kvm::new().map_err(VmmError::NoKvm)?,
            hidden,
            cpuid,
            vps,
            view: Mutex::new(None),
            vcpus: (0..vps).map(|_| Mutex::new(None)).collect(),
        })
    }

    /// Builds the view; the guest RAM's mapping lives as long as the process.
    pub fn enable_partition(&self, memory: &GuestMemory) -> Result<(), VmmError> {
        let view = Vtl0View::new(
            &self.kvm,
            memory,
            &self.hidden,
            self.cpuid.clone(),
            self.vps,
        )?;
        *lock(&self.view) = Some(view);
        Ok(())
    }

    /// Creates VP `vp`'s VTL0 vCPU; the view must exist.
    pub fn enable_vp(&self, vp: usize, ctx: &InitialVpContext) -> Result<(), VmmError> {
        let view = lock(&self.view);
        let view = view.as_ref().ok_or(VmmError::Kvm(
            "creating a VTL0 vCPU before the VTL0 view",
            kvm_ioctls::Error::new(libc::EINVAL),
        ))?;
        let vcpu = view.create_vp(vp as u32, ctx)?;
        *lock(&self.vcpus[vp]) = Some(vcpu);
        Ok(())
    }

    /// Hands VP `vp`'s VTL0 vCPU to the thread that runs it.
    pub fn take_vp(&self, vp: usize) -> Option<VcpuFd> {
        lock(self.vcpus.get(vp)?).take()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// The view at work (shared RAM, the hidden region an MMIO exit) is tested through the
// hypercalls that build it, in `hyperv`.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_leave_out_the_hidden_pages() {
        let mib = 1 << 20;
        assert_eq!(visible_runs(4 * mib, &[]), [(0, 4 * mib)]);
        assert_eq!(
            visible_runs(4 * mib, &[(mib, mib)]),
            [(0, mib), (2 * mib, 2 * mib)]
        );
        // Partial pages widen to whole ones; empty ranges hide nothing.
        assert_eq!(
            visible_runs(4 * mib, &[(0x1800, 0x10), (0x9000, 0)]),
            [(0, 0x1000), (0x2000, 4 * mib - 0x2000)]
        );
        // Overlapping, unsorted, at the edges, and beyond RAM.
        assert_eq!(
            visible_runs(
                4 * mib,
                &[
                    (3 * mib, 2 * mib),
                    (0, 0x1000),
                    (0x3000, 0x2000),
                    (0x4000, 0x2000)
                ]
            ),
            [(0x1000, 0x2000), (0x6000, 3 * mib - 0x6000)]
        );
        assert_eq!(visible_runs(mib, &[(0, u64::MAX)]), []);
    }
}

//! VTL0's view of the partition: a second KVM VM over the same guest RAM, without the
//! paravisor's region, and one vCPU per VP on which VTL0 has been enabled.
//!
//! KVM has no VTLs, so vmm-lite gives each VTL its own VM (../shared/MACHINE-FACTS.md, "Two
//! KVM VMs as two VTL views"): both map the one host mapping, so memory VTL0 writes is what
//! VTL2 reads, and a VTL0 access to the hole is an MMIO exit that never reaches VTL2's bytes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use hvdef::hypercall::{AssertVirtualInterrupt, InitialVpContext, InterruptType};
use kvm_bindings::{
    kvm_enable_cap, kvm_mp_state, kvm_msi, kvm_userspace_memory_region, CpuId,
    KVM_CAP_SPLIT_IRQCHIP, KVM_MEM_READONLY, KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use hvdef::status::HvStatus;

use crate::error::VmmError;
use crate::guest_memory::GuestMemory;
use crate::vcpu_state::kvm_segment_of;
use crate::vm::{cpuid_for, kvm, synthetic_msrs_exit_to_user_space, TSS_ADDRESS};
use crate::vtl_protections::{Protections, SlotRun, PAGE};

/// Interrupt routes KVM keeps for the split irqchip's user-space I/O APIC: its 24 pins (none
/// are used; VTL2 sends MSIs).
const SPLIT_IRQCHIP_ROUTES: u64 = 24;
/// The MSI address window (Intel SDM Vol. 3A §11.11.1): 0xFEE in bits 31:20, the destination
/// APIC ID in 19:12, destination mode (1 = logical) in bit 2.
const MSI_ADDRESS_BASE: u32 = 0xfee0_0000;
const MSI_DESTINATION_SHIFT: u32 = 12;
const MSI_LOGICAL: u32 = 1 << 2;
/// MSI data (§11.11.2): vector 7:0, delivery mode 10:8, level (1 = assert) 14, trigger
/// mode (1 = level) 15.
const MSI_DELIVERY_SHIFT: u32 = 8;
const MSI_ASSERT: u32 = 1 << 14;
const MSI_LEVEL_TRIGGERED: u32 = 1 << 15;

pub struct Vtl0View {
    vm: VmFd,
    cpuid: CpuId,
    vps: u32,
    /// Where guest RAM is mapped in this process.
    host_base: u64,
    protections: Protections,
    /// The memory slots in place, by slot number.
    slots: Vec<SlotRun>,
}

impl Vtl0View {
    /// Creates the view of `memory` without `hidden`, with an in-kernel local APIC per VP
    /// and `cpuid` as every VP's CPUID table.
    ///
    /// The interrupt controllers are split: KVM keeps the local APICs, and the I/O APIC and
    /// PICs are not KVM's (`KVM_CAP_SPLIT_IRQCHIP`), so VTL0's accesses to them are exits
    /// VTL2 sees, as a paravisor emulating VTL0's chipset needs. VTL2 delivers the
    /// interrupts of its devices with HvCallAssertVirtualInterrupt ([`Vtl0Host::assert_interrupt`]).
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
        let split = kvm_enable_cap {
            cap: KVM_CAP_SPLIT_IRQCHIP,
            args: [SPLIT_IRQCHIP_ROUTES, 0, 0, 0],
            ..Default::default()
        };
        kvm(
            "KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP) (VTL0)",
            vm.enable_cap(&split),
        )?;
        // VTL0's synthetic MSRs are vmm-lite's, or VTL2's when it intercepts MSRs.
        synthetic_msrs_exit_to_user_space(&vm)?;
        let mut view = Self {
            vm,
            cpuid,
            vps,
            host_base: memory.host_address(),
            protections: Protections::new(memory.size(), hidden),
            slots: Vec::new(),
        };
        view.sync_slots()?;
        Ok(view)
    }

    /// Makes the memory slots match the protections, touching only slots that change: first
    /// every changed slot goes (KVM refuses overlapping slots), then the new ones come. A VTL0
    /// access in between exits, and `vp` completes it on guest RAM.
    fn sync_slots(&mut self) -> Result<(), VmmError> {
        let wanted = self.protections.slot_runs();
        let changed: Vec<usize> = (0..wanted.len().max(self.slots.len()))
            .filter(|&slot| self.slots.get(slot) != wanted.get(slot))
            .collect();
        for &slot in &changed {
            if slot < self.slots.len() {
                self.set_slot(slot as u32, (0, 0, false))?; // size 0 deletes it
            }
        }
        for &slot in &changed {
            if let Some(&run) = wanted.get(slot) {
                self.set_slot(slot as u32, run)?;
            }
        }
        self.slots = wanted;
        Ok(())
    }

    fn set_slot(&self, slot: u32, (start, size, read_only): SlotRun) -> Result<(), VmmError> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: if read_only { KVM_MEM_READONLY } else { 0 },
            guest_phys_addr: start,
            memory_size: size,
            userspace_addr: self.host_base + start,
        };
        // SAFETY: every run lies inside guest RAM (Protections stays below its size), whose
        // host mapping the caller keeps alive as long as the view.
        kvm("KVM_SET_USER_MEMORY_REGION (VTL0)", unsafe {
            self.vm.set_user_memory_region(region)
        })
    }

    /// Creates VP `index`'s VTL0 vCPU in the state VTL2 gave (HvCallEnableVpVtl's
    /// HV_INITIAL_VP_CONTEXT).
    pub fn create_vp(&self, index: u32, ctx: &InitialVpContext) -> Result<VcpuFd, VmmError> {
        let vcpu = kvm(
            "KVM_CREATE_VCPU (VTL0)",
            self.vm.create_vcpu(u64::from(index)),
        )?;
        kvm(
            "KVM_SET_CPUID2 (VTL0)",
            vcpu.set_cpuid2(&cpuid_for(&self.cpuid, index, self.vps)),
        )?;
        apply_context(&vcpu, ctx)?;
        Ok(vcpu)
    }
}

/// Starts `vcpu` at `ctx` (StartVirtualProcessor): the state, then runnable.
pub fn start(vcpu: &VcpuFd, ctx: &InitialVpContext) -> Result<(), VmmError> {
    apply_context(vcpu, ctx)?;
    let runnable = kvm_mp_state {
        mp_state: KVM_MP_STATE_RUNNABLE,
    };
    kvm("KVM_SET_MP_STATE (VTL0)", vcpu.set_mp_state(runnable))
}

/// Puts `vcpu` in the state `ctx` describes; the general-purpose registers other than RSP
/// become zero.
fn apply_context(vcpu: &VcpuFd, ctx: &InitialVpContext) -> Result<(), VmmError> {
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
    let regs = kvm_bindings::kvm_regs {
        rip: ctx.rip,
        rsp: ctx.rsp,
        rflags: crate::vcpu_state::sanitize_rflags(ctx.rflags),
        ..Default::default()
    };
    kvm("KVM_SET_REGS (VTL0)", vcpu.set_regs(&regs))
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
    /// Per VP: a StartVirtualProcessor context for a vCPU its thread holds.
    pending_starts: Vec<Mutex<Option<InitialVpContext>>>,
    /// Per VP: VTL0 has been seen running there (its vCPU made an exit or was started).
    running: Vec<AtomicBool>,
}

impl Vtl0Host {
    /// `kvm`: the KVM device VTL0's VM is made on; `hidden`: the paravisor's (start, size)
    /// regions; `cpuid`: VTL0's CPUID table.
    pub fn new(kvm: Kvm, hidden: Vec<(u64, u64)>, cpuid: CpuId, vps: u32) -> Self {
        Self {
            kvm,
            hidden,
            cpuid,
            vps,
            view: Mutex::new(None),
            vcpus: (0..vps).map(|_| Mutex::new(None)).collect(),
            pending_starts: (0..vps).map(|_| Mutex::new(None)).collect(),
            running: (0..vps).map(|_| AtomicBool::new(false)).collect(),
        }
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
    ///
    /// VTL0 is started on the VP that enables it for itself: it runs from `ctx` at that VP's
    /// next VTL return. On another VP it is enabled but not started: it waits for
    /// StartVirtualProcessor, or for INIT and SIPI from a VTL0 local APIC, as a VP that was
    /// never started does.
    pub fn enable_vp(
        &self,
        vp: usize,
        ctx: &InitialVpContext,
        started: bool,
    ) -> Result<(), VmmError> {
        let view = lock(&self.view);
        let view = view.as_ref().ok_or(VmmError::Kvm(
            "creating a VTL0 vCPU before the VTL0 view",
            kvm_ioctls::Error::new(libc::EINVAL),
        ))?;
        let vcpu = view.create_vp(vp as u32, ctx)?;
        let mp_state = if started {
            KVM_MP_STATE_RUNNABLE
        } else {
            KVM_MP_STATE_UNINITIALIZED
        };
        kvm(
            "KVM_SET_MP_STATE (VTL0)",
            vcpu.set_mp_state(kvm_mp_state { mp_state }),
        )?;
        *lock(&self.vcpus[vp]) = Some(vcpu);
        Ok(())
    }

    /// HvCallModifyVtlProtectionMask: VTL0's access to each page number in `pages` becomes
    /// `flags`. Returns how many pages were done before a failure.
    pub fn modify_protections(&self, pages: &[u64], flags: u32) -> Result<(), (HvStatus, usize)> {
        Protections::check_flags(flags).map_err(|s| (s, 0))?;
        let mut view = lock(&self.view);
        let view = view.as_mut().ok_or((HvStatus::INVALID_VTL_STATE, 0))?;
        let mut result = Ok(());
        for (done, &page) in pages.iter().enumerate() {
            if let Err(status) = view.protections.set(page, flags) {
                result = Err((status, done));
                break;
            }
        }
        let done = result.map_or_else(|(_, done)| done, |()| pages.len());
        view.sync_slots().map_err(|e| {
            eprintln!("vmm-lite: ModifyVtlProtectionMask: {e}");
            (HvStatus::INSUFFICIENT_MEMORY, done)
        })?;
        result
    }

    /// VTL0's access to the page holding `gpa` (none before VTL0 is enabled).
    pub fn access(&self, gpa: u64) -> u32 {
        lock(&self.view)
            .as_ref()
            .map_or(0, |v| v.protections.access(gpa / PAGE))
    }

    /// HvCallStartVirtualProcessor for VTL0 on VP `vp`: its vCPU takes `ctx` and becomes
    /// runnable. A vCPU still here is set at once; one its VP's thread has taken (VTL2 there
    /// is hosting VTL0, which waits to be started) gets the context through
    /// [`Self::take_pending_start`] when that thread next runs it.
    pub fn start_vp(&self, vp: usize, ctx: &InitialVpContext) -> Result<(), HvStatus> {
        let slot = lock(self.vcpus.get(vp).ok_or(HvStatus::INVALID_VP_INDEX)?);
        // A VP already running VTL0 (its own entry, or started by INIT-SIPI) is not restarted.
        if self.running[vp].load(Ordering::Acquire) {
            return Err(HvStatus::INVALID_VP_STATE);
        }
        match slot.as_ref() {
            Some(vcpu) => start(vcpu, ctx).map_err(|e| {
                eprintln!("vmm-lite: StartVirtualProcessor on VP {vp}: {e}");
                HvStatus::INVALID_VP_STATE
            }),
            None => {
                *lock(&self.pending_starts[vp]) = Some(*ctx);
                Ok(())
            }
        }
    }

    /// A start VP `vp`'s thread must apply to the VTL0 vCPU it holds.
    pub fn take_pending_start(&self, vp: usize) -> Option<InitialVpContext> {
        lock(self.pending_starts.get(vp)?).take()
    }

    /// Hands VP `vp`'s VTL0 vCPU to the thread that runs it.
    pub fn take_vp(&self, vp: usize) -> Option<VcpuFd> {
        let vcpu = lock(self.vcpus.get(vp)?).take()?;
        if vcpu
            .get_mp_state()
            .is_ok_and(|s| s.mp_state == KVM_MP_STATE_RUNNABLE)
        {
            self.mark_running(vp);
        }
        Some(vcpu)
    }

    /// HvCallAssertVirtualInterrupt into VTL0: the interrupt goes to the local APIC(s) it
    /// names as the MSI that says the same. Destinations are 8-bit xAPIC ones here.
    pub fn assert_interrupt(&self, input: &AssertVirtualInterrupt) -> Result<(), HvStatus> {
        let bad = HvStatus::INVALID_PARAMETER;
        let destination = u8::try_from(input.destination).map_err(|_| bad)?;
        let vector = u8::try_from(input.vector).map_err(|_| bad)?;
        // Vectors 0-15 are reserved for exceptions: a fixed interrupt there is an illegal
        // vector (SDM §11.5.3), which a hypervisor refuses rather than delivers.
        let vectored = matches!(
            input.interrupt_type,
            InterruptType::Fixed | InterruptType::LowestPriority
        );
        if vectored && vector < 16 {
            return Err(bad);
        }
        let mut address = MSI_ADDRESS_BASE | u32::from(destination) << MSI_DESTINATION_SHIFT;
        if input.logical_destination {
            address |= MSI_LOGICAL;
        }
        let mut data =
            u32::from(vector) | (input.interrupt_type as u32) << MSI_DELIVERY_SHIFT | MSI_ASSERT;
        if input.level_triggered {
            data |= MSI_LEVEL_TRIGGERED;
        }
        let msi = kvm_msi {
            address_lo: address,
            address_hi: 0,
            data,
            ..Default::default()
        };
        let view = lock(&self.view);
        let view = view.as_ref().ok_or(HvStatus::INVALID_VTL_STATE)?;
        // 0: no APIC took it (masked, or software-disabled), as on hardware; not an error.
        view.vm.signal_msi(msi).map(|_| ()).map_err(|e| {
            eprintln!("vmm-lite: AssertVirtualInterrupt: KVM_SIGNAL_MSI: {e}");
            HvStatus::INVALID_PARAMETER
        })
    }

    /// Whether VTL0 has been seen running on VP `vp`.
    pub fn is_running(&self, vp: usize) -> bool {
        self.running
            .get(vp)
            .is_some_and(|flag| flag.load(Ordering::Acquire))
    }

    /// Records that VTL0 runs on VP `vp`; a start still waiting for it is void.
    pub fn mark_running(&self, vp: usize) {
        if let Some(flag) = self.running.get(vp) {
            if !flag.swap(true, Ordering::AcqRel) {
                if let Some(pending) = self.pending_starts.get(vp) {
                    lock(pending).take();
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! A KVM virtual machine running the firmware: one memory slot of guest RAM, the in-kernel
//! local APICs and PIT, and one host thread per VP.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;

use igvm_defs::IgvmNativeVpContextX64;
use kvm_bindings::{
    kvm_cpuid_entry2, kvm_enable_cap, kvm_pit_config, kvm_segment, kvm_userspace_memory_region,
    CpuId, KVM_CAP_X86_USER_SPACE_MSR, KVM_MAX_CPUID_ENTRIES, KVM_MSR_EXIT_REASON_FILTER,
    KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, MsrFilterDefaultAction, MsrFilterRange, MsrFilterRangeFlags, VcpuFd, VmFd};

use crate::error::VmmError;
use crate::guest_memory::GuestMemory;
use crate::hyperv::HyperV;
use crate::kick::Kicker;
use crate::serial::Com1;
use crate::vp::{HostDevices, Vp};
use crate::vtl0_view::Vtl0Host;

/// Where KVM may put the TSS it needs on Intel hosts: just below the BIOS, outside RAM.
pub(crate) const TSS_ADDRESS: usize = 0xfffb_d000;

/// Where vmm-lite finds KVM unless `--kvm-device` says otherwise.
pub const DEFAULT_KVM_DEVICE: &str = "/dev/kvm";
/// What KVM_GET_API_VERSION answers on every KVM since Linux 2.6.22 (`KVM_API_VERSION` in
/// Linux `include/uapi/linux/kvm.h`).
const KVM_API_VERSION: i32 = 12;

/// Opens the KVM device at `path`, checking first that it is a character device (opening a
/// FIFO would block) and then that it answers as KVM does.
pub fn open_kvm(path: &Path) -> Result<Kvm, VmmError> {
    let no_kvm = |reason: String| VmmError::NoKvm {
        path: path.display().to_string(),
        reason,
    };
    let cannot_open = |e: &dyn std::fmt::Display| {
        no_kvm(format!(
            "{e}; is KVM available here, and may this user open it?"
        ))
    };
    let metadata = std::fs::metadata(path).map_err(|e| cannot_open(&e))?;
    if !metadata.file_type().is_char_device() {
        return Err(no_kvm("not a character device".into()));
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| no_kvm("the path holds a NUL byte".into()))?;
    let kvm = Kvm::new_with_path(&c_path).map_err(|e| cannot_open(&e))?;
    match kvm.get_api_version() {
        KVM_API_VERSION => Ok(kvm),
        v if v < 0 => Err(no_kvm(format!(
            "KVM_GET_API_VERSION failed: {}",
            std::io::Error::last_os_error()
        ))),
        v => Err(no_kvm(format!(
            "KVM API version {v}, expected {KVM_API_VERSION}"
        ))),
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
    /// KVM could not go on with a vCPU.
    KvmCannotRun(crate::kvm_failure::KvmFailure),
}

pub struct Vm {
    _kvm: Kvm,
    vm: VmFd,
    vcpus: Vec<VcpuFd>,
    memory: Arc<GuestMemory>,
    hyperv: Option<Arc<HyperV>>,
}

pub(crate) fn kvm<T>(what: &'static str, r: Result<T, kvm_ioctls::Error>) -> Result<T, VmmError> {
    r.map_err(|e| VmmError::Kvm(what, e))
}

/// The CPUID table for VP `id` of `vps`: the APIC ID KVM gives the VP (its index) in leaf 1
/// EBX[31:24] and the x2APIC ID leaves 0xB/0x1F EDX, and the logical processor count in leaf 1
/// EBX[23:16] (Intel SDM Vol. 2A, CPUID), so what software reads matches the local APIC.
pub(crate) fn cpuid_for(table: &kvm_bindings::CpuId, id: u32, vps: u32) -> kvm_bindings::CpuId {
    let mut table = table.clone();
    for entry in table.as_mut_slice() {
        match entry.function {
            1 => {
                entry.ebx =
                    (entry.ebx & 0x0000_ffff) | ((id & 0xff) << 24) | ((vps.min(255)) << 16);
            }
            0xb | 0x1f => entry.edx = id,
            _ => {}
        }
    }
    table
}

/// Maps all of `memory` at guest-physical 0 in `vm`'s slot 0.
///
/// # Safety
/// `memory` must outlive `vm`: KVM keeps using its host mapping.
pub(crate) unsafe fn map_all_ram(vm: &VmFd, memory: &GuestMemory) -> Result<(), VmmError> {
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: memory.size(),
        userspace_addr: memory.host_address(),
    };
    // SAFETY: the region is `memory`'s own mapping, which the caller keeps alive.
    kvm("KVM_SET_USER_MEMORY_REGION", unsafe {
        vm.set_user_memory_region(region)
    })
}

/// Decodes IGVM/VMX segment attributes (type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15).
pub(crate) fn segment(base: u64, limit: u32, selector: u16, attributes: u16) -> kvm_segment {
    let bit = |n: u16| ((attributes >> n) & 1) as u8;
    kvm_segment {
        base,
        limit,
        selector,
        type_: (attributes & 0xf) as u8,
        present: bit(7),
        dpl: ((attributes >> 5) & 3) as u8,
        db: bit(14),
        s: bit(4),
        l: bit(13),
        g: bit(15),
        avl: bit(12),
        unusable: 0,
        padding: 0,
    }
}

impl Vm {
    /// Creates the VM with `memory` as its RAM and `vps` VPs, VP 0 set to `context`; with
    /// `hyperv`, the VM offers the Hyper-V interface (CPUID leaves, synthetic MSRs, hypercalls)
    /// and VTL0, whose view leaves out `paravisor_regions` (start, size). KVM is opened at
    /// `kvm_device`.
    pub fn new(
        kvm_device: &Path,
        memory: GuestMemory,
        vps: u32,
        context: &IgvmNativeVpContextX64,
        hyperv: Option<HyperV>,
        paravisor_regions: &[(u64, u64)],
    ) -> Result<Self, VmmError> {
        let kvm_fd = open_kvm(kvm_device)?;
        let vm = kvm("KVM_CREATE_VM", kvm_fd.create_vm())?;
        kvm("KVM_SET_TSS_ADDR", vm.set_tss_address(TSS_ADDRESS))?;
        kvm("KVM_CREATE_IRQCHIP", vm.create_irq_chip())?;
        // The dummy speaker port (0x61) lets the firmware gate PIT channel 2 to calibrate.
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        kvm("KVM_CREATE_PIT2", vm.create_pit2(pit))?;
        // SAFETY: the Vm owns `memory`, which outlives the VM fd (fields drop in order: vcpus
        // and vm before memory).
        unsafe { map_all_ram(&vm, &memory) }?;
        let mut cpuid = kvm(
            "KVM_GET_SUPPORTED_CPUID",
            kvm_fd.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES),
        )?;
        let hyperv = match hyperv {
            Some(hv) => {
                cpuid = with_hyperv_leaves(&cpuid, &hv)?;
                synthetic_msrs_exit_to_user_space(&vm)?;
                let vtl0 = Vtl0Host::new(
                    open_kvm(kvm_device)?,
                    paravisor_regions.to_vec(),
                    cpuid.clone(),
                    vps,
                );
                Some(Arc::new(hv.with_vtl0_host(vtl0)))
            }
            None => None,
        };
        let mut vcpus = Vec::new();
        for id in 0..vps {
            let vcpu = kvm("KVM_CREATE_VCPU", vm.create_vcpu(u64::from(id)))?;
            kvm(
                "KVM_SET_CPUID2",
                vcpu.set_cpuid2(&cpuid_for(&cpuid, id, vps)),
            )?;
            vcpus.push(vcpu);
        }
        // With the in-kernel APIC, VPs other than 0 wait for INIT-SIPI on their own.
        let bsp = &vcpus[0];
        let mut sregs = kvm("KVM_GET_SREGS", bsp.get_sregs())?;
        let c = context;
        sregs.cs = segment(
            u64::from(c.code_base),
            c.code_limit,
            c.code_selector,
            c.code_attributes,
        );
        let data = segment(
            u64::from(c.data_base),
            c.data_limit,
            c.data_selector,
            c.data_attributes,
        );
        (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
        sregs.gs.base = c.gs_base;
        // A usable 64-bit TSS and LDT, as VM entry requires; the firmware loads its own.
        sregs.tr = segment(0, 0x67, 0, 0x8b);
        sregs.ldt = segment(0, 0xffff, 0, 0x82);
        sregs.gdt.base = c.gdtr_base;
        sregs.gdt.limit = c.gdtr_limit;
        sregs.idt.base = c.idtr_base;
        sregs.idt.limit = c.idtr_limit;
        sregs.cr0 = c.cr0;
        sregs.cr3 = c.cr3;
        sregs.cr4 = c.cr4;
        sregs.efer = c.efer;
        kvm("KVM_SET_SREGS", bsp.set_sregs(&sregs))?;
        let mut regs = kvm("KVM_GET_REGS", bsp.get_regs())?;
        (regs.rax, regs.rcx, regs.rdx, regs.rbx) = (c.rax, c.rcx, c.rdx, c.rbx);
        (regs.rsp, regs.rbp, regs.rsi, regs.rdi) = (c.rsp, c.rbp, c.rsi, c.rdi);
        (regs.r8, regs.r9, regs.r10, regs.r11) = (c.r8, c.r9, c.r10, c.r11);
        (regs.r12, regs.r13, regs.r14, regs.r15) = (c.r12, c.r13, c.r14, c.r15);
        regs.rip = c.rip;
        regs.rflags = c.rflags | 0x2;
        kvm("KVM_SET_REGS", bsp.set_regs(&regs))?;
        Ok(Self {
            _kvm: kvm_fd,
            vm,
            vcpus,
            memory: Arc::new(memory),
            hyperv,
        })
    }

    /// Runs every VP on its own thread until the firmware reports how it ended.
    pub fn run(self, com1: Arc<Com1>) -> Outcome {
        let (done, outcome) = std::sync::mpsc::channel::<Outcome>();
        let Vm {
            _kvm,
            vm,
            vcpus,
            memory,
            hyperv,
        } = self;
        let kicker = hyperv.as_ref().map(|_| Kicker::start(vcpus.len()));
        for (index, vcpu) in vcpus.into_iter().enumerate() {
            let com1 = Arc::clone(&com1);
            let done = done.clone();
            let (memory, hyperv, kicker) = (Arc::clone(&memory), hyperv.clone(), kicker.clone());
            std::thread::spawn(move || {
                let devices = HostDevices { com1: &com1 };
                let vp = Vp::new(index, vcpu, devices, &memory, hyperv.as_deref(), kicker);
                let _ = done.send(vp.run());
            });
        }
        // Only the VP threads hold senders now: if they all end without a verdict, recv fails.
        drop(done);
        let result = outcome.recv().unwrap_or(Outcome::Failure(
            "every VP thread ended without a verdict".into(),
        ));
        // The process exits next; the VM, its memory and the remaining threads go with it.
        std::mem::forget(vm);
        std::mem::forget(memory);
        result
    }
}

/// Makes guest accesses to the synthetic MSRs (0x40000000-0x400000ff) exit to vmm-lite, which
/// emulates them; every other MSR stays with KVM.
pub(crate) fn synthetic_msrs_exit_to_user_space(vm: &VmFd) -> Result<(), VmmError> {
    let exit_on_filter = kvm_enable_cap {
        cap: KVM_CAP_X86_USER_SPACE_MSR,
        args: [u64::from(KVM_MSR_EXIT_REASON_FILTER), 0, 0, 0],
        ..Default::default()
    };
    kvm("KVM_CAP_X86_USER_SPACE_MSR", vm.enable_cap(&exit_on_filter))?;
    let deny_all = [0u8; 32];
    let synthetic = MsrFilterRange {
        flags: MsrFilterRangeFlags::READ | MsrFilterRangeFlags::WRITE,
        base: 0x4000_0000,
        msr_count: 256,
        bitmap: &deny_all,
    };
    kvm(
        "KVM_X86_SET_MSR_FILTER",
        vm.set_msr_filter(MsrFilterDefaultAction::ALLOW, &[synthetic]),
    )
}

/// KVM's CPUID table with its own hypervisor leaves replaced by Hyper-V's.
fn with_hyperv_leaves(table: &CpuId, hv: &HyperV) -> Result<CpuId, VmmError> {
    let mut entries: Vec<kvm_cpuid_entry2> = table
        .as_slice()
        .iter()
        .filter(|e| !(0x4000_0000..=0x4000_00ff).contains(&e.function))
        .copied()
        .collect();
    entries.extend(hv.cpuid_leaves());
    CpuId::from_entries(&entries).map_err(|_| {
        VmmError::Kvm(
            "building the CPUID table",
            kvm_ioctls::Error::new(libc::E2BIG),
        )
    })
}

/// A one-vCPU VM over `memory` (all of it at 0) in real mode at `rip`, exiting to user
/// space on synthetic MSRs: for tests and benchmarks that run a few hand-written
/// instructions.
///
/// # Safety
/// `memory` must outlive the VM.
pub(crate) unsafe fn real_mode_vm(
    memory: &GuestMemory,
    rip: u64,
) -> Result<(Kvm, VmFd, VcpuFd), VmmError> {
    let kvm_fd = open_kvm(Path::new(DEFAULT_KVM_DEVICE))?;
    let vm = kvm("KVM_CREATE_VM", kvm_fd.create_vm())?;
    synthetic_msrs_exit_to_user_space(&vm)?;
    // SAFETY: the caller keeps `memory` alive as long as the VM.
    unsafe { map_all_ram(&vm, memory) }?;
    let vcpu = kvm("KVM_CREATE_VCPU", vm.create_vcpu(0))?;
    let mut sregs = kvm("KVM_GET_SREGS", vcpu.get_sregs())?;
    (sregs.cs.base, sregs.cs.selector) = (0, 0);
    kvm("KVM_SET_SREGS", vcpu.set_sregs(&sregs))?;
    let mut regs = kvm("KVM_GET_REGS", vcpu.get_regs())?;
    (regs.rip, regs.rflags) = (rip, 2);
    kvm("KVM_SET_REGS", vcpu.set_regs(&regs))?;
    Ok((kvm_fd, vm, vcpu))
}

/// A VM whose one vCPU starts at `rip` in 64-bit mode at CPL 0, flat segments, the first
/// 2 MiB identity-mapped by tables at `tables` (3 pages, written here into `memory`): what a
/// kernel runs as, for timing how fast this KVM runs one.
///
/// # Safety
/// As [`real_mode_vm`]: `memory` must outlive the VM.
pub(crate) unsafe fn long_mode_vm(
    memory: &GuestMemory,
    rip: u64,
    tables: u64,
) -> Result<(Kvm, VmFd, VcpuFd), VmmError> {
    const PRESENT_WRITABLE: u64 = 0b11;
    const LARGE: u64 = 1 << 7;
    memory.write(
        tables,
        &((tables + 0x1000) | PRESENT_WRITABLE).to_le_bytes(),
    )?;
    memory.write(
        tables + 0x1000,
        &((tables + 0x2000) | PRESENT_WRITABLE).to_le_bytes(),
    )?;
    memory.write(tables + 0x2000, &(PRESENT_WRITABLE | LARGE).to_le_bytes())?;
    // SAFETY: the caller's contract.
    let (kvm_fd, vm, vcpu) = unsafe { real_mode_vm(memory, rip) }?;
    let mut sregs = kvm("KVM_GET_SREGS", vcpu.get_sregs())?;
    // Intel SDM Vol. 3A §10.8.5: PE, ET and PG; PAE; LME and LMA.
    (sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer) = (0x8000_0011, tables, 0x20, 0x500);
    (sregs.cs.l, sregs.cs.db, sregs.cs.s, sregs.cs.type_) = (1, 0, 1, 0xb);
    (sregs.cs.present, sregs.cs.selector) = (1, 0x8);
    for data in [
        &mut sregs.ds,
        &mut sregs.es,
        &mut sregs.ss,
        &mut sregs.fs,
        &mut sregs.gs,
    ] {
        (data.type_, data.s, data.present, data.db, data.g) = (0x3, 1, 1, 1, 1);
        (data.selector, data.limit) = (0x10, 0xffff_ffff);
    }
    kvm("KVM_SET_SREGS", vcpu.set_sregs(&sregs))?;
    Ok((kvm_fd, vm, vcpu))
}

/// A throwaway VM for tests that run a few instructions on KVM.
#[cfg(test)]
pub(crate) mod test_vm {
    use super::*;

    /// [`real_mode_vm`] at 0x1000. The caller keeps `memory` alive as long as the VM.
    pub fn real_mode_vcpu(memory: &GuestMemory) -> (VmFd, VcpuFd) {
        // SAFETY: the caller keeps `memory` alive as long as the VM.
        let (_kvm, vm, vcpu) =
            unsafe { real_mode_vm(memory, 0x1000) }.expect("/dev/kvm is needed for this test");
        (vm, vcpu)
    }
}

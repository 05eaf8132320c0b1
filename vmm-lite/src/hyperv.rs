//! The Hyper-V interface vmm-lite offers a VTL2 paravisor on KVM (TLFS; constants in hvdef):
//! hypervisor CPUID leaves, the synthetic MSRs, and a hypercall page.
//!
//! KVM here has no Hyper-V emulation of its own, and its `vmcall` never returns
//! (MACHINE-FACTS), so the hypercall page exits by port I/O: `out HYPERCALL_PORT, al; ret`,
//! and the VTL call and return sequences (at the offsets HvRegisterVsmCodePageOffsets reports)
//! likewise with ports of their own. The immediate-port form leaves every general-purpose
//! register untouched, which the VTL switch needs: VTLs share them.
//!
//! Each VTL has its own synthetic MSRs (guest OS id, hypercall page, VP assist page, SynIC).
//! Implemented hypercalls: HvCallGetVpRegisters and HvCallSetVpRegisters (`vp_registers`),
//! HvCallEnablePartitionVtl and HvCallEnableVpVtl for VTL0 (state in `vsm`; the KVM VM and
//! vCPUs that back VTL0 in `vtl0_view`), HvCallStartVirtualProcessor for VTL0,
//! HvCallModifyVtlProtectionMask (`vtl_protections`), HvCallInstallIntercept (`intercepts`).
//! The VTL call and return are not hypercalls here but sequences of their own (`vp`). Every other
//! call code returns HV_STATUS_INVALID_HYPERCALL_CODE, as a hypervisor without that call does.

use std::sync::{Mutex, MutexGuard};

use hvdef::cpuid::{self as leaf, privilege_eax, privilege_ebx};
use hvdef::hypercall::map_flags;
use hvdef::hypercall::{
    self, code, AssertVirtualInterrupt, Control, EnablePartitionVtl, InstallIntercept,
    ModifyVtlProtectionMask, VpVtlInput, PARTITION_SELF,
};
use hvdef::msr::{self, PageMsr, Sint};
use hvdef::register_page;
use hvdef::registers as reg;
use hvdef::status::HvStatus;
use hvdef::vtl::{VsmCodePageOffsets, Vtl};
use kvm_bindings::kvm_cpuid_entry2;

use crate::guest_memory::GuestMemory;
use crate::intercepts::Intercepts;
use crate::vsm::{VsmState, PARAVISOR_VTL};
use crate::vtl0_view::Vtl0Host;

/// The I/O port the hypercall sequence writes to.
pub const HYPERCALL_PORT: u8 = 0xe4;
/// The port of the VTL call sequence (a lower VTL enters VTL2).
pub const VTL_CALL_PORT: u8 = 0xe5;
/// The port of the VTL return sequence (VTL2 resumes the lower VTL).
pub const VTL_RETURN_PORT: u8 = 0xe6;

/// Where each sequence starts in the hypercall page.
const CODE_PAGE_OFFSETS: VsmCodePageOffsets = VsmCodePageOffsets {
    vtl_call: 0x10,
    vtl_return: 0x20,
};

/// `out imm8, al` (E6 ib) then `ret` (C3).
const fn port_sequence(port: u8) -> [u8; 3] {
    [0xe6, port, 0xc3]
}

/// The hypercall page: the three sequences at their offsets, the rest `int3`-free zeros.
fn hypercall_page() -> [u8; 4096] {
    let mut page = [0u8; 4096];
    let sequences = [
        (0, HYPERCALL_PORT),
        (usize::from(CODE_PAGE_OFFSETS.vtl_call), VTL_CALL_PORT),
        (usize::from(CODE_PAGE_OFFSETS.vtl_return), VTL_RETURN_PORT),
    ];
    for (offset, port) in sequences {
        page[offset..offset + 3].copy_from_slice(&port_sequence(port));
    }
    page
}

/// The state vmm-lite keeps per VTL: VTL0 at index 0, the paravisor's VTL2 at index 1.
fn slot(vtl: Vtl) -> usize {
    usize::from(vtl != Vtl::Vtl0)
}

#[derive(Default)]
struct Partition {
    guest_os_id: u64,
    hypercall: PageMsr,
}

#[derive(Clone, Copy)]
struct Vp {
    vp_assist: PageMsr,
    scontrol: u64,
    simp: PageMsr,
    siefp: PageMsr,
    sint: [Sint; 16],
    /// For VTL0's slot: where VTL2 wants VTL0's registers (`hvdef::register_page`).
    register_page: PageMsr,
}

impl Default for Vp {
    fn default() -> Self {
        Self {
            vp_assist: PageMsr(0),
            scontrol: 0,
            simp: PageMsr(0),
            siefp: PageMsr(0),
            sint: [Sint::RESET; 16],
            register_page: PageMsr(0),
        }
    }
}

/// An MSR access the guest must get a #GP for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneralProtection;

/// Who makes a hypercall or MSR access: a VP, running at a VTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub vp: usize,
    pub vtl: Vtl,
}

impl Caller {
    pub fn vtl2(vp: usize) -> Self {
        Self {
            vp,
            vtl: PARAVISOR_VTL,
        }
    }
}

/// The architectural registers of the caller VP's VTL0 (its KVM vCPU), for VTL2's
/// Get/SetVpRegisters. `None` / INVALID_PARAMETER for names it does not hold.
pub trait LowerVtlRegisters {
    fn get(&mut self, name: u32) -> Option<[u8; 16]>;
    fn set(&mut self, name: u32, value: &[u8; 16]) -> Result<(), HvStatus>;
}

/// Where VTL2's SynIC and VP assist page are on a VP, for message delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vtl2Pages {
    pub vp_assist: PageMsr,
    pub simp: PageMsr,
    /// VTL0's register page, in VTL2's memory.
    pub vtl0_registers: PageMsr,
    /// SINT0 (intercepts) is unmasked and the SynIC is on (SCONTROL bit 0).
    pub intercepts_enabled: bool,
}

pub struct HyperV {
    partition: Mutex<[Partition; 2]>,
    vps: Vec<Mutex<[Vp; 2]>>,
    vsm: Mutex<VsmState>,
    intercepts: Mutex<Intercepts>,
    /// The KVM side of VTL0; without it, enabling VTL0 only records state (host tests).
    vtl0: Option<Vtl0Host>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HyperV {
    pub fn new(vps: u32) -> Self {
        Self {
            partition: Mutex::new(Default::default()),
            vps: (0..vps).map(|_| Mutex::new(Default::default())).collect(),
            vsm: Mutex::new(VsmState::new(vps as usize)),
            intercepts: Mutex::new(Intercepts::default()),
            vtl0: None,
        }
    }

    /// Backs VTL0 with KVM: enabling it builds the VTL0 view and vCPUs.
    pub fn with_vtl0_host(mut self, host: Vtl0Host) -> Self {
        self.vtl0 = Some(host);
        self
    }

    pub fn vtl0_host(&self) -> Option<&Vtl0Host> {
        self.vtl0.as_ref()
    }

    pub fn intercepts(&self) -> MutexGuard<'_, Intercepts> {
        lock(&self.intercepts)
    }

    /// VTL2's pages on VP `vp`.
    pub fn vtl2_pages(&self, vp: usize) -> Vtl2Pages {
        let [vtl0, v] = *lock(&self.vps[vp]);
        Vtl2Pages {
            vp_assist: v.vp_assist,
            simp: v.simp,
            vtl0_registers: vtl0.register_page,
            intercepts_enabled: v.scontrol & 1 != 0
                && v.sint[hvdef::message::INTERCEPT_SINT].0 & Sint::MASKED == 0,
        }
    }

    /// Whether VTL0 is enabled on VP `vp` (HvCallEnableVpVtl succeeded).
    pub fn vtl0_enabled(&self, vp: usize) -> bool {
        self.vsm().vtl0_context(vp).is_some()
    }

    /// HvCallEnablePartitionVtl: the KVM side is built before the state says enabled.
    fn enable_partition_vtl(
        &self,
        input: &EnablePartitionVtl,
        memory: &GuestMemory,
    ) -> Result<(), HvStatus> {
        let mut vsm = self.vsm();
        vsm.check_enable_partition_vtl(input)?;
        if let Some(host) = &self.vtl0 {
            host.enable_partition(memory).map_err(|e| {
                eprintln!("vmm-lite: EnablePartitionVtl: {e}");
                HvStatus::INSUFFICIENT_MEMORY
            })?;
        }
        vsm.enable_partition_vtl(input)
    }

    /// HvCallEnableVpVtl from VP `caller`, likewise.
    fn enable_vp_vtl(&self, caller: usize, input: &VpVtlInput) -> Result<(), HvStatus> {
        let mut vsm = self.vsm();
        let vp = vsm.check_enable_vp_vtl(caller, input)?;
        if let Some(host) = &self.vtl0 {
            host.enable_vp(vp, &input.context, vp == caller)
                .map_err(|e| {
                    eprintln!("vmm-lite: EnableVpVtl on VP {vp}: {e}");
                    HvStatus::INVALID_VP_STATE
                })?;
        }
        vsm.enable_vp_vtl(caller, input)
    }

    /// The hypervisor leaves (replacing KVM's own): "Microsoft Hv", "Hv#1", and the
    /// privileges a VTL2 paravisor needs.
    pub fn cpuid_leaves(&self) -> Vec<kvm_cpuid_entry2> {
        let entry = |function, eax, ebx, ecx, edx| kvm_cpuid_entry2 {
            function,
            index: 0,
            flags: 0,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        };
        let privileges_eax = privilege_eax::ACCESS_SYNIC_REGS
            | privilege_eax::ACCESS_HYPERCALL_MSRS
            | privilege_eax::ACCESS_VP_INDEX
            | privilege_eax::ACCESS_INTR_CTRL_REGS;
        let privileges_ebx = privilege_ebx::ACCESS_VSM
            | privilege_ebx::ACCESS_VP_REGISTERS
            | privilege_ebx::START_VIRTUAL_PROCESSOR;
        vec![
            entry(
                leaf::LEAF_VENDOR,
                leaf::LEAF_HARDWARE_FEATURES,
                leaf::VENDOR_EBX,
                leaf::VENDOR_ECX,
                leaf::VENDOR_EDX,
            ),
            entry(leaf::LEAF_INTERFACE, leaf::INTERFACE_HV1, 0, 0, 0),
            entry(leaf::LEAF_VERSION, 0, 0, 0, 0),
            entry(leaf::LEAF_FEATURES, privileges_eax, privileges_ebx, 0, 0),
            entry(leaf::LEAF_RECOMMENDATIONS, 0, u32::MAX, 0, 0),
            entry(leaf::LEAF_LIMITS, self.vps.len() as u32, 0, 0, 0),
            entry(leaf::LEAF_HARDWARE_FEATURES, 0, 0, 0, 0),
        ]
    }

    pub fn read_msr(&self, caller: Caller, index: u32) -> Result<u64, GeneralProtection> {
        let p = &lock(&self.partition)[slot(caller.vtl)];
        let v = lock(&self.vps[caller.vp])[slot(caller.vtl)];
        Ok(match index {
            msr::GUEST_OS_ID => p.guest_os_id,
            msr::HYPERCALL => p.hypercall.0,
            msr::VP_INDEX => caller.vp as u64,
            msr::VP_ASSIST_PAGE => v.vp_assist.0,
            msr::SCONTROL => v.scontrol,
            msr::SVERSION => msr::SYNIC_VERSION,
            msr::SIEFP => v.siefp.0,
            msr::SIMP => v.simp.0,
            msr::EOM => 0,
            i if (msr::SINT0..msr::SINT0 + msr::SINT_COUNT).contains(&i) => {
                v.sint[(i - msr::SINT0) as usize].0
            }
            _ => return Err(GeneralProtection),
        })
    }

    /// Whether a page-address MSR value from `caller` names a page it may use: inside guest
    /// RAM, and for VTL0 a page its view maps writable (vmm-lite writes the hypercall page,
    /// and must not do it into the paravisor's memory for VTL0). Otherwise a #GP.
    fn page_ok(&self, caller: Caller, value: PageMsr, memory: &GuestMemory) -> bool {
        !value.enabled()
            || (value
                .gpa()
                .checked_add(4096)
                .is_some_and(|end| end <= memory.size())
                && self.may_access(caller, value.gpa(), 4096, map_flags::WRITABLE))
    }

    /// Whether `caller` may access guest-physical `[gpa, gpa + len)` in the `wanted` way
    /// (`map_flags`): VTL2 reaches all of RAM, VTL0 only what its view maps that way.
    fn may_access(&self, caller: Caller, gpa: u64, len: u64, wanted: u32) -> bool {
        let Some(host) = self.vtl0.as_ref().filter(|_| caller.vtl != PARAVISOR_VTL) else {
            return true;
        };
        let Some(end) = gpa.checked_add(len.max(1)) else {
            return false;
        };
        (gpa & !0xfff..end)
            .step_by(4096)
            .all(|page| host.access(page) & wanted != 0)
    }

    /// Reads a hypercall's input for `caller`: HV_STATUS_ACCESS_DENIED where its VTL may not
    /// read, HV_STATUS_INVALID_ALIGNMENT outside RAM.
    pub(crate) fn read_for(
        &self,
        caller: Caller,
        gpa: u64,
        buf: &mut [u8],
        memory: &GuestMemory,
    ) -> Result<(), HvStatus> {
        if !self.may_access(caller, gpa, buf.len() as u64, map_flags::READABLE) {
            return Err(HvStatus::ACCESS_DENIED);
        }
        memory
            .read(gpa, buf)
            .map_err(|_| HvStatus::INVALID_ALIGNMENT)
    }

    /// Writes a hypercall's output for `caller`, likewise.
    pub(crate) fn write_for(
        &self,
        caller: Caller,
        gpa: u64,
        bytes: &[u8],
        memory: &GuestMemory,
    ) -> Result<(), HvStatus> {
        if !self.may_access(caller, gpa, bytes.len() as u64, map_flags::WRITABLE) {
            return Err(HvStatus::ACCESS_DENIED);
        }
        memory
            .write(gpa, bytes)
            .map_err(|_| HvStatus::INVALID_ALIGNMENT)
    }

    pub fn write_msr(
        &self,
        caller: Caller,
        index: u32,
        value: u64,
        memory: &GuestMemory,
    ) -> Result<(), GeneralProtection> {
        let mut partition = lock(&self.partition);
        let p = &mut partition[slot(caller.vtl)];
        let mut vps = lock(&self.vps[caller.vp]);
        let v = &mut vps[slot(caller.vtl)];
        match index {
            msr::GUEST_OS_ID => {
                p.guest_os_id = value;
                if value == 0 {
                    // Without a guest OS id the hypercall page goes away (TLFS §3.13).
                    p.hypercall = PageMsr(p.hypercall.0 & !PageMsr::ENABLE);
                }
            }
            msr::HYPERCALL => {
                if p.hypercall.locked() {
                    return Ok(()); // Locked: writes are ignored until reset.
                }
                let mut new = PageMsr(value & (!0xfff | PageMsr::ENABLE | PageMsr::LOCKED));
                if p.guest_os_id == 0 {
                    new = PageMsr(new.0 & !PageMsr::ENABLE);
                }
                if !self.page_ok(caller, new, memory) {
                    return Err(GeneralProtection);
                }
                if new.enabled() {
                    memory
                        .write(new.gpa(), &hypercall_page())
                        .map_err(|_| GeneralProtection)?;
                }
                p.hypercall = new;
            }
            msr::VP_ASSIST_PAGE | msr::SIEFP | msr::SIMP => {
                let new = PageMsr(value & (!0xfff | PageMsr::ENABLE));
                if !self.page_ok(caller, new, memory) {
                    return Err(GeneralProtection);
                }
                match index {
                    msr::VP_ASSIST_PAGE => v.vp_assist = new,
                    msr::SIEFP => v.siefp = new,
                    _ => v.simp = new,
                }
            }
            msr::SCONTROL => v.scontrol = value & 1,
            msr::EOM => {}
            i if (msr::SINT0..msr::SINT0 + msr::SINT_COUNT).contains(&i) => {
                let sint = Sint(value & (0xff | Sint::MASKED | Sint::AUTO_EOI | Sint::POLLING));
                if !sint.is_valid() {
                    return Err(GeneralProtection);
                }
                v.sint[(i - msr::SINT0) as usize] = sint;
            }
            _ => return Err(GeneralProtection), // VP_INDEX, SVERSION are read-only
        }
        Ok(())
    }

    /// The synthetic MSR behind register `name`, if it is one.
    fn msr_of_register(name: u32) -> Option<u32> {
        (msr::GUEST_OS_ID..msr::SINT0 + msr::SINT_COUNT)
            .find(|&m| reg::of_synthetic_msr(m) == Some(name))
    }

    /// Whether vmm-lite keeps register `name` itself (rather than a vCPU).
    pub(crate) fn is_synthetic_register(name: u32) -> bool {
        matches!(
            name,
            reg::VSM_CODE_PAGE_OFFSETS
                | reg::VSM_VP_STATUS
                | reg::VSM_PARTITION_STATUS
                | register_page::REGISTER_NAME
        ) || Self::msr_of_register(name).is_some()
    }

    /// The synthetic register `name` of VP `vp` at `vtl`, if vmm-lite keeps it.
    pub(crate) fn synthetic_register(&self, vp: usize, vtl: Vtl, name: u32) -> Option<u64> {
        match name {
            reg::VSM_CODE_PAGE_OFFSETS => Some(CODE_PAGE_OFFSETS.encode()),
            reg::VSM_VP_STATUS => Some(self.vsm().vp_status(vp, vtl)),
            reg::VSM_PARTITION_STATUS => Some(self.vsm().partition_status()),
            reg::EOM => None, // write-only
            register_page::REGISTER_NAME if vtl == Vtl::Vtl0 => {
                Some(lock(&self.vps[vp])[slot(vtl)].register_page.0)
            }
            register_page::REGISTER_NAME => None,
            _ => self
                .read_msr(Caller { vp, vtl }, Self::msr_of_register(name)?)
                .ok(),
        }
    }

    /// Writes the synthetic register `name` of VP `vp` at `vtl` where it is an MSR.
    pub(crate) fn set_synthetic_register(
        &self,
        vp: usize,
        vtl: Vtl,
        name: u32,
        value: u64,
        memory: &GuestMemory,
    ) -> Result<(), HvStatus> {
        if name == register_page::REGISTER_NAME {
            // Only VTL0 has one; VTL2 places it in its own memory (the caller checked that
            // VTL2 asks).
            let page = PageMsr(value & (!0xfff | PageMsr::ENABLE));
            if vtl != Vtl::Vtl0 {
                return Err(HvStatus::INVALID_PARAMETER);
            }
            if !self.page_ok(Caller::vtl2(vp), page, memory) {
                return Err(HvStatus::INVALID_REGISTER_VALUE);
            }
            lock(&self.vps[vp])[slot(vtl)].register_page = page;
            return Ok(());
        }
        let index = Self::msr_of_register(name).ok_or(HvStatus::INVALID_PARAMETER)?;
        self.write_msr(Caller { vp, vtl }, index, value, memory)
            .map_err(|_| HvStatus::INVALID_REGISTER_VALUE)
    }

    pub(crate) fn vsm(&self) -> MutexGuard<'_, VsmState> {
        lock(&self.vsm)
    }

    pub(crate) fn vp_count(&self) -> usize {
        self.vps.len()
    }

    /// Copies a simple call's input: from RDX and R8 for a fast call (16 bytes at most),
    /// else from the input page, which must be 8-byte aligned and not cross a page (TLFS §3.6).
    fn simple_input(
        &self,
        caller: Caller,
        control: Control,
        rdx: u64,
        r8: u64,
        len: usize,
        memory: &GuestMemory,
    ) -> Result<Vec<u8>, HvStatus> {
        control.check(false)?;
        if control.fast() {
            if len > 16 {
                return Err(HvStatus::INVALID_HYPERCALL_INPUT);
            }
            let mut input = rdx.to_le_bytes().to_vec();
            input.extend_from_slice(&r8.to_le_bytes());
            input.truncate(len);
            return Ok(input);
        }
        if !rdx.is_multiple_of(8) || (rdx & 0xfff) as usize + len > 4096 {
            return Err(HvStatus::INVALID_ALIGNMENT);
        }
        let mut input = vec![0u8; len];
        self.read_for(caller, rdx, &mut input, memory)?;
        Ok(input)
    }

    /// A hypercall from VTL2 on VP `vp` without access to VTL0's registers (tests, and calls
    /// that need none).
    pub fn hypercall(
        &self,
        vp: usize,
        control: u64,
        input_gpa: u64,
        output_gpa: u64,
        memory: &GuestMemory,
    ) -> u64 {
        self.hypercall_from(
            Caller::vtl2(vp),
            control,
            input_gpa,
            output_gpa,
            memory,
            None,
        )
    }

    /// Carries out the hypercall `caller` made with RCX = `control`, RDX = `input_gpa`,
    /// R8 = `output_gpa`; returns the result value for RAX. `lower` reaches the caller VP's
    /// VTL0 registers when VTL2 calls.
    pub fn hypercall_from(
        &self,
        caller: Caller,
        control: u64,
        input_gpa: u64,
        output_gpa: u64,
        memory: &GuestMemory,
        lower: Option<&mut dyn LowerVtlRegisters>,
    ) -> u64 {
        let control = Control(control);
        let simple = |len| self.simple_input(caller, control, input_gpa, output_gpa, len, memory);
        let status =
            |r: Result<(), HvStatus>| hypercall::result(r.err().unwrap_or(HvStatus::SUCCESS), 0);
        match control.code() {
            code::GET_VP_REGISTERS | code::SET_VP_REGISTERS => {
                let call = crate::vp_registers::Call {
                    hv: self,
                    caller,
                    control,
                    input_gpa,
                    output_gpa,
                    memory,
                };
                let r = if control.code() == code::GET_VP_REGISTERS {
                    call.get(lower)
                } else {
                    call.set(lower)
                };
                match r {
                    Ok(reps) => hypercall::result(HvStatus::SUCCESS, reps),
                    Err((status, reps)) => hypercall::result(status, reps),
                }
            }
            // What only the paravisor may do: configure VTLs and intercepts.
            code::ENABLE_PARTITION_VTL
            | code::ENABLE_VP_VTL
            | code::INSTALL_INTERCEPT
            | code::MODIFY_VTL_PROTECTION_MASK
                if caller.vtl != PARAVISOR_VTL =>
            {
                status(Err(HvStatus::ACCESS_DENIED))
            }
            code::ENABLE_PARTITION_VTL => status(
                simple(EnablePartitionVtl::SIZE)
                    .and_then(|input| EnablePartitionVtl::parse(&input))
                    .and_then(|input| self.enable_partition_vtl(&input, memory)),
            ),
            code::ENABLE_VP_VTL => status(
                simple(VpVtlInput::SIZE)
                    .and_then(|input| VpVtlInput::parse(&input))
                    .and_then(|input| self.enable_vp_vtl(caller.vp, &input)),
            ),
            code::INSTALL_INTERCEPT => status(
                simple(InstallIntercept::SIZE)
                    .and_then(|input| InstallIntercept::parse(&input))
                    .and_then(|input| self.intercepts().install(&input)),
            ),
            code::START_VIRTUAL_PROCESSOR => status(
                simple(VpVtlInput::SIZE)
                    .and_then(|input| VpVtlInput::parse(&input))
                    .and_then(|input| self.start_vp(caller.vtl, &input)),
            ),
            code::ASSERT_VIRTUAL_INTERRUPT => status(
                simple(AssertVirtualInterrupt::SIZE)
                    .and_then(|input| AssertVirtualInterrupt::parse(&input))
                    .and_then(|input| self.assert_virtual_interrupt(caller.vtl, &input)),
            ),
            code::MODIFY_VTL_PROTECTION_MASK => {
                match self.modify_protections(control, input_gpa, memory) {
                    Ok(reps) => hypercall::result(HvStatus::SUCCESS, reps),
                    Err((status, reps)) => hypercall::result(status, reps),
                }
            }
            _ => hypercall::result(HvStatus::INVALID_HYPERCALL_CODE, 0),
        }
    }

    /// HvCallAssertVirtualInterrupt: the paravisor raises an interrupt of a device it
    /// emulates in VTL0 (the only lower VTL here); a VTL may not interrupt a higher one.
    fn assert_virtual_interrupt(
        &self,
        caller: Vtl,
        input: &AssertVirtualInterrupt,
    ) -> Result<(), HvStatus> {
        if input.partition_id != PARTITION_SELF {
            return Err(HvStatus::INVALID_PARTITION_ID);
        }
        if caller != PARAVISOR_VTL {
            return Err(HvStatus::ACCESS_DENIED);
        }
        if input.target_vtl != Vtl::Vtl0 {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        self.vtl0
            .as_ref()
            .ok_or(HvStatus::INVALID_VTL_STATE)?
            .assert_interrupt(input)
    }

    /// HvCallStartVirtualProcessor: VTL0 on the target VP takes the given context.
    fn start_vp(&self, caller: Vtl, input: &VpVtlInput) -> Result<(), HvStatus> {
        let mut vsm = self.vsm();
        let vp = vsm.check_start_vp(caller, input)?;
        if let Some(host) = &self.vtl0 {
            host.start_vp(vp, &input.context)?;
        }
        vsm.mark_started(vp);
        Ok(())
    }

    /// HvCallModifyVtlProtectionMask from VTL2: a rep call over guest page numbers, which
    /// the KVM side of VTL0 enforces; without it there is no view to protect.
    fn modify_protections(
        &self,
        control: Control,
        input_gpa: u64,
        memory: &GuestMemory,
    ) -> Result<u16, (HvStatus, u16)> {
        let start = control.rep_start();
        let fail = |s| (s, start);
        control.check(true).map_err(fail)?;
        if control.fast() {
            return Err(fail(HvStatus::INVALID_HYPERCALL_INPUT));
        }
        let count = usize::from(control.rep_count());
        let len = ModifyVtlProtectionMask::SIZE + count * ModifyVtlProtectionMask::ELEMENT_SIZE;
        if !input_gpa.is_multiple_of(8) || (input_gpa & 0xfff) as usize + len > 4096 {
            return Err(fail(HvStatus::INVALID_ALIGNMENT));
        }
        let mut input = vec![0u8; len];
        memory
            .read(input_gpa, &mut input)
            .map_err(|_| fail(HvStatus::INVALID_ALIGNMENT))?; // VTL2 only: all of RAM
        let header = ModifyVtlProtectionMask::parse(&input).map_err(fail)?;
        if header.partition_id != PARTITION_SELF {
            return Err(fail(HvStatus::INVALID_PARTITION_ID));
        }
        // The caller's own VTL, unnamed, stands for the VTLs below it: here only VTL0.
        if !matches!(header.target_vtl.0, None | Some(Vtl::Vtl0)) {
            return Err(fail(HvStatus::INVALID_PARAMETER));
        }
        let host = self
            .vtl0
            .as_ref()
            .ok_or(fail(HvStatus::INVALID_VTL_STATE))?;
        let pages: Vec<u64> = (usize::from(start)..count)
            .filter_map(|i| le::u64_at(&input, ModifyVtlProtectionMask::SIZE + 8 * i))
            .collect();
        host.modify_protections(&pages, header.map_flags)
            .map(|()| count as u16)
            .map_err(|(status, done)| (status, start + done as u16))
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use hvdef::hypercall::{PARTITION_SELF, VP_INDEX_SELF};

    fn setup() -> (HyperV, GuestMemory) {
        (HyperV::new(2), GuestMemory::new(1 << 20).unwrap())
    }

    #[test]
    fn the_hypercall_page_needs_a_guest_os_id_and_holds_the_port_sequence() {
        let (hv, mem) = setup();
        hv.write_msr(Caller::vtl2(0), msr::HYPERCALL, 0x5001, &mem)
            .unwrap();
        assert!(
            !PageMsr(hv.read_msr(Caller::vtl2(0), msr::HYPERCALL).unwrap()).enabled(),
            "no guest OS id yet"
        );
        hv.write_msr(Caller::vtl2(0), msr::GUEST_OS_ID, 1 << 63, &mem)
            .unwrap();
        hv.write_msr(Caller::vtl2(0), msr::HYPERCALL, 0x5001, &mem)
            .unwrap();
        assert_eq!(
            hv.read_msr(Caller::vtl2(1), msr::HYPERCALL).unwrap(),
            0x5001,
            "partition-wide"
        );
        let mut code = [0u8; 3];
        mem.read(0x5000, &mut code).unwrap();
        assert_eq!(code, port_sequence(HYPERCALL_PORT));
        assert_eq!(
            hv.write_msr(Caller::vtl2(0), msr::HYPERCALL, 0x10_0001, &mem),
            Err(GeneralProtection),
            "outside RAM"
        );
    }

    #[test]
    fn read_only_and_unknown_msrs_and_bad_sints_give_gp() {
        let (hv, mem) = setup();
        assert_eq!(hv.read_msr(Caller::vtl2(1), msr::VP_INDEX), Ok(1));
        assert_eq!(
            hv.write_msr(Caller::vtl2(0), msr::VP_INDEX, 5, &mem),
            Err(GeneralProtection)
        );
        assert_eq!(
            hv.write_msr(Caller::vtl2(0), msr::SVERSION, 5, &mem),
            Err(GeneralProtection)
        );
        assert_eq!(
            hv.read_msr(Caller::vtl2(0), 0x4000_00ff),
            Err(GeneralProtection)
        );
        assert_eq!(
            hv.write_msr(Caller::vtl2(0), msr::SINT0, 0x0f, &mem),
            Err(GeneralProtection),
            "vector below 16"
        );
        hv.write_msr(Caller::vtl2(0), msr::SINT0 + 2, 0x30, &mem)
            .unwrap();
        assert_eq!(hv.read_msr(Caller::vtl2(0), msr::SINT0 + 2), Ok(0x30));
        assert_eq!(
            hv.read_msr(Caller::vtl2(1), msr::SINT0 + 2),
            Ok(Sint::RESET.0),
            "per VP"
        );
    }

    fn get_vp_registers(
        hv: &HyperV,
        mem: &GuestMemory,
        vp: usize,
        target_vp: u32,
        names: &[u32],
        control: Control,
    ) -> (u64, Vec<u64>) {
        let mut input = vec![0u8; 16];
        input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
        input[8..12].copy_from_slice(&target_vp.to_le_bytes());
        for n in names {
            input.extend_from_slice(&n.to_le_bytes());
        }
        mem.write(0x8000, &input).unwrap();
        let result = hv.hypercall(vp, control.0, 0x8000, 0x9000, mem);
        let values = (0..names.len())
            .map(|i| {
                let mut b = [0u8; 8];
                mem.read(0x9000 + 16 * i as u64, &mut b).unwrap();
                u64::from_le_bytes(b)
            })
            .collect();
        (result, values)
    }

    #[test]
    fn get_vp_registers_reads_vp_state_and_counts_reps() {
        let (hv, mem) = setup();
        hv.write_msr(Caller::vtl2(1), msr::SIMP, 0x7001, &mem)
            .unwrap();
        let control = Control::new(code::GET_VP_REGISTERS).with_rep_count(3);
        let (result, values) = get_vp_registers(
            &hv,
            &mem,
            0,
            1,
            &[reg::VP_INDEX, reg::SIMP, reg::VSM_VP_STATUS],
            control,
        );
        assert_eq!(hypercall::parse_result(result), (HvStatus::SUCCESS, 3));
        assert_eq!(values, [1, 0x7001, 2 | 1 << 18]);
        let (result, _) = get_vp_registers(
            &hv,
            &mem,
            1,
            VP_INDEX_SELF,
            &[reg::VP_INDEX, 0xdead],
            control.with_rep_count(2),
        );
        assert_eq!(
            hypercall::parse_result(result),
            (HvStatus::INVALID_PARAMETER, 1)
        );
    }

    /// HV_INITIAL_VP_CONTEXT for real mode at `rip` (TLFS layout; offsets in the context).
    fn real_mode_context(rip: u64) -> [u8; 224] {
        let mut c = [0u8; 224];
        c[0..8].copy_from_slice(&rip.to_le_bytes());
        c[8..16].copy_from_slice(&0x7000u64.to_le_bytes()); // RSP
                                                            // CS, DS, ES, FS, GS, SS, TR, LDTR: base 0, limit 0xffff, attributes.
        let attributes = [0x9b, 0x93, 0x93, 0x93, 0x93, 0x93, 0x8b, 0x82];
        for (i, attributes) in attributes.into_iter().enumerate() {
            let at = 24 + 16 * i;
            c[at + 8..at + 12].copy_from_slice(&0xffffu32.to_le_bytes());
            c[at + 14..at + 16].copy_from_slice(&u16::to_le_bytes(attributes));
        }
        c[152 + 6..152 + 8].copy_from_slice(&0x3ffu16.to_le_bytes()); // IDTR limit
        c[192..200].copy_from_slice(&0x10u64.to_le_bytes()); // CR0.ET
        c
    }

    #[test]
    fn enabling_vtl0_with_kvm_builds_a_vcpu_that_runs_in_the_vtl0_view() {
        use kvm_ioctls::VcpuExit;
        let kvm_fd = kvm_ioctls::Kvm::new().expect("/dev/kvm is needed for this test");
        let cpuid = kvm_fd
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .unwrap();
        let paravisor = (0x8000, 0x1000);
        let host = Vtl0Host::new(kvm_fd, vec![paravisor], cpuid, 1);
        let hv = HyperV::new(1).with_vtl0_host(host);
        let mem = GuestMemory::new(1 << 20).unwrap();
        mem.write(paravisor.0, &[0xaa]).unwrap();
        // mov al, 0x5a; mov [0x0500], al; mov [0x8000], al; out 0xe4, al
        let code = [0xb0, 0x5a, 0xa2, 0x00, 0x05, 0xa2, 0x00, 0x80, 0xe6, 0xe4];
        mem.write(0x1000, &code).unwrap();
        let status = |r| hypercall::parse_result(r).0;
        let enable_partition = Control::new(code::ENABLE_PARTITION_VTL).with_fast(true);
        assert_eq!(
            status(hv.hypercall(0, enable_partition.0, PARTITION_SELF, 0, &mem)),
            HvStatus::SUCCESS
        );
        assert!(
            hv.vtl0_host().unwrap().take_vp(0).is_none(),
            "not enabled on the VP yet"
        );
        let mut input = vec![0u8; VpVtlInput::SIZE];
        input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
        input[8..12].copy_from_slice(&VP_INDEX_SELF.to_le_bytes());
        input[16..240].copy_from_slice(&real_mode_context(0x1000));
        mem.write(0x9000, &input).unwrap();
        let enable_vp = Control::new(code::ENABLE_VP_VTL);
        assert_eq!(
            status(hv.hypercall(0, enable_vp.0, 0x9000, 0, &mem)),
            HvStatus::SUCCESS
        );
        let mut vcpu = hv.vtl0_host().unwrap().take_vp(0).unwrap();
        assert!(matches!(
            vcpu.run().unwrap(),
            VcpuExit::MmioWrite(0x8000, &[0x5a])
        ));
        assert!(matches!(
            vcpu.run().unwrap(),
            VcpuExit::IoOut(0xe4, &[0x5a])
        ));
        let (mut shared, mut private) = ([0u8], [0u8]);
        mem.read(0x500, &mut shared).unwrap();
        mem.read(paravisor.0, &mut private).unwrap();
        assert_eq!((shared[0], private[0]), (0x5a, 0xaa));
        assert!(
            hv.vtl0_host().unwrap().take_vp(0).is_none(),
            "handed out once"
        );
    }

    /// A partition of 1 MiB on KVM with the paravisor at 0x8000 (one page) and VTL0 enabled
    /// on both VPs, starting in real mode at 0x1000.
    fn kvm_partition_with_vtl0() -> (HyperV, GuestMemory) {
        let kvm_fd = kvm_ioctls::Kvm::new().expect("/dev/kvm is needed for this test");
        let cpuid = kvm_fd
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .unwrap();
        let host = Vtl0Host::new(kvm_fd, vec![(0x8000, 0x1000)], cpuid, 2);
        let hv = HyperV::new(2).with_vtl0_host(host);
        let mem = GuestMemory::new(1 << 20).unwrap();
        let enable_partition = Control::new(code::ENABLE_PARTITION_VTL).with_fast(true);
        hv.hypercall(0, enable_partition.0, PARTITION_SELF, 0, &mem);
        for vp in 0..2u32 {
            let mut input = vec![0u8; VpVtlInput::SIZE];
            input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
            input[8..12].copy_from_slice(&vp.to_le_bytes());
            input[16..240].copy_from_slice(&real_mode_context(0x1000));
            mem.write(0x9000, &input).unwrap();
            let r = hv.hypercall(0, Control::new(code::ENABLE_VP_VTL).0, 0x9000, 0, &mem);
            assert_eq!(hypercall::parse_result(r).0, HvStatus::SUCCESS);
        }
        (hv, mem)
    }

    /// ModifyVtlProtectionMask of `pages` to `flags`: (status, reps done).
    fn protect(hv: &HyperV, mem: &GuestMemory, flags: u32, pages: &[u64]) -> (HvStatus, u16) {
        let mut input = vec![0u8; 16];
        input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
        input[8..12].copy_from_slice(&flags.to_le_bytes());
        for page in pages {
            input.extend_from_slice(&page.to_le_bytes());
        }
        mem.write(0xa000, &input).unwrap();
        let control =
            Control::new(code::MODIFY_VTL_PROTECTION_MASK).with_rep_count(pages.len() as u16);
        hypercall::parse_result(hv.hypercall(0, control.0, 0xa000, 0, mem))
    }

    #[test]
    fn protection_changes_reach_vtl0_through_its_memory_slots() {
        use hvdef::hypercall::map_flags;
        use kvm_ioctls::VcpuExit;
        let (hv, mem) = kvm_partition_with_vtl0();
        mem.write(0x8000, &[0xaa]).unwrap();
        // mov al, [0x5000]; mov [0x5000], al; mov al, [0x8000]; out 0xe4, al
        let code = [
            0xa0, 0x00, 0x50, 0xa2, 0x00, 0x50, 0xa0, 0x00, 0x80, 0xe6, 0xe4,
        ];
        mem.write(0x1000, &code).unwrap();
        assert_eq!(
            protect(&hv, &mem, map_flags::READABLE, &[5]),
            (HvStatus::SUCCESS, 1)
        );
        assert_eq!(
            protect(&hv, &mem, map_flags::ALL, &[8]),
            (HvStatus::SUCCESS, 1),
            "grant a paravisor page"
        );
        assert_eq!(
            protect(&hv, &mem, map_flags::WRITABLE, &[5]),
            (HvStatus::INVALID_PARAMETER, 0),
            "write without read"
        );
        assert_eq!(
            protect(&hv, &mem, 0, &[9, 0x1_0000]),
            (HvStatus::INVALID_PARAMETER, 1),
            "the second page is past RAM"
        );
        let host = hv.vtl0_host().unwrap();
        assert_eq!(host.access(0x9000), 0, "page 9 was taken away");
        let mut vcpu = host.take_vp(0).unwrap();
        assert!(
            matches!(vcpu.run().unwrap(), VcpuExit::MmioWrite(0x5000, _)),
            "the read-only page refuses the write, not the read"
        );
        assert!(
            matches!(vcpu.run().unwrap(), VcpuExit::IoOut(0xe4, &[0xaa])),
            "the granted paravisor page reads through"
        );
    }

    #[test]
    fn vtl0_cannot_make_vmm_lite_touch_memory_its_view_hides() {
        let (hv, mem) = kvm_partition_with_vtl0(); // the paravisor's page is 0x8000
        let vtl0 = Caller {
            vp: 0,
            vtl: Vtl::Vtl0,
        };
        mem.write(0x8000, &[0xaa; 16]).unwrap();
        let mut input = vec![0u8; 20];
        input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
        input[8..12].copy_from_slice(&VP_INDEX_SELF.to_le_bytes());
        input[16..20].copy_from_slice(&reg::VP_INDEX.to_le_bytes());
        mem.write(0x9000, &input).unwrap();
        let get = Control::new(code::GET_VP_REGISTERS).with_rep_count(1);
        let status = |input_gpa, output_gpa| {
            let r = hv.hypercall_from(vtl0, get.0, input_gpa, output_gpa, &mem, None);
            hypercall::parse_result(r).0
        };
        assert_eq!(
            status(0x9000, 0x8000),
            HvStatus::ACCESS_DENIED,
            "output into the paravisor"
        );
        assert_eq!(
            status(0x8000, 0xa000),
            HvStatus::ACCESS_DENIED,
            "input from the paravisor"
        );
        assert_eq!(status(0x9000, 0xa000), HvStatus::SUCCESS);
        let mut paravisor = [0u8; 16];
        mem.read(0x8000, &mut paravisor).unwrap();
        assert_eq!(paravisor, [0xaa; 16]);
        // Page MSRs: the hypercall page would be written into the paravisor's page.
        hv.write_msr(vtl0, msr::GUEST_OS_ID, 1 << 63, &mem).unwrap();
        assert_eq!(
            hv.write_msr(vtl0, msr::HYPERCALL, 0x8001, &mem),
            Err(GeneralProtection)
        );
        mem.read(0x8000, &mut paravisor).unwrap();
        assert_eq!(paravisor, [0xaa; 16]);
        assert_eq!(
            hv.write_msr(vtl0, msr::VP_ASSIST_PAGE, 0xffff_ffff_ffff_f001, &mem),
            Err(GeneralProtection),
            "a page past the end of the address space"
        );
        hv.write_msr(vtl0, msr::HYPERCALL, 0xa001, &mem).unwrap();
    }

    #[test]
    fn a_waiting_vtl0_vp_starts_by_init_sipi_from_vtl0s_own_apic() {
        use kvm_ioctls::VcpuExit;
        let (hv, mem) = kvm_partition_with_vtl0();
        #[rustfmt::skip]
        let bsp: &[u8] = &[
            0x66, 0xb9, 0x1b, 0x00, 0x00, 0x00,       // mov ecx, IA32_APIC_BASE
            0x0f, 0x32,                               // rdmsr
            0x66, 0x0d, 0x00, 0x0c, 0x00, 0x00,       // or eax, 0xc00: x2APIC on
            0x0f, 0x30,                               // wrmsr
            0x66, 0xb9, 0x30, 0x08, 0x00, 0x00,       // mov ecx, x2APIC ICR
            0x66, 0x31, 0xd2,                         // xor edx, edx
            0x66, 0xb8, 0x00, 0x45, 0x0c, 0x00,       // mov eax, INIT, all but self
            0x0f, 0x30,                               // wrmsr
            0x66, 0xb8, 0x0a, 0x46, 0x0c, 0x00,       // mov eax, SIPI 0x0a, all but self
            0x0f, 0x30,                               // wrmsr
            0xe6, 0x98,                               // out 0x98, al
        ];
        mem.write(0x1000, bsp).unwrap();
        mem.write(0xa000, &[0xe6, 0x99]).unwrap(); // the AP: out 0x99, al
        let host = hv.vtl0_host().unwrap();
        let (mut vp0, mut vp1) = (host.take_vp(0).unwrap(), host.take_vp(1).unwrap());
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // A VP waiting for SIPI returns EAGAIN when an event wakes it; then it runs.
            let port = loop {
                match vp1.run() {
                    Ok(VcpuExit::IoOut(port, _)) => break Some(port),
                    Err(e) if e.errno() == libc::EAGAIN || e.errno() == libc::EINTR => {}
                    _ => break None,
                }
            };
            let _ = done.send(port);
        });
        assert!(matches!(vp0.run().unwrap(), VcpuExit::IoOut(0x98, _)));
        let ap = finished.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(ap, Ok(Some(0x99)), "VP 1 ran the SIPI's code");
    }

    #[test]
    fn only_vtl2_places_vtl0s_register_page() {
        let (hv, mem) = setup();
        let enable_partition = Control::new(code::ENABLE_PARTITION_VTL).with_fast(true);
        hv.hypercall(0, enable_partition.0, PARTITION_SELF, 0, &mem);
        let mut enable = vec![0u8; VpVtlInput::SIZE];
        enable[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
        enable[8..12].copy_from_slice(&VP_INDEX_SELF.to_le_bytes());
        mem.write(0x9000, &enable).unwrap();
        hv.hypercall(0, Control::new(code::ENABLE_VP_VTL).0, 0x9000, 0, &mem);
        let set = |caller: Caller, target_vtl: u8, value: u64| {
            let mut input = vec![0u8; 48];
            input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
            input[8..12].copy_from_slice(&VP_INDEX_SELF.to_le_bytes());
            input[12] = target_vtl;
            input[16..20].copy_from_slice(&register_page::REGISTER_NAME.to_le_bytes());
            input[32..40].copy_from_slice(&value.to_le_bytes());
            mem.write(0x8000, &input).unwrap();
            let control = Control::new(code::SET_VP_REGISTERS).with_rep_count(1);
            let r = hv.hypercall_from(caller, control.0, 0x8000, 0, &mem, None);
            hypercall::parse_result(r).0
        };
        let vtl0 = Caller {
            vp: 0,
            vtl: Vtl::Vtl0,
        };
        assert_eq!(set(vtl0, 0, 0x6001), HvStatus::ACCESS_DENIED);
        assert_eq!(
            set(Caller::vtl2(0), 0x10, 0x10_0001),
            HvStatus::INVALID_REGISTER_VALUE,
            "past RAM"
        );
        assert_eq!(set(Caller::vtl2(0), 0x10, 0x6001), HvStatus::SUCCESS);
        assert_eq!(hv.vtl2_pages(0).vtl0_registers, PageMsr(0x6001));
        assert_eq!(hv.vtl2_pages(1).vtl0_registers, PageMsr(0), "per VP");
    }

    #[test]
    fn start_virtual_processor_sets_vtl0_going_once() {
        let (hv, mem) = kvm_partition_with_vtl0();
        let start = |vp: u32, rip: u64| {
            let mut input = vec![0u8; VpVtlInput::SIZE];
            input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
            input[8..12].copy_from_slice(&vp.to_le_bytes());
            input[16..240].copy_from_slice(&real_mode_context(rip));
            mem.write(0x9000, &input).unwrap();
            let control = Control::new(code::START_VIRTUAL_PROCESSOR);
            hypercall::parse_result(hv.hypercall(0, control.0, 0x9000, 0, &mem)).0
        };
        let host = hv.vtl0_host().unwrap();
        let mp_state = |vcpu: &kvm_ioctls::VcpuFd| vcpu.get_mp_state().unwrap().mp_state;
        // Enabled from VP 0: started there, waiting on VP 1.
        let vp1 = host.take_vp(1).unwrap();
        assert_eq!(mp_state(&vp1), kvm_bindings::KVM_MP_STATE_UNINITIALIZED);
        assert_eq!(start(1, 0x2000), HvStatus::SUCCESS);
        assert_eq!(
            start(1, 0x3000),
            HvStatus::INVALID_VP_STATE,
            "already started"
        );
        assert_eq!(start(5, 0x2000), HvStatus::INVALID_VP_INDEX);
        // VP 1's thread holds its vCPU: the start waits for it there.
        let pending = host
            .take_pending_start(1)
            .expect("a start for VP 1's thread");
        crate::vtl0_view::start(&vp1, &pending).unwrap();
        assert_eq!(vp1.get_regs().unwrap().rip, 0x2000);
        assert_eq!(mp_state(&vp1), kvm_bindings::KVM_MP_STATE_RUNNABLE);
        // VP 0 enabled its own VTL0, which runs once its thread takes it: no restart.
        let vp0 = host.take_vp(0).unwrap();
        assert_eq!(start(0, 0x3000), HvStatus::INVALID_VP_STATE);
        assert_eq!(vp0.get_regs().unwrap().rip, 0x1000);
    }

    #[test]
    fn vtl0_is_enabled_by_fast_and_memory_hypercalls() {
        let (hv, mem) = setup();
        let status = |r| hypercall::parse_result(r).0;
        let enable_partition = Control::new(code::ENABLE_PARTITION_VTL).with_fast(true);
        // Fast form: PartitionId in RDX, TargetVtl (0) and Flags in R8.
        assert_eq!(
            status(hv.hypercall(0, enable_partition.0, PARTITION_SELF, 0, &mem)),
            HvStatus::SUCCESS
        );
        assert_eq!(
            status(hv.hypercall(0, enable_partition.0, PARTITION_SELF, 0, &mem)),
            HvStatus::INVALID_VTL_STATE
        );
        let mut input = vec![0u8; VpVtlInput::SIZE];
        input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
        input[8..12].copy_from_slice(&1u32.to_le_bytes());
        input[16..24].copy_from_slice(&0xfff0u64.to_le_bytes()); // VTL0 RIP
        mem.write(0x8000, &input).unwrap();
        let enable_vp = Control::new(code::ENABLE_VP_VTL);
        assert_eq!(
            status(hv.hypercall(0, enable_vp.0, 0x8000, 0, &mem)),
            HvStatus::SUCCESS
        );
        assert_eq!(
            status(hv.hypercall(0, enable_vp.0, 0x8000, 0, &mem)),
            HvStatus::VTL_ALREADY_ENABLED
        );
        assert_eq!(
            status(hv.hypercall(0, enable_vp.with_fast(true).0, 0x8000, 0, &mem)),
            HvStatus::INVALID_HYPERCALL_INPUT,
            "240 bytes do not fit registers"
        );
        assert_eq!(
            status(hv.hypercall(0, enable_vp.0, 0x8f80, 0, &mem)),
            HvStatus::INVALID_ALIGNMENT,
            "crosses a page"
        );
        assert_eq!(hv.vsm().vtl0_context(1).map(|c| c.rip), Some(0xfff0));
        let (_, values) = get_vp_registers(
            &hv,
            &mem,
            1,
            VP_INDEX_SELF,
            &[reg::VSM_VP_STATUS],
            Control::new(code::GET_VP_REGISTERS).with_rep_count(1),
        );
        assert_eq!(values, [2 | (0b101 << 16)]);
    }

    #[test]
    fn malformed_hypercalls_get_the_spec_statuses() {
        let (hv, mem) = setup();
        let status = |r| hypercall::parse_result(r).0;
        assert_eq!(
            status(hv.hypercall(0, 0x7ff7, 0, 0, &mem)),
            HvStatus::INVALID_HYPERCALL_CODE
        );
        let rep = Control::new(code::GET_VP_REGISTERS);
        assert_eq!(
            status(hv.hypercall(0, rep.0, 0x8000, 0x9000, &mem)),
            HvStatus::INVALID_HYPERCALL_INPUT,
            "no reps"
        );
        assert_eq!(
            status(hv.hypercall(0, rep.with_rep_count(1).0, 0x8004, 0x9000, &mem)),
            HvStatus::INVALID_ALIGNMENT
        );
        assert_eq!(
            status(hv.hypercall(0, rep.with_rep_count(1).0, 0x8ff8, 0x9000, &mem)),
            HvStatus::INVALID_ALIGNMENT,
            "crosses a page"
        );
        assert_eq!(
            status(hv.hypercall(0, rep.with_rep_count(1).0, 0xff_fff0, 0x9000, &mem)),
            HvStatus::INVALID_ALIGNMENT,
            "outside RAM"
        );
        let (result, _) =
            get_vp_registers(&hv, &mem, 0, 7, &[reg::VP_INDEX], rep.with_rep_count(1));
        assert_eq!(status(result), HvStatus::INVALID_VP_INDEX);
    }
}

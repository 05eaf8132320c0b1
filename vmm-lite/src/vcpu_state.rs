//! A vCPU's state as the TLFS names it: register names to KVM's register files, segment
//! encodings both ways, the processor mode, and guest linear memory through the vCPU's own
//! page tables. Also the one KVM detail every VTL switch needs: finishing a pending exit.

use hvdef::registers::{self as reg, SegmentRegister, TableRegister};
use hvdef::status::HvStatus;
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;

use crate::guest_memory::GuestMemory;
use crate::hyperv::LowerVtlRegisters;
use crate::port_io_decode::CpuMode;
use crate::vm::segment;

const PAGE: u64 = 4096;
/// Where KVM puts port I/O data in the vCPU's mapping (KVM_PIO_PAGE_OFFSET pages in).
const PIO_PAGE_OFFSET: usize = 4096;
const CR0_PE: u64 = 1 << 0;
const CR0_AM: u64 = 1 << 18;
const EFER_LMA: u64 = 1 << 10;

/// The TLFS form of a KVM segment (attributes as VMX lays them out; see `vm::segment`).
pub fn segment_register(s: &kvm_segment) -> SegmentRegister {
    let attributes = u16::from(s.type_ & 0xf)
        | u16::from(s.s & 1) << 4
        | u16::from(s.dpl & 3) << 5
        | u16::from(s.present & 1 & !s.unusable) << 7
        | u16::from(s.avl & 1) << 12
        | u16::from(s.l & 1) << 13
        | u16::from(s.db & 1) << 14
        | u16::from(s.g & 1) << 15;
    SegmentRegister {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        attributes,
    }
}

/// The KVM form of a TLFS segment register.
pub fn kvm_segment_of(s: &SegmentRegister) -> kvm_segment {
    segment(s.base, s.limit, s.selector, s.attributes)
}

/// The mode the vCPU executes in, which fixes how instructions decode.
pub fn cpu_mode(sregs: &kvm_sregs) -> CpuMode {
    if sregs.cr0 & CR0_PE == 0 {
        CpuMode::Real16
    } else if sregs.efer & EFER_LMA != 0 && sregs.cs.l != 0 {
        CpuMode::Long64
    } else if sregs.cs.db != 0 {
        CpuMode::Protected32
    } else {
        CpuMode::Protected16
    }
}

/// The base a data segment adds to an address: none in 64-bit mode (Intel SDM Vol. 1
/// §3.4.2.1; FS and GS excepted, which string I/O does not use without an override).
/// The general-purpose registers in their instruction-encoding order (RAX, RCX, RDX, RBX,
/// RSP, RBP, RSI, RDI, R8-R15): what a register number in an instruction, or the register
/// page's array, indexes.
pub fn general_registers(r: &kvm_regs) -> [u64; 16] {
    [
        r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15,
    ]
}

pub fn data_segment_base(sregs: &kvm_sregs, segment: &kvm_segment) -> u64 {
    if cpu_mode(sregs) == CpuMode::Long64 {
        0
    } else {
        segment.base
    }
}

/// HV_X64_VP_EXECUTION_STATE for an intercept message from VTL0: 1:0 CPL (SS.DPL, which
/// always equals it; CS.DPL does not for conforming code), 2 CR0.PE, 3 CR0.AM, 4 EFER.LMA;
/// VTL (10:7) is 0.
pub fn execution_state(sregs: &kvm_sregs) -> u16 {
    u16::from(sregs.ss.dpl & 3)
        | u16::from(sregs.cr0 & CR0_PE != 0) << 2
        | u16::from(sregs.cr0 & CR0_AM != 0) << 3
        | u16::from(sregs.efer & EFER_LMA != 0) << 4
}

/// Guest memory as a vCPU's code reaches it: linear addresses through its own page tables,
/// and only guest-physical pages `may_read` allows (the VTL0 view's, never the paravisor's).
pub struct LinearMemory<'a> {
    pub vcpu: &'a VcpuFd,
    pub memory: &'a GuestMemory,
    pub may_read: &'a dyn Fn(u64) -> bool,
}

impl LinearMemory<'_> {
    /// Reads `len` bytes at guest linear address `linear`; stops at the first page that does
    /// not translate, lies outside RAM or may not be read.
    pub fn read(&self, linear: u64, len: usize) -> Vec<u8> {
        let (vcpu, memory) = (self.vcpu, self.memory);
        let mut out = Vec::with_capacity(len);
        let mut at = linear;
        while out.len() < len {
            let in_page = (PAGE - at % PAGE) as usize;
            let n = in_page.min(len - out.len());
            let Some(gpa) = translate(vcpu, at).filter(|&gpa| (self.may_read)(gpa)) else {
                break;
            };
            let mut chunk = vec![0u8; n];
            if memory.read(gpa, &mut chunk).is_err() {
                break;
            }
            out.extend_from_slice(&chunk);
            at = at.wrapping_add(n as u64);
        }
        out
    }
}

/// The guest-physical address of `linear`, if it is mapped.
pub fn translate(vcpu: &VcpuFd, linear: u64) -> Option<u64> {
    let t = vcpu.translate_gva(linear).ok()?;
    (t.valid != 0).then_some(t.physical_address)
}

/// The element size (1, 2 or 4) of the port I/O exit the vCPU stopped on.
pub fn pending_io_size(vcpu: &mut VcpuFd) -> u8 {
    let run = vcpu.get_kvm_run();
    if run.exit_reason != kvm_bindings::KVM_EXIT_IO {
        return 0;
    }
    // SAFETY: the vCPU stopped on KVM_EXIT_IO (checked), so `io` is the union member KVM
    // filled in.
    unsafe { run.__bindgen_anon_1.io }.size
}

/// What KVM says about the KVM_EXIT_INTERNAL_ERROR the vCPU stopped on (`kvm_run.internal`;
/// kvm-ioctls reports the exit without it).
pub fn internal_error(vcpu: &mut VcpuFd) -> crate::kvm_failure::Stop {
    let run = vcpu.get_kvm_run();
    if run.exit_reason != kvm_bindings::KVM_EXIT_INTERNAL_ERROR {
        // Not what the caller saw: say so rather than read another exit's data.
        return crate::kvm_failure::Stop::Internal {
            suberror: 0,
            ndata: 0,
            data: [0; 16],
        };
    }
    // SAFETY: the vCPU stopped on KVM_EXIT_INTERNAL_ERROR (checked), so `internal` is the
    // union member KVM filled in; it is plain integers, valid for any bits.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    crate::kvm_failure::Stop::Internal {
        suberror: internal.suberror,
        ndata: internal.ndata,
        data: internal.data,
    }
}

/// The data buffer of the port I/O exit the vCPU stopped on (what an IN will load).
pub fn pending_io_data(vcpu: &mut VcpuFd) -> &mut [u8] {
    let run = vcpu.get_kvm_run();
    if run.exit_reason != kvm_bindings::KVM_EXIT_IO {
        return &mut [];
    }
    // SAFETY: the vCPU stopped on KVM_EXIT_IO (checked), so `io` is the union member KVM
    // filled in.
    let io = unsafe { run.__bindgen_anon_1.io };
    let len = usize::from(io.size) * io.count as usize;
    let offset = io.data_offset as usize;
    // On x86 KVM puts the data on the page after `kvm_run` in the vCPU's mapping
    // (KVM_PIO_PAGE_OFFSET = 1), one page at most.
    let base = run as *mut kvm_bindings::kvm_run as *mut u8;
    if offset != PIO_PAGE_OFFSET || len > PAGE as usize {
        return &mut [];
    }
    // SAFETY: the vCPU's mapping (KVM_GET_VCPU_MMAP_SIZE, several pages on x86) holds the
    // run page and the PIO page; the range is checked to lie on the PIO page, and the
    // mapping lives as long as `vcpu`.
    unsafe { std::slice::from_raw_parts_mut(base.add(offset), len) }
}

/// Lets KVM finish the exit the vCPU stopped on (an IN's load, an MMIO read's register
/// write, an MSR access) without running the guest further: KVM_RUN with `immediate_exit`
/// completes pending work, then returns EINTR (KVM API, "immediate_exit"). Finishing can
/// itself stop on another access (an INS into memory outside the view): that one is answered
/// as an empty bus would answer it, a few times at most. After this the register file is
/// final and may be read or replaced.
pub fn complete_pending(vcpu: &mut VcpuFd) -> Result<(), kvm_ioctls::Error> {
    const MAX_FOLLOW_UPS: usize = 8;
    vcpu.set_kvm_immediate_exit(1);
    let mut result = Ok(());
    for _ in 0..MAX_FOLLOW_UPS {
        match vcpu.run() {
            Err(e) if e.errno() == libc::EINTR => break,
            Err(e) => {
                result = Err(e);
                break;
            }
            Ok(kvm_ioctls::VcpuExit::MmioRead(_, data)) => data.fill(0xff),
            Ok(kvm_ioctls::VcpuExit::IoIn(_, data)) => data.fill(0xff),
            Ok(_) => {} // writes vanish; anything else has nothing to answer
        }
    }
    vcpu.set_kvm_immediate_exit(0);
    result
}

/// RFLAGS as a VTL may set another's: the architectural bits except VM (virtual-8086 mode,
/// which KVM's long-mode guests cannot enter), bit 1 set (Intel SDM Vol. 1 §3.4.3).
pub fn sanitize_rflags(value: u64) -> u64 {
    // CF, PF, AF, ZF, SF, TF, IF, DF, OF, IOPL, NT, RF, AC, VIF, VIP, ID.
    const WRITABLE: u64 = 0x003d_7fd5;
    (value & WRITABLE) | 0x2
}

/// The general-purpose registers by TLFS name.
fn gpr(regs: &mut kvm_regs, name: u32) -> Option<&mut u64> {
    Some(match name {
        reg::RAX => &mut regs.rax,
        reg::RCX => &mut regs.rcx,
        reg::RDX => &mut regs.rdx,
        reg::RBX => &mut regs.rbx,
        reg::RSP => &mut regs.rsp,
        reg::RBP => &mut regs.rbp,
        reg::RSI => &mut regs.rsi,
        reg::RDI => &mut regs.rdi,
        n if n == reg::R8 => &mut regs.r8,
        n if n == reg::R8 + 1 => &mut regs.r9,
        n if n == reg::R8 + 2 => &mut regs.r10,
        n if n == reg::R8 + 3 => &mut regs.r11,
        n if n == reg::R8 + 4 => &mut regs.r12,
        n if n == reg::R8 + 5 => &mut regs.r13,
        n if n == reg::R8 + 6 => &mut regs.r14,
        n if n == reg::R8 + 7 => &mut regs.r15,
        reg::RIP => &mut regs.rip,
        reg::RFLAGS => &mut regs.rflags,
        _ => return None,
    })
}

/// The registers KVM stored in the run area at the vCPU's last exit (KVM_CAP_SYNC_REGS,
/// enabled for `SyncReg::Register`). Current only while nothing has set them since with
/// KVM_SET_REGS.
pub fn exit_regs(vcpu: &mut VcpuFd) -> kvm_regs {
    vcpu.sync_regs_mut().regs
}

/// Gives the vCPU `regs` at its next KVM_RUN through the run area, without an ioctl.
pub fn set_entry_regs(vcpu: &mut VcpuFd, regs: &kvm_regs) {
    vcpu.sync_regs_mut().regs = *regs;
    vcpu.set_sync_dirty_reg(kvm_ioctls::SyncReg::Register);
}

/// The shared general-purpose registers, moved between VTLs on every switch.
pub fn copy_shared_gprs(from: &kvm_regs, to: &mut kvm_regs) {
    let mut from = *from;
    for name in reg::SHARED_GENERAL_PURPOSE {
        if let (Some(src), Some(dst)) = (gpr(&mut from, name), gpr(to, name)) {
            *dst = *src;
        }
    }
}

fn segment_of(sregs: &mut kvm_sregs, name: u32) -> Option<&mut kvm_segment> {
    Some(match name {
        reg::ES => &mut sregs.es,
        reg::CS => &mut sregs.cs,
        reg::SS => &mut sregs.ss,
        reg::DS => &mut sregs.ds,
        reg::FS => &mut sregs.fs,
        reg::GS => &mut sregs.gs,
        reg::LDTR => &mut sregs.ldt,
        reg::TR => &mut sregs.tr,
        _ => return None,
    })
}

fn control_of(sregs: &mut kvm_sregs, name: u32) -> Option<&mut u64> {
    Some(match name {
        reg::CR0 => &mut sregs.cr0,
        reg::CR2 => &mut sregs.cr2,
        reg::CR3 => &mut sregs.cr3,
        reg::CR4 => &mut sregs.cr4,
        reg::CR8 => &mut sregs.cr8,
        reg::EFER => &mut sregs.efer,
        reg::APIC_BASE => &mut sregs.apic_base,
        _ => return None,
    })
}

/// XMM`n` for register name `name`.
fn xmm_index(name: u32) -> Option<usize> {
    let n = name.checked_sub(reg::XMM0)?;
    (n < 16).then_some(n as usize)
}

enum Debug {
    Address(usize),
    Status,
    Control,
}

fn debug_register(name: u32) -> Option<Debug> {
    match name {
        n if (reg::DR0..reg::DR0 + 4).contains(&n) => Some(Debug::Address((n - reg::DR0) as usize)),
        reg::DR6 => Some(Debug::Status),
        reg::DR7 => Some(Debug::Control),
        _ => None,
    }
}

/// A VTL0 vCPU as VTL2's Get/SetVpRegisters sees it. The state VTLs share besides the
/// general-purpose registers (x87/SSE/AVX, DR0-DR3, DR6, CR2) stays in VTL0's vCPU and is
/// reached here by name: a paravisor that never touches it itself (Parapet is soft-float and
/// uses no debug registers) sees exactly what sharing would show, without copying it on
/// every switch.
pub struct VcpuRegisters<'a>(pub &'a VcpuFd);

impl LowerVtlRegisters for VcpuRegisters<'_> {
    fn get(&mut self, name: u32) -> Option<[u8; 16]> {
        if let Ok(mut regs) = self.0.get_regs() {
            if let Some(v) = gpr(&mut regs, name) {
                return Some(reg::u64_value(*v));
            }
        }
        if let Some(n) = xmm_index(name) {
            return self.0.get_fpu().ok().map(|fpu| fpu.xmm[n]);
        }
        if let Some(debug) = debug_register(name) {
            let d = self.0.get_debug_regs().ok()?;
            return Some(reg::u64_value(match debug {
                Debug::Address(n) => d.db[n],
                Debug::Status => d.dr6,
                Debug::Control => d.dr7,
            }));
        }
        let mut sregs = self.0.get_sregs().ok()?;
        if let Some(s) = segment_of(&mut sregs, name) {
            return Some(segment_register(s).to_bytes());
        }
        if let Some(v) = control_of(&mut sregs, name) {
            return Some(reg::u64_value(*v));
        }
        let table = match name {
            reg::IDTR => sregs.idt,
            reg::GDTR => sregs.gdt,
            _ => return None,
        };
        Some(
            TableRegister {
                limit: table.limit,
                base: table.base,
            }
            .to_bytes(),
        )
    }

    /// Writes a private register. The shared general-purpose registers are refused: VTL2
    /// holds them in its own registers, and they overwrite VTL0's on the return.
    fn set(&mut self, name: u32, value: &[u8; 16]) -> Result<(), HvStatus> {
        let failed = |_| HvStatus::INVALID_VP_STATE;
        let value64 = le::u64_at(value, 0).unwrap_or_default();
        if reg::SHARED_GENERAL_PURPOSE.contains(&name) {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        if let Some(n) = xmm_index(name) {
            let mut fpu = self.0.get_fpu().map_err(failed)?;
            fpu.xmm[n] = *value;
            return self.0.set_fpu(&fpu).map_err(failed);
        }
        if let Some(debug) = debug_register(name) {
            let mut d = self.0.get_debug_regs().map_err(failed)?;
            *match debug {
                Debug::Address(n) => &mut d.db[n],
                Debug::Status => &mut d.dr6,
                Debug::Control => &mut d.dr7,
            } = value64;
            return self
                .0
                .set_debug_regs(&d)
                .map_err(|_| HvStatus::INVALID_REGISTER_VALUE);
        }
        let mut regs = self.0.get_regs().map_err(failed)?;
        if let Some(v) = gpr(&mut regs, name) {
            *v = if name == reg::RFLAGS {
                sanitize_rflags(value64)
            } else {
                value64
            };
            return self.0.set_regs(&regs).map_err(failed);
        }
        let mut sregs = self.0.get_sregs().map_err(failed)?;
        if let Some(s) = segment_of(&mut sregs, name) {
            let parsed = SegmentRegister::parse(value).ok_or(HvStatus::INVALID_PARAMETER)?;
            *s = kvm_segment_of(&parsed);
        } else if let Some(v) = control_of(&mut sregs, name) {
            *v = value64;
        } else {
            let parsed = TableRegister::parse(value).ok_or(HvStatus::INVALID_PARAMETER)?;
            let table = match name {
                reg::IDTR => &mut sregs.idt,
                reg::GDTR => &mut sregs.gdt,
                _ => return Err(HvStatus::INVALID_PARAMETER),
            };
            (table.limit, table.base) = (parsed.limit, parsed.base);
        }
        // KVM refuses inconsistent control state (EINVAL): that is a bad value.
        self.0
            .set_sregs(&sregs)
            .map_err(|_| HvStatus::INVALID_REGISTER_VALUE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_convert_both_ways() {
        let cs = SegmentRegister {
            base: 0,
            limit: 0xffff_ffff,
            selector: 8,
            attributes: 0xa09b,
        };
        assert_eq!(segment_register(&kvm_segment_of(&cs)), cs);
        let mut unusable = kvm_segment_of(&cs);
        unusable.unusable = 1;
        assert_eq!(
            segment_register(&unusable).attributes & 0x80,
            0,
            "not present"
        );
    }

    #[test]
    fn shared_registers_move_and_private_ones_stay() {
        let from = kvm_regs {
            rax: 1,
            rcx: 2,
            r15: 3,
            rsp: 4,
            rip: 5,
            rflags: 6,
            ..Default::default()
        };
        let mut to = kvm_regs {
            rsp: 40,
            rip: 50,
            rflags: 60,
            ..Default::default()
        };
        copy_shared_gprs(&from, &mut to);
        assert_eq!(
            (to.rax, to.rcx, to.r15, to.rsp, to.rip, to.rflags),
            (1, 2, 3, 40, 50, 60)
        );
    }

    #[test]
    fn vtl0s_fpu_and_debug_state_are_reached_by_name() {
        let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm is needed for this test");
        let vm = kvm.create_vm().unwrap();
        let vcpu = vm.create_vcpu(0).unwrap();
        let mut regs = VcpuRegisters(&vcpu);
        let mut xmm3 = [0u8; 16];
        xmm3[..4].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        regs.set(reg::XMM0 + 3, &xmm3).unwrap();
        assert_eq!(regs.get(reg::XMM0 + 3), Some(xmm3));
        assert_eq!(vcpu.get_fpu().unwrap().xmm[3], xmm3);
        regs.set(reg::DR0 + 2, &reg::u64_value(0x4000)).unwrap();
        assert_eq!(regs.get(reg::DR0 + 2), Some(reg::u64_value(0x4000)));
        assert_eq!(vcpu.get_debug_regs().unwrap().db[2], 0x4000);
        assert_eq!(regs.get(reg::XMM0 + 16), None, "there are 16");
        assert_eq!(
            regs.set(reg::RAX, &reg::u64_value(1)),
            Err(HvStatus::INVALID_PARAMETER),
            "shared: VTL2 holds it"
        );
    }

    #[test]
    fn modes_follow_cr0_efer_and_cs() {
        let mut s = kvm_sregs::default();
        assert_eq!(cpu_mode(&s), CpuMode::Real16);
        s.cr0 = CR0_PE;
        s.cs.db = 1;
        assert_eq!(cpu_mode(&s), CpuMode::Protected32);
        s.efer = EFER_LMA;
        s.cs.l = 1;
        s.cs.db = 0;
        assert_eq!(cpu_mode(&s), CpuMode::Long64);
        s.ss.dpl = 3;
        assert_eq!(execution_state(&s), 3 | 1 << 2 | 1 << 4);
    }
}

//! One guest VP under SVM: its VMCB, the exits read from it, events injected into it, and
//! what the shared exit handlers (`guest::exits`) ask of a VP — registers, paging, MMIO
//! (its local APIC, the I/O APIC) and MSRs.

use arch::x86_64::instructions::{self, disable_interrupts, enable_interrupts};
use devices::ioapic;
use devices::pvclock;
use devices::x2apic::{Effect, LocalApic};
use hvdef::hypercall::InitialVpContext;
use isolation::svm_exit::{code, SvmExitState};
use isolation::x86_insn::{self, CodeMode};

use super::machine::Machine;
use super::vmcb::{self, control, misc1, misc2, save, Vmcb};
use super::{entry, run, SvmError};
use crate::guest::ram;
use crate::machine::guest::paging::Paging;
use crate::machine::guest::{policy, Gprs, GuestVp, Names};

pub const NAMES: Names = Names {
    backend: "svm",
    guest: "the guest",
};
/// The guest's address-space ID, shared by its VPs (one guest, one address space); 0 is the
/// host's (APM §15.16).
const GUEST_ASID: u32 = 1;
/// Event injection: valid, type exception, error code valid (APM §15.20); the types.
const INJECT_VALID: u64 = 1 << 31;
const EVENT_EXCEPTION: u64 = 3;
const EVENT_SOFTWARE_INTERRUPT: u64 = 4;
const INJECT_EXCEPTION: u64 = EVENT_EXCEPTION << 8;
const INJECT_ERROR_CODE: u64 = 1 << 11;
pub const VECTOR_DB: u64 = 1;
const VECTOR_BP: u64 = 3;
const VECTOR_OF: u64 = 4;
pub const VECTOR_UD: u64 = 6;
const VECTOR_GP: u64 = 13;
pub const VECTOR_AC: u64 = 17;
/// IOIO EXITINFO1: a string instruction (APM §15.10.2).
const IOIO_STRING: u64 = 1 << 2;
/// Exceptions that can recur without end inside their own delivery (a #DB or #AC raised
/// while delivering itself), holding the CPU in the guest for good; intercepted so each
/// one passes through Parapet, which gives them back to the guest and keeps its own time
/// (the reason KVM intercepts them too: CVE-2015-5307, CVE-2015-8104).
const LOOPING_EXCEPTIONS: u32 = (1 << VECTOR_DB) | (1 << VECTOR_AC);

/// What every VP's VMCB points at: the nested page tables and the permission maps, built
/// once for the guest.
#[derive(Clone, Copy, Debug)]
pub struct Tables {
    pub nested_root: u64,
    pub iopm: u64,
    pub msrpm: u64,
}

/// One of the guest's VPs, on the CPU of the same index.
pub struct SvmVp {
    /// Its index, which is also its APIC ID and its CPU.
    index: usize,
    machine: &'static Machine,
    vmcb: Vmcb,
    /// Where the host's FS/GS/TR/LDTR state waits while the guest runs.
    host_state: u64,
    gprs: Gprs,
    /// The CPU fills the VMCB's next-RIP field.
    nrips: bool,
    /// The processor's linear-address width, which WRMSR's canonical checks use whatever
    /// CR4.LA57 says (Intel SDM Vol. 3A §4.1.1): 57 where it supports 5-level paging (CPUID
    /// 7.0 ECX bit 16), else 48.
    linear_bits: u32,
    /// What the guest last wrote to the KVM clock MSRs (`devices::pvclock`).
    system_time_msr: u64,
    wall_clock_msr: u64,
}

/// MSRs whose guest values live in the VMCB's save area (loaded by VMRUN or VMLOAD): the
/// guest reads and writes its own copy.
const VMCB_MSRS: [(u32, usize); 11] = [
    (0x0000_0174, 0x628), // SYSENTER_CS
    (0x0000_0175, 0x630), // SYSENTER_ESP
    (0x0000_0176, 0x638), // SYSENTER_EIP
    (0x0000_0277, save::G_PAT),
    (0xc000_0081, 0x600), // STAR
    (0xc000_0082, 0x608), // LSTAR
    (0xc000_0083, 0x610), // CSTAR
    (0xc000_0084, 0x618), // SFMASK
    (0xc000_0100, save::FS + 8),
    (0xc000_0101, save::GS + 8),
    (0xc000_0102, 0x620), // KERNEL_GS_BASE
];
const MSR_EFER: u32 = 0xc000_0080;
/// IA32_APIC_BASE and the x2APIC MSR range (Intel SDM Vol. 3A §11.4.4, §11.12.1.2).
const MSR_APIC_BASE: u32 = 0x1b;
const X2APIC_MSRS: core::ops::RangeInclusive<u32> = 0x800..=0x8ff;
/// The xAPIC register page (Intel SDM Vol. 3A §11.4.1); never guest RAM, so accesses to it
/// are nested page faults that reach the APIC.
const XAPIC_PAGE: u64 = 0xfee0_0000;
const XAPIC_PAGE_SIZE: u64 = 0x1000;
/// CPUID's hypervisor range (Intel SDM Vol. 2A: 0x4000_0000-0x4FFF_FFFF are "invalid" on
/// hardware, so hypervisors answer there).
const HYPERVISOR_LEAVES_FIRST: u32 = 0x4000_0000;
const HYPERVISOR_LEAVES_LAST: u32 = 0x4fff_ffff;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;
/// The VMCB's interrupt-shadow bit (APM §15.21.5).
const INTERRUPT_SHADOW_ACTIVE: u64 = 1 << 0;
/// Event injection type 0: an external interrupt.
const INJECT_INTERRUPT: u64 = 0 << 8;
/// EFER bits a guest may set: SCE, LME, NXE (APM Vol. 2, §3.1.7).
const EFER_GUEST_BITS: u64 = (1 << 0) | (1 << 8) | (1 << 11);
/// The MSRs of `VMCB_MSRS` that hold linear addresses.
const ADDRESS_MSRS: [u32; 7] = [
    0x0000_0175,
    0x0000_0176,
    0xc000_0082,
    0xc000_0083,
    0xc000_0100,
    0xc000_0101,
    0xc000_0102,
];
/// RSP's number in the instruction encoding; it lives in the VMCB.
const REGISTER_RSP: u8 = 4;

/// What the guest's CPUID says of the local APIC and clock Parapet emulates, over the
/// processor's own answer: x2APIC (leaf 1 ECX bit 21) and the VP's APIC ID (EBX bits 31:24), no
/// TSC-deadline timer (ECX bit 24, not offered), and an APIC timer that runs in every C-state
/// (ARAT, leaf 6 EAX bit 2), so a guest need not fall back on a PIT (Intel SDM Vol. 2A,
/// CPUID); the hypervisor leaves are Parapet's, KVM's clock ABI (`devices::pvclock`) and
/// nothing of the machine's own hypervisor.
fn guest_cpuid(leaf: u32, [eax, ebx, ecx, edx]: [u32; 4], apic_id: u32) -> [u32; 4] {
    match leaf {
        HYPERVISOR_LEAVES_FIRST..=HYPERVISOR_LEAVES_LAST => pvclock::cpuid(leaf).unwrap_or([0; 4]),
        1 => [
            eax,
            (ebx & 0x00ff_ffff) | (apic_id << 24),
            (ecx | (1 << 21)) & !(1 << 24),
            edx,
        ],
        6 => [eax | (1 << 2), ebx, ecx, edx],
        _ => [eax, ebx, ecx, edx],
    }
}

/// Whether `address` is canonical for linear addresses of `linear_bits` bits.
fn canonical(address: u64, linear_bits: u32) -> bool {
    let unused = 64 - linear_bits;
    ((address as i64) << unused >> unused) as u64 == address
}

impl SvmVp {
    pub fn run(&mut self) {
        self.vmcb.write_u64(save::RAX, self.gprs.rax);
        disable_interrupts();
        // SAFETY: SVM is on (start), the VMCB and host-state frames are this VP's and the
        // VMCB was filled by `start`; interrupts are off.
        unsafe { run::run(&mut self.gprs, self.vmcb.address(), self.host_state) };
        self.gprs.rax = self.vmcb.read_u64(save::RAX);
        // An exit during event delivery (a nested page fault on the guest's IDT, say) leaves
        // the event in EXITINTINFO: deliver it again at the next run (APM §15.7.2).
        // What was injected for this run is delivered (or back in EXITINTINFO). A software
        // interrupt (INT n) or an INT3/INTO exception is not given again: RIP still points at
        // its instruction, which runs again and raises it anew.
        let interrupted = self.vmcb.read_u64(control::EXIT_INT_INFO);
        let event_type = (interrupted >> 8) & 7;
        let vector = interrupted & 0xff;
        let software = event_type == EVENT_SOFTWARE_INTERRUPT
            || (event_type == EVENT_EXCEPTION && (vector == VECTOR_BP || vector == VECTOR_OF));
        let reinject = if interrupted & INJECT_VALID != 0 && !software {
            interrupted
        } else {
            0
        };
        self.vmcb.write_u64(control::EVENT_INJECTION, reinject);
        // After the first run the TLB holds nothing stale for this guest.
        self.vmcb.write_u8(control::TLB_CONTROL, 0);
        // SAFETY: Parapet runs with interrupts on; a pending one (the reason this run ended,
        // perhaps) is taken here.
        unsafe { enable_interrupts() };
    }

    /// The exit, read once from the VMCB.
    pub fn exit_state(&mut self) -> SvmExitState {
        let code = self.vmcb.read_u64(control::EXIT_CODE);
        let (rax, rcx) = (self.gprs.rax, self.gprs.rcx);
        let cpuid = if code == code::CPUID {
            let (a, b, c, d) = instructions::cpuid(rax as u32, rcx as u32);
            guest_cpuid(rax as u32, [a, b, c, d], self.index as u32)
        } else {
            [0; 4]
        };
        let rip = self.vmcb.read_u64(save::RIP);
        let mode = self.code_mode();
        // The bytes are fetched only for exits that need them: string I/O (segment and
        // address size when the reporter leaves them out) and the fixed-opcode exits whose
        // length their prefixes decide.
        let opcode_length = match code {
            code::CPUID | code::MSR | code::INVD => Some(2),
            code::HLT => Some(1),
            _ => None,
        };
        let wants_bytes = opcode_length.is_some()
            || (code == code::IOIO && self.vmcb.read_u64(control::EXIT_INFO1) & IOIO_STRING != 0);
        let (bytes, byte_count) = match self.paging() {
            Some(paging) if wants_bytes => {
                let cs_base = self.code_base(mode);
                paging.fetch(cs_base.wrapping_add(rip), self.vmcb.read_u8(save::CPL) == 3)
            }
            _ => ([0; 15], 0),
        };
        let instruction_length = match opcode_length {
            Some(_) if self.nrips => {
                u8::try_from(self.vmcb.read_u64(control::NEXT_RIP).wrapping_sub(rip)).unwrap_or(0)
            }
            Some(opcode) => {
                x86_insn::length_with_prefixes(&bytes[..byte_count], opcode, mode).unwrap_or(0)
            }
            None => 0,
        };
        let v = &self.vmcb;
        SvmExitState {
            code,
            info1: v.read_u64(control::EXIT_INFO1),
            info2: v.read_u64(control::EXIT_INFO2),
            rip,
            rflags: v.read_u64(save::RFLAGS),
            rax,
            rcx,
            rdx: self.gprs.rdx,
            rsi: self.gprs.rsi,
            rdi: self.gprs.rdi,
            cpl: v.read_u8(save::CPL),
            segment_bases: vmcb::SEGMENTS.map(|s| v.segment_base(s)),
            mode,
            instruction_length,
            bytes,
            byte_count: byte_count as u8,
            cpuid,
        }
    }

    fn code_mode(&self) -> CodeMode {
        if self.vmcb.long_mode() {
            CodeMode::Bits64
        } else if self.vmcb.code_default_32() {
            CodeMode::Bits32
        } else {
            CodeMode::Bits16
        }
    }

    /// Gives the guest the highest interrupt its APIC holds before the next run: injected at
    /// once if the guest can take it (RFLAGS.IF, no interrupt shadow, no other event going
    /// in), else an interrupt window asked for (V_IRQ with the VINTR intercept), whose exit
    /// brings Parapet back the moment the guest can.
    pub fn offer_interrupt(&mut self) {
        let mut apic = self.apic();
        apic.poll_timer(kernel::platform::now_ns());
        let next = apic.next_interrupt(self.vmcb.read_u64(save::RFLAGS) & RFLAGS_IF != 0);
        // The guest's timer, when due, ends this run (or wakes its parked VP).
        if let Some(deadline) = apic.next_deadline_ns() {
            crate::machine::time::set_alarm(deadline);
        }
        drop(apic);
        let misc1 = self.vmcb.read_u32(control::INTERCEPT_MISC1) & !misc1::VINTR;
        let int_ctl = self.vmcb.read_u64(control::VIRTUAL_INTERRUPTS) & !vmcb::V_IRQ_WINDOW;
        let guest_if = self.vmcb.read_u64(save::RFLAGS) & RFLAGS_IF != 0;
        let (misc1, int_ctl) = match next {
            None => (misc1, int_ctl),
            Some(vector) => {
                let shadow =
                    self.vmcb.read_u64(control::INTERRUPT_SHADOW) & INTERRUPT_SHADOW_ACTIVE != 0;
                if guest_if && !shadow && !self.delivering_event() {
                    self.apic().acknowledge(vector);
                    self.vmcb.write_u64(
                        control::EVENT_INJECTION,
                        INJECT_VALID | INJECT_INTERRUPT | u64::from(vector),
                    );
                    (misc1, int_ctl)
                } else {
                    (misc1 | misc1::VINTR, int_ctl | vmcb::V_IRQ_WINDOW)
                }
            }
        };
        self.vmcb.write_u32(control::INTERCEPT_MISC1, misc1);
        self.vmcb.write_u64(control::VIRTUAL_INTERRUPTS, int_ctl);
    }

    /// Whether the APIC has an interrupt for a guest that halted with interrupts enabled.
    pub fn interrupt_ready(&mut self) -> bool {
        let mut apic = self.apic();
        apic.poll_timer(kernel::platform::now_ns());
        if let Some(deadline) = apic.next_deadline_ns() {
            crate::machine::time::set_alarm(deadline);
        }
        apic.next_interrupt(true).is_some()
    }

    /// This VP's local APIC (`devices::x2apic`): xAPIC MMIO at 0xFEE00000, or x2APIC MSRs.
    /// The guard must be dropped before anything else is locked (`machine`'s lock order).
    fn apic(&self) -> spin::MutexGuard<'static, LocalApic> {
        self.machine.vps[self.index].apic.lock()
    }

    /// What a guest access to its APIC caused, carried out.
    fn apic_effect(&mut self, effect: Effect) {
        match effect {
            // A level-triggered interrupt ended: the I/O APIC may deliver its line again.
            Effect::EoiBroadcast(vector) => self.machine.eoi(vector),
            Effect::SendIpi(ipi) => self.machine.send_ipi(self.index, ipi),
            Effect::None => {}
        }
    }

    /// The guest names where its KVM clock structures go (`devices::pvclock`): Parapet
    /// fills them in its RAM; an address outside it, misaligned or across a page is refused.
    fn write_clock_msr(&mut self, msr: u32, value: u64) -> bool {
        let written = if msr == pvclock::MSR_SYSTEM_TIME {
            let address = value & !pvclock::SYSTEM_TIME_ENABLE;
            value & pvclock::SYSTEM_TIME_ENABLE == 0
                || (pvclock::time_info_address_ok(address)
                    && ram::write(
                        address,
                        &pvclock::time_info(
                            crate::machine::time::tsc_hz(),
                            crate::machine::time::tsc_at_boot(),
                        ),
                    )
                    .is_ok())
        } else {
            value.is_multiple_of(4) && ram::write(value, &pvclock::wall_clock()).is_ok()
        };
        if written {
            if msr == pvclock::MSR_SYSTEM_TIME {
                self.system_time_msr = value;
            } else {
                self.wall_clock_msr = value;
            }
        }
        written
    }

    /// Whether the exit interrupted an event on its way into the guest (to be delivered
    /// again at the next run).
    pub fn delivering_event(&self) -> bool {
        self.vmcb.read_u64(control::EVENT_INJECTION) & INJECT_VALID != 0
    }

    /// CS's base, which 64-bit code ignores.
    fn code_base(&self, mode: CodeMode) -> u64 {
        match mode {
            CodeMode::Bits64 => 0,
            _ => self.vmcb.segment_base(save::CS),
        }
    }

    /// Delivers exception `vector` (with `error_code` if it has one) to the guest at its
    /// next run. An event already due again (it was being delivered when the guest exited)
    /// goes first; the exception recurs afterwards if its cause remains.
    pub fn inject_exception(&mut self, vector: u64, error_code: Option<u32>) {
        if self.vmcb.read_u64(control::EVENT_INJECTION) & INJECT_VALID != 0 {
            return;
        }
        let error = match error_code {
            Some(code) => INJECT_ERROR_CODE | (u64::from(code) << 32),
            None => 0,
        };
        self.vmcb.write_u64(
            control::EVENT_INJECTION,
            INJECT_VALID | INJECT_EXCEPTION | error | vector,
        );
    }
}

impl GuestVp for SvmVp {
    fn names(&self) -> Names {
        NAMES
    }

    fn gprs(&mut self) -> &mut Gprs {
        &mut self.gprs
    }

    fn set_rip(&mut self, rip: u64) {
        self.vmcb.write_u64(save::RIP, rip);
        // The instruction completed: an STI or MOV SS shadow that covered it is over (a HLT
        // right after STI exits inside the shadow).
        let state = self.vmcb.read_u64(control::INTERRUPT_SHADOW);
        self.vmcb
            .write_u64(control::INTERRUPT_SHADOW, state & !INTERRUPT_SHADOW_ACTIVE);
    }

    fn paging(&mut self) -> Option<Paging> {
        let v = &self.vmcb;
        Some(Paging::new(
            v.read_u64(save::CR0),
            v.read_u64(save::CR3),
            v.read_u64(save::CR4),
            v.read_u64(save::EFER),
        ))
    }

    fn code(&mut self) -> Option<(CodeMode, u64)> {
        let mode = self.code_mode();
        Some((mode, self.code_base(mode)))
    }

    fn register(&mut self, number: u8) -> Option<u64> {
        match number {
            REGISTER_RSP => Some(self.vmcb.read_u64(save::RSP)),
            n => self.gprs.by_number(n).map(|r| *r),
        }
    }

    fn set_register(&mut self, number: u8, value: u64) {
        match number {
            REGISTER_RSP => self.vmcb.write_u64(save::RSP, value),
            n => {
                if let Some(register) = self.gprs.by_number(n) {
                    *register = value;
                }
            }
        }
    }

    fn mmio_read(&mut self, gpa: u64, size: u8) -> Option<u64> {
        if let Some(value) = crate::guest::tpm::mmio_read(gpa, size) {
            return Some(value);
        }
        if let Some(offset) = gpa
            .checked_sub(ioapic::DEFAULT_BASE)
            .filter(|&o| o < ioapic::WINDOW_SIZE)
        {
            return Some(u64::from(self.machine.ioapic.lock().read(offset, size)));
        }
        let offset = gpa
            .checked_sub(XAPIC_PAGE)
            .filter(|&o| o < XAPIC_PAGE_SIZE)?;
        let mut apic = self.apic();
        apic.decodes_mmio()
            .then(|| u64::from(apic.read_mmio(offset, size, kernel::platform::now_ns())))
    }

    fn mmio_write(&mut self, gpa: u64, size: u8, value: u64) -> bool {
        if crate::guest::tpm::mmio_write(gpa, size, value) {
            return true;
        }
        if let Some(offset) = gpa
            .checked_sub(ioapic::DEFAULT_BASE)
            .filter(|&o| o < ioapic::WINDOW_SIZE)
        {
            let mut ioapic = self.machine.ioapic.lock();
            let sent = ioapic.write(offset, size, value as u32);
            self.machine.deliver(sent);
            return true;
        }
        let Some(offset) = gpa.checked_sub(XAPIC_PAGE).filter(|&o| o < XAPIC_PAGE_SIZE) else {
            return false;
        };
        let mut apic = self.apic();
        if !apic.decodes_mmio() {
            return false;
        }
        let effect = apic.write_mmio(offset, size, value as u32, kernel::platform::now_ns());
        drop(apic);
        self.apic_effect(effect);
        true
    }

    fn read_msr(&mut self, msr: u32) -> Option<u64> {
        if msr == MSR_EFER {
            return Some(self.vmcb.read_u64(save::EFER) & !vmcb::EFER_SVME);
        }
        if msr == MSR_APIC_BASE {
            return Some(self.apic().apic_base());
        }
        if msr == pvclock::MSR_SYSTEM_TIME {
            return Some(self.system_time_msr);
        }
        if msr == pvclock::MSR_WALL_CLOCK {
            return Some(self.wall_clock_msr);
        }
        if X2APIC_MSRS.contains(&msr) {
            let value = self.apic().read_msr(msr, kernel::platform::now_ns());
            return match value {
                Ok(value) => Some(value),
                Err(_) => {
                    self.inject_exception(VECTOR_GP, Some(0));
                    None
                }
            };
        }
        Some(match VMCB_MSRS.iter().find(|&&(m, _)| m == msr) {
            Some(&(_, offset)) => self.vmcb.read_u64(offset),
            None => policy::unoffered_msr_read(NAMES, msr),
        })
    }

    fn write_msr(&mut self, msr: u32, value: u64) -> bool {
        if msr == MSR_EFER {
            // LMA is the CPU's to set; SVME stays on for VMRUN's sake.
            let current = self.vmcb.read_u64(save::EFER);
            let efer = (value & EFER_GUEST_BITS) | (current & vmcb::EFER_LMA) | vmcb::EFER_SVME;
            self.vmcb.write_u64(save::EFER, efer);
            return true;
        }
        if msr == MSR_APIC_BASE {
            // Mode changes as the SDM allows them (xAPIC to x2APIC, either to disabled and
            // back through it); anything else is #GP, as on hardware.
            if self.apic().apic_base_write(value).is_ok() {
                return true;
            }
            self.inject_exception(VECTOR_GP, Some(0));
            return false;
        }
        if msr == pvclock::MSR_SYSTEM_TIME || msr == pvclock::MSR_WALL_CLOCK {
            if self.write_clock_msr(msr, value) {
                return true;
            }
            self.inject_exception(VECTOR_GP, Some(0));
            return false;
        }
        if X2APIC_MSRS.contains(&msr) {
            let result = self
                .apic()
                .write_msr(msr, value, kernel::platform::now_ns());
            return match result {
                Ok(effect) => {
                    self.apic_effect(effect);
                    true
                }
                Err(_) => {
                    self.inject_exception(VECTOR_GP, Some(0));
                    false
                }
            };
        }
        match VMCB_MSRS.iter().find(|&&(m, _)| m == msr) {
            // Addresses VMLOAD puts in the CPU must be canonical: #GP, as on hardware.
            Some(&(m, _)) if ADDRESS_MSRS.contains(&m) && !canonical(value, self.linear_bits) => {
                self.inject_exception(VECTOR_GP, Some(0));
                return false;
            }
            Some(&(_, offset)) => self.vmcb.write_u64(offset, value),
            None => policy::unoffered_msr_write(NAMES, msr, value),
        }
        true
    }
}

impl SvmVp {
    /// VP `index`'s VMCB on this CPU (SVM already enabled here), intercepting what
    /// `super`'s documentation lists; it enters the guest once given a state (`enter`).
    pub fn new(index: usize, machine: &'static Machine, tables: Tables) -> Result<Self, SvmError> {
        let host_state = kernel::memory::allocate_zeroed_frame()?;
        // SAFETY: a zeroed frame this VP owns, used for nothing else.
        let mut vmcb = unsafe { Vmcb::new(kernel::memory::allocate_zeroed_frame()?) };
        vmcb.write_u32(
            control::INTERCEPT_MISC1,
            misc1::INTR
                | misc1::NMI
                | misc1::CPUID
                | misc1::INVD
                | misc1::HLT
                | misc1::INVLPGA
                | misc1::IOIO_PROT
                | misc1::MSR_PROT
                | misc1::SHUTDOWN,
        );
        vmcb.write_u32(
            control::INTERCEPT_MISC2,
            misc2::VMRUN
                | misc2::VMMCALL
                | misc2::VMLOAD
                | misc2::VMSAVE
                | misc2::STGI
                | misc2::CLGI
                | misc2::SKINIT,
        );
        vmcb.write_u32(control::INTERCEPT_EXCEPTIONS, LOOPING_EXCEPTIONS);
        vmcb.write_u64(control::IOPM_BASE, tables.iopm);
        vmcb.write_u64(control::MSRPM_BASE, tables.msrpm);
        vmcb.write_u32(control::GUEST_ASID, GUEST_ASID);
        vmcb.write_u64(control::VIRTUAL_INTERRUPTS, vmcb::V_INTR_MASKING);
        vmcb.write_u64(control::NESTED_CONTROL, 1);
        vmcb.write_u64(control::NESTED_CR3, tables.nested_root);
        // Whether the CPU reports the next RIP on exits (CPUID 0x8000_000A EDX bit 3); QEMU
        // TCG does not.
        let nrips = instructions::cpuid(0x8000_000a, 0).3 & (1 << 3) != 0;
        Ok(Self {
            index,
            machine,
            vmcb,
            host_state,
            gprs: Gprs::default(),
            nrips,
            linear_bits: if instructions::cpuid(7, 0).2 & (1 << 16) != 0 {
                57
            } else {
                48
            },
            system_time_msr: 0,
            wall_clock_msr: 0,
        })
    }

    /// Puts the VP in `context` with RSI = `rsi` and every other general register 0, no
    /// event pending and a clean TLB: the next run starts there.
    pub fn enter(&mut self, context: &InitialVpContext, rsi: u64) {
        entry::set_boot_state(&mut self.vmcb, context);
        self.gprs = Gprs {
            rsi,
            ..Gprs::default()
        };
        self.vmcb.write_u64(control::EVENT_INJECTION, 0);
        self.vmcb.write_u64(control::INTERRUPT_SHADOW, 0);
        self.vmcb
            .write_u8(control::TLB_CONTROL, vmcb::TLB_FLUSH_ALL);
    }

    /// Whether an INIT has reset this VP's APIC since it started: the VP must wait for a
    /// start-up IPI.
    pub fn init_pending(&self) -> bool {
        *self.machine.vps[self.index].startup.lock() == super::machine::Startup::WaitingForSipi
    }
}

//! The `svm` isolation backend: with AMD-V and nested paging and no paravisor interface,
//! Parapet is the hypervisor. Its guest runs under a VMCB whose nested page tables map the
//! guest's RAM only (never Parapet's region), with every port and MSR intercepted (all-ones
//! permission maps) and CPUID, HLT, shutdown and nested page faults too. Exits are decoded by
//! `isolation::svm_exit` into the platform-neutral exit value and answered by the same
//! `guest` code the `hv_vtl` backend uses.
//!
//! Without NRIPS (QEMU TCG has none) the next RIP comes from EXITINFO2 for IOIO and from the
//! instruction's fixed length otherwise (rdmsr, wrmsr, cpuid: 2 bytes; hlt: 1).

mod npt;
mod run;
mod vmcb;

use arch::x86_64::instructions::{self, disable_interrupts, enable_interrupts};
use hvdef::hypercall::InitialVpContext;
use isolation::svm_exit::{self, code, SvmExitState};
use isolation::x86_insn::{self, CodeMode};
use kernel::executor::yield_now;

use crate::guest::log_budget::LogBudget;
use crate::guest::{self, ram, PerTrip};
use crate::machine::guest::devices::{GuestDevices, COM1_IRQ, IOAPIC_ID};
use crate::machine::guest::exits::{self, Verdict};
use crate::machine::guest::paging::Paging;
use crate::machine::guest::{loader, policy, Gprs, GuestVp, Names};
use devices::ioapic::{self, DeliveryMode as IoApicDelivery, DestinationMode, Interrupts, IoApic};
use devices::pvclock;
use devices::x2apic::{Delivery, Effect, LocalApic};
use vmcb::{control, misc1, misc2, save, Vmcb};

static INSTRUCTION_LOGS: LogBudget = LogBudget::new("hypervisor instructions");

const NAMES: Names = Names {
    backend: "svm",
    guest: "the guest",
};
/// The guest's console lines are printed as `guest| ...`.
const CONSOLE_PREFIX: &str = "guest";
/// The guest's address-space ID; 0 is the host's (APM §15.16).
const GUEST_ASID: u32 = 1;
/// I/O permission map: 12 KiB, one bit per port plus the bits an access may spill into;
/// MSR permission map: 8 KiB, two bits per MSR (APM §15.10.1, §15.11).
const IOPM_PAGES: u64 = 3;
const MSRPM_PAGES: u64 = 2;
/// The PAT's reset value (Intel SDM Vol. 3A §13.12.4), for the guest's G_PAT.
const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// DR6 and DR7 as after reset.
const DR6_RESET: u64 = 0xffff_0ff0;
const DR7_RESET: u64 = 0x400;
/// Event injection: valid, type exception, error code valid (APM §15.20); the types.
const INJECT_VALID: u64 = 1 << 31;
const EVENT_EXCEPTION: u64 = 3;
const EVENT_SOFTWARE_INTERRUPT: u64 = 4;
const INJECT_EXCEPTION: u64 = EVENT_EXCEPTION << 8;
const INJECT_ERROR_CODE: u64 = 1 << 11;
const VECTOR_DB: u64 = 1;
const VECTOR_BP: u64 = 3;
const VECTOR_OF: u64 = 4;
const VECTOR_UD: u64 = 6;
const VECTOR_GP: u64 = 13;
const VECTOR_AC: u64 = 17;
/// IOIO EXITINFO1: a string instruction (APM §15.10.2).
const IOIO_STRING: u64 = 1 << 2;
/// Exceptions that can recur without end inside their own delivery (a #DB or #AC raised
/// while delivering itself), holding the CPU in the guest for good; intercepted so each
/// one passes through Parapet, which gives them back to the guest and keeps its own time
/// (the reason KVM intercepts them too: CVE-2015-5307, CVE-2015-8104).
const LOOPING_EXCEPTIONS: u32 = (1 << VECTOR_DB) | (1 << VECTOR_AC);

/// Why the guest could not be started.
#[derive(Debug)]
pub enum SvmError {
    Enable(&'static str),
    OutOfFrames,
    Load(loader::LoadError),
}

impl core::fmt::Display for SvmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SvmError::Enable(why) => write!(f, "cannot enable SVM: {why}"),
            SvmError::OutOfFrames => write!(f, "no frames for the VMCB, maps or nested tables"),
            SvmError::Load(e) => write!(f, "loading the guest: {e}"),
        }
    }
}

impl From<kernel::memory::OutOfFrames> for SvmError {
    fn from(_: kernel::memory::OutOfFrames) -> Self {
        SvmError::OutOfFrames
    }
}

/// Loads the guest staged at `address` (`size` bytes) and runs it on this CPU until it
/// powers off; the machine then stops with the guest's verdict, or with failure if the guest
/// cannot start.
pub async fn host(address: u64, size: u64) {
    let mut vp = match start(address, size) {
        Ok(vp) => vp,
        Err(e) => {
            log::error!("svm: guest not started: {e}");
            kernel::platform::exit(arch::ExitStatus::Failure);
        }
    };
    log::info!("svm: guest running under nested paging");
    let mut devices = GuestDevices::new(CONSOLE_PREFIX);
    let (mut exits_seen, mut interrupts) = (0u64, 0u64);
    // TSC cycles spent in exit round trips: from VMRUN to the exit handled.
    let mut exit_cycles = 0u64;
    let mut last_yield = crate::cpus::ticks(0);
    loop {
        let round_trip_start = instructions::rdtsc();
        vp.offer_interrupt();
        vp.run();
        let state = vp.exit_state();
        let verdict = match state.code {
            // A physical interrupt ended the run; it was taken when `run` enabled interrupts.
            code::INTR | code::NMI => {
                interrupts += 1;
                Verdict::Resume
            }
            // The guest can take the interrupt the APIC holds: the next run injects it.
            code::VINTR => Verdict::Resume,
            code::VMMCALL => {
                INSTRUCTION_LOGS.take().then(|| {
                    log::info!(
                        "svm: the guest made a VMMCALL at RIP {:#x}; no hypercalls are offered (#UD)",
                        state.rip
                    )
                });
                vp.inject_exception(VECTOR_UD, None);
                Verdict::Resume
            }
            // SVM is hidden from the guest (CPUID): its instructions are undefined there.
            code::VMRUN
            | code::VMLOAD
            | code::VMSAVE
            | code::STGI
            | code::CLGI
            | code::SKINIT
            | code::INVLPGA => {
                INSTRUCTION_LOGS.take().then(|| {
                    log::info!(
                        "svm: the guest ran an SVM instruction (exit {:#x}) at RIP {:#x}; #UD",
                        state.code,
                        state.rip
                    )
                });
                vp.inject_exception(VECTOR_UD, None);
                Verdict::Resume
            }
            // INVD would drop dirty cache lines machine-wide, Parapet's too: done as WBINVD
            // would leave things, that is, nothing to do for a guest that cannot see caches.
            code::INVD => {
                let length = if state.instruction_length != 0 {
                    state.instruction_length
                } else {
                    2
                };
                vp.set_rip(state.rip.wrapping_add(u64::from(length)));
                Verdict::Resume
            }
            // A nested fault in the guest's own page walk, or while an event was being
            // delivered, is not the instruction's data access: completing that would skip it.
            code::NPF if state.info1 & svm_exit::NPF_IN_PAGE_WALK != 0 || vp.delivering_event() => {
                log::error!(
                    "svm: the guest's page walk or event delivery touched {:#x}, outside its RAM, at RIP {:#x}; stopping",
                    state.info2,
                    state.rip
                );
                Verdict::PowerOff { success: false }
            }
            // Given back as they came: the guest's own handlers deal with them.
            c if c == code::EXCEPTION_BASE + VECTOR_DB => {
                vp.inject_exception(VECTOR_DB, None);
                Verdict::Resume
            }
            c if c == code::EXCEPTION_BASE + VECTOR_AC => {
                vp.inject_exception(VECTOR_AC, Some(state.info1 as u32));
                Verdict::Resume
            }
            _ => match svm_exit::decode(&state, 0) {
                Some((exit, site)) => {
                    exits_seen += 1;
                    let verdict = exits::handle(&mut vp, &mut devices, exit, &site);
                    // COM1's line follows what the access did to the UART.
                    vp.set_irq_line(COM1_GSI, devices.com1_interrupt());
                    exit_cycles += instructions::rdtsc().wrapping_sub(round_trip_start);
                    verdict
                }
                None => {
                    log::error!(
                        "svm: unexpected exit {:#x} (info {:#x}, {:#x}) at RIP {:#x}; stopping",
                        state.code,
                        state.info1,
                        state.info2,
                        state.rip
                    );
                    Verdict::PowerOff { success: false }
                }
            },
        };
        match verdict {
            Verdict::PowerOff { success } => {
                if devices.has_partial_line() {
                    devices.flush_line();
                }
                let round_trip =
                    PerTrip::new(exit_cycles, crate::machine::time::tsc_hz(), exits_seen);
                log::info!(
                    "svm: the guest powered off ({}) after {exits_seen} exits and {interrupts} interrupts ({round_trip} us per exit round trip)",
                    if success { "success" } else { "failure" },
                );
                guest::power_off(success);
            }
            Verdict::Idle => {
                // The guest waits for an interrupt: give the CPU to Parapet's tasks, a tick
                // at a time, until its APIC has one for it.
                while !vp.interrupt_ready() {
                    crate::cpus::next_tick(0).await;
                }
            }
            Verdict::Resume => {}
        }
        let tick = crate::cpus::ticks(0);
        if tick != last_yield {
            last_yield = tick;
            yield_now().await;
        }
    }
}

fn start(address: u64, size: u64) -> Result<SvmVp, SvmError> {
    let start = loader::load(address, size, 1).map_err(SvmError::Load)?;
    let context = start.context;
    let host_save_area = kernel::memory::allocate_zeroed_frame()?;
    // SAFETY: platform svm means CPUID reports SVM; the frame is this CPU's alone.
    unsafe { run::enable(host_save_area) }.map_err(SvmError::Enable)?;
    // The first megabyte is mapped whole: the BIOS data and ROM areas a PC's OS scans (the
    // EBDA, MP floating pointer, option ROMs) read as the machine has them. Parapet keeps
    // nothing there once it has booted.
    let mut mapped = ram::ranges().to_vec();
    mapped.push((0, LEGACY_WINDOW_END));
    let nested_root = npt::build(&mapped)?;
    let iopm = kernel::memory::allocate_filled_frames(IOPM_PAGES, 0xff)?;
    let msrpm = kernel::memory::allocate_filled_frames(MSRPM_PAGES, 0xff)?;
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
    vmcb.write_u64(control::IOPM_BASE, iopm);
    vmcb.write_u64(control::MSRPM_BASE, msrpm);
    vmcb.write_u32(control::GUEST_ASID, GUEST_ASID);
    vmcb.write_u8(control::TLB_CONTROL, vmcb::TLB_FLUSH_ALL);
    vmcb.write_u64(control::VIRTUAL_INTERRUPTS, vmcb::V_INTR_MASKING);
    vmcb.write_u64(control::NESTED_CONTROL, 1);
    vmcb.write_u64(control::NESTED_CR3, nested_root);
    set_boot_state(&mut vmcb, &context);
    log::info!(
        "svm: nested tables at {nested_root:#x} map {} RAM ranges; entry {:#x}",
        ram::ranges().len(),
        context.rip
    );
    // Whether the CPU reports the next RIP on exits (CPUID 0x8000_000A EDX bit 3); QEMU TCG
    // does not.
    let nrips = instructions::cpuid(0x8000_000a, 0).3 & (1 << 3) != 0;
    Ok(SvmVp {
        vmcb,
        host_state,
        gprs: Gprs {
            rsi: start.rsi,
            ..Gprs::default()
        },
        nrips,
        // As after RESET: xAPIC mode, the boot processor; the guest may go on to x2APIC.
        apic: LocalApic::new_xapic(0, APIC_TIMER_HZ).with_bsp(true),
        ioapic: IoApic::new(IOAPIC_ID),
        system_time_msr: 0,
        wall_clock_msr: 0,
    })
}

/// The guest's registers at its entry, from the loader's boot state.
fn set_boot_state(vmcb: &mut Vmcb, context: &InitialVpContext) {
    let segments = [
        (save::ES, &context.es),
        (save::CS, &context.cs),
        (save::SS, &context.ss),
        (save::DS, &context.ds),
        (save::FS, &context.fs),
        (save::GS, &context.gs),
        (save::LDTR, &context.ldtr),
        (save::TR, &context.tr),
    ];
    for (offset, segment) in segments {
        vmcb.set_segment(offset, segment);
    }
    vmcb.set_table(save::GDTR, context.gdtr.base, context.gdtr.limit);
    vmcb.set_table(save::IDTR, context.idtr.base, context.idtr.limit);
    vmcb.write_u64(save::EFER, context.efer | vmcb::EFER_SVME);
    vmcb.write_u64(save::CR0, context.cr0);
    vmcb.write_u64(save::CR3, context.cr3);
    vmcb.write_u64(save::CR4, context.cr4);
    vmcb.write_u64(save::DR6, DR6_RESET);
    vmcb.write_u64(save::DR7, DR7_RESET);
    vmcb.write_u64(save::RFLAGS, context.rflags);
    vmcb.write_u64(save::RIP, context.rip);
    vmcb.write_u64(save::RSP, context.rsp);
    vmcb.write_u64(save::G_PAT, PAT_RESET);
}

/// The guest's one VP.
struct SvmVp {
    vmcb: Vmcb,
    /// Where the host's FS/GS/TR/LDTR state waits while the guest runs.
    host_state: u64,
    gprs: Gprs,
    /// The CPU fills the VMCB's next-RIP field.
    nrips: bool,
    /// The guest's local APIC (`devices::x2apic`): xAPIC MMIO at 0xFEE00000, or x2APIC MSRs.
    apic: LocalApic,
    /// The guest's I/O APIC (`devices::ioapic`) at 0xFEC00000: COM1's interrupt on GSI 4.
    ioapic: IoApic,
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
/// The end of the PC's first megabyte.
const LEGACY_WINDOW_END: u64 = 0x10_0000;
/// The I/O APIC: its ID (the local APIC has 0) and COM1's GSI (ISA IRQ 4, identity-mapped
/// as on PCs).
const COM1_GSI: u32 = COM1_IRQ as u32;
/// The APIC timer's input clock. Any rate works: guests calibrate it against another clock.
const APIC_TIMER_HZ: u64 = 1_000_000_000;
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
/// processor's own answer: x2APIC (leaf 1 ECX bit 21) and APIC ID 0 (EBX bits 31:24), no
/// TSC-deadline timer (ECX bit 24, not offered), and an APIC timer that runs in every C-state
/// (ARAT, leaf 6 EAX bit 2), so a guest need not fall back on a PIT (Intel SDM Vol. 2A,
/// CPUID); the hypervisor leaves are Parapet's, KVM's clock ABI (`devices::pvclock`) and
/// nothing of the machine's own hypervisor.
fn guest_cpuid(leaf: u32, [eax, ebx, ecx, edx]: [u32; 4]) -> [u32; 4] {
    match leaf {
        HYPERVISOR_LEAVES_FIRST..=HYPERVISOR_LEAVES_LAST => pvclock::cpuid(leaf).unwrap_or([0; 4]),
        1 => [eax, ebx & 0x00ff_ffff, (ecx | (1 << 21)) & !(1 << 24), edx],
        6 => [eax | (1 << 2), ebx, ecx, edx],
        _ => [eax, ebx, ecx, edx],
    }
}

/// Whether `address` is canonical for the processor's linear addresses: 57 bits where it
/// supports 5-level paging (CPUID 7.0 ECX bit 16), whatever CR4.LA57 says, as WRMSR checks
/// (Intel SDM Vol. 3A §4.1.1); else 48.
fn canonical(address: u64) -> bool {
    let la57 = instructions::cpuid(7, 0).2 & (1 << 16) != 0;
    let unused = if la57 { 7 } else { 16 };
    ((address as i64) << unused >> unused) as u64 == address
}

impl SvmVp {
    fn run(&mut self) {
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
    fn exit_state(&mut self) -> SvmExitState {
        let code = self.vmcb.read_u64(control::EXIT_CODE);
        let (rax, rcx) = (self.gprs.rax, self.gprs.rcx);
        let cpuid = if code == code::CPUID {
            let (a, b, c, d) = instructions::cpuid(rax as u32, rcx as u32);
            guest_cpuid(rax as u32, [a, b, c, d])
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
    fn offer_interrupt(&mut self) {
        self.apic.poll_timer(kernel::platform::now_ns());
        let misc1 = self.vmcb.read_u32(control::INTERCEPT_MISC1) & !misc1::VINTR;
        let int_ctl = self.vmcb.read_u64(control::VIRTUAL_INTERRUPTS) & !vmcb::V_IRQ_WINDOW;
        let guest_if = self.vmcb.read_u64(save::RFLAGS) & RFLAGS_IF != 0;
        let (misc1, int_ctl) = match self.apic.next_interrupt(guest_if) {
            None => (misc1, int_ctl),
            Some(vector) => {
                let shadow =
                    self.vmcb.read_u64(control::INTERRUPT_SHADOW) & INTERRUPT_SHADOW_ACTIVE != 0;
                if guest_if && !shadow && !self.delivering_event() {
                    self.apic.acknowledge(vector);
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
    fn interrupt_ready(&mut self) -> bool {
        self.apic.poll_timer(kernel::platform::now_ns());
        self.apic.next_interrupt(true).is_some()
    }

    /// A guest access to the x2APIC: carried out, with what it causes (an IPI, which with
    /// one VP can only be for this APIC).
    fn apic_effect(&mut self, effect: Effect) {
        match effect {
            // A level-triggered interrupt ended: the I/O APIC may deliver its line again.
            Effect::EoiBroadcast(vector) => {
                let again = self.ioapic.eoi(vector);
                self.deliver(again);
            }
            Effect::SendIpi(ipi) if ipi.reaches_apic(&self.apic) => match ipi.delivery {
                Delivery::Fixed | Delivery::LowestPriority => {
                    self.apic.accept(ipi.vector);
                }
                other => log::info!("svm: the guest sent itself a {other:?} IPI; not delivered"),
            },
            Effect::SendIpi(_) | Effect::None => {}
        }
    }

    /// Sets interrupt line `gsi` of the I/O APIC; what it sends goes to the local APIC.
    fn set_irq_line(&mut self, gsi: u32, level: bool) {
        let sent = self.ioapic.set_irq_level(gsi, level);
        self.deliver(sent.into());
    }

    /// Hands the I/O APIC's messages to the local APIC they name (one VP: APIC ID 0, or a
    /// logical destination its LDR matches, or everyone).
    fn deliver(&mut self, interrupts: Interrupts) {
        for interrupt in interrupts.iter() {
            let ours = match interrupt.destination_mode {
                _ if interrupt.destination == 0xff => true,
                DestinationMode::Physical => u32::from(interrupt.destination) == self.apic.id(),
                DestinationMode::Logical => {
                    u32::from(interrupt.destination) & (self.apic.ldr() >> 24) != 0
                }
            };
            match interrupt.delivery {
                IoApicDelivery::Fixed | IoApicDelivery::LowestPriority if ours => {
                    if interrupt.level_triggered {
                        self.apic.accept_level(interrupt.vector);
                    } else {
                        self.apic.accept(interrupt.vector);
                    }
                }
                other if ours => {
                    log::info!("svm: the I/O APIC sent a {other:?} message; not delivered")
                }
                _ => {}
            }
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
    fn delivering_event(&self) -> bool {
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
    fn inject_exception(&mut self, vector: u64, error_code: Option<u32>) {
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
        if let Some(offset) = gpa
            .checked_sub(ioapic::DEFAULT_BASE)
            .filter(|&o| o < ioapic::WINDOW_SIZE)
        {
            return Some(u64::from(self.ioapic.read(offset, size)));
        }
        let offset = gpa
            .checked_sub(XAPIC_PAGE)
            .filter(|&o| o < XAPIC_PAGE_SIZE)?;
        self.apic.decodes_mmio().then(|| {
            u64::from(
                self.apic
                    .read_mmio(offset, size, kernel::platform::now_ns()),
            )
        })
    }

    fn mmio_write(&mut self, gpa: u64, size: u8, value: u64) -> bool {
        if let Some(offset) = gpa
            .checked_sub(ioapic::DEFAULT_BASE)
            .filter(|&o| o < ioapic::WINDOW_SIZE)
        {
            let sent = self.ioapic.write(offset, size, value as u32);
            self.deliver(sent);
            return true;
        }
        let Some(offset) = gpa.checked_sub(XAPIC_PAGE).filter(|&o| o < XAPIC_PAGE_SIZE) else {
            return false;
        };
        if !self.apic.decodes_mmio() {
            return false;
        }
        let effect = self
            .apic
            .write_mmio(offset, size, value as u32, kernel::platform::now_ns());
        self.apic_effect(effect);
        true
    }

    fn read_msr(&mut self, msr: u32) -> Option<u64> {
        if msr == MSR_EFER {
            return Some(self.vmcb.read_u64(save::EFER) & !vmcb::EFER_SVME);
        }
        if msr == MSR_APIC_BASE {
            return Some(self.apic.apic_base());
        }
        if msr == pvclock::MSR_SYSTEM_TIME {
            return Some(self.system_time_msr);
        }
        if msr == pvclock::MSR_WALL_CLOCK {
            return Some(self.wall_clock_msr);
        }
        if X2APIC_MSRS.contains(&msr) {
            return match self.apic.read_msr(msr, kernel::platform::now_ns()) {
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
            if self.apic.apic_base_write(value).is_ok() {
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
            return match self.apic.write_msr(msr, value, kernel::platform::now_ns()) {
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
            Some(&(m, _)) if ADDRESS_MSRS.contains(&m) && !canonical(value) => {
                self.inject_exception(VECTOR_GP, Some(0));
                return false;
            }
            Some(&(_, offset)) => self.vmcb.write_u64(offset, value),
            None => policy::unoffered_msr_write(NAMES, msr, value),
        }
        true
    }
}

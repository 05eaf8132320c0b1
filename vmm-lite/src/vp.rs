//! One VP on its host thread: its VTL2 vCPU (where the firmware runs) and, once VTL2 has
//! enabled it, its VTL0 vCPU in the VTL0 view, with the VTL switch between them (TLFS §15.6).
//!
//! - VTL return (VTL2 calls the return sequence): VTL0's shared general-purpose registers
//!   become VTL2's, RAX and RCX come from VTL2's VP assist page (VtlReturnX64Rax/Rcx), and
//!   VTL0 runs. The rest of the shared state (FPU, debug registers, CR2) stays in VTL0's
//!   vCPU, reached by GetVpRegisters (`vcpu_state::VcpuRegisters`).
//! - VTL entry: VTL0 calls the VTL call sequence, or does something VTL2 intercepts. VTL2's
//!   shared registers become VTL0's, the reason goes to VTL2's VP assist page
//!   (VtlEntryReason), an intercept's message to VTL2's SynIC message page slot for SINT0,
//!   and VTL2 resumes after its VTL return. One VTL2 left unconsumed is replaced: VTL0 was
//!   rewound before that instruction and has just made it again.
//! - With a VTL0 register page placed, VTL0's registers are written there on entry and the
//!   ones VTL2 marks dirty (RIP, RFLAGS, RSP) taken from it on return: an intercept is then
//!   completed without a SetVpRegisters call.
//! - When KVM cannot go on with the running vCPU (an internal error such as an instruction
//!   it cannot emulate, a failed VM entry, a failed KVM_RUN), the run ends with
//!   [`Outcome::KvmCannotRun`], in either VTL. VTL0's is not passed to VTL2 as an
//!   unrecoverable exception: the fault is the host's, and VTL2 could do nothing about it.
//!
//! Only one of the two vCPUs runs at a time, on this thread, so a switch is two register
//! moves and no thread hand-off (MACHINE-FACTS: a thread hand-off per switch costs ~9×).

use hvdef::hypercall::{map_flags, vp_assist};
use hvdef::message::{message_type, HvMessage, INTERCEPT_SINT, MESSAGE_SIZE};
use hvdef::register_page;
use hvdef::vtl::Vtl;
use kvm_bindings::kvm_regs;
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};

use std::sync::Arc;
use std::time::Instant;

use crate::guest_memory::GuestMemory;
use crate::hyperv::{
    Caller, HyperV, LowerVtlRegisters, HYPERCALL_PORT, VTL_CALL_PORT, VTL_RETURN_PORT,
};
use crate::kick::{interrupt_due, Kicker};
use crate::kvm_failure::{KvmFailure, Stop, MAX_INSTRUCTION_BYTES};
use crate::port_io_decode::IoAccess;
use crate::serial::{Com1, COM1_PORTS};
use crate::vcpu_state::{
    copy_shared_gprs, data_segment_base, exit_regs, internal_error, pending_io_data,
    pending_io_size, sanitize_rflags, set_entry_regs, LinearMemory, VcpuRegisters,
};
use crate::vm::Outcome;
use crate::vtl0_intercept;
use crate::vtl0_memory_intercept::{self, MemoryExit};

/// QEMU's `isa-debug-exit` port, which Parapet uses to report how a run ended:
/// 0x10 success, 0x11 failure (see arch::x86_64::power).
const DEBUG_EXIT_PORT: u16 = 0xf4;
const DEBUG_EXIT_SUCCESS: u32 = 0x10;

/// What vmm-lite itself emulates on the port bus, for VTL2 and for VTL0's ports VTL2 did not
/// intercept: COM1 and the exit port; elsewhere reads float high and writes vanish.
pub struct HostDevices<'a> {
    pub com1: &'a Com1,
}

impl HostDevices<'_> {
    /// An OUT; `Some` when the firmware reported how the run ended.
    fn write(&self, port: u16, data: &[u8]) -> Option<Outcome> {
        if COM1_PORTS.contains(&port) {
            // A string instruction (`rep outsb`) arrives as several bytes for one port.
            for &byte in data {
                self.com1.write(port, byte);
            }
        } else if port == DEBUG_EXIT_PORT {
            let mut value = [0u8; 4];
            let n = data.len().min(4);
            value[..n].copy_from_slice(&data[..n]);
            return Some(match u32::from_le_bytes(value) {
                DEBUG_EXIT_SUCCESS => Outcome::Success,
                v => Outcome::Failure(format!("the firmware reported failure ({v:#x})")),
            });
        }
        None
    }

    fn read(&self, port: u16, data: &mut [u8]) {
        if COM1_PORTS.contains(&port) {
            for byte in data.iter_mut() {
                *byte = self.com1.read(port);
            }
        } else {
            data.fill(0xff); // an empty bus reads all ones
        }
    }
}

/// Whether `vcpu` has never been started: waiting for INIT or SIPI (a halted VP runs).
fn waiting_to_start(vcpu: &VcpuFd) -> bool {
    vcpu.get_mp_state().is_ok_and(|s| {
        matches!(
            s.mp_state,
            kvm_bindings::KVM_MP_STATE_UNINITIALIZED | kvm_bindings::KVM_MP_STATE_INIT_RECEIVED
        )
    })
}

/// Puts `message` in the SINT slot at `slot` if it is free (type NONE); false if taken.
fn post(memory: &GuestMemory, slot: u64, message: &HvMessage) -> bool {
    let mut header = [0u8; 4];
    if memory.read(slot, &mut header).is_err() || u32::from_le_bytes(header) != message_type::NONE {
        return false;
    }
    memory.write(slot, &message.0).is_ok()
}

/// Whether VTL2 lets VTL0 access `gpa` in the `wanted` way.
fn vtl0_may(hv: &HyperV, gpa: u64, wanted: u32) -> bool {
    hv.vtl0_host()
        .is_some_and(|host| host.access(gpa) & wanted != 0)
}

/// After one exit: keep going, or the run is over.
enum Step {
    Continue,
    Done(Outcome),
    /// KVM cannot go on with the vCPU that ran.
    KvmStopped(Stop),
}

pub struct Vp<'a> {
    index: usize,
    vtl2: VcpuFd,
    vtl0: Option<VcpuFd>,
    active: Vtl,
    devices: HostDevices<'a>,
    memory: &'a GuestMemory,
    hv: Option<&'a HyperV>,
    /// Interrupts VTL0 so VTL2 gets its interrupts (with the Hyper-V interface only).
    kicker: Option<Arc<Kicker>>,
    /// When VTL2 last stopped running, for judging whether its timer is due.
    vtl2_left: Instant,
}

impl<'a> Vp<'a> {
    pub fn new(
        index: usize,
        vtl2: VcpuFd,
        devices: HostDevices<'a>,
        memory: &'a GuestMemory,
        hv: Option<&'a HyperV>,
        kicker: Option<Arc<Kicker>>,
    ) -> Self {
        let mut vtl2 = vtl2;
        // KVM stores the registers in the run area at every exit, and takes them from there
        // when marked dirty: a VTL switch moves them without GET/SET_REGS ioctls.
        vtl2.set_sync_valid_reg(SyncReg::Register);
        Self {
            index,
            vtl2,
            vtl0: None,
            active: Vtl::Vtl2,
            devices,
            memory,
            hv,
            kicker,
            vtl2_left: Instant::now(),
        }
    }

    /// Switches which VTL runs next, telling the kicker.
    fn set_active(&mut self, vtl: Vtl) {
        self.active = vtl;
        if vtl == Vtl::Vtl0 {
            self.vtl2_left = Instant::now();
        }
        if let Some(kicker) = &self.kicker {
            kicker.set_in_vtl0(self.index, vtl == Vtl::Vtl0);
        }
    }

    /// Runs the VP until the firmware reports how the run ended or something breaks.
    pub fn run(mut self) -> Outcome {
        /// Unregisters the thread from the kicker however `run` ends, unwinding included.
        struct Registered(Option<Arc<Kicker>>, usize);
        impl Drop for Registered {
            fn drop(&mut self) {
                if let Some(kicker) = &self.0 {
                    kicker.unregister(self.1);
                }
            }
        }
        if let Some(kicker) = &self.kicker {
            kicker.register_current_thread(self.index);
        }
        let _registered = Registered(self.kicker.clone(), self.index);
        loop {
            let step = match self.active {
                Vtl::Vtl0 => self.run_vtl0(),
                _ => self.run_vtl2(),
            };
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::Done(outcome)) => {
                    // Keep the vCPU fds open until the process ends: other VPs may still run.
                    std::mem::forget(self.vtl2);
                    std::mem::forget(self.vtl0);
                    return outcome;
                }
                Ok(Step::KvmStopped(stop)) => {
                    let failure = self.kvm_failure(stop);
                    std::mem::forget(self.vtl2);
                    std::mem::forget(self.vtl0);
                    return Outcome::KvmCannotRun(failure);
                }
                Err(message) => {
                    return Outcome::Failure(format!("VP {}: {message}", self.index));
                }
            }
        }
    }

    fn failure(&self, what: &str, e: kvm_ioctls::Error) -> String {
        format!("{what} failed: {e}")
    }

    /// `stop` on the vCPU of the VTL that ran, with its RIP and, for an emulation failure
    /// KVM gave no instruction bytes for, what guest memory holds at RIP.
    fn kvm_failure(&self, stop: Stop) -> KvmFailure {
        let vtl = self.active;
        let vcpu = match vtl {
            Vtl::Vtl0 => self.vtl0.as_ref().expect("VTL0 is running"),
            _ => &self.vtl2,
        };
        let rip = vcpu
            .get_regs()
            .map(|regs| regs.rip)
            .map_err(|e| format!("KVM_GET_REGS failed: {e}"));
        let fetched = match rip {
            Ok(rip) if stop.wants_guest_bytes() => self.guest_bytes(vcpu, vtl, rip),
            _ => Vec::new(),
        };
        KvmFailure {
            vtl,
            vp: self.index,
            rip,
            stop,
            fetched,
        }
    }

    /// Up to 15 bytes at `rip` in `vcpu`'s code segment, through its page tables, from memory
    /// `vtl` may read.
    fn guest_bytes(&self, vcpu: &VcpuFd, vtl: Vtl, rip: u64) -> Vec<u8> {
        let Ok(sregs) = vcpu.get_sregs() else {
            return Vec::new();
        };
        let hv = self.hv;
        let may_read = move |gpa| {
            vtl != Vtl::Vtl0 || hv.is_some_and(|hv| vtl0_may(hv, gpa, map_flags::READABLE))
        };
        let view = LinearMemory {
            vcpu,
            memory: self.memory,
            may_read: &may_read,
        };
        let linear = data_segment_base(&sregs, &sregs.cs).wrapping_add(rip);
        view.read(linear, MAX_INSTRUCTION_BYTES)
    }

    /// The VP's VTL0 vCPU, taken from the VTL0 host the first time it is needed.
    fn vtl0_vcpu(&mut self) -> Option<&mut VcpuFd> {
        if self.vtl0.is_none() {
            let mut vcpu = self.hv?.vtl0_host()?.take_vp(self.index)?;
            vcpu.set_sync_valid_reg(SyncReg::Register);
            self.vtl0 = Some(vcpu);
        }
        self.vtl0.as_mut()
    }

    fn run_vtl2(&mut self) -> Result<Step, String> {
        let (index, memory) = (self.index, self.memory);
        let caller = Caller::vtl2(index);
        match self.vtl2.run() {
            Ok(VcpuExit::IoOut(port, _))
                if self.hv.is_some() && port == u16::from(HYPERCALL_PORT) =>
            {
                let hv = self.hv.expect("checked by the guard");
                let mut regs = self
                    .vtl2
                    .get_regs()
                    .map_err(|e| self.failure("KVM_GET_REGS", e))?;
                let mut lower = self.vtl0_vcpu().map(|v| VcpuRegisters(v));
                let lower = lower.as_mut().map(|l| l as &mut dyn LowerVtlRegisters);
                regs.rax = hv.hypercall_from(caller, regs.rcx, regs.rdx, regs.r8, memory, lower);
                self.vtl2
                    .set_regs(&regs)
                    .map_err(|e| self.failure("KVM_SET_REGS", e))?;
            }
            Ok(VcpuExit::IoOut(port, _))
                if self.hv.is_some() && port == u16::from(VTL_RETURN_PORT) =>
            {
                self.vtl_return()?;
            }
            Ok(VcpuExit::X86Rdmsr(exit)) => match self.hv.map(|hv| hv.read_msr(caller, exit.index))
            {
                Some(Ok(value)) => *exit.data = value,
                _ => *exit.error = 1,
            },
            Ok(VcpuExit::X86Wrmsr(exit)) => {
                match self
                    .hv
                    .map(|hv| hv.write_msr(caller, exit.index, exit.data, memory))
                {
                    Some(Ok(())) => {}
                    _ => *exit.error = 1,
                }
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                if let Some(outcome) = self.devices.write(port, data) {
                    return Ok(Step::Done(outcome));
                }
            }
            Ok(VcpuExit::IoIn(port, data)) => self.devices.read(port, data),
            Ok(VcpuExit::MmioRead(_, data)) => data.fill(0xff),
            Ok(VcpuExit::MmioWrite(_, _)) => {}
            Ok(VcpuExit::Hlt) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Ok(VcpuExit::Shutdown) => {
                return Ok(Step::Done(Outcome::Failure(format!(
                    "VP {index} shut down (triple fault)"
                ))))
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                return Ok(Step::KvmStopped(Stop::FailEntry { reason, cpu }))
            }
            Ok(VcpuExit::InternalError) => {
                return Ok(Step::KvmStopped(internal_error(&mut self.vtl2)))
            }
            Ok(VcpuExit::MemoryFault { flags, gpa, size }) => {
                return Ok(Step::KvmStopped(Stop::MemoryFault { gpa, size, flags }))
            }
            Ok(other) => return Err(format!("unexpected exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => return Ok(Step::KvmStopped(Stop::RunError(e.errno()))),
        }
        Ok(Step::Continue)
    }

    /// VTL2 called the VTL return sequence: run VTL0 with VTL2's shared registers.
    fn vtl_return(&mut self) -> Result<(), String> {
        let (index, hv) = (
            self.index,
            self.hv.expect("only with the Hyper-V interface"),
        );
        if !hv.vtl0_enabled(index) || self.vtl0_vcpu().is_none() {
            eprintln!("vmm-lite: VP {index}: VTL return with no VTL0 enabled; ignored");
            return Ok(());
        }
        // VTL2 stopped on an OUT (the VTL return port): nothing for KVM to finish (see
        // `enter_vtl2_here`).
        // Nothing has written VTL2's registers since it stopped: KVM's copy from the exit
        // is current.
        let vtl2_regs = exit_regs(&mut self.vtl2);
        let pages = hv.vtl2_pages(index);
        let assist = pages.vp_assist;
        let read_assist = |offset: usize| {
            let mut b = [0u8; 8];
            (assist.enabled()
                && self
                    .memory
                    .read(assist.gpa() + offset as u64, &mut b)
                    .is_ok())
            .then(|| u64::from_le_bytes(b))
        };
        let rax = read_assist(vp_assist::VTL_RETURN_RAX).unwrap_or(vtl2_regs.rax);
        let rcx = read_assist(vp_assist::VTL_RETURN_RCX).unwrap_or(vtl2_regs.rcx);
        let vtl0 = self.vtl0.as_mut().expect("taken above");
        // Asked of KVM only until the VP is seen running: the hot path makes no extra ioctl.
        let known_running = hv.vtl0_host().is_some_and(|h| h.is_running(index));
        if !known_running && waiting_to_start(vtl0) {
            // Nothing runs to take registers; and INIT-SIPI may start it meanwhile, which
            // sets registers of its own that a copy made now must not overwrite.
            self.set_active(Vtl::Vtl0);
            return Ok(());
        }
        // VTL2 may have set VTL0's registers (SetVpRegisters) since VTL0 stopped, so they
        // are read afresh; they go back with the next entry, without an ioctl.
        let mut regs = vtl0
            .get_regs()
            .map_err(|e| format!("KVM_GET_REGS (VTL0): {e}"))?;
        copy_shared_gprs(&vtl2_regs, &mut regs);
        (regs.rax, regs.rcx) = (rax, rcx);
        let registers_page = pages.vtl0_registers;
        if registers_page.enabled() {
            // What VTL2 changed in VTL0's register page (one copy), then the page is stale.
            let mut page = [0u8; register_page::SIZE];
            if self.memory.read(registers_page.gpa(), &mut page).is_ok() {
                let changes = register_page::changes(&page);
                regs.rsp = changes.rsp.unwrap_or(regs.rsp);
                regs.rip = changes.rip.unwrap_or(regs.rip);
                regs.rflags = changes.rflags.map_or(regs.rflags, sanitize_rflags);
                let _ = self
                    .memory
                    .write(registers_page.gpa() + register_page::IS_VALID as u64, &[0]);
            }
        }
        set_entry_regs(vtl0, &regs);
        self.set_active(Vtl::Vtl0);
        Ok(())
    }

    /// Enters VTL2 from VTL0 for `reason`, with `message` for SINT0 and VTL0's registers as
    /// VTL2 is to see them.
    fn enter_vtl2(
        &mut self,
        reason: u32,
        message: Option<HvMessage>,
        vtl0_regs: &kvm_regs,
    ) -> Result<(), String> {
        let (index, hv) = (
            self.index,
            self.hv.expect("only with the Hyper-V interface"),
        );
        let pages = hv.vtl2_pages(index);
        if let Some(message) = message {
            if pages.simp.enabled() && pages.intercepts_enabled {
                let slot = pages.simp.gpa() + (INTERCEPT_SINT * MESSAGE_SIZE) as u64;
                if !post(self.memory, slot, &message) {
                    // VTL2 left the last message: VTL0, rewound before that instruction,
                    // made it again, so the new message replaces a stale copy.
                    eprintln!(
                        "vmm-lite: VP {index}: VTL2 left its SINT0 message unconsumed; replaced"
                    );
                    let _ = self.memory.write(slot, &message.0);
                }
            } else {
                eprintln!(
                    "vmm-lite: VP {index}: intercept {:#x} dropped: VTL2 has no message page or SINT0 is masked",
                    message.message_type()
                );
            }
        }
        if pages.vp_assist.enabled() {
            let at = pages.vp_assist.gpa() + vp_assist::VTL_ENTRY_REASON as u64;
            let _ = self.memory.write(at, &reason.to_le_bytes());
        }
        if pages.vtl0_registers.enabled() {
            let r = vtl0_regs;
            let general = crate::vcpu_state::general_registers(r);
            let page = register_page::encode(&general, r.rip, r.rflags);
            let _ = self.memory.write(pages.vtl0_registers.gpa(), &page);
        }
        // VTL2 stopped at its VTL return and nothing has written its registers since.
        let mut regs = exit_regs(&mut self.vtl2);
        copy_shared_gprs(vtl0_regs, &mut regs);
        set_entry_regs(&mut self.vtl2, &regs);
        self.set_active(Vtl::Vtl2);
        Ok(())
    }

    /// Enters VTL2 with VTL0's registers as they are. The exits that come here (an OUT to the
    /// VTL call port, a kick, a stop) leave KVM nothing to finish: an OUT is complete when it
    /// exits, on this KVM as measured (RIP already past it) and on others (a pending OUT
    /// completion only steps RIP, which we leave alone).
    fn enter_vtl2_here(&mut self, reason: u32, message: Option<HvMessage>) -> Result<(), String> {
        let vtl0 = self.vtl0.as_mut().expect("VTL0 is running");
        let regs = exit_regs(vtl0);
        self.enter_vtl2(reason, message, &regs)
    }

    fn run_vtl0(&mut self) -> Result<Step, String> {
        let (index, memory) = (self.index, self.memory);
        let hv = self.hv.expect("VTL0 runs only with the Hyper-V interface");
        let caller = Caller {
            vp: index,
            vtl: Vtl::Vtl0,
        };
        let vtl0 = self.vtl0.as_mut().expect("VTL0 is running");
        // A start can only wait for a VP not yet seen running (`mark_running` voids it).
        if let Some(host) = hv.vtl0_host().filter(|h| !h.is_running(index)) {
            if let Some(ctx) = host.take_pending_start(index) {
                if waiting_to_start(vtl0) {
                    // The start's registers win over those the VTL return left for entry.
                    vtl0.clear_sync_dirty_reg(SyncReg::Register);
                    match crate::vtl0_view::start(vtl0, &ctx) {
                        Ok(()) => host.mark_running(index),
                        Err(e) => eprintln!(
                            "vmm-lite: VP {index}: StartVirtualProcessor's context does not take: {e}; VTL0 stays waiting"
                        ),
                    }
                } else {
                    // Started meanwhile by INIT-SIPI: a running VP is not restarted.
                    eprintln!("vmm-lite: VP {index}: StartVirtualProcessor came after VTL0 started; ignored");
                    host.mark_running(index);
                }
            }
        }

        // What the exit asks of VTL2, decided while KVM's exit data is borrowed.
        enum Then {
            Nothing,
            VtlCall,
            /// A port access other than the hypercall sequences: an OUT's bytes, or none.
            Port(u16, Vec<u8>),
            Msr(u32, bool),
            /// An access of `size` bytes to `gpa` outside VTL0's view, with a write's bytes.
            Memory {
                gpa: u64,
                size: usize,
                written: Option<Vec<u8>>,
            },
            Unrecoverable(String),
            Kicked,
        }
        let result = vtl0.run();
        if std::env::var_os("VMM_TRACE").is_some() {
            eprintln!(
                "TRACE vp{index} {:?}",
                result
                    .as_ref()
                    .map(|e| format!("{e:?}"))
                    .map(|s| s.chars().take(80).collect::<String>())
            );
        }
        // Only a vCPU that runs makes exits; one waiting to be started ends with EAGAIN or
        // EINTR. A running VP's VTL0 cannot be started again.
        if let (Ok(_), Some(host)) = (&result, hv.vtl0_host()) {
            host.mark_running(index);
        }
        let then = match result {
            Ok(VcpuExit::IoOut(port, _)) if port == u16::from(HYPERCALL_PORT) => {
                let mut regs = vtl0
                    .get_regs()
                    .map_err(|e| format!("KVM_GET_REGS (VTL0): {e}"))?;
                regs.rax = hv.hypercall_from(caller, regs.rcx, regs.rdx, regs.r8, memory, None);
                let (status, _) = hvdef::hypercall::parse_result(regs.rax);
                if status == hvdef::status::HvStatus::ACCESS_DENIED {
                    // The paravisor never sees these (calls reserved for VTL2, memory VTL0 may
                    // not touch): the hypervisor's refusal is the record.
                    eprintln!(
                        "vmm-lite: VP {index}: VTL0's hypercall {:#06x} refused: access denied",
                        regs.rcx & 0xffff
                    );
                }
                vtl0.set_regs(&regs)
                    .map_err(|e| format!("KVM_SET_REGS (VTL0): {e}"))?;
                Then::Nothing
            }
            Ok(VcpuExit::IoOut(port, _)) if port == u16::from(VTL_CALL_PORT) => Then::VtlCall,
            // The element size is in KVM's exit record, read once the data is released.
            Ok(VcpuExit::IoOut(port, data)) => Then::Port(port, data.to_vec()),
            Ok(VcpuExit::IoIn(port, _)) => Then::Port(port, Vec::new()),
            Ok(VcpuExit::X86Rdmsr(exit)) => {
                if hv.intercepts().msr(false) {
                    (*exit.data, *exit.error) = (0, 0);
                    Then::Msr(exit.index, false)
                } else {
                    match hv.read_msr(caller, exit.index) {
                        Ok(value) => *exit.data = value,
                        Err(_) => *exit.error = 1,
                    }
                    Then::Nothing
                }
            }
            Ok(VcpuExit::X86Wrmsr(exit)) => {
                if hv.intercepts().msr(true) {
                    *exit.error = 0;
                    Then::Msr(exit.index, true)
                } else {
                    if hv.write_msr(caller, exit.index, exit.data, memory).is_err() {
                        *exit.error = 1;
                    }
                    Then::Nothing
                }
            }
            // Memory outside VTL0's view: an empty bus, reported to VTL2. An access VTL0 may
            // make arrives here only while VTL2 is changing protections (a slot is replaced
            // while VTL0 runs on another VP): it is done on guest RAM directly.
            Ok(VcpuExit::MmioRead(gpa, data)) => {
                if vtl0_may(hv, gpa, map_flags::READABLE) && memory.read(gpa, data).is_ok() {
                    Then::Nothing
                } else {
                    data.fill(0xff);
                    Then::Memory {
                        gpa,
                        size: data.len(),
                        written: None,
                    }
                }
            }
            Ok(VcpuExit::MmioWrite(gpa, data)) => {
                if vtl0_may(hv, gpa, map_flags::WRITABLE) && memory.write(gpa, data).is_ok() {
                    Then::Nothing
                } else {
                    Then::Memory {
                        gpa,
                        size: data.len(),
                        written: Some(data.to_vec()),
                    }
                }
            }
            Ok(VcpuExit::Hlt) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                Then::Nothing
            }
            // The split irqchip's EOI of a level-triggered vector: only vectors routed
            // through KVM's I/O APIC routes exit so, and VTL0 has none (its I/O APIC is
            // VTL2's). Nothing to do.
            Ok(VcpuExit::IoapicEoi(_)) => Then::Nothing,
            Ok(VcpuExit::Shutdown) => Then::Unrecoverable("triple fault".into()),
            Ok(VcpuExit::InternalError) => return Ok(Step::KvmStopped(internal_error(vtl0))),
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                return Ok(Step::KvmStopped(Stop::FailEntry { reason, cpu }))
            }
            Ok(VcpuExit::MemoryFault { flags, gpa, size }) => {
                return Ok(Step::KvmStopped(Stop::MemoryFault { gpa, size, flags }))
            }
            Ok(other) => Then::Unrecoverable(format!("unexpected exit {other:?}")),
            // The kicker's signal: VTL2 may have an interrupt waiting.
            Err(e) if e.errno() == libc::EINTR => Then::Kicked,
            Err(e) if e.errno() == libc::EAGAIN => Then::Nothing,
            Err(e) => return Ok(Step::KvmStopped(Stop::RunError(e.errno()))),
        };
        match then {
            Then::Nothing => {}
            Then::VtlCall => self.enter_vtl2_here(vp_assist::ENTRY_VTL_CALL, None)?,
            Then::Port(port, written) => {
                let vtl0 = self.vtl0.as_mut().expect("VTL0 is running");
                let access = IoAccess {
                    port,
                    size: pending_io_size(vtl0),
                    is_write: !written.is_empty(),
                };
                let may_read = |gpa| vtl0_may(hv, gpa, map_flags::READABLE);
                let intercepted = hv.intercepts().port(port, access.size, access.is_write);
                let found = if intercepted {
                    vtl0_intercept::port_io(
                        vtl0,
                        index as u32,
                        access,
                        &written,
                        memory,
                        &may_read,
                    )?
                } else {
                    None
                };
                if let Some(i) = found {
                    let message = Some(i.message.to_message());
                    self.enter_vtl2(vp_assist::ENTRY_INTERCEPT, message, &i.regs)?;
                } else if intercepted {
                    // No instruction to report: the access gets what an empty bus gives.
                    eprintln!(
                        "vmm-lite: VP {index}: VTL0 port access to {port:#x} with no port I/O instruction to be found at its RIP; answered as an empty bus"
                    );
                    if !access.is_write {
                        pending_io_data(vtl0).fill(0xff);
                    }
                } else if access.is_write {
                    if let Some(outcome) = self.devices.write(port, &written) {
                        return Ok(Step::Done(outcome));
                    }
                } else {
                    self.devices.read(port, pending_io_data(vtl0));
                }
            }
            Then::Msr(msr, is_write) => {
                let vtl0 = self.vtl0.as_mut().expect("VTL0 is running");
                let i = vtl0_intercept::msr(vtl0, index as u32, msr, is_write)?;
                self.enter_vtl2(
                    vp_assist::ENTRY_INTERCEPT,
                    Some(i.message.to_message()),
                    &i.regs,
                )?;
            }
            Then::Memory { gpa, size, written } => {
                let vtl0 = self.vtl0.as_mut().expect("VTL0 is running");
                let exit = MemoryExit {
                    gpa,
                    size,
                    written: written.as_deref(),
                };
                let may_read = |gpa| vtl0_may(hv, gpa, map_flags::READABLE);
                let i = vtl0_memory_intercept::memory(
                    vtl0,
                    index as u32,
                    &exit,
                    memory,
                    &may_read,
                    memory.size(),
                )?;
                self.enter_vtl2(vp_assist::ENTRY_INTERCEPT, Some(i.message), &i.regs)?;
            }
            Then::Kicked => {
                let lapic = self
                    .vtl2
                    .get_lapic()
                    .map_err(|e| self.failure("KVM_GET_LAPIC", e))?;
                if interrupt_due(&lapic, self.vtl2_left.elapsed()) {
                    self.enter_vtl2_here(vp_assist::ENTRY_INTERRUPT, None)?;
                }
            }
            Then::Unrecoverable(what) => {
                eprintln!("vmm-lite: VP {index}: VTL0 stopped: {what}");
                let message = HvMessage::new(message_type::UNRECOVERABLE_EXCEPTION, &[]);
                self.enter_vtl2_here(vp_assist::ENTRY_INTERCEPT, Some(message))?;
            }
        }
        Ok(Step::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_go_only_into_a_free_slot() {
        let memory = GuestMemory::new(1 << 20).unwrap();
        let first = HvMessage::new(message_type::X64_IO_PORT_INTERCEPT, &[1; 8]);
        let second = HvMessage::new(message_type::X64_MSR_INTERCEPT, &[2; 8]);
        assert!(post(&memory, 0x5000, &first));
        assert!(!post(&memory, 0x5000, &second), "the slot is taken");
        memory.write(0x5000, &0u32.to_le_bytes()).unwrap(); // VTL2 frees it
        assert!(post(&memory, 0x5000, &second));
    }

    /// Runs a VP whose firmware vCPU is in real mode at 0x1000 over `memory`, with `hv`.
    fn run_real_mode(memory: &GuestMemory, hv: Option<&HyperV>) -> Outcome {
        let (_vm, vcpu) = crate::vm::test_vm::real_mode_vcpu(memory);
        let com1 =
            crate::serial::Com1::open(&crate::serial::SerialBackend::File("/dev/null".into()))
                .unwrap();
        Vp::new(0, vcpu, HostDevices { com1: &com1 }, memory, hv, None).run()
    }

    /// `fld dword [addr]`: KVM's emulator has no x87 loads, so on memory it must emulate
    /// (none mapped there) KVM stops with an emulation failure, as its own selftest relies on.
    fn fld(addr: u16) -> Vec<u8> {
        let [lo, hi] = addr.to_le_bytes();
        vec![0xd9, 0x06, lo, hi]
    }

    fn kvm_failure(outcome: Outcome) -> KvmFailure {
        match outcome {
            Outcome::KvmCannotRun(failure) => failure,
            other => panic!("expected KVM to stop, got {other:?}"),
        }
    }

    #[test]
    fn an_instruction_kvm_cannot_emulate_in_vtl2_ends_the_run_naming_it() {
        let memory = GuestMemory::new(32 << 10).unwrap(); // 0x9000 is past RAM
        memory.write(0x1000, &fld(0x9000)).unwrap();
        let failure = kvm_failure(run_real_mode(&memory, None));
        let line = failure.line();
        assert_eq!(
            (failure.vtl, failure.vp, failure.rip),
            (Vtl::Vtl2, 0, Ok(0x1000))
        );
        assert!(
            line.starts_with(
                "vmm-lite: KVM cannot run VTL2 on vCPU 0: emulation failure at RIP 0x1000, instruction bytes d9 06 00 90"
            ),
            "{line}"
        );
    }

    #[test]
    fn code_outside_ram_ends_the_run_without_instruction_bytes() {
        let memory = GuestMemory::new(64 << 10).unwrap();
        memory.write(0x1000, &[0xea, 0, 0, 0x00, 0x20]).unwrap(); // jmp 0x2000:0, past RAM
        let line = kvm_failure(run_real_mode(&memory, None)).line();
        assert_eq!(
            line,
            "vmm-lite: KVM cannot run VTL2 on vCPU 0: emulation failure at RIP 0x0, instruction bytes unavailable (exit status 3)"
        );
    }

    #[test]
    fn an_instruction_kvm_cannot_emulate_in_vtl0_ends_the_run_instead_of_entering_vtl2() {
        // VTL0 at 0x2000 loads from the paravisor's page at 0x8000, which its view leaves out.
        let memory = GuestMemory::new(1 << 20).unwrap();
        memory.write(0x1000, &[0xe6, VTL_RETURN_PORT]).unwrap();
        // Should VTL2 run again, it reports failure: mov al, 0x11; out 0xf4, al.
        memory.write(0x1002, &[0xb0, 0x11, 0xe6, 0xf4]).unwrap();
        memory.write(0x2000, &fld(0x8000)).unwrap();
        let hv = crate::bench::one_vp_with_vtl0(&memory, 0x2000, vec![(0x8000, 0x1000)]).unwrap();
        let failure = kvm_failure(run_real_mode(&memory, Some(&hv)));
        assert_eq!((failure.vtl, &failure.rip), (Vtl::Vtl0, &Ok(0x2000)));
        assert!(
            failure.line().starts_with(
                "vmm-lite: KVM cannot run VTL0 on vCPU 0: emulation failure at RIP 0x2000, instruction bytes d9 06 00 80"
            ),
            "{}",
            failure.line()
        );
    }
}

//! Exceptions and interrupts: the IDT, one entry stub per vector, and fault probes.
//!
//! Every vector has a 16-byte stub that pushes a uniform frame and calls
//! [`parapet_trap_dispatch`]. Vectors 0-31 are exceptions (Intel SDM Vol. 3A §6.15); a fault
//! raised by one of the probe instructions below is turned into an error result for its caller,
//! every other exception goes to the fatal handler. Vectors 32-255 go to the interrupt handler.

use core::arch::{asm, global_asm};
use core::mem::size_of;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::gdt::{IST_CRITICAL, KERNEL_CODE};

pub const PAGE_FAULT: u8 = 14;
pub const INVALID_OPCODE: u8 = 6;
const DOUBLE_FAULT: u8 = 8;
const NMI: u8 = 2;
const MACHINE_CHECK: u8 = 18;

/// Registers as the stubs leave them on the stack.
#[repr(C)]
#[derive(Debug, Clone)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Mnemonic of an exception vector (SDM Vol. 3A table 6-1).
pub fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "reserved", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "reserved", "reserved",
        "reserved", "reserved", "reserved", "reserved", "#HV", "#VC", "#SX", "reserved",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

global_asm!(
    r#"
    .section .text.parapet_trap, "ax"
    .balign 16
    .global parapet_trap_stubs
parapet_trap_stubs:
    .set vec, 0
    .rept 256
        .balign 16
        .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
        .else
            push 0
        .endif
        push vec
        jmp parapet_trap_common
        .set vec, vec + 1
    .endr

parapet_trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call parapet_trap_dispatch
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq

    // Probes: each returns (rax = value, rdx = 0) or, when its one instruction faults,
    // (rax = fault address or 0, rdx = vector + 1).
    .global parapet_probe_read_u64
parapet_probe_read_u64:
    xor edx, edx
    .global parapet_probe_read_insn
parapet_probe_read_insn:
    mov rax, [rdi]
    ret

    .global parapet_probe_write_u64
parapet_probe_write_u64:
    xor edx, edx
    xor eax, eax
    .global parapet_probe_write_insn
parapet_probe_write_insn:
    mov [rdi], rsi
    ret

    .global parapet_probe_invalid_opcode
parapet_probe_invalid_opcode:
    xor edx, edx
    xor eax, eax
    .global parapet_probe_ud_insn
parapet_probe_ud_insn:
    ud2
    ret

    .global parapet_probe_fixup
parapet_probe_fixup:
    ret
    "#
);

#[repr(C)]
struct ProbeResult {
    value: u64,
    fault: u64,
}

extern "C" {
    static parapet_trap_stubs: u8;
    static parapet_probe_read_insn: u8;
    static parapet_probe_write_insn: u8;
    static parapet_probe_ud_insn: u8;
    static parapet_probe_fixup: u8;
    fn parapet_probe_read_u64(address: u64) -> ProbeResult;
    fn parapet_probe_write_u64(address: u64, value: u64) -> ProbeResult;
    fn parapet_probe_invalid_opcode() -> ProbeResult;
}

/// A fault taken by a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    /// CR2 for a page fault, else 0.
    pub address: u64,
}

fn probe_outcome(r: ProbeResult) -> Result<u64, Fault> {
    match r.fault {
        0 => Ok(r.value),
        v => Err(Fault {
            vector: (v - 1) as u8,
            address: r.value,
        }),
    }
}

/// Reads a u64 at `address`, turning a fault into an error.
///
/// # Safety
/// If the read succeeds it must not break Rust's aliasing rules (the memory is not a live
/// `&mut` elsewhere) and must have no side effect the caller does not own.
pub unsafe fn probe_read(address: u64) -> Result<u64, Fault> {
    // SAFETY: the probe's one memory instruction is covered by the fixup; the caller vouches
    // for the access itself.
    probe_outcome(unsafe { parapet_probe_read_u64(address) })
}

/// Writes a u64 at `address`, turning a fault into an error.
///
/// # Safety
/// If the write succeeds it must not corrupt memory that Rust code owns.
pub unsafe fn probe_write(address: u64, value: u64) -> Result<(), Fault> {
    // SAFETY: as probe_read; the caller vouches for the write.
    probe_outcome(unsafe { parapet_probe_write_u64(address, value) }).map(drop)
}

/// Executes UD2, which raises #UD; returns the fault the handler reported.
pub fn probe_invalid_opcode() -> Result<(), Fault> {
    // SAFETY: UD2 always faults and the handler resumes at the fixup; nothing else happens.
    probe_outcome(unsafe { parapet_probe_invalid_opcode() }).map(drop)
}

/// What the kernel does with traps that are not probe faults.
pub struct TrapHandlers {
    /// An interrupt at `vector` (32-255) arrived.
    pub interrupt: fn(vector: u8),
    /// An exception nobody expected; reports and stops the machine.
    pub fatal: fn(&TrapFrame) -> !,
}

static HANDLERS: AtomicUsize = AtomicUsize::new(0);

/// Installs the handlers. Later calls replace earlier ones.
pub fn set_handlers(handlers: &'static TrapHandlers) {
    HANDLERS.store(handlers as *const TrapHandlers as usize, Ordering::Release);
}

fn handlers() -> Option<&'static TrapHandlers> {
    let p = HANDLERS.load(Ordering::Acquire) as *const TrapHandlers;
    // SAFETY: HANDLERS only ever holds 0 or a pointer derived from a `&'static TrapHandlers`.
    unsafe { p.as_ref() }
}

fn symbol(s: &u8) -> u64 {
    s as *const u8 as u64
}

#[no_mangle]
extern "C" fn parapet_trap_dispatch(frame: &mut TrapFrame) {
    if frame.vector < 32 {
        // SAFETY: the probe labels are only taken by address, never read.
        let probes = unsafe {
            [
                symbol(&parapet_probe_read_insn),
                symbol(&parapet_probe_write_insn),
                symbol(&parapet_probe_ud_insn),
            ]
        };
        if probes.contains(&frame.rip) {
            frame.rax = if frame.vector == u64::from(PAGE_FAULT) {
                super::instructions::read_cr2()
            } else {
                0
            };
            frame.rdx = frame.vector + 1;
            // SAFETY: as above, the fixup label is only taken by address.
            frame.rip = unsafe { symbol(&parapet_probe_fixup) };
            return;
        }
        match handlers() {
            Some(h) => (h.fatal)(frame),
            None => super::power::exit(crate::ExitStatus::Failure),
        }
    }
    if let Some(h) = handlers() {
        (h.interrupt)(frame.vector as u8);
    }
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    _reserved: u32,
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static mut IDT: Idt = Idt([Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    attributes: 0,
    offset_mid: 0,
    offset_high: 0,
    _reserved: 0,
}; 256]);

/// Fills the shared IDT. Call once, on the boot CPU, before [`load_idt`].
///
/// # Safety
/// No CPU may have loaded the IDT yet.
pub unsafe fn init_idt() {
    // SAFETY: only the address of the stub table is taken.
    let stubs = unsafe { symbol(&parapet_trap_stubs) };
    // SAFETY: the caller guarantees no CPU uses the IDT yet, so this is the only access.
    let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT) };
    for (vector, gate) in idt.0.iter_mut().enumerate() {
        let handler = stubs + 16 * vector as u64;
        let critical = [DOUBLE_FAULT, NMI, MACHINE_CHECK].contains(&(vector as u8));
        *gate = Gate {
            offset_low: handler as u16,
            selector: KERNEL_CODE,
            ist: if critical { IST_CRITICAL } else { 0 },
            // Present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
            attributes: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            _reserved: 0,
        };
    }
}

/// Loads the shared IDT into this CPU.
///
/// # Safety
/// [`init_idt`] must have run.
pub unsafe fn load_idt() {
    #[repr(C, packed(2))]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: core::ptr::addr_of!(IDT) as u64,
    };
    // SAFETY: the IDT is 'static and filled by init_idt.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}

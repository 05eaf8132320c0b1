//! EL2 exception vectors, the trap frame, and fault probes (Arm ARM D1.3 "Exceptions",
//! vector table layout D1.3.1; ESR_EL2 encodings D23.2.41).
//!
//! Every vector saves all general registers plus ELR/SPSR/ESR/FAR and calls
//! [`parapet_exception_dispatch`]. A fault raised by one of the probe instructions comes back
//! to its caller as an error; IRQs go to the interrupt handler; anything else is fatal.

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Which vector was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum VectorKind {
    Synchronous = 0,
    Irq = 1,
    Fiq = 2,
    SError = 3,
}

#[repr(C)]
#[derive(Debug, Clone)]
pub struct TrapFrame {
    pub x: [u64; 31],
    /// Vector index 0-15 (group * 4 + kind).
    pub vector: u64,
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
}

impl TrapFrame {
    pub fn kind(&self) -> VectorKind {
        match self.vector % 4 {
            0 => VectorKind::Synchronous,
            1 => VectorKind::Irq,
            2 => VectorKind::Fiq,
            _ => VectorKind::SError,
        }
    }

    /// The exception class, ESR_EL2.EC.
    pub fn exception_class(&self) -> u8 {
        ((self.esr >> 26) & 0x3f) as u8
    }
}

/// ESR_EL2.EC values (Arm ARM D23.2.41).
pub const EC_UNKNOWN: u8 = 0x00;
pub const EC_INSTRUCTION_ABORT_SAME_EL: u8 = 0x21;
pub const EC_DATA_ABORT_SAME_EL: u8 = 0x25;
pub const EC_BRK: u8 = 0x3c;

/// A short name of an exception class, for reports.
pub fn class_name(ec: u8) -> &'static str {
    match ec {
        EC_UNKNOWN => "unknown/undefined instruction",
        0x01 => "WFI/WFE",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "system register access",
        0x20 => "instruction abort from lower EL",
        EC_INSTRUCTION_ABORT_SAME_EL => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 => "data abort from lower EL",
        EC_DATA_ABORT_SAME_EL => "data abort",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        EC_BRK => "BRK",
        _ => "other",
    }
}

/// Size of the saved frame: 31 registers + vector + ELR + SPSR + ESR + FAR = 36 words.
const FRAME_SIZE: usize = 36 * 8;
const _: () = assert!(core::mem::size_of::<TrapFrame>() == FRAME_SIZE);

global_asm!(
    r#"
    .macro vector index
    .balign 0x80
    sub sp, sp, #{frame}
    stp x0, x1, [sp, #0]
    mov x0, #\index
    b parapet_exception_common
    .endm

    // From the guest (a lower EL): its registers go to the context its entry named, and
    // the entry call returns (see guest_entry.rs).
    .macro guest_vector index
    .balign 0x80
    stp x0, x1, [sp, #-16]!
    mov x0, #\index
    b parapet_guest_exit
    .endm

    .section .text.parapet_vectors, "ax"
    .balign 0x800
    .global parapet_exception_vectors
parapet_exception_vectors:
    vector 0
    vector 1
    vector 2
    vector 3
    vector 4
    vector 5
    vector 6
    vector 7
    guest_vector 8
    guest_vector 9
    guest_vector 10
    guest_vector 11
    guest_vector 12
    guest_vector 13
    guest_vector 14
    guest_vector 15

parapet_exception_common:
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x19, [sp, #144]
    stp x20, x21, [sp, #160]
    stp x22, x23, [sp, #176]
    stp x24, x25, [sp, #192]
    stp x26, x27, [sp, #208]
    stp x28, x29, [sp, #224]
    mrs x1, elr_el2
    stp x30, x0, [sp, #240]
    mrs x2, spsr_el2
    stp x1, x2, [sp, #256]
    mrs x1, esr_el2
    mrs x2, far_el2
    stp x1, x2, [sp, #272]
    mov x0, sp
    bl parapet_exception_dispatch
    ldp x1, x2, [sp, #256]
    msr elr_el2, x1
    msr spsr_el2, x2
    ldp x0, x1, [sp, #0]
    ldp x2, x3, [sp, #16]
    ldp x4, x5, [sp, #32]
    ldp x6, x7, [sp, #48]
    ldp x8, x9, [sp, #64]
    ldp x10, x11, [sp, #80]
    ldp x12, x13, [sp, #96]
    ldp x14, x15, [sp, #112]
    ldp x16, x17, [sp, #128]
    ldp x18, x19, [sp, #144]
    ldp x20, x21, [sp, #160]
    ldp x22, x23, [sp, #176]
    ldp x24, x25, [sp, #192]
    ldp x26, x27, [sp, #208]
    ldp x28, x29, [sp, #224]
    ldr x30, [sp, #240]
    add sp, sp, #{frame}
    eret

    // Probes: return (x0 = value, x1 = 0), or when their one instruction faults
    // (x0 = FAR, x1 = ESR.EC + 1).
    .global parapet_probe_read_u64
parapet_probe_read_u64:
    mov x1, xzr
    .global parapet_probe_read_insn
parapet_probe_read_insn:
    ldr x0, [x0]
    ret

    .global parapet_probe_write_u64
parapet_probe_write_u64:
    mov x2, x1
    mov x1, xzr
    .global parapet_probe_write_insn
parapet_probe_write_insn:
    str x2, [x0]
    mov x0, xzr
    ret

    .global parapet_probe_breakpoint
parapet_probe_breakpoint:
    mov x1, xzr
    mov x0, xzr
    .global parapet_probe_brk_insn
parapet_probe_brk_insn:
    brk #0x7a
    ret

    .global parapet_probe_fixup
parapet_probe_fixup:
    ret
    "#,
    frame = const FRAME_SIZE,
);

#[repr(C)]
struct ProbeResult {
    value: u64,
    fault: u64,
}

extern "C" {
    static parapet_exception_vectors: u8;
    static parapet_probe_read_insn: u8;
    static parapet_probe_write_insn: u8;
    static parapet_probe_brk_insn: u8;
    static parapet_probe_fixup: u8;
    fn parapet_probe_read_u64(address: u64) -> ProbeResult;
    fn parapet_probe_write_u64(address: u64, value: u64) -> ProbeResult;
    fn parapet_probe_breakpoint() -> ProbeResult;
}

/// A fault taken by a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// ESR_EL2.EC.
    pub class: u8,
    /// FAR_EL2 for aborts.
    pub address: u64,
}

fn outcome(r: ProbeResult) -> Result<u64, Fault> {
    match r.fault {
        0 => Ok(r.value),
        c => Err(Fault {
            class: (c - 1) as u8,
            address: r.value,
        }),
    }
}

/// Reads a u64 at `address`, turning a fault into an error.
///
/// # Safety
/// A successful read must not alias a live `&mut` or have effects the caller does not own.
pub unsafe fn probe_read(address: u64) -> Result<u64, Fault> {
    // SAFETY: the load is covered by the fixup; the caller vouches for the access.
    outcome(unsafe { parapet_probe_read_u64(address) })
}

/// Writes a u64 at `address`, turning a fault into an error.
///
/// # Safety
/// A successful write must not corrupt memory Rust code owns.
pub unsafe fn probe_write(address: u64, value: u64) -> Result<(), Fault> {
    // SAFETY: the store is covered by the fixup; the caller vouches for the access.
    outcome(unsafe { parapet_probe_write_u64(address, value) }).map(drop)
}

/// Executes BRK, which traps; returns what the handler reported.
pub fn probe_breakpoint() -> Result<(), Fault> {
    // SAFETY: BRK always traps and the handler resumes at the fixup.
    outcome(unsafe { parapet_probe_breakpoint() }).map(drop)
}

/// What the kernel does with exceptions that are not probe faults.
pub struct ExceptionHandlers {
    pub irq: fn(),
    pub fatal: fn(&TrapFrame) -> !,
}

static HANDLERS: AtomicUsize = AtomicUsize::new(0);

pub fn set_handlers(handlers: &'static ExceptionHandlers) {
    HANDLERS.store(
        handlers as *const ExceptionHandlers as usize,
        Ordering::Release,
    );
}

fn handlers() -> Option<&'static ExceptionHandlers> {
    // SAFETY: HANDLERS holds 0 or a pointer derived from a `&'static ExceptionHandlers`.
    unsafe { (HANDLERS.load(Ordering::Acquire) as *const ExceptionHandlers).as_ref() }
}

fn symbol(s: &u8) -> u64 {
    s as *const u8 as u64
}

#[no_mangle]
extern "C" fn parapet_exception_dispatch(frame: &mut TrapFrame) {
    match frame.kind() {
        VectorKind::Irq => {
            if let Some(h) = handlers() {
                (h.irq)();
            }
        }
        VectorKind::Synchronous => {
            // SAFETY: probe labels are only taken by address.
            let probes = unsafe {
                [
                    symbol(&parapet_probe_read_insn),
                    symbol(&parapet_probe_write_insn),
                    symbol(&parapet_probe_brk_insn),
                ]
            };
            if probes.contains(&frame.elr) {
                frame.x[0] = frame.far;
                frame.x[1] = u64::from(frame.exception_class()) + 1;
                // SAFETY: as above.
                frame.elr = unsafe { symbol(&parapet_probe_fixup) };
                return;
            }
            fatal(frame)
        }
        VectorKind::Fiq | VectorKind::SError => fatal(frame),
    }
}

fn fatal(frame: &TrapFrame) -> ! {
    match handlers() {
        Some(h) => (h.fatal)(frame),
        // No handlers yet: nothing to report with, but the run must still fail.
        None => super::power::exit(crate::ExitStatus::Failure),
    }
}

/// Points VBAR_EL2 at Parapet's vectors.
///
/// # Safety
/// Must run on each CPU before anything can raise an exception that should be handled.
pub unsafe fn install_vectors() {
    // SAFETY: the vector table is 2 KiB aligned code in the image.
    unsafe {
        super::registers::set_vbar_el2(symbol(&parapet_exception_vectors));
    }
    super::registers::isb();
}

//! One `unsafe fn` per privileged x86_64 instruction (Intel SDM Vol. 2).

use core::arch::asm;

/// Reads a byte from an I/O port.
///
/// # Safety
/// The port must belong to a device whose read side effects the caller owns.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller owns the port; `in` touches no memory.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device whose write side effects the caller owns.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller owns the port; `out` touches no memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 32-bit value to an I/O port.
///
/// # Safety
/// As [`outb`].
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller owns the port; `out` touches no memory.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist (else #GP) and reading it must have no effect the caller does not own.
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist, the value must be valid for it, and the change must not break any
/// invariant Rust code relies on (e.g. the GS base while per-CPU data is borrowed).
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the MSR and value are valid.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// CPUID leaf/subleaf: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    // CPUID is unprivileged and present on every x86_64 CPU, so the intrinsic is safe.
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is allowed at CPL 0 and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn read_cr2() -> u64 {
    let value;
    // SAFETY: reading CR2 at CPL 0 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

pub fn read_cr3() -> u64 {
    let value;
    // SAFETY: reading CR3 at CPL 0 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Loads a new page-table root.
///
/// # Safety
/// `root` must be a valid PML4 that maps all code, data and stacks in use, with the
/// same virtual addresses.
pub unsafe fn write_cr3(root: u64) {
    // SAFETY: the caller guarantees the new tables map everything in use identically.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
}

/// Drops the TLB entry for one page.
///
/// # Safety
/// Always sound to run; `unsafe` only because it is privileged. Kept as an unsafe fn so every
/// TLB maintenance point is visible.
pub unsafe fn invlpg(va: u64) {
    // SAFETY: INVLPG only drops a cached translation.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

/// Enables interrupts and halts until one arrives, atomically (STI's one-instruction shadow
/// covers HLT, so a wake-up cannot be lost between the two).
///
/// # Safety
/// The IDT must be loaded and able to handle whatever interrupt arrives.
pub unsafe fn enable_interrupts_and_halt() {
    // SAFETY: the caller guarantees interrupts can be taken.
    unsafe { asm!("sti; hlt", options(nostack)) };
}

/// Disables maskable interrupts. Also a compiler barrier (no `nomem`), so memory accesses
/// meant to run masked are not moved out of the masked section; the same holds for the
/// enabling functions.
pub fn disable_interrupts() {
    // SAFETY: CLI only masks interrupts; it cannot break memory safety.
    unsafe { asm!("cli", options(nostack)) };
}

/// Enables maskable interrupts.
///
/// # Safety
/// The IDT must be loaded and able to handle whatever interrupt arrives.
pub unsafe fn enable_interrupts() {
    // SAFETY: the caller guarantees interrupts can be taken.
    unsafe { asm!("sti", options(nostack)) };
}

/// Whether RFLAGS.IF is set.
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS has no side effects.
    unsafe { asm!("pushfq; pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// Runs `f` with interrupts masked, restoring the previous state afterwards.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was_enabled = interrupts_enabled();
    disable_interrupts();
    let r = f();
    if was_enabled {
        // SAFETY: interrupts were enabled before, so the IDT was able to take them.
        unsafe { enable_interrupts() };
    }
    r
}

/// Halts with interrupts masked, forever.
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        // SAFETY: HLT with interrupts masked only stops this CPU.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}

/// Hints a spin-wait loop.
pub fn pause() {
    core::hint::spin_loop();
}

pub const IA32_APIC_BASE: u32 = 0x1b;
pub const IA32_EFER: u32 = 0xc000_0080;
pub const IA32_GS_BASE: u32 = 0xc000_0101;

/// Reads the 64-bit value at `gs:[offset]`.
///
/// # Safety
/// GS base must point at a structure with a readable u64 at `offset`.
#[inline]
pub unsafe fn read_gs_u64(offset: usize) -> u64 {
    let value;
    // SAFETY: the caller guarantees gs:[offset] is readable.
    unsafe {
        asm!("mov {}, gs:[{}]", out(reg) value, in(reg) offset, options(nostack, preserves_flags, readonly))
    };
    value
}

/// 64 bits from the CPU's conditioned entropy source (RDSEED, Intel SDM Vol. 2B), or from its
/// DRBG (RDRAND) where RDSEED is missing; `None` when the CPU has neither (CPUID.07H:EBX[18],
/// CPUID.01H:ECX[30]) or keeps failing (both may fail transiently: the SDM's advice is to
/// retry, a bounded number of times).
pub fn hardware_random() -> Option<u64> {
    const RETRIES: usize = 100;
    let has_rdseed = cpuid(7, 0).1 & (1 << 18) != 0;
    let has_rdrand = cpuid(1, 0).2 & (1 << 30) != 0;
    for _ in 0..RETRIES {
        let (value, ok): (u64, u8);
        if has_rdseed {
            // SAFETY: RDSEED exists (CPUID above); it writes only its operand and CF.
            unsafe {
                asm!("rdseed {}", "setc {}", out(reg) value, out(reg_byte) ok, options(nomem, nostack))
            };
        } else if has_rdrand {
            // SAFETY: RDRAND exists (CPUID above); it writes only its operand and CF.
            unsafe {
                asm!("rdrand {}", "setc {}", out(reg) value, out(reg_byte) ok, options(nomem, nostack))
            };
        } else {
            return None;
        }
        if ok != 0 {
            return Some(value);
        }
    }
    None
}

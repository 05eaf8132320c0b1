//! The local APIC, in x2APIC mode where the CPU has it and xAPIC MMIO mode otherwise
//! (Intel SDM Vol. 3A chapter 11: §11.4 enabling, §11.5.4 timer, §11.6 IPIs, §11.12 x2APIC).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::instructions::{cpuid, pause, rdmsr, wrmsr, IA32_APIC_BASE};

const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
/// CPUID.01H:ECX.x2APIC[bit 21].
const CPUID_X2APIC: u32 = 1 << 21;

/// Register offsets in the xAPIC page; the x2APIC MSR is 0x800 + offset / 16 (SDM table 11-6).
#[derive(Clone, Copy)]
#[repr(u32)]
enum Register {
    Id = 0x20,
    Eoi = 0xb0,
    SpuriousVector = 0xf0,
    InterruptCommand = 0x300,
    InterruptCommandHigh = 0x310,
    LvtTimer = 0x320,
    TimerInitialCount = 0x380,
    TimerCurrentCount = 0x390,
    TimerDivide = 0x3e0,
}

const SOFTWARE_ENABLE: u32 = 1 << 8;
const TIMER_PERIODIC: u32 = 1 << 17;
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration 0b0011: divide by 16.
const DIVIDE_BY_16: u32 = 0x3;
const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_INIT: u32 = 5 << 8;
const ICR_STARTUP: u32 = 6 << 8;

static X2APIC: AtomicBool = AtomicBool::new(false);
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);

/// Whether this CPU supports x2APIC mode.
pub fn has_x2apic() -> bool {
    cpuid(1, 0).2 & CPUID_X2APIC != 0
}

/// Whether the APIC runs in x2APIC mode.
pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// Enables this CPU's local APIC, in x2APIC mode when available, with `spurious` as the
/// spurious-interrupt vector.
///
/// # Safety
/// Call once per CPU with interrupts masked. In xAPIC mode the register page at `mmio_base`
/// must be mapped uncached at the same virtual address.
pub unsafe fn enable(mmio_base: u64, spurious: u8) {
    let x2 = has_x2apic();
    X2APIC.store(x2, Ordering::Relaxed);
    XAPIC_BASE.store(mmio_base, Ordering::Relaxed);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting EN (and EXTD when supported)
    // is the documented enabling sequence (SDM §11.12.1).
    unsafe {
        let base = rdmsr(IA32_APIC_BASE);
        let mut new = base | APIC_BASE_ENABLE;
        if x2 {
            new |= APIC_BASE_X2APIC;
        }
        if new != base {
            wrmsr(IA32_APIC_BASE, new);
        }
        write(
            Register::SpuriousVector,
            SOFTWARE_ENABLE | u32::from(spurious),
        );
    }
}

/// # Safety
/// The APIC must be enabled; writes must be valid for the register.
unsafe fn write(reg: Register, value: u32) {
    if is_x2apic() {
        // SAFETY: the x2APIC MSR range exists in x2APIC mode; the caller vouches for the value.
        unsafe { wrmsr(0x800 + reg as u32 / 16, u64::from(value)) };
    } else {
        let address = XAPIC_BASE.load(Ordering::Relaxed) + reg as u64;
        // SAFETY: the caller of `enable` mapped the register page; registers are 32-bit,
        // 16-byte aligned and must be accessed with volatile 32-bit stores.
        unsafe { core::ptr::write_volatile(address as *mut u32, value) };
    }
}

fn read(reg: Register) -> u32 {
    if is_x2apic() {
        // SAFETY: the register exists in x2APIC mode and reading it has no side effect.
        unsafe { rdmsr(0x800 + reg as u32 / 16) as u32 }
    } else {
        let address = XAPIC_BASE.load(Ordering::Relaxed) + reg as u64;
        // SAFETY: `enable` documented that the page is mapped; reads have no side effect.
        unsafe { core::ptr::read_volatile(address as *const u32) }
    }
}

/// This CPU's APIC ID (x2APIC: 32 bits; xAPIC: bits 31:24 of the ID register).
pub fn id() -> u32 {
    if is_x2apic() {
        read(Register::Id)
    } else {
        read(Register::Id) >> 24
    }
}

/// Signals end of interrupt.
pub fn end_of_interrupt() {
    // SAFETY: writing 0 to EOI retires the in-service interrupt, which the caller is handling.
    unsafe { write(Register::Eoi, 0) };
}

/// # Safety
/// Sending an IPI must not disturb another CPU in a way the caller does not own.
unsafe fn send(destination: u32, command: u32) {
    if is_x2apic() {
        // WRMSR to the x2APIC ICR is not serializing (SDM §11.12.3): fence so the memory
        // writes the IPI announces (a queued task, a shootdown request) are visible first.
        // SAFETY: ICR is one 64-bit MSR in x2APIC mode (SDM §11.12.9); the caller owns the IPI.
        unsafe {
            core::arch::asm!("mfence", options(nostack, preserves_flags));
            wrmsr(0x830, (u64::from(destination) << 32) | u64::from(command));
        }
    } else {
        // SAFETY: as above, in the two 32-bit xAPIC registers, high half first.
        unsafe {
            write(Register::InterruptCommandHigh, destination << 24);
            write(Register::InterruptCommand, command);
        }
        while read(Register::InterruptCommand) & ICR_DELIVERY_PENDING != 0 {
            pause();
        }
    }
}

/// Sends fixed interrupt `vector` to the CPU with APIC ID `destination`.
///
/// # Safety
/// The target's IDT must handle `vector`.
pub unsafe fn send_ipi(destination: u32, vector: u8) {
    // SAFETY: a fixed IPI only raises `vector`, which the caller says is handled.
    unsafe { send(destination, ICR_LEVEL_ASSERT | u32::from(vector)) };
}

/// Sends INIT to `destination`, resetting it into wait-for-SIPI.
///
/// # Safety
/// `destination` must be a CPU that runs nothing Parapet depends on.
pub unsafe fn send_init(destination: u32) {
    // SAFETY: the caller guarantees the target may be reset.
    unsafe { send(destination, ICR_LEVEL_ASSERT | ICR_INIT) };
}

/// Sends a start-up IPI: `destination` starts in real mode at `page * 4096`.
///
/// # Safety
/// `destination` must be waiting for SIPI and the page must hold valid start-up code.
pub unsafe fn send_startup(destination: u32, page: u8) {
    // SAFETY: the caller guarantees the start-up code.
    unsafe {
        send(
            destination,
            ICR_LEVEL_ASSERT | ICR_STARTUP | u32::from(page),
        )
    };
}

/// Starts the timer counting down from `count` (divide by 16), firing `vector` at zero and
/// reloading when `periodic`. A masked timer still counts, which calibration uses.
///
/// # Safety
/// If unmasked, the IDT must handle `vector`.
pub unsafe fn start_timer(vector: u8, count: u32, periodic: bool, masked: bool) {
    let mut lvt = u32::from(vector);
    if periodic {
        lvt |= TIMER_PERIODIC;
    }
    if masked {
        lvt |= LVT_MASKED;
    }
    // SAFETY: programming this CPU's own timer; the caller vouches for the vector.
    unsafe {
        write(Register::TimerDivide, DIVIDE_BY_16);
        write(Register::LvtTimer, lvt);
        write(Register::TimerInitialCount, count);
    }
}

/// Restarts a timer [`start_timer`] set up, counting down from `count` (in one-shot mode:
/// it fires once more, at zero).
///
/// # Safety
/// As [`start_timer`].
pub unsafe fn restart_timer(count: u32) {
    // SAFETY: the caller's contract.
    unsafe { write(Register::TimerInitialCount, count) };
}

/// Current value of the timer's down-counter.
pub fn timer_current_count() -> u32 {
    read(Register::TimerCurrentCount)
}

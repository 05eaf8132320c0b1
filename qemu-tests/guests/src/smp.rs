//! Starting a second VP the way an enlightened guest does on Hyper-V:
//! HvCallStartVirtualProcessor (0x99) with an HV_INITIAL_VP_CONTEXT (TLFS §7.10) copied from
//! the running VP's own 64-bit state.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::hypercall;

const START_VIRTUAL_PROCESSOR: u64 = 0x99;
const PARTITION_SELF: u64 = u64::MAX;
const EFER: u32 = 0xc000_0080;
const STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

static mut SECOND_STACK: Stack = Stack([0; STACK_SIZE]);

/// Set by the second VP once it has run.
pub static SECOND_VP_RAN: AtomicBool = AtomicBool::new(false);

/// A segment in the context: base 0, 4 GiB limit, `selector`, VMX-style `attributes`.
fn segment(context: &mut [u8], at: usize, selector: u16, attributes: u16) {
    context[at + 8..at + 12].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
    context[at + 12..at + 14].copy_from_slice(&selector.to_le_bytes());
    context[at + 14..at + 16].copy_from_slice(&attributes.to_le_bytes());
}

/// Starts VP `vp` in VTL0 at `entry` with its own stack, in this VP's paging and GDT;
/// returns the hypercall status.
pub fn start_vp(vp: u32, entry: extern "C" fn() -> !) -> u16 {
    let (cr0, cr3, cr4): (u64, u64, u64);
    // SAFETY: reading control registers at CPL 0 has no side effect.
    unsafe {
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack));
        asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack));
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
    }
    // SAFETY: EFER exists on every 64-bit CPU.
    let efer = unsafe { hypercall::rdmsr(EFER) };
    let mut gdtr = [0u8; 10];
    // SAFETY: sgdt stores 10 bytes into the buffer.
    unsafe { asm!("sgdt [{}]", in(reg) gdtr.as_mut_ptr(), options(nostack)) };
    let mut input = [0u8; 240];
    input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
    input[8..12].copy_from_slice(&vp.to_le_bytes());
    // Target VTL 0 at byte 12; the context from byte 16.
    let c = &mut input[16..];
    // As if `entry` had been called: RSP 8 below a 16-byte boundary (SysV ABI §3.2.2).
    let stack_top = &raw const SECOND_STACK as u64 + STACK_SIZE as u64 - 8;
    c[0..8].copy_from_slice(&(entry as usize as u64).to_le_bytes());
    c[8..16].copy_from_slice(&stack_top.to_le_bytes());
    c[16..24].copy_from_slice(&2u64.to_le_bytes()); // RFLAGS: interrupts off
    segment(c, 24, 0x08, 0xa09b); // CS: 64-bit code
    for at in [40, 56, 72, 88, 104] {
        segment(c, at, 0x10, 0xc093); // DS, ES, FS, GS, SS
    }
    c[120 + 8..120 + 12].copy_from_slice(&0x67u32.to_le_bytes()); // TR: a busy TSS
    c[120 + 14..120 + 16].copy_from_slice(&0x8bu16.to_le_bytes());
    c[136 + 8..136 + 12].copy_from_slice(&0xffffu32.to_le_bytes()); // LDTR
    c[136 + 14..136 + 16].copy_from_slice(&0x82u16.to_le_bytes());
    c[168 + 6..168 + 8].copy_from_slice(&gdtr[0..2]); // GDTR limit, then base
    c[168 + 8..168 + 16].copy_from_slice(&gdtr[2..10]);
    for (at, value) in [
        (184, efer),
        (192, cr0),
        (200, cr3),
        (208, cr4),
        (216, 0x0007_0406_0007_0406),
    ] {
        c[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }
    (hypercall::call(START_VIRTUAL_PROCESSOR, &input) & 0xffff) as u16
}

/// Marks the second VP as having run, then parks it.
pub fn report_and_park() -> ! {
    SECOND_VP_RAN.store(true, Ordering::Release);
    loop {
        // SAFETY: with interrupts off, hlt parks this VP for good.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Waits up to about 2^34 TSC cycles (seconds, here) for the second VP.
pub fn wait_for_second_vp() -> bool {
    let tsc = || {
        let (low, high): (u32, u32);
        // SAFETY: rdtsc only reads the time-stamp counter.
        unsafe { asm!("rdtsc", out("eax") low, out("edx") high, options(nomem, nostack)) };
        (u64::from(high) << 32) | u64::from(low)
    };
    let start = tsc();
    while !SECOND_VP_RAN.load(Ordering::Acquire) {
        if tsc().wrapping_sub(start) > 1 << 34 {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

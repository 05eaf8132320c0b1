//! What the test guests share: their entry, the COM1 they print through (driven like a
//! stock 8250 driver would), and how they report the end of a run.
//!
//! The guests run in VTL0 under Parapet's VTL0 boot protocol (64-bit mode, the first 4 GiB
//! identity-mapped, no stack): `_start` sets up a stack and calls the bin's `guest_main`.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(target_os = "none")]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod port;
#[cfg(target_os = "none")]
pub mod serial;
#[cfg(target_os = "none")]
pub mod smp;

/// The exit port's protocol (isa-debug-exit): what a guest writes to report how it ended.
pub const EXIT_PORT: u16 = 0xf4;
pub const EXIT_SUCCESS: u32 = 0x10;
pub const EXIT_FAILURE: u32 = 0x11;

#[cfg(target_os = "none")]
core::arch::global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "lea rsp, [rip + {stack} + {size}]",
    "call guest_main",
    "2: hlt",
    "jmp 2b",
    stack = sym STACK,
    size = const STACK_SIZE,
);

#[cfg(target_os = "none")]
const STACK_SIZE: usize = 16 * 1024;

/// Only its address is used, by `_start`.
#[cfg(target_os = "none")]
#[repr(align(16))]
#[allow(dead_code)]
struct Stack([u8; STACK_SIZE]);

#[cfg(target_os = "none")]
static mut STACK: Stack = Stack([0; STACK_SIZE]);

/// Reports the end of the run on the exit port; the paravisor stops the machine.
#[cfg(target_os = "none")]
pub fn exit(code: u32) -> ! {
    // SAFETY: the exit port is the paravisor's power device for VTL0.
    unsafe { port::outl(EXIT_PORT, code) };
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    let _ = writeln!(serial::Com1, "guest panic: {info}");
    exit(EXIT_FAILURE)
}

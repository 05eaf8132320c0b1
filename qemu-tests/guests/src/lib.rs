//! What the test guests share: their entry, the UART they print through (driven like a stock
//! driver would), and how they report the end of a run.
//!
//! x86_64: the guests run in VTL0 (or under the svm backend) under Parapet's boot protocol
//! (64-bit mode, the first 4 GiB identity-mapped, no stack): `_start` sets up a stack and
//! calls the bin's `guest_main`. They print through COM1 (`serial`), start their second VP
//! by hypercall (`hypercall`, `smp`) and end by the isa-debug-exit port (`port`).
//!
//! aarch64: the guests run at EL1 under the Linux arm64 boot protocol (EL1h, MMU off, DAIF
//! masked, x0 = 0): `_start` sets up a stack and exception vectors and calls `guest_main`.
//! They print through a PL011 (`serial`), make PSCI calls by HVC (`psci`), start their
//! second CPU with CPU_ON (`smp`), and end with SYSTEM_OFF (success) or SYSTEM_RESET
//! (failure). The MMU stays off, so data memory is Device-nGnRnE: the target's
//! `+strict-align` keeps every access aligned, and nothing here uses exclusives.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
pub mod hypercall;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
pub mod port;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
pub mod serial;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
pub mod smp;

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[path = "aarch64/exception.rs"]
pub mod exception;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[path = "aarch64/psci.rs"]
pub mod psci;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[path = "aarch64/serial.rs"]
pub mod serial;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[path = "aarch64/smp.rs"]
pub mod smp;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[path = "aarch64/start.rs"]
mod start;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[path = "aarch64/timer.rs"]
pub mod timer;

/// The exit port's protocol (isa-debug-exit): what a guest writes to report how it ended.
/// On aarch64 the same codes choose PSCI SYSTEM_OFF (success) or SYSTEM_RESET (failure).
pub const EXIT_PORT: u16 = 0xf4;
pub const EXIT_SUCCESS: u32 = 0x10;
pub const EXIT_FAILURE: u32 = 0x11;

/// Where `println!` writes: COM1 on x86_64, the PL011 on aarch64.
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
pub use serial::Com1 as Console;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
pub use serial::Pl011 as Console;

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
pub use start::exit;

/// `println!` for guests, to [`Console`].
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::Console, $($arg)*);
    }};
}

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
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

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
const STACK_SIZE: usize = 16 * 1024;

/// Only its address is used, by `_start`.
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
#[repr(align(16))]
#[allow(dead_code)]
struct Stack([u8; STACK_SIZE]);

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
static mut STACK: Stack = Stack([0; STACK_SIZE]);

/// Reports the end of the run on the exit port; the paravisor stops the machine.
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
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
    let _ = writeln!(Console, "guest panic: {info}");
    exit(EXIT_FAILURE)
}

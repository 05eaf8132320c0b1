//! The entry points: `_start` (the ELF entry, the boot CPU) and the entry CPU_ON starts
//! other CPUs at. Both come in at EL1h with the MMU off and DAIF masked, set their own stack
//! and exception vectors (`exception`), and stay that way.

use crate::{psci, smp, EXIT_SUCCESS};

pub(crate) const STACK_SIZE: usize = 16 * 1024;

/// A CPU's stack; only its address is used, by the entries.
#[repr(C, align(16))]
#[allow(dead_code)]
pub(crate) struct Stack(pub(crate) [u8; STACK_SIZE]);

static mut STACK: Stack = Stack([0; STACK_SIZE]);

core::arch::global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "adrp x9, {stack}",
    "add x9, x9, :lo12:{stack}",
    "mov x10, #{size}",
    "add sp, x9, x10",
    "adrp x9, parapet_guest_vectors",
    "add x9, x9, :lo12:parapet_guest_vectors",
    "msr vbar_el1, x9",
    "isb",
    "bl guest_main",
    "2: wfe",
    "b 2b",
    "",
    // CPU_ON's entry: x0 (the context) is the `extern "C" fn() -> !` to run.
    ".section .text.entry.secondary, \"ax\"",
    ".global parapet_guest_secondary_start",
    "parapet_guest_secondary_start:",
    "adrp x9, {second_stack}",
    "add x9, x9, :lo12:{second_stack}",
    "mov x10, #{size}",
    "add sp, x9, x10",
    "adrp x9, parapet_guest_vectors",
    "add x9, x9, :lo12:parapet_guest_vectors",
    "msr vbar_el1, x9",
    "isb",
    "br x0",
    stack = sym STACK,
    second_stack = sym smp::SECOND_STACK,
    size = const STACK_SIZE,
);

unsafe extern "C" {
    fn parapet_guest_secondary_start();
}

/// Where CPU_ON starts a CPU (x0: the function to run on the second stack).
pub(crate) fn secondary_entry() -> u64 {
    parapet_guest_secondary_start as *const () as u64
}

/// Ends the run: PSCI SYSTEM_OFF for [`EXIT_SUCCESS`], SYSTEM_RESET for anything else (a
/// reset ends a run under Parapet as a failure).
pub fn exit(code: u32) -> ! {
    psci::power_off(code == EXIT_SUCCESS)
}

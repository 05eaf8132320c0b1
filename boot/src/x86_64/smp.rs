//! Starting the application processors with INIT-SIPI-SIPI (Intel SDM Vol. 3A §9.4.4.1;
//! MP spec B.4) through a real-mode trampoline copied below 1 MiB.
//!
//! The trampoline goes straight from real mode to long mode (PAE, LME and then PE|PG together),
//! loads the stack and argument the boot CPU left in its mailbox, and jumps to [`ap_entry`].

use core::arch::global_asm;

use arch::x86_64::apic;
use kernel::frame_alloc::FRAME_SIZE;
use kernel::memory::FRAMES;

use super::time;

/// Stack of each application processor.
pub const AP_STACK_SIZE: u64 = 64 * 1024;

global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    xor %ebx, %ebx
    mov %cs, %bx
    shl $4, %ebx
    // Patch the GDT pointer and far-jump target with this copy's linear address.
    lea (ap_gdt - ap_trampoline_start)(%ebx), %eax
    mov %eax, (ap_gdt_pointer - ap_trampoline_start + 2)
    lea (ap_long_mode - ap_trampoline_start)(%ebx), %eax
    mov %eax, (ap_far_pointer - ap_trampoline_start)
    lgdtl (ap_gdt_pointer - ap_trampoline_start)
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov (ap_cr3 - ap_trampoline_start), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0
    ljmpl *(ap_far_pointer - ap_trampoline_start)

    .code64
ap_long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov (ap_stack - ap_trampoline_start)(%rbx), %rsp
    mov (ap_argument - ap_trampoline_start)(%rbx), %rdi
    mov (ap_entry_point - ap_trampoline_start)(%rbx), %rax
    call *%rax
1:
    hlt
    jmp 1b

    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
ap_gdt_pointer:
    .word 23
    .long 0
    .balign 8
ap_far_pointer:
    .long 0
    .word 0x08
    .balign 8
    .global ap_cr3
ap_cr3:
    .quad 0
    .global ap_stack
ap_stack:
    .quad 0
    .global ap_entry_point
ap_entry_point:
    .quad 0
    .global ap_argument
ap_argument:
    .quad 0
    .global ap_trampoline_end
ap_trampoline_end:
    "#,
    options(att_syntax)
);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_cr3: u8;
    static ap_stack: u8;
    static ap_entry_point: u8;
    static ap_argument: u8;
}

fn offset_of(symbol: &u8) -> usize {
    // SAFETY: linker symbols; only addresses are compared.
    let start = unsafe { &ap_trampoline_start } as *const u8 as usize;
    symbol as *const u8 as usize - start
}

/// The AP's first Rust code; `argument` is its CPU index.
pub type ApEntry = extern "C" fn(argument: u64) -> !;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    NoStack,
    NoResponse { apic_id: u32 },
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::NoStack => write!(f, "no frames left for an AP stack"),
            StartError::NoResponse { apic_id } => write!(
                f,
                "CPU with APIC ID {apic_id} did not answer INIT-SIPI-SIPI"
            ),
        }
    }
}

/// Starts CPU `index` (APIC ID `apic_id`) through the trampoline at `page` (below 1 MiB),
/// and waits until it reports online.
///
/// # Safety
/// `page` must be an identity-mapped, executable, otherwise unused page below 1 MiB; `cr3` must
/// be below 4 GiB and map the kernel; `entry` must be safe to run as that CPU's first code.
pub unsafe fn start_ap(
    page: u64,
    cr3: u64,
    index: usize,
    apic_id: u32,
    entry: ApEntry,
) -> Result<(), StartError> {
    let stack = FRAMES
        .lock()
        .allocate(AP_STACK_SIZE, FRAME_SIZE)
        .ok_or(StartError::NoStack)?;
    // SAFETY: linker symbols; only addresses are used.
    let (start, end) = unsafe {
        (
            &ap_trampoline_start as *const u8,
            &ap_trampoline_end as *const u8,
        )
    };
    let len = end as usize - start as usize;
    // SAFETY: the caller gives us `page` for the trampoline; the blob is shorter than a page.
    unsafe {
        core::ptr::copy_nonoverlapping(start, page as *mut u8, len);
        let field = |symbol: &u8| (page as usize + offset_of(symbol)) as *mut u64;
        field(&ap_cr3).write_volatile(cr3);
        field(&ap_stack).write_volatile(stack + AP_STACK_SIZE);
        field(&ap_entry_point).write_volatile(entry as usize as u64);
        field(&ap_argument).write_volatile(index as u64);
    }

    // SAFETY: the target is a parked AP (never started), so resetting it is harmless; the
    // trampoline page holds valid start-up code.
    unsafe {
        apic::send_init(apic_id);
        time::spin_micros(10_000);
        for _ in 0..2 {
            apic::send_startup(apic_id, (page >> 12) as u8);
            time::spin_micros(200);
            if crate::cpus::is_online(index) {
                break;
            }
        }
    }
    // Generous: a loaded TCG host can take a while to schedule the new vCPU.
    let deadline = time::now_ns() + 2_000_000_000;
    while !crate::cpus::is_online(index) {
        if time::now_ns() > deadline {
            // Park it again: a CPU that woke up late must not run the trampoline after its
            // mailbox is rewritten for the next CPU (it would share that CPU's stack).
            // SAFETY: the target never reported online, so nothing depends on it.
            unsafe { apic::send_init(apic_id) };
            return Err(StartError::NoResponse { apic_id });
        }
        core::hint::spin_loop();
    }
    Ok(())
}

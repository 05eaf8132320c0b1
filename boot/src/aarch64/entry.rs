//! The aarch64 entry: a Linux arm64 image header (Linux `Documentation/arch/arm64/booting.rst`),
//! then EL2 entry with the DTB in x0. Clears .bss, identity-maps the low 4 GiB with 1 GiB
//! blocks (device below 1 GiB, normal memory above, as on QEMU virt), turns the MMU and caches
//! on, and calls [`super::start::aarch64_start`]. Rust code rebuilds finer tables right after.
//!
//! Secondary CPUs enter at `secondary_entry` (PSCI CPU_ON) with x0 pointing at a
//! [`SecondaryBoot`] record.

use core::arch::global_asm;

use arch::aarch64::page_format::MAIR_EL2;

pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// What a secondary CPU reads, with its MMU off, before it can run Rust.
#[repr(C)]
pub struct SecondaryBoot {
    pub ttbr0: u64,
    pub stack_top: u64,
    pub index: u64,
}

/// TCR_EL2: T0SZ = 16 (48-bit VA), inner/outer write-back write-allocate, inner shareable,
/// 4 KiB granule, RES1 bits 31 and 23 (Arm ARM D23.2.123). PS is filled in from PARange.
const TCR_EL2: u64 = 16 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (1 << 31);
/// 1 GiB block descriptors for the boot tables (see arch::aarch64::page_format).
const NORMAL_BLOCK: u64 = 1 | (1 << 6) | (3 << 8) | (1 << 10);
const DEVICE_BLOCK: u64 = 1 | (1 << 2) | (1 << 6) | (1 << 10) | (1 << 54);
/// SCTLR_EL2: M (MMU), C (data cache), I (instruction cache).
const SCTLR_ENABLE: u64 = 1 | (1 << 2) | (1 << 12);

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _head
_head:
    b primary_entry
    .long 0
    .quad 0x80000
    .quad __image_size
    .quad 0x2
    .quad 0
    .quad 0
    .quad 0
    .ascii "ARM\x64"
    .long 0

primary_entry:
    mov x19, x0
    mrs x1, CurrentEL
    cmp x1, #8
    b.ne 9f

    adrp x1, __bss_start
    add x1, x1, :lo12:__bss_start
    adrp x2, __bss_end
    add x2, x2, :lo12:__bss_end
1:
    cmp x1, x2
    b.hs 2f
    str xzr, [x1], #8
    b 1b
2:
    adrp x1, boot_stack_top
    add x1, x1, :lo12:boot_stack_top
    mov sp, x1

    adrp x1, boot_l0
    adrp x2, boot_l1
    orr x3, x2, #3
    str x3, [x1]
    ldr x3, ={device}
    str x3, [x2]
    ldr x3, ={normal} + 0x40000000
    str x3, [x2, #8]
    ldr x3, ={normal} + 0x80000000
    str x3, [x2, #16]
    ldr x3, ={normal} + 0xc0000000
    str x3, [x2, #24]
    mov x0, x1
    bl parapet_enable_mmu
    mov x0, x19
    bl aarch64_start
9:
    wfe
    b 9b

    .global secondary_entry
secondary_entry:
    mov x19, x0
    ldr x1, [x19, #8]
    mov sp, x1
    ldr x0, [x19, #0]
    bl parapet_enable_mmu
    ldr x0, [x19, #16]
    bl aarch64_secondary_start
8:
    wfe
    b 8b

    // x0 = translation table root. Sets MAIR/TCR/TTBR0 and turns on MMU and caches.
parapet_enable_mmu:
    ldr x1, ={mair}
    msr mair_el2, x1
    mrs x1, id_aa64mmfr0_el1
    and x1, x1, #0xf
    mov x2, #5
    cmp x1, x2
    csel x1, x1, x2, ls
    ldr x2, ={tcr}
    orr x2, x2, x1, lsl #16
    msr tcr_el2, x2
    msr ttbr0_el2, x0
    isb
    tlbi alle2
    dsb ish
    isb
    mrs x1, sctlr_el2
    ldr x2, ={sctlr}
    orr x1, x1, x2
    msr sctlr_el2, x1
    isb
    ret

    .section .bss.boot_tables, "aw", @nobits
    .balign 4096
boot_l0:
    .skip 4096
boot_l1:
    .skip 4096
    .balign 16
boot_stack:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
    "#,
    device = const DEVICE_BLOCK,
    normal = const NORMAL_BLOCK,
    mair = const MAIR_EL2,
    tcr = const TCR_EL2,
    sctlr = const SCTLR_ENABLE,
    stack_size = const BOOT_STACK_SIZE,
);

extern "C" {
    fn secondary_entry();
}

/// Physical address where PSCI CPU_ON should start a secondary CPU.
pub fn secondary_entry_point() -> u64 {
    secondary_entry as unsafe extern "C" fn() as usize as u64
}

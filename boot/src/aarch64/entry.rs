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

/// What a secondary CPU reads, with its MMU off, before it can run Rust. Aligned so that it
/// shares no cache line with other data.
#[repr(C, align(64))]
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
/// SCTLR_EL2, written whole (its reset value is UNKNOWN): the RES1 bits of the non-VHE
/// layout (4, 5, 11, 16, 18, 22, 23, 28, 29) plus M (MMU), C (data cache), I (instruction
/// cache); little-endian, no alignment checks, no WXN (Arm ARM D23.2.156).
const SCTLR_EL2: u64 = 0x30c5_0830 | 1 | (1 << 2) | (1 << 12);
/// HCR_EL2 before the MMU goes on: RW (EL1 is AArch64) and, above all, E2H clear, so EL2 is
/// the non-VHE regime these tables are built for.
const HCR_EL2_BOOT: u64 = 1 << 31;

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
    // .bss was zeroed with caches off: drop any stale lines for it before caches go on.
    mrs x3, ctr_el0
    ubfx x3, x3, #16, #4
    mov x4, #4
    lsl x3, x4, x3
    adrp x1, __bss_start
    add x1, x1, :lo12:__bss_start
    sub x4, x3, #1
    bic x1, x1, x4
3:
    dc ivac, x1
    add x1, x1, x3
    cmp x1, x2
    b.lo 3b
    dsb sy

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
    // Not entered at EL2: Parapet cannot host anything. Say so on QEMU virt's PL011 (the
    // only console known before the device tree is read) and fail the run through
    // semihosting SYS_EXIT (0x18) with code 1, as `power::exit` does; then wait forever.
    adr x1, not_el2_message
    movz x2, #0x0900, lsl #16
10:
    ldrb w3, [x1], #1
    cbz w3, 11f
    strb w3, [x2]
    b 10b
11:
    mov x0, #0x18
    adr x1, exit_failure_block
    hlt #0xf000
12:
    wfe
    b 12b

    .balign 8
exit_failure_block:
    .quad 0x20026, 1
not_el2_message:
    .asciz "parapet: fatal: entered below EL2; Parapet needs EL2 (QEMU: -M virt,virtualization=on)\n"
    .balign 4

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
    ldr x1, ={hcr}
    msr hcr_el2, x1
    isb
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
    ldr x1, ={sctlr}
    msr sctlr_el2, x1
    isb
    ic iallu
    dsb nsh
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
    sctlr = const SCTLR_EL2,
    hcr = const HCR_EL2_BOOT,
    stack_size = const BOOT_STACK_SIZE,
);

extern "C" {
    fn secondary_entry();
}

/// Physical address where PSCI CPU_ON should start a secondary CPU.
pub fn secondary_entry_point() -> u64 {
    secondary_entry as unsafe extern "C" fn() as usize as u64
}

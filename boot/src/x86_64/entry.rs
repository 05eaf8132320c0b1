//! The PVH entry: 32-bit protected mode, paging off, `ebx` = `hvm_start_info` (Xen PVH ABI).
//!
//! Clears .bss, builds identity page tables for the low 4 GiB with 2 MiB pages, enables
//! PAE + long mode + NX + write protection, and calls [`super::start::x86_64_start`] on the
//! boot stack. Rust code rebuilds finer-grained tables right after.

use core::arch::global_asm;

/// Boot CPU stack size.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    // PVH entry note: XEN_ELFNOTE_PHYS32_ENTRY (18), "Xen", the 32-bit entry address.
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad pvh_start
    .balign 4
    .popsection

    .section .text.pvh_start, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    mov %ebx, %esi

    // Zero .bss (page tables and the boot stack live there).
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    // PD0..PD3: 2048 entries of 2 MiB, present | writable | PS.
    mov $boot_pd, %edi
    xor %ecx, %ecx
1:
    mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%edi,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jb 1b

    // PDPT[0..3] -> the four PDs; PML4[0] -> PDPT.
    mov $boot_pdpt, %edi
    mov $boot_pd, %eax
    or $0x3, %eax
    xor %ecx, %ecx
2:
    mov %eax, (%edi,%ecx,8)
    add $0x1000, %eax
    inc %ecx
    cmp $4, %ecx
    jb 2b
    mov $boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, boot_pml4

    // CR4.PAE, CR3, EFER.LME|NXE, CR0.PG|WP|PE.
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0

    lgdt boot_gdt_pointer
    ljmp $0x08, $3f

    .code64
3:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    mov %esi, %edi
    call x86_64_start
4:
    hlt
    jmp 4b

    .section .rodata.boot_gdt, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_pointer:
    .word boot_gdt_pointer - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot_tables, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    .balign 16
boot_stack:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
    "#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

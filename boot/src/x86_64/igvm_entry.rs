//! The IGVM entry: 64-bit mode on the boot tables and GDT the image builder placed, RSI at the
//! first parameter page (layout in `parapet_abi::igvm_layout`). Reads the VP count, memory map
//! and command line the loader filled in, then joins the shared x86_64 boot.

use core::arch::global_asm;

use abi::igvm_layout::*;
use abi::igvm_memory_map::{self, TYPE_MEMORY, TYPE_VTL2_PROTECTABLE};
use arch::memory_map::{MemoryMap, RegionKind};
use arch::x86_64::pvh::heapless_str::Line;
use kernel::executor::MAX_CPUS;

use super::start::{early_fatal, init, take_early_exceptions, Discovered};
use super::{percpu, platform::PLATFORM, serial};
use crate::boot_info::Reserved;

global_asm!(
    r#"
    // The image builder finds the entry through this note: name "Parapet", type 1.
    .pushsection .note.parapet, "a", @note
    .balign 4
    .long 8
    .long 8
    .long {note_type}
    .asciz "Parapet"
    .balign 4
    .quad igvm_start
    .balign 4
    .popsection

    .section .text.igvm_start, "ax"
    .code64
    .global igvm_start
igvm_start:
    cli
    cld
    mov r12, rsi
    lea rdi, [rip + __bss_start]
    lea rcx, [rip + __bss_end]
    sub rcx, rdi
    xor eax, eax
    rep stosb
    lea rsp, [rip + boot_stack_top]
    mov rdi, r12
    call x86_64_igvm_start
2:
    hlt
    jmp 2b
    "#,
    note_type = const ENTRY_NOTE_TYPE,
);

/// Copies `len` bytes of a parameter page the loader wrote.
fn read_parameter<const N: usize>(gpa: u64) -> [u8; N] {
    let mut buf = [0u8; N];
    // SAFETY: parameter pages lie inside the paravisor region, below 4 GiB, which the boot
    // tables identity-map; they are read once, into our own buffer.
    unsafe { core::ptr::copy_nonoverlapping(gpa as *const u8, buf.as_mut_ptr(), N) };
    buf
}

#[no_mangle]
extern "C" fn x86_64_igvm_start(parameters: u64) -> ! {
    // SAFETY: first Rust code on the boot CPU, index 0; nothing has asked for a CPU index yet.
    unsafe { percpu::install(0, 0) };
    kernel::platform::install(&PLATFORM);
    serial::init();
    take_early_exceptions();
    if parameters != VP_COUNT_PAGE {
        early_fatal(format_args!(
            "IGVM entry with parameters at {parameters:#x}, expected {VP_COUNT_PAGE:#x}"
        ));
    }

    let vp_count = u32::from_le_bytes(read_parameter::<4>(VP_COUNT_PAGE));
    if vp_count == 0 {
        early_fatal(format_args!("the loader reported 0 VPs"));
    }
    let tracked = (vp_count as usize).min(MAX_CPUS);
    let mut apic_ids = [0u32; MAX_CPUS];
    for (i, id) in apic_ids.iter_mut().enumerate().take(tracked) {
        // Loaders number VPs from 0 and give VP n the APIC ID n.
        *id = i as u32;
    }

    let raw_map = read_parameter::<{ MEMORY_MAP_SIZE as usize }>(MEMORY_MAP_PAGES);
    let mut memory_map = MemoryMap::new();
    let (region_start, region_end) = (PARAVISOR_BASE, PARAVISOR_BASE + PARAVISOR_SIZE);
    // Bytes of our region the map lists as RAM; it may split the region into several entries.
    let mut own_region_listed = 0u64;
    for entry in igvm_memory_map::entries(&raw_map) {
        let kind = match entry.entry_type {
            TYPE_MEMORY | TYPE_VTL2_PROTECTABLE => RegionKind::Ram,
            _ => RegionKind::Reserved,
        };
        if kind == RegionKind::Ram {
            let end = entry.start.saturating_add(entry.size);
            own_region_listed += end
                .min(region_end)
                .saturating_sub(entry.start.max(region_start));
        }
        if !memory_map.push(entry.start, entry.size, kind) {
            early_fatal(format_args!(
                "the IGVM memory map has more entries than Parapet keeps"
            ));
        }
    }
    // (Overlapping entries could count twice; the loader is expected to send disjoint ones,
    // and the frame allocator merges overlaps anyway.)
    if own_region_listed < PARAVISOR_SIZE {
        early_fatal(format_args!(
            "the memory map does not hold Parapet's region {PARAVISOR_BASE:#x}..{:#x}",
            PARAVISOR_BASE + PARAVISOR_SIZE
        ));
    }

    let raw_cmdline = read_parameter::<{ COMMAND_LINE_SIZE as usize }>(COMMAND_LINE_PAGE);
    let cmdline = Line::from_bytes(&raw_cmdline);

    let mut reserved = Reserved::default();
    reserved.add("boot tables and parameters", BOOT_TABLES, BOOT_END);
    init(Discovered {
        platform: super::start::detect_platform(),
        memory_map,
        own_memory: Some((PARAVISOR_BASE, PARAVISOR_BASE + PARAVISOR_SIZE)),
        reserved,
        apic_ids: &apic_ids[..tracked],
        ignored_cpus: vp_count as usize - tracked,
        local_apic: 0xfee0_0000,
        cmdline: cmdline.as_str(),
    })
}

//! From an entry (PVH or IGVM) to `parapet: ready` on x86_64.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use arch::memory_map::{MemoryMap, RegionKind};
use arch::phys::{IdentityMapped, ListedOnly};
use arch::x86_64::{acpi, apic, gdt::CpuTables, instructions, pvh, trap};
use arch::ExitStatus;
use kernel::executor;
use kernel::memory::FRAMES;

use super::platform::{PLATFORM, SPURIOUS_VECTOR, TIMER_VECTOR, TRAP_HANDLERS};
use super::{percpu, serial, smp, time};
use crate::boot_info::{BootInfo, Reserved};
use crate::kernel_map;
use abi::igvm_layout::{PARAVISOR_BASE, PARAVISOR_SIZE};

/// The boot page tables identity-map this much.
const BOOT_MAPPED: u64 = 4 << 30;
const LOW_MEMORY_END: u64 = 0x10_0000;
/// Where the masked legacy PICs' vectors go.
const LEGACY_PIC_BASE: u8 = 0xe0;
/// The xAPIC register page, from the MADT.
static LAPIC_ADDRESS: AtomicU64 = AtomicU64::new(0xfee0_0000);

/// The isolation platform, from CPUID.
pub(super) fn detect_platform() -> isolation::PlatformKind {
    isolation::PlatformKind::detect_x86(|leaf| instructions::cpuid(leaf, 0))
}

/// Reports a failure before the console contract is established, and stops.
pub(super) fn early_fatal(what: core::fmt::Arguments<'_>) -> ! {
    kernel::console::emergency_write_fmt(format_args!("parapet: fatal: {what}\n"));
    arch::x86_64::power::exit(ExitStatus::Failure)
}

/// Takes exceptions from the first Rust instructions on: a fault while the boot tables are
/// parsed is reported (vector, error code, RIP) and fails the run instead of triple-faulting.
/// The entry code's GDT has the kernel code selector the gates name; the IST stacks come
/// with this CPU's TSS in `load_cpu_tables`, so until then a double fault still resets.
pub(super) fn take_early_exceptions() {
    // SAFETY: the first Rust code on the boot CPU, so no CPU has loaded the IDT yet;
    // interrupts are masked.
    unsafe {
        trap::init_idt();
        trap::load_idt();
    }
    trap::set_handlers(&TRAP_HANDLERS);
}

/// Loads this CPU's GDT, TSS and IDT.
fn load_cpu_tables() {
    let tables = Box::leak(Box::new(CpuTables::new()));
    // SAFETY: the tables are leaked, so 'static and unmoved; interrupts are masked on entry
    // paths, and the IDT was filled by the boot CPU before any CPU loads it.
    unsafe {
        tables.load();
        trap::load_idt();
    }
}

/// What an entry path found out about the machine, for the shared part of x86_64 boot.
pub(super) struct Discovered<'a> {
    pub platform: isolation::PlatformKind,
    /// All guest RAM (for the banner and the identity map).
    pub memory_map: MemoryMap,
    /// RAM the frame allocator may hand out; `None` means all of `memory_map`.
    pub own_memory: Option<(u64, u64)>,
    pub reserved: Reserved,
    pub apic_ids: &'a [u32],
    /// Processors found beyond what Parapet tracks.
    pub ignored_cpus: usize,
    pub local_apic: u64,
    pub cmdline: &'a str,
}

#[no_mangle]
extern "C" fn x86_64_start(start_info: u32) -> ! {
    // SAFETY: first Rust code on the boot CPU, index 0; nothing has asked for a CPU index yet.
    unsafe { percpu::install(0, 0) };
    kernel::platform::install(&PLATFORM);
    serial::init();
    take_early_exceptions();

    let phys = IdentityMapped { limit: BOOT_MAPPED };
    let info = pvh::parse(&phys, u64::from(start_info))
        .unwrap_or_else(|e| early_fatal(format_args!("{e}")));
    #[cfg(feature = "selftest")]
    if crate::selftest::early_fault_requested(info.cmdline.as_str()) {
        crate::selftest::deliberate_fault();
    }
    // Firmware tables are read only where the memory map says memory is, never in holes.
    let tables = ListedOnly {
        map: &info.memory_map,
        inner: phys,
    };
    let rsdp =
        acpi::find_rsdp(&tables, info.rsdp).unwrap_or_else(|e| early_fatal(format_args!("{e}")));
    let cpus = acpi::processors(&tables, rsdp).unwrap_or_else(|e| early_fatal(format_args!("{e}")));

    // Boot structures the frame allocator must not hand out.
    let mut reserved = Reserved::default();
    reserved.add("low memory", 0, LOW_MEMORY_END);
    reserved.add(
        "start info",
        u64::from(start_info),
        u64::from(start_info) + pvh::START_INFO_SIZE,
    );
    if let Some((s, e)) = info.cmdline_range {
        reserved.add("command line", s, e);
    }
    if let Some((s, size)) = info.module {
        reserved.add("module", s, s.saturating_add(size));
    }
    // Given a guest to host under SVM, Parapet keeps to the region the IGVM layout gives it
    // and the guest gets the rest of RAM; otherwise Parapet has all of it.
    let platform = detect_platform();
    let own_memory = (platform == isolation::PlatformKind::Svm && info.module.is_some())
        .then_some((PARAVISOR_BASE, PARAVISOR_BASE + PARAVISOR_SIZE));
    if let Some((address, size)) = info.module {
        crate::guest::set_payload(address, size);
    }
    init(Discovered {
        platform,
        memory_map: info.memory_map.clone(),
        own_memory,
        reserved,
        apic_ids: cpus.apic_ids(),
        ignored_cpus: cpus.ignored,
        local_apic: cpus.local_apic_address,
        cmdline: info.cmdline.as_str(),
    })
}

/// The shared part of x86_64 boot, from memory set-up to `parapet: ready`.
pub(super) fn init(machine: Discovered<'_>) -> ! {
    let Discovered {
        platform,
        memory_map,
        own_memory,
        mut reserved,
        apic_ids,
        ignored_cpus,
        local_apic,
        cmdline,
    } = machine;
    let (image_start, image_end) = kernel_map::image_range();
    reserved.add("image", image_start, image_end);
    {
        let mut frames = FRAMES.lock();
        match own_memory {
            // Only what the map says is RAM: a small machine may not fill the region.
            Some((start, end)) => memory_map.ram().for_each(|r| {
                let (s, e) = (r.start.max(start), r.end.min(end));
                if s < e {
                    frames.add_ram(s, e);
                }
            }),
            None => memory_map
                .ram()
                .for_each(|r| frames.add_ram(r.start, r.end)),
        }
        for r in reserved.ranges() {
            frames.reserve(r.start, r.end);
        }
        // A map may list a reserved range inside a RAM range (firmware tables, a loader's
        // own data): the narrower claim wins.
        for r in memory_map
            .regions()
            .iter()
            .filter(|r| r.kind != RegionKind::Ram)
        {
            frames.reserve(r.start, r.end);
        }
    }
    // SAFETY: once, with the frames identity-mapped by the boot tables (RAM below 4 GiB
    // comes first from the allocator).
    if let Err(e) = unsafe { kernel::memory::init_heap(crate::HEAP_SIZE) } {
        early_fatal(format_args!("heap: {e}"));
    }

    // SAFETY: interrupts are masked and nothing else drives the PICs. Their vectors
    // (0xe0..0xf0) are masked and, if one slips through, reported.
    unsafe { arch::x86_64::pic::remap_and_mask(LEGACY_PIC_BASE) };
    load_cpu_tables();
    LAPIC_ADDRESS.store(local_apic, Ordering::Relaxed);
    // SAFETY: interrupts are masked; the boot tables map the xAPIC page (below 4 GiB).
    unsafe { apic::enable(local_apic, SPURIOUS_VECTOR) };
    let bsp_apic_id = apic::id();
    percpu::PER_CPU[0]
        .apic_id
        .store(bsp_apic_id, Ordering::Relaxed);
    // SAFETY: nothing else uses the PIT; the APIC is enabled.
    unsafe { time::calibrate(TIMER_VECTOR) };

    let boot = BootInfo {
        arch: "x86_64",
        platform,
        cpus: apic_ids.len(),
        ram_bytes: memory_map.ram_bytes(),
        cmdline,
    };
    crate::print_banner(&boot);
    if ignored_cpus > 0 {
        log::warn!(
            "{ignored_cpus} processors beyond the {} Parapet tracks stay parked",
            acpi::MAX_CPUS
        );
    }
    log::info!(
        "x86_64: {} APIC, TSC {} MHz, tick {} Hz",
        if apic::is_x2apic() { "x2APIC" } else { "xAPIC" },
        time::tsc_hz() / 1_000_000,
        time::TICK_HZ
    );
    for r in reserved.ranges() {
        log::debug!("reserved {:#x}..{:#x} ({})", r.start, r.end, r.what);
    }

    // The AP start-up page: the first free low page clear of every boot structure.
    let trampoline = (0x1000..0x9_f000u64)
        .step_by(4096)
        .find(|&p| {
            memory_map.ram().any(|r| r.start <= p && p + 4096 <= r.end)
                && !reserved.overlaps_except(p, p + 4096, "low memory")
        })
        .unwrap_or_else(|| {
            early_fatal(format_args!(
                "no free page below 640 KiB for the AP trampoline"
            ))
        });

    let lapic = [(local_apic, 4096)];
    let space = kernel_map::build(&memory_map, &lapic, &[trampoline])
        .unwrap_or_else(|e| early_fatal(format_args!("building page tables: {e}")));
    // SAFETY: the new tables map all RAM (stacks, heap, frames) and the image at the same
    // addresses, with text executable; the boot tables stay allocated but unused.
    unsafe { instructions::write_cr3(space.root()) };
    crate::install_kernel_space(space);
    log::info!("page tables: RAM identity-mapped NX, image W^X, page 0 unmapped");
    if let Some(own) = own_memory {
        crate::guest::ram::record(&memory_map, &[own], u64::MAX);
    }
    if platform == isolation::PlatformKind::HvVtl {
        match super::hv::init() {
            Ok(()) => {}
            Err(e) => early_fatal(format_args!("hv_vtl: {e}")),
        }
    }

    // SAFETY: the boot CPU's IDT handles the tick.
    unsafe { time::start_tick(TIMER_VECTOR) };
    crate::cpus::set_online(0);
    executor::init_cpu(0);

    let cr3 = instructions::read_cr3();
    let mut index = 1;
    for &apic_id in apic_ids.iter().filter(|&&id| id != bsp_apic_id) {
        if index == percpu::PER_CPU.len() {
            log::warn!(
                "CPU with APIC ID {apic_id} and later stay parked: Parapet tracks {index} CPUs"
            );
            break;
        }
        // SAFETY: the trampoline page is reserved, identity-mapped and executable; CR3 is the
        // kernel's (allocated lowest-first, so below 4 GiB); ap_entry is the AP entry point.
        match unsafe { smp::start_ap(trampoline, cr3, index, apic_id, ap_entry) } {
            Ok(()) => index += 1,
            Err(e) => log::error!("{e}"),
        }
    }
    log::info!("{index} of {} CPUs online", apic_ids.len());
    crate::finish_boot(boot, index)
}

extern "C" fn ap_entry(index: u64) -> ! {
    let index = index as usize;
    // SAFETY: first Rust code on this AP, with the index the boot CPU assigned to it alone.
    unsafe { percpu::install(index, 0) };
    load_cpu_tables();
    // SAFETY: interrupts are masked; the kernel tables map the xAPIC page (when used).
    unsafe { apic::enable(LAPIC_ADDRESS.load(Ordering::Relaxed), SPURIOUS_VECTOR) };
    percpu::current()
        .apic_id
        .store(apic::id(), Ordering::Relaxed);
    // SAFETY: this CPU's IDT handles the tick.
    unsafe { time::start_tick(TIMER_VECTOR) };
    let executor = executor::init_cpu(index);
    crate::cpus::set_online(index);
    log::debug!("cpu{index} online, APIC ID {}", apic::id());
    executor.run()
}

//! From the EL2 entry to `parapet: ready` on aarch64.

use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use arch::aarch64::devicetree::{self, PsciConduit};
use arch::aarch64::gic::Gic;
use arch::aarch64::{exception, power, psci, registers, timer};
use arch::ExitStatus;
use kernel::executor;
use kernel::frame_alloc::FRAME_SIZE;
use kernel::memory::FRAMES;

use super::entry::{secondary_entry_point, SecondaryBoot};
use super::platform::{self, EXCEPTION_HANDLERS, KICK_SGI, PLATFORM, TICK_HZ};
use super::{percpu, serial};
use crate::boot_info::{BootInfo, Reserved};
use crate::kernel_map;

/// Most of a device tree we copy (header, reservation map, structure and strings blocks).
const DTB_COPY_MAX: usize = 64 * 1024;
/// The boot tables map RAM up to here.
const BOOT_MAPPED_END: u64 = 4 << 30;
const AP_STACK_SIZE: u64 = 64 * 1024;

/// HCR_EL2: RW (EL1 is AArch64), IMO/FMO/AMO (physical IRQ, FIQ, SError go to EL2, so
/// Parapet receives its own interrupts while running at EL2). Arm ARM D23.2.53.
const HCR_EL2: u64 = (1 << 31) | (1 << 5) | (1 << 4) | (1 << 3);
/// RAM Parapet keeps for itself when it hosts a guest: the start of RAM, where the loader put
/// its image (as the IGVM layout's region on x86_64).
const OWN_REGION_SIZE: u64 = 64 << 20;

fn early_fatal(what: core::fmt::Arguments<'_>) -> ! {
    kernel::console::emergency_write_fmt(format_args!("parapet: fatal: {what}\n"));
    power::exit(ExitStatus::Failure)
}

/// Enables this CPU's GIC interface and its timer and kick interrupts, and starts the tick.
fn init_cpu_interrupts() {
    let gic = platform::gic();
    // SAFETY: the controller's registers are mapped device memory; IRQs are masked.
    let cpu = unsafe { gic.init_cpu() }.unwrap_or_else(|| {
        early_fatal(format_args!(
            "the GIC has no interface for MPIDR {:#x}",
            registers::mpidr()
        ))
    });
    percpu::current()
        .sgi_target
        .store(cpu.sgi_target, Ordering::Relaxed);
    percpu::set_gic_cpu(cpu);
    // SAFETY: `cpu` is this CPU's, and the vectors handle both interrupts.
    unsafe {
        gic.enable_private(&cpu, platform::timer_intid());
        gic.enable_private(&cpu, KICK_SGI);
        timer::start_tick(TICK_HZ);
    }
}

#[no_mangle]
extern "C" fn aarch64_start(dtb: u64) -> ! {
    // SAFETY: first Rust code on the boot CPU: nothing can fault usefully before the vectors,
    // and index 0 is the boot CPU's.
    unsafe {
        exception::install_vectors();
        percpu::install(0, registers::mpidr());
    }
    kernel::platform::install(&PLATFORM);
    // Reported from here on (class, ESR, ELR, FAR) and failing the run; the report reaches
    // the console once it is up.
    exception::set_handlers(&EXCEPTION_HANDLERS);

    let (dtb_size, blob) = copy_device_tree(dtb).unwrap_or_else(|| {
        // No device tree to name a UART: try QEMU virt's so the reason can be seen.
        serial::init(0x0900_0000);
        early_fatal(format_args!(
            "no usable device tree at {dtb:#x} (x0 at entry)"
        ))
    });
    let mut dt = match devicetree::parse(blob) {
        Ok(dt) => dt,
        Err(e) => {
            // Try QEMU virt's UART so the error can be seen.
            serial::init(0x0900_0000);
            early_fatal(format_args!("{e}"))
        }
    };
    if let Some(uart) = dt.uart {
        serial::init(uart);
    }
    #[cfg(feature = "selftest")]
    if crate::selftest::early_fault_requested(dt.bootargs) {
        crate::selftest::deliberate_fault();
    }
    if dt.psci == Some(PsciConduit::Hvc) {
        // At EL2 an HVC traps to our own vectors, not to the PSCI firmware.
        log::warn!("device tree asks for PSCI over HVC, which cannot reach firmware from EL2; PSCI disabled");
        dt.psci = None;
    }
    power::set_psci_conduit(dt.psci);

    let (image_start, image_end) = kernel_map::image_range();
    let mut reserved = Reserved::default();
    reserved.add("image", image_start, image_end);
    reserved.add("device tree", dtb, dtb.saturating_add(dtb_size as u64));
    if let Some((s, e)) = dt.initrd {
        reserved.add("initrd", s, e);
    }
    for &(start, size) in dt.reserved() {
        reserved.add("device-tree reservation", start, start.saturating_add(size));
    }
    // Given a guest (the device tree's initrd), Parapet keeps to the first 64 MiB of RAM,
    // where its image is, and the guest gets the rest; otherwise Parapet has all of it.
    let ram_start = dt.memory.ram().map(|r| r.start).min().unwrap_or(0);
    let own_memory = dt.initrd.map(|(start, end)| {
        crate::guest::set_payload(start, end - start);
        (ram_start, ram_start + OWN_REGION_SIZE)
    });
    {
        let mut frames = FRAMES.lock();
        for r in dt.memory.ram() {
            let (start, end) = match own_memory {
                Some((s, e)) => (r.start.max(s), r.end.min(e)),
                None => (r.start, r.end),
            };
            if start < end {
                frames.add_ram(start, end);
            }
        }
        for r in reserved.ranges() {
            frames.reserve(r.start, r.end);
        }
    }
    // SAFETY: once; frames come lowest-first from RAM the boot tables map.
    if let Err(e) = unsafe { kernel::memory::init_heap(crate::HEAP_SIZE) } {
        early_fatal(format_args!("heap: {e}"));
    }

    // SAFETY: routes physical interrupts to EL2, where our vectors take them; EL1 runs nothing.
    unsafe { registers::set_hcr_el2(HCR_EL2) };
    registers::isb();
    platform::set_timer(dt.hyp_timer_intid, timer::frequency());
    platform::set_gic(Gic::from(dt.gic));
    // SAFETY: the distributor is mapped by the boot tables (device block below 1 GiB on virt;
    // the kernel tables map it explicitly); once, on the boot CPU.
    unsafe { platform::gic().init_distributor() };
    init_cpu_interrupts();

    if let Some(own) = own_memory {
        if !(image_start >= own.0 && image_end <= own.1) {
            early_fatal(format_args!(
                "the image at {image_start:#x}..{image_end:#x} is outside the first {} MiB of RAM, which Parapet keeps for itself",
                OWN_REGION_SIZE >> 20
            ));
        }
        // The guest gets what stage 2 can map and the loader does not keep.
        let mut excluded: alloc::vec::Vec<(u64, u64)> = alloc::vec![own];
        excluded.extend(
            dt.reserved()
                .iter()
                .map(|&(s, size)| (s, s.saturating_add(size))),
        );
        crate::guest::ram::record(&dt.memory, &excluded, super::el2::IPA_LIMIT);
    }
    let boot = BootInfo {
        arch: "aarch64",
        platform: isolation::PlatformKind::El2,
        cpus: dt.cpus().len(),
        ram_bytes: dt.memory.ram_bytes(),
        cmdline: dt.bootargs,
    };
    crate::print_banner(&boot);
    log::info!(
        "aarch64: EL{}, GICv{}, counter {} MHz, tick {} Hz, PSCI {:?}",
        registers::current_el() >> 2,
        platform::gic().version(),
        timer::frequency() / 1_000_000,
        TICK_HZ,
        dt.psci
    );

    for r in reserved.ranges() {
        log::debug!("reserved {:#x}..{:#x} ({})", r.start, r.end, r.what);
    }
    let devices = device_ranges(&dt, serial::base());
    let space = kernel_map::build(&dt.memory, &devices, &[])
        .unwrap_or_else(|e| early_fatal(format_args!("building page tables: {e}")));
    // SAFETY: the new tables map all RAM, the image (text executable) and every device in
    // use at the same addresses.
    unsafe { registers::switch_tables(space.root()) };
    crate::install_kernel_space(space);
    log::info!("page tables: RAM identity-mapped XN, image W^X, page 0 unmapped");

    crate::cpus::set_online(0);
    executor::init_cpu(0);

    let my_mpidr = registers::mpidr() & 0xff_00ff_ffff;
    let mut index = 1;
    let mut online = 1;
    for &mpidr in dt.cpus().iter().filter(|&&m| m != my_mpidr) {
        if index == percpu::PER_CPU.len() {
            log::warn!("CPU {mpidr:#x} and later stay off: Parapet tracks {index} CPUs");
            break;
        }
        match start_secondary(dt.psci, mpidr, index) {
            Ok(()) => online += 1,
            Err(e) => log::error!("CPU {mpidr:#x}: {e}"),
        }
        // Consumed even on failure: a CPU that comes up late keeps an identity of its own.
        index += 1;
    }
    log::info!("{online} of {} CPUs online", dt.cpus().len());
    crate::finish_boot(boot, index)
}

/// Parapet's own copy of the device tree: parsed once, out of the loader's reach.
struct DeviceTreeCopy(core::cell::UnsafeCell<[u8; DTB_COPY_MAX]>);
// SAFETY: written once by the boot CPU before any other CPU runs, read-only afterwards.
unsafe impl Sync for DeviceTreeCopy {}
static DTB_COPY: DeviceTreeCopy = DeviceTreeCopy(core::cell::UnsafeCell::new([0; DTB_COPY_MAX]));

/// Copies the used part of the blob at `dtb` into [`DTB_COPY`]; returns the size the loader
/// declared (to reserve) and the copy. `None` if there is no readable blob there.
fn copy_device_tree(dtb: u64) -> Option<(usize, &'static [u8])> {
    use arch::aarch64::fdt::{used_size, HEADER_SIZE};
    let readable = |len: usize| {
        dtb != 0
            && dtb
                .checked_add(len as u64)
                .is_some_and(|end| end <= BOOT_MAPPED_END)
    };
    if !readable(HEADER_SIZE) {
        return None;
    }
    let mut header = [0u8; HEADER_SIZE];
    // SAFETY: [dtb, dtb + 40) is below 4 GiB, which the boot tables map; it is copied once.
    unsafe { core::ptr::copy_nonoverlapping(dtb as *const u8, header.as_mut_ptr(), HEADER_SIZE) };
    let declared = devicetree::header_total_size(&header)?;
    let used = used_size(&header).filter(|&u| u <= DTB_COPY_MAX && readable(u))?;
    // SAFETY: only the boot CPU runs, once, so nothing else touches DTB_COPY; the source range
    // is mapped (checked above) and copied once, then parsed only from our copy.
    let copy = unsafe {
        let buf = &mut *DTB_COPY.0.get();
        buf[..HEADER_SIZE].copy_from_slice(&header);
        core::ptr::copy_nonoverlapping(
            (dtb + HEADER_SIZE as u64) as *const u8,
            buf[HEADER_SIZE..].as_mut_ptr(),
            used - HEADER_SIZE,
        );
        &buf[..used]
    };
    Some((declared, copy))
}

/// The device ranges the kernel tables must map.
fn device_ranges(dt: &devicetree::Platform<'_>, uart: u64) -> alloc::vec::Vec<(u64, u64)> {
    let mut devices = alloc::vec::Vec::from(Gic::from(dt.gic).register_ranges());
    if uart != 0 {
        devices.push((uart, 4096));
    }
    devices
}

fn start_secondary(
    conduit: Option<PsciConduit>,
    mpidr: u64,
    index: usize,
) -> Result<(), &'static str> {
    let conduit = conduit.ok_or("no PSCI in the device tree")?;
    let stack = FRAMES
        .lock()
        .allocate(AP_STACK_SIZE, FRAME_SIZE)
        .ok_or("no frames for a stack")?;
    let record = Box::leak(Box::new(SecondaryBoot {
        ttbr0: registers::ttbr0_el2(),
        stack_top: stack + AP_STACK_SIZE,
        index: index as u64,
    }));
    let record_address = record as *const SecondaryBoot as u64;
    // The secondary reads the record with its MMU and caches off: clean it to memory.
    registers::clean_dcache_range(record_address, core::mem::size_of::<SecondaryBoot>() as u64);
    percpu::PER_CPU[index].mpidr.store(mpidr, Ordering::Relaxed);
    // SAFETY: CPU_ON starts an offline CPU at our secondary entry; the record stays alive.
    let r = unsafe {
        psci::call(
            conduit,
            psci::CPU_ON_64,
            mpidr,
            secondary_entry_point(),
            record_address,
        )
    };
    if r != psci::SUCCESS {
        return Err(if r == psci::ALREADY_ON {
            "already on"
        } else {
            "PSCI CPU_ON failed"
        });
    }
    let deadline = kernel::platform::now_ns() + 2_000_000_000;
    while !crate::cpus::is_online(index) {
        if kernel::platform::now_ns() > deadline {
            return Err("did not come online");
        }
        core::hint::spin_loop();
    }
    Ok(())
}

#[no_mangle]
extern "C" fn aarch64_secondary_start(index: u64) -> ! {
    let index = index as usize;
    // SAFETY: first Rust code on this CPU, with the index the boot CPU gave it alone.
    unsafe {
        exception::install_vectors();
        percpu::install(index, registers::mpidr());
        registers::set_hcr_el2(HCR_EL2);
    }
    registers::isb();
    init_cpu_interrupts();
    let executor = executor::init_cpu(index);
    crate::cpus::set_online(index);
    log::debug!("cpu{index} online, MPIDR {:#x}", registers::mpidr());
    executor.run()
}

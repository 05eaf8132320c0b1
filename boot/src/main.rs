//! The Parapet firmware image.
//!
//! Each architecture's boot path (`x86_64/`, `aarch64/`) brings its CPUs, memory and console
//! up, then hands over to the shared steps here: banner, logging, `parapet: ready`, and the
//! first tasks (the console monitor, or the in-firmware tests in a `selftest` build).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("parapet is firmware for bare metal; build it with `cargo xtask build`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
mod aarch64;
#[cfg(target_os = "none")]
mod boot_info;
#[cfg(target_os = "none")]
mod cpus;
#[cfg(target_os = "none")]
#[cfg_attr(feature = "selftest", allow(dead_code))]
mod guest;
#[cfg(target_os = "none")]
mod kernel_map;
#[cfg(all(target_os = "none", not(feature = "selftest")))]
mod monitor;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod selftest;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod x86_64;

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
use aarch64 as machine;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
use x86_64 as machine;

#[cfg(target_os = "none")]
pub use shared::*;

#[cfg(target_os = "none")]
mod shared {
    use kernel::address_space::AddressSpace;
    use kernel::executor;
    use spin::Mutex;

    use crate::boot_info::BootInfo;

    /// Heap given to the global allocator at boot.
    pub const HEAP_SIZE: u64 = 8 << 20;
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");

    /// The platform detected at boot.
    pub static PLATFORM: spin::Once<isolation::PlatformKind> = spin::Once::new();

    pub fn platform() -> isolation::PlatformKind {
        PLATFORM
            .get()
            .copied()
            .unwrap_or(isolation::PlatformKind::Native)
    }

    /// The address space every CPU runs in.
    pub static KERNEL_SPACE: Mutex<Option<AddressSpace>> = Mutex::new(None);

    /// Records the address space the boot CPU just switched to.
    pub fn install_kernel_space(mut space: AddressSpace) {
        space.set_live();
        *KERNEL_SPACE.lock() = Some(space);
    }

    /// Prints the console contract's first line and starts logging.
    pub fn print_banner(boot: &BootInfo<'_>) {
        let platform = *PLATFORM.call_once(|| boot.platform);
        const MIB: u64 = 1 << 20;
        kernel::println!(
            "parapet {VERSION} arch={} platform={} cpus={} ram={}",
            boot.arch,
            platform.name(),
            boot.cpus,
            (boot.ram_bytes + MIB / 2) / MIB
        );
        kernel::logger::init(kernel::cmdline::log_level(boot.cmdline));
        if !boot.cmdline.is_empty() {
            log::info!("command line: {}", boot.cmdline);
        }
    }

    /// The shared end of boot on the boot CPU: report, announce readiness, run tasks.
    pub fn finish_boot(boot: BootInfo<'_>, online: usize) -> ! {
        let (frames_used, frames_total) = kernel::memory::frame_usage();
        let (heap_used, heap_total) = kernel::memory::heap_usage();
        log::info!(
            "memory: frames {} KiB used of {} KiB, heap {} bytes used of {} KiB",
            frames_used / 1024,
            frames_total / 1024,
            heap_used,
            heap_total / 1024
        );
        kernel::println!("parapet: ready");
        let bsp = executor::on_cpu(0).expect("the boot CPU's executor exists before finish_boot");
        #[cfg(feature = "selftest")]
        bsp.spawn(crate::selftest::run(
            kernel::cmdline::option(boot.cmdline, "parapet.test").map(alloc::string::String::from),
            online,
        ));
        // A hosted guest owns the console's input; otherwise the monitor reads it.
        #[cfg(not(feature = "selftest"))]
        if crate::guest::payload(boot.cmdline).is_some() {
            bsp.spawn(crate::guest::console::forward_input(
                crate::machine::serial::read_byte,
            ));
        } else {
            bsp.spawn(crate::monitor::run(online, boot.cpus));
        }
        #[cfg(all(target_arch = "x86_64", not(feature = "selftest")))]
        if let Some((address, size)) = crate::guest::payload(boot.cmdline) {
            // The guest's TPM comes first: the loader measures into it and describes it.
            crate::guest::tpm::create(kernel::cmdline::option(boot.cmdline, "parapet.tpm"));
            match boot.platform {
                isolation::PlatformKind::HvVtl => {
                    bsp.spawn(crate::machine::hv_vtl::host(address, size, online));
                }
                isolation::PlatformKind::Svm => {
                    bsp.spawn(crate::machine::svm::host(address, size, online));
                }
                isolation::PlatformKind::Native | isolation::PlatformKind::El2 => log::warn!(
                    "a guest payload was given, but this machine offers no way to host it (no VTL interface, no SVM)"
                ),
            }
        }
        #[cfg(all(target_arch = "aarch64", not(feature = "selftest")))]
        if let Some((address, size)) = crate::guest::payload(boot.cmdline) {
            crate::guest::tpm::create(kernel::cmdline::option(boot.cmdline, "parapet.tpm"));
            bsp.spawn(crate::machine::el2::host(address, size, online));
        }
        bsp.run()
    }
}

//! The escape guest: tries what a hostile guest would and prints what it observed, so a test
//! can check that the paravisor held: reads and writes the paravisor's memory, makes the
//! calls only the paravisor may make and bogus ones, tries to restart the CPU it runs on,
//! touches the emulated UART with odd access widths, and spins without exits, as if to
//! starve the paravisor. What each architecture tries is in its module.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("escape is a test guest; `cargo xtask build` builds it for x86_64 and aarch64");
    std::process::exit(2);
}

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
mod aarch64;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
use aarch64 as arch;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod x86_64;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
use x86_64 as arch;

#[cfg(target_os = "none")]
use parapet_test_guests::{exit, println, serial, EXIT_SUCCESS};

#[cfg(target_os = "none")]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    serial::init();
    println!("escape: start");
    arch::run();
    println!("escape: done");
    exit(EXIT_SUCCESS)
}

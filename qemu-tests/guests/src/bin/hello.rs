//! The hello guest: sets COM1 up as a stock driver does, greets through it, and powers off
//! with success.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hello is a VTL0 test guest; `cargo xtask build` builds it for x86_64-unknown-none");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
use parapet_test_guests::{exit, println, serial, EXIT_SUCCESS};

#[cfg(target_os = "none")]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    serial::init();
    println!("Hello from VTL0, through Parapet's emulated COM1.");
    exit(EXIT_SUCCESS)
}

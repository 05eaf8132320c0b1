//! The hello guest: sets COM1 up as a stock driver does, greets through it, starts its second
//! VP (HvCallStartVirtualProcessor), which greets too, and powers off with success. With one
//! VP it says so and still succeeds.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hello is a VTL0 test guest; `cargo xtask build` builds it for x86_64-unknown-none");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
use parapet_test_guests::{exit, hypercall, println, serial, smp, EXIT_FAILURE, EXIT_SUCCESS};

#[cfg(target_os = "none")]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    serial::init();
    println!("Hello from VTL0, through Parapet's emulated COM1.");
    if !hypercall::init() {
        println!("hello: no hypercall page, so no second VP");
        exit(EXIT_SUCCESS)
    }
    match smp::start_vp(1, second_vp) {
        0 if smp::wait_for_second_vp() => {}
        0 => {
            println!("hello: VP 1 was started but never ran");
            exit(EXIT_FAILURE)
        }
        status => println!("hello: no second VP (StartVirtualProcessor: status {status:#x})"),
    }
    exit(EXIT_SUCCESS)
}

/// Where VP 1 starts, on its own stack.
#[cfg(target_os = "none")]
extern "C" fn second_vp() -> ! {
    println!("Hello from VTL0's second VP.");
    smp::report_and_park()
}

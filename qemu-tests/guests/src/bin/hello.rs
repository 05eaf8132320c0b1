//! The hello guest: sets its UART up as a stock driver does, greets through it, starts its
//! second VP, which greets too, and powers off with success. With one VP it says so and still
//! succeeds.
//!
//! x86_64: COM1, the second VP by HvCallStartVirtualProcessor. aarch64: the PL011, PSCI's
//! version, the second CPU by CPU_ON (MPIDR 1). The greeting is the same on both, so tests
//! can share what they check.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hello is a test guest; `cargo xtask build` builds it for x86_64 and aarch64");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
use parapet_test_guests::{exit, println, serial, smp, EXIT_FAILURE, EXIT_SUCCESS};

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    use parapet_test_guests::hypercall;

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

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    use parapet_test_guests::psci;

    serial::init();
    println!("Hello from VTL0, through Parapet's emulated COM1.");
    let version = psci::version();
    println!("hello: PSCI version {}.{}", version >> 16, version & 0xffff);
    // SAFETY: no other CPU has been started on the second stack.
    match unsafe { smp::start_vp(1, second_vp) } {
        psci::SUCCESS if smp::wait_for_second_vp() => {}
        psci::SUCCESS => {
            println!("hello: CPU 1 was started but never ran");
            exit(EXIT_FAILURE)
        }
        status => println!("hello: no second VP (CPU_ON: status {status})"),
    }
    exit(EXIT_SUCCESS)
}

/// Where VP 1 starts, on its own stack.
#[cfg(target_os = "none")]
extern "C" fn second_vp() -> ! {
    println!("Hello from VTL0's second VP.");
    smp::report_and_park()
}

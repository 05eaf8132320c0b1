//! The bench guest: reads its UART's status register (COM1's LSR, the PL011's FR) 1000 times,
//! each read a round trip guest → Parapet's UART → guest, then powers off. `cargo xtask bench
//! vtl` and `bench hosted` take the time per round trip from Parapet's report at power-off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("bench is a VTL0 test guest; `cargo xtask build` builds it for x86_64-unknown-none");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
use parapet_test_guests::{exit, serial, EXIT_SUCCESS};

#[cfg(target_os = "none")]
const ROUND_TRIPS: u32 = 1000;

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    for _ in 0..ROUND_TRIPS {
        core::hint::black_box(serial::line_status());
    }
    exit(EXIT_SUCCESS)
}

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    for _ in 0..ROUND_TRIPS {
        core::hint::black_box(serial::flags());
    }
    exit(EXIT_SUCCESS)
}

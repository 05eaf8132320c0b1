//! The panic handler: message and location on the console, then a failure exit.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use arch::ExitStatus;

use crate::{console, platform};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::SeqCst) {
        // A second panic (another CPU, or while reporting): just stop.
        platform::exit(ExitStatus::Failure);
    }
    let cpu = platform::cpu_index();
    match info.location() {
        Some(at) => console::emergency_write_fmt(format_args!(
            "\nPANIC on cpu{cpu} at {}:{}:{}: {}\n",
            at.file(),
            at.line(),
            at.column(),
            info.message()
        )),
        None => {
            console::emergency_write_fmt(format_args!("\nPANIC on cpu{cpu}: {}\n", info.message()))
        }
    }
    platform::exit(ExitStatus::Failure)
}

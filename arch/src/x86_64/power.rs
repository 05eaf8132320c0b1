//! Ending a run so that the machine's exit status tells success from failure.

use super::instructions::{halt_forever, outl};
use crate::ExitStatus;

/// QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`):
/// writing v exits QEMU with status (v << 1) | 1.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Exits QEMU with status 33.
pub const DEBUG_EXIT_SUCCESS: u32 = 0x10;
/// Exits QEMU with status 35.
pub const DEBUG_EXIT_FAILURE: u32 = 0x11;

/// Stops the machine. Under QEMU with the debug-exit device the process ends with a status
/// that says which; elsewhere the CPU halts with interrupts off.
pub fn exit(status: ExitStatus) -> ! {
    let value = match status {
        ExitStatus::Success => DEBUG_EXIT_SUCCESS,
        ExitStatus::Failure => DEBUG_EXIT_FAILURE,
    };
    // SAFETY: port 0xf4 is reserved for the debug-exit device; where it is absent the write
    // goes nowhere. Nothing else in Parapet uses the port.
    unsafe { outl(DEBUG_EXIT_PORT, value) };
    halt_forever()
}

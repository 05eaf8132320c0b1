//! The guest Parapet hosts, whatever the architecture and isolation backend: its RAM, its
//! payload, its console output, and the log lines it may cause. The architecture's own guest
//! layer (`x86_64::guest`) and the backends build on this.

pub mod console;
pub mod elf_load;
pub mod log_budget;
pub mod ram;

use spin::Once;

/// The guest's payload staged in its RAM by the loader, (address, size): a boot module.
static PAYLOAD: Once<(u64, u64)> = Once::new();

/// Records the payload the loader staged.
pub fn set_payload(address: u64, size: u64) {
    PAYLOAD.call_once(|| (address, size));
}

/// The guest's payload: the loader's module, or `parapet.vtl0=ADDRESS,SIZE` on the command
/// line (how vmm-lite's `--vtl0` names it).
pub fn payload(cmdline: &str) -> Option<(u64, u64)> {
    PAYLOAD.get().copied().or_else(|| payload_option(cmdline))
}

/// `parapet.vtl0=ADDRESS,SIZE` (hexadecimal with `0x`, or decimal).
fn payload_option(cmdline: &str) -> Option<(u64, u64)> {
    let value = kernel::cmdline::option(cmdline, "parapet.vtl0")?;
    let number = |s: &str| match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    };
    let (address, size) = value.split_once(',')?;
    Some((number(address)?, number(size)?))
}

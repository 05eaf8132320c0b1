//! The guest Parapet hosts, whatever the architecture and isolation backend: its RAM, its
//! payload, its console output, and the log lines it may cause. The architecture's own guest
//! layer (`x86_64::guest`) and the backends build on this.

pub mod bundle;
pub mod console;
pub mod doorbell;
pub mod elf_load;
pub mod log_budget;
pub mod ram;
pub mod tpm;

use spin::Once;

/// A mean time per round trip: `ticks` of a `hz` clock over `trips`, for the power-off
/// reports the benchmarks read. Shown in µs with one decimal.
#[derive(Clone, Copy, Debug)]
pub struct PerTrip {
    ns: u64,
}

impl PerTrip {
    pub fn new(ticks: u64, hz: u64, trips: u64) -> Self {
        let ns =
            u128::from(ticks) * 1_000_000_000 / u128::from(hz.max(1)) / u128::from(trips.max(1));
        Self {
            ns: u64::try_from(ns).unwrap_or(u64::MAX),
        }
    }

    /// Whole microseconds (hv_vtl's report).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn micros(self) -> u64 {
        self.ns / 1000
    }
}

impl core::fmt::Display for PerTrip {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.ns / 1000, self.ns % 1000 / 100)
    }
}

/// Stops the machine with the guest's verdict.
pub fn power_off(success: bool) -> ! {
    kernel::platform::exit(if success {
        arch::ExitStatus::Success
    } else {
        arch::ExitStatus::Failure
    })
}

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

//! SMCCC calls (Arm DEN 0028: function id in x0, arguments in x1-x3, result in x0) and the
//! PSCI functions the guests use (Arm DEN 0022, §5), by HVC: the conduit a hypervisor
//! offers its guest (Parapet at EL2, or QEMU's own PSCI when the guest runs at EL1).

use core::arch::asm;

pub const VERSION: u32 = 0x8400_0000;
pub const CPU_OFF: u32 = 0x8400_0002;
pub const CPU_ON: u32 = 0xc400_0003;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const SYSTEM_RESET: u32 = 0x8400_0009;
pub const FEATURES: u32 = 0x8400_000a;

/// PSCI return codes (DEN 0022 table 5-2).
pub const SUCCESS: i32 = 0;
pub const NOT_SUPPORTED: i32 = -1;
pub const INVALID_PARAMETERS: i32 = -2;
pub const DENIED: i32 = -3;
pub const ALREADY_ON: i32 = -4;

/// The instruction a call is made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

/// Makes SMCCC call `function` with `args` in x1-x3 by `conduit` (immediate 0); returns x0.
/// x1-x17 are taken as clobbered, as SMCCC v1.0 allows.
///
/// # Safety
/// The call's effect (powering CPUs or the system, anything a bogus call might do) must be
/// the caller's to own.
pub unsafe fn call(conduit: Conduit, function: u32, args: [u64; 3]) -> u64 {
    let mut x0 = u64::from(function);
    macro_rules! smccc {
        ($insn:literal) => {
            // SAFETY: the caller owns the call's effect; every register SMCCC lets the
            // callee change is declared clobbered.
            unsafe {
                asm!(
                    $insn,
                    inout("x0") x0,
                    inout("x1") args[0] => _,
                    inout("x2") args[1] => _,
                    inout("x3") args[2] => _,
                    out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                    out("x8") _, out("x9") _, out("x10") _, out("x11") _,
                    out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                    out("x16") _, out("x17") _,
                    options(nostack)
                )
            }
        };
    }
    match conduit {
        Conduit::Hvc => smccc!("hvc #0"),
        Conduit::Smc => smccc!("smc #0"),
    }
    x0
}

/// A PSCI result: an int32 in w0 (DEN 0022 §5.2.2).
pub fn status(x0: u64) -> i32 {
    x0 as u32 as i32
}

/// PSCI_VERSION: major version in bits 31:16, minor in 15:0.
pub fn version() -> u32 {
    // SAFETY: PSCI_VERSION only reports.
    unsafe { call(Conduit::Hvc, VERSION, [0; 3]) as u32 }
}

/// PSCI_FEATURES: whether `function` is implemented (0 or feature flags) or NOT_SUPPORTED.
pub fn features(function: u32) -> i32 {
    // SAFETY: PSCI_FEATURES only reports.
    status(unsafe { call(Conduit::Hvc, FEATURES, [u64::from(function), 0, 0]) })
}

/// CPU_ON: starts the CPU with affinity `mpidr` at EL1 at `entry`, MMU off, with `context`
/// in x0.
///
/// # Safety
/// `entry` must be code that can run there, on a stack of its own.
pub unsafe fn cpu_on(mpidr: u64, entry: u64, context: u64) -> i32 {
    // SAFETY: the caller vouches for `entry`.
    status(unsafe { call(Conduit::Hvc, CPU_ON, [mpidr, entry, context]) })
}

/// CPU_OFF: powers this CPU down; returns only if refused.
pub fn cpu_off() -> i32 {
    // SAFETY: this CPU stops; nothing on it is waited for.
    status(unsafe { call(Conduit::Hvc, CPU_OFF, [0; 3]) })
}

/// SYSTEM_OFF, or SYSTEM_RESET when `success` is false; spins if the call returns.
pub fn power_off(success: bool) -> ! {
    let function = if success { SYSTEM_OFF } else { SYSTEM_RESET };
    // SAFETY: ending the run is what the caller asks for.
    unsafe { call(Conduit::Hvc, function, [0; 3]) };
    loop {
        core::hint::spin_loop();
    }
}

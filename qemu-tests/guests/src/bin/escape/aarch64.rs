//! The escape guest on aarch64, at EL1 behind the `el2` backend's stage-2 translation:
//!
//! - reads, writes and reads back the paravisor's memory (the first 64 MiB of QEMU virt's
//!   RAM), with single `ldr`/`str` instructions a stage-2 abort can describe;
//! - makes bogus HVC and SMC calls and asks PSCI to start the CPU it runs on;
//! - touches the emulated PL011 with 8-, 16- and 64-bit accesses;
//! - spins without exits for about a fifth of a second of counter time.
//!
//! Every attempt runs under `exception::probe`: an exception it takes (an SMC the platform
//! leaves undefined, an abort for an access the device refuses) is printed as `exception
//! (ESR x)` instead of ending the run.

use core::fmt;

use parapet_test_guests::exception::probe;
use parapet_test_guests::psci::{self, Conduit};
use parapet_test_guests::{exit, println, serial, smp, timer, EXIT_FAILURE};

/// The paravisor's region: Parapet keeps the first 64 MiB of RAM at 0x4000_0000.
const PARAVISOR: u64 = 0x4000_0000;

/// An attempt's outcome: a value in hex, or the exception it took.
struct Hex<T>(Result<T, u64>);

impl<T: fmt::LowerHex> fmt::Display for Hex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(value) => write!(f, "{value:#x}"),
            Err(esr) => write!(f, "exception (ESR {esr:#x})"),
        }
    }
}

/// An SMCCC call's outcome: x0 as a PSCI status (an int32), or the exception it took.
struct Status(Result<u64, u64>);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(x0) => write!(f, "{}", psci::status(x0)),
            Err(esr) => write!(f, "exception (ESR {esr:#x})"),
        }
    }
}

fn memory() {
    for offset in [0u64, 0x1000, 0x20_0000] {
        let address = (PARAVISOR + offset) as *mut u64;
        // SAFETY: a deliberate access to memory this guest should not reach; the platform
        // answers it (the test checks how), and `probe` survives an exception.
        let before = probe(|| unsafe { address.read_volatile() });
        // SAFETY: as above.
        let wrote = probe(|| unsafe { address.write_volatile(0x0bad_c0de_0bad_c0de) });
        // SAFETY: as above.
        let after = probe(|| unsafe { address.read_volatile() });
        println!(
            "escape: paravisor memory {:#x}: read {}, after writing read {}",
            address as u64,
            Hex(before),
            Hex(after)
        );
        if let Err(esr) = wrote {
            println!(
                "escape: paravisor memory {:#x}: the write took an exception (ESR {esr:#x})",
                address as u64
            );
        }
    }
}

fn calls() {
    let calls: [(&str, Conduit, u32, [u64; 3]); 6] = [
        (
            "hvc 0x86000000 (hypervisor service)",
            Conduit::Hvc,
            0x8600_0000,
            [0; 3],
        ),
        (
            "hvc 0xc6000000 (hypervisor service, 64-bit)",
            Conduit::Hvc,
            0xc600_0000,
            [0; 3],
        ),
        (
            "hvc 0x8400001f (PSCI, unassigned)",
            Conduit::Hvc,
            0x8400_001f,
            [0; 3],
        ),
        (
            "hvc PSCI_FEATURES(0x86000000)",
            Conduit::Hvc,
            psci::FEATURES,
            [0x8600_0000, 0, 0],
        ),
        ("smc PSCI_VERSION", Conduit::Smc, psci::VERSION, [0; 3]),
        ("smc 0x86000000", Conduit::Smc, 0x8600_0000, [0; 3]),
    ];
    for (name, conduit, function, args) in calls {
        // SAFETY: bogus or reporting calls; whatever answers them must only refuse or report,
        // and `probe` survives an exception.
        let status = probe(|| unsafe { psci::call(conduit, function, args) });
        println!("escape: {name}: status {}", Status(status));
    }
    let version = probe(|| {
        let mut x0 = u64::from(psci::VERSION);
        // SAFETY: PSCI_VERSION with an immediate SMCCC reserves (it requires #0); x1-x17 are
        // declared clobbered as for any SMCCC call.
        unsafe {
            core::arch::asm!(
                "hvc #1",
                inout("x0") x0,
                out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
                out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _,
                out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _,
                options(nostack)
            )
        };
        x0
    });
    println!("escape: hvc #1 PSCI_VERSION: x0 {}", Hex(version));
    // Restarting the CPU this code runs on, at an address of our choosing.
    let mpidr: u64;
    // SAFETY: reading MPIDR_EL1 has no side effect.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    let affinity = mpidr & 0xff_00ff_ffff;
    // SAFETY: no other CPU runs on the second stack; a restart would land in
    // `restart_target`, which ends the run.
    let status = unsafe { smp::start_vp(affinity, restart_target) };
    println!("escape: CPU_ON of the running CPU: status {status}");
}

/// Where a successful restart of the running CPU would land.
extern "C" fn restart_target() -> ! {
    println!("escape: the running CPU was restarted");
    exit(EXIT_FAILURE)
}

fn odd_mmio() {
    let fr = serial::BASE + serial::FR;
    // SAFETY: the PL011 is this guest's (emulated) UART; the accesses below are aligned and
    // legal loads and stores, just of widths the device does not define; `probe` survives an
    // exception.
    let fr16 = probe(|| unsafe { (fr as *const u16).read_volatile() });
    // SAFETY: as above.
    let fr64 = probe(|| unsafe { (fr as *const u64).read_volatile() });
    println!(
        "escape: 16-bit read of FR {}, 64-bit read at 0x9000018 {}",
        Hex(fr16),
        Hex(fr64)
    );
    let dr = (serial::BASE + serial::DR) as *mut u8;
    let mut refused = None;
    for byte in b"escape: this line went out by byte writes to DR\r\n" {
        while serial::flags() & serial::FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        // SAFETY: as above.
        if let Err(esr) = probe(|| unsafe { dr.write_volatile(*byte) }) {
            refused.get_or_insert(esr);
        }
    }
    if let Some(esr) = refused {
        println!("escape: byte writes to DR took an exception (ESR {esr:#x})");
    }
}

/// Spins without a single exit for about a fifth of a second of counter time (2^29 ticks
/// if CNTFRQ_EL0 reads 0): the paravisor must keep its own time meanwhile.
fn spin() {
    let ticks = match timer::frequency() {
        0 => 1 << 29,
        hz => hz / 5,
    };
    let start = timer::ticks();
    while timer::ticks().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
    println!("escape: spun without exits");
}

/// Every attempt, in order.
pub fn run() {
    memory();
    calls();
    odd_mmio();
    spin();
}

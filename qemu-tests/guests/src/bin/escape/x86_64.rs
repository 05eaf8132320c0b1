//! The escape guest on x86_64, in VTL0 or under the svm backend:
//!
//! - reads and writes the paravisor's memory (its first page, 1 MiB), plainly and as the
//!   destination of a string IN;
//! - makes the hypercalls only VTL2 may make, and bogus ones, and tries to restart the VP it
//!   runs on;
//! - touches the intercepted COM1 with 16- and 32-bit accesses and string forms;
//! - spins without exits, as if to starve the paravisor.

use parapet_test_guests::{exit, hypercall, port, println, smp};

/// The paravisor's region starts here (abi::igvm_layout::PARAVISOR_BASE).
const PARAVISOR: u64 = 0x10_0000;
const COM1: u16 = 0x3f8;

fn memory() {
    for offset in [0u64, 0x1000, 0x20_0000] {
        let address = (PARAVISOR + offset) as *mut u64;
        // SAFETY: a deliberate access to memory this guest should not reach; the platform
        // answers it (the test checks how).
        let before = unsafe { address.read_volatile() };
        // SAFETY: as above.
        unsafe { address.write_volatile(0x0bad_c0de_0bad_c0de) };
        // SAFETY: as above.
        let after = unsafe { address.read_volatile() };
        println!(
            "escape: paravisor memory {:#x}: read {before:#x}, after writing read {after:#x}",
            address as u64
        );
    }
    // A string IN aimed at the paravisor: the paravisor must not write there for us.
    // SAFETY: as above.
    let target = unsafe { core::slice::from_raw_parts_mut(PARAVISOR as *mut u8, 4) };
    // SAFETY: COM1's LSR is readable.
    unsafe { port::rep_insb(COM1 + 5, target) };
    println!("escape: rep insb into paravisor memory done");
}

fn hypercalls() {
    if !hypercall::init() {
        println!("escape: no hypercall page");
        return;
    }
    // SAFETY: reading an MSR that does not exist; the paravisor answers (hardware: #GP).
    let missing = unsafe { hypercall::rdmsr(0x4000_00ff) };
    println!("escape: rdmsr 0x400000ff -> {missing:#x}");
    let partition_self = u64::MAX.to_le_bytes();
    let mut enable_vp = [0u8; 240];
    enable_vp[..8].copy_from_slice(&partition_self);
    enable_vp[8..12].copy_from_slice(&0xffff_fffeu32.to_le_bytes());
    let mut intercept = [0u8; 24];
    intercept[..8].copy_from_slice(&partition_self);
    intercept[8..12].copy_from_slice(&3u32.to_le_bytes()); // read|write
    intercept[16..24].copy_from_slice(&0xf4u64.to_le_bytes()); // the exit port
    let mut get_vtl0 = [0u8; 20];
    get_vtl0[..8].copy_from_slice(&partition_self);
    get_vtl0[8..12].copy_from_slice(&0xffff_fffeu32.to_le_bytes());
    get_vtl0[16..20].copy_from_slice(&0x0009_0003u32.to_le_bytes()); // VpIndex
    let mut get_vtl2 = [0u8; 20];
    get_vtl2[..8].copy_from_slice(&partition_self);
    get_vtl2[8..12].copy_from_slice(&0xffff_fffeu32.to_le_bytes());
    get_vtl2[12] = 0x12; // target VTL 2
    get_vtl2[16..20].copy_from_slice(&0x0009_0003u32.to_le_bytes()); // VpIndex
    let calls: [(&str, u64, &[u8]); 5] = [
        ("EnablePartitionVtl", 0x000d, &partition_self),
        ("EnableVpVtl", 0x000f, &enable_vp),
        ("InstallIntercept", 0x004d, &intercept),
        ("GetVpRegisters(VTL2)", 0x0050 | (1 << 32), &get_vtl2),
        ("bogus 0x7777", 0x7777, &[]),
    ];
    for (name, control, input) in calls {
        let status = hypercall::call(control, input) & 0xffff;
        println!("escape: hypercall {name}: status {status:#x}");
    }
    // The hypervisor writing for us into the paravisor: a call's output page there, and the
    // hypercall page moved there.
    let status = hypercall::call_with_output(0x0050 | (1 << 32), &get_vtl0, PARAVISOR) & 0xffff;
    println!("escape: GetVpRegisters with its output in paravisor memory: status {status:#x}");
    // SAFETY: an MSR write the paravisor mediates; the test checks it is refused.
    unsafe { hypercall::write_msr(0x4000_0001, PARAVISOR | 1) };
    println!("escape: hypercall page moved into paravisor memory (asked)");
    // Restarting the VP this code runs on, at an address of our choosing.
    let status = smp::start_vp(0, restart_target);
    println!("escape: StartVirtualProcessor on the running VP 0: status {status:#x}");
}

/// Where a successful restart of VP 0 would land.
extern "C" fn restart_target() -> ! {
    println!("escape: VP 0 was restarted");
    exit(parapet_test_guests::EXIT_FAILURE)
}

fn odd_ports() {
    // SAFETY: COM1 is this guest's (emulated) UART; every access below is legal x86, just
    // unusual for an 8-bit device.
    unsafe {
        let lsr_word = port::inw(COM1 + 5);
        let dword = port::inl(COM1);
        port::outl(COM1 + 7, 0x5a5a_5a5a); // 32 bits at the scratch register, past COM1's end
        let scratch = port::inb(COM1 + 7);
        println!(
            "escape: inw LSR {lsr_word:#x}, inl RBR {dword:#x}, scratch after outl {scratch:#x}"
        );
        port::rep_outsb(COM1, b"escape: this line went out by rep outsb\r\n");
        let mut lsr = [0u8; 4];
        port::rep_insb(COM1 + 5, &mut lsr);
        println!("escape: rep insb of LSR: {lsr:02x?}");
    }
}

/// Spins without a single exit for about 2^29 TSC cycles (a fifth of a second at 2.5 GHz):
/// the paravisor must keep its own time meanwhile.
fn spin() {
    let tsc = || {
        let (low, high): (u32, u32);
        // SAFETY: rdtsc only reads the time-stamp counter.
        unsafe {
            core::arch::asm!("rdtsc", out("eax") low, out("edx") high, options(nomem, nostack))
        };
        (u64::from(high) << 32) | u64::from(low)
    };
    let start = tsc();
    while tsc().wrapping_sub(start) < 1 << 29 {
        core::hint::spin_loop();
    }
    println!("escape: spun without exits");
}

/// Every attempt, in order.
pub fn run() {
    memory();
    hypercalls();
    odd_ports();
    spin();
}

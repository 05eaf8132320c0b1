//! Debian's stock Linux kernel as Parapet's guest: the svm backend under QEMU TCG boots it with
//! the busybox initramfs (`cargo xtask kernels`, `cargo xtask initramfs`; both fetched from
//! Debian once and cached), handed over as one guest bundle in the PVH module. Its /init
//! reports what Linux found (`parapet-init: ...` lines) and powers off through ACPI.

use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_tests::linux::linux_boot_problems;
use xtask::build;
use xtask::qemu::{Accel, Machine, Verdict};
use xtask::{Arch, Flavor};

/// A boot to /init takes some 15 s alone under TCG; the machine may be busy.
const TIMEOUT: Duration = Duration::from_secs(300);
const CMDLINE: &str = "console=ttyS0 panic=-1";
const CPUS: u32 = 2;
/// The CPUs Linux must bring up, as /sys/devices/system/cpu/online lists them: every one the
/// machine has.
const EXPECTED_ONLINE: &str = "0-1";

fn svm_boots_debian_linux_to_its_init() -> Result<(), Failed> {
    let error = |e: anyhow::Error| format!("{e:#}");
    let arch = Arch::X86_64;
    let (kernel, initramfs) = xtask::linux::debian_guest(arch).map_err(error)?;
    let bundle = xtask::linux::bundle_path("test-svm-linux");
    xtask::linux::write_bundle(arch, &kernel, Some(&initramfs), CMDLINE, &bundle).map_err(error)?;
    let machine = Machine {
        arch,
        accel: Accel::Tcg,
        image: build::firmware(arch, Flavor::Normal).map_err(error)?,
        cpus: CPUS,
        memory_mib: 512,
        cmdline: None,
        gdb: false,
        gic_version: 3,
        guest: Some(bundle),
    };
    let run = machine.run_timed(None, TIMEOUT).map_err(error)?;
    let mut problems = Vec::new();
    if run.verdict != Verdict::Success {
        problems.push(format!("verdict {:?}, wanted Success", run.verdict));
    }
    problems.extend(linux_boot_problems(&run.console, EXPECTED_ONLINE));
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}\n--- console ---\n{}\n--- the problems again ---\n{}",
        problems.join("\n"),
        run.output,
        problems.join("\n")
    )
    .into())
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![Trial::test(
        "svm_boots_debian_linux_to_its_init",
        svm_boots_debian_linux_to_its_init,
    )];
    libtest_mimic::run(&args, trials).exit();
}

//! Debian's stock Linux kernel as Parapet's guest under QEMU TCG, on both architectures: the
//! svm backend on x86_64 and the el2 backend on aarch64 boot it with the busybox initramfs
//! (`cargo xtask kernels`, `cargo xtask initramfs`; both fetched from Debian once and cached),
//! handed over as one guest bundle (the PVH module; the device tree's initrd). Its /init
//! reports what Linux found (`parapet-init: ...` lines; on arm64 first loading the modules of
//! the TPM's driver), reads a line typed on the console, and powers off (ACPI S5; PSCI
//! SYSTEM_OFF). On both, the guest's TPM PCRs must be what Parapet measured of the boot.
//!
//! On x86_64 the same kernel boots twice: as Debian ships it (a bzImage, through its
//! decompressor) and as the vmlinux inside it (entered at `startup_64`), the form the hv_vtl
//! test gives a software KVM.

use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_tests::linux::{eventlog_pcrs, expected_pcrs, init_report, linux_boot_problems, Expected};
use xtask::build;
use xtask::qemu::{Accel, Machine, Verdict, Watch};
use xtask::{Arch, Flavor};

/// A boot to /init takes some 20 s alone under TCG; the machine may be busy.
const TIMEOUT: Duration = Duration::from_secs(300);
const CPUS: u32 = 2;
/// The CPUs Linux must bring up, as /sys/devices/system/cpu/online lists them: every one the
/// machine has.
const EXPECTED_ONLINE: &str = "0-1";
/// /init's prompt, and what the test types at it.
const PROMPT: &str = "parapet-init: type a line";
const TYPED: &str = "hello parapet";

/// Which form of Debian's kernel a test boots.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// As packaged: a bzImage, an arm64 Image.
    Packaged,
    /// The vmlinux inside the bzImage (x86_64).
    Uncompressed,
}

/// Boots Debian's kernel under Parapet on `arch` and checks the console.
fn boots_debian_linux_to_its_init(arch: Arch, form: Form) -> Result<(), Failed> {
    let error = |e: anyhow::Error| format!("{e:#}");
    let cmdline = format!("{} panic=-1", xtask::linux::default_cmdline(arch));
    let (packaged, initramfs) = xtask::linux::debian_guest(arch).map_err(error)?;
    let (kernel, name) = match form {
        Form::Packaged => (packaged, format!("test-linux-{arch}")),
        Form::Uncompressed => (
            xtask::kernels::vmlinux_of(&packaged).map_err(error)?,
            format!("test-vmlinux-{arch}"),
        ),
    };
    let bundle = xtask::linux::bundle_path(&name);
    xtask::linux::write_bundle(arch, &kernel, Some(&initramfs), &cmdline, &bundle)
        .map_err(error)?;
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
    let watch = Watch {
        input_after: Some(PROMPT),
        ..Watch::default()
    };
    let run = machine
        .run_watching(watch, Some(&format!("{TYPED}\n")), TIMEOUT)
        .map_err(error)?;
    let mut problems = Vec::new();
    if run.verdict != Verdict::Success {
        problems.push(format!("verdict {:?}, wanted Success", run.verdict));
    }
    let expected = Expected {
        online: EXPECTED_ONLINE,
        typed: TYPED,
    };
    problems.extend(linux_boot_problems(arch, &run.console, &expected));
    // The guest's TPM holds what Parapet measured: the same files, hashed here. x86's kernel
    // has the TPM's driver built in; arm64's has it once /init has loaded its modules.
    let read = |path: &std::path::Path| std::fs::read(path).map_err(|e| e.to_string());
    let wanted = expected_pcrs(&read(&kernel)?, &read(&initramfs)?, cmdline.as_bytes());
    let init = init_report(&run.console);
    let seen = init.tpm_pcrs;
    if seen != wanted {
        problems.push(format!(
            "the guest's TPM PCRs (SHA-256) are {seen:?}, Parapet's measurements of the boot give {wanted:?}"
        ));
    }
    // The event log Linux took from the platform replays, in tpm2-tools' hands, to the PCRs
    // the TPM holds: what a remote verifier checks a quote against.
    match init.tpm_event_log {
        Some(Some(log)) => match eventlog_pcrs(&log) {
            Ok(replayed) if replayed == seen => {}
            Ok(replayed) => problems.push(format!(
                "tpm2_eventlog replays the guest's event log to SHA-256 PCRs {replayed:?}, the TPM holds {seen:?}"
            )),
            Err(e) => problems.push(e),
        },
        Some(None) => problems.push("Linux found no TPM event log (tpm-eventlog none)".into()),
        None => problems.push("/init printed no tpm-eventlog line".into()),
    }
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
    let trials = vec![
        Trial::test("svm_boots_debian_linux_to_its_init", || {
            boots_debian_linux_to_its_init(Arch::X86_64, Form::Packaged)
        }),
        Trial::test("svm_boots_debian_vmlinux_to_its_init", || {
            boots_debian_linux_to_its_init(Arch::X86_64, Form::Uncompressed)
        }),
        Trial::test("el2_boots_debian_linux_to_its_init", || {
            boots_debian_linux_to_its_init(Arch::Aarch64, Form::Packaged)
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}

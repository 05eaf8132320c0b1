//! Parapet as the hypervisor under QEMU TCG's nested AMD-V (the `svm` backend): the test
//! guests arrive as the PVH module and run under nested paging, with the same devices and
//! the same containment as in VTL0 under `hv_vtl`.

use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_tests::{banner, escape_was_contained, guest_said, number_after};
use xtask::build::{self, Guest};
use xtask::qemu::{Accel, Machine, Run, Verdict};
use xtask::{Arch, Flavor};

const TIMEOUT: Duration = Duration::from_secs(180);

/// Parapet under QEMU TCG (`-cpu max` offers SVM with nested paging) hosting `payload`.
fn run_payload(payload: PathBuf) -> Result<Run, Failed> {
    let error = |e: anyhow::Error| format!("{e:#}");
    let machine = Machine {
        arch: Arch::X86_64,
        accel: Accel::Tcg,
        image: build::firmware(Arch::X86_64, Flavor::Normal).map_err(error)?,
        cpus: 2,
        memory_mib: 256,
        cmdline: None,
        gdb: false,
        gic_version: 3,
        guest: Some(payload),
    };
    Ok(machine.run_timed(None, TIMEOUT).map_err(error)?)
}

fn run_guest(guest: Guest) -> Result<Run, Failed> {
    build::guests().map_err(|e| format!("{e:#}"))?;
    run_payload(build::guest_path(guest))
}

fn check(cond: bool, what: &str, output: &str) -> Result<(), Failed> {
    qemu_tests::check(cond, what, output).map_err(Failed::from)
}

fn hello() -> Result<(), Failed> {
    let run = run_guest(Guest::Hello)?;
    let (console, output) = (&run.console, &run.output);
    let banner = banner(output).map_err(|e| format!("{e}\n{output}"))?;
    check(
        banner.platform == "svm",
        "the banner does not say platform=svm",
        output,
    )?;
    check(
        guest_said(
            console,
            "guest",
            "Hello from VTL0, through Parapet's emulated COM1.",
        ),
        "the guest's greeting did not come through COM1",
        output,
    )?;
    // No Hyper-V interface here: the guest finds no hypercall page and says so.
    check(
        guest_said(
            console,
            "guest",
            "hello: no hypercall page, so no second VP",
        ),
        "the guest did not find the machine it expected",
        output,
    )?;
    check(
        console.contains("svm: the guest powered off (success) after "),
        "Parapet did not see the guest power off",
        output,
    )?;
    check(
        run.verdict == Verdict::Success,
        &format!("verdict {:?}, wanted Success", run.verdict),
        output,
    )
}

fn escape() -> Result<(), Failed> {
    let run = run_guest(Guest::Escape)?;
    let (console, output) = (&run.console, &run.output);
    escape_was_contained(console, "guest", output)?;
    check(
        run.verdict == Verdict::Success,
        &format!("verdict {:?}, wanted Success", run.verdict),
        output,
    )?;
    // Parapet's tick ends the guest's runs while it spins (the INTR intercept).
    let interrupts = number_after(console, " exits and ");
    check(
        interrupts.is_some_and(|n| n > 0),
        &format!("{interrupts:?} physical interrupts ended the guest's runs, wanted some"),
        output,
    )?;
    // The Hyper-V MSRs do not exist here: Parapet answers them by its policy and logs it.
    check(
        console.contains("svm: the guest wrote 0x8000000000000000 to MSR 0x40000000, which is not offered; ignored")
            && guest_said(console, "guest", "escape: no hypercall page"),
        "the Hyper-V MSRs were not answered by the shared MSR policy",
        output,
    )
}

/// A payload that is no ELF stops Parapet with failure and a reason.
fn bad_payload() -> Result<(), Failed> {
    let not_elf = std::env::temp_dir().join(format!("parapet-svm-not-elf-{}", std::process::id()));
    std::fs::write(&not_elf, b"MZ this is not an ELF file").map_err(|e| e.to_string())?;
    let run = run_payload(not_elf.clone());
    std::fs::remove_file(&not_elf).ok();
    let run = run?;
    check(
        run.verdict == Verdict::Failure
            && run.output.contains(
                "svm: guest not started: loading the guest: the payload is not a usable ELF: not an ELF file",
            ),
        &format!(
            "verdict {:?}: a bad payload must stop Parapet with failure and say why",
            run.verdict
        ),
        &run.output,
    )
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("svm_hello_prints_through_parapet_com1", hello),
        Trial::test("svm_escape_attempts_are_contained_and_logged", escape),
        Trial::test("svm_bad_payload_is_refused_with_a_reason", bad_payload),
    ];
    libtest_mimic::run(&args, trials).exit();
}

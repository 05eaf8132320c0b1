//! Debian's stock x86_64 kernel in VTL0, under Parapet in VTL2 on vmm-lite (the hv_vtl
//! backend on KVM), with the initramfs the svm test boots.
//!
//! The kernel goes in uncompressed: the vmlinux inside Debian's bzImage, entered at its own
//! `startup_64` (`abi::vmlinux`; the svm test `svm_boots_debian_vmlinux` boots the same file
//! through the same loader). A software KVM emulates every instruction a kernel runs, at
//! about a microsecond each, and the bzImage's decompressor alone (xz over 60 MiB) is still
//! running after 25 minutes on this project's machine; without it the kernel's own code is
//! reached in seconds.
//!
//! How the run may end:
//! - KVM missing: skipped, as every vmm-lite test is.
//! - The kernel boots: /init must run to its end (timer, CPUs, the typed line).
//! - KVM itself cannot go on (vmm-lite's exit status 3 and its one line naming the VTL, RIP
//!   and instruction bytes: a software KVM cannot emulate `int3` or `lock cmpxchg16b`): the
//!   test is skipped with that line as the reason.
//! - A hang, a crash or any other failure fails it.

use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_tests::linux::{init_report, kvm_cannot_run_report, Typed};
use xtask::build;
use xtask::qemu::{kvm_usable, run_command_watching, Run, Verdict, Watch};
use xtask::vmm::{self, VmmLite};
use xtask::{Arch, Flavor};

/// A hardware KVM boots to /init in seconds; a software KVM stops in a few minutes.
const TIMEOUT: Duration = Duration::from_secs(600);
const PROMPT: &str = "parapet-init: type a line";
const TYPED: &str = "hello parapet";

/// What the test will do on this host.
enum Plan {
    Skip(String),
    Check(Box<Run>),
}

fn main() {
    let args = Arguments::from_args();
    let plan = plan().unwrap_or_else(|e| Plan::Check(Box::new(failed_run(e))));
    let skip = match &plan {
        Plan::Skip(why) => {
            eprintln!("hv_vtl Linux boot skipped: {why}");
            true
        }
        Plan::Check(_) => false,
    };
    let trial = Trial::test(
        "hv_vtl_boots_debian_linux_or_names_what_stops_it",
        move || match &plan {
            Plan::Skip(why) => Err(format!("skipped: {why}").into()),
            Plan::Check(run) => check(run),
        },
    )
    .with_ignored_flag(skip);
    libtest_mimic::run(&args, vec![trial]).exit();
}

/// Decides, running vmm-lite where the host allows.
fn plan() -> Result<Plan, String> {
    if let Err(why) = kvm_usable() {
        return Ok(Plan::Skip(why));
    }
    let error = |e: anyhow::Error| format!("{e:#}");
    let binary = build::vmm_lite().map_err(error)?;
    let (bzimage, initramfs) = xtask::linux::debian_guest(Arch::X86_64).map_err(error)?;
    let kernel = xtask::kernels::vmlinux_of(&bzimage).map_err(error)?;
    let bundle = xtask::linux::bundle_path("test-linux-vtl0");
    // earlyprintk: the kernel's lines from its first, so a run that stops early shows how far
    // it got.
    let cmdline = format!(
        "{} earlyprintk=ttyS0 panic=-1",
        xtask::linux::default_cmdline(Arch::X86_64)
    );
    xtask::linux::write_bundle(Arch::X86_64, &kernel, Some(&initramfs), &cmdline, &bundle)
        .map_err(error)?;
    let vmm = VmmLite {
        binary,
        igvm: build::igvm(Flavor::Normal).map_err(error)?,
        vps: 2,
        memory_mib: 512,
        // No TPM: measuring 66 MB of kernel in VTL2, every instruction emulated, takes longer
        // than the kernel's run (boot/src/guest/tpm.rs); the svm tests check the TPM.
        cmdline: Some("parapet.tpm=off".into()),
        platform: "vbs",
        vtl0: Some(bundle),
    };
    let watch = Watch {
        input_after: Some(PROMPT),
        ..Watch::default()
    };
    let run = run_command_watching(
        vmm.command(),
        vmm::verdict,
        Some(&format!("{TYPED}\n")),
        TIMEOUT,
        watch,
    )
    .map_err(error)?;
    let status = match run.verdict {
        Verdict::Abnormal(code) => code,
        _ => None,
    };
    if let Some(report) = kvm_cannot_run_report(status, &run.errors) {
        let kernel_lines: Vec<&str> = run
            .console
            .lines()
            .filter_map(|l| l.strip_prefix("vtl0| "))
            .collect();
        return Ok(Plan::Skip(format!(
            "the host's KVM stopped: {report}; the kernel had printed {} lines, the last {:?}",
            kernel_lines.len(),
            kernel_lines.last().map(|l| l.trim()).unwrap_or("")
        )));
    }
    Ok(Plan::Check(Box::new(run)))
}

/// A run that never happened, carrying why.
fn failed_run(why: String) -> Run {
    Run {
        verdict: Verdict::Abnormal(None),
        output: why.clone(),
        console: why,
        errors: String::new(),
        ready_after: None,
        guest_output_after: None,
        watched_after: None,
        input_sent_after: None,
    }
}

/// The boot ran to its end: Parapet reported VTL0's success, and /init printed everything,
/// slept a second of its own uptime, saw both CPUs, read back the typed line, and COM1's
/// interrupts came through the I/O APIC Parapet emulates for VTL0.
fn check(run: &Run) -> Result<(), Failed> {
    let console = run.console.replace("vtl0| ", "guest| ");
    let init = init_report(&console);
    let mut problems = Vec::new();
    if run.verdict != Verdict::Success {
        problems.push(format!("verdict {:?}, wanted Success", run.verdict));
    }
    if !(init.started && init.done) {
        problems.push("/init did not run to its end".to_string());
    }
    let slept = init
        .uptime_before
        .zip(init.uptime_after)
        .map(|(b, a)| ((a - b) * 100.0).round() as i64);
    if slept.is_none_or(|h| h < 100) {
        problems.push(format!("`sleep 1` took {slept:?} hundredths of a second"));
    }
    if init.cpus_online.as_deref() != Some("0-1") {
        problems.push(format!("CPUs online {:?}, wanted 0-1", init.cpus_online));
    }
    if init.read != Some(Typed::Line(TYPED.to_string())) {
        problems.push(format!("/init read {:?}, wanted {TYPED:?}", init.read));
    }
    let serial = init.serial_irq.as_ref();
    if !serial.is_some_and(|row| row.count > 0 && row.names("IO-APIC") && row.names("ttyS0")) {
        problems.push(format!(
            "COM1's interrupts did not come through the I/O APIC to ttyS0: {serial:?}"
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!("{}\n--- output ---\n{}", problems.join("\n"), run.output).into())
}

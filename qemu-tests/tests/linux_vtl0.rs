//! Debian's stock x86_64 kernel in VTL0, under Parapet in VTL2 on vmm-lite (the hv_vtl
//! backend on KVM): the same bundle the svm test boots.
//!
//! What it takes depends on the host's KVM, and the test finds out before it runs:
//! - KVM missing: skipped, as every vmm-lite test is.
//! - A KVM that runs a kernel's code (64-bit, CPL 0) slowly, as a software KVM does by
//!   emulating it (`vmm-lite bench ring0`: microseconds per instruction, where hardware
//!   takes well under a nanosecond): skipped with the figure. Debian's kernel runs billions
//!   of instructions before /init; at a microsecond each that is hours (on this project's
//!   machine the decompressor alone is still running after 25 minutes).
//! - Otherwise the kernel boots: /init must run to its end (timer, CPUs, the typed line). If
//!   KVM itself cannot go on (vmm-lite's exit status 3 and its one line naming the VTL, RIP and
//!   instruction bytes), the test is skipped with that line as the reason; a hang, a crash or
//!   any other failure fails it.

use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_tests::linux::{init_report, kvm_cannot_run_report, Typed};
use xtask::build;
use xtask::qemu::{kvm_usable, run_command_watching, Run, Verdict, Watch};
use xtask::vmm::{self, VmmLite};
use xtask::{Arch, Flavor};

const TIMEOUT: Duration = Duration::from_secs(300);
/// Rounds of `vmm-lite bench ring0` (two instructions each) to time.
const PROBE_ROUNDS: &str = "100000";
/// Above this many microseconds per round the host cannot boot Linux in VTL0 in minutes:
/// 0.05 µs is 40 million instructions a second, some 50 times slower than any hardware KVM.
const SLOWEST_ROUND_US: f64 = 0.05;
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
    let round_us = ring0_round_us(&binary)?;
    if round_us > SLOWEST_ROUND_US {
        return Ok(Plan::Skip(format!(
            "this host's KVM runs CPL 0 code at {round_us:.2} µs per two-instruction round \
             (`vmm-lite bench ring0`; hardware virtualization takes under 0.001): Debian's \
             kernel would need hours to reach /init in VTL0"
        )));
    }
    let (kernel, initramfs) = xtask::linux::debian_guest(Arch::X86_64).map_err(error)?;
    let bundle = xtask::linux::bundle_path("test-linux-vtl0");
    let cmdline = format!("{} panic=-1", xtask::linux::default_cmdline(Arch::X86_64));
    xtask::linux::write_bundle(Arch::X86_64, &kernel, Some(&initramfs), &cmdline, &bundle)
        .map_err(error)?;
    let vmm = VmmLite {
        binary,
        igvm: build::igvm(Flavor::Normal).map_err(error)?,
        vps: 2,
        memory_mib: 512,
        cmdline: None,
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
    if let Some(report) = kvm_cannot_run_report(status, &run.output) {
        return Ok(Plan::Skip(format!("the host's KVM stopped: {report}")));
    }
    Ok(Plan::Check(Box::new(run)))
}

/// `vmm-lite bench ring0`'s figure: microseconds per round.
fn ring0_round_us(binary: &std::path::Path) -> Result<f64, String> {
    let output = Command::new(binary)
        .args(["bench", "ring0", "--iterations", PROBE_ROUNDS])
        .output()
        .map_err(|e| format!("running {}: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().map_err(|_| {
        format!(
            "`vmm-lite bench ring0` printed {text:?} (stderr {:?})",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A run that never happened, carrying why.
fn failed_run(why: String) -> Run {
    Run {
        verdict: Verdict::Abnormal(None),
        output: why.clone(),
        console: why,
        ready_after: None,
        guest_output_after: None,
        watched_after: None,
        input_sent_after: None,
    }
}

/// The boot ran to its end: Parapet reported VTL0's success, and /init printed everything,
/// slept a second of its own uptime, saw both CPUs and read back the typed line (COM1 by
/// polling: hv_vtl wires no interrupt to it).
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
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!("{}\n--- output ---\n{}", problems.join("\n"), run.output).into())
}

//! Parapet in VTL2 hosting a VTL0 guest under vmm-lite (the `vbs` platform on KVM): the hello
//! guest's output reaches the console through Parapet's COM1, the ticks guest takes timer and
//! COM1 interrupts, and the escape guest's attempts on the paravisor are contained, logged,
//! and survived.

use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_tests::banner;
use xtask::build::{self, Guest};
use xtask::qemu::{kvm_usable, Verdict};
use xtask::vmm::VmmLite;
use xtask::{Arch, Flavor};

const TIMEOUT: Duration = Duration::from_secs(180);
/// APIC timer ticks (1 GHz) the ticks guest's calibration may be off by: 5 port round trips of
/// 2.4 ms.
const LATE_APIC_TICKS: u64 = 12_000_000;

/// How a run ended, its console (standard output: Parapet's lines, whole) and everything it
/// printed (with vmm-lite's own lines on standard error, which may land mid-line).
struct Ran {
    verdict: Verdict,
    console: String,
    all: String,
}

fn run_guest(guest: Guest) -> Result<Ran, Failed> {
    build::guests().map_err(|e| format!("{e:#}"))?;
    run_payload(build::guest_path(Arch::X86_64, guest), "vbs")
}

/// vmm-lite on `platform` with `payload` as the VTL0 guest.
fn run_payload(payload: PathBuf, platform: &'static str) -> Result<Ran, Failed> {
    let error = |e: anyhow::Error| format!("{e:#}");
    let vmm = VmmLite {
        binary: build::vmm_lite().map_err(error)?,
        igvm: build::igvm(Flavor::Normal).map_err(error)?,
        vps: 2,
        memory_mib: 256,
        cmdline: None,
        platform,
        vtl0: Some(payload),
    };
    let run = vmm.run_timed(None, TIMEOUT).map_err(error)?;
    Ok(Ran {
        verdict: run.verdict,
        console: run.console,
        all: run.output,
    })
}

/// A payload that is no ELF stops Parapet with failure and a reason; `--vtl0` without the
/// VTL platform is refused by vmm-lite.
fn bad_payloads() -> Result<(), Failed> {
    let not_elf = std::env::temp_dir().join(format!("parapet-not-elf-{}", std::process::id()));
    std::fs::write(&not_elf, b"MZ this is not an ELF file").map_err(|e| e.to_string())?;
    // Parapet's line is on standard output and vmm-lite's on standard error; the two pipes
    // are read side by side, so only each on its own keeps its lines whole.
    let Ran {
        verdict,
        console,
        all: output,
    } = run_payload(not_elf.clone(), "vbs")?;
    let Ran {
        verdict: native_verdict,
        all: native_output,
        ..
    } = run_payload(not_elf.clone(), "native")?;
    std::fs::remove_file(&not_elf).ok();
    check(
        verdict == Verdict::Failure
            && console.contains("hv_vtl: VTL0 not started: loading the VTL0 guest: the payload is not a usable ELF: not an ELF file"),
        &format!("verdict {verdict:?}: a bad payload must stop Parapet with failure and say why"),
        &output,
    )?;
    check(
        native_verdict == Verdict::Abnormal(Some(2))
            && native_output.contains("--vtl0 needs --platform vbs"),
        &format!("verdict {native_verdict:?}: --vtl0 on the native platform must be refused"),
        &native_output,
    )
}

fn check(cond: bool, what: &str, output: &str) -> Result<(), Failed> {
    qemu_tests::check(cond, what, output).map_err(Failed::from)
}

/// The guest's line as Parapet prints it: after the `vtl0| ` prefix.
fn guest_said(console: &str, line: &str) -> bool {
    qemu_tests::guest_said(console, "vtl0", line)
}

fn hello() -> Result<(), Failed> {
    let Ran {
        verdict,
        console,
        all: output,
    } = run_guest(Guest::Hello)?;
    let banner = banner(&output).map_err(|e| format!("{e}\n{output}"))?;
    check(
        banner.platform == "hv_vtl",
        "the banner does not say platform=hv_vtl",
        &output,
    )?;
    check(
        guest_said(
            &console,
            "Hello from VTL0, through Parapet's emulated COM1.",
        ),
        "the guest's greeting did not come through COM1",
        &output,
    )?;
    check(
        guest_said(&console, "Hello from VTL0's second VP."),
        "the guest's second VP (started with StartVirtualProcessor, served by Parapet on VP 1) did not greet",
        &output,
    )?;
    check(
        console.contains("hv_vtl: VTL0 powered off (success) after "),
        "Parapet did not see the guest power off",
        &output,
    )?;
    check(
        verdict == Verdict::Success,
        &format!("verdict {verdict:?}, wanted Success"),
        &output,
    )
}

fn escape() -> Result<(), Failed> {
    let Ran {
        verdict,
        console,
        all: output,
    } = run_guest(Guest::Escape)?;
    // Parapet stays up: the guest gets to its end and powers off cleanly, having seen none
    // of the paravisor's memory.
    qemu_tests::escape_was_contained(&console, "vtl0", &output, &qemu_tests::X86_PARAVISOR_PROBES)?;
    qemu_tests::escape_ports_were_contained(&console, "vtl0", &output)?;
    check(
        verdict == Verdict::Success,
        &format!("verdict {verdict:?}, wanted Success"),
        &output,
    )?;
    // A VTL0 that spins without exits does not starve the paravisor: its timer interrupts
    // still reach it.
    let interrupts = qemu_tests::number_after(&console, " intercepts and ");
    check(
        interrupts.is_some_and(|n| n > 0),
        &format!("Parapet took {interrupts:?} interrupt entries while VTL0 ran, wanted some"),
        &output,
    )?;
    // VTL0's synthetic MSRs pass through Parapet: an unknown one is logged and reads 0, and
    // the guest OS id and hypercall page MSRs reach the hypervisor (the calls below work).
    check(
        guest_said(&console, "escape: rdmsr 0x400000ff -> 0x0")
            && console.contains("VTL0 read MSR 0x400000ff, which is not offered"),
        "an unknown synthetic MSR was not answered and logged by Parapet",
        &output,
    )?;
    for call in [
        "EnablePartitionVtl",
        "EnableVpVtl",
        "InstallIntercept",
        "GetVpRegisters(VTL2)",
    ] {
        check(
            guest_said(&console, &format!("escape: hypercall {call}: status 0x6")),
            &format!("{call} from VTL0 was not denied (HV_STATUS_ACCESS_DENIED)"),
            &output,
        )?;
    }
    check(
        guest_said(
            &console,
            "escape: GetVpRegisters with its output in paravisor memory: status 0x6",
        ),
        "a hypercall wrote its output into paravisor memory for VTL0",
        &output,
    )?;
    check(
        console.contains("VTL0 wrote 0x100001 to MSR 0x40000001: the hypervisor refused"),
        "moving VTL0's hypercall page into paravisor memory was not refused and logged",
        &output,
    )?;
    check(
        guest_said(
            &console,
            "escape: StartVirtualProcessor on the running VP 0: status 0x15",
        ),
        "restarting a running VP was not refused with HV_STATUS_INVALID_VP_STATE",
        &output,
    )?;
    // The hypervisor, which refuses them, records them (the paravisor never sees hypercalls):
    // four calls reserved for VTL2, one with its output in paravisor memory.
    let refused = output.matches("refused: access denied").count();
    check(
        refused == 5,
        &format!("{refused} refused hypercalls recorded, wanted 5"),
        &output,
    )?;
    check(
        guest_said(&console, "escape: hypercall bogus 0x7777: status 0x2"),
        "a bogus call code did not get HV_STATUS_INVALID_HYPERCALL_CODE",
        &output,
    )?;
    Ok(())
}

/// Interrupts reach VTL0: the ticks guest's local APIC timer (the host's APIC, in xAPIC and
/// x2APIC modes), its calibration against PIT channel 2 (Parapet's), and COM1's THR-empty
/// interrupts through the I/O APIC Parapet emulates, asserted into VTL0 with
/// HvCallAssertVirtualInterrupt.
fn ticks() -> Result<(), Failed> {
    let Ran {
        verdict,
        console,
        all: output,
    } = run_guest(Guest::Ticks)?;
    // Each of the guest's port accesses is a round trip through VTL2, some 2.4 ms where KVM
    // emulates both VTLs (this project's machine): the PIT's end is seen up to a few late.
    // The guest's string moves from the I/O APIC reach Parapet too: vmm-lite stops VTL0
    // before them as Hyper-V would (vtl0_memory_intercept.rs).
    qemu_tests::ticks_problem(&console, "vtl0", LATE_APIC_TICKS, true)
        .map_or(Ok(()), |problem| check(false, &problem, &output))?;
    check(
        verdict == Verdict::Success,
        &format!("verdict {verdict:?}, wanted Success"),
        &output,
    )
}

/// VTL0's TPM answers through the CRB registers: every access a VTL0 MMIO intercept that
/// Parapet serves in VTL2. The TPM is made and self-tested at the guest's first access,
/// tens of seconds where KVM emulates VTL2's every instruction.
fn tpm() -> Result<(), Failed> {
    let Ran {
        verdict,
        console,
        all: output,
    } = run_guest(Guest::Tpm)?;
    qemu_tests::tpm_guest_problem(&console, "vtl0")
        .map_or(Ok(()), |problem| check(false, &problem, &output))?;
    check(
        verdict == Verdict::Success,
        &format!("verdict {verdict:?}, wanted Success"),
        &output,
    )
}

fn main() {
    let args = Arguments::from_args();
    let kvm = kvm_usable();
    if let Err(why) = &kvm {
        eprintln!("VTL0 boots skipped: {why}");
    }
    let trials = vec![
        Trial::test("vtl0_hello_prints_through_parapet_com1", hello)
            .with_ignored_flag(kvm.is_err()),
        Trial::test("vtl0_escape_attempts_are_contained_and_logged", escape)
            .with_ignored_flag(kvm.is_err()),
        Trial::test("vtl0_ticks_takes_timer_and_com1_interrupts", ticks)
            .with_ignored_flag(kvm.is_err()),
        Trial::test("vtl0_bad_payloads_are_refused_with_a_reason", bad_payloads)
            .with_ignored_flag(kvm.is_err()),
        Trial::test("vtl0_tpm_answers_through_crb", tpm).with_ignored_flag(kvm.is_err()),
    ];
    libtest_mimic::run(&args, trials).exit();
}

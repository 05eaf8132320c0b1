//! Parapet as the hypervisor under QEMU TCG, hosting the test guests: the `svm` backend on
//! x86_64 (`-cpu max` offers nested AMD-V; the guest comes as the PVH module) and the `el2`
//! backend on aarch64 (the guest at EL1 behind stage 2; it comes as the device tree's
//! initrd). The same devices and the same containment as in VTL0 under `hv_vtl`.

use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_tests::{banner, escape_was_contained, guest_said, number_after};
use xtask::build::{self, Guest};
use xtask::qemu::{Accel, Machine, Run, Verdict};
use xtask::{Arch, Flavor};

const TIMEOUT: Duration = Duration::from_secs(180);

/// The backend Parapet uses under QEMU TCG on `arch`.
fn backend(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "svm",
        Arch::Aarch64 => "el2",
    }
}

/// Parapet under QEMU TCG on `arch`, 2 CPUs, hosting `payload`.
fn run_payload(arch: Arch, payload: PathBuf) -> Result<Run, Failed> {
    run_payload_with(arch, payload, None)
}

/// As [`run_payload`], with `cmdline` as Parapet's command line.
fn run_payload_with(arch: Arch, payload: PathBuf, cmdline: Option<&str>) -> Result<Run, Failed> {
    let error = |e: anyhow::Error| format!("{e:#}");
    let machine = Machine {
        arch,
        accel: Accel::Tcg,
        image: build::firmware(arch, Flavor::Normal).map_err(error)?,
        cpus: 2,
        memory_mib: 256,
        cmdline: cmdline.map(String::from),
        gdb: false,
        gic_version: 3,
        guest: Some(payload),
    };
    Ok(machine.run_timed(None, TIMEOUT).map_err(error)?)
}

fn run_guest(arch: Arch, guest: Guest) -> Result<Run, Failed> {
    build::guests_for(arch).map_err(|e| format!("{e:#}"))?;
    run_payload(arch, build::guest_path(arch, guest))
}

fn check(cond: bool, what: &str, output: &str) -> Result<(), Failed> {
    qemu_tests::check(cond, what, output).map_err(Failed::from)
}

fn hello(arch: Arch) -> Result<(), Failed> {
    let run = run_guest(arch, Guest::Hello)?;
    let (console, output) = (&run.console, &run.output);
    let said = |line: &str| guest_said(console, "guest", line);
    let banner = banner(output).map_err(|e| format!("{e}\n{output}"))?;
    check(
        banner.platform == backend(arch),
        &format!("the banner does not say platform={}", backend(arch)),
        output,
    )?;
    check(
        said("Hello from VTL0, through Parapet's emulated COM1."),
        "the guest's greeting did not come through its UART",
        output,
    )?;
    match arch {
        // No Hyper-V interface under svm, so no StartVirtualProcessor: one VP.
        Arch::X86_64 => check(
            said("hello: no hypercall page, so no second VP"),
            "the guest did not find the machine it expected",
            output,
        )?,
        // PSCI is Parapet's: its version, and CPU_ON starting guest CPU 1 on CPU 1.
        Arch::Aarch64 => {
            check(
                said("hello: PSCI version 1.0"),
                "PSCI_VERSION was not answered by Parapet",
                output,
            )?;
            check(
                said("Hello from VTL0's second VP.") && console.contains("started CPU 1"),
                "the guest's second CPU (PSCI CPU_ON) did not run",
                output,
            )?;
        }
    }
    let powered_off = format!("{}: the guest powered off (success) after ", backend(arch));
    check(
        console.contains(&powered_off),
        "Parapet did not see the guest power off",
        output,
    )?;
    check(
        run.verdict == Verdict::Success,
        &format!("verdict {:?}, wanted Success", run.verdict),
        output,
    )
}

fn escape(arch: Arch) -> Result<(), Failed> {
    let run = run_guest(arch, Guest::Escape)?;
    let (console, output) = (&run.console, &run.output);
    let said = |line: &str| guest_said(console, "guest", line);
    let probes = match arch {
        Arch::X86_64 => qemu_tests::X86_PARAVISOR_PROBES,
        Arch::Aarch64 => qemu_tests::AARCH64_PARAVISOR_PROBES,
    };
    escape_was_contained(console, "guest", output, &probes)?;
    check(
        run.verdict == Verdict::Success,
        &format!("verdict {:?}, wanted Success", run.verdict),
        output,
    )?;
    // Parapet's tick ends the guest's runs while it spins (physical interrupts go to it).
    let interrupts = number_after(console, " exits and ");
    check(
        interrupts.is_some_and(|n| n > 0),
        &format!("{interrupts:?} physical interrupts ended the guest's runs, wanted some"),
        output,
    )?;
    match arch {
        Arch::X86_64 => {
            qemu_tests::escape_ports_were_contained(console, "guest", output)?;
            // The Hyper-V MSRs do not exist here: the shared MSR policy answers and logs.
            check(
                console.contains("svm: the guest wrote 0x8000000000000000 to MSR 0x40000000, which is not offered; ignored")
                    && said("escape: no hypercall page"),
                "the Hyper-V MSRs were not answered by the shared MSR policy",
                output,
            )
        }
        Arch::Aarch64 => {
            // Calls nobody offers are refused (SMCCC NOT_SUPPORTED), an SMC reaches Parapet
            // rather than firmware, and restarting the running CPU is refused (ALREADY_ON).
            check(
                said("escape: hvc 0x86000000 (hypervisor service): status -1")
                    && said("escape: smc 0x86000000: status -1"),
                "an unknown firmware call was not refused with NOT_SUPPORTED",
                output,
            )?;
            check(
                said("escape: smc PSCI_VERSION: status 65536"),
                "an SMC did not reach Parapet's PSCI",
                output,
            )?;
            check(
                said("escape: CPU_ON of the running CPU: status -4"),
                "CPU_ON of a running CPU was not refused with ALREADY_ON",
                output,
            )?;
            check(
                said("escape: this line went out by byte writes to DR"),
                "byte writes to the PL011's DR did not reach the console",
                output,
            )
        }
    }
}

/// Interrupts reach an x86 guest through the APICs Parapet emulates under svm: the ticks
/// guest calibrates the local APIC's timer against PIT channel 2 as Linux does, takes its
/// periodic interrupts through the xAPIC page, then in x2APIC mode through the MSRs, reads
/// the I/O APIC's registers by string moves (`rep movsd`, `movsb`: Parapet's MOVS emulation)
/// as well as by MOV, then drives COM1 by its THR-empty interrupt through the I/O APIC,
/// counting what its IDT handlers saw.
fn ticks() -> Result<(), Failed> {
    let run = run_guest(Arch::X86_64, Guest::Ticks)?;
    qemu_tests::ticks_problem(&run.console, "guest", 0, true)
        .map_or(Ok(()), |problem| check(false, &problem, &run.output))?;
    check(
        run.verdict == Verdict::Success,
        &format!("verdict {:?}, wanted Success", run.verdict),
        &run.output,
    )
}

/// The guest's TPM answers through its registers: the tpm guest's GetRandom, PCR_Extend and
/// PCR_Read, as Linux's drivers send them, through the CRB under svm and the memory-mapped
/// FIFO interface under el2 (`parapet.tpm=tis-mmio`; el2's default, the TPM on SPI, is
/// what the Linux test's kernel uses).
fn tpm(arch: Arch) -> Result<(), Failed> {
    build::guests_for(arch).map_err(|e| format!("{e:#}"))?;
    let cmdline = (arch == Arch::Aarch64).then_some("parapet.tpm=tis-mmio");
    let run = run_payload_with(arch, build::guest_path(arch, Guest::Tpm), cmdline)?;
    qemu_tests::tpm_guest_problem(&run.console, "guest")
        .map_or(Ok(()), |problem| check(false, &problem, &run.output))?;
    check(
        run.verdict == Verdict::Success,
        &format!("verdict {:?}, wanted Success", run.verdict),
        &run.output,
    )
}

/// A payload that is no ELF stops Parapet with failure and a reason.
fn bad_payload(arch: Arch) -> Result<(), Failed> {
    let not_elf = std::env::temp_dir().join(format!(
        "parapet-{}-not-elf-{}",
        backend(arch),
        std::process::id()
    ));
    std::fs::write(&not_elf, b"MZ this is not an ELF file").map_err(|e| e.to_string())?;
    let run = run_payload(arch, not_elf.clone());
    std::fs::remove_file(&not_elf).ok();
    let run = run?;
    let reason = format!(
        "{}: guest not started: loading the guest: the payload is not a usable ELF: not an ELF file",
        backend(arch)
    );
    check(
        run.verdict == Verdict::Failure && run.console.contains(&reason),
        &format!(
            "verdict {:?}: a bad payload must stop Parapet with failure and say why",
            run.verdict
        ),
        &run.output,
    )
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let name = backend(arch);
        trials.push(Trial::test(
            format!("{name}_hello_prints_through_parapet_uart"),
            move || hello(arch),
        ));
        trials.push(Trial::test(
            format!("{name}_escape_attempts_are_contained_and_logged"),
            move || escape(arch),
        ));
        trials.push(Trial::test(
            format!("{name}_bad_payload_is_refused_with_a_reason"),
            move || bad_payload(arch),
        ));
    }
    trials.push(Trial::test(
        "svm_apic_timer_interrupts_reach_the_guest",
        ticks,
    ));
    trials.push(Trial::test("svm_tpm_answers_through_crb", || {
        tpm(Arch::X86_64)
    }));
    trials.push(Trial::test("el2_tpm_answers_through_tis_mmio", || {
        tpm(Arch::Aarch64)
    }));
    libtest_mimic::run(&args, trials).exit();
}

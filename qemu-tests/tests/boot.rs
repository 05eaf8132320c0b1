//! Boots the firmware under QEMU (x86_64 TCG and KVM, aarch64 TCG) and under vmm-lite from its
//! IGVM file, each with two vCPUs, and checks the console contract, the in-firmware test
//! summary and the exit status.

use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_tests::{banner, summary};
use xtask::qemu::{kvm_usable, run_command, Accel, Machine, Verdict};
use xtask::vmm::{verdict, VmmLite};
use xtask::{build, Arch, Flavor};

const CPUS: u32 = 2;
const MEMORY_MIB: u32 = 256;
/// Fewer in-firmware tests than this means the suite lost tests.
const MIN_FIRMWARE_TESTS: u32 = 15;
/// In-firmware tests added on the hv_vtl platform.
const HV_FIRMWARE_TESTS: u32 = 5;
/// Generous: the software KVM here boots QEMU far more slowly than TCG.
const TIMEOUT: Duration = Duration::from_secs(180);

fn machine(
    arch: Arch,
    accel: Accel,
    flavor: Flavor,
    cmdline: Option<&str>,
) -> Result<Machine, Failed> {
    let image = build::firmware(arch, flavor).map_err(|e| format!("{e:#}"))?;
    Ok(Machine {
        arch,
        accel,
        image,
        cpus: CPUS,
        memory_mib: MEMORY_MIB,
        cmdline: cmdline.map(String::from),
        gdb: false,
        gic_version: 3,
        guest: None,
    })
}

fn boot(m: &Machine, input: Option<&str>) -> Result<(Verdict, String), Failed> {
    let (verdict, output) = m
        .run_captured(input, TIMEOUT)
        .map_err(|e| format!("{e:#}"))?;
    Ok((verdict, output))
}

fn check(cond: bool, what: &str, output: &str) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}\n--- console ---\n{output}").into())
    }
}

/// The platform Parapet finds under QEMU: TCG's `-cpu max` offers AMD-V with nested paging
/// on x86_64 (the `svm` backend), this host's KVM gives its guests no SVM; aarch64 Parapet
/// runs at EL2 (the `el2` backend).
fn qemu_platform(arch: Arch, accel: Accel) -> &'static str {
    match (arch, accel) {
        (Arch::X86_64, Accel::Tcg) => "svm",
        (Arch::X86_64, Accel::Kvm) => "native",
        (Arch::Aarch64, _) => "el2",
    }
}

fn check_banner(arch: Arch, accel: Accel, output: &str) -> Result<(), Failed> {
    check_banner_on(arch, qemu_platform(arch, accel), output)
}

fn check_banner_on(arch: Arch, platform: &str, output: &str) -> Result<(), Failed> {
    let b = banner(output).map_err(|e| format!("{e}\n--- console ---\n{output}"))?;
    check(
        b.arch == arch.name(),
        &format!("banner arch {:?}", b.arch),
        output,
    )?;
    check(
        b.platform == platform,
        &format!("banner platform {:?}", b.platform),
        output,
    )?;
    check(b.cpus == CPUS, &format!("banner cpus {}", b.cpus), output)?;
    // The loader keeps a little RAM for itself (x86: the BIOS area below 1 MiB).
    let ram_ok = b.ram_mib <= u64::from(MEMORY_MIB) && b.ram_mib + 8 >= u64::from(MEMORY_MIB);
    check(
        ram_ok,
        &format!("banner ram {} MiB for -m {MEMORY_MIB}", b.ram_mib),
        output,
    )
}

/// The in-firmware suite passes on every CPU QEMU gives.
fn selftest(arch: Arch, accel: Accel) -> Result<(), Failed> {
    selftest_on(machine(arch, accel, Flavor::SelfTest, None)?)
}

/// As `selftest`, on QEMU's default aarch64 board (`-M virt,virtualization=on`: GICv2).
fn selftest_aarch64_gicv2() -> Result<(), Failed> {
    let mut m = machine(Arch::Aarch64, Accel::Tcg, Flavor::SelfTest, None)?;
    m.gic_version = 2;
    selftest_on(m)
}

fn selftest_on(m: Machine) -> Result<(), Failed> {
    let (verdict, output) = boot(&m, None)?;
    let platform = qemu_platform(m.arch, m.accel);
    check_selftest_run_on(m.arch, platform, MIN_FIRMWARE_TESTS, verdict, &output)
}

/// A self-test run: the banner, readiness, every CPU online, the suite passed in full, and the
/// success status.
fn check_selftest_run(arch: Arch, verdict: Verdict, output: &str) -> Result<(), Failed> {
    check_selftest_run_on(arch, "native", MIN_FIRMWARE_TESTS, verdict, output)
}

fn check_selftest_run_on(
    arch: Arch,
    platform: &str,
    min_tests: u32,
    verdict: Verdict,
    output: &str,
) -> Result<(), Failed> {
    check_banner_on(arch, platform, output)?;
    check(
        output.contains("parapet: ready"),
        "no `parapet: ready`",
        output,
    )?;
    let online = format!("{CPUS} of {CPUS} CPUs online");
    check(
        output.contains(&online),
        "not every CPU came online",
        output,
    )?;
    let (passed, failed) =
        summary(output).ok_or_else(|| format!("no in-firmware summary\n{output}"))?;
    check(
        failed == 0,
        &format!("{failed} in-firmware tests failed"),
        output,
    )?;
    let enough = passed >= min_tests;
    check(
        enough,
        &format!("only {passed} in-firmware tests ran"),
        output,
    )?;
    check(
        verdict == Verdict::Success,
        &format!("exit verdict {verdict:?}"),
        output,
    )
}

/// Boots the test firmware under TCG with `parapet.test=<test>`, which must end the run with
/// the failure status; returns the console output.
fn failing_boot(arch: Arch, test: &str) -> Result<String, Failed> {
    let cmdline = format!("parapet.test={test}");
    let m = machine(arch, Accel::Tcg, Flavor::SelfTest, Some(&cmdline))?;
    let (verdict, output) = boot(&m, None)?;
    check(
        verdict == Verdict::Failure,
        &format!("exit verdict {verdict:?}, wanted Failure"),
        &output,
    )?;
    Ok(output)
}

/// A fault while the entry path still parses the loader's tables (before the banner, the
/// heap or Parapet's own page tables) is reported like any other and fails the run.
fn early_fault_is_reported(arch: Arch) -> Result<(), Failed> {
    let output = failing_boot(arch, "early-fault")?;
    let (what, address) = match arch {
        Arch::X86_64 => ("fatal exception #PF (vector 14)", "cr2=0x6000dead0000"),
        Arch::Aarch64 => ("fatal exception data abort", "far=0x6000dead0000"),
    };
    check(
        output.contains(what) && output.contains(address),
        &format!("no `{what}` report naming {address}"),
        &output,
    )?;
    check(
        !output.contains("parapet 0."),
        "the fault came after the banner, so the early path was not tested",
        &output,
    )
}

/// aarch64 entered below EL2 (QEMU without `virtualization=on`) says so and fails the run.
fn aarch64_below_el2_is_refused() -> Result<(), Failed> {
    let image = build::firmware(Arch::Aarch64, Flavor::Normal).map_err(|e| format!("{e:#}"))?;
    let mut cmd = std::process::Command::new("qemu-system-aarch64");
    cmd.args(["-M", "virt,gic-version=3", "-cpu", "max"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-nodefaults", "-display", "none", "-monitor", "none"])
        .args(["-serial", "stdio", "-no-reboot", "-m", "256", "-kernel"])
        .arg(image);
    let run = xtask::qemu::run_command(
        cmd,
        |s| xtask::qemu::verdict(Arch::Aarch64, s),
        None,
        TIMEOUT,
    )
    .map_err(|e| format!("{e:#}"))?;
    check(
        run.verdict == Verdict::Failure
            && run
                .output
                .contains("parapet: fatal: entered below EL2; Parapet needs EL2"),
        &format!(
            "verdict {:?}: entry below EL2 must fail with a reason",
            run.verdict
        ),
        &run.output,
    )
}

/// A firmware that panics on purpose exits with the failure status and says where.
fn panic_is_a_failure(arch: Arch) -> Result<(), Failed> {
    let output = failing_boot(arch, "panic")?;
    check(
        output.contains("PANIC on cpu0 at boot/src/selftest/mod.rs:"),
        "panic location not printed",
        &output,
    )?;
    check(
        output.contains("deliberate panic requested"),
        "panic message not printed",
        &output,
    )
}

/// An exception nobody expects is reported (what, where, the faulting address) and ends the
/// run with the failure status.
fn fatal_exception_is_reported(arch: Arch) -> Result<(), Failed> {
    let output = failing_boot(arch, "fault")?;
    let (what, address) = match arch {
        Arch::X86_64 => ("fatal exception #PF (vector 14)", "cr2=0x6000dead0000"),
        Arch::Aarch64 => ("fatal exception data abort", "far=0x6000dead0000"),
    };
    check(
        output.contains(what),
        &format!("no `{what}` report"),
        &output,
    )?;
    check(
        output.contains(address),
        &format!("faulting address not reported ({address})"),
        &output,
    )?;
    let location = match arch {
        Arch::X86_64 => "rip=0x",
        Arch::Aarch64 => "elr=0x",
    };
    check(
        output.contains(location),
        "faulting instruction not reported",
        &output,
    )
}

/// The normal firmware answers monitor commands typed on its console and powers off on request.
fn monitor_answers_console_input(arch: Arch) -> Result<(), Failed> {
    let m = machine(arch, Accel::Tcg, Flavor::Normal, None)?;
    let (verdict, output) = boot(&m, Some("cpus\nmem\nbogus\npoweroff\n"))?;
    check_banner(arch, Accel::Tcg, &output)?;
    check(
        output.contains("cpu1: ticks="),
        "`cpus` did not list cpu1",
        &output,
    )?;
    check(
        output.contains("heap:"),
        "`mem` did not report the heap",
        &output,
    )?;
    check(
        output.contains("unknown command `bogus`"),
        "bad input was not refused",
        &output,
    )?;
    check(
        output.contains("parapet: powering off"),
        "`poweroff` not acknowledged",
        &output,
    )?;
    check(
        verdict == Verdict::Success,
        &format!("exit verdict {verdict:?}"),
        &output,
    )
}

/// The VBS platform: vmm-lite offers the Hyper-V interface, Parapet finds it (banner
/// `platform=hv_vtl`), enables the hypercall page, and its hypercall tests pass on every VP.
fn vmm_lite_vbs_selftest() -> Result<(), Failed> {
    let mut vmm = vmm_lite(Flavor::SelfTest, CPUS, None)?;
    vmm.platform = "vbs";
    let run = vmm.run_timed(None, TIMEOUT).map_err(|e| format!("{e:#}"))?;
    check(
        run.console.contains("GetVpRegisters says VP index 0"),
        "the boot-time hypercall did not answer",
        &run.output,
    )?;
    check_selftest_run_on(
        Arch::X86_64,
        "hv_vtl",
        MIN_FIRMWARE_TESTS + HV_FIRMWARE_TESTS,
        run.verdict,
        &run.output,
    )
}

fn vmm_lite(flavor: Flavor, vps: u32, cmdline: Option<&str>) -> Result<VmmLite, Failed> {
    let binary = build::vmm_lite().map_err(|e| format!("{e:#}"))?;
    let igvm = build::igvm(flavor).map_err(|e| format!("{e:#}"))?;
    Ok(VmmLite {
        binary,
        igvm,
        vps,
        memory_mib: MEMORY_MIB,
        cmdline: cmdline.map(String::from),
        platform: "native",
        vtl0: None,
    })
}

/// vmm-lite boots the IGVM file on KVM with two VPs, and the in-firmware suite passes there
/// as it does under QEMU.
fn vmm_lite_selftest() -> Result<(), Failed> {
    let run = vmm_lite(Flavor::SelfTest, CPUS, None)?
        .run_timed(None, TIMEOUT)
        .map_err(|e| format!("{e:#}"))?;
    check_selftest_run(Arch::X86_64, run.verdict, &run.console)
}

/// The command line reaches the firmware through the IGVM parameter area, and a firmware
/// failure becomes vmm-lite's failure status.
fn vmm_lite_reports_firmware_failure() -> Result<(), Failed> {
    let run = vmm_lite(Flavor::SelfTest, 1, Some("parapet.test=panic"))?
        .run_timed(None, TIMEOUT)
        .map_err(|e| format!("{e:#}"))?;
    check(
        run.verdict == Verdict::Failure,
        &format!("exit verdict {:?}, wanted Failure", run.verdict),
        &run.output,
    )?;
    check(
        run.console
            .contains("PANIC on cpu0 at boot/src/selftest/mod.rs:"),
        "panic location not printed",
        &run.output,
    )
}

/// COM1 to a file: the whole console (banner, `parapet: ready`, the suite) lands there, and
/// none of it on standard output.
fn vmm_lite_serial_to_a_file() -> Result<(), Failed> {
    let vmm = vmm_lite(Flavor::SelfTest, CPUS, None)?;
    let path = std::env::temp_dir().join(format!("parapet-com1-{}.log", std::process::id()));
    let mut cmd = vmm.command();
    cmd.arg("--serial").arg(format!("file:{}", path.display()));
    let run = run_command(cmd, verdict, None, TIMEOUT).map_err(|e| format!("{e:#}"))?;
    let console = std::fs::read_to_string(&path);
    std::fs::remove_file(&path).ok();
    let console =
        console.map_err(|e| format!("reading {}: {e}\n{}", path.display(), run.output))?;
    check_selftest_run(Arch::X86_64, run.verdict, &console)?;
    check(
        !run.console.contains("parapet"),
        "console output reached standard output",
        &run.output,
    )
}

/// `vmm-lite --help` documents every option of `run`, not only the subcommands.
fn vmm_lite_help_documents_every_option() -> Result<(), Failed> {
    let binary = build::vmm_lite().map_err(|e| format!("{e:#}"))?;
    let out = std::process::Command::new(&binary)
        .arg("--help")
        .output()
        .map_err(|e| e.to_string())?;
    let help = String::from_utf8_lossy(&out.stdout);
    check(out.status.success(), "--help failed", &help)?;
    let options = [
        "--igvm",
        "--mem",
        "--vps",
        "--cmdline",
        "--serial",
        "--platform",
        "--vtl0",
        "--kvm-device",
    ];
    for option in options {
        check(
            help.contains(&format!("{option} <")),
            &format!("`{option}` is not documented"),
            &help,
        )?;
    }
    Ok(())
}

/// CRC-32 (IEEE 802.3: reflected, polynomial 0xEDB88320), the IGVM header checksum.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A minimal valid IGVM file for SEV-SNP only, encoded here from the IGVM spec (v1): the fixed
/// header IGVM_FIXED_HEADER (magic "IGVM", format version, variable headers' offset and size,
/// file size, CRC32 of the fixed and variable headers taken with the checksum zero), one
/// IGVM_VHS_SUPPORTED_PLATFORM (type 0x1: mask, highest VTL, platform type SEV-SNP = 2,
/// version 1, shared GPA boundary) and one IGVM_VHS_PAGE_DATA (type 0x302: a zero page, file
/// offset 0). The file data section must not be empty, so it holds 8 unused bytes.
fn snp_only_igvm() -> Vec<u8> {
    const FIXED_HEADER_SIZE: u32 = 24;
    const SUPPORTED_PLATFORM: u32 = 0x1;
    const PAGE_DATA: u32 = 0x302;
    const SEV_SNP: u8 = 2;
    let mut variable = Vec::new();
    variable.extend(SUPPORTED_PLATFORM.to_le_bytes());
    variable.extend(16u32.to_le_bytes());
    variable.extend(1u32.to_le_bytes()); // compatibility mask
    variable.extend([0, SEV_SNP]); // highest VTL, platform type
    variable.extend(1u16.to_le_bytes()); // platform version
    variable.extend(0u64.to_le_bytes()); // shared GPA boundary
    variable.extend(PAGE_DATA.to_le_bytes());
    variable.extend(24u32.to_le_bytes());
    variable.extend(0x1000u64.to_le_bytes()); // GPA
    variable.extend(1u32.to_le_bytes()); // compatibility mask
    variable.extend([0; 12]); // file offset (a zero page), flags, data type, reserved
    let total = FIXED_HEADER_SIZE + variable.len() as u32 + 8;
    let mut file = Vec::new();
    for field in [
        u32::from_le_bytes(*b"IGVM"),
        1,
        FIXED_HEADER_SIZE,
        variable.len() as u32,
        total,
        0,
    ] {
        file.extend(field.to_le_bytes());
    }
    file.extend(&variable);
    let checksum = crc32(&file);
    file[20..24].copy_from_slice(&checksum.to_le_bytes());
    file.extend([0; 8]);
    file
}

/// Bad input gets a non-zero status and an error that names the problem, never a panic.
fn vmm_lite_refuses_bad_input() -> Result<(), Failed> {
    let binary = build::vmm_lite().map_err(|e| format!("{e:#}"))?;
    let igvm = build::igvm(Flavor::Normal).map_err(|e| format!("{e:#}"))?;
    let dir = std::env::temp_dir().join(format!("parapet-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let good = std::fs::read(&igvm).map_err(|e| e.to_string())?;
    let truncated = dir.join("truncated.igvm");
    std::fs::write(&truncated, &good[..good.len() / 2]).map_err(|e| e.to_string())?;
    let corrupted = dir.join("corrupted.igvm");
    let mut bad = good.clone();
    bad[40] ^= 0xff;
    std::fs::write(&corrupted, &bad).map_err(|e| e.to_string())?;
    let snp_only = dir.join("snp-only.igvm");
    std::fs::write(&snp_only, snp_only_igvm()).map_err(|e| e.to_string())?;
    let snp_only = snp_only.display().to_string();
    let igvm = igvm.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--igvm".into(), "/nonexistent.igvm".into()],
            "cannot read /nonexistent.igvm",
        ),
        (
            vec!["--igvm".into(), truncated.display().to_string()],
            "is not a valid IGVM file",
        ),
        (
            vec!["--igvm".into(), corrupted.display().to_string()],
            "is not a valid IGVM file",
        ),
        (
            vec!["--igvm".into(), igvm.clone(), "--vps".into(), "0".into()],
            "--vps 0",
        ),
        (
            vec!["--igvm".into(), igvm.clone(), "--mem".into(), "16M".into()],
            "needs memory up to",
        ),
        (
            vec!["--igvm".into(), igvm.clone(), "--mem".into(), "4G".into()],
            "--mem 4G",
        ),
        (
            vec![
                "--igvm".into(),
                igvm.clone(),
                "--serial".into(),
                "tcp:1".into(),
            ],
            "--serial tcp:1",
        ),
        (
            vec!["--igvm".into(), igvm.clone(), "--frobnicate".into()],
            "--frobnicate",
        ),
        (vec![], "--igvm"),
        (
            vec!["--igvm".into(), snp_only.clone()],
            "has no native platform",
        ),
        (
            vec!["--igvm".into(), snp_only, "--platform".into(), "vbs".into()],
            "has no vbs platform",
        ),
        (
            vec![
                "--igvm".into(),
                igvm.clone(),
                "--kvm-device".into(),
                "/nonexistent-kvm".into(),
            ],
            "cannot use /nonexistent-kvm for KVM",
        ),
        (
            vec![
                "--igvm".into(),
                igvm.clone(),
                "--kvm-device".into(),
                "/dev/null".into(),
            ],
            "cannot use /dev/null for KVM",
        ),
    ];
    for (args, expect) in cases {
        let out = std::process::Command::new(&binary)
            .arg("run")
            .args(&args)
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        check(
            out.status.code() == Some(2),
            &format!("{args:?} exited with {:?}, wanted 2", out.status.code()),
            &stderr,
        )?;
        check(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            &format!("{args:?} panicked"),
            &stderr,
        )?;
        check(
            first.contains(expect),
            &format!("{args:?}: first line does not say `{expect}`"),
            &stderr,
        )?;
        check(
            stderr.lines().count() == 1,
            &format!("{args:?}: more than one line"),
            &stderr,
        )?;
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let kvm = kvm_usable();
    if let Err(why) = &kvm {
        eprintln!("x86_64 KVM boot skipped: {why}");
    }
    let trials = vec![
        Trial::test("x86_64_tcg_selftest_passes_on_2_cpus", || {
            selftest(Arch::X86_64, Accel::Tcg)
        }),
        Trial::test("vmm_lite_boots_igvm_selftest_on_2_vps", vmm_lite_selftest)
            .with_ignored_flag(kvm.is_err()),
        Trial::test(
            "vmm_lite_reports_firmware_failure",
            vmm_lite_reports_firmware_failure,
        )
        .with_ignored_flag(kvm.is_err()),
        Trial::test("vmm_lite_refuses_bad_input", vmm_lite_refuses_bad_input),
        Trial::test(
            "vmm_lite_help_documents_every_option",
            vmm_lite_help_documents_every_option,
        ),
        Trial::test("vmm_lite_serial_to_a_file", vmm_lite_serial_to_a_file)
            .with_ignored_flag(kvm.is_err()),
        Trial::test(
            "vmm_lite_vbs_platform_offers_the_hv_interface",
            vmm_lite_vbs_selftest,
        )
        .with_ignored_flag(kvm.is_err()),
        Trial::test("x86_64_kvm_selftest_passes_on_2_cpus", || {
            selftest(Arch::X86_64, Accel::Kvm)
        })
        .with_ignored_flag(kvm.is_err()),
        Trial::test("aarch64_tcg_selftest_passes_on_2_cpus", || {
            selftest(Arch::Aarch64, Accel::Tcg)
        }),
        Trial::test(
            "aarch64_gicv2_selftest_passes_on_2_cpus",
            selftest_aarch64_gicv2,
        ),
        Trial::test("x86_64_panic_exits_with_failure_and_location", || {
            panic_is_a_failure(Arch::X86_64)
        }),
        Trial::test("aarch64_panic_exits_with_failure_and_location", || {
            panic_is_a_failure(Arch::Aarch64)
        }),
        Trial::test("x86_64_early_fault_is_reported_and_fails", || {
            early_fault_is_reported(Arch::X86_64)
        }),
        Trial::test("aarch64_early_fault_is_reported_and_fails", || {
            early_fault_is_reported(Arch::Aarch64)
        }),
        Trial::test("aarch64_below_el2_is_refused", aarch64_below_el2_is_refused),
        Trial::test("x86_64_fatal_exception_is_reported_and_fails", || {
            fatal_exception_is_reported(Arch::X86_64)
        }),
        Trial::test("aarch64_fatal_exception_is_reported_and_fails", || {
            fatal_exception_is_reported(Arch::Aarch64)
        }),
        Trial::test("x86_64_monitor_answers_console_input", || {
            monitor_answers_console_input(Arch::X86_64)
        }),
        Trial::test("aarch64_monitor_answers_console_input", || {
            monitor_answers_console_input(Arch::Aarch64)
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}

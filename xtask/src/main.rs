//! `cargo xtask`: build Parapet's images, boot them under QEMU, run every test.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xtask::qemu::{kvm_usable, Accel, Machine, Verdict};
use xtask::{build, setup, Arch, Flavor};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build and run Parapet")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build every firmware image into target/parapet/<arch>/.
    Build,
    /// Boot the firmware under QEMU with the console on this terminal.
    Qemu {
        #[arg(long, value_enum, default_value = "x86_64")]
        arch: Arch,
        #[arg(long, value_enum, default_value = "tcg")]
        accel: Accel,
        /// Boot the build with the in-firmware test suite.
        #[arg(long)]
        test: bool,
        /// The machine's CPUs (Parapet's, and with it the guest's).
        #[arg(long, default_value_t = 2)]
        smp: u32,
        /// The machine's RAM: `512`, `512M` or `1G` (MiB without a unit).
        #[arg(long, default_value = "256", value_parser = xtask::linux::parse_mib)]
        mem: u32,
        /// The command line of the kernel QEMU boots: Parapet's (e.g. `parapet.log=debug`), or
        /// with --kernel the guest kernel's (default `console=ttyS0` on x86_64,
        /// `console=ttyAMA0` on aarch64).
        #[arg(long)]
        append: Option<String>,
        /// Parapet's command line when --append is the guest kernel's (with --kernel).
        #[arg(long, requires = "kernel")]
        parapet_append: Option<String>,
        /// Stop before the first instruction and wait for gdb on localhost:1234.
        #[arg(long)]
        gdb: bool,
        /// aarch64: GIC version of QEMU's virt board (2 is QEMU's default).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
        gic: u8,
        /// A test guest for Parapet to host (x86_64: under the svm backend, which QEMU TCG's
        /// `-cpu max` offers, as the PVH module; aarch64: under the el2 backend, as the initrd).
        #[arg(long, value_enum)]
        guest: Option<build::Guest>,
        /// A Linux kernel image (x86_64 bzImage, arm64 Image) for Parapet to boot as its guest
        /// (under svm on x86_64, el2 on aarch64), packed with --initrd and --append into a
        /// guest bundle and passed as the boot module. Console input goes to the guest's UART.
        #[arg(long, conflicts_with = "guest")]
        kernel: Option<PathBuf>,
        /// The initrd of the --kernel guest (e.g. `cargo xtask initramfs`'s).
        #[arg(long, requires = "kernel")]
        initrd: Option<PathBuf>,
    },
    /// The demo: vmm-lite boots parapet.igvm on KVM and its console monitor answers
    /// (`--accel tcg`: QEMU TCG with the PVH image instead).
    Run {
        #[arg(long, value_enum, default_value = "kvm")]
        accel: Accel,
    },
    /// Install what is missing, build, and run every test tier.
    Test,
    /// Install the Rust targets, components and QEMU the project needs, and fetch the Debian
    /// kernels and busybox the Linux boot tests run, for both architectures (idempotent,
    /// cached).
    Setup,
    /// Measure image sizes, memory in use at ready, and TCG boot time to ready.
    Report,
    /// Run a benchmark: `boot` (vmm-lite + IGVM against QEMU/KVM + PVH, time to ready),
    /// `vtl` (round trips: vmm-lite direct, the VTL switch floor, through Parapet), or
    /// `hosted` (the svm and el2 backends under QEMU TCG: exit round trip, time to the
    /// guest's first line), or `linux` (Debian's kernel to its /init under Parapet's svm and
    /// el2 backends against QEMU TCG booting it directly, on each architecture), or `tpm`
    /// (TPM2_PCR_Extend and ECDSA P-256 TPM2_Sign per second: Parapet's TPM in vmm-lite
    /// tpm-server against swtpm, the same command octets to both; needs swtpm).
    Bench {
        #[arg(value_parser = ["boot", "vtl", "hosted", "linux", "tpm"])]
        name: String,
    },
    /// Fetch Debian's stock kernels (cached under target/kernels/, arm64's with the modules
    /// its TPM needs), unpack the x86_64 one's vmlinux beside it, and print where they are.
    Kernels,
    /// Build the initramfs for guests running Debian's stock kernel (its static busybox is
    /// fetched from Debian and cached under target/initramfs/<arch>/) and print its path.
    Initramfs {
        #[arg(long, value_enum)]
        arch: Arch,
        /// Where to write it (default: target/initramfs/<arch>/initramfs.cpio).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Fuzz the TPM with cargo-fuzz (fuzz/): its command parser (`tpm_command`), its CRB
    /// registers (`tpm_crb`) and its FIFO interface on SPI (`tpm_tis_spi`), each for `--seconds`, on stable Rust without a sanitizer.
    /// Installs cargo-fuzz and a C++ compiler when missing; fails on a crash, whose input is
    /// left in fuzz/artifacts/<target>/.
    Fuzz {
        #[arg(long, default_value_t = 30)]
        seconds: u32,
    },
    /// Run clippy with the workspace lints (every unsafe block documented) on host crates and
    /// on the firmware for both architectures.
    Lint,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Build => {
            setup::rust()?;
            for image in build::all()? {
                println!("{}", image.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Qemu {
            arch,
            accel,
            test,
            smp,
            mem,
            append,
            gdb,
            gic,
            guest,
            kernel,
            initrd,
            parapet_append,
        } => {
            setup::all()?;
            let (guest, append) = match (guest, kernel) {
                (Some(guest), _) if !guest.exists_for(arch) => {
                    anyhow::bail!("the {} guest exists for x86_64 only", guest.name())
                }
                (Some(guest), _) => {
                    build::guests_for(arch)?;
                    (Some(build::guest_path(arch, guest)), append)
                }
                (None, Some(kernel)) => {
                    let cmdline = append
                        .as_deref()
                        .unwrap_or(xtask::linux::default_cmdline(arch));
                    let bundle = xtask::linux::bundle_path(&format!("qemu-{arch}"));
                    xtask::linux::write_bundle(arch, &kernel, initrd.as_deref(), cmdline, &bundle)?;
                    eprintln!(
                        "xtask: {} with command line {cmdline:?} is the guest, as {}",
                        kernel.display(),
                        bundle.display()
                    );
                    (Some(bundle), parapet_append)
                }
                (None, None) => (None, append),
            };
            let flavor = if test {
                Flavor::SelfTest
            } else {
                Flavor::Normal
            };
            let image = build::firmware(arch, flavor)?;
            let machine = Machine {
                arch,
                accel,
                image,
                cpus: smp,
                memory_mib: mem,
                cmdline: append,
                gdb,
                gic_version: gic,
                guest,
            };
            if gdb {
                eprintln!(
                    "xtask: QEMU waits for gdb: gdb {} -ex 'target remote localhost:1234'",
                    machine.image.with_extension("debug.elf").display()
                );
            }
            report(machine.run_interactive()?)
        }
        Cmd::Run { accel } => demo(accel),
        Cmd::Test => test(),
        Cmd::Bench { name } if name == "tpm" => {
            // Host processes only: no firmware, kernels or QEMU to set up.
            xtask::tpm_bench::tpm()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench { name } => {
            setup::all()?;
            match name.as_str() {
                "boot" => xtask::bench::boot()?,
                "vtl" => xtask::bench::vtl()?,
                "hosted" => xtask::bench::hosted()?,
                "linux" => xtask::bench::linux()?,
                other => anyhow::bail!("no benchmark named {other}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kernels => {
            for arch in Arch::ALL {
                let image = xtask::kernels::debian_kernel(arch)?;
                let size = std::fs::metadata(&image)?.len();
                println!("{arch}: {} ({size} bytes)", image.display());
                if arch == Arch::X86_64 {
                    let vmlinux = xtask::kernels::vmlinux_of(&image)?;
                    let size = std::fs::metadata(&vmlinux)?.len();
                    println!("{arch}: {} ({size} bytes, uncompressed)", vmlinux.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Initramfs { arch, out } => {
            let out = out.unwrap_or_else(|| xtask::initramfs::default_out(arch));
            xtask::initramfs::build(arch, &out)?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Lint => Ok(if lint()? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Cmd::Fuzz { seconds } => {
            let outcomes = xtask::fuzz::run_all(seconds)?;
            Ok(if outcomes.iter().all(|o| o.passed) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Report => {
            setup::all()?;
            xtask::report::run()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Setup => {
            setup::all()?;
            setup::linux_guests()?;
            setup::cargo_fuzz()?;
            println!("xtask: set-up complete");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report(verdict: Verdict) -> Result<ExitCode> {
    match verdict {
        Verdict::Success => Ok(ExitCode::SUCCESS),
        other => {
            eprintln!("xtask: firmware ended with {other:?}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The demo: vmm-lite boots parapet.igvm on KVM with two VPs and its monitor on the console
/// (QEMU TCG with the PVH image where KVM is not usable). Interactive on a terminal; otherwise
/// it types a few commands itself and powers off.
fn demo(accel: Accel) -> Result<ExitCode> {
    setup::all()?;
    const SCRIPT: &str = "help\ncpus\nmem\nuptime\npoweroff\n";
    let interactive = std::io::stdin().is_terminal();
    if accel == Accel::Kvm {
        match kvm_usable() {
            Ok(()) => {
                build::guests_for(Arch::X86_64)?;
                let vmm = xtask::vmm::VmmLite {
                    binary: build::vmm_lite()?,
                    igvm: build::igvm(Flavor::Normal)?,
                    vps: 2,
                    memory_mib: 256,
                    cmdline: None,
                    platform: "vbs",
                    vtl0: Some(build::guest_path(Arch::X86_64, build::Guest::Hello)),
                };
                println!(
                    "xtask: vmm-lite boots {} in VTL2, with the hello guest in VTL0",
                    vmm.igvm.display()
                );
                if interactive {
                    return report(vmm.run_interactive()?);
                }
                let run = vmm.run_timed(None, Duration::from_secs(120))?;
                print!("{}", run.output);
                return report(run.verdict);
            }
            Err(why) => println!("xtask: {why}; booting under QEMU TCG instead"),
        }
    }
    let image = build::firmware(Arch::X86_64, Flavor::Normal)?;
    let machine = Machine {
        arch: Arch::X86_64,
        accel: Accel::Tcg,
        image,
        cpus: 2,
        memory_mib: 256,
        cmdline: None,
        gdb: false,
        gic_version: 3,
        guest: None,
    };
    if interactive {
        println!(
            "xtask: booting Parapet under QEMU TCG; type `help` at the prompt, `poweroff` to leave"
        );
        return report(machine.run_interactive()?);
    }
    let (verdict, output) = machine.run_captured(Some(SCRIPT), Duration::from_secs(120))?;
    print!("{output}");
    report(verdict)
}

/// rustfmt, and clippy over host crates, both firmware targets and the test guests; true
/// when clean.
fn lint() -> Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = xtask::workspace_root();
    let mut runs: Vec<Vec<String>> = vec![vec![
        "clippy".into(),
        "--workspace".into(),
        "--all-targets".into(),
    ]];
    for arch in Arch::ALL {
        for features in [None, Some("selftest")] {
            let mut args: Vec<String> = [
                "clippy",
                "-p",
                "parapet-boot",
                "--release",
                "--target",
                arch.rust_target(),
            ]
            .map(String::from)
            .to_vec();
            args.extend([
                "--target-dir".into(),
                root.join("target/firmware/lint").display().to_string(),
            ]);
            if let Some(f) = features {
                args.extend(["--features".into(), f.into()]);
            }
            runs.push(args);
        }
    }
    for arch in Arch::ALL {
        runs.push(
            [
                "clippy",
                "-p",
                "parapet-test-guests",
                "--release",
                "--bins",
                "--target",
                arch.rust_target(),
                "--target-dir",
            ]
            .map(String::from)
            .into_iter()
            .chain([root.join("target/guests/lint").display().to_string()])
            .collect(),
        );
    }
    let mut clean = true;
    let formatted = Command::new(&cargo)
        .current_dir(&root)
        .args(["fmt", "--all", "--check"])
        .status()
        .context("running cargo fmt")?;
    if !formatted.success() {
        eprintln!("xtask: `cargo fmt --all --check` found unformatted code; run `cargo fmt --all`");
        clean = false;
    }
    for args in runs {
        let status = Command::new(&cargo)
            .current_dir(&root)
            .args(&args)
            .args(["--quiet", "--", "-D", "warnings"])
            .status()
            .context("running cargo clippy")?;
        if !status.success() {
            eprintln!("xtask: `cargo {}` found problems", args.join(" "));
            clean = false;
        }
    }
    Ok(clean)
}

/// How long `cargo xtask test` fuzzes each target.
const TEST_FUZZ_SECONDS: u32 = 20;

/// Every tier: lints, host unit tests, then the QEMU boots (in qemu-tests), then the fuzz
/// targets for [`TEST_FUZZ_SECONDS`] each. Ends with one summary line, in which a lint
/// failure counts as a failed test and each fuzz target as a test of its own.
fn test() -> Result<ExitCode> {
    setup::all()?;
    setup::linux_guests()?;
    let lint_clean = lint()?;
    build::all()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(xtask::workspace_root())
        .args(["test", "--workspace", "--color", "never"])
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split([';', '.']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next()) {
                    let n: u64 = n.parse().unwrap_or(0);
                    match what {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        "ignored" => ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() && failed == 0 {
        // A build error or a crashed test binary: count it so the summary cannot read green.
        failed += 1;
    }
    if lint_clean {
        passed += 1;
    } else {
        failed += 1;
    }
    let fuzz_clean = match xtask::fuzz::run_all(TEST_FUZZ_SECONDS) {
        Ok(outcomes) => {
            for outcome in &outcomes {
                println!(
                    "fuzz {} ... {}",
                    outcome.target,
                    if outcome.passed { "ok" } else { "FAILED" }
                );
            }
            let clean = outcomes.iter().filter(|o| o.passed).count() as u64;
            passed += clean;
            failed += outcomes.len() as u64 - clean;
            clean == outcomes.len() as u64
        }
        Err(e) => {
            eprintln!("xtask: the fuzz tier could not run: {e:#}");
            failed += xtask::fuzz::TARGETS.len() as u64;
            false
        }
    };
    println!("{passed} passed, {failed} failed, {ignored} skipped");
    Ok(if status.success() && lint_clean && fuzz_clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

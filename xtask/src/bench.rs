//! `cargo xtask bench NAME`: ours against a reference, measured side by side in one run
//! (medians of several runs), ending with one line `NAME ratio=X` (X = ours / reference).

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::qemu::{kvm_usable, Accel, Machine, Verdict, Watch};
use crate::vmm::VmmLite;
use crate::{build, Arch, Flavor};

const RUNS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(120);

/// The middle value, or the mean of the two middle ones when there is an even number.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2
    } else {
        v[mid]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Process start to `parapet: ready`, same firmware and machine size: vmm-lite loading the
/// IGVM file against QEMU/KVM booting the PVH ELF. Runs alternate so drift hits both.
pub fn boot() -> Result<()> {
    kvm_usable()
        .map_err(anyhow::Error::msg)
        .context("the boot benchmark compares KVM boots")?;
    let vmm = VmmLite {
        binary: build::vmm_lite()?,
        igvm: build::igvm(Flavor::Normal)?,
        vps: 2,
        memory_mib: 256,
        cmdline: None,
        platform: "native",
        vtl0: None,
    };
    let qemu = Machine {
        arch: Arch::X86_64,
        accel: Accel::Kvm,
        image: build::firmware(Arch::X86_64, Flavor::Normal)?,
        cpus: 2,
        memory_mib: 256,
        cmdline: None,
        gdb: false,
        gic_version: 3,
        guest: None,
    };
    let igvm_size = std::fs::metadata(&vmm.igvm)?.len();
    let (mut ours, mut reference) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let run = vmm.run_timed(Some("poweroff\n"), TIMEOUT)?;
        match (run.ready_after, run.verdict) {
            (Some(t), Verdict::Success) => ours.push(t),
            _ => bail!(
                "vmm-lite boot ended with {:?}:\n{}",
                run.verdict,
                run.output
            ),
        }
        let run = qemu.run_timed(Some("poweroff\n"), TIMEOUT)?;
        match (run.ready_after, run.verdict) {
            (Some(t), Verdict::Success) => reference.push(t),
            _ => bail!("QEMU boot ended with {:?}:\n{}", run.verdict, run.output),
        }
    }
    let (ours_ms, reference_ms) = (ms(median(ours.clone())), ms(median(reference.clone())));
    println!("boot: IGVM file {} ({igvm_size} bytes)", vmm.igvm.display());
    println!(
        "boot: vmm-lite + IGVM, -smp 2, 256 MiB: median {ours_ms:.0} ms over {RUNS} runs {:?}",
        ours.iter().map(|d| ms(*d) as u64).collect::<Vec<_>>()
    );
    println!(
        "boot: QEMU/KVM + PVH, -smp 2, 256 MiB: median {reference_ms:.0} ms over {RUNS} runs {:?}",
        reference.iter().map(|d| ms(*d) as u64).collect::<Vec<_>>()
    );
    println!("boot ratio={:.3}", ours_ms / reference_ms);
    Ok(())
}

/// Runs `vmm-lite bench <what>` and returns its mean round trip.
fn vmm_lite_round_trip(binary: &std::path::Path, what: &str, iterations: u32) -> Result<Duration> {
    let out = std::process::Command::new(binary)
        .args(["bench", what, "--iterations", &iterations.to_string()])
        .output()
        .with_context(|| format!("running {} bench {what}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "vmm-lite bench {what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let micros: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("vmm-lite bench {what} printed no number"))?;
    Ok(Duration::from_secs_f64(micros / 1e6))
}

/// Parapet's mean intercept round trip (VTL return to the exit handled), from its power-off
/// report (`... (N us per intercept round trip)`).
fn paravisor_round_trip(output: &str) -> Option<Duration> {
    let line = output
        .lines()
        .find(|l| l.contains(" us per intercept round trip)"))?;
    let micros: u64 = line
        .rsplit_once('(')?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Duration::from_micros(micros))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Round trips through the VTL interface on KVM, in one run, alternating: (a) a port write
/// vmm-lite answers itself, no paravisor; (b) the floor of the two-view design, a VTL call
/// from VTL0 answered by an immediate VTL return; (c) VTL0 reading COM1's line status
/// through Parapet. Medians of the runs' means.
pub fn vtl() -> Result<()> {
    kvm_usable()
        .map_err(anyhow::Error::msg)
        .context("the VTL benchmark runs on KVM")?;
    const ITERATIONS: u32 = 20_000;
    let binary = build::vmm_lite()?;
    build::guests_for(Arch::X86_64)?;
    let parapet = VmmLite {
        binary: binary.clone(),
        igvm: build::igvm(Flavor::Normal)?,
        vps: 1,
        memory_mib: 256,
        cmdline: None,
        platform: "vbs",
        vtl0: Some(build::guest_path(Arch::X86_64, build::Guest::Bench)),
    };
    let (mut direct, mut floor, mut paravisor) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        direct.push(vmm_lite_round_trip(&binary, "direct", ITERATIONS)?);
        floor.push(vmm_lite_round_trip(&binary, "floor", ITERATIONS)?);
        let boot = parapet.run_timed(None, TIMEOUT)?;
        if boot.verdict != Verdict::Success {
            bail!(
                "run {run}: Parapet with the bench guest ended {:?}:\n{}",
                boot.verdict,
                boot.output
            );
        }
        paravisor.push(
            paravisor_round_trip(&boot.console)
                .context("Parapet did not report its time per intercept")?,
        );
        println!(
            "run {run}: direct {:.1} us, floor {:.1} us, paravisor {:.1} us",
            us(direct[run]),
            us(floor[run]),
            us(paravisor[run])
        );
    }
    let (a, b, c) = (median(direct), median(floor), median(paravisor));
    println!(
        "vtl direct={:.1} floor={:.1} paravisor={:.1}",
        us(a),
        us(b),
        us(c)
    );
    println!("vtl ratio={:.2}", c.as_secs_f64() / a.as_secs_f64());
    Ok(())
}

/// Parapet's mean exit round trip as a hosting backend reports it at power-off
/// (`... (N.N us per exit round trip)`).
fn hosted_round_trip(output: &str) -> Option<Duration> {
    let line = output
        .lines()
        .find(|l| l.contains(" us per exit round trip)"))?;
    let micros: f64 = line
        .rsplit_once('(')?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Duration::from_secs_f64(micros / 1e6))
}

/// Parapet hosting its guests under QEMU TCG, per backend (svm on x86_64, el2 on aarch64), in
/// one run: the exit round trip while the bench guest reads its UART's status 1000 times
/// through Parapet, and QEMU's start to the hello guest's first line beside QEMU's start to
/// `parapet: ready` in the same runs. Ends `hosted ratio=X`, X the larger of the backends'
/// first guest line / Parapet ready: what loading and starting the guest adds.
pub fn hosted() -> Result<()> {
    let mut worst_ratio = 0f64;
    for (arch, backend) in [(Arch::X86_64, "svm"), (Arch::Aarch64, "el2")] {
        build::guests_for(arch)?;
        let machine = |guest| -> Result<Machine> {
            Ok(Machine {
                arch,
                accel: Accel::Tcg,
                image: build::firmware(arch, Flavor::Normal)?,
                cpus: 2,
                memory_mib: 256,
                cmdline: None,
                gdb: false,
                gic_version: 3,
                guest: Some(build::guest_path(arch, guest)),
            })
        };
        let (bench, hello) = (machine(build::Guest::Bench)?, machine(build::Guest::Hello)?);
        let (mut exits, mut first_output, mut ready) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..RUNS {
            let timed = bench.run_timed(None, TIMEOUT)?;
            if timed.verdict != Verdict::Success {
                bail!(
                    "{backend} run {run}: the bench guest ended {:?}:\n{}",
                    timed.verdict,
                    timed.output
                );
            }
            exits.push(
                hosted_round_trip(&timed.console)
                    .context("Parapet did not report its exit round trip")?,
            );
            let timed = hello.run_timed(None, TIMEOUT)?;
            match (timed.ready_after, timed.guest_output_after, timed.verdict) {
                (Some(r), Some(g), Verdict::Success) => {
                    ready.push(r);
                    first_output.push(g);
                }
                _ => bail!(
                    "{backend} run {run}: the hello guest ended {:?}:\n{}",
                    timed.verdict,
                    timed.output
                ),
            }
            println!(
                "{backend} run {run}: exit {:.1} us, parapet ready {:.0} ms, guest's first line {:.0} ms",
                us(exits[run]),
                ms(ready[run]),
                ms(first_output[run])
            );
        }
        let (exit, ready, first) = (median(exits), median(ready), median(first_output));
        println!(
            "hosted {backend} exit={:.1} us ready={:.0} ms first_output={:.0} ms",
            us(exit),
            ms(ready),
            ms(first)
        );
        worst_ratio = worst_ratio.max(first.as_secs_f64() / ready.as_secs_f64());
    }
    println!("hosted ratio={worst_ratio:.3}");
    Ok(())
}

/// Debian's stock kernel with the busybox initramfs, QEMU's start to its /init's first line
/// (`parapet-init: started`), under QEMU TCG with 2 CPUs and 512 MiB, on each architecture in
/// turn: (a) under Parapet (the svm backend on x86_64, el2 on aarch64), the kernel, initramfs
/// and command line as one guest bundle; (b) QEMU booting the same three directly
/// (`-kernel`, `-initrd`, `-append`). Each run is killed at the line, so neither side waits
/// out the rest of the boot (the /init's prompt for a line among it). Runs alternate, medians
/// of [`LINUX_ROUNDS`] each; prints `linux <arch> ratio=X`, X = (a) / (b), per architecture
/// and ends `linux ratio=X`, X the larger of the two.
pub fn linux() -> Result<()> {
    let mut worst_ratio = 0f64;
    for arch in Arch::ALL {
        let ratio = linux_on(arch)?;
        println!("linux {arch} ratio={ratio:.3}");
        worst_ratio = worst_ratio.max(ratio);
    }
    println!("linux ratio={worst_ratio:.3}");
    Ok(())
}

/// The line the Linux benchmark times to: /init's first.
const STARTED: &str = "parapet-init: started";

/// [`linux`] on `arch`: prints its rounds and medians, returns (a) / (b).
fn linux_on(arch: Arch) -> Result<f64> {
    const LINUX_TIMEOUT: Duration = Duration::from_secs(300);
    let backend = match arch {
        Arch::X86_64 => "svm",
        Arch::Aarch64 => "el2",
    };
    let cmdline = format!("{} panic=-1", crate::linux::default_cmdline(arch));
    let (kernel, initramfs) = crate::linux::debian_guest(arch)?;
    let bundle = crate::linux::bundle_path(&format!("bench-linux-{arch}"));
    crate::linux::write_bundle(arch, &kernel, Some(&initramfs), &cmdline, &bundle)?;
    let parapet = Machine {
        arch,
        accel: Accel::Tcg,
        image: build::firmware(arch, Flavor::Normal)?,
        cpus: 2,
        memory_mib: 512,
        cmdline: None,
        gdb: false,
        gic_version: 3,
        guest: Some(bundle),
    };
    let to_started = Watch {
        line: Some(STARTED),
        stop_at_line: true,
        ..Watch::default()
    };
    // Killed at the line, so no exit status to judge.
    let direct_verdict = |status: std::process::ExitStatus| Verdict::Abnormal(status.code());
    let timed =
        |run: crate::qemu::Run, side: &str, round: usize| match (run.watched_after, run.verdict) {
            (Some(t), Verdict::Stopped) => Ok(t),
            _ => bail!(
                "{arch} round {round}: Linux {side} ended {:?} before `{STARTED}`:\n{}",
                run.verdict,
                run.output
            ),
        };
    let (mut ours, mut reference) = (Vec::new(), Vec::new());
    for round in 0..LINUX_ROUNDS {
        let run = parapet.run_watching(to_started, None, LINUX_TIMEOUT)?;
        ours.push(timed(run, "under Parapet", round)?);
        let run = crate::qemu::run_command_watching(
            direct_linux_command(arch, &kernel, &initramfs, &cmdline),
            direct_verdict,
            None,
            LINUX_TIMEOUT,
            to_started,
        )
        .with_context(|| format!("could not start qemu-system-{arch}"))?;
        reference.push(timed(run, "under QEMU alone", round)?);
        println!(
            "linux {arch} round {round}: under Parapet {:.0} ms, QEMU alone {:.0} ms",
            ms(ours[round]),
            ms(reference[round])
        );
    }
    let (a, b) = (median(ours), median(reference));
    println!(
        "linux {arch}: {} to `{STARTED}`, QEMU TCG, -smp 2, 512 MiB, medians of {LINUX_ROUNDS}: \
         under Parapet ({backend}) {:.0} ms, QEMU alone {:.0} ms",
        kernel.display(),
        ms(a),
        ms(b)
    );
    Ok(a.as_secs_f64() / b.as_secs_f64())
}

/// QEMU TCG booting `kernel` itself on `arch`'s board (no Parapet, no EL2 on aarch64), the
/// same size as Parapet's machine, its first UART on standard input and output.
fn direct_linux_command(
    arch: Arch,
    kernel: &std::path::Path,
    initramfs: &std::path::Path,
    cmdline: &str,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(format!("qemu-system-{arch}"));
    match arch {
        Arch::X86_64 => cmd.args(["-M", "q35"]),
        Arch::Aarch64 => cmd.args(["-M", "virt,gic-version=3"]),
    };
    cmd.args(["-accel", "tcg", "-cpu", "max", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", cmdline, "-smp", "2", "-m", "512", "-nodefaults"])
        .args(["-serial", "stdio", "-display", "none", "-no-reboot"]);
    cmd
}

/// Runs of each side in `cargo xtask bench linux`: a boot takes seconds under TCG.
const LINUX_ROUNDS: usize = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_even_counts_are_the_mean_of_the_middle_two() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        assert_eq!(median(ms(&[30, 10, 20])), Duration::from_millis(20));
        assert_eq!(median(ms(&[40, 10])), Duration::from_millis(25));
        assert_eq!(median(ms(&[7])), Duration::from_millis(7));
    }

    #[test]
    fn parapets_svm_report_gives_the_round_trip() {
        let line = "[ 0.3] cpu0 INFO svm: the guest powered off (success) after 1100 exits and 23 interrupts (12.5 us per exit round trip)";
        assert_eq!(
            hosted_round_trip(line),
            Some(Duration::from_micros(12_500) / 1000)
        );
        assert_eq!(hosted_round_trip("parapet: ready"), None);
    }

    #[test]
    fn parapets_report_gives_the_round_trip() {
        let line = "[ 1.2] cpu0 INFO hv_vtl: VTL0 powered off (success) after 1001 intercepts and 3 entries for our interrupts on VP 0 in 1900000 us (1898 us per intercept round trip)";
        assert_eq!(
            paravisor_round_trip(line),
            Some(Duration::from_micros(1898))
        );
        assert_eq!(paravisor_round_trip("parapet: ready"), None);
    }
}

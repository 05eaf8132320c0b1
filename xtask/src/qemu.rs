//! Running firmware under QEMU, and reading its verdict from QEMU's exit status.
//!
//! x86_64: `isa-debug-exit` on port 0xf4 turns the firmware's value v into status (v<<1)|1;
//! Parapet writes 0x10 for success (status 33) and 0x11 for failure (35).
//! aarch64: PSCI SYSTEM_OFF ends QEMU with status 0 (success); failure goes through the
//! semihosting SYS_EXIT call (0x18) with code 1, so QEMU exits with status 1.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::Arch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Tcg,
    Kvm,
}

/// One QEMU run.
#[derive(Clone, Debug)]
pub struct Machine {
    pub arch: Arch,
    pub accel: Accel,
    pub image: PathBuf,
    pub cpus: u32,
    pub memory_mib: u32,
    pub cmdline: Option<String>,
    /// Wait for gdb on TCP port 1234 before the first instruction (`-s -S`).
    pub gdb: bool,
    /// aarch64 only: the GIC version of QEMU's virt board (2 is QEMU's default, 3 ours).
    pub gic_version: u8,
    /// The guest for Parapet to host, passed as the boot module (`-initrd`).
    pub guest: Option<PathBuf>,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Run {
    pub verdict: Verdict,
    /// Standard output and error as they arrived, merged (lines of the two may interleave).
    pub output: String,
    /// Standard output alone: the console, with its lines whole.
    pub console: String,
    /// Time from starting QEMU to the `parapet: ready` line, if it came.
    pub ready_after: Option<Duration>,
    /// Time from starting QEMU to the guest's first console line (`vtl0| ` or `guest| `).
    pub guest_output_after: Option<Duration>,
    /// Time from starting QEMU to the first console line holding the text the run watched
    /// for (see [`run_command_watching`]), if it came.
    pub watched_after: Option<Duration>,
}

/// Whether `line` is one of the hosted guest's.
fn is_guest_line(line: &str) -> bool {
    line.starts_with("vtl0| ") || line.starts_with("guest| ")
}

/// How a run ended, as the firmware reported it through QEMU's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    /// QEMU ended some other way (crash, bad arguments, killed).
    Abnormal(Option<i32>),
    TimedOut,
}

pub fn verdict(arch: Arch, status: ExitStatus) -> Verdict {
    match (arch, status.code()) {
        (Arch::X86_64, Some(33)) | (Arch::Aarch64, Some(0)) => Verdict::Success,
        (Arch::X86_64, Some(35)) | (Arch::Aarch64, Some(1)) => Verdict::Failure,
        (_, code) => Verdict::Abnormal(code),
    }
}

/// Whether /dev/kvm can be used, or why not.
pub fn kvm_usable() -> Result<(), String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("/dev/kvm is not usable: {e}")),
    }
}

impl Machine {
    pub fn command(&self) -> Command {
        let mut cmd = match self.arch {
            Arch::X86_64 => {
                let mut c = Command::new("qemu-system-x86_64");
                c.args(["-M", "q35"]);
                match self.accel {
                    Accel::Tcg => c.args(["-accel", "tcg", "-cpu", "max"]),
                    // MSR 0x10a (arch capabilities) aborts QEMU on this host's KVM.
                    Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host,-arch-capabilities"]),
                };
                c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
                c
            }
            Arch::Aarch64 => {
                let mut c = Command::new("qemu-system-aarch64");
                c.arg("-M").arg(format!(
                    "virt,virtualization=on,gic-version={}",
                    self.gic_version
                ));
                c.args(["-cpu", "max"]);
                c.args(["-semihosting-config", "enable=on,target=native"]);
                match self.accel {
                    Accel::Tcg => c.args(["-accel", "tcg"]),
                    Accel::Kvm => c.args(["-accel", "kvm"]),
                };
                c
            }
        };
        cmd.args([
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-smp")
        .arg(self.cpus.to_string())
        .arg("-m")
        .arg(self.memory_mib.to_string())
        .arg("-kernel")
        .arg(&self.image);
        if let Some(line) = &self.cmdline {
            cmd.arg("-append").arg(line);
        }
        if let Some(guest) = &self.guest {
            cmd.arg("-initrd").arg(guest);
        }
        if self.gdb {
            cmd.args(["-s", "-S"]);
        }
        cmd
    }

    /// Runs with the console on this process's stdio; returns the verdict.
    pub fn run_interactive(&self) -> Result<Verdict> {
        let status = self
            .command()
            .status()
            .with_context(|| missing_qemu(self.arch))?;
        Ok(verdict(self.arch, status))
    }

    /// Runs with the console captured, feeding `input` once `parapet: ready` appears, and
    /// killing QEMU after `timeout`. Returns the verdict and everything printed.
    pub fn run_captured(
        &self,
        input: Option<&str>,
        timeout: Duration,
    ) -> Result<(Verdict, String)> {
        self.run_timed(input, timeout)
            .map(|r| (r.verdict, r.output))
    }

    /// As [`run_captured`](Self::run_captured), also timing QEMU's start to `parapet: ready`.
    pub fn run_timed(&self, input: Option<&str>, timeout: Duration) -> Result<Run> {
        self.run_watching(None, input, timeout)
    }

    /// As [`run_timed`](Self::run_timed), also timing QEMU's start to the first console line
    /// that contains `watch` ([`Run::watched_after`]).
    pub fn run_watching(
        &self,
        watch: Option<&str>,
        input: Option<&str>,
        timeout: Duration,
    ) -> Result<Run> {
        let arch = self.arch;
        run_command_watching(self.command(), |s| verdict(arch, s), input, timeout, watch)
            .with_context(|| missing_qemu(arch))
    }
}

/// Runs `cmd` with its output captured, feeding `input` once `parapet: ready` appears and
/// killing it after `timeout`; `judge` turns its exit status into a verdict.
pub fn run_command(
    cmd: Command,
    judge: impl Fn(ExitStatus) -> Verdict,
    input: Option<&str>,
    timeout: Duration,
) -> Result<Run> {
    run_command_watching(cmd, judge, input, timeout, None)
}

/// As [`run_command`], also timing the start to the first console line containing `watch`.
/// Console lines are looked at once each, as they complete, so a long console (a Linux boot)
/// costs no more per line than a short one.
pub fn run_command_watching(
    mut cmd: Command,
    judge: impl Fn(ExitStatus) -> Verdict,
    input: Option<&str>,
    timeout: Duration,
    watch: Option<&str>,
) -> Result<Run> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {:?}", cmd.get_program()))?;
    let mut stdout = child.stdout.take().context("child stdout")?;
    let mut stderr = child.stderr.take().context("child stderr")?;
    // Chunks tagged true for standard output.
    let (tx, rx) = std::sync::mpsc::channel::<(bool, Vec<u8>)>();
    let out_tx = tx.clone();
    std::thread::spawn(move || pump(&mut stdout, true, out_tx));
    std::thread::spawn(move || pump(&mut stderr, false, tx));
    let mut stdin = child.stdin.take();
    let (mut output, mut console) = (Vec::new(), Vec::new());
    let take =
        |output: &mut Vec<u8>, console: &mut Vec<u8>, (is_stdout, chunk): (bool, Vec<u8>)| {
            if is_stdout {
                console.extend_from_slice(&chunk);
            }
            output.extend_from_slice(&chunk);
        };
    let (mut ready_after, mut guest_output_after, mut watched_after) = (None, None, None);
    // The console's bytes up to here are whole lines already looked at.
    let mut scanned = 0;
    let start = Instant::now();
    let status = loop {
        while let Ok(chunk) = rx.try_recv() {
            take(&mut output, &mut console, chunk);
        }
        if let Some(end) = console[scanned..].iter().rposition(|&b| b == b'\n') {
            let now = start.elapsed();
            for line in String::from_utf8_lossy(&console[scanned..scanned + end]).lines() {
                if ready_after.is_none() && line.contains("parapet: ready") {
                    ready_after = Some(now);
                }
                if ready_after.is_some() && guest_output_after.is_none() && is_guest_line(line) {
                    guest_output_after = Some(now);
                }
                if watched_after.is_none() && watch.is_some_and(|w| line.contains(w)) {
                    watched_after = Some(now);
                }
            }
            scanned += end + 1;
        }
        if let (Some(text), Some(pipe), Some(_)) = (input, stdin.as_mut(), ready_after) {
            pipe.write_all(text.as_bytes()).ok();
            pipe.flush().ok();
            stdin = None;
        }
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        // Short: the boot-time report reads the ready line's arrival from this loop.
        std::thread::sleep(Duration::from_millis(1));
    };
    // Drain what the pipes still hold.
    let drain_until = Instant::now() + Duration::from_millis(500);
    while let Ok(chunk) = rx.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
        take(&mut output, &mut console, chunk);
    }
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace('\r', "");
    let verdict = status.map_or(Verdict::TimedOut, &judge);
    Ok(Run {
        verdict,
        output: text(&output),
        console: text(&console),
        ready_after,
        guest_output_after,
        watched_after,
    })
}

fn pump(from: &mut impl Read, is_stdout: bool, to: std::sync::mpsc::Sender<(bool, Vec<u8>)>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.send((is_stdout, buf[..n].to_vec())).is_err() {
            break;
        }
    }
}

fn missing_qemu(arch: Arch) -> String {
    format!("could not start qemu-system-{arch}; run `cargo xtask setup` to install QEMU")
}

/// Fails unless the QEMU binary for `arch` runs.
pub fn check_installed(arch: Arch) -> Result<()> {
    let ok = Command::new(format!("qemu-system-{arch}"))
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    match ok {
        Ok(s) if s.success() => Ok(()),
        _ => bail!("{}", missing_qemu(arch)),
    }
}

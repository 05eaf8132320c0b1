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
    /// Standard error alone: the VMM's own messages, with their lines whole.
    pub errors: String,
    /// Time from starting QEMU to the `parapet: ready` line, if it came.
    pub ready_after: Option<Duration>,
    /// Time from starting QEMU to the guest's first console line (`vtl0| ` or `guest| `).
    pub guest_output_after: Option<Duration>,
    /// Time from starting QEMU to the first console line holding the text the run watched
    /// for ([`Watch::line`]), if it came.
    pub watched_after: Option<Duration>,
    /// Time from starting QEMU to the input being written to its standard input, if it was.
    pub input_sent_after: Option<Duration>,
}

/// What a captured run looks for on the console, beyond `parapet: ready`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watch<'a> {
    /// Time the first console line containing this ([`Run::watched_after`]).
    pub line: Option<&'a str>,
    /// Feed the input once a console line contains this (the guest's prompt, say); `None`
    /// feeds it once `parapet: ready` appears.
    pub input_after: Option<&'a str>,
    /// End the run as soon as [`line`](Self::line) appears, killing QEMU: the verdict is
    /// [`Verdict::Stopped`]. For timing a boot to a line without waiting for the rest.
    pub stop_at_line: bool,
}

/// The line that releases a run's input when [`Watch::input_after`] names none.
pub const READY: &str = "parapet: ready";

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
    /// Killed on purpose once the watched line appeared ([`Watch::stop_at_line`]).
    Stopped,
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
        self.run_watching(Watch::default(), input, timeout)
    }

    /// As [`run_timed`](Self::run_timed), as `watch` says: timing QEMU's start to the first
    /// console line that contains [`Watch::line`], feeding `input` when the line
    /// [`Watch::input_after`] names appears, ending the run early.
    pub fn run_watching(
        &self,
        watch: Watch<'_>,
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
    run_command_watching(cmd, judge, input, timeout, Watch::default())
}

/// As [`run_command`], doing what `watch` says: timing the start to the first console line
/// containing [`Watch::line`] (and stopping there if asked), feeding `input` once a line
/// contains [`Watch::input_after`] ([`READY`] if it is `None`). Console lines are looked at
/// once each, as they complete, so a long console (a Linux boot) costs no more per line than
/// a short one, and the input goes out in the same pass of the loop as its line.
pub fn run_command_watching(
    mut cmd: Command,
    judge: impl Fn(ExitStatus) -> Verdict,
    input: Option<&str>,
    timeout: Duration,
    watch: Watch<'_>,
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
    let (mut output, mut console, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut take =
        |output: &mut Vec<u8>, console: &mut Vec<u8>, (is_stdout, chunk): (bool, Vec<u8>)| {
            if is_stdout {
                console.extend_from_slice(&chunk);
            } else {
                errors.extend_from_slice(&chunk);
            }
            output.extend_from_slice(&chunk);
        };
    let (mut ready_after, mut guest_output_after, mut watched_after) = (None, None, None);
    let input_after = watch.input_after.unwrap_or(READY);
    // Whether the line that releases the input has appeared, and when the input went out.
    let (mut input_due, mut input_sent_after) = (false, None);
    // The console's bytes up to here are whole lines already looked at.
    let mut scanned = 0;
    let start = Instant::now();
    let ended = loop {
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
                if watched_after.is_none() && watch.line.is_some_and(|w| line.contains(w)) {
                    watched_after = Some(now);
                }
                if !input_due && line.contains(input_after) {
                    input_due = true;
                }
            }
            scanned += end + 1;
        }
        if let (Some(text), Some(pipe), true) = (input, stdin.as_mut(), input_due) {
            pipe.write_all(text.as_bytes()).ok();
            pipe.flush().ok();
            stdin = None;
            input_sent_after = Some(start.elapsed());
        }
        if watch.stop_at_line && watched_after.is_some() {
            child.kill().ok();
            child.wait().ok();
            break Ended::Stopped;
        }
        if let Some(status) = child.try_wait()? {
            break Ended::Exited(status);
        }
        if start.elapsed() > timeout {
            child.kill().ok();
            child.wait().ok();
            break Ended::TimedOut;
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
    let verdict = match ended {
        Ended::Exited(status) => judge(status),
        Ended::TimedOut => Verdict::TimedOut,
        Ended::Stopped => Verdict::Stopped,
    };
    Ok(Run {
        verdict,
        output: text(&output),
        console: text(&console),
        errors: text(&errors),
        ready_after,
        guest_output_after,
        watched_after,
        input_sent_after,
    })
}

/// How the watching loop left the child.
enum Ended {
    Exited(ExitStatus),
    TimedOut,
    Stopped,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// bash, for `read -t`.
    fn bash(script: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", script]);
        cmd
    }

    fn judge(status: ExitStatus) -> Verdict {
        match status.code() {
            Some(0) => Verdict::Success,
            code => Verdict::Abnormal(code),
        }
    }

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn input_waits_for_the_line_it_is_told_to() {
        // Input sent at `parapet: ready` would be read in the first second, as `early`.
        let script = "echo 'parapet: ready'; \
            if read -r -t 1 early; then echo \"early [$early]\"; exit 0; fi; \
            echo 'type a line'; read -r line; echo \"read [$line]\"";
        let watch = Watch {
            input_after: Some("type a line"),
            ..Watch::default()
        };
        let run = run_command_watching(bash(script), judge, Some("hello\n"), LONG, watch).unwrap();
        assert_eq!(run.verdict, Verdict::Success, "{}", run.output);
        assert!(
            run.console.ends_with("type a line\nread [hello]\n"),
            "{}",
            run.console
        );
        assert!(run.input_sent_after.is_some());
    }

    #[test]
    fn input_goes_at_ready_by_default_and_never_without_its_line() {
        let script = "echo 'parapet: ready'; read -r line; echo \"read [$line]\"";
        let run = run_command(bash(script), judge, Some("hello\n"), LONG).unwrap();
        assert!(run.console.contains("read [hello]"), "{}", run.console);
        assert!(run.ready_after.is_some() && run.input_sent_after.is_some());
        let watch = Watch {
            input_after: Some("never printed"),
            ..Watch::default()
        };
        let script = "echo 'parapet: ready'; read -r -t 1 line || echo nothing";
        let run = run_command_watching(bash(script), judge, Some("x\n"), LONG, watch).unwrap();
        assert!(run.console.ends_with("nothing\n"), "{}", run.console);
        assert_eq!(run.input_sent_after, None);
    }

    #[test]
    fn a_run_can_stop_at_the_line_it_times() {
        let watch = Watch {
            line: Some("started"),
            stop_at_line: true,
            ..Watch::default()
        };
        let begun = Instant::now();
        let run =
            run_command_watching(bash("echo started; sleep 30"), judge, None, LONG, watch).unwrap();
        assert_eq!(run.verdict, Verdict::Stopped);
        assert!(run.watched_after.is_some());
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "{:?}",
            begun.elapsed()
        );
    }
}

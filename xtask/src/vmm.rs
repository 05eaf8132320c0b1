//! Running firmware under vmm-lite from an IGVM file.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::qemu::{run_command, Run, Verdict};

/// One vmm-lite run.
#[derive(Clone, Debug)]
pub struct VmmLite {
    pub binary: PathBuf,
    pub igvm: PathBuf,
    pub vps: u32,
    pub memory_mib: u32,
    pub cmdline: Option<String>,
    /// The IGVM platform to run: `native` or `vbs`.
    pub platform: &'static str,
    /// A VTL0 guest for the paravisor to run (`vbs` only).
    pub vtl0: Option<PathBuf>,
}

/// vmm-lite exits 0 when the firmware reports success and 1 when it reports failure; 2 is bad
/// input or a host problem and 3 a vCPU KVM cannot run (with one line saying which, where),
/// both `Abnormal`.
pub fn verdict(status: ExitStatus) -> Verdict {
    match status.code() {
        Some(0) => Verdict::Success,
        Some(1) => Verdict::Failure,
        code => Verdict::Abnormal(code),
    }
}

impl VmmLite {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("run")
            .arg("--igvm")
            .arg(&self.igvm)
            .arg("--vps")
            .arg(self.vps.to_string())
            .arg("--mem")
            .arg(format!("{}M", self.memory_mib));
        cmd.arg("--platform").arg(self.platform);
        if let Some(line) = &self.cmdline {
            cmd.arg("--cmdline").arg(line);
        }
        if let Some(guest) = &self.vtl0 {
            cmd.arg("--vtl0").arg(guest);
        }
        cmd
    }

    pub fn run_interactive(&self) -> Result<Verdict> {
        let status = self
            .command()
            .status()
            .with_context(|| format!("could not start {}", self.binary.display()))?;
        Ok(verdict(status))
    }

    /// Runs with the console captured (see [`run_command`]).
    pub fn run_timed(&self, input: Option<&str>, timeout: Duration) -> Result<Run> {
        run_command(self.command(), verdict, input, timeout)
    }
}

//! Idempotent set-up of a fresh Debian machine: Rust targets and components, QEMU.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::Arch;

const TARGETS: [&str; 3] = [
    "x86_64-unknown-none",
    "aarch64-unknown-none",
    "aarch64-unknown-none-softfloat",
];
const COMPONENTS: [&str; 2] = ["rust-src", "llvm-tools"];

fn installed(list: &str) -> Result<String> {
    let out = Command::new("rustup")
        .args([list, "list", "--installed"])
        .current_dir(crate::workspace_root())
        .output()
        .context("running rustup (is rustup installed?)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rustup(args: &[&str]) -> Result<()> {
    let status = Command::new("rustup")
        .args(args)
        .current_dir(crate::workspace_root())
        .status()?;
    if !status.success() {
        bail!("`rustup {}` failed", args.join(" "));
    }
    Ok(())
}

/// Adds whichever of the firmware's targets and components are missing.
pub fn rust() -> Result<()> {
    let targets = installed("target")?;
    for t in TARGETS {
        if !targets.lines().any(|l| l.trim() == t) {
            rustup(&["target", "add", t])?;
        }
    }
    let components = installed("component")?;
    for c in COMPONENTS {
        if !components.lines().any(|l| l.starts_with(c)) {
            rustup(&["component", "add", c])?;
        }
    }
    Ok(())
}

fn qemu_present(arch: Arch) -> bool {
    Command::new(format!("qemu-system-{arch}"))
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn os_codename() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VERSION_CODENAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Installs QEMU for both architectures from Debian when missing. On bookworm it comes from
/// bookworm-backports (QEMU 10; bookworm's own 7.2 lacks fixes our boots rely on).
pub fn qemu() -> Result<()> {
    if Arch::ALL.iter().all(|&a| qemu_present(a)) {
        return Ok(());
    }
    let codename = os_codename();
    let mut install = Command::new("apt-get");
    install.env("DEBIAN_FRONTEND", "noninteractive").args([
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
    ]);
    if codename == "bookworm" {
        let list = "/etc/apt/sources.list.d/bookworm-backports.list";
        let line = "deb http://deb.debian.org/debian bookworm-backports main\n";
        let has_backports = std::fs::read_dir("/etc/apt/sources.list.d")
            .map(|d| {
                d.flatten().any(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .contains("bookworm-backports")
                })
            })
            .unwrap_or(false)
            || std::fs::read_to_string("/etc/apt/sources.list")
                .unwrap_or_default()
                .contains("bookworm-backports");
        if !has_backports {
            std::fs::write(list, line)
                .with_context(|| format!("writing {list} (are you root?)"))?;
        }
        install.args(["-t", "bookworm-backports"]);
    }
    eprintln!("xtask: installing QEMU from Debian packages");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(install.args(["qemu-system-x86", "qemu-system-arm"]))?;
    for arch in Arch::ALL {
        if !qemu_present(arch) {
            bail!("qemu-system-{arch} is still missing after installing QEMU");
        }
    }
    Ok(())
}

pub fn all() -> Result<()> {
    rust()?;
    qemu()
}

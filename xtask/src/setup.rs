//! Idempotent set-up of a fresh Debian machine: Rust targets and components, QEMU, the TPM
//! tools the vTPM test compares TPMs with, cargo-fuzz and a C++ compiler for the fuzz tier, and
//! the Debian kernels and busybox builds the Linux boot tests run, for both architectures.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::Arch;

const TARGETS: [&str; 3] = [
    "x86_64-unknown-none",
    "aarch64-unknown-none",
    "aarch64-unknown-none-softfloat",
];
/// rust-src and llvm-tools build the firmware; clippy and rustfmt run in `cargo xtask lint`.
const COMPONENTS: [&str; 4] = ["rust-src", "llvm-tools", "clippy", "rustfmt"];

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

/// The oldest QEMU the boots are known to work with (bookworm's own 7.2 lacks fixes they
/// rely on; bookworm-backports has 10.0).
const MIN_QEMU: (u32, u32) = (10, 0);

/// `qemu-system-<arch> --version`'s (major, minor), or None when it does not run.
fn qemu_version(arch: Arch) -> Option<(u32, u32)> {
    let out = Command::new(format!("qemu-system-{arch}"))
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
}

/// From "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1~bpo12+1)".
fn parse_qemu_version(text: &str) -> Option<(u32, u32)> {
    let version = text.split("version ").nth(1)?.split_whitespace().next()?;
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??))
}

fn qemu_present(arch: Arch) -> bool {
    qemu_version(arch).is_some_and(|v| v >= MIN_QEMU)
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
        match qemu_version(arch) {
            None => bail!("qemu-system-{arch} is still missing after installing QEMU"),
            Some(v) if v < MIN_QEMU => bail!(
                "qemu-system-{arch} is {}.{} after installing QEMU; Parapet needs {}.{} or newer",
                v.0,
                v.1,
                MIN_QEMU.0,
                MIN_QEMU.1
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Debian packages the tests use, each with a program that is there once it is installed:
/// - tpm2-tools (the vTPM test's commands, with their TCTIs for swtpm and the TPM simulator's
///   protocol), swtpm (the reference TPM) and swtpm-tools (swtpm_setup, for provisioning
///   swtpm by hand): qemu-tests/tests/tpm2_tools.rs;
/// - xz-utils: unpacking the vmlinux inside Debian's bzImage (`kernels::vmlinux_of`);
/// - build-essential: the C++ compiler libFuzzer is built with (`cargo xtask fuzz`).
const TOOL_PACKAGES: [(&str, &str); 5] = [
    ("tpm2_startup", "tpm2-tools"),
    ("swtpm", "swtpm"),
    ("swtpm_setup", "swtpm-tools"),
    ("xz", "xz-utils"),
    ("c++", "build-essential"),
];

/// Whether `program` can be started (is on PATH). Only that: swtpm_setup 0.7.1 exits with 1
/// after printing its `--version`.
fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Installs the [`TOOL_PACKAGES`] from Debian when any of them is missing.
pub fn tools() -> Result<()> {
    if TOOL_PACKAGES.iter().all(|(program, _)| on_path(program)) {
        return Ok(());
    }
    let packages: Vec<&str> = TOOL_PACKAGES.iter().map(|&(_, package)| package).collect();
    eprintln!(
        "xtask: installing {} from Debian packages",
        packages.join(", ")
    );
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&packages))?;
    for (program, package) in TOOL_PACKAGES {
        if !on_path(program) {
            bail!("{program} is still missing after installing {package}");
        }
    }
    Ok(())
}

/// Installs cargo-fuzz (`cargo xtask fuzz`) unless `cargo fuzz` already runs.
pub fn cargo_fuzz() -> Result<()> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz");
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

pub fn all() -> Result<()> {
    rust()?;
    qemu()?;
    tools()
}

/// What the Linux boot tests boot, fetched and built ahead of the tests (`cargo xtask setup`
/// and `cargo xtask test`) so a fresh machine has it: Debian's kernel and static busybox for
/// each architecture (arm64's through a private apt state, see `kernels`), from Debian's
/// archive the first time, then the cache, and the initramfs around each busybox.
pub fn linux_guests() -> Result<()> {
    for arch in Arch::ALL {
        let (kernel, initramfs) = crate::linux::debian_guest(arch)?;
        eprintln!(
            "xtask: the {arch} Linux guest: {} and {}",
            kernel.display(),
            initramfs.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_versions_are_read_from_the_banner() {
        let backports = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1~bpo12+1)\nCopyright";
        assert_eq!(parse_qemu_version(backports), Some((10, 0)));
        let bookworm = "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)";
        assert!(parse_qemu_version(bookworm).unwrap() < MIN_QEMU);
        assert_eq!(parse_qemu_version("no version here"), None);
    }
}

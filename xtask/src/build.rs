//! Compiling the firmware and laying out its images under `target/parapet/<arch>/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{workspace_root, Arch, Flavor};

/// Where the images of `arch` go.
pub fn image_dir(arch: Arch) -> PathBuf {
    workspace_root().join("target/parapet").join(arch.name())
}

/// The bootable image: a PVH ELF on x86_64, a raw Linux-style image on aarch64.
pub fn image_path(arch: Arch, flavor: Flavor) -> PathBuf {
    let stem = match flavor {
        Flavor::Normal => "parapet",
        Flavor::SelfTest => "parapet-test",
    };
    let ext = match arch {
        Arch::X86_64 => "elf",
        Arch::Aarch64 => "bin",
    };
    image_dir(arch).join(format!("{stem}.{ext}"))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cargo build --quiet --release` in the workspace with `args`; `what` names the build in
/// errors.
fn cargo_build(args: &[&str], what: &str) -> Result<()> {
    let status = cargo()
        .current_dir(workspace_root())
        .args(["build", "--quiet", "--release"])
        .args(args)
        .status()
        .with_context(|| format!("running cargo to build {what}"))?;
    if !status.success() {
        bail!("building {what} failed");
    }
    Ok(())
}

/// A TOML basic string holding `text`, for cargo's `--config`.
fn toml_string(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => out.extend(['\\', c]),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `--config` value giving rustc, for `target`'s code only, `--remap-path-prefix` for the
/// workspace root, CARGO_HOME and RUSTUP_HOME: the no_std images then hold no host path (panic
/// locations name crate sources), so checkouts in different places build the same bytes.
/// Cargo appends these to the target's rustflags in .cargo/config.toml, and host builds keep
/// theirs, with their cache.
fn remap_paths_config(target: &str) -> String {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let from_env = |var: &str, default: &str| {
        std::env::var_os(var).map_or_else(|| home.join(default), PathBuf::from)
    };
    let prefixes = [
        (workspace_root(), "."),
        (from_env("CARGO_HOME", ".cargo"), "/cargo"),
        (from_env("RUSTUP_HOME", ".rustup"), "/rustup"),
    ];
    let flags: Vec<String> = prefixes
        .iter()
        .map(|(from, to)| toml_string(&format!("--remap-path-prefix={}={to}", from.display())))
        .collect();
    format!("target.{target}.rustflags=[{}]", flags.join(", "))
}

/// Builds the firmware for `arch` in `flavor` and writes its image; returns the image path.
pub fn firmware(arch: Arch, flavor: Flavor) -> Result<PathBuf> {
    let root = workspace_root();
    // A separate target directory: the firmware's feature set differs from host builds, and
    // sharing one directory would make each rebuild the other.
    let target_dir = root.join("target/firmware").join(match flavor {
        Flavor::Normal => "normal",
        Flavor::SelfTest => "selftest",
    });
    let dir_arg = target_dir.display().to_string();
    let remap = remap_paths_config(arch.rust_target());
    let mut args = vec!["-p", "parapet-boot", "--bin", "parapet"];
    args.extend(["--target", arch.rust_target(), "--target-dir", &dir_arg]);
    args.extend(["--config", &remap]);
    // Whole-program optimisation for the image alone (host builds keep the faster-building
    // profile): with the vTPM's crypto crates the x86_64 image went from 1,028,168 to
    // 936,784 bytes.
    args.extend(["--config", "profile.release.lto=\"fat\""]);
    args.extend(["--config", "profile.release.codegen-units=1"]);
    if flavor == Flavor::SelfTest {
        args.extend(["--features", "selftest"]);
    }
    cargo_build(&args, &format!("the {arch} firmware"))?;
    let elf = target_dir.join(arch.rust_target()).join("release/parapet");
    let out = image_path(arch, flavor);
    std::fs::create_dir_all(image_dir(arch))?;
    // The unstripped ELF stays beside the image for gdb and symbolising addresses.
    let debug_elf = out.with_extension("debug.elf");
    let staged_debug = staging_path(&debug_elf);
    std::fs::copy(&elf, &staged_debug)
        .with_context(|| format!("copying {} to {}", elf.display(), staged_debug.display()))?;
    publish(&staged_debug, &debug_elf)?;
    let objcopy = llvm_tool("llvm-objcopy")?;
    let staged = staging_path(&out);
    let format_args: &[&str] = match arch {
        Arch::X86_64 => &["--strip-all"],
        Arch::Aarch64 => &["-O", "binary"],
    };
    let status = Command::new(&objcopy)
        .args(format_args)
        .arg(&elf)
        .arg(&staged)
        .status()
        .with_context(|| format!("running {}", objcopy.display()))?;
    if !status.success() {
        bail!(
            "llvm-objcopy could not make {} from {}",
            out.display(),
            elf.display()
        );
    }
    publish(&staged, &out)?;
    Ok(out)
}

/// A private name beside `path` to write to before [`publish`]: tests build in parallel, and
/// a reader must never see a half-written image.
fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    PathBuf::from(name)
}

/// Moves a staged file to its final name; the rename is atomic within one filesystem.
fn publish(staged: &Path, path: &Path) -> Result<()> {
    std::fs::rename(staged, path)
        .with_context(|| format!("renaming {} to {}", staged.display(), path.display()))
}

/// Finds an LLVM tool shipped in the `llvm-tools` rustup component.
fn llvm_tool(name: &str) -> Result<PathBuf> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let lib = sysroot.join("lib/rustlib");
    for entry in std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let candidate = entry?.path().join("bin").join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} not found under {}; run `rustup component add llvm-tools`",
        lib.display()
    )
}

/// The IGVM file for the x86_64 firmware in `flavor`.
pub fn igvm_path(flavor: Flavor) -> PathBuf {
    image_path(Arch::X86_64, flavor).with_extension("igvm")
}

/// Builds the x86_64 firmware in `flavor` and its IGVM file; returns the IGVM path.
pub fn igvm(flavor: Flavor) -> Result<PathBuf> {
    let elf = firmware(Arch::X86_64, flavor)?;
    let bytes = std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
    let igvm = parapet_image::igvm_builder::build(&bytes)
        .with_context(|| format!("building IGVM from {}", elf.display()))?;
    let out = igvm_path(flavor);
    let staged = staging_path(&out);
    std::fs::write(&staged, igvm).with_context(|| format!("writing {}", staged.display()))?;
    publish(&staged, &out)?;
    Ok(out)
}

/// Builds vmm-lite (release) and returns its path.
pub fn vmm_lite() -> Result<PathBuf> {
    cargo_build(&["-p", "vmm-lite", "--bin", "vmm-lite"], "vmm-lite")?;
    let root = workspace_root();
    Ok(root.join("target/release/vmm-lite"))
}

/// A test guest (qemu-tests/guests): VTL0 under hv_vtl, the guest under svm (x86_64), or at
/// EL1 under the `el2` backend (aarch64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Guest {
    Hello,
    Escape,
    Bench,
    /// x86_64 only: timer interrupts through the emulated x2APIC.
    Ticks,
    /// The TPM through its registers: CRB on x86_64, the FIFO interface on aarch64.
    Tpm,
}

impl Guest {
    pub const ALL: [Guest; 5] = [
        Guest::Hello,
        Guest::Escape,
        Guest::Bench,
        Guest::Ticks,
        Guest::Tpm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Guest::Hello => "hello",
            Guest::Escape => "escape",
            Guest::Bench => "bench",
            Guest::Ticks => "ticks",
            Guest::Tpm => "tpm",
        }
    }

    /// Whether the guest is built for `arch` (ticks needs an x86 local APIC).
    pub fn exists_for(self, arch: Arch) -> bool {
        self != Guest::Ticks || arch == Arch::X86_64
    }
}

/// Where the stripped ELF of `guest` for `arch` goes.
pub fn guest_path(arch: Arch, guest: Guest) -> PathBuf {
    image_dir(arch)
        .join("guests")
        .join(format!("{}.elf", guest.name()))
}

/// Builds the test guests (no_std) for every architecture and writes their stripped ELFs.
pub fn guests() -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for arch in Arch::ALL {
        out.extend(guests_for(arch)?);
    }
    Ok(out)
}

/// Builds the test guests that exist for `arch` and writes their stripped ELFs.
pub fn guests_for(arch: Arch) -> Result<Vec<PathBuf>> {
    let root = workspace_root();
    let target_dir = root.join("target/guests");
    let dir_arg = target_dir.display().to_string();
    let target = arch.rust_target();
    let remap = remap_paths_config(target);
    let guests: Vec<Guest> = Guest::ALL
        .into_iter()
        .filter(|guest| guest.exists_for(arch))
        .collect();
    let mut args = vec!["-p", "parapet-test-guests"];
    for guest in &guests {
        args.extend(["--bin", guest.name()]);
    }
    args.extend([
        "--target",
        target,
        "--target-dir",
        &dir_arg,
        "--config",
        &remap,
    ]);
    cargo_build(&args, &format!("the {arch} test guests"))?;
    let objcopy = llvm_tool("llvm-objcopy")?;
    let mut out = Vec::new();
    for guest in guests {
        let elf = target_dir.join(target).join("release").join(guest.name());
        let path = guest_path(arch, guest);
        std::fs::create_dir_all(path.parent().unwrap_or(&root))?;
        let staged = staging_path(&path);
        let status = Command::new(&objcopy)
            .arg("--strip-all")
            .arg(&elf)
            .arg(&staged)
            .status()
            .with_context(|| format!("running {}", objcopy.display()))?;
        if !status.success() {
            bail!("llvm-objcopy could not strip {}", elf.display());
        }
        publish(&staged, &path)?;
        out.push(path);
    }
    Ok(out)
}

/// Builds every image: both flavours for every architecture, the IGVM files and the guests.
pub fn all() -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for arch in Arch::ALL {
        for flavor in [Flavor::Normal, Flavor::SelfTest] {
            out.push(firmware(arch, flavor)?);
        }
    }
    for flavor in [Flavor::Normal, Flavor::SelfTest] {
        out.push(igvm(flavor)?);
    }
    out.extend(guests()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(toml_string(r#"/a "b"\c"#), r#""/a \"b\"\\c""#);
        assert_eq!(toml_string("x\ny"), r#""x\u000ay""#);
    }
}

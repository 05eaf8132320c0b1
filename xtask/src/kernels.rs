//! Debian's stock kernels, the guests nobody here wrote: fetched from Debian's archive with
//! apt (the package `linux-image-amd64` or `linux-image-arm64` depends on), cached under
//! `target/kernels/<arch>/<package>/vmlinuz`, never committed; on x86_64 also the vmlinux
//! inside the bzImage (`vmlinux_of`), for booting without the decompressor.
//!
//! arm64's package comes through a private apt state (its own lists and cache, architecture
//! arm64), so the host's apt configuration is left as it was.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{workspace_root, Arch};

/// Debian's name for `arch`.
fn debian_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Aarch64 => "arm64",
    }
}

/// The kernel image of Debian's current stock kernel for `arch`, fetched once.
pub fn debian_kernel(arch: Arch) -> Result<PathBuf> {
    let apt = Apt::new(arch)?;
    let package = apt.kernel_package()?;
    let cache = workspace_root()
        .join("target/kernels")
        .join(arch.name())
        .join(&package);
    let image = cache.join("vmlinuz");
    if !image.is_file() {
        std::fs::create_dir_all(&cache)?;
        eprintln!("xtask: fetching {package} from Debian");
        let deb = apt.download(&package, &cache)?;
        extract_vmlinuz(&deb, &image)?;
        std::fs::remove_file(&deb).ok();
    }
    let bytes = std::fs::read(&image)?;
    if !is_kernel_image(arch, &bytes) {
        bail!(
            "{} is not a {} kernel image (remove it to fetch it again)",
            image.display(),
            arch.name()
        );
    }
    Ok(image)
}

/// The uncompressed kernel (an ELF `vmlinux`) inside the x86 bzImage at `bzimage`, unpacked
/// once beside it as `vmlinux`. The bzImage's header says where its compressed payload is
/// (`payload_offset`, `payload_length` at 0x248 and 0x24c, from the protected-mode kernel's
/// start; Documentation/arch/x86/boot.rst); Debian compresses it with xz, followed by the
/// 4-byte uncompressed size the kernel's build appends, which `xz --single-stream` ignores.
pub fn vmlinux_of(bzimage: &Path) -> Result<PathBuf> {
    let out = bzimage.with_file_name("vmlinux");
    if out.is_file() && out.metadata()?.modified()? >= bzimage.metadata()?.modified()? {
        return Ok(out);
    }
    let image = std::fs::read(bzimage)
        .with_context(|| format!("reading the kernel {}", bzimage.display()))?;
    let payload = bzimage_payload(&image)
        .with_context(|| format!("{} has no usable payload", bzimage.display()))?;
    if !payload.starts_with(b"\xfd7zXZ\0") {
        bail!(
            "{}'s payload is not xz-compressed (it starts {:02x?}); only xz is unpacked here",
            bzimage.display(),
            &payload[..payload.len().min(6)]
        );
    }
    let compressed = out.with_file_name("vmlinux.xz");
    std::fs::write(&compressed, payload)?;
    let unpacked = Command::new("xz")
        .args(["--decompress", "--stdout", "--single-stream"])
        .arg(&compressed)
        .output()
        .context("running xz (Debian's xz-utils; `cargo xtask setup` installs it)")?;
    std::fs::remove_file(&compressed).ok();
    if !unpacked.status.success() || !unpacked.stdout.starts_with(b"\x7fELF") {
        bail!(
            "xz could not unpack {}'s payload into an ELF: {}",
            bzimage.display(),
            String::from_utf8_lossy(&unpacked.stderr).trim()
        );
    }
    std::fs::write(&out, &unpacked.stdout)?;
    Ok(out)
}

/// The compressed payload of a bzImage: `payload_length` bytes from `payload_offset` into its
/// protected-mode kernel (the header as `abi::linux_boot` reads it).
fn bzimage_payload(image: &[u8]) -> Result<&[u8]> {
    use abi::linux_boot::{header, SetupHeader};
    let setup = SetupHeader::parse(image).map_err(|e| anyhow::anyhow!("{e}"))?;
    let word = |at: usize| -> Result<usize> {
        let bytes = image.get(at..at + 4).context("the header is cut short")?;
        Ok(u32::from_le_bytes(bytes.try_into()?) as usize)
    };
    let start = word(header::PAYLOAD_OFFSET)?;
    let end = start
        .checked_add(word(header::PAYLOAD_LENGTH)?)
        .context("payload length overflows")?;
    setup
        .kernel(image)
        .get(start..end)
        .context("the payload runs past the file")
}

/// Whether `bytes` start like the kernel format the boot protocol takes: x86's bzImage
/// ("HdrS" at 0x202, Documentation/arch/x86/boot.rst), arm64's Image ("ARM\x64" at 0x38,
/// Documentation/arch/arm64/booting.rst).
pub(crate) fn is_kernel_image(arch: Arch, bytes: &[u8]) -> bool {
    let (at, magic): (usize, &[u8]) = match arch {
        Arch::X86_64 => (0x202, b"HdrS"),
        Arch::Aarch64 => (0x38, b"ARM\x64"),
    };
    bytes.get(at..at + magic.len()) == Some(magic)
}

/// apt, either the host's own or a private arm64 state beside the cache (shared with
/// `initramfs`, which fetches busybox the same way).
pub(crate) struct Apt {
    options: Vec<String>,
    arch: &'static str,
}

impl Apt {
    pub(crate) fn new(arch: Arch) -> Result<Self> {
        let arch_name = debian_arch(arch);
        let host = Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .context("running dpkg (is this Debian?)")?;
        let host = String::from_utf8_lossy(&host.stdout).trim().to_string();
        if host == arch_name {
            return Ok(Self {
                options: Vec::new(),
                arch: arch_name,
            });
        }
        let state = workspace_root().join("target/kernels/apt").join(arch_name);
        for dir in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(state.join(dir))?;
        }
        let option = |name: &str, value: &Path| format!("-o{name}={}", value.display());
        let apt = Self {
            options: vec![
                option("Dir::State::Lists", &state.join("lists")),
                option("Dir::Cache", &state.join("cache")),
                format!("-oAPT::Architecture={arch_name}"),
                format!("-oAPT::Architectures::={arch_name}"),
            ],
            arch: arch_name,
        };
        if std::fs::read_dir(state.join("lists"))?.count() <= 1 {
            apt.run("apt-get", &["update", "-q"])?;
        }
        Ok(apt)
    }

    pub(crate) fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(program)
            .args(&self.options)
            .args(args)
            .output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The versioned package `linux-image-<arch>` depends on (`linux-image-6.1.0-56-amd64`).
    fn kernel_package(&self) -> Result<String> {
        let meta = format!("linux-image-{}", self.arch);
        let depends = match self.run("apt-cache", &["depends", &meta]) {
            Ok(out) => out,
            Err(_) => {
                // The host's lists may never have been fetched.
                self.run("apt-get", &["update", "-q"])?;
                self.run("apt-cache", &["depends", &meta])?
            }
        };
        kernel_dependency(&depends, self.arch)
            .with_context(|| format!("{meta} names no kernel package:\n{depends}"))
    }

    /// Downloads `package`'s .deb into `dir`; returns its path.
    pub(crate) fn download(&self, package: &str, dir: &Path) -> Result<PathBuf> {
        let out = Command::new("apt-get")
            .args(&self.options)
            .args(["download", "-q", package])
            .current_dir(dir)
            .output()
            .context("running apt-get download")?;
        if !out.status.success() {
            bail!(
                "apt-get download {package} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .with_context(|| format!("apt-get download {package} left no .deb"))
    }
}

/// The `Depends: linux-image-<version>-<arch>` line of `apt-cache depends` output.
fn kernel_dependency(depends: &str, arch: &str) -> Option<String> {
    depends.lines().find_map(|line| {
        let name = line.trim().strip_prefix("Depends: ")?;
        (name.starts_with("linux-image-") && name.ends_with(&format!("-{arch}")))
            .then(|| name.to_string())
    })
}

/// Takes `./boot/vmlinuz-*` out of `deb` into `image`.
fn extract_vmlinuz(deb: &Path, image: &Path) -> Result<()> {
    let dir = image.parent().context("the image has no directory")?;
    let staging = dir.join("extract");
    std::fs::create_dir_all(&staging)?;
    let script = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards './boot/vmlinuz-*'",
        deb.display(),
        staging.display()
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .status()
        .context("running dpkg-deb and tar")?;
    if !status.success() {
        bail!("extracting the kernel from {} failed", deb.display());
    }
    let found = std::fs::read_dir(staging.join("boot"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{} holds no vmlinuz", deb.display()))?;
    std::fs::rename(&found, image)?;
    std::fs::remove_dir_all(&staging).ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_images_are_told_by_their_magic() {
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(is_kernel_image(Arch::X86_64, &bz));
        assert!(!is_kernel_image(Arch::Aarch64, &bz));
        let mut image = vec![0u8; 0x40];
        image[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert!(is_kernel_image(Arch::Aarch64, &image));
        assert!(!is_kernel_image(Arch::X86_64, &image[..0x10]));
    }

    #[test]
    fn the_versioned_package_comes_from_the_depends_line() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            kernel_dependency(out, "amd64").as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(kernel_dependency("linux-image-amd64\n", "amd64"), None);
        assert_eq!(kernel_dependency(out, "arm64"), None);
    }
}

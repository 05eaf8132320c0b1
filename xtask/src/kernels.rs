//! Debian's stock kernels, the guests nobody here wrote: fetched from Debian's archive with
//! apt (the package `linux-image-amd64` or `linux-image-arm64` depends on), cached under
//! `target/kernels/<arch>/<package>/vmlinuz`, never committed; on x86_64 also the vmlinux
//! inside the bzImage (`vmlinux_of`), for booting without the decompressor; on arm64 also the
//! few modules its TPM needs, from the same package (`debian_tpm_modules`), in `modules/`
//! beside the image.
//!
//! arm64's package comes through a private apt state (its own lists and cache, architecture
//! arm64), so the host's apt configuration is left as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::initramfs::temp_beside;
use crate::{workspace_root, Arch};

/// The modules arm64's TPM needs, in the order they load (each after the one it depends on),
/// as paths under the package's `./lib/modules/<version>/kernel/`. Parapet gives the arm64
/// guest a TPM on an SPI bus bit-banged through the PL061 GPIO controller, and Debian's arm64
/// config builds in the controller (CONFIG_GPIO_PL061=y) but that bus and the TPM's driver
/// only as modules: CONFIG_SPI_GPIO=m (which needs spi-bitbang) and CONFIG_TCG_TIS_SPI=m
/// (which needs tpm_tis_core). The TPMs it builds in do not fit: CONFIG_TCG_CRB=y is found
/// through ACPI alone, and CONFIG_TCG_TIS (memory-mapped TIS) is not set. x86 needs none.
const ARM64_TPM_MODULES: [&str; 4] = [
    "drivers/spi/spi-bitbang.ko",
    "drivers/spi/spi-gpio.ko",
    "drivers/char/tpm/tpm_tis_core.ko",
    "drivers/char/tpm/tpm_tis_spi.ko",
];

/// The modules `arch`'s guest needs for its TPM, as in `ARM64_TPM_MODULES`.
fn tpm_modules(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &[],
        Arch::Aarch64 => &ARM64_TPM_MODULES,
    }
}

/// A module's file name (`spi-gpio.ko`) from its path in `ARM64_TPM_MODULES`.
fn file_name(module: &str) -> &str {
    module.rsplit_once('/').map_or(module, |(_, name)| name)
}

/// Debian's name for `arch`.
fn debian_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Aarch64 => "arm64",
    }
}

/// The kernel image of Debian's current stock kernel for `arch`, fetched once.
pub fn debian_kernel(arch: Arch) -> Result<PathBuf> {
    let image = cached_package(arch)?.image;
    let bytes =
        std::fs::read(&image).with_context(|| format!("reading the kernel {}", image.display()))?;
    if !is_kernel_image(arch, &bytes) {
        bail!(
            "{} is not a {} kernel image (remove it to fetch it again)",
            image.display(),
            arch.name()
        );
    }
    Ok(image)
}

/// The modules `arch`'s guest loads for its TPM, from the same package as `debian_kernel`'s
/// image, in the order they load; none on x86_64. A cache from before the modules were kept
/// has the image alone: the package is fetched again then.
pub fn debian_tpm_modules(arch: Arch) -> Result<Vec<PathBuf>> {
    if tpm_modules(arch).is_empty() {
        return Ok(Vec::new());
    }
    Ok(cached_package(arch)?.modules)
}

/// What is kept of a kernel package: `target/kernels/<arch>/<package>/vmlinuz` and
/// `.../modules/<name>.ko`.
struct Cached {
    image: PathBuf,
    modules: Vec<PathBuf>,
}

/// The cached files of `arch`'s current kernel package, which is fetched when any is missing.
fn cached_package(arch: Arch) -> Result<Cached> {
    let apt = Apt::new(arch)?;
    let package = apt.kernel_package()?;
    let dir = workspace_root()
        .join("target/kernels")
        .join(arch.name())
        .join(&package);
    let cached = Cached {
        image: dir.join("vmlinuz"),
        modules: tpm_modules(arch)
            .iter()
            .map(|m| dir.join("modules").join(file_name(m)))
            .collect(),
    };
    if !cached.image.is_file() || !cached.modules.iter().all(|m| m.is_file()) {
        eprintln!("xtask: fetching {package} from Debian");
        fetch_package(&apt, arch, &package, &dir)?;
    }
    Ok(cached)
}

/// Downloads `package` and unpacks its image and `arch`'s modules into `dir`, through a
/// staging directory of this call's own so parallel callers never mix their .debs; each file
/// is renamed into place whole.
fn fetch_package(apt: &Apt, arch: Arch, package: &str, dir: &Path) -> Result<()> {
    let staging = temp_beside(&dir.join("fetch"));
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let fetched = apt
        .download(package, &staging)
        .and_then(|deb| unpack(&deb, package, tpm_modules(arch), &staging, dir));
    std::fs::remove_dir_all(&staging).ok();
    fetched
}

/// Takes `./boot/vmlinuz-*` and `modules` out of `deb` in one pass, into `staging`, then moves
/// them to `dir` as `vmlinuz` and `modules/<name>.ko`. Debian keeps a package's modules under
/// `./lib/modules/<version>/`, its version being its name without `linux-image-`; tar fails
/// on any member that is not there.
fn unpack(deb: &Path, package: &str, modules: &[&str], staging: &Path, dir: &Path) -> Result<()> {
    let version = package
        .strip_prefix("linux-image-")
        .with_context(|| format!("{package} is not named linux-image-<version>"))?;
    let module_member = |m: &str| format!("./lib/modules/{version}/kernel/{m}");
    let mut members = vec!["./boot/vmlinuz-*".to_string()];
    members.extend(modules.iter().map(|m| module_member(m)));
    let root = staging.join("root");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    extract(deb, &members, &root)?;

    let kept = dir.join("modules");
    if !modules.is_empty() {
        std::fs::create_dir_all(&kept).with_context(|| format!("creating {}", kept.display()))?;
    }
    for module in modules {
        let from = root.join(module_member(module));
        let to = kept.join(file_name(module));
        std::fs::rename(&from, &to)
            .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    }
    let image = find_vmlinuz(&root.join("boot"))
        .with_context(|| format!("{} holds no vmlinuz", deb.display()))?;
    let to = dir.join("vmlinuz");
    std::fs::rename(&image, &to)
        .with_context(|| format!("moving {} to {}", image.display(), to.display()))
}

/// Extracts `members` (tar wildcards) of `deb`'s file system into `root`: dpkg-deb's tar
/// stream piped into tar, with no shell between them.
fn extract(deb: &Path, members: &[String], root: &Path) -> Result<()> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let stream = dpkg.stdout.take().context("dpkg-deb's output")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(root)
        .arg("--wildcards")
        .args(members)
        .stdin(stream)
        .output()
        .context("running tar");
    let dpkg = dpkg.wait().context("waiting for dpkg-deb")?;
    let tar = tar?;
    if !dpkg.success() || !tar.status.success() {
        bail!(
            "extracting {} from {} failed: {}",
            members.join(" "),
            deb.display(),
            String::from_utf8_lossy(&tar.stderr).trim()
        );
    }
    Ok(())
}

/// The `vmlinuz-*` file in `boot`.
fn find_vmlinuz(boot: &Path) -> Result<PathBuf> {
    std::fs::read_dir(boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("no vmlinuz-*")
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

    /// A .deb laid out like Debian's kernel package (`dpkg-deb --build`), unpacked as a fetched
    /// one is: the image and the modules come out under their cache names.
    #[test]
    fn the_image_and_modules_come_out_of_the_package() -> Result<()> {
        let work = temp_beside(&std::env::temp_dir().join("parapet-kernel-deb"));
        let tree = work.join("tree");
        let version = "6.1.0-99-arm64";
        let mut files = vec![
            (
                "DEBIAN/control".to_string(),
                "Package: t\nVersion: 1\nArchitecture: all\nMaintainer: t\nDescription: t\n"
                    .to_string(),
            ),
            (format!("boot/vmlinuz-{version}"), "image".to_string()),
            (
                format!("lib/modules/{version}/kernel/drivers/net/other.ko"),
                "other".to_string(),
            ),
        ];
        for module in ARM64_TPM_MODULES {
            let member = format!("lib/modules/{version}/kernel/{module}");
            files.push((member, module.to_string()));
        }
        for (path, text) in &files {
            let path = tree.join(path);
            std::fs::create_dir_all(path.parent().context("no parent")?)?;
            std::fs::write(&path, text)?;
        }
        let deb = work.join("k.deb");
        let built = Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&tree)
            .arg(&deb)
            .output()?;
        assert!(built.status.success(), "{built:?}");

        let (staging, dir) = (work.join("staging"), work.join("cache"));
        let package = format!("linux-image-{version}");
        unpack(&deb, &package, &ARM64_TPM_MODULES, &staging, &dir)?;
        assert_eq!(std::fs::read_to_string(dir.join("vmlinuz"))?, "image");
        for module in ARM64_TPM_MODULES {
            let kept = dir.join("modules").join(file_name(module));
            assert_eq!(std::fs::read_to_string(kept)?, module);
        }
        assert!(!dir.join("modules/other.ko").exists());
        // A module the package lacks, or a package named otherwise, is an error.
        let missing = ["drivers/spi/absent.ko"];
        assert!(unpack(&deb, &package, &missing, &work.join("s2"), &dir).is_err());
        assert!(unpack(&deb, "linux-6.1", &[], &work.join("s3"), &dir).is_err());
        std::fs::remove_dir_all(&work).ok();
        Ok(())
    }

    #[test]
    fn only_arm64_loads_modules_and_they_are_kept_by_file_name() {
        assert!(tpm_modules(Arch::X86_64).is_empty());
        let names: Vec<&str> = tpm_modules(Arch::Aarch64)
            .iter()
            .map(|m| file_name(m))
            .collect();
        assert_eq!(
            names,
            [
                "spi-bitbang.ko",
                "spi-gpio.ko",
                "tpm_tis_core.ko",
                "tpm_tis_spi.ko"
            ]
        );
        assert_eq!(file_name("plain.ko"), "plain.ko");
    }
}

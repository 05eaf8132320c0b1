//! A Linux kernel as Parapet's guest: its image, initrd and command line packed into one guest
//! bundle (`abi::guest_bundle`), the blob Parapet takes as its boot module (QEMU's `-initrd`).
//! Used by `cargo xtask qemu --kernel`, `cargo xtask bench linux` and the Linux boot test.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::initramfs::write_whole;
use crate::kernels::is_kernel_image;
use crate::{workspace_root, Arch};

/// The kernel command line when the caller gives none: the console on the first UART, which
/// Parapet emulates and prints as `guest| ` lines.
pub fn default_cmdline(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "console=ttyS0",
        Arch::Aarch64 => "console=ttyAMA0",
    }
}

/// Debian's stock kernel for `arch` and the busybox initramfs whose /init reports what the
/// guest found (`parapet-init: ...` lines): fetched from Debian once and cached under
/// `target/kernels/` and `target/initramfs/`; the archive is rewritten each call (it is small,
/// and the file is replaced whole). Returns (kernel, initramfs).
pub fn debian_guest(arch: Arch) -> Result<(PathBuf, PathBuf)> {
    let kernel = crate::kernels::debian_kernel(arch)?;
    let initramfs = crate::initramfs::default_out(arch);
    crate::initramfs::build(arch, &initramfs)?;
    Ok((kernel, initramfs))
}

/// Where bundles go: `target/guests/bundles/<name>.bundle`.
pub fn bundle_path(name: &str) -> PathBuf {
    workspace_root()
        .join("target/guests/bundles")
        .join(format!("{name}.bundle"))
}

/// The bytes of the kernel image at `path`, refused unless they start like `arch`'s boot
/// format (a bzImage or an uncompressed vmlinux on x86_64, an arm64 Image).
pub fn read_kernel(arch: Arch, path: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading the kernel {}", path.display()))?;
    if !is_kernel_image(arch, &bytes) && !is_x86_vmlinux(arch, &bytes) {
        bail!(
            "{} is not an {arch} kernel image ({})",
            path.display(),
            match arch {
                Arch::X86_64 => "a bzImage has \"HdrS\" at byte 0x202, a vmlinux is an x86-64 ELF",
                Arch::Aarch64 => "an arm64 Image has \"ARM\\x64\" at byte 0x38; uncompress it",
            }
        );
    }
    Ok(bytes)
}

/// Builds the bundle of the kernel at `kernel`, the initrd at `initrd` and `cmdline`, and
/// writes it to `out` whole (a run already reading an older bundle there keeps its copy).
pub fn write_bundle(
    arch: Arch,
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
    out: &Path,
) -> Result<()> {
    let kernel = read_kernel(arch, kernel)?;
    let initrd = initrd
        .map(|path| {
            std::fs::read(path).with_context(|| format!("reading the initrd {}", path.display()))
        })
        .transpose()?;
    let bundle = abi::guest_bundle::build(&kernel, initrd.as_deref(), cmdline);
    write_whole(out, &bundle)
}

/// Whether `bytes` are an x86-64 ELF (e_machine 62 at byte 18), which Parapet boots as an
/// uncompressed vmlinux.
fn is_x86_vmlinux(arch: Arch, bytes: &[u8]) -> bool {
    arch == Arch::X86_64 && bytes.starts_with(b"\x7fELF") && bytes.get(18..20) == Some(&[62, 0])
}

/// A RAM size in MiB from `512`, `512M`, `512MiB`, `1G` or `1GiB` (MiB without a unit).
pub fn parse_mib(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 512, 512M or 1G"))?;
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 1,
        "G" | "GB" | "GIB" => 1024,
        _ => return Err(format!("{text:?} is not a size like 512, 512M or 1G")),
    };
    number
        .checked_mul(scale)
        .and_then(|mib| u32::try_from(mib).ok())
        .filter(|&mib| mib > 0)
        .ok_or_else(|| format!("{text:?} is not a usable RAM size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_mib_unless_they_say_gib() {
        assert_eq!(parse_mib("512"), Ok(512));
        assert_eq!(parse_mib("512M"), Ok(512));
        assert_eq!(parse_mib("512m"), Ok(512));
        assert_eq!(parse_mib("256MiB"), Ok(256));
        assert_eq!(parse_mib("1G"), Ok(1024));
        assert_eq!(parse_mib("2GiB"), Ok(2048));
        for bad in ["", "M", "0", "1T", "-1", "1.5G", "99999999999G"] {
            assert!(parse_mib(bad).is_err(), "{bad:?} was accepted");
        }
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xtask-linux-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_bundle_holds_the_kernel_initrd_and_command_line() {
        let mut kernel = vec![0u8; 0x300];
        kernel[0x202..0x206].copy_from_slice(b"HdrS");
        let (kernel_path, initrd_path, out) = (temp("k"), temp("i"), temp("b"));
        std::fs::write(&kernel_path, &kernel).unwrap();
        std::fs::write(&initrd_path, b"cpio").unwrap();
        write_bundle(
            Arch::X86_64,
            &kernel_path,
            Some(&initrd_path),
            "console=ttyS0",
            &out,
        )
        .unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let parts = abi::guest_bundle::parse(&bytes, bytes.len()).unwrap();
        assert_eq!(&bytes[parts.kernel], kernel.as_slice());
        assert_eq!(&bytes[parts.initrd.unwrap()], b"cpio");
        assert_eq!(&bytes[parts.command_line], b"console=ttyS0");
        // Not a bzImage, and not there at all: errors that say which file.
        let refused = write_bundle(Arch::Aarch64, &kernel_path, None, "", &out).unwrap_err();
        assert!(format!("{refused:#}").contains("is not an aarch64 kernel image"));
        let missing = write_bundle(Arch::X86_64, &temp("none"), None, "", &out).unwrap_err();
        assert!(format!("{missing:#}").contains("reading the kernel"));
        let missing =
            write_bundle(Arch::X86_64, &kernel_path, Some(&temp("none")), "", &out).unwrap_err();
        assert!(format!("{missing:#}").contains("reading the initrd"));
        for path in [kernel_path, initrd_path, out] {
            std::fs::remove_file(path).ok();
        }
    }
}

//! The initramfs for tests that boot Debian's stock Linux kernel as a guest under Parapet:
//! Debian's static busybox, links to the applets the script runs, the kernel modules the
//! guest's TPM needs (arm64 only, from the kernel's own package: `kernels::debian_tpm_modules`)
//! and an `/init` script whose output lines the tests parse. Busybox comes from Debian's
//! archive through the same apt as the kernels (see `kernels`) and is cached as
//! `target/initramfs/<arch>/busybox`, beside the default archive `initramfs.cpio`; neither is
//! committed.
//!
//! The archive is uncompressed "newc" cpio, written here: no cpio tool or crate needed, and
//! the bytes depend on busybox, the modules and this file alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, ensure, Context, Result};

use crate::kernels::Apt;
use crate::{workspace_root, Arch};

/// Debian's package with a statically linked busybox: the initramfs has no libc to load.
const PACKAGE: &str = "busybox-static";

/// The guest's `/init`, run by busybox's ash. Every `parapet-init:` line is parsed by the tests,
/// so its words stay as they are.
const INIT: &str = concat!(
    // The kernel executes /init itself; the interpreter line hands it to ash via /bin/sh.
    "#!/bin/sh\n",
    // /proc/uptime, /proc/meminfo and /proc/interrupts are read below.
    "mount -t proc proc /proc\n",
    // The online CPU mask and the firmware memory map are read from /sys.
    "mount -t sysfs sysfs /sys\n",
    // Device nodes, which the archive carries none of. init's console was opened before /init
    // ran, from the /dev/console of the kernel's built-in default initramfs.
    "mount -t devtmpfs devtmpfs /dev\n",
    // The kernel reached user space and ran /init.
    "echo \"parapet-init: started\"\n",
    // The clock before the sleep, to compare with the one after it.
    "echo \"parapet-init: uptime-before $(cat /proc/uptime)\"\n",
    // Only a timer interrupt wakes a sleeper: a guest whose timer never fires stops here.
    "sleep 1\n",
    // The timer woke it, and the uptimes show how far the guest's clock moved meanwhile.
    "echo \"parapet-init: sleep-returned uptime-after $(cat /proc/uptime)\"\n",
    // How many vCPUs Linux brought up.
    "echo \"parapet-init: cpus-online $(cat /sys/devices/system/cpu/online)\"\n",
    // The firmware memory map Linux was handed (e820 on x86), one region a line, in the
    // glob's lexical order (10 before 2). arm64 has no such map in sysfs: no lines there.
    "if [ -d /sys/firmware/memmap ]; then\n",
    "  for d in /sys/firmware/memmap/*; do\n",
    "    echo \"parapet-init: memmap $(cat $d/start) $(cat $d/end) $(cat $d/type)\"\n",
    "  done\n",
    "fi\n",
    // The RAM Linux took in, as it registered it: the top-level System RAM lines of
    // /proc/iomem (on arm64 the device tree's /memory nodes, which have no sysfs map).
    "grep 'System RAM' /proc/iomem | grep -v '^ ' | while read range rest; do\n",
    "  echo \"parapet-init: iomem $range\"\n",
    "done\n",
    // The RAM Linux ended up with.
    "echo \"parapet-init: meminfo $(grep MemTotal /proc/meminfo)\"\n",
    // A line typed on the console (the test sends one when it sees the prompt): the UART's
    // receive path, which works only by its interrupt once the driver owns it.
    "echo \"parapet-init: type a line\"\n",
    "if read -t 60 line; then echo \"parapet-init: read [$line]\"; else echo \"parapet-init: read nothing\"; fi\n",
    // The UART's interrupt line and its count: the console works by interrupts, not polling.
    "echo \"parapet-init: serial-irq $(grep -E 'ttyS0|ttyAMA0|uart-pl011' /proc/interrupts)\"\n",
    // The modules the TPM's driver needs (arm64: the SPI bus over GPIO and the TPM on it), in
    // the order /lib/modules/load-order lists them, each after the ones it depends on. An
    // archive without modules (x86) has no such file and loads none.
    "if [ -f /lib/modules/load-order ]; then\n",
    "  while read m; do\n",
    "    if insmod /lib/modules/$m.ko; then echo \"parapet-init: insmod $m ok\"; else echo \"parapet-init: insmod $m failed\"; fi\n",
    "  done < /lib/modules/load-order\n",
    "fi\n",
    // The TPM the platform gave, and the PCRs it measured the boot into (8: the command
    // line, 9: kernel and initrd), SHA-256 bank.
    "if [ -d /sys/class/tpm/tpm0 ]; then\n",
    "  for n in 8 9; do\n",
    "    echo \"parapet-init: tpm-pcr-sha256 $n $(cat /sys/class/tpm/tpm0/pcr-sha256/$n)\"\n",
    "  done\n",
    // The event log the platform handed over with the TPM, as Linux took it (it shows the
    // log only once it has checked its first event), in base64 lines of 76 characters
    // (console lines are cut at 256), then a line that ends it, for the test to replay.
    "  mount -t securityfs securityfs /sys/kernel/security\n",
    "  if [ -f /sys/kernel/security/tpm0/binary_bios_measurements ]; then\n",
    "    base64 /sys/kernel/security/tpm0/binary_bios_measurements | while read part; do\n",
    "      echo \"parapet-init: tpm-eventlog-part $part\"\n",
    "    done\n",
    "    echo \"parapet-init: tpm-eventlog-end\"\n",
    "  else\n",
    "    echo \"parapet-init: tpm-eventlog none\"\n",
    "  fi\n",
    "else\n",
    "  echo \"parapet-init: tpm none\"\n",
    "fi\n",
    // Everything above was printed.
    "echo \"parapet-init: done\"\n",
    // init must never exit (the kernel panics when it does); -f powers off at once through
    // reboot(2), there being no init system to ask, and the test sees the VM end.
    "poweroff -f\n",
);

/// The archive's directories, before anything inside them.
const DIRS: [&str; 5] = ["/bin", "/dev", "/proc", "/sys", "/sbin"];

/// Where the modules go, made only when there are any, and the file naming them in load order.
const MODULE_DIRS: [&str; 2] = ["/lib", "/lib/modules"];
const LOAD_ORDER: &str = "/lib/modules/load-order";

/// Links to busybox, which picks the applet by the name it was run as: every command `INIT`
/// runs, plus `ls` and `head` for whoever debugs a boot. Absolute targets, so `/sbin`'s link
/// works too.
const APPLETS: [&str; 12] = [
    "/bin/sh",
    "/bin/base64",
    "/bin/mount",
    "/bin/cat",
    "/bin/echo",
    "/bin/sleep",
    "/bin/grep",
    "/bin/ls",
    "/bin/head",
    "/bin/insmod",
    "/bin/poweroff",
    "/sbin/poweroff",
];

/// Where `arch`'s busybox and default archive are cached.
fn cache_dir(arch: Arch) -> PathBuf {
    workspace_root().join("target/initramfs").join(arch.name())
}

/// The archive's path when the caller names none: `target/initramfs/<arch>/initramfs.cpio`.
pub fn default_out(arch: Arch) -> PathBuf {
    cache_dir(arch).join("initramfs.cpio")
}

/// Writes the initramfs for `arch` to `out` (uncompressed newc cpio), fetching busybox and
/// the kernel package's TPM modules first if they are not cached. The file appears whole or
/// not at all, so parallel tests may share it.
pub fn build(arch: Arch, out: &Path) -> Result<()> {
    let busybox = debian_busybox(arch)?;
    let binary =
        std::fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let modules = crate::kernels::debian_tpm_modules(arch)?
        .iter()
        .map(|path| read_module(path))
        .collect::<Result<Vec<_>>>()?;
    let modules: Vec<(&str, &[u8])> = modules
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect();
    write_whole(out, &archive(&binary, &modules)?)
}

/// A module's name (its file name without `.ko`) and bytes.
fn read_module(path: &Path) -> Result<(String, Vec<u8>)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str()?.strip_suffix(".ko"))
        .with_context(|| format!("{} is not named <module>.ko", path.display()))?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((name.to_string(), bytes))
}

/// The archive's bytes around `busybox` and `modules` (name, bytes; in load order), apart from
/// where they came from so tests can check the layout without the network. Each module is
/// `/lib/modules/<name>.ko`, and `LOAD_ORDER` names them a line each for `INIT`; with no
/// modules there is neither.
fn archive(busybox: &[u8], modules: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut cpio = Cpio::new();
    for dir in DIRS {
        cpio.dir(dir, 0o755)?;
    }
    cpio.file("/bin/busybox", 0o755, busybox)?;
    for link in APPLETS {
        cpio.symlink(link, "/bin/busybox")?;
    }
    if !modules.is_empty() {
        for dir in MODULE_DIRS {
            cpio.dir(dir, 0o755)?;
        }
        let mut order = String::new();
        for (name, bytes) in modules {
            // The name is a word of the shell's `read` and part of a path.
            ensure!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/'),
                "bad module name {name:?}"
            );
            cpio.file(&format!("/lib/modules/{name}.ko"), 0o644, bytes)?;
            order.push_str(&format!("{name}\n"));
        }
        cpio.file(LOAD_ORDER, 0o644, order.as_bytes())?;
    }
    cpio.file("/init", 0o755, INIT.as_bytes())?;
    cpio.finish()
}

/// Debian's static busybox for `arch` at `target/initramfs/<arch>/busybox`, fetched once: when
/// it is cached, no apt and no network.
pub fn debian_busybox(arch: Arch) -> Result<PathBuf> {
    let busybox = cache_dir(arch).join("busybox");
    if !busybox.is_file() {
        fetch_busybox(arch, &busybox)?;
    }
    let bytes =
        std::fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?;
    check_elf(arch, &bytes).with_context(|| {
        format!(
            "{} is not a static {arch} busybox (remove it to fetch it again)",
            busybox.display()
        )
    })?;
    Ok(busybox)
}

/// Downloads and unpacks the package in a staging directory of this call's own, so parallel
/// callers never mix their .debs, and moves the binary to `dest` only once it checks out.
fn fetch_busybox(arch: Arch, dest: &Path) -> Result<()> {
    let apt = Apt::new(arch)?;
    let staging = temp_beside(dest);
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    eprintln!("xtask: fetching {PACKAGE} ({arch}) from Debian");
    let fetched = download_and_extract(&apt, &staging).and_then(|binary| {
        let bytes = std::fs::read(&binary)?;
        check_elf(arch, &bytes).with_context(|| format!("{PACKAGE}'s {}", binary.display()))?;
        std::fs::rename(&binary, dest)
            .with_context(|| format!("moving busybox to {}", dest.display()))
    });
    std::fs::remove_dir_all(&staging).ok();
    fetched
}

/// The busybox binary out of the package, unpacked under `staging`.
fn download_and_extract(apt: &Apt, staging: &Path) -> Result<PathBuf> {
    let deb = match apt.download(PACKAGE, staging) {
        Ok(deb) => deb,
        Err(_) => {
            // The host's lists may never have been fetched.
            apt.run("apt-get", &["update", "-q"])?;
            apt.download(PACKAGE, staging)?
        }
    };
    let root = staging.join("root");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .context("running dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed", deb.display());
    }
    // bookworm ships /bin/busybox; a merged-/usr package would ship /usr/bin/busybox. Only a
    // regular file counts: a link could point out of the staging directory into the host.
    ["usr/bin/busybox", "bin/busybox"]
        .into_iter()
        .map(|path| root.join(path))
        .find(|path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()))
        .with_context(|| format!("{} holds no busybox", deb.display()))
}

/// Checks that `bytes` are a 64-bit little-endian ELF for `arch`'s machine (62 EM_X86_64,
/// 183 EM_AARCH64) without a program interpreter: the initramfs has no dynamic loader.
fn check_elf(arch: Arch, bytes: &[u8]) -> Result<()> {
    ensure!(bytes.get(..4) == Some(b"\x7fELF"), "not an ELF file");
    ensure!(
        bytes.get(4..6) == Some(&[2, 1]),
        "not a 64-bit little-endian ELF"
    );
    let want = match arch {
        Arch::X86_64 => 62,
        Arch::Aarch64 => 183,
    };
    let machine = u16::from_le_bytes(field(bytes, 0x12)?);
    ensure!(machine == want, "an ELF for machine {machine}, not {want}");
    ensure!(
        !has_interpreter(bytes)?,
        "dynamically linked (it names an interpreter)"
    );
    Ok(())
}

/// Whether any program header is PT_INTERP (3), the mark of a dynamically linked program.
fn has_interpreter(bytes: &[u8]) -> Result<bool> {
    let table = u64::from_le_bytes(field(bytes, 0x20)?);
    let size = u16::from_le_bytes(field(bytes, 0x36)?);
    let count = u16::from_le_bytes(field(bytes, 0x38)?);
    for i in 0..u64::from(count) {
        let at = i
            .checked_mul(size.into())
            .and_then(|offset| offset.checked_add(table))
            .context("program header offset overflows")?;
        if u32::from_le_bytes(field(bytes, at)?) == 3 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The `N` bytes at `at`, or an error if the file ends first.
fn field<const N: usize>(bytes: &[u8], at: u64) -> Result<[u8; N]> {
    usize::try_from(at)
        .ok()
        .and_then(|at| bytes.get(at..at.checked_add(N)?))
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("the ELF ends before byte {at:#x}"))
}

/// Writes `bytes` to a fresh file beside `path`, then renames it over `path`: readers see the
/// old file or the new one, never half of one.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let temp = temp_beside(path);
    std::fs::write(&temp, bytes).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| {
        std::fs::remove_file(&temp).ok();
        format!("renaming {} to {}", temp.display(), path.display())
    })
}

/// A name beside `path` that no other process or thread uses: `<name>.<pid>.<n>.tmp`.
pub(crate) fn temp_beside(path: &Path) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// A writer of the "newc" cpio format the kernel unpacks as an initramfs, as Linux's
/// Documentation/driver-api/early-userspace/buffer-format.rst describes it. Each entry is a
/// 110-byte header ("070701", then 13 fields of 8 hex digits: ino, mode, uid, gid, nlink,
/// mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check), the name with
/// its NUL, NULs up to a multiple of 4 bytes, the data (a link's target for a symlink), and
/// NULs up to a multiple of 4 again. An entry named `TRAILER!!!` ends the archive.
///
/// Owners are root, mtimes 0 and inode numbers count up from 1, so the bytes depend on the
/// entries alone. Leading slashes are dropped from names, as the kernel's gen_init_cpio does.
struct Cpio {
    bytes: Vec<u8>,
    next_ino: u32,
}

impl Cpio {
    fn new() -> Self {
        Self {
            bytes: Vec::new(),
            next_ino: 1,
        }
    }

    /// A directory: nlink 2, for its own entry and its `.`.
    fn dir(&mut self, name: &str, perm: u32) -> Result<()> {
        self.entry(name, S_IFDIR | perm, 2, &[])
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(name, S_IFREG | perm, 1, data)
    }

    /// A symbolic link, whose data is its target.
    fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        self.entry(name, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// The archive, closed by the trailer entry (inode 0, mode 0, as gen_init_cpio writes it).
    fn finish(mut self) -> Result<Vec<u8>> {
        self.record(0, "TRAILER!!!", 0, 1, &[])?;
        Ok(self.bytes)
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> Result<()> {
        let ino = self.next_ino;
        self.next_ino = ino.checked_add(1).context("too many cpio entries")?;
        self.record(ino, name, mode, nlink, data)
    }

    fn record(&mut self, ino: u32, name: &str, mode: u32, nlink: u32, data: &[u8]) -> Result<()> {
        let name = name.trim_start_matches('/');
        ensure!(
            !name.is_empty() && !name.contains('\0'),
            "bad cpio name {name:?}"
        );
        let filesize = u32::try_from(data.len()).context("a cpio entry of 4 GiB or more")?;
        let namesize = u32::try_from(name.len() + 1).context("a cpio name of 4 GiB or more")?;
        let fields = [ino, mode, 0, 0, nlink, 0, filesize, 0, 0, 0, 0, namesize, 0];
        self.bytes.extend_from_slice(b"070701");
        for value in fields {
            self.bytes
                .extend_from_slice(format!("{value:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    /// NULs to the next multiple of 4. Every entry starts aligned, so aligning the archive's
    /// length aligns the entry's header + name, and its data.
    fn pad(&mut self) {
        let len = self.bytes.len().next_multiple_of(4);
        self.bytes.resize(len, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry as a reader sees it.
    #[derive(Debug)]
    struct Entry {
        fields: [u32; 13],
        name: String,
        data: Vec<u8>,
    }

    impl Entry {
        fn ino(&self) -> u32 {
            self.fields[0]
        }
        fn mode(&self) -> u32 {
            self.fields[1]
        }
        fn nlink(&self) -> u32 {
            self.fields[4]
        }
    }

    /// A strict newc reader: checks magic, alignment and zeroed padding on the way, and that
    /// the trailer ends the bytes exactly.
    fn parse(bytes: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(at % 4, 0, "entry at {at} is unaligned");
            assert_eq!(&bytes[at..at + 6], b"070701", "magic at {at}");
            let mut fields = [0u32; 13];
            for (i, field) in fields.iter_mut().enumerate() {
                let hex = &bytes[at + 6 + 8 * i..at + 14 + 8 * i];
                assert!(hex.iter().all(|b| b"0123456789ABCDEF".contains(b)));
                *field = u32::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
            }
            let (filesize, namesize) = (fields[6] as usize, fields[11] as usize);
            let name_at = at + 110;
            assert_eq!(bytes[name_at + namesize - 1], 0, "name's NUL");
            let name = std::str::from_utf8(&bytes[name_at..name_at + namesize - 1]).unwrap();
            let data_at = (name_at + namesize).next_multiple_of(4);
            assert!(bytes[name_at + namesize..data_at].iter().all(|&b| b == 0));
            let end = data_at + filesize;
            at = end.next_multiple_of(4);
            assert!(bytes[end..at].iter().all(|&b| b == 0));
            entries.push(Entry {
                fields,
                name: name.to_string(),
                data: bytes[data_at..end].to_vec(),
            });
            if name == "TRAILER!!!" {
                assert_eq!(at, bytes.len(), "bytes after the trailer");
                return entries;
            }
        }
    }

    #[test]
    fn the_writer_round_trips_with_padding_for_every_length() {
        let mut cpio = Cpio::new();
        cpio.dir("/d", 0o755).unwrap();
        // Names of 1 to 4 bytes and data of 0 to 4 bytes cover every padding amount.
        let names = ["d/a", "d/ab", "d/abc", "d/abcd"];
        for (i, name) in names.iter().enumerate() {
            cpio.file(name, 0o644, &b"xyzw"[..i]).unwrap();
        }
        cpio.file("d/five", 0o600, b"12345").unwrap();
        cpio.symlink("/d/link", "a").unwrap();
        let entries = parse(&cpio.finish().unwrap());

        assert_eq!(entries.len(), 8);
        let dir = &entries[0];
        assert_eq!(
            (dir.name.as_str(), dir.mode(), dir.nlink()),
            ("d", 0o040_755, 2)
        );
        for (i, name) in names.iter().enumerate() {
            let file = &entries[1 + i];
            assert_eq!(
                (file.name.as_str(), file.mode(), file.nlink()),
                (*name, 0o100_644, 1)
            );
            assert_eq!(file.data, &b"xyzw"[..i]);
        }
        assert_eq!(entries[5].data, b"12345");
        let link = &entries[6];
        assert_eq!((link.name.as_str(), link.mode()), ("d/link", 0o120_777));
        assert_eq!(link.data, b"a");
        let trailer = &entries[7];
        assert_eq!((trailer.ino(), trailer.mode(), trailer.nlink()), (0, 0, 1));
        for entry in &entries {
            let [_, _, uid, gid, _, mtime, filesize, dev_maj, dev_min, rdev_maj, rdev_min, namesize, check] =
                entry.fields;
            assert_eq!(
                [uid, gid, mtime, dev_maj, dev_min, rdev_maj, rdev_min, check],
                [0; 8]
            );
            assert_eq!(filesize as usize, entry.data.len());
            assert_eq!(namesize as usize, entry.name.len() + 1);
        }
        let inos: Vec<u32> = entries[..7].iter().map(Entry::ino).collect();
        assert_eq!(inos, [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn the_writer_refuses_empty_names() {
        assert!(Cpio::new().dir("/", 0o755).is_err());
    }

    #[test]
    fn the_archive_is_byte_identical_across_runs() {
        let busybox = b"\x7fELF not really busybox";
        let modules: &[(&str, &[u8])] = &[("a", b"module a")];
        assert_eq!(
            archive(busybox, modules).unwrap(),
            archive(busybox, modules).unwrap()
        );
    }

    /// The archive's entry named `name`.
    fn find<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn the_archive_holds_dirs_busybox_its_links_and_init() {
        let entries = parse(&archive(b"busybox bytes", &[]).unwrap());
        let find = |name: &str| find(&entries, name);
        for dir in DIRS {
            assert_eq!(find(&dir[1..]).mode(), 0o040_755);
        }
        let busybox = find("bin/busybox");
        assert_eq!(
            (busybox.mode(), busybox.data.as_slice()),
            (0o100_755, &b"busybox bytes"[..])
        );
        for link in APPLETS {
            let entry = find(&link[1..]);
            assert_eq!(
                (entry.mode(), entry.data.as_slice()),
                (0o120_777, &b"/bin/busybox"[..])
            );
        }
        let init = find("init");
        assert_eq!(
            (init.mode(), init.data.as_slice()),
            (0o100_755, INIT.as_bytes())
        );
        let mut inos: Vec<u32> = entries.iter().map(Entry::ino).collect();
        inos.sort_unstable();
        inos.dedup();
        assert_eq!(inos.len(), entries.len(), "inode numbers repeat");
        // No modules: no /lib at all, so /init loads none.
        assert!(!entries.iter().any(|e| e.name.starts_with("lib")));
    }

    #[test]
    fn the_modules_go_under_lib_modules_with_their_load_order() {
        let modules: &[(&str, &[u8])] = &[
            ("spi-bitbang", b"first"),
            ("spi-gpio", b"second"),
            ("tpm_tis_core", b"third"),
            ("tpm_tis_spi", b"fourth"),
        ];
        let entries = parse(&archive(b"busybox bytes", modules).unwrap());
        let position = |name: &str| entries.iter().position(|e| e.name == name).unwrap();
        for dir in MODULE_DIRS {
            assert_eq!(find(&entries, &dir[1..]).mode(), 0o040_755);
        }
        // Each directory comes before what is in it.
        assert!(position("lib") < position("lib/modules"));
        for (name, bytes) in modules {
            let path = format!("lib/modules/{name}.ko");
            let module = find(&entries, &path);
            assert_eq!((module.mode(), module.data.as_slice()), (0o100_644, *bytes));
            assert!(position("lib/modules") < position(&path));
        }
        let order = find(&entries, &LOAD_ORDER[1..]);
        assert_eq!(
            order.data,
            b"spi-bitbang\nspi-gpio\ntpm_tis_core\ntpm_tis_spi\n"
        );
        assert!(INIT.contains(LOAD_ORDER) && INIT.contains("insmod /lib/modules/$m.ko"));
        // /init loads the modules before it looks for the TPM.
        assert!(INIT.find("insmod").unwrap() < INIT.find("/sys/class/tpm").unwrap());
    }

    #[test]
    fn module_names_that_break_the_load_order_are_refused() {
        for bad in ["", "a b", "a/b", "a\nb"] {
            assert!(archive(b"busybox", &[(bad, b"x")]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_command_init_runs_has_a_link() {
        let mut commands = Vec::new();
        for line in INIT.lines().filter(|l| !l.starts_with("#!")) {
            commands.extend(line.split_whitespace().next());
            commands.extend(
                line.split("$(")
                    .skip(1)
                    .filter_map(|s| s.split_whitespace().next()),
            );
        }
        // Shell keywords, not commands.
        commands.retain(|c| !["for", "done", "if", "then", "else", "fi", "while"].contains(c));
        assert!(commands.contains(&"poweroff") && commands.contains(&"grep"));
        for command in commands {
            assert!(
                APPLETS.contains(&format!("/bin/{command}").as_str()),
                "/init runs {command}, which has no link in /bin"
            );
        }
    }

    #[test]
    fn init_keeps_the_words_the_tests_parse() {
        assert!(INIT.starts_with("#!/bin/sh\n") && INIT.ends_with("poweroff -f\n"));
        for word in [
            "parapet-init: started",
            "parapet-init: uptime-before ",
            "parapet-init: sleep-returned uptime-after ",
            "parapet-init: cpus-online ",
            "parapet-init: memmap ",
            "parapet-init: iomem ",
            "parapet-init: meminfo ",
            "parapet-init: type a line",
            "parapet-init: read [$line]",
            "parapet-init: read nothing",
            "parapet-init: serial-irq ",
            "parapet-init: insmod $m ok",
            "parapet-init: insmod $m failed",
            "parapet-init: tpm-pcr-sha256 ",
            "parapet-init: tpm none",
            "parapet-init: tpm-eventlog-part $part",
            "parapet-init: tpm-eventlog-end",
            "parapet-init: tpm-eventlog none",
            "parapet-init: done",
        ] {
            assert!(INIT.contains(word), "{word}");
        }
    }

    /// A minimal ELF header for `machine` with one program header of type `p_type`.
    fn elf(machine: u16, p_type: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x40 + 0x38];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        bytes[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        bytes[0x40..0x44].copy_from_slice(&p_type.to_le_bytes());
        bytes
    }

    #[test]
    fn busybox_must_be_a_static_elf_for_the_arch() {
        const PT_LOAD: u32 = 1;
        const PT_INTERP: u32 = 3;
        assert!(check_elf(Arch::X86_64, &elf(62, PT_LOAD)).is_ok());
        assert!(check_elf(Arch::Aarch64, &elf(183, PT_LOAD)).is_ok());
        assert!(check_elf(Arch::Aarch64, &elf(62, PT_LOAD)).is_err());
        assert!(check_elf(Arch::X86_64, &elf(62, PT_INTERP)).is_err());
        assert!(check_elf(Arch::X86_64, b"#!/bin/sh\n").is_err());
        let mut truncated = elf(62, PT_LOAD);
        truncated.truncate(0x42);
        assert!(check_elf(Arch::X86_64, &truncated).is_err());
    }
}

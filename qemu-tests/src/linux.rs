//! Reading a Linux guest's boot from the console: the `parapet-init: ...` lines the busybox
//! initramfs's /init prints (`xtask/src/initramfs.rs`, its `INIT` script), the memory Parapet
//! says it gave the guest (x86_64: the e820 map, `linux: e820 S-E type N`; aarch64: the device
//! tree's RAM, `linux: memory S-E`), and what the Linux boot test requires of them on each
//! architecture.

use std::collections::BTreeSet;
use std::ops::Range;

use abi::arm64_boot::qemu_virt;
use abi::igvm_layout::{PARAVISOR_BASE, PARAVISOR_SIZE};
use sha2::{Digest, Sha256};
use xtask::Arch;

/// A memory-map range, both ends inclusive as Linux and Parapet print them, with its type as
/// Linux names it in /sys/firmware/memmap (`System RAM`, `ACPI Tables`, ...).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub kind: String,
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}-{:#x} {}", self.start, self.end, self.kind)
    }
}

/// A range of RAM, both ends inclusive: a top-level `System RAM` line of the guest's
/// /proc/iomem, or one of Parapet's `linux: memory` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RamRange {
    pub start: u64,
    pub end: u64,
}

impl RamRange {
    /// Whether the two share an address.
    pub fn overlaps(&self, other: &Range<u64>) -> bool {
        self.start < other.end && self.end >= other.start
    }

    /// Whether all of it lies in `region`.
    pub fn inside(&self, region: &Region) -> bool {
        region.start <= self.start && self.end <= region.end
    }
}

impl std::fmt::Display for RamRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end)
    }
}

/// Linux's name for an e820 type (arch/x86/kernel/e820.c, `e820_type_to_string`), as
/// /sys/firmware/memmap/*/type shows it; `type N` for one it has no name for here.
pub fn e820_type_name(kind: u32) -> String {
    match kind {
        1 => "System RAM".into(),
        2 => "Reserved".into(),
        3 => "ACPI Tables".into(),
        4 => "ACPI Non-volatile Storage".into(),
        5 => "Unusable memory".into(),
        other => format!("type {other}"),
    }
}

/// `0x1f` as a number.
fn hex(text: &str) -> Option<u64> {
    digits(text.strip_prefix("0x")?)
}

/// `1f` (hex digits alone, as /proc/iomem prints them) as a number.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// `S-E`, each end read by `number`, into a range that does not run backwards.
fn range(text: &str, number: fn(&str) -> Option<u64>) -> Option<RamRange> {
    let (start, end) = text.trim().split_once('-')?;
    let range = RamRange {
        start: number(start)?,
        end: number(end)?,
    };
    (range.start <= range.end).then_some(range)
}

/// The lines of `console` after `marker`, each read by `read`; an error names the first that
/// cannot be.
fn parapet_lines<T>(
    console: &str,
    marker: &str,
    read: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    console
        .lines()
        .filter_map(|l| l.split_once(marker).map(|(_, rest)| rest.trim()))
        .map(|rest| {
            read(rest).ok_or_else(|| format!("unreadable `{}` line: {rest:?}", marker.trim()))
        })
        .collect()
}

/// The map Parapet gave an x86 guest, from its `linux: e820 0x4100000-0x1ffdffff type 1` lines.
pub fn parapet_e820(console: &str) -> Result<Vec<Region>, String> {
    parapet_lines(console, "linux: e820 ", |rest| {
        let (span, kind) = rest.split_once(" type ")?;
        let span = range(span, hex)?;
        Some(Region {
            start: span.start,
            end: span.end,
            kind: e820_type_name(kind.parse().ok()?),
        })
    })
}

/// The RAM Parapet gave an arm64 guest in its device tree, from its
/// `linux: memory 0x44000000-0x5fffffff` lines.
pub fn parapet_memory(console: &str) -> Result<Vec<RamRange>, String> {
    parapet_lines(console, "linux: memory ", |rest| range(rest, hex))
}

/// What /init read from the console after its prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Typed {
    /// `read [<line>]`: the line, without its newline.
    Line(String),
    /// `read nothing`: its minute ran out, or the console closed.
    Nothing,
}

/// What the guest's /init reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InitReport {
    /// `parapet-init: started`: the kernel ran /init.
    pub started: bool,
    /// The first figure of /proc/uptime before and after `sleep 1`, in seconds.
    pub uptime_before: Option<f64>,
    pub uptime_after: Option<f64>,
    /// /sys/devices/system/cpu/online (`0`, `0-1`).
    pub cpus_online: Option<String>,
    /// /sys/firmware/memmap, one entry per line, in the order printed (x86 only: arm64 has
    /// no firmware memory map in sysfs).
    pub memmap: Vec<Region>,
    /// The top-level `System RAM` ranges of /proc/iomem, in the order printed.
    pub iomem: Vec<RamRange>,
    /// `parapet-init: type a line`: /init asked for a line.
    pub prompted: bool,
    /// What it read then.
    pub read: Option<Typed>,
    /// The `serial-irq` line's /proc/interrupts row, if any.
    pub serial_irq: Option<InterruptRow>,
    /// The modules /init loaded (`insmod NAME ok`) and failed to (`insmod NAME failed`), in
    /// the order printed: the TPM's driver and the bus it sits on (arm64; none on x86).
    pub modules_loaded: Vec<String>,
    pub modules_failed: Vec<String>,
    /// The TPM's SHA-256 PCRs as /sys/class/tpm/tpm0/pcr-sha256 gave them: (index, hex).
    pub tpm_pcrs: Vec<(u32, String)>,
    /// `parapet-init: tpm none`: the guest found no TPM.
    pub no_tpm: bool,
    /// The TPM event log as /sys/kernel/security/tpm0/binary_bios_measurements gave it
    /// (`tpm-eventlog-part BASE64` lines, then `tpm-eventlog-end`), or `Some(None)` for
    /// `tpm-eventlog none`: Linux found none.
    pub tpm_event_log: Option<Option<Vec<u8>>>,
    /// `parapet-init: done`: everything above was printed.
    pub done: bool,
    /// Lines that say `parapet-init:` but could not be read.
    pub unreadable: Vec<String>,
}

/// One row of /proc/interrupts: `25:  19  0  IO-APIC  4-edge  ttyS0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterruptRow {
    /// The first column, without its colon (`25`).
    pub irq: String,
    /// The counts of every CPU's column, summed.
    pub count: u64,
    /// The words after the counts: the interrupt chip, the pin and trigger, the handlers.
    pub words: Vec<String>,
}

impl InterruptRow {
    /// Whether `word` is one of the words after the counts.
    pub fn names(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }
}

/// Reads a /proc/interrupts row.
pub fn interrupt_row(row: &str) -> Option<InterruptRow> {
    let mut words = row.split_whitespace().peekable();
    let irq = words.next()?.strip_suffix(':')?.to_string();
    let mut count = 0u64;
    let mut columns = 0;
    while let Some(n) = words.peek().and_then(|w| w.parse::<u64>().ok()) {
        count = count.checked_add(n)?;
        columns += 1;
        words.next();
    }
    (columns > 0).then(|| InterruptRow {
        irq,
        count,
        words: words.map(String::from).collect(),
    })
}

/// The first number of `text` (`4.95 0.99`: 4.95).
fn first_float(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// What follows `read ` on /init's line: `[<line>]` or `nothing`.
fn typed(rest: &str) -> Option<Typed> {
    if rest == "nothing" {
        return Some(Typed::Nothing);
    }
    let line = rest.strip_prefix('[')?.strip_suffix(']')?;
    Some(Typed::Line(line.to_string()))
}

/// The `parapet-init:` lines of `console`, whether Parapet printed them (`guest| ` before
/// them) or the guest's UART was the console itself (QEMU booting the kernel directly).
pub fn init_report(console: &str) -> InitReport {
    let mut report = InitReport::default();
    // The event log's base64 lines so far, until its end line decodes them.
    let mut event_log_parts = String::new();
    for line in console.lines() {
        let line = line.trim_end();
        let Some(said) = line
            .strip_prefix("guest| ")
            .unwrap_or(line)
            .strip_prefix("parapet-init: ")
        else {
            continue;
        };
        let (word, rest) = said.split_once(' ').unwrap_or((said, ""));
        let rest = rest.trim();
        let read = match word {
            "started" => {
                report.started = rest.is_empty();
                report.started
            }
            "done" => {
                report.done = rest.is_empty();
                report.done
            }
            "uptime-before" => {
                report.uptime_before = first_float(rest);
                report.uptime_before.is_some()
            }
            "sleep-returned" => {
                report.uptime_after = rest.strip_prefix("uptime-after").and_then(first_float);
                report.uptime_after.is_some()
            }
            "cpus-online" => {
                report.cpus_online = Some(rest.to_string());
                !rest.is_empty()
            }
            "memmap" => {
                let mut parts = rest.splitn(3, ' ');
                let region = (|| {
                    Some(Region {
                        start: hex(parts.next()?)?,
                        end: hex(parts.next()?)?,
                        kind: parts.next()?.trim().to_string(),
                    })
                })();
                region.map(|r| report.memmap.push(r)).is_some()
            }
            "iomem" => range(rest, digits).map(|r| report.iomem.push(r)).is_some(),
            "type" => {
                report.prompted = rest == "a line";
                report.prompted
            }
            "read" => {
                report.read = typed(rest);
                report.read.is_some()
            }
            "serial-irq" => {
                report.serial_irq = interrupt_row(rest);
                report.serial_irq.is_some()
            }
            "insmod" => match rest.split_once(' ') {
                Some((name, "ok")) => {
                    report.modules_loaded.push(name.to_string());
                    true
                }
                Some((name, "failed")) => {
                    report.modules_failed.push(name.to_string());
                    true
                }
                _ => false,
            },
            "tpm-pcr-sha256" => {
                let pcr = rest
                    .split_once(' ')
                    .and_then(|(n, value)| Some((n.parse().ok()?, value.trim().to_lowercase())));
                pcr.map(|p| report.tpm_pcrs.push(p)).is_some()
            }
            "tpm" => {
                report.no_tpm = rest == "none";
                report.no_tpm
            }
            "tpm-eventlog" if rest == "none" => {
                report.tpm_event_log = Some(None);
                true
            }
            "tpm-eventlog-part" => {
                event_log_parts.push_str(rest.trim());
                true
            }
            "tpm-eventlog-end" => {
                use base64::Engine as _;
                let parts = std::mem::take(&mut event_log_parts);
                let log = base64::engine::general_purpose::STANDARD.decode(parts);
                log.map(|log| report.tpm_event_log = Some(Some(log)))
                    .is_ok()
            }
            // Printed for whoever reads the console; nothing here checks it.
            "meminfo" => true,
            _ => false,
        };
        if !read {
            report.unreadable.push(line.to_string());
        }
    }
    report
}

/// Where Parapet lives in guest-physical memory on x86_64 (the IGVM layout's region, which
/// the PVH image uses too): no guest RAM may overlap it.
pub const X86_PARAVISOR: Range<u64> = PARAVISOR_BASE..PARAVISOR_BASE + PARAVISOR_SIZE;

/// What Parapet keeps for itself on aarch64 when it hosts a guest: the first 64 MiB of QEMU
/// virt's RAM, where its image was loaded (`boot/src/aarch64/start.rs`, `OWN_REGION_SIZE`).
pub const AARCH64_PARAVISOR: Range<u64> = qemu_virt::RAM_BASE..qemu_virt::RAM_BASE + (64 << 20);

/// The SHA-256 PCRs Parapet's measurements of a Linux boot give (boot/src/guest/tpm.rs): PCR
/// 8 extended once with the command line's bytes, PCR 9 with the kernel's, then the
/// initrd's, each extend being `PCR = SHA-256(PCR || SHA-256(data))` from zeros (TPM 2.0
/// Part 1 §17.6.6): [(8, hex), (9, hex)].
pub fn expected_pcrs(kernel: &[u8], initrd: &[u8], command_line: &[u8]) -> Vec<(u32, String)> {
    let extend = |pcr: [u8; 32], data: &[u8]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(pcr);
        h.update(Sha256::digest(data));
        h.finalize().into()
    };
    let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let pcr8 = extend([0; 32], command_line);
    let pcr9 = extend(extend([0; 32], kernel), initrd);
    vec![(8, hex(pcr8)), (9, hex(pcr9))]
}

/// The SHA-256 PCRs Debian's `tpm2_eventlog` (tpm2-tools) computes by replaying `log`, a
/// TCG event log: (index, lowercase hex), as [`expected_pcrs`] gives them.
pub fn eventlog_pcrs(log: &[u8]) -> Result<Vec<(u32, String)>, String> {
    // Tests run side by side in one process: a name of its own for each call.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("parapet-eventlog-{}-{call}", std::process::id()));
    std::fs::write(&file, log).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let out = std::process::Command::new("tpm2_eventlog")
        .arg(&file)
        .output();
    std::fs::remove_file(&file).ok();
    let out = out.map_err(|e| format!("running tpm2_eventlog (tpm2-tools): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "tpm2_eventlog refused the log: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(sha256_pcrs_of_eventlog_output(&text))
}

/// The `pcrs:` section's `sha256:` bank of tpm2_eventlog's output: lines `    8  : 0xHEX`.
fn sha256_pcrs_of_eventlog_output(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .skip_while(|l| *l != "pcrs:")
        .skip_while(|l| l.trim() != "sha256:")
        .skip(1)
        .map_while(|l| {
            let (index, value) = l.trim().split_once(':')?;
            let value = value.trim().strip_prefix("0x")?;
            Some((index.trim().parse().ok()?, value.to_lowercase()))
        })
        .collect()
}

/// What the test asked of the boot.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The CPUs Linux must bring up, as /sys/devices/system/cpu/online lists them (`0-1`).
    pub online: &'a str,
    /// The line typed at /init's prompt, without its newline.
    pub typed: &'a str,
}

/// Collects what is wrong; each message is made only when it is.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn require(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

/// Everything wrong with a Linux guest's boot under Parapet on `arch`, as read from `console`
/// (empty when all is well).
///
/// On both architectures: /init ran and finished, every line of it readable, no `insmod` of
/// it failed (arm64 loads its TPM's drivers; x86 loads none); `sleep 1` returned after at
/// least a second of the guest's uptime (its timer interrupts arrive); the line typed at its
/// prompt was read back whole (console input reaches the guest's UART); `expected.online` CPUs
/// came up.
///
/// x86_64 (svm): the UART's interrupt came through the I/O APIC to ttyS0; the guest saw
/// exactly the e820 map Parapet logged, with no RAM in Parapet's region, and every range of
/// RAM it took in (/proc/iomem) lies in a `System RAM` range of that map; Parapet saw the guest
/// enter ACPI S5.
///
/// aarch64 (el2): the PL011's interrupt (SPI 1, INTID 33) came through the GICv3 to the
/// `uart-pl011` driver, at least once (the typed line: the emulated FIFO never fills, so the
/// driver needs no transmit interrupt); the RAM the guest took in is exactly the RAM Parapet's
/// device tree gave it, none of it in Parapet's first 64 MiB; Parapet saw the guest power off
/// with success.
pub fn linux_boot_problems(arch: Arch, console: &str, expected: &Expected<'_>) -> Vec<String> {
    let init = init_report(console);
    let mut problems = Problems::default();
    common_problems(&mut problems, &init, expected);
    match arch {
        Arch::X86_64 => x86_problems(&mut problems, console, &init),
        Arch::Aarch64 => arm64_problems(&mut problems, console, &init),
    }
    problems.0
}

fn common_problems(problems: &mut Problems, init: &InitReport, expected: &Expected<'_>) {
    problems.require(init.started, || {
        "the kernel never ran /init (no `parapet-init: started`)".into()
    });
    problems.require(init.done, || {
        "/init did not finish (no `parapet-init: done`)".into()
    });
    problems.require(init.unreadable.is_empty(), || {
        format!("unreadable /init lines: {:?}", init.unreadable)
    });
    problems.require(init.modules_failed.is_empty(), || {
        format!(
            "/init could not load the modules {:?} (the guest's console says why)",
            init.modules_failed
        )
    });
    // /proc/uptime has two decimals: compare whole hundredths.
    let hundredths = |s: f64| (s * 100.0).round() as i64;
    let slept = init
        .uptime_before
        .zip(init.uptime_after)
        .map(|(before, after)| hundredths(after) - hundredths(before));
    problems.require(slept.is_some_and(|h| h >= 100), || {
        format!(
            "`sleep 1` took {slept:?} hundredths of the guest's uptime ({:?} to {:?}), wanted at least 100",
            init.uptime_before, init.uptime_after
        )
    });
    let wanted = Typed::Line(expected.typed.to_string());
    problems.require(init.prompted && init.read.as_ref() == Some(&wanted), || {
        format!(
            "/init read {:?} from the console (prompted: {}), wanted {wanted:?}",
            init.read, init.prompted
        )
    });
    problems.require(init.cpus_online.as_deref() == Some(expected.online), || {
        format!(
            "CPUs online {:?}, wanted {:?}",
            init.cpus_online, expected.online
        )
    });
}

/// `ranges` as their text, for messages.
fn shown<T: ToString>(ranges: impl IntoIterator<Item = T>) -> Vec<String> {
    ranges.into_iter().map(|r| r.to_string()).collect()
}

fn x86_problems(problems: &mut Problems, console: &str, init: &InitReport) {
    // The local APIC in x2APIC mode: Linux moves there only where the hypervisor vouches for
    // it (no interrupt remapping here), and its IPIs then go through the x2APIC ICR.
    problems.require(
        console
            .lines()
            .any(|l| l.starts_with("guest| ") && l.ends_with("x2apic enabled")),
        || "the guest's local APIC never went to x2APIC mode (no `x2apic enabled`)".into(),
    );
    let serial = init.serial_irq.as_ref();
    problems.require(
        serial.is_some_and(|row| row.count > 0 && row.names("IO-APIC") && row.names("ttyS0")),
        || {
            format!(
                "the serial port's interrupts did not come through the I/O APIC to ttyS0: {serial:?}"
            )
        },
    );
    match parapet_e820(console) {
        Err(e) => problems.require(false, || e),
        Ok(given) => {
            problems.require(!given.is_empty(), || "Parapet logged no e820 map".into());
            let given_set: BTreeSet<&Region> = given.iter().collect();
            let seen: BTreeSet<&Region> = init.memmap.iter().collect();
            problems.require(given_set == seen, || {
                format!(
                    "the guest's memory map is not the one Parapet gave: only Parapet's {:?}, only the guest's {:?}",
                    shown(given_set.difference(&seen)),
                    shown(seen.difference(&given_set)),
                )
            });
            problems.require(!init.iomem.is_empty(), || {
                "the guest listed no System RAM in /proc/iomem".into()
            });
            let ram: Vec<&Region> = given.iter().filter(|r| r.kind == "System RAM").collect();
            let outside: Vec<&RamRange> = init
                .iomem
                .iter()
                .filter(|range| !ram.iter().any(|r| range.inside(r)))
                .collect();
            problems.require(outside.is_empty(), || {
                format!(
                    "the guest took in RAM outside Parapet's System RAM ranges: {:?}",
                    shown(outside)
                )
            });
        }
    }
    let in_parapet: Vec<&Region> = init
        .memmap
        .iter()
        .filter(|r| {
            r.kind == "System RAM" && r.start < X86_PARAVISOR.end && r.end >= X86_PARAVISOR.start
        })
        .collect();
    problems.require(in_parapet.is_empty(), || {
        format!(
            "guest RAM overlaps Parapet's region {:#x}-{:#x}: {:?}",
            X86_PARAVISOR.start,
            X86_PARAVISOR.end,
            shown(in_parapet)
        )
    });
    problems.require(console.contains("the guest entered ACPI S5"), || {
        "Parapet did not see the guest enter ACPI S5".into()
    });
}

fn arm64_problems(problems: &mut Problems, console: &str, init: &InitReport) {
    // The PL011's SPI as Linux's GICv3 driver shows the hardware interrupt: its INTID.
    let intid = (qemu_virt::UART_SPI + 32).to_string();
    let serial = init.serial_irq.as_ref();
    problems.require(
        serial.is_some_and(|row| {
            row.count > 0 && row.names("GICv3") && row.names(&intid) && row.names("uart-pl011")
        }),
        || {
            format!(
                "the PL011's interrupt {intid} did not come through the GICv3 to uart-pl011: {serial:?}"
            )
        },
    );
    match parapet_memory(console) {
        Err(e) => problems.require(false, || e),
        Ok(given) => {
            problems.require(!given.is_empty(), || {
                "Parapet logged no guest memory".into()
            });
            let given: BTreeSet<&RamRange> = given.iter().collect();
            let seen: BTreeSet<&RamRange> = init.iomem.iter().collect();
            problems.require(given == seen, || {
                format!(
                    "the guest's RAM is not the RAM Parapet gave: only Parapet's {:?}, only the guest's {:?}",
                    shown(given.difference(&seen)),
                    shown(seen.difference(&given)),
                )
            });
        }
    }
    let in_parapet: Vec<&RamRange> = init
        .iomem
        .iter()
        .filter(|r| r.overlaps(&AARCH64_PARAVISOR))
        .collect();
    problems.require(in_parapet.is_empty(), || {
        format!(
            "guest RAM overlaps Parapet's region {:#x}-{:#x}: {:?}",
            AARCH64_PARAVISOR.start,
            AARCH64_PARAVISOR.end,
            shown(in_parapet)
        )
    });
    problems.require(
        console.contains("el2: the guest powered off (success)"),
        || "Parapet did not see the guest power off with success".into(),
    );
}

/// vmm-lite's report that KVM cannot run a vCPU (exit status 3 and exactly one line,
/// `vmm-lite: KVM cannot run VTL0 on vCPU 0: ... at RIP 0x...`), if that is how a run with
/// `status` and `output` ended; `None` for any other ending, which a test must not excuse.
pub fn kvm_cannot_run_report(status: Option<i32>, output: &str) -> Option<String> {
    const STATUS: i32 = 3;
    let reports: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("vmm-lite: KVM cannot run VTL"))
        .collect();
    let [report] = reports.as_slice() else {
        return None;
    };
    let names_the_site = report.contains(" on vCPU ") && report.contains(" at RIP 0x");
    (status == Some(STATUS) && names_the_site).then(|| report.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpm2_eventlogs_pcr_section_is_read_bank_by_bank() {
        let text = "---\nevents:\n- EventNum: 0\npcrs:\n  sha1:\n    8  : 0x3C73\n  sha256:\n    8  : 0xBBE2\n    9  : 0x799e\n  sha384:\n    8  : 0x9e3b\n";
        assert_eq!(
            sha256_pcrs_of_eventlog_output(text),
            [(8, "bbe2".to_string()), (9, "799e".to_string())]
        );
        assert!(sha256_pcrs_of_eventlog_output("pcrs:\n  sha1:\n    8  : 0x1\n").is_empty());
    }

    #[test]
    fn only_a_single_kvm_report_with_status_3_excuses_a_run() {
        let line = "vmm-lite: KVM cannot run VTL0 on vCPU 0: emulation failure at RIP 0xffffffff81000000, instruction bytes cc 0f (exit status 3)";
        let output = format!("parapet: ready\n{line}\n");
        assert_eq!(
            kvm_cannot_run_report(Some(3), &output).as_deref(),
            Some(line)
        );
        // Any other status, a second report, or a line that names no site is not excused.
        assert_eq!(kvm_cannot_run_report(Some(1), &output), None);
        assert_eq!(kvm_cannot_run_report(None, &output), None);
        assert_eq!(
            kvm_cannot_run_report(Some(3), &format!("{output}{line}\n")),
            None
        );
        assert_eq!(
            kvm_cannot_run_report(Some(3), "vmm-lite: KVM cannot run VTL0 somehow\n"),
            None
        );
        assert_eq!(kvm_cannot_run_report(Some(3), "parapet: ready\n"), None);
    }

    /// From a boot of Debian's 6.1 kernel under Parapet's svm backend (2 CPUs, 512 MiB), the
    /// typed line `hello parapet` and its echo; most of the guest's kernel log and Parapet's
    /// MSR notices left out.
    const X86_CONSOLE: &str = "\
parapet 0.1.0 arch=x86_64 platform=svm cpus=2 ram=511
parapet: ready
[    0.223614] cpu0 INFO  parapet::x86_64::guest::linux: linux: protocol 2.15, kernel at 0x4200000 (8033 KiB, needs 63 MiB), initrd 1985452 bytes at 0x1fdf2000, 2 CPUs, command line \"console=ttyS0 panic=-1\"
[    0.224598] cpu0 INFO  parapet::x86_64::guest::linux: linux: e820 0x0-0x9fff type 1
[    0.224894] cpu0 INFO  parapet::x86_64::guest::linux: linux: e820 0xa000-0xffff type 3
[    0.234495] cpu0 INFO  parapet::x86_64::guest::linux: linux: e820 0x10000-0x9efff type 1
[    0.234696] cpu0 INFO  parapet::x86_64::guest::linux: linux: e820 0x4100000-0x1ffdffff type 1
[    0.238753] cpu0 INFO  parapet::x86_64::svm: svm: guest running under nested paging on 2 VPs
guest| [    1.179997] x2apic enabled
guest| [    0.000000] BIOS-e820: [mem 0x0000000004100000-0x000000001ffdffff] usable
[   21.507063] cpu1 INFO  parapet::x86_64::svm: svm: VP 1 starts in real mode at 0x99000
guest| parapet-init: started
guest| parapet-init: uptime-before 11.03 8.21
guest| parapet-init: sleep-returned uptime-after 12.15 10.30
guest| parapet-init: cpus-online 0-1
guest| parapet-init: memmap 0x0 0x9fff System RAM
guest| parapet-init: memmap 0xa000 0xffff ACPI Tables
guest| parapet-init: memmap 0x10000 0x9efff System RAM
guest| parapet-init: memmap 0x4100000 0x1ffdffff System RAM
guest| parapet-init: iomem 00001000-00009fff
guest| parapet-init: iomem 00010000-0009efff
guest| parapet-init: iomem 04100000-1ffdffff
guest| parapet-init: meminfo MemTotal:         400612 kB
guest| parapet-init: type a line
guest| hello parapet
guest| parapet-init: read [hello parapet]
guest| parapet-init: serial-irq  25:         24          0   IO-APIC   4-edge      ttyS0
guest| parapet-init: done
[   33.314968] cpu1 INFO  parapet::x86_64::guest::exits: svm: the guest halted with interrupts disabled at RIP 0xffffffffa1c3fc9a
[   33.327629] cpu0 INFO  parapet::x86_64::guest::devices: the guest entered ACPI S5 (soft off)
[   33.332376] cpu0 INFO  parapet::x86_64::svm: svm: the guest powered off (success) after 34666 exits and 2347 interrupts on VP 0 (167.8 us per exit round trip)
";

    /// The same kernel's arm64 build under Parapet's el2 backend (2 CPUs, 512 MiB).
    const ARM64_CONSOLE: &str = "\
parapet 0.1.0 arch=aarch64 platform=el2 cpus=2 ram=512
parapet: ready
[    0.723426] cpu0 INFO  parapet::aarch64::el2::linux: linux: arm64 Image at 0x44200000 (32832 KiB), device tree at 0x44000000 (1797 bytes), initrd 1849700 bytes at 0x49f6f000, 2 CPUs, command line \"console=ttyAMA0 panic=-1\"
[    0.727515] cpu0 INFO  parapet::aarch64::el2::linux: linux: memory 0x44000000-0x5fffffff
[    0.733544] cpu0 INFO  parapet::aarch64::el2: el2: guest running behind stage 2 (1 RAM ranges), entry 0x44200000, 2 CPUs
guest| [    0.000000] Booting Linux on physical CPU 0x0000000000 [0x000f0510]
guest| [    0.000000] Machine model: Parapet guest
[    4.229631] cpu0 INFO  parapet::aarch64::el2: el2: guest CPU 0 started CPU 1 at 0x44efd2c8
guest| [    2.064985] 9000000.pl011: ttyAMA0 at MMIO 0x9000000 (irq = 13, base_baud = 0) is a PL011 rev3
guest| parapet-init: started
guest| parapet-init: uptime-before 12.04 11.21
guest| parapet-init: sleep-returned uptime-after 13.20 13.31
guest| parapet-init: cpus-online 0-1
guest| parapet-init: iomem 44000000-5fffffff
guest| parapet-init: meminfo MemTotal:         422176 kB
guest| parapet-init: type a line
guest| hello parapet
guest| parapet-init: read [hello parapet]
guest| parapet-init: serial-irq  13:          1          0     GICv3  33 Level     uart-pl011
guest| parapet-init: done
[   22.569431] cpu0 INFO  parapet::aarch64::el2: el2: the guest powered off (success) after 24452 exits and 898 interrupts on CPU 0 (173.6 us per exit round trip)
";

    const EXPECTED: Expected<'static> = Expected {
        online: "0-1",
        typed: "hello parapet",
    };

    #[test]
    fn the_x86_init_lines_are_read() {
        let init = init_report(X86_CONSOLE);
        assert!(init.started && init.done && init.prompted);
        assert_eq!(
            (init.uptime_before, init.uptime_after),
            (Some(11.03), Some(12.15))
        );
        assert_eq!(init.cpus_online.as_deref(), Some("0-1"));
        assert_eq!(init.memmap.len(), 4);
        assert_eq!(
            init.memmap[3],
            Region {
                start: 0x410_0000,
                end: 0x1ffd_ffff,
                kind: "System RAM".into()
            }
        );
        assert_eq!(init.memmap[1].kind, "ACPI Tables");
        // Linux keeps page 0 for itself, so its RAM starts a page into the e820 map's.
        assert_eq!(
            shown(&init.iomem),
            ["0x1000-0x9fff", "0x10000-0x9efff", "0x4100000-0x1ffdffff"]
        );
        assert_eq!(init.read, Some(Typed::Line("hello parapet".into())));
        let serial = init.serial_irq.unwrap();
        assert_eq!((serial.irq.as_str(), serial.count), ("25", 24));
        assert_eq!(serial.words, ["IO-APIC", "4-edge", "ttyS0"]);
        assert!(init.unreadable.is_empty(), "{:?}", init.unreadable);
        // QEMU booting the kernel itself: the same lines without Parapet's prefix.
        let direct = init_report("parapet-init: started\r\nparapet-init: cpus-online 0-1\r\n");
        assert!(direct.started);
        assert_eq!(direct.cpus_online.as_deref(), Some("0-1"));
    }

    #[test]
    fn the_arm64_init_lines_are_read() {
        let init = init_report(ARM64_CONSOLE);
        assert!(init.started && init.done && init.prompted);
        assert_eq!(
            (init.uptime_before, init.uptime_after),
            (Some(12.04), Some(13.2))
        );
        assert_eq!(init.cpus_online.as_deref(), Some("0-1"));
        // No /sys/firmware/memmap on arm64: no memmap lines at all.
        assert!(init.memmap.is_empty());
        assert_eq!(
            init.iomem,
            [RamRange {
                start: 0x4400_0000,
                end: 0x5fff_ffff
            }]
        );
        assert_eq!(init.read, Some(Typed::Line("hello parapet".into())));
        let serial = init.serial_irq.unwrap();
        assert_eq!((serial.irq.as_str(), serial.count), ("13", 1));
        assert_eq!(serial.words, ["GICv3", "33", "Level", "uart-pl011"]);
        assert!(init.unreadable.is_empty(), "{:?}", init.unreadable);
    }

    #[test]
    fn what_init_read_is_told_apart_from_nothing() {
        let read = |line: &str| init_report(&format!("guest| parapet-init: {line}\n"));
        assert_eq!(read("read nothing").read, Some(Typed::Nothing));
        assert_eq!(read("read []").read, Some(Typed::Line(String::new())));
        // Inside the brackets the line is kept as it came, spaces and brackets too.
        assert_eq!(
            read("read [ a ] b ]").read,
            Some(Typed::Line(" a ] b ".into()))
        );
        for bad in [
            "read hello parapet",
            "read [hello",
            "read",
            "type something",
            "iomem 0x44000000-0x5fffffff",
            "iomem 5fffffff-44000000",
            "iomem 44000000",
            "iomem 44000000-",
            "started early",
        ] {
            let init = read(bad);
            assert_eq!(init.unreadable.len(), 1, "{bad:?} was read: {init:?}");
            assert!(init.read.is_none() && init.iomem.is_empty() && !init.prompted);
        }
    }

    #[test]
    fn insmod_lines_are_read_and_a_failed_load_is_a_problem() {
        let read = |line: &str| init_report(&format!("guest| parapet-init: {line}\n"));
        let loaded = read("insmod spi-gpio ok");
        assert_eq!(loaded.modules_loaded, ["spi-gpio"]);
        assert!(loaded.modules_failed.is_empty() && loaded.unreadable.is_empty());
        let failed = read("insmod tpm_tis_spi failed");
        assert_eq!(failed.modules_failed, ["tpm_tis_spi"]);
        assert!(failed.modules_loaded.is_empty() && failed.unreadable.is_empty());
        for bad in [
            "insmod",
            "insmod spi-gpio",
            "insmod spi-gpio maybe",
            "insmod spi-gpio ok now",
        ] {
            let init = read(bad);
            assert_eq!(init.unreadable.len(), 1, "{bad:?} was read: {init:?}");
            assert!(init.modules_loaded.is_empty() && init.modules_failed.is_empty());
        }
        // In a boot, where /init prints them: between the serial line and the TPM's.
        let at = "guest| parapet-init: done";
        let loads = |second: &str| {
            format!("guest| parapet-init: insmod spi-bitbang ok\nguest| parapet-init: insmod spi-gpio {second}\n{at}")
        };
        let problems = |second: &str| {
            let changes = [(at, loads(second))];
            let changes: Vec<(&str, &str)> =
                changes.iter().map(|(a, b)| (*a, b.as_str())).collect();
            changed(Arch::Aarch64, ARM64_CONSOLE, &changes)
        };
        assert_eq!(problems("ok"), Vec::<String>::new());
        assert_eq!(
            problems("failed"),
            ["/init could not load the modules [\"spi-gpio\"] (the guest's console says why)"]
        );
        let init = init_report(&ARM64_CONSOLE.replacen(at, &loads("failed"), 1));
        assert_eq!(init.modules_loaded, ["spi-bitbang"]);
    }

    #[test]
    fn parapets_memory_lines_are_read_with_linux_names() {
        let map = parapet_e820(X86_CONSOLE).unwrap();
        assert_eq!(map.len(), 4);
        assert_eq!(map[1].to_string(), "0xa000-0xffff ACPI Tables");
        assert_eq!(e820_type_name(2), "Reserved");
        assert_eq!(e820_type_name(4), "ACPI Non-volatile Storage");
        assert_eq!(e820_type_name(12), "type 12");
        assert!(parapet_e820("linux: e820 0x0-zz type 1").is_err());
        // No e820 lines on arm64, no memory lines on x86.
        assert_eq!(parapet_e820(ARM64_CONSOLE), Ok(Vec::new()));
        assert_eq!(parapet_memory(X86_CONSOLE), Ok(Vec::new()));
        assert_eq!(
            shown(parapet_memory(ARM64_CONSOLE).unwrap()),
            ["0x44000000-0x5fffffff"]
        );
        let bad = parapet_memory("linux: memory 0x44000000-5fffffff").unwrap_err();
        assert_eq!(
            bad,
            "unreadable `linux: memory` line: \"0x44000000-5fffffff\""
        );
    }

    #[test]
    fn ram_ranges_overlap_and_nest_with_inclusive_ends() {
        let range = RamRange {
            start: 0x4400_0000,
            end: 0x5fff_ffff,
        };
        assert!(!range.overlaps(&AARCH64_PARAVISOR));
        let last_parapet_byte = RamRange {
            start: 0x43ff_ffff,
            ..range
        };
        assert!(last_parapet_byte.overlaps(&AARCH64_PARAVISOR));
        let region = |start, end| Region {
            start,
            end,
            kind: "System RAM".into(),
        };
        assert!(range.inside(&region(0x4400_0000, 0x5fff_ffff)));
        assert!(!range.inside(&region(0x4400_0000, 0x5fff_fffe)));
        assert!(!range.inside(&region(0x4400_0001, 0x6fff_ffff)));
    }

    #[test]
    fn interrupt_rows_sum_every_cpus_column() {
        let row = interrupt_row("  4:   7   12   IO-APIC   4-edge      ttyS0").unwrap();
        assert_eq!((row.irq.as_str(), row.count), ("4", 19));
        assert_eq!(row.words[0], "IO-APIC");
        assert!(row.names("ttyS0") && !row.names("tty"));
        assert_eq!(interrupt_row("25: IO-APIC 4-edge ttyS0"), None);
        assert_eq!(interrupt_row(""), None);
    }

    #[test]
    fn good_boots_have_no_problems_but_the_cpu_count_they_are_asked_for() {
        for (arch, console) in [(Arch::X86_64, X86_CONSOLE), (Arch::Aarch64, ARM64_CONSOLE)] {
            assert_eq!(
                linux_boot_problems(arch, console, &EXPECTED),
                Vec::<String>::new(),
                "{arch}"
            );
            let one = Expected {
                online: "0",
                ..EXPECTED
            };
            let problems = linux_boot_problems(arch, console, &one);
            assert_eq!(problems, ["CPUs online Some(\"0-1\"), wanted \"0\""]);
        }
        // Each architecture's boot fails the other's checks.
        let crossed = linux_boot_problems(Arch::Aarch64, X86_CONSOLE, &EXPECTED);
        assert!(
            crossed.iter().any(|p| p.contains("uart-pl011")),
            "{crossed:?}"
        );
        let crossed = linux_boot_problems(Arch::X86_64, ARM64_CONSOLE, &EXPECTED);
        assert!(crossed.iter().any(|p| p.contains("ACPI S5")), "{crossed:?}");
    }

    /// The problems of `console` with each `(from, to)` replaced once (each must be there).
    fn changed(arch: Arch, console: &str, changes: &[(&str, &str)]) -> Vec<String> {
        let mut console = console.to_string();
        for (from, to) in changes {
            assert!(console.contains(from), "{from:?} is not in the sample");
            console = console.replacen(from, to, 1);
        }
        linux_boot_problems(arch, &console, &EXPECTED)
    }

    #[test]
    fn each_broken_promise_is_reported_on_x86() {
        let problems = |changes: &[(&str, &str)]| changed(Arch::X86_64, X86_CONSOLE, changes);
        let problem = |from: &str, to: &str| problems(&[(from, to)]);
        let short_sleep = problem("uptime-after 12.15", "uptime-after 12.02");
        assert!(short_sleep[0].contains("`sleep 1` took Some(99) hundredths"));
        // Truncated hundredths one second apart are a whole second, whatever f64 makes of it.
        assert!(problem("uptime-after 12.15", "uptime-after 12.03").is_empty());
        assert!(problem("IO-APIC   4-edge", "XT-PIC   4-edge")[0].contains("I/O APIC"));
        assert!(problem("] x2apic enabled", "] x2apic disabled")[0].contains("x2APIC mode"));
        assert!(problem("25:         24", "25:          0")[0].contains("I/O APIC"));
        let map = problem(
            "memmap 0xa000 0xffff ACPI Tables",
            "memmap 0xa000 0xffff Reserved",
        );
        assert!(map[0].contains("only Parapet's [\"0xa000-0xffff ACPI Tables\"]"));
        assert!(map[0].contains("only the guest's [\"0xa000-0xffff Reserved\"]"));
        // Parapet's map and the guest's apart, then RAM in Parapet's region in both alike.
        let apart = problem("linux: e820 0x4100000-", "linux: e820 0x40ff000-");
        assert!(apart.len() == 1 && apart[0].contains("the guest's memory map"));
        let both = problems(&[
            ("linux: e820 0x4100000-", "linux: e820 0x40ff000-"),
            ("memmap 0x4100000 ", "memmap 0x40ff000 "),
        ]);
        assert_eq!(both.len(), 1, "{both:?}");
        assert!(both[0].contains("overlaps Parapet's region 0x100000-0x4100000"));
        // RAM the guest took beyond Parapet's, and in its ACPI tables.
        let beyond = problem("iomem 04100000-1ffdffff", "iomem 04100000-1ffe0fff");
        assert_eq!(
            beyond,
            ["the guest took in RAM outside Parapet's System RAM ranges: [\"0x4100000-0x1ffe0fff\"]"]
        );
        let tables = problem("iomem 00010000-0009efff", "iomem 0000a000-0009efff");
        assert!(tables[0].contains("[\"0xa000-0x9efff\"]"), "{tables:?}");
        let none = problems(&[
            ("iomem 00001000-00009fff", "meminfo"),
            ("iomem 00010000-0009efff", "meminfo"),
            ("iomem 04100000-1ffdffff", "meminfo"),
        ]);
        assert_eq!(none, ["the guest listed no System RAM in /proc/iomem"]);
        assert!(problem("parapet-init: done", "parapet-init: don")
            .iter()
            .any(|p| p.contains("/init did not finish")));
        assert!(problem("entered ACPI S5", "entered ACPI S3")[0].contains("ACPI S5"));
    }

    #[test]
    fn each_broken_promise_is_reported_on_arm64() {
        let problems = |changes: &[(&str, &str)]| changed(Arch::Aarch64, ARM64_CONSOLE, changes);
        let problem = |from: &str, to: &str| problems(&[(from, to)]);
        let short_sleep = problem("uptime-after 13.20", "uptime-after 13.00");
        assert!(short_sleep[0].contains("`sleep 1` took Some(96) hundredths"));
        // The line typed: not read, read wrong, or never asked for.
        assert_eq!(
            problem("read [hello parapet]", "read nothing"),
            ["/init read Some(Nothing) from the console (prompted: true), wanted Line(\"hello parapet\")"]
        );
        assert!(problem("read [hello parapet]", "read [hello")[0].contains("unreadable"));
        assert!(problem("read [hello parapet]", "read [hello parapet ]")[0]
            .contains("read Some(Line(\"hello parapet \"))"));
        assert!(problem("type a line", "type no line")
            .iter()
            .any(|p| p.contains("prompted: false")));
        // The UART's interrupt: never taken, another chip, another INTID, another driver.
        for (from, to) in [
            ("1          0     GICv3", "0          0     GICv3"),
            ("GICv3  33", "GICv2  33"),
            ("GICv3  33", "GICv3  34"),
            ("uart-pl011", "ttyAMA0"),
        ] {
            let serial = problem(from, to);
            assert_eq!(serial.len(), 1, "{serial:?}");
            assert!(
                serial[0].starts_with("the PL011's interrupt 33 did not come through the GICv3")
            );
        }
        // The guest's RAM and Parapet's apart, either way, then inside Parapet's 64 MiB.
        let more = problem("iomem 44000000-5fffffff", "iomem 44000000-6fffffff");
        assert_eq!(
            more,
            ["the guest's RAM is not the RAM Parapet gave: only Parapet's [\"0x44000000-0x5fffffff\"], only the guest's [\"0x44000000-0x6fffffff\"]"]
        );
        let extra = problem(
            "guest| parapet-init: meminfo",
            "guest| parapet-init: iomem 60000000-6fffffff\nguest| parapet-init: meminfo",
        );
        assert!(
            extra[0].contains("only Parapet's [], only the guest's [\"0x60000000-0x6fffffff\"]")
        );
        let both = problems(&[
            ("memory 0x44000000-", "memory 0x43000000-"),
            ("iomem 44000000-", "iomem 43000000-"),
        ]);
        assert_eq!(
            both,
            ["guest RAM overlaps Parapet's region 0x40000000-0x44000000: [\"0x43000000-0x5fffffff\"]"]
        );
        assert!(
            problem("linux: memory 0x44000000", "linux: memory 44000000")[0]
                .contains("unreadable `linux: memory` line")
        );
        assert!(problem("cpus-online 0-1", "cpus-online 0")[0].starts_with("CPUs online"));
        assert_eq!(
            problem("powered off (success)", "powered off (failure)"),
            ["Parapet did not see the guest power off with success"]
        );
    }
}

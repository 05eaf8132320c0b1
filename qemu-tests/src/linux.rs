//! Reading a Linux guest's boot from the console: the `parapet-init: ...` lines the busybox
//! initramfs's /init prints (`xtask/src/initramfs.rs`, its `INIT` script) and the e820 map
//! Parapet logs (`linux: e820 S-E type N`), and what the Linux boot test requires of them.

use std::collections::BTreeSet;
use std::ops::Range;

use abi::igvm_layout::{PARAVISOR_BASE, PARAVISOR_SIZE};

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
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()
}

/// The map Parapet gave the guest, from its `linux: e820 0x4100000-0x1ffdffff type 1` lines.
pub fn parapet_e820(console: &str) -> Result<Vec<Region>, String> {
    console
        .lines()
        .filter_map(|l| l.split_once("linux: e820 ").map(|(_, rest)| rest))
        .map(|rest| {
            let bad = || format!("unreadable e820 line: {rest:?}");
            let (range, kind) = rest.trim().split_once(" type ").ok_or_else(bad)?;
            let (start, end) = range.split_once('-').ok_or_else(bad)?;
            Ok(Region {
                start: hex(start).ok_or_else(bad)?,
                end: hex(end).ok_or_else(bad)?,
                kind: e820_type_name(kind.parse().map_err(|_| bad())?),
            })
        })
        .collect()
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
    /// /sys/firmware/memmap, one entry per line, in the order printed.
    pub memmap: Vec<Region>,
    /// The `serial-irq` line's /proc/interrupts row, if any.
    pub serial_irq: Option<InterruptRow>,
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

/// The `parapet-init:` lines of `console`, whether Parapet printed them (`guest| ` before
/// them) or the guest's UART was the console itself (QEMU booting the kernel directly).
pub fn init_report(console: &str) -> InitReport {
    let mut report = InitReport::default();
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
                report.started = true;
                true
            }
            "done" => {
                report.done = true;
                true
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
            "serial-irq" => {
                report.serial_irq = interrupt_row(rest);
                report.serial_irq.is_some()
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

/// Everything wrong with a Linux guest's boot under Parapet on x86_64, as read from `console`
/// (empty when all is well): /init ran and finished; `sleep 1` returned after at least a
/// second of the guest's uptime (its timer interrupts arrive); the UART's interrupt came
/// through the I/O APIC; the guest saw exactly the e820 map Parapet logged, with no RAM in
/// Parapet's region; `expected_online` CPUs came up (as /sys/devices/system/cpu/online lists
/// them: `0-1` for two); and Parapet saw the guest enter ACPI S5.
pub fn linux_boot_problems(console: &str, expected_online: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut require = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let init = init_report(console);
    require(
        init.started,
        "the kernel never ran /init (no `parapet-init: started`)".into(),
    );
    require(
        init.done,
        "/init did not finish (no `parapet-init: done`)".into(),
    );
    require(
        init.unreadable.is_empty(),
        format!("unreadable /init lines: {:?}", init.unreadable),
    );
    // /proc/uptime has two decimals: compare whole hundredths.
    let hundredths = |s: f64| (s * 100.0).round() as i64;
    let slept = init
        .uptime_before
        .zip(init.uptime_after)
        .map(|(before, after)| hundredths(after) - hundredths(before));
    require(
        slept.is_some_and(|h| h >= 100),
        format!(
            "`sleep 1` took {slept:?} hundredths of the guest's uptime ({:?} to {:?}), wanted at least 100",
            init.uptime_before, init.uptime_after
        ),
    );
    let serial = init.serial_irq.as_ref();
    require(
        serial.is_some_and(|row| {
            row.count > 0
                && row.words.iter().any(|w| w == "IO-APIC")
                && row.words.iter().any(|w| w == "ttyS0")
        }),
        format!(
            "the serial port's interrupts did not come through the I/O APIC to ttyS0: {serial:?}"
        ),
    );
    match parapet_e820(console) {
        Err(e) => require(false, e),
        Ok(given) => {
            require(!given.is_empty(), "Parapet logged no e820 map".into());
            let given: BTreeSet<&Region> = given.iter().collect();
            let seen: BTreeSet<&Region> = init.memmap.iter().collect();
            let show =
                |set: BTreeSet<&&Region>| set.iter().map(|r| r.to_string()).collect::<Vec<_>>();
            require(
                given == seen,
                format!(
                    "the guest's memory map is not the one Parapet gave: only Parapet's {:?}, only the guest's {:?}",
                    show(given.difference(&seen).collect()),
                    show(seen.difference(&given).collect()),
                ),
            );
        }
    }
    let in_parapet: Vec<String> = init
        .memmap
        .iter()
        .filter(|r| {
            r.kind == "System RAM" && r.start < X86_PARAVISOR.end && r.end >= X86_PARAVISOR.start
        })
        .map(|r| r.to_string())
        .collect();
    require(
        in_parapet.is_empty(),
        format!(
            "guest RAM overlaps Parapet's region {:#x}-{:#x}: {in_parapet:?}",
            X86_PARAVISOR.start, X86_PARAVISOR.end
        ),
    );
    require(
        console.contains("the guest entered ACPI S5"),
        "Parapet did not see the guest enter ACPI S5".into(),
    );
    require(
        init.cpus_online.as_deref() == Some(expected_online),
        format!(
            "CPUs online {:?}, wanted {expected_online:?}",
            init.cpus_online
        ),
    );
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From a boot of Debian's 6.1 kernel under Parapet's svm backend (one CPU).
    const CONSOLE: &str = "\
parapet 0.1.0 arch=x86_64 platform=svm cpus=2 ram=511
parapet: ready
[    0.091354] cpu0 INFO  parapet::x86_64::guest::linux: linux: e820 0x0-0x9fff type 1
[    0.091530] cpu0 INFO  parapet::x86_64::guest::linux: linux: e820 0xa000-0xffff type 3
[    0.091699] cpu0 INFO  parapet::x86_64::guest::linux: linux: e820 0x10000-0x9efff type 1
[    0.091870] cpu0 INFO  parapet::x86_64::guest::linux: linux: e820 0x4100000-0x1ffdffff type 1
guest| [    0.000000] BIOS-e820: [mem 0x0000000004100000-0x000000001ffdffff] usable
guest| parapet-init: started
guest| parapet-init: uptime-before 3.90 0.00
guest| parapet-init: sleep-returned uptime-after 4.95 0.99
guest| parapet-init: cpus-online 0
guest| parapet-init: memmap 0x0 0x9fff System RAM
guest| parapet-init: memmap 0xa000 0xffff ACPI Tables
guest| parapet-init: memmap 0x10000 0x9efff System RAM
guest| parapet-init: memmap 0x4100000 0x1ffdffff System RAM
guest| parapet-init: meminfo MemTotal:         400856 kB
guest| parapet-init: serial-irq  25:         19   IO-APIC   4-edge      ttyS0
guest| parapet-init: done
guest| [    6.092810] ACPI: PM: Preparing to enter system sleep state S5
[   14.025548] cpu0 INFO  parapet::x86_64::guest::devices: the guest entered ACPI S5 (soft off)
";

    #[test]
    fn the_init_lines_are_read() {
        let init = init_report(CONSOLE);
        assert!(init.started && init.done);
        assert_eq!(
            (init.uptime_before, init.uptime_after),
            (Some(3.9), Some(4.95))
        );
        assert_eq!(init.cpus_online.as_deref(), Some("0"));
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
        let serial = init.serial_irq.unwrap();
        assert_eq!((serial.irq.as_str(), serial.count), ("25", 19));
        assert_eq!(serial.words, ["IO-APIC", "4-edge", "ttyS0"]);
        assert!(init.unreadable.is_empty());
        // QEMU booting the kernel itself: the same lines without Parapet's prefix.
        let direct = init_report("parapet-init: started\nparapet-init: cpus-online 0-1\n");
        assert!(direct.started);
        assert_eq!(direct.cpus_online.as_deref(), Some("0-1"));
    }

    #[test]
    fn parapets_e820_lines_are_read_with_linux_names() {
        let map = parapet_e820(CONSOLE).unwrap();
        assert_eq!(map.len(), 4);
        assert_eq!(map[1].to_string(), "0xa000-0xffff ACPI Tables");
        assert_eq!(e820_type_name(2), "Reserved");
        assert_eq!(e820_type_name(4), "ACPI Non-volatile Storage");
        assert_eq!(e820_type_name(12), "type 12");
        assert!(parapet_e820("linux: e820 0x0-zz type 1").is_err());
    }

    #[test]
    fn interrupt_rows_sum_every_cpus_column() {
        let row = interrupt_row("  4:   7   12   IO-APIC   4-edge      ttyS0").unwrap();
        assert_eq!((row.irq.as_str(), row.count), ("4", 19));
        assert_eq!(row.words[0], "IO-APIC");
        assert_eq!(interrupt_row("25: IO-APIC 4-edge ttyS0"), None);
        assert_eq!(interrupt_row(""), None);
    }

    #[test]
    fn a_good_boot_has_no_problems_but_the_cpu_count_it_is_asked_for() {
        assert_eq!(linux_boot_problems(CONSOLE, "0"), Vec::<String>::new());
        let problems = linux_boot_problems(CONSOLE, "0-1");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("CPUs online Some(\"0\"), wanted \"0-1\""));
    }

    #[test]
    fn each_broken_promise_is_reported() {
        let problems = |changes: &[(&str, &str)]| {
            let mut console = CONSOLE.to_string();
            for (from, to) in changes {
                assert!(console.contains(from), "{from:?} is not in the sample");
                console = console.replacen(from, to, 1);
            }
            linux_boot_problems(&console, "0")
        };
        let problem = |from: &str, to: &str| problems(&[(from, to)]);
        let short_sleep = problem("uptime-after 4.95", "uptime-after 4.89");
        assert!(short_sleep[0].contains("`sleep 1` took Some(99) hundredths"));
        // Truncated hundredths one second apart are a whole second, whatever f64 makes of it.
        assert!(problem("uptime-after 4.95", "uptime-after 4.90").is_empty());
        assert!(problem("IO-APIC   4-edge", "XT-PIC   4-edge")[0].contains("I/O APIC"));
        assert!(problem("25:         19", "25:          0")[0].contains("I/O APIC"));
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
        assert!(problem("parapet-init: done", "parapet-init: don")
            .iter()
            .any(|p| p.contains("/init did not finish")));
        assert!(problem("entered ACPI S5", "entered ACPI S3")[0].contains("ACPI S5"));
    }
}

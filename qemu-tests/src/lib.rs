//! Checks on what Parapet prints, shared by the boot tests and the guest tests.

pub mod linux;
pub mod tpm2_tools;

/// The fields of the console contract's first line:
/// `parapet <version> arch=<arch> platform=<name> cpus=<n> ram=<MiB>`.
#[derive(Debug, PartialEq, Eq)]
pub struct Banner {
    pub version: String,
    pub arch: String,
    pub platform: String,
    pub cpus: u32,
    pub ram_mib: u64,
}

/// Parses the first non-empty console line as the banner.
pub fn banner(output: &str) -> Result<Banner, String> {
    let first = output
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or("no output at all")?;
    let mut words = first.split_whitespace();
    if words.next() != Some("parapet") {
        return Err(format!("first line is not the banner: {first:?}"));
    }
    let version = words.next().ok_or("banner has no version")?.to_string();
    let mut field = |name: &str| -> Result<String, String> {
        let w = words.next().ok_or(format!("banner lacks {name}="))?;
        w.strip_prefix(&format!("{name}="))
            .map(String::from)
            .ok_or(format!("expected {name}=, found {w:?}"))
    };
    let arch = field("arch")?;
    let platform = field("platform")?;
    let cpus = field("cpus")?.parse().map_err(|e| format!("cpus: {e}"))?;
    let ram_mib = field("ram")?.parse().map_err(|e| format!("ram: {e}"))?;
    Ok(Banner {
        version,
        arch,
        platform,
        cpus,
        ram_mib,
    })
}

/// The in-firmware summary `N passed, N failed`, if printed.
pub fn summary(output: &str) -> Option<(u32, u32)> {
    output.lines().rev().find_map(|l| {
        let (p, f) = l.trim().split_once(" passed, ")?;
        let f = f.strip_suffix(" failed")?;
        Some((p.parse().ok()?, f.parse().ok()?))
    })
}

/// `Err` with `what` and the output when `cond` is false.
pub fn check(cond: bool, what: &str, output: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}\n--- console ---\n{output}"))
    }
}

/// Whether the guest printed `line`: Parapet shows a guest's COM1 lines after `<prefix>| `.
pub fn guest_said(console: &str, prefix: &str, line: &str) -> bool {
    let prefix = format!("{prefix}| ");
    console
        .lines()
        .any(|l| l.trim_end().strip_prefix(prefix.as_str()) == Some(line))
}

/// Where Parapet's memory is, as the escape guest probes it: the IGVM layout's region on
/// x86_64 (1 MiB up), the first 64 MiB of QEMU virt's RAM on aarch64.
pub const X86_PARAVISOR_PROBES: [&str; 3] = ["0x100000", "0x101000", "0x300000"];
pub const AARCH64_PARAVISOR_PROBES: [&str; 3] = ["0x40000000", "0x40001000", "0x40200000"];

/// What the escape guest must find on every backend and architecture: the paravisor's memory
/// (at `probes`) reads all ones and keeps none of its writes, Parapet logs each attempt, the
/// guest's spin does not stop Parapet's clock, and the guest finishes. `prefix` is how its
/// lines appear (`vtl0`, `guest`); `output` is shown on failure.
pub fn escape_was_contained(
    console: &str,
    prefix: &str,
    output: &str,
    probes: &[&str; 3],
) -> Result<(), String> {
    let said = |line: &str| guest_said(console, prefix, line);
    check(said("escape: done"), "the guest did not finish", output)?;
    check(
        said("escape: spun without exits"),
        "the spin did not end",
        output,
    )?;
    for address in probes {
        let expected = format!(
            "escape: paravisor memory {address}: read 0xffffffffffffffff, after writing read 0xffffffffffffffff"
        );
        check(
            said(&expected),
            &format!("the guest saw something at {address}"),
            output,
        )?;
    }
    // Three addresses, read-write-read each.
    let memory_logs = console.matches("which it may not access").count();
    check(
        memory_logs == 9,
        &format!("{memory_logs} memory attempts logged, wanted 9"),
        output,
    )
}

/// The x86 escape guest's port attempts: Parapet refuses to write its own memory for a
/// string IN, and odd-width and string accesses to COM1 are logged and answered per byte lane.
pub fn escape_ports_were_contained(
    console: &str,
    prefix: &str,
    output: &str,
) -> Result<(), String> {
    let said = |line: &str| guest_said(console, prefix, line);
    check(
        console.contains("touches unmapped or foreign address 0x100000; stopped there"),
        "Parapet wrote into its own memory for a string IN, or did not log refusing",
        output,
    )?;
    // LSR 0x60 with MSR 0xb0 behind it; RBR, IER, IIR 0xc1, LCR 0x03.
    let odd = console.matches("-byte access to COM1 port").count();
    check(
        odd == 3,
        &format!("{odd} odd-width accesses logged, wanted 3"),
        output,
    )?;
    check(
        said("escape: inw LSR 0xb060, inl RBR 0x3c10000, scratch after outl 0x5a"),
        "wide accesses were not split into byte lanes",
        output,
    )?;
    check(
        said("escape: this line went out by rep outsb"),
        "rep outsb did not reach COM1",
        output,
    )?;
    check(
        said("escape: rep insb of LSR: [60, 60, 60, 60]"),
        "rep insb did not read LSR four times",
        output,
    )
}

/// The number after `before` on the first line that has it (`... after 12 exits and 3
/// interrupts`: `number_after(console, "exits and ")` is 3).
pub fn number_after(console: &str, before: &str) -> Option<u64> {
    console
        .lines()
        .find_map(|l| l.split(before).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// What is wrong with the tpm guest's run (`guests/src/bin/tpm.rs`), lines prefixed
/// `prefix| `, if anything: it must have read a CRB interface id, got 16 random bytes, and
/// read SHA-256 PCR 16 as the extend it made gives it on any TPM, then said all was right.
pub fn tpm_guest_problem(console: &str, prefix: &str) -> Option<String> {
    const PCR16: &str = "8878b15a7d6a3a4f464e8f9f42591dbc0cf4bedea0ec309003d2b2ee53655ef8";
    let said = |line: &str| guest_said(console, prefix, line);
    let lines = [
        "tpm: PCR_Extend rc 0x0".to_string(),
        format!("tpm: PCR_Read rc 0x0, sha256 PCR 16 = {PCR16}"),
        "tpm: all answers as expected".to_string(),
    ];
    if let Some(missing) = lines.iter().find(|l| !said(l)) {
        return Some(format!("the tpm guest did not say {missing:?}"));
    }
    let random = format!("{prefix}| tpm: GetRandom rc 0x0, 16 bytes: ");
    if !console.lines().any(|l| l.trim_end().starts_with(&random)) {
        return Some("the tpm guest got no 16 random bytes".into());
    }
    None
}

/// What is wrong with the ticks guest's report (its lines after `<prefix>| `), if anything:
/// at least 5 timer interrupts through the xAPIC and 5 through the x2APIC, PIT channel 2's
/// 0xffff counts taking about 54.9 million APIC timer ticks (give or take `late`: the
/// guest reads the APIC timer around port round trips, which are slow where KVM emulates
/// the guest), and at least 5 COM1 interrupts through the I/O APIC. With `string_moves`, also its
/// I/O APIC version read by `rep movsd` (Parapet's MOVS emulation), which must agree with the
/// plain MOV's and be an I/O APIC's (0x11, the 82093AA; 0x20, ICH/PCH), and IOREGSEL read
/// back by `movsb` as the 1 the guest selected.
pub fn ticks_problem(console: &str, prefix: &str, late: u64, string_moves: bool) -> Option<String> {
    let start = format!("{prefix}| ticks: ");
    let said = |parse: &dyn Fn(&str) -> Option<u64>| {
        console
            .lines()
            .find_map(|l| parse(l.trim_end().strip_prefix(start.as_str())?))
    };
    let seen = console.lines().find_map(|l| {
        let rest = l.trim_end().strip_prefix(start.as_str())?;
        let (xapic, rest) = rest.split_once(" timer interrupts through the xAPIC, ")?;
        let x2apic = rest.strip_suffix(" through the x2APIC")?;
        Some((xapic.parse::<u32>().ok()?, x2apic.parse::<u32>().ok()?))
    });
    if !seen.is_some_and(|(xapic, x2apic)| xapic >= 5 && x2apic >= 5) {
        return Some(format!(
            "the guest counted {seen:?} timer interrupts (xAPIC, x2APIC), wanted 5 each"
        ));
    }
    // PIT channel 2 and the APIC timer run on one clock: 0xffff + 1 PIT ticks at
    // 1,193,182 Hz (54.925 ms) are 54.9 million ticks of a 1 GHz APIC timer (Parapet's and
    // KVM's), give or take the exits the guest's polling takes.
    let calibration = said(&|rest| {
        rest.strip_prefix("PIT channel 2 counted 0xffff in ")?
            .strip_suffix(" APIC timer ticks")?
            .parse()
            .ok()
    });
    if !calibration
        .is_some_and(|t| (52_000_000u64.saturating_sub(late)..=58_000_000 + late).contains(&t))
    {
        return Some(format!(
            "PIT channel 2 took {calibration:?} APIC timer ticks, wanted about 54.9 million"
        ));
    }
    let com1 = said(&|rest| {
        rest.strip_suffix(" COM1 transmit interrupts through the I/O APIC")?
            .parse()
            .ok()
    });
    if com1.is_none_or(|n| n < 5) {
        return Some(format!(
            "the guest counted {com1:?} COM1 interrupts, wanted at least 5"
        ));
    }
    if string_moves {
        return version_by_movs_problem(console, &start);
    }
    None
}

/// What is wrong with the ticks guest's `I/O APIC version by movs ...` line, if anything.
fn version_by_movs_problem(console: &str, start: &str) -> Option<String> {
    let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    let read = console.lines().find_map(|l| {
        let rest = l.trim_end().strip_prefix(start)?;
        let rest = rest.strip_prefix("I/O APIC version by movs ")?;
        let (movs, rest) = rest.split_once(", by mov ")?;
        let (mov, movsb) = rest.split_once("; IOREGSEL by movsb ")?;
        Some((hex(movs)?, hex(movsb)?, hex(mov)?))
    });
    let Some((movs, movsb, mov)) = read else {
        return Some("the guest did not report its I/O APIC version read by movs".into());
    };
    if movs != mov || !matches!(mov & 0xff, 0x11 | 0x20) {
        return Some(format!(
            "the I/O APIC version read by rep movsd ({movs:#x}) should be the plain MOV's ({mov:#x}), version 0x11 or 0x20"
        ));
    }
    if movsb != 1 {
        return Some(format!(
            "IOREGSEL read back by movsb as {movsb:#x}, wanted the 0x1 the guest selected"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_version_read_by_movs() {
        let line = |movs, movsb, mov| {
            format!(
                "guest| ticks: I/O APIC version by movs {movs}, by mov {mov}; IOREGSEL by movsb {movsb}\n"
            )
        };
        let start = "guest| ticks: ";
        let good = line("0x170020", "0x1", "0x170020");
        assert_eq!(version_by_movs_problem(&good, start), None);
        for bad in [
            line("0xffffffff", "0x1", "0x170020"),
            line("0x170020", "0xff", "0x170020"),
            line("0x170030", "0x1", "0x170030"),
            String::new(),
        ] {
            assert!(version_by_movs_problem(&bad, start).is_some(), "{bad}");
        }
    }

    #[test]
    fn parses_the_banner_and_summary() {
        let out = "\nparapet 0.1.0 arch=x86_64 platform=native cpus=2 ram=255\nlog\n14 passed, 0 failed\n";
        let b = banner(out).unwrap();
        assert_eq!(
            (b.arch.as_str(), b.platform.as_str(), b.cpus, b.ram_mib),
            ("x86_64", "native", 2, 255)
        );
        assert_eq!(summary(out), Some((14, 0)));
        assert!(banner("SeaBIOS\nparapet 0.1.0").is_err());
    }
}

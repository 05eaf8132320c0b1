//! Checks on what Parapet prints, shared by the boot tests.

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

#[cfg(test)]
mod tests {
    use super::*;

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

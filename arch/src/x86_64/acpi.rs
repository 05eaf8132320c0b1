//! Just enough ACPI to find the processors: RSDP → XSDT/RSDT → MADT
//! (ACPI 6.5 §5.2.5 RSDP, §5.2.7 RSDT, §5.2.8 XSDT, §5.2.12 MADT).
//!
//! Every table is length- and checksum-checked before it is believed.

use crate::phys::PhysRead;

/// Most processors we track; the rest are reported and left parked.
pub const MAX_CPUS: usize = 64;
const SDT_HEADER_LEN: u64 = 36;
/// Where a PC BIOS may keep the RSDP (ACPI 6.5 §5.2.5.1).
const BIOS_AREA: (u64, u64) = (0xe_0000, 0x10_0000);
const MADT_LOCAL_APIC: u8 = 0;
const MADT_LOCAL_X2APIC: u8 = 9;
/// Local APIC flags: Enabled, Online Capable (ACPI 6.5 table 5.47).
const LAPIC_ENABLED: u32 = 1 << 0;
const LAPIC_ONLINE_CAPABLE: u32 = 1 << 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    NoRsdp,
    BadTable { signature: [u8; 4], at: u64 },
    NoMadt,
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcpiError::NoRsdp => write!(f, "no ACPI RSDP found"),
            AcpiError::BadTable { signature, at } => write!(
                f,
                "ACPI table {} at {at:#x} has a bad length or checksum",
                core::str::from_utf8(signature).unwrap_or("????")
            ),
            AcpiError::NoMadt => write!(f, "no ACPI MADT: cannot enumerate processors"),
        }
    }
}

/// The processors the MADT lists as usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Processors {
    apic_ids: [u32; MAX_CPUS],
    count: usize,
    /// Processors past [`MAX_CPUS`].
    pub ignored: usize,
    /// Physical address of the local APIC registers (xAPIC mode).
    pub local_apic_address: u64,
}

impl Processors {
    pub fn apic_ids(&self) -> &[u32] {
        &self.apic_ids[..self.count]
    }

    fn push(&mut self, id: u32) {
        if self.apic_ids().contains(&id) {
            return;
        }
        if self.count == MAX_CPUS {
            self.ignored += 1;
        } else {
            self.apic_ids[self.count] = id;
            self.count += 1;
        }
    }
}

fn checksum_ok(mem: &impl PhysRead, at: u64, len: u64) -> bool {
    let mut sum = 0u8;
    let mut buf = [0u8; 64];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(64) as usize;
        if mem.read(at + off, &mut buf[..n]).is_none() {
            return false;
        }
        sum = buf[..n].iter().fold(sum, |s, &b| s.wrapping_add(b));
        off += n as u64;
    }
    sum == 0
}

/// Finds the RSDP: at `hint` if the loader gave one, else by scanning the BIOS area.
pub fn find_rsdp(mem: &impl PhysRead, hint: Option<u64>) -> Result<u64, AcpiError> {
    let valid = |at: u64| {
        let mut sig = [0u8; 8];
        mem.read(at, &mut sig).is_some() && &sig == b"RSD PTR " && checksum_ok(mem, at, 20)
    };
    if let Some(at) = hint.filter(|&at| valid(at)) {
        return Ok(at);
    }
    (BIOS_AREA.0..BIOS_AREA.1).step_by(16).find(|&at| valid(at)).ok_or(AcpiError::NoRsdp)
}

/// Reads and checks an SDT header at `at`; returns (signature, length).
fn sdt(mem: &impl PhysRead, at: u64) -> Result<([u8; 4], u64), AcpiError> {
    let mut signature = [0u8; 4];
    let bad = |signature| AcpiError::BadTable { signature, at };
    mem.read(at, &mut signature).ok_or(bad(signature))?;
    let len = u64::from(mem.read_u32(at + 4).ok_or(bad(signature))?);
    // 1 MiB is far beyond any real MADT/XSDT and keeps a hostile length from stalling boot.
    if !(SDT_HEADER_LEN..=1 << 20).contains(&len) || !checksum_ok(mem, at, len) {
        return Err(bad(signature));
    }
    Ok((signature, len))
}

/// Finds the table with `want` signature through the RSDP at `rsdp`.
pub fn find_table(mem: &impl PhysRead, rsdp: u64, want: &[u8; 4]) -> Result<Option<u64>, AcpiError> {
    let bad = AcpiError::BadTable { signature: *b"RSDP", at: rsdp };
    let revision = mem.read_u8(rsdp + 15).ok_or(bad)?;
    let (root, entry_size) = if revision >= 2 {
        (mem.read_u64(rsdp + 24).ok_or(bad)?, 8)
    } else {
        (u64::from(mem.read_u32(rsdp + 16).ok_or(bad)?), 4)
    };
    let (_, len) = sdt(mem, root)?;
    let entries = (len - SDT_HEADER_LEN) / entry_size;
    for i in 0..entries {
        let slot = root + SDT_HEADER_LEN + i * entry_size;
        let table = if entry_size == 8 { mem.read_u64(slot) } else { mem.read_u32(slot).map(u64::from) };
        let table = table.ok_or(AcpiError::BadTable { signature: *b"XSDT", at: root })?;
        let mut signature = [0u8; 4];
        if mem.read(table, &mut signature).is_some() && &signature == want {
            sdt(mem, table)?;
            return Ok(Some(table));
        }
    }
    Ok(None)
}

/// Lists the processors in the MADT reachable from the RSDP at `rsdp`.
pub fn processors(mem: &impl PhysRead, rsdp: u64) -> Result<Processors, AcpiError> {
    let madt = find_table(mem, rsdp, b"APIC")?.ok_or(AcpiError::NoMadt)?;
    let (_, len) = sdt(mem, madt)?;
    let bad = AcpiError::BadTable { signature: *b"APIC", at: madt };
    let mut cpus = Processors {
        apic_ids: [0; MAX_CPUS],
        count: 0,
        ignored: 0,
        local_apic_address: u64::from(mem.read_u32(madt + SDT_HEADER_LEN).ok_or(bad)?),
    };
    let end = madt + len;
    let mut at = madt + SDT_HEADER_LEN + 8;
    while at + 2 <= end {
        let kind = mem.read_u8(at).ok_or(bad)?;
        let entry_len = u64::from(mem.read_u8(at + 1).ok_or(bad)?);
        if entry_len < 2 || at + entry_len > end {
            return Err(bad);
        }
        let usable = |flags: u32| flags & (LAPIC_ENABLED | LAPIC_ONLINE_CAPABLE) != 0;
        match kind {
            MADT_LOCAL_APIC if entry_len >= 8 => {
                let id = mem.read_u8(at + 3).ok_or(bad)?;
                if usable(mem.read_u32(at + 4).ok_or(bad)?) {
                    cpus.push(u32::from(id));
                }
            }
            MADT_LOCAL_X2APIC if entry_len >= 16 => {
                let id = mem.read_u32(at + 4).ok_or(bad)?;
                if usable(mem.read_u32(at + 8).ok_or(bad)?) {
                    cpus.push(id);
                }
            }
            _ => {}
        }
        at += entry_len;
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phys::test_phys::Buffer;

    fn fix_checksum(mem: &mut Buffer, at: u64, len: usize, checksum_at: u64) {
        mem.put(checksum_at, &[0]);
        let start = (at - mem.base) as usize;
        let sum = mem.bytes[start..start + len].iter().fold(0u8, |s, &b| s.wrapping_add(b));
        mem.put(checksum_at, &[0u8.wrapping_sub(sum)]);
    }

    fn table(mem: &mut Buffer, at: u64, signature: &[u8; 4], body: &[u8]) {
        let len = 36 + body.len();
        let mut header = [0u8; 36];
        header[0..4].copy_from_slice(signature);
        header[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        mem.put(at, &header);
        mem.put(at + 36, body);
        fix_checksum(mem, at, len, at + 9);
    }

    /// A machine like QEMU q35 with -smp 2: RSDP rev 2 in the BIOS area → XSDT → MADT.
    fn machine(rsdp_at: u64) -> Buffer {
        let mut mem = Buffer::new(0, 0x10_0000);
        let mut rsdp = [0u8; 36];
        rsdp[0..8].copy_from_slice(b"RSD PTR ");
        rsdp[15] = 2;
        rsdp[24..32].copy_from_slice(&0x8000u64.to_le_bytes());
        mem.put(rsdp_at, &rsdp);
        fix_checksum(&mut mem, rsdp_at, 20, rsdp_at + 8);
        let mut xsdt = Vec::new();
        xsdt.extend_from_slice(&0x9000u64.to_le_bytes());
        xsdt.extend_from_slice(&0xa000u64.to_le_bytes());
        table(&mut mem, 0x8000, b"XSDT", &xsdt);
        table(&mut mem, 0x9000, b"FACP", &[0; 8]);
        let mut madt = Vec::new();
        madt.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        madt.extend_from_slice(&1u32.to_le_bytes());
        madt.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // APIC id 0, enabled
        madt.extend_from_slice(&[0, 8, 1, 1, 1, 0, 0, 0]); // APIC id 1, enabled
        madt.extend_from_slice(&[0, 8, 2, 2, 0, 0, 0, 0]); // APIC id 2, disabled
        madt.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]); // I/O APIC
        let mut x2 = [0u8; 16];
        x2[0] = 9;
        x2[1] = 16;
        x2[4..8].copy_from_slice(&300u32.to_le_bytes());
        x2[8..12].copy_from_slice(&2u32.to_le_bytes()); // online capable
        madt.extend_from_slice(&x2);
        table(&mut mem, 0xa000, b"APIC", &madt);
        mem
    }

    #[test]
    fn finds_rsdp_by_scanning_and_lists_usable_processors() {
        let mem = machine(0xf_5a40);
        let rsdp = find_rsdp(&mem, None).unwrap();
        assert_eq!(rsdp, 0xf_5a40);
        let cpus = processors(&mem, rsdp).unwrap();
        assert_eq!(cpus.apic_ids(), &[0, 1, 300]);
        assert_eq!(cpus.local_apic_address, 0xfee0_0000);
    }

    #[test]
    fn a_bad_hint_falls_back_to_the_scan() {
        let mem = machine(0xe_0010);
        assert_eq!(find_rsdp(&mem, Some(0x1234)).unwrap(), 0xe_0010);
    }

    #[test]
    fn a_corrupted_madt_is_rejected() {
        let mut mem = machine(0xf_0000);
        mem.put(0xa000 + 50, &[0xff]);
        let err = processors(&mem, 0xf_0000).unwrap_err();
        assert_eq!(err, AcpiError::BadTable { signature: *b"APIC", at: 0xa000 });
    }

    #[test]
    fn a_madt_entry_running_past_the_table_is_rejected() {
        let mut mem = machine(0xf_0000);
        // Make the last entry claim 200 bytes, then re-checksum so only the length is wrong.
        mem.put(0xa000 + 36 + 8 + 24 + 12 + 1, &[200]);
        fix_checksum(&mut mem, 0xa000, 36 + 60, 0xa000 + 9);
        assert!(matches!(processors(&mem, 0xf_0000), Err(AcpiError::BadTable { .. })));
    }

    #[test]
    fn no_rsdp_is_reported() {
        let mem = Buffer::new(0, 0x10_0000);
        assert_eq!(find_rsdp(&mem, None), Err(AcpiError::NoRsdp));
    }
}

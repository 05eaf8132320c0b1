//! Just enough ACPI to find the processors: RSDP → XSDT/RSDT → MADT
//! (ACPI 6.5 §5.2.5 RSDP, §5.2.7 RSDT, §5.2.8 XSDT, §5.2.12 MADT).
//!
//! Each table is copied once into a local buffer, and its length and checksum are checked on
//! the copy before anything in it is believed: memory the loader (or host) controls is never
//! read twice.

use le::{u32_at, u64_at};

use crate::phys::PhysRead;

/// Most processors we track; the rest are reported and left parked.
pub const MAX_CPUS: usize = 64;
const SDT_HEADER_LEN: usize = 36;
/// Where a PC BIOS may keep the RSDP (ACPI 6.5 §5.2.5.1).
const BIOS_AREA: (u64, u64) = (0xe_0000, 0x10_0000);
/// Physical addresses at or above this are beyond any x86 CPU (52-bit MAXPHYADDR).
const MAX_PHYS: u64 = 1 << 52;
/// Largest XSDT/RSDT we read (500 entries).
const ROOT_TABLE_MAX: usize = 4096;
/// Largest MADT we read (hundreds of CPUs; we track 64).
const MADT_MAX: usize = 16 * 1024;
const MADT_LOCAL_APIC: u8 = 0;
const MADT_LOCAL_X2APIC: u8 = 9;
/// Local APIC flags: Enabled (ACPI 6.5 table 5.47). Online-capable but disabled processors
/// are for hot-plug and are not started at boot.
const LAPIC_ENABLED: u32 = 1 << 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    NoRsdp,
    BadTable { signature: [u8; 4], at: u64 },
    TooLarge { signature: [u8; 4], len: usize },
    NoMadt,
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcpiError::NoRsdp => write!(f, "no ACPI RSDP found"),
            AcpiError::BadTable { signature, at } => {
                write!(
                    f,
                    "ACPI table {} at {at:#x} is unreadable or has a bad length or checksum",
                    name(signature)
                )
            }
            AcpiError::TooLarge { signature, len } => write!(
                f,
                "ACPI table {} is {len} bytes, more than Parapet reads",
                name(signature)
            ),
            AcpiError::NoMadt => write!(f, "no ACPI MADT: cannot enumerate processors"),
        }
    }
}

fn name(signature: &[u8; 4]) -> &str {
    core::str::from_utf8(signature).unwrap_or("????")
}

/// The processors the MADT lists as enabled.
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

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// Copies the RSDP at `at` if it is one: signature, checksum, and (revision 2+) extended
/// checksum over its full length.
fn read_rsdp(mem: &impl PhysRead, at: u64) -> Option<[u8; 36]> {
    if at >= MAX_PHYS {
        return None;
    }
    let mut rsdp = [0u8; 36];
    mem.read(at, &mut rsdp[..20])?;
    if &rsdp[..8] != b"RSD PTR " || sum(&rsdp[..20]) != 0 {
        return None;
    }
    if rsdp[15] >= 2 {
        mem.read(at + 20, &mut rsdp[20..])?;
        let len = u32_at(&rsdp, 20)? as usize;
        if len < 36 || sum(&rsdp) != 0 {
            return None;
        }
    }
    Some(rsdp)
}

/// Finds the RSDP: at `hint` if the loader gave one, else by scanning the BIOS area.
pub fn find_rsdp(mem: &impl PhysRead, hint: Option<u64>) -> Result<u64, AcpiError> {
    if let Some(at) = hint.filter(|&at| read_rsdp(mem, at).is_some()) {
        return Ok(at);
    }
    (BIOS_AREA.0..BIOS_AREA.1)
        .step_by(16)
        .find(|&at| read_rsdp(mem, at).is_some())
        .ok_or(AcpiError::NoRsdp)
}

/// Copies the table at `at` into `buf` and checks its length and checksum on the copy.
/// Returns the copy.
fn load<'b>(mem: &impl PhysRead, at: u64, buf: &'b mut [u8]) -> Result<&'b [u8], AcpiError> {
    let mut header = [0u8; 8];
    if at >= MAX_PHYS || mem.read(at, &mut header).is_none() {
        return Err(AcpiError::BadTable {
            signature: [b'?'; 4],
            at,
        });
    }
    let signature = [header[0], header[1], header[2], header[3]];
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > buf.len() {
        return Err(AcpiError::TooLarge { signature, len });
    }
    let bad = AcpiError::BadTable { signature, at };
    if len < SDT_HEADER_LEN {
        return Err(bad);
    }
    let table = &mut buf[..len];
    mem.read(at, table).ok_or(bad)?;
    // The copy must still say what the header said, and add up.
    if table[..4] != signature || u32_at(table, 4) != Some(len as u32) || sum(table) != 0 {
        return Err(bad);
    }
    Ok(table)
}

/// Finds the table with `want` signature through the RSDP at `rsdp` and copies it into `buf`.
pub fn find_table<'b>(
    mem: &impl PhysRead,
    rsdp: u64,
    want: &[u8; 4],
    buf: &'b mut [u8],
) -> Result<Option<&'b [u8]>, AcpiError> {
    let header = read_rsdp(mem, rsdp).ok_or(AcpiError::BadTable {
        signature: *b"RSDP",
        at: rsdp,
    })?;
    let (root, entry_size) = match header[15] {
        2.. => (u64_at(&header, 24).unwrap_or(0), 8),
        _ => (u64::from(u32_at(&header, 16).unwrap_or(0)), 4),
    };
    let mut root_buf = [0u8; ROOT_TABLE_MAX];
    let root_table = load(mem, root, &mut root_buf)?;
    for entry in root_table[SDT_HEADER_LEN..].chunks_exact(entry_size) {
        let at = match entry_size {
            8 => u64_at(entry, 0),
            _ => u32_at(entry, 0).map(u64::from),
        }
        .unwrap_or(0);
        let mut signature = [0u8; 4];
        if at < MAX_PHYS && mem.read(at, &mut signature).is_some() && &signature == want {
            return load(mem, at, buf).map(Some);
        }
    }
    Ok(None)
}

/// Lists the enabled processors in the MADT reachable from the RSDP at `rsdp`.
pub fn processors(mem: &impl PhysRead, rsdp: u64) -> Result<Processors, AcpiError> {
    let mut buf = [0u8; MADT_MAX];
    let madt = find_table(mem, rsdp, b"APIC", &mut buf)?.ok_or(AcpiError::NoMadt)?;
    let bad = AcpiError::BadTable {
        signature: *b"APIC",
        at: 0,
    };
    let mut cpus = Processors {
        apic_ids: [0; MAX_CPUS],
        count: 0,
        ignored: 0,
        local_apic_address: u64::from(u32_at(madt, SDT_HEADER_LEN).ok_or(bad)?),
    };
    let mut at = SDT_HEADER_LEN + 8;
    while at + 2 <= madt.len() {
        let kind = madt[at];
        let entry_len = usize::from(madt[at + 1]);
        let entry = madt
            .get(at..at + entry_len)
            .filter(|_| entry_len >= 2)
            .ok_or(bad)?;
        match kind {
            MADT_LOCAL_APIC
                if entry_len >= 8 && u32_at(entry, 4).ok_or(bad)? & LAPIC_ENABLED != 0 =>
            {
                cpus.push(u32::from(entry[3]));
            }
            MADT_LOCAL_X2APIC
                if entry_len >= 16 && u32_at(entry, 8).ok_or(bad)? & LAPIC_ENABLED != 0 =>
            {
                cpus.push(u32_at(entry, 4).ok_or(bad)?);
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
        let sum = mem.bytes[start..start + len]
            .iter()
            .fold(0u8, |s, &b| s.wrapping_add(b));
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
        rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
        mem.put(rsdp_at, &rsdp);
        fix_checksum(&mut mem, rsdp_at, 20, rsdp_at + 8);
        fix_checksum(&mut mem, rsdp_at, 36, rsdp_at + 32);
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
        x2[8..12].copy_from_slice(&1u32.to_le_bytes()); // enabled
        madt.extend_from_slice(&x2);
        x2[4..8].copy_from_slice(&301u32.to_le_bytes());
        x2[8..12].copy_from_slice(&2u32.to_le_bytes()); // online capable only: hot-plug
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
        assert_eq!(
            err,
            AcpiError::BadTable {
                signature: *b"APIC",
                at: 0xa000
            }
        );
    }

    #[test]
    fn a_madt_entry_running_past_the_table_is_rejected() {
        let mut mem = machine(0xf_0000);
        // Make the last entry claim 200 bytes, then re-checksum so only the length is wrong.
        mem.put(0xa000 + 36 + 8 + 24 + 12 + 16 + 1, &[200]);
        fix_checksum(&mut mem, 0xa000, 36 + 76, 0xa000 + 9);
        assert!(matches!(
            processors(&mem, 0xf_0000),
            Err(AcpiError::BadTable { .. })
        ));
    }

    #[test]
    fn a_revision_2_rsdp_needs_its_extended_checksum() {
        let mut mem = machine(0xf_0000);
        mem.put(0xf_0000 + 20, &36u32.to_le_bytes());
        mem.put(0xf_0000 + 32, &[1]); // extended checksum now wrong, first 20 bytes still fine
        assert_eq!(find_rsdp(&mem, None), Err(AcpiError::NoRsdp));
    }

    #[test]
    fn hostile_pointers_and_bytes_never_panic() {
        let mem = machine(0xf_0000);
        assert!(
            find_rsdp(&mem, Some(u64::MAX - 3)).is_ok(),
            "a wild hint falls back to the scan"
        );
        // Flip every byte of the MADT and XSDT in turn: errors are fine, panics are not.
        for at in (0x8000..0x8000 + 52).chain(0xa000..0xa000 + 112) {
            let mut bad = machine(0xf_0000);
            let b = bad.bytes[at as usize];
            bad.put(at, &[b ^ 0xff]);
            let _ = processors(&bad, 0xf_0000);
        }
        // A root table pointing at the top of the address space.
        let mut wild = machine(0xf_0000);
        wild.put(0x8000 + 44, &(u64::MAX - 2).to_le_bytes());
        fix_checksum(&mut wild, 0x8000, 52, 0x8000 + 9);
        assert_eq!(processors(&wild, 0xf_0000), Err(AcpiError::NoMadt));
    }

    #[test]
    fn no_rsdp_is_reported() {
        let mem = Buffer::new(0, 0x10_0000);
        assert_eq!(find_rsdp(&mem, None), Err(AcpiError::NoRsdp));
    }
}

//! An I/O APIC as a guest sees it: the Intel 82093AA (datasheet 290566-001, "82093AA I/O
//! Advanced Programmable Interrupt Controller", §3 "Register Description") in the form the
//! ICH/PCH chipsets carry it (e.g. Intel ICH9 datasheet 316972, §13.5 "Advanced Programmable
//! Interrupt Controller (APIC)"; later PCH datasheets, "APIC Registers", are the same), which
//! adds the EOI register and reports version 0x20. 24 redirection entries, one per input pin.
//!
//! # How a backend drives it
//!
//! - The guest's MMIO accesses to the window (`WINDOW_SIZE` bytes at a base the backend
//!   chooses, [`DEFAULT_BASE`] by convention, and named in the MADT's I/O APIC entry) go to
//!   [`IoApic::read`] / [`IoApic::write`] with the offset into the window and the access
//!   size in bytes.
//! - A device's interrupt line goes to [`IoApic::set_irq_level`] whenever the device's output
//!   may have changed (it is cheap to call with an unchanged level). Pin `n` is GSI
//!   `gsi_base + n`; with the MADT Parapet builds (abi/src/acpi_tables.rs) the GSI base is 0,
//!   so the ISA IRQs are GSIs 0-15 (IRQ0 overridden to GSI 2) and COM1 is GSI 4.
//! - The local APIC's EOI of a level-triggered vector (`x2apic::Effect::EoiBroadcast`) goes to
//!   [`IoApic::eoi`].
//! - Every [`Interrupt`] the model returns is to be handed to the local APIC(s) it names:
//!   `Fixed` to `LocalApic::accept` (or `accept_level` when `level_triggered`, which sets the
//!   TMR bit so that the EOI comes back here), `LowestPriority` to any one of them, `Nmi` and
//!   `Init` as the backend handles those. `ExtInt` asks for the vector of an 8259A, which a
//!   machine without a PIC does not have: the backend drops it.
//!
//! The model never holds an interrupt for later: whatever becomes deliverable is returned by
//! the call that made it so (a line rising, an unmask, an EOI). Delivery is instant, so the
//! delivery-status bit (bit 12) always reads 0 (idle).
//!
//! # Choices where the datasheets leave room
//!
//! - **Version 0x20** (ICH/PCH), as QEMU reports: the EOI register at offset 0x40 exists.
//!   Linux uses it to clear a stuck remote IRR (`__eoi_ioapic_pin` in
//!   arch/x86/kernel/apic/io_apic.c, when the version is 0x20 or more). Writing an entry as
//!   edge-triggered also clears its remote IRR, as KVM and QEMU do: that is what Linux relies
//!   on for older versions, and harmless here.
//! - **Access sizes**: IOREGSEL (0x00) takes 1, 2 or 4-byte accesses (only bits 7:0 are
//!   kept; it reads back as written, zero-extended) at offset 0 exactly; IOWIN (0x10) and
//!   EOI (0x40) are 32-bit registers (82093AA §3.1, Table 2) and take only 4-byte accesses
//!   at exactly their offset. Anything else — another size, an unaligned or other
//!   offset, an indirect index with no register — reads 0 and ignores writes. EOI reads 0.
//!   There are no aliases within the window.
//! - **Reserved bits** read 0 and ignore writes: of the ID register only bits 27:24 are kept
//!   (82093AA §3.2.1), of a redirection entry bits 16:0 minus the read-only 12 and 14, and
//!   63:56 (82093AA §3.2.4; the ICH's extended destination ID, bits 55:48, is not offered).
//! - **ARB** (82093AA §3.2.3) reads the ID in bits 27:24: the datasheet loads it from the ID
//!   register at reset and whenever the ID is written, and arbitration never changes it here.
//! - **Unknown indices** (0x03-0x0F, 0x40-0xFF) read 0 (KVM reads all ones; Linux only
//!   tests for all ones in ID, VER and ARB together, `bad_ioapic_register`).
//! - **Reset**: every entry masked (bit 16 set, 82093AA §3.2.4), everything else 0.
//! - **Edge-triggered entries** deliver on a rising edge of the input as the polarity bit
//!   sees it (active low: a falling edge of the line). An edge seen while masked is lost
//!   (82093AA §3.2.4, bit 16: "edge-sensitive interrupts signaled on a masked interrupt pin
//!   are ignored (i.e., not delivered or held pending)"); so is an apparent edge made by
//!   rewriting the polarity bit.
//! - **Level-triggered entries** deliver whenever the input is asserted, the entry unmasked
//!   and remote IRR clear, and set remote IRR; this is checked on every input change, every
//!   write of the entry (an unmask delivers a still-asserted input) and every EOI.
//! - **Delivery modes** SMI (010) and the reserved 011 and 110 deliver nothing (and set no
//!   remote IRR): there is no SMM here. NMI, INIT and ExtINT should be edge-triggered
//!   (82093AA §3.2.4); they are delivered as the trigger bit says.

/// The conventional physical base of the first I/O APIC on a PC.
pub const DEFAULT_BASE: u64 = 0xfec0_0000;
/// Bytes of MMIO window the backend should route here (one page; the registers end at 0x43).
pub const WINDOW_SIZE: u64 = 0x1000;

/// Direct registers: offsets in the window (82093AA §3.1, Table 2; ICH9 §13.5.1, Table 13-5).
pub const IOREGSEL: u64 = 0x00;
pub const IOWIN: u64 = 0x10;
/// EOI register (ICH9 §13.5.1: "EOI — EOI Register", write-only, bits 7:0 the vector).
pub const EOI: u64 = 0x40;

/// Indirect registers: values of IOREGSEL (82093AA §3.0, Table 3).
pub const REG_ID: u8 = 0x00;
pub const REG_VER: u8 = 0x01;
pub const REG_ARB: u8 = 0x02;
/// Redirection entry `n` is the dword pair at indices 0x10 + 2n (low) and 0x11 + 2n (high).
pub const REG_REDTBL_FIRST: u8 = 0x10;
pub const REG_REDTBL_LAST: u8 = 0x3f;

/// Input pins, hence redirection entries (82093AA §1: 24 interrupt inputs).
pub const PINS: usize = 24;
/// APIC version in VER bits 7:0: 0x20, the ICH/PCH I/O APIC (ICH9 §13.5.3 "VER — Version
/// Register"; the 82093AA reports 0x11, §3.2.2).
pub const VERSION: u32 = 0x20;
/// VER: version in bits 7:0, maximum redirection entry (PINS - 1 = 0x17) in bits 23:16, bit
/// 15 (PRQ, pin assertion register) clear (82093AA §3.2.2; ICH9 §13.5.3).
pub const VER_VALUE: u32 = VERSION | ((PINS as u32 - 1) << 16);

/// ID register: the APIC ID in bits 27:24 (82093AA §3.2.1); ARB uses the same field (§3.2.3).
const ID_SHIFT: u32 = 24;
const ID_MASK: u32 = 0xf;

/// Redirection entry bits (82093AA §3.2.4, Table 4).
pub const RTE_VECTOR: u64 = 0xff;
pub const RTE_DELIVERY_MODE_SHIFT: u32 = 8;
pub const RTE_DELIVERY_MODE: u64 = 0b111 << RTE_DELIVERY_MODE_SHIFT;
/// Destination mode: 0 physical, 1 logical.
pub const RTE_DEST_LOGICAL: u64 = 1 << 11;
/// Delivery status (read-only): 1 = send pending. Always 0 here.
pub const RTE_DELIVERY_STATUS: u64 = 1 << 12;
/// Interrupt input pin polarity: 0 active high, 1 active low.
pub const RTE_ACTIVE_LOW: u64 = 1 << 13;
/// Remote IRR (read-only, level-triggered only): set when a local APIC accepts the
/// interrupt, cleared by its EOI.
pub const RTE_REMOTE_IRR: u64 = 1 << 14;
/// Trigger mode: 0 edge, 1 level.
pub const RTE_LEVEL: u64 = 1 << 15;
pub const RTE_MASKED: u64 = 1 << 16;
/// Destination field, bits 63:56 (the 82093AA decodes 59:56 as a physical APIC ID, the whole
/// byte as a logical destination set).
pub const RTE_DEST_SHIFT: u32 = 56;
/// The bits a guest write keeps: all of the above but the read-only ones.
pub const RTE_WRITABLE: u64 = RTE_VECTOR
    | RTE_DELIVERY_MODE
    | RTE_DEST_LOGICAL
    | RTE_ACTIVE_LOW
    | RTE_LEVEL
    | RTE_MASKED
    | (0xff << RTE_DEST_SHIFT);

/// How a redirection entry asks the local APIC(s) to take the interrupt (bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// 000: the vector, to every destination.
    Fixed,
    /// 001: the vector, to the destination processor running at the lowest priority.
    LowestPriority,
    /// 100: an NMI (vector ignored).
    Nmi,
    /// 101: INIT (vector ignored).
    Init,
    /// 111: an 8259A-compatible interrupt, whose vector the PIC would supply.
    ExtInt,
}

impl DeliveryMode {
    /// Bits 10:8 of an entry; `None` for SMI (010) and the reserved 011 and 110, which
    /// deliver nothing here.
    fn decode(entry: u64) -> Option<Self> {
        match (entry & RTE_DELIVERY_MODE) >> RTE_DELIVERY_MODE_SHIFT {
            0b000 => Some(Self::Fixed),
            0b001 => Some(Self::LowestPriority),
            0b100 => Some(Self::Nmi),
            0b101 => Some(Self::Init),
            0b111 => Some(Self::ExtInt),
            _ => None,
        }
    }
}

/// Bit 11 of an entry: how `destination` is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationMode {
    /// An APIC ID.
    Physical,
    /// A logical destination, matched against each local APIC's LDR.
    Logical,
}

/// An interrupt message the I/O APIC sends, for the backend to hand to the local APIC(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupt {
    pub vector: u8,
    pub delivery: DeliveryMode,
    pub destination_mode: DestinationMode,
    /// Bits 63:56 of the entry. 0xff in either mode reaches every local APIC.
    pub destination: u8,
    /// Level-triggered: the local APIC sets the vector's TMR bit and its EOI must come back
    /// to [`IoApic::eoi`].
    pub level_triggered: bool,
}

/// The interrupts one call made deliverable: at most one per pin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Interrupts {
    list: [Option<Interrupt>; PINS],
    len: usize,
}

impl Interrupts {
    fn push(&mut self, interrupt: Interrupt) {
        if let Some(slot) = self.list.get_mut(self.len) {
            *slot = Some(interrupt);
            self.len = self.len.saturating_add(1);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn iter(&self) -> impl Iterator<Item = Interrupt> + '_ {
        self.list.iter().flatten().copied()
    }
}

impl From<Option<Interrupt>> for Interrupts {
    fn from(interrupt: Option<Interrupt>) -> Self {
        let mut all = Self::default();
        if let Some(i) = interrupt {
            all.push(i);
        }
        all
    }
}

#[derive(Debug)]
pub struct IoApic {
    /// APIC ID, 4 bits.
    id: u8,
    /// IOREGSEL: the indirect register IOWIN reaches.
    select: u8,
    /// Redirection entries, read-only bits included (delivery status is always 0).
    entries: [u64; PINS],
    /// Each pin's input as the device last drove it (electrical level, before polarity).
    lines: [bool; PINS],
}

impl IoApic {
    /// An I/O APIC at reset with APIC ID `id` (bits 3:0 kept: the MADT's I/O APIC ID), every
    /// entry masked and every line low.
    pub fn new(id: u8) -> Self {
        Self {
            id: id & ID_MASK as u8,
            select: 0,
            entries: [RTE_MASKED; PINS],
            lines: [false; PINS],
        }
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    /// Redirection entry `pin` as the guest would read it (for diagnostics and tests).
    pub fn entry(&self, pin: usize) -> Option<u64> {
        self.entries.get(pin).copied()
    }

    /// A guest read of `size` bytes at `offset` into the window. See the module comment for
    /// which accesses are honoured; all others read 0.
    pub fn read(&self, offset: u64, size: u8) -> u32 {
        match (offset, size) {
            (IOREGSEL, 1 | 2 | 4) => u32::from(self.select),
            (IOWIN, 4) => self.read_indirect(self.select),
            _ => 0,
        }
    }

    /// A guest write of the low `size` bytes of `value` at `offset` into the window. Returns
    /// what became deliverable: an unmasked level-triggered entry whose input is asserted,
    /// or, through the EOI register, entries whose remote IRR it cleared.
    pub fn write(&mut self, offset: u64, size: u8, value: u32) -> Interrupts {
        match (offset, size) {
            // Only bits 7:0 are the index (82093AA §3.1.1: bits 31:8 reserved).
            (IOREGSEL, 1 | 2 | 4) => {
                self.select = value as u8;
                Interrupts::default()
            }
            (IOWIN, 4) => self.write_indirect(self.select, value).into(),
            // ICH9 §13.5.1: the EOI register's bits 7:0 are the vector.
            (EOI, 4) => self.eoi(value as u8),
            _ => Interrupts::default(),
        }
    }

    /// The redirection entry and which half (`true`: bits 63:32) indirect index `index` is.
    fn entry_index(index: u8) -> Option<(usize, bool)> {
        if !(REG_REDTBL_FIRST..=REG_REDTBL_LAST).contains(&index) {
            return None;
        }
        let n = usize::from(index - REG_REDTBL_FIRST);
        Some((n / 2, n % 2 == 1))
    }

    fn read_indirect(&self, index: u8) -> u32 {
        match index {
            REG_ID | REG_ARB => (u32::from(self.id) & ID_MASK) << ID_SHIFT,
            REG_VER => VER_VALUE,
            _ => match Self::entry_index(index) {
                Some((pin, high)) => {
                    let entry = self.entries[pin];
                    if high {
                        (entry >> 32) as u32
                    } else {
                        entry as u32
                    }
                }
                None => 0,
            },
        }
    }

    fn write_indirect(&mut self, index: u8, value: u32) -> Option<Interrupt> {
        match index {
            REG_ID => {
                self.id = ((value >> ID_SHIFT) & ID_MASK) as u8;
                None
            }
            // VER and ARB are read-only (82093AA §3.2.2, §3.2.3).
            REG_VER | REG_ARB => None,
            _ => {
                let (pin, high) = Self::entry_index(index)?;
                let old = self.entries[pin];
                let written = if high {
                    (old & 0xffff_ffff) | (u64::from(value) << 32)
                } else {
                    (old & !0xffff_ffff) | u64::from(value)
                };
                let mut entry = (written & RTE_WRITABLE) | (old & RTE_REMOTE_IRR);
                if entry & RTE_LEVEL == 0 {
                    // Edge-triggered entries have no remote IRR (KVM, QEMU; what Linux's
                    // __eoi_ioapic_pin relies on before version 0x20).
                    entry &= !RTE_REMOTE_IRR;
                }
                self.entries[pin] = entry;
                self.deliver_level(pin)
            }
        }
    }

    /// Whether pin `pin`'s input is asserted, after its entry's polarity.
    fn asserted(&self, pin: usize) -> bool {
        self.lines[pin] != (self.entries[pin] & RTE_ACTIVE_LOW != 0)
    }

    /// The message entry `pin` sends, if its delivery mode sends one.
    fn message(&self, pin: usize) -> Option<Interrupt> {
        let entry = self.entries[pin];
        Some(Interrupt {
            vector: (entry & RTE_VECTOR) as u8,
            delivery: DeliveryMode::decode(entry)?,
            destination_mode: if entry & RTE_DEST_LOGICAL != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            destination: (entry >> RTE_DEST_SHIFT) as u8,
            level_triggered: entry & RTE_LEVEL != 0,
        })
    }

    /// Delivers a level-triggered entry if it can be: unmasked, input asserted, remote IRR
    /// clear. Sets remote IRR when it does.
    fn deliver_level(&mut self, pin: usize) -> Option<Interrupt> {
        let entry = self.entries[pin];
        if entry & RTE_LEVEL == 0
            || entry & (RTE_MASKED | RTE_REMOTE_IRR) != 0
            || !self.asserted(pin)
        {
            return None;
        }
        let message = self.message(pin)?;
        self.entries[pin] |= RTE_REMOTE_IRR;
        Some(message)
    }

    /// A device drives the line of global system interrupt `gsi` (this I/O APIC's pin
    /// `gsi`; its GSI base is 0) to `level` (true: electrically high). Returns the interrupt
    /// to deliver, if this made one deliverable. A GSI beyond the last pin is ignored.
    pub fn set_irq_level(&mut self, gsi: u32, level: bool) -> Option<Interrupt> {
        let pin = usize::try_from(gsi).ok().filter(|&p| p < PINS)?;
        let was_asserted = self.asserted(pin);
        self.lines[pin] = level;
        let entry = self.entries[pin];
        if entry & RTE_LEVEL != 0 {
            self.deliver_level(pin)
        } else if !was_asserted && self.asserted(pin) && entry & RTE_MASKED == 0 {
            self.message(pin)
        } else {
            None
        }
    }

    /// The EOI of `vector` (a local APIC's EOI broadcast for a level-triggered vector, or a
    /// write of the EOI register): every level-triggered entry with this vector clears its
    /// remote IRR, and delivers again if its input is still asserted and it is unmasked.
    pub fn eoi(&mut self, vector: u8) -> Interrupts {
        let mut delivered = Interrupts::default();
        for pin in 0..PINS {
            let entry = self.entries[pin];
            if entry & RTE_VECTOR == u64::from(vector) && entry & RTE_REMOTE_IRR != 0 {
                self.entries[pin] &= !RTE_REMOTE_IRR;
                if let Some(interrupt) = self.deliver_level(pin) {
                    delivered.push(interrupt);
                }
            }
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COM1_GSI: u32 = 4;

    fn sel(io: &mut IoApic, index: u8) {
        assert!(io.write(IOREGSEL, 4, u32::from(index)).is_empty());
    }

    fn read_reg(io: &mut IoApic, index: u8) -> u32 {
        sel(io, index);
        io.read(IOWIN, 4)
    }

    fn write_reg(io: &mut IoApic, index: u8, value: u32) -> Interrupts {
        sel(io, index);
        io.write(IOWIN, 4, value)
    }

    /// Writes entry `pin` the way Linux's `__ioapic_write_entry` does: high dword, then low.
    fn write_entry(io: &mut IoApic, pin: u8, entry: u64) -> Interrupts {
        let hi = write_reg(io, 0x11 + 2 * pin, (entry >> 32) as u32);
        assert!(hi.is_empty(), "the high half alone changes no delivery");
        write_reg(io, 0x10 + 2 * pin, entry as u32)
    }

    fn read_entry(io: &mut IoApic, pin: u8) -> u64 {
        let lo = read_reg(io, 0x10 + 2 * pin);
        let hi = read_reg(io, 0x11 + 2 * pin);
        u64::from(lo) | (u64::from(hi) << 32)
    }

    fn fixed(vector: u8, dest: u8, level: bool) -> Interrupt {
        Interrupt {
            vector,
            delivery: DeliveryMode::Fixed,
            destination_mode: DestinationMode::Physical,
            destination: dest,
            level_triggered: level,
        }
    }

    fn level_entry(vector: u8) -> u64 {
        u64::from(vector) | RTE_LEVEL
    }

    #[test]
    fn id_ver_arb_after_reset() {
        let mut io = IoApic::new(0x12);
        assert_eq!(io.id(), 2, "four bits of ID");
        assert_eq!(read_reg(&mut io, REG_ID), 2 << 24);
        assert_eq!(read_reg(&mut io, REG_VER), 0x0017_0020);
        assert_eq!(read_reg(&mut io, REG_ARB), 2 << 24);
        for pin in 0..PINS as u8 {
            assert_eq!(read_entry(&mut io, pin), RTE_MASKED, "masked at reset");
        }
    }

    #[test]
    fn id_is_writable_in_bits_27_24_and_ver_arb_are_read_only() {
        let mut io = IoApic::new(0);
        let _ = write_reg(&mut io, REG_ID, 0xffff_ffff);
        assert_eq!(read_reg(&mut io, REG_ID), 0x0f00_0000);
        assert_eq!(
            read_reg(&mut io, REG_ARB),
            0x0f00_0000,
            "ARB follows the ID"
        );
        let _ = write_reg(&mut io, REG_VER, 0);
        let _ = write_reg(&mut io, REG_ARB, 0);
        assert_eq!(read_reg(&mut io, REG_VER), VER_VALUE);
        assert_eq!(read_reg(&mut io, REG_ARB), 0x0f00_0000);
    }

    #[test]
    fn ioregsel_reads_back_and_takes_small_writes() {
        let mut io = IoApic::new(0);
        let _ = io.write(IOREGSEL, 1, 0x1234_5601);
        assert_eq!(io.read(IOREGSEL, 4), 0x01, "only bits 7:0 are the index");
        assert_eq!(io.read(IOREGSEL, 1), 0x01);
        assert_eq!(io.read(IOWIN, 4), VER_VALUE);
        let _ = io.write(IOREGSEL, 2, 0x0002);
        assert_eq!(io.read(IOWIN, 4), 0, "ARB with ID 0");
    }

    #[test]
    fn entries_keep_writable_bits_and_drop_read_only_and_reserved_ones() {
        let mut io = IoApic::new(0);
        let _ = write_entry(&mut io, 7, u64::MAX);
        assert_eq!(read_entry(&mut io, 7), RTE_WRITABLE);
        assert_eq!(
            read_entry(&mut io, 7) & (RTE_DELIVERY_STATUS | RTE_REMOTE_IRR),
            0,
            "delivery status and remote IRR are not the guest's to set"
        );
        assert_eq!(
            read_entry(&mut io, 7) & 0x00ff_ffff_fffe_0000,
            0,
            "bits 55:17 reserved"
        );
        // Each half on its own leaves the other alone.
        let _ = write_reg(&mut io, 0x11 + 2 * 7, 0x0300_0000);
        assert_eq!(
            read_entry(&mut io, 7),
            (RTE_WRITABLE & 0xffff_ffff) | (3 << 56)
        );
        let _ = write_reg(&mut io, 0x10 + 2 * 7, 0x0001_0031);
        assert_eq!(read_entry(&mut io, 7), 0x0300_0000_0001_0031);
        assert_eq!(io.entry(7), Some(0x0300_0000_0001_0031));
        assert_eq!(io.entry(PINS), None);
    }

    #[test]
    fn remote_irr_is_read_only_but_an_edge_write_clears_it() {
        let mut io = IoApic::new(0);
        let _ = write_entry(&mut io, 3, level_entry(0x40));
        assert!(io.set_irq_level(3, true).is_some());
        assert_ne!(read_entry(&mut io, 3) & RTE_REMOTE_IRR, 0);
        // Rewriting the entry (still level, now masked) keeps remote IRR: the guest
        // cannot clear it by writing a 0 there.
        let _ = write_entry(&mut io, 3, level_entry(0x40) | RTE_MASKED);
        assert_ne!(read_entry(&mut io, 3) & RTE_REMOTE_IRR, 0);
        // Switching to edge clears it (what Linux does before version 0x20).
        let _ = write_entry(&mut io, 3, 0x40 | RTE_MASKED);
        assert_eq!(read_entry(&mut io, 3) & RTE_REMOTE_IRR, 0);
    }

    #[test]
    fn edge_delivers_once_per_rising_edge() {
        let mut io = IoApic::new(0);
        let _ = write_entry(&mut io, 4, 0x31 | (1 << 56));
        assert_eq!(io.set_irq_level(4, true), Some(fixed(0x31, 1, false)));
        assert_eq!(io.set_irq_level(4, true), None, "still high: no new edge");
        assert_eq!(io.set_irq_level(4, false), None);
        assert_eq!(io.set_irq_level(4, true), Some(fixed(0x31, 1, false)));
        assert_eq!(
            read_entry(&mut io, 4) & RTE_REMOTE_IRR,
            0,
            "edge sets no remote IRR"
        );
        assert!(io.eoi(0x31).is_empty(), "nothing to do for edge entries");
    }

    #[test]
    fn edge_while_masked_is_lost_and_unmask_does_not_replay_it() {
        let mut io = IoApic::new(0);
        let _ = write_entry(&mut io, 4, 0x31 | RTE_MASKED);
        assert_eq!(io.set_irq_level(4, true), None);
        assert!(write_entry(&mut io, 4, 0x31).is_empty());
        assert_eq!(io.set_irq_level(4, true), None, "no edge");
        assert_eq!(io.set_irq_level(4, false), None);
        assert!(io.set_irq_level(4, true).is_some());
    }

    #[test]
    fn level_delivers_while_asserted_until_eoi() {
        let mut io = IoApic::new(0);
        let _ = write_entry(&mut io, 9, level_entry(0x50));
        assert_eq!(io.set_irq_level(9, true), Some(fixed(0x50, 0, true)));
        assert_ne!(read_entry(&mut io, 9) & RTE_REMOTE_IRR, 0);
        assert_eq!(io.set_irq_level(9, true), None, "remote IRR holds it back");
        // EOI with the line still asserted: delivered again, remote IRR set again.
        let again = io.eoi(0x50);
        assert_eq!(again.iter().collect::<Vec<_>>(), [fixed(0x50, 0, true)]);
        assert_ne!(read_entry(&mut io, 9) & RTE_REMOTE_IRR, 0);
        // The device drops its line, then the EOI comes: nothing more.
        assert_eq!(io.set_irq_level(9, false), None);
        assert!(io.eoi(0x50).is_empty());
        assert_eq!(read_entry(&mut io, 9) & RTE_REMOTE_IRR, 0);
        assert_eq!(io.set_irq_level(9, true), Some(fixed(0x50, 0, true)));
    }

    #[test]
    fn eoi_touches_only_entries_with_that_vector() {
        let mut io = IoApic::new(0);
        let _ = write_entry(&mut io, 1, level_entry(0x41));
        let _ = write_entry(&mut io, 2, level_entry(0x42));
        assert!(io.set_irq_level(1, true).is_some());
        assert!(io.set_irq_level(2, true).is_some());
        assert!(io.eoi(0x43).is_empty());
        assert_eq!(io.eoi(0x42).len(), 1);
        assert_ne!(read_entry(&mut io, 1) & RTE_REMOTE_IRR, 0);
    }

    #[test]
    fn eoi_register_does_what_an_eoi_broadcast_does() {
        let mut io = IoApic::new(0);
        let _ = write_entry(&mut io, 5, level_entry(0x61));
        let _ = write_entry(&mut io, 6, level_entry(0x61));
        assert!(io.set_irq_level(5, true).is_some());
        assert!(io.set_irq_level(6, true).is_some());
        let both = io.write(EOI, 4, 0x61);
        assert_eq!(both.len(), 2, "two pins share the vector, both redeliver");
        let _ = io.set_irq_level(5, false);
        let _ = io.set_irq_level(6, false);
        assert!(io.write(EOI, 4, 0xffff_ff61).is_empty(), "only bits 7:0");
        assert_eq!(read_entry(&mut io, 5) & RTE_REMOTE_IRR, 0);
        assert_eq!(io.read(EOI, 4), 0, "write-only");
        assert!(io.write(EOI, 1, 0x61).is_empty(), "dword only");
    }

    #[test]
    fn masked_level_delivers_on_unmask_if_still_asserted() {
        let mut io = IoApic::new(0);
        let _ = write_entry(&mut io, 10, level_entry(0x70) | RTE_MASKED);
        assert_eq!(io.set_irq_level(10, true), None);
        let on_unmask = write_entry(&mut io, 10, level_entry(0x70));
        assert_eq!(on_unmask.iter().collect::<Vec<_>>(), [fixed(0x70, 0, true)]);
        // Masked again with remote IRR set, the line drops, the EOI clears remote IRR and
        // the unmask finds nothing asserted.
        let _ = write_entry(&mut io, 10, level_entry(0x70) | RTE_MASKED);
        let _ = io.set_irq_level(10, false);
        assert!(io.eoi(0x70).is_empty());
        assert!(write_entry(&mut io, 10, level_entry(0x70)).is_empty());
        // Remote IRR cleared while masked with the line up: the EOI does not deliver, the
        // unmask does.
        let _ = io.set_irq_level(10, true);
        let _ = write_entry(&mut io, 10, level_entry(0x70) | RTE_MASKED);
        assert!(io.eoi(0x70).is_empty());
        assert_eq!(write_entry(&mut io, 10, level_entry(0x70)).len(), 1);
    }

    #[test]
    fn polarity_inverts_the_input() {
        let mut io = IoApic::new(0);
        // Edge, active low: a falling edge of the line delivers.
        let _ = write_entry(&mut io, 11, 0x33 | RTE_ACTIVE_LOW);
        assert_eq!(io.set_irq_level(11, true), None);
        assert!(io.set_irq_level(11, false).is_some());
        // Level, active low: an idle-low line is asserted, so programming it delivers.
        let mut io = IoApic::new(0);
        let delivered = write_entry(&mut io, 12, level_entry(0x34) | RTE_ACTIVE_LOW);
        assert_eq!(delivered.len(), 1);
        let _ = io.set_irq_level(12, true);
        assert!(
            io.eoi(0x34).is_empty(),
            "deasserted by driving the line high"
        );
        assert!(io.set_irq_level(12, false).is_some());
    }

    #[test]
    fn delivery_and_destination_modes_decode() {
        let mut io = IoApic::new(0);
        let cases = [
            (0b000, Some(DeliveryMode::Fixed)),
            (0b001, Some(DeliveryMode::LowestPriority)),
            (0b010, None),
            (0b011, None),
            (0b100, Some(DeliveryMode::Nmi)),
            (0b101, Some(DeliveryMode::Init)),
            (0b110, None),
            (0b111, Some(DeliveryMode::ExtInt)),
        ];
        for (mode, expected) in cases {
            let entry = 0x99 | (mode << 8) | RTE_DEST_LOGICAL | (0xa5 << 56);
            let _ = write_entry(&mut io, 0, entry);
            let _ = io.set_irq_level(0, false);
            let got = io.set_irq_level(0, true);
            assert_eq!(got.map(|i| i.delivery), expected, "mode {mode:03b}");
            if let Some(i) = got {
                assert_eq!(i.destination_mode, DestinationMode::Logical);
                assert_eq!(i.destination, 0xa5);
                assert_eq!(i.vector, 0x99);
            }
        }
        // A level-triggered SMI sets no remote IRR.
        let _ = io.set_irq_level(0, false);
        let _ = write_entry(&mut io, 0, 0x99 | (0b010 << 8) | RTE_LEVEL);
        assert_eq!(io.set_irq_level(0, true), None);
        assert_eq!(read_entry(&mut io, 0) & RTE_REMOTE_IRR, 0);
    }

    #[test]
    fn gsis_beyond_the_pins_are_ignored() {
        let mut io = IoApic::new(0);
        for gsi in [24, 25, 255, u32::MAX] {
            assert_eq!(io.set_irq_level(gsi, true), None);
        }
    }

    /// What Linux's arch/x86/kernel/apic/io_apic.c does at boot with the MADT Parapet builds:
    /// `mp_register_ioapic` checks ID/VER/ARB (`bad_ioapic_register`) and reads the version;
    /// `enable_IO_APIC` reads every entry looking for ExtINT; `clear_IO_APIC` masks every
    /// entry (`clear_IO_APIC_pin`: read, mask if unmasked, clear remote IRR if set, then
    /// `ioapic_mask_entry`); the UART's IRQ 4 is then set up (`mp_irqdomain_activate` ->
    /// `ioapic_configure_entry`, `__ioapic_write_entry`: high dword first, masked) and
    /// unmasked when the 8250 driver requests it (`ioapic_mask_entry`'s counterpart writes
    /// only the low dword). Then the UART interrupts.
    #[test]
    fn linux_boot_replay() {
        let mut io = IoApic::new(0);
        // Garbage left by "firmware": an unmasked level entry with remote IRR set.
        let _ = write_entry(&mut io, 13, level_entry(0x23));
        assert!(io.set_irq_level(13, true).is_some());

        let reg0 = read_reg(&mut io, REG_ID);
        let reg1 = read_reg(&mut io, REG_VER);
        let reg2 = read_reg(&mut io, REG_ARB);
        assert!(!(reg0 == u32::MAX && reg1 == u32::MAX && reg2 == u32::MAX));
        assert_eq!(reg1 & 0xff, 0x20, "version");
        let entries = ((reg1 >> 16) & 0xff) + 1;
        assert_eq!(entries, 24);
        for pin in 0..entries as u8 {
            let e = read_entry(&mut io, pin);
            assert_ne!((e >> 8) & 7, 0b111, "no ExtINT pin to keep");
        }
        for pin in 0..entries as u8 {
            let mut e = read_entry(&mut io, pin);
            if (e >> 8) & 7 == 0b010 {
                continue;
            }
            if e & RTE_MASKED == 0 {
                e |= RTE_MASKED;
                let _ = write_entry(&mut io, pin, e);
                e = read_entry(&mut io, pin);
            }
            if e & RTE_REMOTE_IRR != 0 {
                // Version 0x20: the EOI register (io_apic_eoi).
                assert!(io.write(EOI, 4, (e & 0xff) as u32).is_empty(), "masked");
            }
            // ioapic_mask_entry: low dword (masked) then high dword.
            let _ = write_reg(&mut io, 0x10 + 2 * pin, RTE_MASKED as u32);
            let _ = write_reg(&mut io, 0x11 + 2 * pin, 0);
            assert_eq!(read_entry(&mut io, pin), RTE_MASKED, "pin {pin}");
        }
        // IRQ 4: edge, active high, fixed, physical, to CPU 0, vector 0x24; set up masked.
        let uart = 0x24u64 | RTE_MASKED;
        let _ = write_entry(&mut io, 4, uart);
        assert_eq!(io.set_irq_level(COM1_GSI, true), None, "still masked");
        let _ = io.set_irq_level(COM1_GSI, false);
        // Unmasked by request_irq.
        assert!(write_reg(&mut io, 0x18, 0x24).is_empty());
        assert_eq!(read_entry(&mut io, 4), 0x24);
        assert_eq!(
            io.set_irq_level(COM1_GSI, true),
            Some(fixed(0x24, 0, false))
        );
        let _ = io.set_irq_level(COM1_GSI, false);
        assert_eq!(
            io.set_irq_level(COM1_GSI, true),
            Some(fixed(0x24, 0, false))
        );
    }

    /// Every offset of the window and beyond, every size, every indirect index, with junk:
    /// nothing panics, unknown reads are 0, and junk never reaches the read-only registers.
    #[test]
    fn junk_accesses_sweep() {
        let mut io = IoApic::new(1);
        let offsets =
            (0..0x100u64).chain([0xfff, 0x1000, WINDOW_SIZE + IOWIN, u64::MAX, u64::MAX - 3]);
        for offset in offsets {
            for size in [0u8, 1, 2, 3, 4, 5, 8, 255] {
                let honoured = matches!(
                    (offset, size),
                    (IOREGSEL, 1 | 2 | 4) | (IOWIN, 4) | (EOI, 4)
                );
                if !honoured {
                    assert_eq!(io.read(offset, size), 0, "{offset:#x}/{size}");
                }
                let _ = io.write(offset, size, 0xdead_beef);
                let _ = io.read(offset, size);
            }
        }
        for index in 0..=255u8 {
            sel(&mut io, index);
            let _ = io.write(IOWIN, 4, 0xa5a5_a5a5);
            let value = io.read(IOWIN, 4);
            if !(REG_ID..=REG_ARB).contains(&index)
                && !(REG_REDTBL_FIRST..=REG_REDTBL_LAST).contains(&index)
            {
                assert_eq!(value, 0, "index {index:#x}");
            }
        }
        assert_eq!(read_reg(&mut io, REG_VER), VER_VALUE);
        for pin in 0..PINS as u8 {
            assert_eq!(
                read_entry(&mut io, pin) & !RTE_WRITABLE & !RTE_REMOTE_IRR,
                0
            );
        }
        for gsi in 0..64 {
            let _ = io.set_irq_level(gsi, gsi % 3 == 0);
        }
        for vector in 0..=255u8 {
            let _ = io.eoi(vector);
        }
    }
}

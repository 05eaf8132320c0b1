//! The xAPIC face of [`LocalApic`]: the 4 KiB MMIO register page at IA32_APIC_BASE (Intel SDM
//! Vol. 3A §11.4.1, Table 11-1), and IA32_APIC_BASE itself with the mode transitions of
//! §11.12.5 (its state-transition figure: disabled, xAPIC, x2APIC). Same model, same state: the mode only
//! decides which interface reaches it and how a few registers look.
//!
//! # How a backend drives it
//!
//! - IA32_APIC_BASE (MSR 0x1b): `rdmsr` answers [`LocalApic::apic_base`]; `wrmsr` goes to
//!   [`LocalApic::apic_base_write`], whose `Err` is #GP(0) (nothing changed).
//! - Guest accesses to the page at [`APIC_BASE_DEFAULT`] go to [`LocalApic::read_mmio`] /
//!   [`LocalApic::write_mmio`] with the offset into the page. They never fault, as on
//!   hardware: an MMIO access has no #GP to give. While the APIC is not in xAPIC mode
//!   ([`LocalApic::decodes_mmio`] is false) the page reads as the empty bus would (all ones,
//!   this project's empty-bus value: §11.12.1.2 says the MMIO interface then behaves as a
//!   globally disabled xAPIC's, whose page is not decoded), and writes go nowhere; a backend
//!   may equally route the page to its own empty bus itself.
//! - IPIs: route with [`Ipi::reaches_apic`], which knows xAPIC logical destinations (they
//!   depend on each target's LDR and DFR, not its ID).
//! - A vCPU starts as [`LocalApic::new_xapic`] (xAPIC mode, as after RESET, §11.12.5.1) or
//!   [`LocalApic::new`] (x2APIC mode, as the BIOS leaves an x2APIC system); the boot vCPU
//!   adds [`LocalApic::with_bsp`].
//!
//! # Choices where the SDM leaves room
//!
//! - **Access sizes** (§11.4.1: "All registers must be accessed using 128-bit aligned 32-bit
//!   loads or stores"; narrower ones are model-specific). Reads of 1, 2 or 4 bytes lying
//!   wholly within a register's first dword (offset bits 3:0 plus size at most 4) return
//!   those bytes of it; any other read (sizes 0, 3, 5-8, straddling bytes 3/4, or bytes 4-15
//!   of a slot) returns 0 and changes nothing. Only a 4-byte write at a slot's start (offset
//!   bits 3:0 zero) does anything; every other write is ignored. KVM does the same.
//! - **Reserved registers** (the slots Table 11-1 lists as reserved, SELF IPI's 0x3f0, and
//!   everything from 0x400 on) read 0 and ignore writes. An aligned 32-bit access to one
//!   records ESR bit 7, illegal register address (§11.5.3), as QEMU does; malformed accesses
//!   record nothing. APR (0x90) and RRD (0xc0), P6-era registers, and the write-only EOI read
//!   0 without an error (as in KVM). Offsets outside the page read 0 and are ignored.
//! - **Reserved bits** in a write are dropped, read-only bits ignored, and the rest taken
//!   (the x2APIC interface raises #GP instead): TPR bits 31:8, SVR bits 10-11 and 12 (EOI
//!   broadcast suppression is not offered, see the module comment) and 13-31, LVT bits per
//!   entry (so timer mode 10b without TSC-deadline support is one-shot, as in KVM), divide
//!   bits 2 and 31:4, LDR bits 23:0, ICR_HIGH bits 23:0, ICR_LOW bits 13, 16-17 and 20-31. A
//!   timer LVT write that would leave reserved mode 11b is ignored as a whole.
//! - **ID** (0x20): read-only here (writable on some implementations; Linux never writes
//!   it), the 8-bit APIC ID in bits 31:24. xAPIC mode is only offered to an APIC whose ID
//!   fits in 8 bits ([`LocalApic::new_xapic`] takes a `u8`; `set_mode` refuses otherwise).
//! - **LDR** (0xd0) holds bits 31:24 and resets to 0; **DFR** (0xe0) holds bits 31:28, reads
//!   ones in 27:0, and resets to flat (all ones). A model other than flat (1111b) or cluster
//!   (0000b) matches no logical destination (as in KVM). Logical matching (§11.6.2.2): flat,
//!   any common bit of the MDA and the LDR's 8 bits; cluster, equal cluster nibbles (7:4) and
//!   a common member bit (3:0). An MDA of 0xff reaches every enabled APIC in either model.
//! - **ESR** (0x280): a write of any value latches the errors and re-arms (the x2APIC
//!   interface requires 0).
//! - **EOI** (0xb0): a write of any value is an EOI.
//! - **ICR**: ICR_HIGH (0x310) only holds the destination; writing ICR_LOW (0x300) sends
//!   with the destination ICR_HIGH holds then. Delivery is instant, so the delivery-status
//!   bit 12 always reads 0. Lowest-priority delivery is legal here
//!   ([`Delivery::LowestPriority`]: the backend picks one target); everything else is decoded
//!   as in x2APIC mode (INIT de-assert sends nothing, reserved modes send nothing, illegal
//!   vectors set ESR bit 5).
//! - **Mode transitions** (§11.12.5.1): xAPIC to x2APIC keeps the state (the
//!   LDR becomes the one derived from the ID, the DFR is gone, the ICR keeps its 64 bits);
//!   x2APIC to xAPIC and disabled to x2APIC are #GP; entering the disabled state resets
//!   everything but the ID as INIT does (and the xAPIC LDR/DFR), so it is re-enabled into the
//!   power-up state. A disabled APIC takes no interrupts, is reached by no IPI, and passes
//!   LINT0/LINT1 through as INTR/NMI. EXTD set with EN clear is #GP.
//! - **IA32_APIC_BASE**: bits 7:0 and 9 reserved (#GP). The BSP flag is fixed at
//!   construction and a write's bit 8 is ignored (so Linux's read-modify-write works either
//!   way). Only the default base 0xfee00000 is offered: a write naming another base is
//!   #GP ([`ApicFault::NotOffered`]), even one that disables the APIC. Linux never relocates
//!   the page.

use super::ipi::{self, Destination};
use super::registers::*;
use super::{ApicFault, Effect, Ipi, LocalApic, Lvt};

/// The APIC's mode, IA32_APIC_BASE's EN (bit 11) and EXTD (bit 10) (§11.12.5, Table 11-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// EN = 0, EXTD = 0: globally disabled (§11.4.3).
    Disabled,
    /// EN = 1, EXTD = 0: the MMIO page.
    XApic,
    /// EN = 1, EXTD = 1: the MSRs.
    X2Apic,
}

/// What the empty bus reads for an access of `size` bytes (the low `size` bytes all ones).
fn empty_bus(size: u8) -> u32 {
    match size {
        0 => 0,
        1..=3 => (1u32 << (8 * u32::from(size))) - 1,
        _ => u32::MAX,
    }
}

/// Whether xAPIC logical destination `mda` matches a target with this LDR and DFR (§11.6.2.2).
fn logical_match(mda: u8, ldr: u32, dfr: u32) -> bool {
    let logical = (ldr >> 24) as u8;
    match dfr {
        DFR_FLAT => logical & mda != 0,
        DFR_CLUSTER => logical >> 4 == mda >> 4 && logical & mda & 0xf != 0,
        _ => false,
    }
}

impl LocalApic {
    /// The local APIC of the vCPU with APIC ID `apic_id` in xAPIC mode, as after RESET
    /// (§11.4.7.1, §11.12.5.1: EN set, EXTD clear): software-disabled, every LVT masked, LDR
    /// 0, DFR flat. Its timer counts at `timer_hz`; see the module comment.
    pub fn new_xapic(apic_id: u8, timer_hz: u64) -> Self {
        Self {
            mode: Mode::XApic,
            ..Self::new(u32::from(apic_id), timer_hz)
        }
    }

    /// Sets IA32_APIC_BASE's BSP flag (bit 8): the boot vCPU's.
    pub fn with_bsp(mut self, bsp: bool) -> Self {
        self.bsp = bsp;
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the MMIO page is this APIC's: only in xAPIC mode.
    pub fn decodes_mmio(&self) -> bool {
        self.mode == Mode::XApic
    }

    /// The xAPIC DFR (meaningful in xAPIC mode only).
    pub fn dfr(&self) -> u32 {
        self.dfr
    }

    /// The guest's RDMSR of IA32_APIC_BASE.
    pub fn apic_base(&self) -> u64 {
        let mode = match self.mode {
            Mode::Disabled => 0,
            Mode::XApic => APIC_BASE_EN,
            Mode::X2Apic => APIC_BASE_EN | APIC_BASE_EXTD,
        };
        let bsp = if self.bsp { APIC_BASE_BSP } else { 0 };
        APIC_BASE_DEFAULT | mode | bsp
    }

    /// The guest's WRMSR of IA32_APIC_BASE: checked, then the mode transition it asks for
    /// ([`LocalApic::set_mode`]). `Err` is #GP(0), and nothing changes.
    pub fn apic_base_write(&mut self, value: u64) -> Result<(), ApicFault> {
        if value & APIC_BASE_RESERVED != 0 {
            return Err(ApicFault::Reserved);
        }
        if value & APIC_BASE_ADDRESS != APIC_BASE_DEFAULT {
            return Err(ApicFault::NotOffered);
        }
        let mode = match (value & APIC_BASE_EN != 0, value & APIC_BASE_EXTD != 0) {
            (false, false) => Mode::Disabled,
            (true, false) => Mode::XApic,
            (true, true) => Mode::X2Apic,
            (false, true) => return Err(ApicFault::Reserved), // invalid (Table 11-5)
        };
        self.set_mode(mode)
    }

    /// Moves to `mode` as IA32_APIC_BASE would (§11.12.5.1): staying is a no-op; xAPIC to
    /// x2APIC keeps the state; any mode to disabled resets it (everything but the ID, as INIT
    /// does); disabled to xAPIC enables that reset state. x2APIC to xAPIC and disabled to
    /// x2APIC are illegal ([`ApicFault::IllegalTransition`]); xAPIC mode for an ID above 0xff
    /// is not offered. `Err` changes nothing.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), ApicFault> {
        match (self.mode, mode) {
            (from, to) if from == to => {}
            (Mode::X2Apic, Mode::XApic) | (Mode::Disabled, Mode::X2Apic) => {
                return Err(ApicFault::IllegalTransition)
            }
            (_, Mode::XApic) if self.id > 0xff => return Err(ApicFault::NotOffered),
            (_, Mode::Disabled) => {
                *self = Self {
                    tsc: self.tsc,
                    bsp: self.bsp,
                    mode: Mode::Disabled,
                    ..Self::new(self.id, self.timer.hz())
                };
            }
            (_, to) => self.mode = to,
        }
        Ok(())
    }

    /// The guest reads `size` bytes at `offset` into the MMIO page at `now_ns`. Never faults:
    /// reserved and unknown registers read 0, malformed accesses read 0, and outside xAPIC
    /// mode the page reads as the empty bus (all ones in `size` bytes). See the module comment
    /// for which sizes and alignments return data.
    pub fn read_mmio(&mut self, offset: u64, size: u8, now_ns: u64) -> u32 {
        if self.mode != Mode::XApic {
            return empty_bus(size);
        }
        let within = offset & 0xf;
        if offset >= XAPIC_PAGE_SIZE || !matches!(size, 1 | 2 | 4) || within + u64::from(size) > 4 {
            return 0;
        }
        self.poll_timer(now_ns);
        let Some(value) = self.xapic_read(offset & !0xf, now_ns) else {
            if size == 4 {
                self.record_error(ESR_ILLEGAL_REGISTER);
            }
            return 0;
        };
        let value = value >> (8 * within);
        match size {
            1 => value & 0xff,
            2 => value & 0xffff,
            _ => value,
        }
    }

    /// The guest writes `value` (`size` bytes) at `offset` into the MMIO page at `now_ns`.
    /// Never faults: only an aligned 4-byte write to a register's first dword does anything;
    /// reserved registers, read-only registers and reserved bits ignore what is written, and
    /// outside xAPIC mode the write goes nowhere. The [`Effect`] is the backend's to carry
    /// out, as for `write_msr`; ask for the timer deadline again afterwards.
    pub fn write_mmio(&mut self, offset: u64, size: u8, value: u32, now_ns: u64) -> Effect {
        if self.mode != Mode::XApic || offset >= XAPIC_PAGE_SIZE || size != 4 || offset & 0xf != 0 {
            return Effect::None;
        }
        self.poll_timer(now_ns);
        let effect = match self.xapic_write(offset, value, now_ns) {
            Some(effect) => effect,
            None => {
                self.record_error(ESR_ILLEGAL_REGISTER);
                Effect::None
            }
        };
        // A change of timer mode or count may be due at once.
        self.poll_timer(now_ns);
        effect
    }

    /// The register in the slot at `slot` (16-byte aligned), or `None` if reserved.
    fn xapic_read(&mut self, slot: u64, now_ns: u64) -> Option<u32> {
        let index = |base: u64| ((slot - base) >> 4) as usize;
        Some(match slot {
            XAPIC_ID => self.id << XAPIC_ID_SHIFT,
            XAPIC_VERSION => VERSION_VALUE,
            XAPIC_TPR => u32::from(self.tpr),
            XAPIC_APR | XAPIC_EOI | XAPIC_RRD => 0,
            XAPIC_PPR => u32::from(self.ppr()),
            XAPIC_LDR => self.xapic_ldr,
            XAPIC_DFR => self.dfr,
            XAPIC_SVR => self.svr,
            0x100..=0x170 => self.isr[index(XAPIC_ISR0)],
            0x180..=0x1f0 => self.tmr[index(XAPIC_TMR0)],
            0x200..=0x270 => self.irr[index(XAPIC_IRR0)],
            XAPIC_ESR => self.esr,
            XAPIC_ICR_LOW => self.icr as u32,
            XAPIC_ICR_HIGH => (self.icr >> 32) as u32,
            XAPIC_TIMER_INITIAL_COUNT => self.timer.initial_count(),
            XAPIC_TIMER_CURRENT_COUNT if self.tsc_deadline_mode() => 0,
            XAPIC_TIMER_CURRENT_COUNT => self.timer.current_count(now_ns, self.periodic()),
            XAPIC_TIMER_DIVIDE => self.timer.divide_register(),
            _ => self.lvt(xapic_lvt(slot)?),
        })
    }

    /// Writes the register at `slot`; `None` if the slot is reserved.
    fn xapic_write(&mut self, slot: u64, value: u32, now_ns: u64) -> Option<Effect> {
        match slot {
            XAPIC_ID
            | XAPIC_VERSION
            | XAPIC_APR
            | XAPIC_PPR
            | XAPIC_RRD
            | 0x100..=0x270
            | XAPIC_TIMER_CURRENT_COUNT => {} // read-only
            XAPIC_TPR => self.tpr = value as u8,
            XAPIC_EOI => return Some(self.end_of_interrupt()),
            XAPIC_LDR => self.xapic_ldr = value & XAPIC_LDR_MASK,
            XAPIC_DFR => self.dfr = value | !DFR_MODEL,
            XAPIC_SVR => {
                // Cannot fail once the reserved bits are gone.
                let _ = self.write_svr(value & SVR_MASK);
            }
            XAPIC_ESR => {
                self.esr = core::mem::take(&mut self.errors);
                self.error_armed = true;
            }
            XAPIC_ICR_LOW => {
                let high = self.icr & !u64::from(u32::MAX);
                self.icr = high | u64::from(value & XAPIC_ICR_LOW_WRITABLE);
                let decoded = ipi::decode_xapic(self.icr, self.id);
                return Some(self.send(decoded));
            }
            XAPIC_ICR_HIGH => {
                let low = self.icr & u64::from(u32::MAX);
                self.icr = low | (u64::from(value & XAPIC_ICR_DEST_MASK) << 32);
            }
            XAPIC_TIMER_INITIAL_COUNT => {
                // §11.5.4.1: ignored in TSC-deadline mode.
                if !self.tsc_deadline_mode() {
                    self.timer.start(value, now_ns);
                }
            }
            XAPIC_TIMER_DIVIDE => {
                let periodic = self.periodic();
                self.timer.set_divide(value & DIVIDE_MASK, now_ns, periodic);
            }
            _ => {
                let lvt = xapic_lvt(slot)?;
                let bits = super::lvt_bits(lvt, self.tsc.is_some());
                let value = value & (bits.writable | bits.read_only);
                if lvt != Lvt::Timer || value & LVT_TIMER_MODE != LVT_TIMER_MODE {
                    // Cannot fail: no reserved bits left, and not timer mode 11b.
                    let _ = self.write_lvt(lvt, value);
                }
            }
        }
        Some(Effect::None)
    }
}

/// The LVT entry in the slot at `slot`: the same one as MSR 0x800 + `slot >> 4`.
fn xapic_lvt(slot: u64) -> Option<Lvt> {
    Lvt::from_msr(MSR_FIRST + u32::try_from(slot >> 4).ok()?)
}

impl Ipi {
    /// Whether `apic` is a target: [`Ipi::reaches`] with the target's own registers where
    /// the destination needs them (xAPIC logical mode: its LDR and DFR, §11.6.2.2). A
    /// globally disabled APIC is reached by nothing. The backend delivers the IPI to every
    /// local APIC (the sender's included) for which this holds.
    ///
    /// Mixing modes between sender and target is not architectural (every APIC should be in
    /// the same mode); such IPIs are answered by `reaches(id)`, and an xAPIC logical one by
    /// its broadcast only.
    pub fn reaches_apic(&self, apic: &LocalApic) -> bool {
        match (self.destination, apic.mode) {
            (_, Mode::Disabled) => false,
            (Destination::XApicLogical(mda), Mode::XApic) => {
                mda == XAPIC_BROADCAST || logical_match(mda, apic.xapic_ldr, apic.dfr)
            }
            _ => self.reaches(apic.id),
        }
    }
}

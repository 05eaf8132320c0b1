//! A local APIC in x2APIC mode as a guest sees it (Intel SDM Vol. 3A, chapter 11 "Advanced
//! Programmable Interrupt Controller"; chapter 10 in editions before 2023, same sections): its
//! registers as MSRs 0x800-0x8ff (§11.12.1.2, Table 11-6), interrupt acceptance and priority
//! (§11.8), interprocessor interrupts (§11.6, §11.12.9), and the timer (§11.5.4), including
//! TSC-deadline mode when the backend says how the guest's TSC runs.
//!
//! # How a backend drives it
//!
//! One `LocalApic` per guest vCPU. Time is the backend's clock in nanoseconds (`now_ns`); the
//! model never reads a clock and never counts, so it costs nothing between calls.
//!
//! - The guest's `rdmsr`/`wrmsr` of 0x800-0x8ff (and 0x6e0 when TSC-deadline mode is offered)
//!   go to [`LocalApic::read_msr`] / [`LocalApic::write_msr`]. `Err(ApicFault)` means the
//!   hardware raises #GP(0): inject it and do not advance RIP. A write's [`Effect`] is what
//!   the backend must carry out: send an IPI to every local APIC [`Ipi::reaches`] (the
//!   sender's own included, through the same path), or tell the I/O APIC(s) about the EOI of
//!   a level-triggered vector.
//! - Interrupts arriving from elsewhere (an IPI's fixed vector, the I/O APIC, MSIs) go to
//!   [`LocalApic::accept`] or [`LocalApic::accept_level`]; NMI, INIT, SMI and SIPI are the
//!   backend's (INIT calls [`LocalApic::init_reset`]). LINT0/LINT1 go through
//!   [`LocalApic::raise_lint`], which says how the LVT delivers them.
//! - Before entering the guest: [`LocalApic::next_interrupt`] with the guest's RFLAGS.IF
//!   gives the vector to inject (through the VMCB's EVENTINJ); the backend then calls
//!   [`LocalApic::acknowledge`] with it, which moves it from IRR to ISR. If the injection does
//!   not complete (EXITINTINFO valid), the backend re-injects that event itself, without
//!   acknowledging again. Interrupt shadows (STI, MOV SS) are the backend's to honour.
//! - Time: [`LocalApic::poll_timer`] on each of the backend's ticks and wake-ups raises an
//!   expired timer; [`LocalApic::next_deadline_ns`] says when to wake a halted vCPU. Every
//!   `read_msr`/`write_msr` polls first, so what the guest reads is current, and the deadline
//!   can change with any write: ask again after one.
//! - CR8 is the TPR's bits 7:4 (§11.8.6): [`LocalApic::tpr`] / [`LocalApic::set_tpr`].
//!
//! A `LocalApic` is plain data: a backend with several vCPUs keeps each behind a lock, since
//! other vCPUs' IPIs (and device interrupts) `accept` into it. No spurious-vector interrupt
//! (§11.9) ever arises: the backend acknowledges the very vector it injects, so an interrupt
//! cannot be withdrawn between the two; the SVR's vector is only kept for the guest to read.
//!
//! # The timer clock
//!
//! The timer counts at `timer_hz` (the "bus" or core crystal clock) divided by the divide
//! configuration. Linux normally calibrates the APIC timer against another clock (the TSC
//! when its rate is known, else the PIT or the ACPI PM timer: `calibrate_APIC_clock`), so
//! `timer_hz` only has to be consistent. The exception: an Intel-vendor guest given the core
//! crystal frequency in CPUID leaf 0x15 takes it as the APIC timer's (`lapic_timer_period`
//! in `native_calibrate_tsc`), so then leaf 0x15 must name this value.
//!
//! # TSC-deadline mode
//!
//! Offered only when the backend gives the guest-TSC relation ([`LocalApic::with_tsc_deadline`]).
//! Without it, LVT timer mode 10b is a reserved bit (#GP), IA32_TSC_DEADLINE (0x6e0) is not
//! this model's (`read_msr`/`write_msr` answer `NoRegister`, and the MSR policy answers #GP),
//! and **CPUID.01H:ECX[24] (TSC_DEADLINE) must be clear**. With it, set that bit. Linux
//! prefers the deadline timer and then needs no APIC timer calibration, and no PIT at all if
//! it also knows the TSC rate and sees CPUID.06H:EAX[2] (ARAT, the APIC timer always runs;
//! set it either way, or Linux treats the APIC timer as stopping in deep C-states).
//!
//! # Choices where the SDM leaves room
//!
//! - **Reserved bits** (§11.12.1.3): a write with a reserved bit set raises #GP, as the SDM
//!   says (KVM masks them off silently in TPR, SVR, the LVTs and the divide register).
//!   Read-only bits of a writable register — LVT delivery status and remote IRR — are ignored
//!   instead: Linux writes them back into LINT0/LINT1 on its way to power-off
//!   (`disconnect_bsp_APIC`). ICR bit 12 is ignored too (Intel's behaviour; AMD raises #GP).
//! - **Software disable** (SVR bit 8 clear, §11.4.7.2): LVT masks are forced on and stay on,
//!   fixed interrupts arriving are dropped (as KVM does), and vectors already in IRR are still
//!   delivered ("held and require handling by the CPU").
//! - **Vectors 0-15** (§11.5.2, §11.5.3): never enter the IRR. Received (`accept`, or raised
//!   by an LVT entry): ESR bit 6. Sent through the ICR with fixed delivery: ESR bit 5, and
//!   nothing is sent. Through SELF IPI: both, since the SDM names self IPIs under bit 6.
//! - **The error interrupt** fires when an error is recorded while armed; an ESR write re-arms
//!   it (§11.5.3: "this write also rearms the APIC error interrupt triggering mechanism").
//! - **ICR** (Figure 11-28): lowest-priority delivery is reserved for x2APIC IPIs and sets
//!   ESR's redirectable-IPI bit; the reserved modes send nothing. Trigger mode and level do
//!   not matter (§11.6.1: Pentium 4 and later issue the level bit as 1 and level-triggered
//!   IPIs as edge-triggered), except that INIT level de-assert, which those processors do not
//!   support and Linux sends after every INIT, sends nothing (as in KVM). Combinations the
//!   SDM's ICR table calls invalid (an NMI to all including self, which Linux sends) are
//!   passed on as asked. The ICR reads back the last value written, bit 12 clear.
//! - **The timer**: an expiry while the timer LVT is masked is lost, not held. Several
//!   periods missed between polls raise one interrupt (the IRR holds one per vector). A
//!   change between one-shot and periodic keeps the count running; a change into or out of
//!   TSC-deadline mode disarms the timer (§11.5.4.1). A divide change mid-count carries the
//!   remaining count on at the new rate. Mode 11b is reserved: #GP.
//! - **EOI-broadcast suppression** is not offered (version bit 24 clear, SVR bit 12 reserved):
//!   it obliges the I/O APIC to have an EOI register, and Linux does not use it. An EOI of a
//!   vector whose TMR bit is set yields [`Effect::EoiBroadcast`].
//! - **LINT0/LINT1** are edge-triggered here: remote IRR stays 0.
//! - **IA32_APIC_BASE and xAPIC mode** are in `xapic.rs` ([`LocalApic::apic_base`],
//!   [`LocalApic::apic_base_write`], [`LocalApic::set_mode`], [`LocalApic::read_mmio`],
//!   [`LocalApic::write_mmio`]): the same model seen through the MMIO page, with the
//!   disabled/xAPIC/x2APIC transitions of §11.12.5. [`LocalApic::new`] starts in x2APIC mode
//!   and [`LocalApic::new_xapic`] in xAPIC mode. Outside x2APIC mode the x2APIC MSRs raise #GP
//!   ([`ApicFault::NotX2Apic`]). Linux keeps (or enters) x2APIC mode only with interrupt
//!   remapping, with `x86_init.hyper.x2apic_available()` (a hypervisor it recognises by its
//!   CPUID leaves), or with the x2APIC locked (CPUID.07H:EDX[29], IA32_ARCH_CAPABILITIES bit
//!   21, MSR 0xbd bit 0); otherwise it leaves x2APIC mode through the disabled state
//!   (`__x2apic_disable`) and drives the MMIO page. See `try_to_enable_x2apic` and
//!   `x2apic_hw_locked` in arch/x86/kernel/apic/apic.c.

mod ipi;
mod registers;
mod timer;
mod xapic;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod xapic_tests;

pub use ipi::{logical_id, Delivery, Destination, Ipi, BROADCAST};
pub use registers::*;
pub use timer::GuestTsc;
pub use xapic::Mode;

use ipi::NotSent;
use timer::Timer;

/// Why an access raises #GP(0) (Table 11-6, §11.12.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicFault {
    /// No register at this MSR in x2APIC mode (reserved in Table 11-6, xAPIC-only such as
    /// DFR, or 0x6e0 while TSC-deadline mode is not offered).
    NoRegister,
    /// A write to a read-only register.
    ReadOnly,
    /// A read of a write-only register (EOI, SELF IPI).
    WriteOnly,
    /// A write with reserved bits set, a non-zero write to EOI or ESR, or reserved timer
    /// mode 11b; an IA32_APIC_BASE write with reserved bits set, or with EXTD set and EN
    /// clear (§11.12.5).
    Reserved,
    /// An x2APIC MSR (0x800-0x8ff) while the APIC is not in x2APIC mode (§11.12.1.2: "#GP
    /// ... if the local APIC is not in x2APIC mode").
    NotX2Apic,
    /// An IA32_APIC_BASE write asking for a transition §11.12.5.1 calls
    /// illegal: x2APIC to xAPIC, or disabled to x2APIC (the state-transition figure there).
    IllegalTransition,
    /// An IA32_APIC_BASE write this model does not offer: a base other than
    /// `APIC_BASE_DEFAULT`, or xAPIC mode for an APIC whose ID does not fit in 8 bits.
    NotOffered,
}

/// What a register write asks of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Effect {
    None,
    /// Deliver this IPI to every local APIC it [`Ipi::reaches`].
    SendIpi(Ipi),
    /// The EOI of a level-triggered interrupt: I/O APIC entries with this vector clear their
    /// remote IRR (§11.8.5).
    EoiBroadcast(u8),
}

/// The local vector table, in the order of `LocalApic::lvt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lvt {
    Cmci,
    Timer,
    Thermal,
    Performance,
    Lint0,
    Lint1,
    Error,
}

impl Lvt {
    fn from_msr(msr: u32) -> Option<Self> {
        Some(match msr {
            LVT_CMCI => Lvt::Cmci,
            LVT_TIMER => Lvt::Timer,
            LVT_THERMAL => Lvt::Thermal,
            LVT_PERF => Lvt::Performance,
            LVT_LINT0 => Lvt::Lint0,
            LVT_LINT1 => Lvt::Lint1,
            LVT_ERROR => Lvt::Error,
            _ => return None,
        })
    }
}

/// How an asserted LINT0/LINT1 is delivered, as its LVT entry says (§11.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LintDelivery {
    /// Masked, a reserved delivery mode, or fixed (then already in the IRR, or refused as an
    /// illegal vector): nothing for the backend.
    None,
    Nmi,
    Smi,
    Init,
    /// ExtINT: the external controller (8259 PIC) supplies the vector; the backend asks it and
    /// injects that vector, bypassing IRR/ISR.
    ExtInt,
}

/// Bits a write keeps in each LVT entry (Figure 11-8). Reserved bits outside `writable`
/// raise #GP; the read-only ones are ignored.
struct LvtBits {
    writable: u32,
    read_only: u32,
}

fn lvt_bits(lvt: Lvt, tsc_deadline: bool) -> LvtBits {
    let common = LVT_VECTOR | LVT_MASKED;
    let writable = match lvt {
        Lvt::Timer if tsc_deadline => common | LVT_TIMER_MODE,
        Lvt::Timer => common | LVT_TIMER_PERIODIC,
        Lvt::Cmci | Lvt::Thermal | Lvt::Performance => common | LVT_DELIVERY_MODE,
        Lvt::Lint0 | Lvt::Lint1 => common | LVT_DELIVERY_MODE | LVT_POLARITY | LVT_LEVEL_TRIGGERED,
        Lvt::Error => common,
    };
    let read_only = match lvt {
        Lvt::Lint0 | Lvt::Lint1 => LVT_DELIVERY_STATUS | LVT_REMOTE_IRR,
        _ => LVT_DELIVERY_STATUS,
    };
    LvtBits {
        writable,
        read_only,
    }
}

/// The highest vector set in a 256-bit register.
fn highest(bits: &[u32; 8]) -> Option<u8> {
    let (index, word) = bits.iter().enumerate().rev().find(|(_, w)| **w != 0)?;
    Some((index * 32 + 31 - word.leading_zeros() as usize) as u8)
}

fn test_bit(bits: &[u32; 8], vector: u8) -> bool {
    bits[usize::from(vector >> 5)] & (1 << (vector & 31)) != 0
}

fn set_bit(bits: &mut [u32; 8], vector: u8, value: bool) {
    let word = &mut bits[usize::from(vector >> 5)];
    if value {
        *word |= 1 << (vector & 31);
    } else {
        *word &= !(1 << (vector & 31));
    }
}

/// The low 32 bits of an MSR value whose high 32 are reserved (all but the ICR, §11.12.1.2).
fn low32(value: u64) -> Result<u32, ApicFault> {
    u32::try_from(value).map_err(|_| ApicFault::Reserved)
}

#[derive(Clone, Debug)]
pub struct LocalApic {
    id: u32,
    tpr: u8,
    svr: u32,
    isr: [u32; 8],
    tmr: [u32; 8],
    irr: [u32; 8],
    /// ESR as software reads it: the errors latched by the last ESR write.
    esr: u32,
    /// Errors recorded since the last ESR write.
    errors: u32,
    /// An error may raise the error interrupt (re-armed by an ESR write).
    error_armed: bool,
    lvt: [u32; LVT_COUNT],
    /// x2APIC layout: the vector etc. in bits 31:0, the destination in 63:32. In xAPIC mode
    /// bits 31:0 are ICR_LOW and 63:32 ICR_HIGH (destination in 63:56).
    icr: u64,
    timer: Timer,
    tsc: Option<GuestTsc>,
    /// IA32_APIC_BASE's EN and EXTD (§11.12.5).
    mode: Mode,
    /// IA32_APIC_BASE's BSP flag: fixed at construction.
    bsp: bool,
    /// xAPIC mode's LDR (logical ID in bits 31:24) and DFR (model in bits 31:28, the rest
    /// ones); unused in x2APIC mode, where the LDR derives from the ID and there is no DFR.
    xapic_ldr: u32,
    dfr: u32,
}

impl LocalApic {
    /// The local APIC of the vCPU with x2APIC ID `apic_id` in x2APIC mode (IA32_APIC_BASE EN
    /// and EXTD set, BSP clear), its registers as after power-up (§11.4.7.1):
    /// software-disabled, every LVT entry masked. Its timer counts at `timer_hz` (0 is taken
    /// as 1) before the divider; see the module comment.
    pub fn new(apic_id: u32, timer_hz: u64) -> Self {
        Self {
            id: apic_id,
            tpr: 0,
            svr: SVR_RESET,
            isr: [0; 8],
            tmr: [0; 8],
            irr: [0; 8],
            esr: 0,
            errors: 0,
            error_armed: true,
            lvt: [LVT_RESET; LVT_COUNT],
            icr: 0,
            timer: Timer::new(timer_hz),
            tsc: None,
            mode: Mode::X2Apic,
            bsp: false,
            xapic_ldr: 0,
            dfr: DFR_RESET,
        }
    }

    /// Offers TSC-deadline mode, with the guest's TSC running as `tsc` says.
    pub fn with_tsc_deadline(mut self, tsc: GuestTsc) -> Self {
        self.tsc = Some(tsc);
        self
    }

    /// Whether TSC-deadline mode is offered: CPUID.01H:ECX[24] must say the same.
    pub fn offers_tsc_deadline(&self) -> bool {
        self.tsc.is_some()
    }

    /// INIT (§11.4.7.3): everything back to the power-up state except the ID (and, in x2APIC
    /// mode, the LDR derived from it); IA32_APIC_BASE is unchanged, so the mode stays
    /// (§11.12.5.1). In xAPIC mode the LDR goes back to 0 and the DFR to all ones.
    pub fn init_reset(&mut self) {
        *self = Self {
            tsc: self.tsc,
            mode: self.mode,
            bsp: self.bsp,
            ..Self::new(self.id, self.timer.hz())
        };
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The LDR: read-only in x2APIC mode, derived from the ID (§11.12.10.2); in xAPIC mode
    /// the register software wrote (logical ID in bits 31:24, §11.6.2.2); 0 while disabled.
    pub fn ldr(&self) -> u32 {
        match self.mode {
            Mode::X2Apic => logical_id(self.id),
            Mode::XApic => self.xapic_ldr,
            Mode::Disabled => 0,
        }
    }

    pub fn software_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    pub fn tpr(&self) -> u8 {
        self.tpr
    }

    /// Sets the TPR, as a guest's MOV to CR8 does with `cr8 << 4` (§11.8.6).
    pub fn set_tpr(&mut self, tpr: u8) {
        self.tpr = tpr;
    }

    /// PPR (§11.8.3.1): the TPR if its class is at least that of the highest vector in
    /// service; else that vector's class, with sub-class 0.
    pub fn ppr(&self) -> u8 {
        let isrv = highest(&self.isr).unwrap_or(0);
        if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xf0
        }
    }

    pub fn lvt(&self, lvt: Lvt) -> u32 {
        self.lvt[lvt as usize]
    }

    fn lvt_masked(&self, lvt: Lvt) -> bool {
        self.lvt(lvt) & LVT_MASKED != 0
    }

    fn timer_mode(&self) -> u32 {
        self.lvt(Lvt::Timer) & LVT_TIMER_MODE
    }

    fn periodic(&self) -> bool {
        self.timer_mode() == LVT_TIMER_PERIODIC
    }

    fn tsc_deadline_mode(&self) -> bool {
        self.timer_mode() == LVT_TIMER_TSC_DEADLINE
    }

    /// An edge-triggered fixed interrupt arrives with `vector` (§11.8.4): into the IRR, its
    /// TMR bit cleared. Returns whether it was taken: vectors 0-15 are refused with ESR's
    /// receive-illegal-vector bit (§11.5.2), and a software-disabled APIC drops it.
    pub fn accept(&mut self, vector: u8) -> bool {
        self.accept_with_trigger(vector, false)
    }

    /// A level-triggered fixed interrupt arrives (from the I/O APIC): as `accept`, with its
    /// TMR bit set, so that its EOI is broadcast (§11.8.4, §11.8.5).
    pub fn accept_level(&mut self, vector: u8) -> bool {
        self.accept_with_trigger(vector, true)
    }

    fn accept_with_trigger(&mut self, vector: u8, level: bool) -> bool {
        if self.mode == Mode::Disabled {
            return false; // no APIC on the bus (§11.4.3)
        }
        if vector < 16 {
            self.record_error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return false;
        }
        if !self.software_enabled() {
            return false;
        }
        set_bit(&mut self.irr, vector, true);
        set_bit(&mut self.tmr, vector, level);
        true
    }

    /// Whether a vector is pending in the IRR.
    pub fn irr_pending(&self, vector: u8) -> bool {
        test_bit(&self.irr, vector)
    }

    /// Whether a vector is in service.
    pub fn in_service(&self, vector: u8) -> bool {
        test_bit(&self.isr, vector)
    }

    /// The interrupt to inject now, if any: the highest vector in the IRR whose priority
    /// class (bits 7:4) is above the PPR's (§11.8.3.1), if the guest has RFLAGS.IF set.
    pub fn next_interrupt(&self, rflags_if: bool) -> Option<u8> {
        if !rflags_if {
            return None;
        }
        let vector = highest(&self.irr)?;
        (vector >> 4 > self.ppr() >> 4).then_some(vector)
    }

    /// The processor takes `vector` (the backend injected it): IRR to ISR (§11.8.4). Returns
    /// false, changing nothing, if it was not pending.
    pub fn acknowledge(&mut self, vector: u8) -> bool {
        if !test_bit(&self.irr, vector) {
            return false;
        }
        set_bit(&mut self.irr, vector, false);
        set_bit(&mut self.isr, vector, true);
        true
    }

    /// EOI (§11.8.5): the highest vector in service completes. Without one in service, nothing
    /// happens.
    fn end_of_interrupt(&mut self) -> Effect {
        let Some(vector) = highest(&self.isr) else {
            return Effect::None;
        };
        set_bit(&mut self.isr, vector, false);
        if test_bit(&self.tmr, vector) {
            Effect::EoiBroadcast(vector)
        } else {
            Effect::None
        }
    }

    /// Records errors in the ESR-to-be, raising the error interrupt if armed (§11.5.3).
    fn record_error(&mut self, bits: u32) {
        self.errors |= bits;
        if !self.error_armed || self.lvt_masked(Lvt::Error) {
            return;
        }
        self.error_armed = false;
        let vector = self.lvt(Lvt::Error) as u8;
        if vector < 16 {
            // An illegal error vector: one more error, and no interrupt (nor another round).
            self.errors |= ESR_RECEIVE_ILLEGAL_VECTOR;
        } else {
            // Unmasked, so software-enabled (§11.4.7.2).
            set_bit(&mut self.irr, vector, true);
            set_bit(&mut self.tmr, vector, false);
        }
    }

    /// An interrupt from an LVT entry with fixed delivery: its vector, unless masked.
    fn raise_local(&mut self, lvt: Lvt) {
        if !self.lvt_masked(lvt) {
            self.accept(self.lvt(lvt) as u8);
        }
    }

    /// LINT0 (`lint1 == false`) or LINT1 asserted: delivered as its LVT entry says.
    ///
    /// While globally disabled (IA32_APIC_BASE.EN clear) the processor behaves as one without
    /// an APIC (§11.4.3), whose LINT0 and LINT1 pins are its INTR and NMI inputs: LINT0 is
    /// `ExtInt` and LINT1 `Nmi`.
    pub fn raise_lint(&mut self, lint1: bool) -> LintDelivery {
        if self.mode == Mode::Disabled {
            return if lint1 {
                LintDelivery::Nmi
            } else {
                LintDelivery::ExtInt
            };
        }
        let lvt = if lint1 { Lvt::Lint1 } else { Lvt::Lint0 };
        let entry = self.lvt(lvt);
        if entry & LVT_MASKED != 0 {
            return LintDelivery::None;
        }
        match (entry & LVT_DELIVERY_MODE) >> 8 {
            DELIVERY_FIXED => {
                self.accept(entry as u8);
                LintDelivery::None
            }
            DELIVERY_SMI => LintDelivery::Smi,
            DELIVERY_NMI => LintDelivery::Nmi,
            DELIVERY_INIT => LintDelivery::Init,
            DELIVERY_EXTINT => LintDelivery::ExtInt,
            _ => LintDelivery::None,
        }
    }

    /// Brings the timer up to `now_ns`: an expired count or deadline raises the timer vector
    /// (unless masked), and a periodic count re-arms.
    pub fn poll_timer(&mut self, now_ns: u64) {
        let expired = if self.tsc_deadline_mode() {
            match self.tsc {
                Some(tsc) => self.timer.poll_tsc_deadline(&tsc, now_ns),
                None => false,
            }
        } else {
            let periodic = self.periodic();
            self.timer.poll_count(now_ns, periodic)
        };
        if expired {
            self.raise_local(Lvt::Timer);
        }
    }

    /// When the timer next raises an interrupt, for the backend to wake the vCPU: `None` while
    /// it is stopped, masked (nothing to raise; any write that unmasks it polls first), or
    /// beyond the clock's range. The time may be in the past: poll then.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        if self.lvt_masked(Lvt::Timer) {
            return None;
        }
        if self.tsc_deadline_mode() {
            self.timer.tsc_deadline_time(self.tsc.as_ref()?)
        } else {
            self.timer.count_deadline()
        }
    }

    /// The guest's RDMSR of `msr` at `now_ns`. Outside x2APIC mode every x2APIC MSR raises
    /// #GP ([`ApicFault::NotX2Apic`]); IA32_TSC_DEADLINE, when offered, works in every mode.
    pub fn read_msr(&mut self, msr: u32, now_ns: u64) -> Result<u64, ApicFault> {
        self.msr_mode_check(msr)?;
        self.poll_timer(now_ns);
        let value = match msr {
            ID => self.id,
            VERSION => VERSION_VALUE,
            TPR => u32::from(self.tpr),
            PPR => u32::from(self.ppr()),
            LDR => self.ldr(),
            SVR => self.svr,
            ISR0..=ISR7 => self.isr[(msr - ISR0) as usize],
            TMR0..=TMR7 => self.tmr[(msr - TMR0) as usize],
            IRR0..=IRR7 => self.irr[(msr - IRR0) as usize],
            ESR => self.esr,
            ICR => return Ok(self.icr),
            TIMER_INITIAL_COUNT => self.timer.initial_count(),
            TIMER_CURRENT_COUNT if self.tsc_deadline_mode() => 0,
            TIMER_CURRENT_COUNT => self.timer.current_count(now_ns, self.periodic()),
            TIMER_DIVIDE => self.timer.divide_register(),
            EOI | SELF_IPI => return Err(ApicFault::WriteOnly),
            IA32_TSC_DEADLINE if self.tsc.is_some() => {
                // §11.5.4.1: reads 0 outside TSC-deadline mode.
                let deadline = self.timer.tsc_deadline();
                return Ok(if self.tsc_deadline_mode() {
                    deadline
                } else {
                    0
                });
            }
            _ => match Lvt::from_msr(msr) {
                Some(lvt) => self.lvt(lvt),
                None => return Err(ApicFault::NoRegister),
            },
        };
        Ok(u64::from(value))
    }

    /// The guest's WRMSR of `value` to `msr` at `now_ns`. A faulting write changes no
    /// register (the timer is still brought up to `now_ns` first, as on any access).
    pub fn write_msr(&mut self, msr: u32, value: u64, now_ns: u64) -> Result<Effect, ApicFault> {
        self.msr_mode_check(msr)?;
        self.poll_timer(now_ns);
        let effect = self.write_register(msr, value, now_ns)?;
        // A deadline written in the past fires at once.
        self.poll_timer(now_ns);
        Ok(effect)
    }

    /// The x2APIC MSRs exist only in x2APIC mode (§11.12.1.2); IA32_TSC_DEADLINE is not one
    /// of them (§11.5.4.1 works in xAPIC mode too).
    fn msr_mode_check(&self, msr: u32) -> Result<(), ApicFault> {
        if self.mode != Mode::X2Apic && (MSR_FIRST..=MSR_LAST).contains(&msr) {
            return Err(ApicFault::NotX2Apic);
        }
        Ok(())
    }

    fn write_register(&mut self, msr: u32, value: u64, now_ns: u64) -> Result<Effect, ApicFault> {
        match msr {
            ID
            | VERSION
            | PPR
            | LDR
            | ISR0..=ISR7
            | TMR0..=TMR7
            | IRR0..=IRR7
            | TIMER_CURRENT_COUNT => return Err(ApicFault::ReadOnly),
            TPR => {
                let value = low32(value)?;
                if value & !TPR_MASK != 0 {
                    return Err(ApicFault::Reserved);
                }
                self.tpr = value as u8;
            }
            EOI => {
                // Table 11-6: "WRMSR of a non-zero value causes #GP(0)".
                if value != 0 {
                    return Err(ApicFault::Reserved);
                }
                return Ok(self.end_of_interrupt());
            }
            SVR => self.write_svr(low32(value)?)?,
            ESR => {
                // Table 11-6: only 0 may be written. The write latches the errors recorded
                // since the last one and re-arms the error interrupt (§11.5.3).
                if value != 0 {
                    return Err(ApicFault::Reserved);
                }
                self.esr = core::mem::take(&mut self.errors);
                self.error_armed = true;
            }
            ICR => return self.write_icr(value),
            TIMER_INITIAL_COUNT => {
                let value = low32(value)?;
                // §11.5.4.1: ignored in TSC-deadline mode.
                if !self.tsc_deadline_mode() {
                    self.timer.start(value, now_ns);
                }
            }
            TIMER_DIVIDE => {
                let value = low32(value)?;
                if value & !DIVIDE_MASK != 0 {
                    return Err(ApicFault::Reserved);
                }
                let periodic = self.periodic();
                self.timer.set_divide(value, now_ns, periodic);
            }
            SELF_IPI => {
                let value = low32(value)?;
                if value & !SELF_IPI_MASK != 0 {
                    return Err(ApicFault::Reserved);
                }
                // §11.12.11: a self-targeted, edge-triggered, fixed IPI; "completion of the
                // WRMSR ... implies that the interrupt has been logged into the IRR".
                let vector = value as u8;
                if vector < 16 {
                    self.record_error(ESR_SEND_ILLEGAL_VECTOR);
                }
                self.accept(vector);
            }
            IA32_TSC_DEADLINE if self.tsc.is_some() => {
                // §11.5.4.1: writes outside TSC-deadline mode are ignored.
                if self.tsc_deadline_mode() {
                    self.timer.set_tsc_deadline(value);
                }
            }
            _ => match Lvt::from_msr(msr) {
                Some(lvt) => self.write_lvt(lvt, low32(value)?)?,
                None => return Err(ApicFault::NoRegister),
            },
        }
        Ok(Effect::None)
    }

    fn write_svr(&mut self, value: u32) -> Result<(), ApicFault> {
        if value & !SVR_MASK != 0 {
            return Err(ApicFault::Reserved);
        }
        self.svr = value;
        if value & SVR_ENABLE == 0 {
            // §11.4.7.2: software disable sets every LVT mask.
            for entry in &mut self.lvt {
                *entry |= LVT_MASKED;
            }
        }
        Ok(())
    }

    fn write_lvt(&mut self, lvt: Lvt, value: u32) -> Result<(), ApicFault> {
        let bits = lvt_bits(lvt, self.tsc.is_some());
        if value & !(bits.writable | bits.read_only) != 0 {
            return Err(ApicFault::Reserved);
        }
        let mut entry = value & bits.writable;
        if lvt == Lvt::Timer {
            if entry & LVT_TIMER_MODE == LVT_TIMER_MODE {
                return Err(ApicFault::Reserved); // mode 11b
            }
            let to_deadline = entry & LVT_TIMER_MODE == LVT_TIMER_TSC_DEADLINE;
            if to_deadline != self.tsc_deadline_mode() {
                self.timer.disarm();
            }
        }
        if !self.software_enabled() {
            entry |= LVT_MASKED; // §11.4.7.2: the masks cannot be cleared
        }
        self.lvt[lvt as usize] = entry;
        Ok(())
    }

    fn write_icr(&mut self, value: u64) -> Result<Effect, ApicFault> {
        if value & ICR_RESERVED != 0 {
            return Err(ApicFault::Reserved);
        }
        self.icr = value & !ICR_BUSY;
        let decoded = ipi::decode(self.icr, self.id);
        Ok(self.send(decoded))
    }

    /// The ICR write's outcome: the IPI to send, or the error it records.
    fn send(&mut self, decoded: Result<Ipi, NotSent>) -> Effect {
        match decoded {
            Ok(ipi) => Effect::SendIpi(ipi),
            Err(NotSent::IllegalVector) => {
                self.record_error(ESR_SEND_ILLEGAL_VECTOR);
                Effect::None
            }
            Err(NotSent::LowestPriority) => {
                self.record_error(ESR_REDIRECTABLE_IPI);
                Effect::None
            }
            Err(NotSent::Deassert | NotSent::ReservedMode) => Effect::None,
        }
    }
}

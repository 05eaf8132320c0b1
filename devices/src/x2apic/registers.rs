//! x2APIC register MSRs and their bits.
//!
//! Section numbers are those of the Intel SDM Vol. 3A editions that number the APIC chapter
//! 11 (older editions: chapter 10, same section structure). The x2APIC MSR map is Table 11-6
//! (§11.12.1.2); the register layouts are the figures of §11.4-§11.9 and §11.12.

/// The x2APIC MSR range (§11.12.1.2): MSR 0x800 + (xAPIC MMIO offset >> 4).
pub const MSR_FIRST: u32 = 0x800;
pub const MSR_LAST: u32 = 0x8ff;

pub const ID: u32 = 0x802;
pub const VERSION: u32 = 0x803;
pub const TPR: u32 = 0x808;
pub const PPR: u32 = 0x80a;
pub const EOI: u32 = 0x80b;
pub const LDR: u32 = 0x80d;
pub const SVR: u32 = 0x80f;
/// ISR, TMR and IRR: eight MSRs each, bits 32n..32n+31 of the 256-bit register in MSR base + n.
pub const ISR0: u32 = 0x810;
pub const ISR7: u32 = 0x817;
pub const TMR0: u32 = 0x818;
pub const TMR7: u32 = 0x81f;
pub const IRR0: u32 = 0x820;
pub const IRR7: u32 = 0x827;
pub const ESR: u32 = 0x828;
pub const LVT_CMCI: u32 = 0x82f;
/// 64 bits wide in x2APIC mode (§11.12.9); 0x831, xAPIC's ICR high half, is reserved.
pub const ICR: u32 = 0x830;
pub const LVT_TIMER: u32 = 0x832;
pub const LVT_THERMAL: u32 = 0x833;
pub const LVT_PERF: u32 = 0x834;
pub const LVT_LINT0: u32 = 0x835;
pub const LVT_LINT1: u32 = 0x836;
pub const LVT_ERROR: u32 = 0x837;
pub const TIMER_INITIAL_COUNT: u32 = 0x838;
pub const TIMER_CURRENT_COUNT: u32 = 0x839;
pub const TIMER_DIVIDE: u32 = 0x83e;
/// Write-only, x2APIC mode only (§11.12.11).
pub const SELF_IPI: u32 = 0x83f;

/// IA32_TSC_DEADLINE (SDM Vol. 4 Table 2-2; §11.5.4.1), when TSC-deadline mode is offered.
pub const IA32_TSC_DEADLINE: u32 = 0x6e0;

/// IA32_APIC_BASE (§11.4.4, Figure 11-5): not one of `read_msr`'s; the backend routes it to
/// `LocalApic::apic_base` / `LocalApic::apic_base_write`.
pub const IA32_APIC_BASE: u32 = 0x1b;
/// BSP flag (bit 8), x2APIC enable EXTD (bit 10), xAPIC global enable EN (bit 11).
pub const APIC_BASE_BSP: u64 = 1 << 8;
pub const APIC_BASE_EXTD: u64 = 1 << 10;
pub const APIC_BASE_EN: u64 = 1 << 11;
/// The architectural default base of the xAPIC MMIO window (§11.4.1).
pub const APIC_BASE_DEFAULT: u64 = 0xfee0_0000;
/// Bits 7:0 and 9 are reserved (Figure 11-5); so is everything above MAXPHYADDR, which this
/// model does not need to know: only `APIC_BASE_DEFAULT` is offered as a base.
pub const APIC_BASE_RESERVED: u64 = 0x2ff;
/// The base address field, bits MAXPHYADDR-1:12.
pub const APIC_BASE_ADDRESS: u64 = !0xfff;

/// Version register (§11.4.8, Figure 11-7): version in bits 7:0 (0x14: an integrated xAPIC, as
/// KVM reports and Linux's `APIC_XAPIC()` expects), max LVT entry (entries - 1) in bits 23:16,
/// and bit 24, EOI-broadcast suppression, clear: not offered (see `SVR_EOI_SUPPRESSION`).
pub const VERSION_VALUE: u32 = 0x14 | ((LVT_COUNT as u32 - 1) << 16);

/// Local vector table entries: CMCI, timer, thermal, performance counters, LINT0, LINT1, error.
pub const LVT_COUNT: usize = 7;

/// TPR (§11.8.3.1, Figure 11-18): bits 7:0; the rest reserved.
pub const TPR_MASK: u32 = 0xff;

/// SVR (§11.9, Figure 11-23): spurious vector bits 7:0, APIC software enable bit 8, focus
/// processor checking bit 9 (kept, without effect: this model has no lowest-priority
/// arbitration; Linux sets it in `init_bsp_APIC`), EOI-broadcast suppression bit 12 (reserved
/// here: the version register does not offer it, so an I/O APIC without an EOI register never
/// has to take directed EOIs). Bits 10-11 and 13-31 are reserved.
pub const SVR_VECTOR: u32 = 0xff;
pub const SVR_ENABLE: u32 = 1 << 8;
pub const SVR_FOCUS_DISABLE: u32 = 1 << 9;
pub const SVR_EOI_SUPPRESSION: u32 = 1 << 12;
pub const SVR_MASK: u32 = SVR_VECTOR | SVR_ENABLE | SVR_FOCUS_DISABLE;
/// SVR after reset: vector 0xff, software-disabled (§11.4.7.1).
pub const SVR_RESET: u32 = 0xff;

/// LVT fields (§11.5.1, Figure 11-8).
pub const LVT_VECTOR: u32 = 0xff;
pub const LVT_DELIVERY_MODE: u32 = 0b111 << 8;
/// Delivery status (bit 12) and remote IRR (bit 14) are read-only; see `lvt_write_mask`.
pub const LVT_DELIVERY_STATUS: u32 = 1 << 12;
pub const LVT_POLARITY: u32 = 1 << 13;
pub const LVT_REMOTE_IRR: u32 = 1 << 14;
pub const LVT_LEVEL_TRIGGERED: u32 = 1 << 15;
pub const LVT_MASKED: u32 = 1 << 16;
/// Timer mode, bits 18:17: 00 one-shot, 01 periodic, 10 TSC-deadline (if offered), 11 reserved.
pub const LVT_TIMER_MODE: u32 = 0b11 << 17;
pub const LVT_TIMER_PERIODIC: u32 = 0b01 << 17;
pub const LVT_TIMER_TSC_DEADLINE: u32 = 0b10 << 17;
/// Every LVT entry after reset: masked, everything else 0 (§11.4.7.1).
pub const LVT_RESET: u32 = LVT_MASKED;

/// LVT delivery modes (§11.5.1): fixed, SMI, NMI, INIT, ExtINT. 001, 011 and 110 are reserved.
pub const DELIVERY_FIXED: u32 = 0b000;
pub const DELIVERY_SMI: u32 = 0b010;
pub const DELIVERY_NMI: u32 = 0b100;
pub const DELIVERY_INIT: u32 = 0b101;
pub const DELIVERY_EXTINT: u32 = 0b111;

/// ESR bits (§11.5.3, Figure 11-9). Checksum and accept errors (bits 0-3) belong to the
/// P6/Pentium APIC bus; illegal register address (bit 7) is a #GP in x2APIC mode instead.
pub const ESR_REDIRECTABLE_IPI: u32 = 1 << 4;
pub const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
pub const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;

/// Divide configuration (§11.5.4, Figure 11-10): the divide value is bits 0, 1 and 3; bit 2
/// and bits 31:4 are reserved.
pub const DIVIDE_MASK: u32 = 0b1011;

/// ICR (§11.12.9, Figure 11-28, x2APIC layout): vector 7:0, delivery mode 10:8, destination
/// mode 11, level 14, trigger mode 15, shorthand 19:18, destination 63:32. Bit 12 (delivery
/// status in xAPIC mode) is ignored on write and reads 0 (the x2APIC specification, Figure 2-5
/// footnote: "WRMSR to the ICR MSR ignores bit 12"; AMD parts #GP instead, per KVM's
/// `__kvm_x2apic_icr_write`). Bits 13, 16-17 and 20-31 are reserved.
pub const ICR_VECTOR: u64 = 0xff;
pub const ICR_DELIVERY_MODE: u64 = 0b111 << 8;
pub const ICR_LOGICAL: u64 = 1 << 11;
pub const ICR_BUSY: u64 = 1 << 12;
pub const ICR_LEVEL_ASSERT: u64 = 1 << 14;
pub const ICR_LEVEL_TRIGGERED: u64 = 1 << 15;
pub const ICR_SHORTHAND: u64 = 0b11 << 18;
pub const ICR_RESERVED: u64 = (1 << 13) | (0b11 << 16) | (0xfff << 20);

/// SELF IPI (§11.12.11, Figure 11-30): the vector in bits 7:0, the rest reserved.
pub const SELF_IPI_MASK: u32 = 0xff;

/// ESR bit 7 (§11.5.3, Figure 11-9), xAPIC mode: an access to a reserved register of the MMIO
/// page (only an aligned 32-bit access to the start of a reserved 16-byte slot, see
/// `LocalApic::read_mmio`).
pub const ESR_ILLEGAL_REGISTER: u32 = 1 << 7;

/// xAPIC mode: register offsets in the 4 KiB MMIO page at IA32_APIC_BASE (Table 11-1). Each
/// register is the first dword of a 16-byte-aligned slot; the x2APIC MSR of the same register
/// is `MSR_FIRST + (offset >> 4)`.
pub const XAPIC_PAGE_SIZE: u64 = 0x1000;
pub const XAPIC_ID: u64 = 0x020;
pub const XAPIC_VERSION: u64 = 0x030;
pub const XAPIC_TPR: u64 = 0x080;
/// Arbitration priority (P6 and Pentium): reads 0 here, as in KVM; writes ignored.
pub const XAPIC_APR: u64 = 0x090;
pub const XAPIC_PPR: u64 = 0x0a0;
pub const XAPIC_EOI: u64 = 0x0b0;
/// Remote read (P6 and Pentium; remote-read IPIs are not offered): reads 0.
pub const XAPIC_RRD: u64 = 0x0c0;
pub const XAPIC_LDR: u64 = 0x0d0;
pub const XAPIC_DFR: u64 = 0x0e0;
pub const XAPIC_SVR: u64 = 0x0f0;
pub const XAPIC_ISR0: u64 = 0x100;
pub const XAPIC_TMR0: u64 = 0x180;
pub const XAPIC_IRR0: u64 = 0x200;
pub const XAPIC_ESR: u64 = 0x280;
pub const XAPIC_LVT_CMCI: u64 = 0x2f0;
/// ICR bits 31:0; writing it sends the IPI (§11.6.1).
pub const XAPIC_ICR_LOW: u64 = 0x300;
/// ICR bits 63:32: the destination in bits 31:24 (Figure 11-12), the rest reserved.
pub const XAPIC_ICR_HIGH: u64 = 0x310;
pub const XAPIC_LVT_TIMER: u64 = 0x320;
pub const XAPIC_LVT_THERMAL: u64 = 0x330;
pub const XAPIC_LVT_PERF: u64 = 0x340;
pub const XAPIC_LVT_LINT0: u64 = 0x350;
pub const XAPIC_LVT_LINT1: u64 = 0x360;
pub const XAPIC_LVT_ERROR: u64 = 0x370;
pub const XAPIC_TIMER_INITIAL_COUNT: u64 = 0x380;
pub const XAPIC_TIMER_CURRENT_COUNT: u64 = 0x390;
pub const XAPIC_TIMER_DIVIDE: u64 = 0x3e0;

/// The LDR's logical APIC ID, bits 31:24 (Figure 11-13); bits 23:0 are reserved.
pub const XAPIC_LDR_MASK: u32 = 0xff00_0000;
/// DFR (Figure 11-14): the model in bits 31:28 (1111b flat, 0000b cluster); bits 27:0 are
/// reserved and read as ones.
pub const DFR_MODEL: u32 = 0xf000_0000;
pub const DFR_FLAT: u32 = 0xffff_ffff;
pub const DFR_CLUSTER: u32 = 0x0fff_ffff;
/// DFR after reset and INIT: flat (§11.4.7.1).
pub const DFR_RESET: u32 = DFR_FLAT;
/// The xAPIC ID register: the 8-bit APIC ID in bits 31:24 (Figure 11-6).
pub const XAPIC_ID_SHIFT: u32 = 24;
/// ICR_HIGH's destination field, bits 31:24 (bits 63:56 of the ICR).
pub const XAPIC_ICR_DEST_MASK: u32 = 0xff00_0000;
/// The ICR_LOW bits a write keeps in xAPIC mode: the x2APIC ones (bit 12, delivery status, is
/// read-only and reads 0; the rest reserved and ignored).
pub const XAPIC_ICR_LOW_WRITABLE: u32 = (ICR_VECTOR
    | ICR_DELIVERY_MODE
    | ICR_LOGICAL
    | ICR_LEVEL_ASSERT
    | ICR_LEVEL_TRIGGERED
    | ICR_SHORTHAND) as u32;
/// The 8-bit destination that reaches every local APIC in xAPIC mode, physical or logical
/// (§11.6.2.1, §11.6.2.2).
pub const XAPIC_BROADCAST: u8 = 0xff;

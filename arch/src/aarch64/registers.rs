//! System-register access at EL2 (Arm ARM D23 "AArch64 System Register Descriptions").
//!
//! Reads are safe functions where they have no side effects; writes are `unsafe fn`s, since
//! most of these registers change how memory, exceptions or interrupts behave.

use core::arch::asm;

macro_rules! read_only {
    ($(#[$doc:meta])* $name:ident, $reg:literal) => {
        $(#[$doc])*
        #[inline]
        pub fn $name() -> u64 {
            let value: u64;
            // SAFETY: reading this register has no side effects and is allowed at EL2.
            unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack, preserves_flags)) };
            value
        }
    };
}

macro_rules! read_write {
    ($(#[$doc:meta])* $read:ident, $write:ident, $reg:literal) => {
        read_only!($(#[$doc])* $read, $reg);

        $(#[$doc])*
        ///
        /// # Safety
        /// The new value must keep every invariant Rust code relies on (memory mapping,
        /// exception routing, interrupt state) and be valid for the register.
        #[inline]
        pub unsafe fn $write(value: u64) {
            // SAFETY: the caller vouches for the value; an ISB follows where the effect must be
            // visible to the next instruction (callers issue it).
            unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) value, options(nostack, preserves_flags)) };
        }
    };
}

read_only!(/// CurrentEL: the exception level in bits 3:2.
    current_el, "CurrentEL");
read_only!(/// MPIDR_EL1: this CPU's affinity.
    mpidr, "mpidr_el1");
read_only!(/// CNTFRQ_EL0: the system counter frequency in Hz.
    counter_frequency, "cntfrq_el0");
read_only!(/// CNTPCT_EL0: the physical count.
    counter, "cntpct_el0");
read_only!(/// ESR_EL2: syndrome of the last exception taken to EL2.
    esr_el2, "esr_el2");
read_only!(/// FAR_EL2: faulting virtual address.
    far_el2, "far_el2");
read_only!(/// ID_AA64MMFR0_EL1: memory model features (PARange in bits 3:0).
    id_aa64mmfr0, "id_aa64mmfr0_el1");
read_only!(/// ID_AA64ISAR0_EL1: instruction-set features (RNDR in bits 63:60).
    id_aa64isar0, "id_aa64isar0_el1");

read_only!(/// HPFAR_EL2: the faulting IPA of a stage-2 abort (bits 43:4 hold IPA bits 51:12).
    hpfar_el2, "hpfar_el2");
read_write!(/// VTCR_EL2: stage-2 translation control.
    vtcr_el2, set_vtcr_el2, "vtcr_el2");
read_write!(/// VTTBR_EL2: stage-2 table base and VMID.
    vttbr_el2, set_vttbr_el2, "vttbr_el2");
read_write!(/// CNTHCTL_EL2: which counter and timer registers EL1/EL0 may use without trapping.
    cnthctl_el2, set_cnthctl_el2, "cnthctl_el2");
read_only!(/// MIDR_EL1: this CPU's part and revision.
    midr, "midr_el1");
read_only!(/// PMCR_EL0: the PMU's control; N (bits 15:11) counts its event counters.
    pmcr, "pmcr_el0");
read_write!(/// CPTR_EL2: which FP/SIMD, SVE and trace accesses below EL2 trap to EL2.
    cptr_el2, set_cptr_el2, "cptr_el2");
read_write!(/// MDCR_EL2: the debug and PMU resources EL2 keeps from lower ELs.
    mdcr_el2, set_mdcr_el2, "mdcr_el2");
read_write!(/// CNTVOFF_EL2: the virtual counter's offset from the physical one.
    cntvoff_el2, set_cntvoff_el2, "cntvoff_el2");
read_write!(/// VPIDR_EL2: the MIDR_EL1 value EL1 reads.
    vpidr_el2, set_vpidr_el2, "vpidr_el2");
read_write!(/// VMPIDR_EL2: the MPIDR_EL1 value EL1 reads.
    vmpidr_el2, set_vmpidr_el2, "vmpidr_el2");
read_write!(/// SCTLR_EL1: the guest's EL1 system control (MMU, caches, alignment checks).
    sctlr_el1, set_sctlr_el1, "sctlr_el1");
read_write!(/// VBAR_EL2: EL2 exception vector base.
    vbar_el2, set_vbar_el2, "vbar_el2");
read_write!(/// HCR_EL2: hypervisor configuration.
    hcr_el2, set_hcr_el2, "hcr_el2");
read_write!(/// TPIDR_EL2: EL2 software thread ID, Parapet's per-CPU pointer.
    tpidr_el2, set_tpidr_el2, "tpidr_el2");
read_write!(/// TTBR0_EL2: the EL2 translation table base.
    ttbr0_el2, set_ttbr0_el2, "ttbr0_el2");
read_write!(/// ICC_SRE_EL2: system-register interface enables (GICv3).
    icc_sre_el2, set_icc_sre_el2, "S3_4_C12_C9_5");
read_write!(/// ICC_PMR_EL1: interrupt priority mask.
    icc_pmr, set_icc_pmr, "S3_0_C4_C6_0");
read_write!(/// ICC_IGRPEN1_EL1: Group 1 interrupt enable.
    icc_igrpen1, set_icc_igrpen1, "S3_0_C12_C12_7");
read_write!(/// ICC_EOIR1_EL1: end of interrupt, Group 1.
    icc_eoir1, set_icc_eoir1, "S3_0_C12_C12_1");
read_write!(/// ICC_SGI1R_EL1: generates a Group 1 SGI.
    icc_sgi1r, set_icc_sgi1r, "S3_0_C12_C11_5");
read_only!(/// ID_AA64PFR0_EL1: SVE in bits 35:32.
    id_aa64pfr0, "S3_0_C0_C4_0");
read_only!(/// ID_AA64PFR1_EL1: SME in bits 27:24.
    id_aa64pfr1, "S3_0_C0_C4_1");
read_write!(/// ZCR_EL2: the longest SVE vector length lower ELs may use (LEN, bits 3:0).
    zcr_el2, set_zcr_el2, "S3_4_C1_C2_0");
read_write!(/// SMCR_EL2: the longest SME streaming vector length lower ELs may use (LEN, bits 3:0).
    smcr_el2, set_smcr_el2, "S3_4_C1_C2_6");
read_only!(/// CNTV_CTL_EL0: the guest's virtual timer control (ENABLE bit 0, IMASK 1, ISTATUS 2),
    /// read at EL2 to see whether its interrupt is due.
    cntv_ctl_el0, "cntv_ctl_el0");
read_write!(/// VBAR_EL1: the guest's exception vectors, for exceptions EL2 injects into it.
    vbar_el1, set_vbar_el1, "vbar_el1");
read_write!(/// ELR_EL1: where an exception taken to the guest's EL1 returns.
    elr_el1, set_elr_el1, "elr_el1");
read_write!(/// SPSR_EL1: the PSTATE an exception taken to the guest's EL1 saved.
    spsr_el1, set_spsr_el1, "spsr_el1");
read_write!(/// ESR_EL1: the syndrome of an exception taken to the guest's EL1.
    esr_el1, set_esr_el1, "esr_el1");
read_write!(/// CNTHP_CTL_EL2: EL2 physical timer control.
    cnthp_ctl, set_cnthp_ctl, "S3_4_C14_C2_1");
read_write!(/// CNTHP_CVAL_EL2: EL2 physical timer compare value.
    cnthp_cval, set_cnthp_cval, "S3_4_C14_C2_2");

/// Drops every stage-1 and stage-2 translation of the current VMID, on every CPU of the
/// inner-shareable domain, and waits for it.
///
/// # Safety
/// VTTBR_EL2 must name the VMID meant; nothing may rely on translations being kept.
pub unsafe fn invalidate_guest_tlb() {
    // SAFETY: TLB maintenance has no effect beyond dropping cached translations.
    unsafe {
        asm!(
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Invalidates every instruction cache to the point of unification, in the inner-shareable
/// domain, and waits for it: code written through the data side becomes fetchable.
pub fn invalidate_icache_all() {
    // SAFETY: instruction-cache invalidation changes no data.
    unsafe {
        asm!(
            "dsb ish",
            "ic ialluis",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Reads ICC_IAR1_EL1, which acknowledges the highest-priority pending Group 1 interrupt:
/// it becomes active and must later be ended with ICC_EOIR1_EL1.
///
/// # Safety
/// The caller must end the interrupt it gets back (unless it is a special INTID 1020-1023).
#[inline]
pub unsafe fn icc_iar1() -> u64 {
    let value: u64;
    // SAFETY: the read changes interrupt state, which the caller takes responsibility for;
    // it touches no memory.
    unsafe {
        asm!("mrs {}, S3_0_C12_C12_0", out(reg) value, options(nomem, nostack, preserves_flags))
    };
    value
}

read_only!(/// CTR_EL0: cache type (DminLine in bits 19:16).
    cache_type, "ctr_el0");

/// Cleans and invalidates the data cache to the point of coherency over [start, start + len),
/// so an observer with caches off (a CPU before its MMU is on) sees what was written.
pub fn clean_dcache_range(start: u64, len: u64) {
    let line = 4u64 << ((cache_type() >> 16) & 0xf);
    let mut at = start & !(line - 1);
    let end = start.saturating_add(len);
    while at < end {
        // SAFETY: cache maintenance by VA on mapped memory changes no data.
        unsafe { asm!("dc civac, {}", in(reg) at, options(nostack, preserves_flags)) };
        at += line;
    }
    // SAFETY: a barrier only orders.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// Instruction synchronization barrier.
#[inline]
pub fn isb() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Masks IRQs (PSTATE.I). Also a compiler barrier (no `nomem`), as is unmasking.
#[inline]
pub fn mask_irqs() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("msr daifset, #2", options(nostack, preserves_flags)) };
}

/// Unmasks IRQs.
///
/// # Safety
/// VBAR_EL2 must point at vectors that handle IRQs.
#[inline]
pub unsafe fn unmask_irqs() {
    // SAFETY: the caller guarantees the vectors handle IRQs.
    unsafe { asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
}

/// Whether IRQs are masked.
#[inline]
pub fn irqs_masked() -> bool {
    let daif: u64;
    // SAFETY: reading DAIF has no side effects.
    unsafe { asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack, preserves_flags)) };
    daif & (1 << 7) != 0
}

/// Waits for an interrupt (WFI). With IRQs masked it still wakes when one becomes pending;
/// the caller unmasks to take it.
///
/// # Safety
/// Always sound; `unsafe` because callers pair it with unmasking, which needs vectors.
pub unsafe fn wait_for_interrupt() {
    // SAFETY: WFI only waits.
    unsafe { asm!("wfi", options(nostack)) };
}

/// Runs `f` with IRQs masked, restoring the previous state afterwards.
pub fn without_irqs<R>(f: impl FnOnce() -> R) -> R {
    let was_masked = irqs_masked();
    mask_irqs();
    let r = f();
    if !was_masked {
        // SAFETY: IRQs were unmasked before, so the vectors were able to take them.
        unsafe { unmask_irqs() };
    }
    r
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        mask_irqs();
        // SAFETY: WFI only waits.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}

/// Invalidates the EL2 TLB entries for the pages of [va, va + size) on every CPU in the
/// inner-shareable domain, after making earlier table writes visible.
///
/// # Safety
/// Always sound; `unsafe` so every TLB maintenance point is visible.
pub unsafe fn flush_tlb_range(va: u64, size: u64) {
    const FULL_FLUSH_PAGES: u64 = 64;
    let pages = size.div_ceil(4096);
    // SAFETY: barriers and TLB invalidation only drop cached translations.
    unsafe {
        asm!("dsb ishst", options(nostack, preserves_flags));
        if pages > FULL_FLUSH_PAGES {
            asm!("tlbi alle2is", options(nostack, preserves_flags));
        } else {
            for page in 0..pages {
                asm!("tlbi vae2is, {}", in(reg) (va + page * 4096) >> 12, options(nostack, preserves_flags));
            }
        }
        asm!("dsb ish", "isb", options(nostack, preserves_flags));
    }
}

/// Switches EL2 to the tables at `root` and flushes all EL2 translations.
///
/// # Safety
/// `root` must map all code, data, stacks and devices in use, at the same addresses.
pub unsafe fn switch_tables(root: u64) {
    // SAFETY: the caller guarantees the new tables are a superset of what is in use.
    unsafe {
        asm!("dsb ishst", options(nostack, preserves_flags));
        set_ttbr0_el2(root);
        asm!(
            "isb",
            "tlbi alle2",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        );
    }
}

/// 64 bits from the CPU's random number generator (FEAT_RNG: RNDRRS, "reseeded random
/// number", Arm ARM C5.2.16), or `None` when the CPU has none (ID_AA64ISAR0_EL1.RNDR, bits
/// 63:60, is 0) or keeps failing. A failed read sets PSTATE.Z and returns 0; the Arm ARM
/// calls a failure "rare" and transient, so a bounded number of retries is enough.
pub fn hardware_random() -> Option<u64> {
    const RETRIES: usize = 100;
    if id_aa64isar0() >> 60 == 0 {
        return None;
    }
    for _ in 0..RETRIES {
        let (value, failed): (u64, u64);
        // SAFETY: FEAT_RNG is present (checked above); RNDRRS writes only its register and
        // the condition flags, which `cset` reads before anything else can change them.
        unsafe {
            asm!("mrs {v}, s3_3_c2_c4_1", "cset {f}, eq", v = out(reg) value, f = out(reg) failed, options(nomem, nostack))
        };
        if failed == 0 {
            return Some(value);
        }
    }
    None
}

//! The xAPIC face: the MMIO page (Table 11-1), IA32_APIC_BASE and the mode transitions
//! (§11.12.5), xAPIC IPI routing, and Linux's xAPIC boot.

use super::*;

/// A 1 GHz timer clock: divide by 1 gives a tick a nanosecond.
const GHZ: u64 = 1_000_000_000;

fn rd(a: &mut LocalApic, offset: u64) -> u32 {
    a.read_mmio(offset, 4, 0)
}

fn wr(a: &mut LocalApic, offset: u64, value: u32) {
    assert_eq!(
        a.write_mmio(offset, 4, value, 0),
        Effect::None,
        "{offset:#x} <- {value:#x}"
    );
}

/// xAPIC mode, software-enabled with spurious vector 0xff.
fn enabled(id: u8) -> LocalApic {
    let mut a = LocalApic::new_xapic(id, GHZ);
    wr(&mut a, XAPIC_SVR, SVR_ENABLE | 0xff);
    a
}

fn sent(a: &mut LocalApic, high: u32, low: u32) -> Ipi {
    wr(a, XAPIC_ICR_HIGH, high);
    match a.write_mmio(XAPIC_ICR_LOW, 4, low, 0) {
        Effect::SendIpi(ipi) => ipi,
        other => panic!("ICR {high:#x}:{low:#x}: {other:?}"),
    }
}

/// Latches and reads the errors since the last ESR write.
fn errors(a: &mut LocalApic) -> u32 {
    wr(a, XAPIC_ESR, 0);
    rd(a, XAPIC_ESR)
}

fn snapshot(a: &LocalApic) -> String {
    format!("{a:?}")
}

/// Table 11-1 row by row: what each 16-byte slot of the page is.
#[derive(Debug, PartialEq, Clone, Copy)]
enum Access {
    ReadWrite,
    ReadOnly,
    WriteOnly,
    Reserved,
}

fn table_11_1(slot: u64) -> Access {
    match slot {
        XAPIC_ID | XAPIC_VERSION | XAPIC_APR | XAPIC_PPR | XAPIC_RRD => Access::ReadOnly,
        0x100..=0x270 | XAPIC_TIMER_CURRENT_COUNT => Access::ReadOnly,
        XAPIC_EOI => Access::WriteOnly,
        XAPIC_TPR
        | XAPIC_LDR
        | XAPIC_DFR
        | XAPIC_SVR
        | XAPIC_ESR
        | XAPIC_LVT_CMCI
        | XAPIC_ICR_LOW
        | XAPIC_ICR_HIGH
        | XAPIC_LVT_TIMER..=XAPIC_LVT_ERROR
        | XAPIC_TIMER_INITIAL_COUNT
        | XAPIC_TIMER_DIVIDE => Access::ReadWrite,
        _ => Access::Reserved,
    }
}

/// Every register's value as the guest reads it but the ESR, for "nothing changed" checks
/// around accesses that record errors.
fn registers(a: &mut LocalApic) -> Vec<(u64, u32)> {
    (0..XAPIC_PAGE_SIZE)
        .step_by(16)
        .filter(|&s| table_11_1(s) != Access::Reserved && s != XAPIC_ESR)
        .map(|s| (s, rd(a, s)))
        .collect()
}

#[test]
fn reset_state_matches_the_sdm() {
    let mut a = LocalApic::new_xapic(3, GHZ);
    assert_eq!(a.mode(), Mode::XApic);
    assert!(a.decodes_mmio());
    assert_eq!(a.apic_base(), 0xfee0_0800, "EN set, EXTD and BSP clear");
    assert_eq!(
        LocalApic::new_xapic(0, GHZ).with_bsp(true).apic_base(),
        0xfee0_0900
    );
    assert_eq!(rd(&mut a, XAPIC_ID), 0x0300_0000, "ID in bits 31:24");
    assert_eq!(rd(&mut a, XAPIC_VERSION), 0x0006_0014);
    assert_eq!(rd(&mut a, XAPIC_SVR), 0xff);
    assert_eq!(rd(&mut a, XAPIC_LDR), 0);
    assert_eq!(rd(&mut a, XAPIC_DFR), 0xffff_ffff, "flat");
    for slot in [XAPIC_LVT_CMCI, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370] {
        assert_eq!(rd(&mut a, slot), 0x1_0000, "LVT {slot:#x} masked");
    }
    for slot in [
        XAPIC_TPR,
        XAPIC_APR,
        XAPIC_PPR,
        XAPIC_EOI,
        XAPIC_RRD,
        XAPIC_ESR,
        XAPIC_ICR_LOW,
        XAPIC_ICR_HIGH,
        XAPIC_TIMER_INITIAL_COUNT,
        XAPIC_TIMER_CURRENT_COUNT,
        XAPIC_TIMER_DIVIDE,
    ] {
        assert_eq!(rd(&mut a, slot), 0, "{slot:#x}");
    }
    for slot in (0x100..=0x270).step_by(16) {
        assert_eq!(rd(&mut a, slot), 0, "{slot:#x}");
    }
    assert_eq!(errors(&mut a), 0, "reading registers is no error");
}

#[test]
fn every_offset_follows_table_11_1() {
    let mut counts = [0; 4];
    for slot in (0..XAPIC_PAGE_SIZE).step_by(16) {
        let mut a = enabled(1);
        let before = registers(&mut a);
        let read = rd(&mut a, slot);
        let read_error = errors(&mut a);
        let effect = a.write_mmio(slot, 4, 0, 0);
        let write_error = errors(&mut a);
        match table_11_1(slot) {
            Access::ReadWrite => {
                // 0 in ICR_LOW is a fixed IPI with vector 0: an error, but not an access's.
                let expected = if slot == XAPIC_ICR_LOW {
                    ESR_SEND_ILLEGAL_VECTOR
                } else {
                    0
                };
                assert_eq!((read_error, write_error), (0, expected), "{slot:#x}");
                counts[0] += 1;
            }
            Access::ReadOnly => {
                assert_eq!((read_error, write_error), (0, 0), "{slot:#x}");
                assert_eq!(effect, Effect::None);
                assert_eq!(
                    registers(&mut a),
                    before,
                    "{slot:#x}: the write changed state"
                );
                counts[1] += 1;
            }
            Access::WriteOnly => {
                assert_eq!((read, read_error, write_error), (0, 0, 0), "{slot:#x}");
                counts[2] += 1;
            }
            Access::Reserved => {
                assert_eq!(read, 0, "{slot:#x}");
                assert_eq!(read_error, ESR_ILLEGAL_REGISTER, "{slot:#x}");
                assert_eq!(write_error, ESR_ILLEGAL_REGISTER, "{slot:#x}");
                assert_eq!(effect, Effect::None);
                assert_eq!(
                    registers(&mut a),
                    before,
                    "{slot:#x}: the write changed state"
                );
                counts[3] += 1;
            }
        }
    }
    // 16 read/write (TPR, LDR, DFR, SVR, ESR, CMCI, ICR low and high, 6 LVTs, initial
    // count, divide), 30 read-only (ID, version, APR, PPR, RRD, 24 ISR/TMR/IRR, current
    // count), EOI; the other 209 slots reserved, SELF IPI's 0x3f0 among them.
    assert_eq!(counts, [16, 30, 1, 256 - 47]);
    assert_eq!(table_11_1(0x3f0), Access::Reserved);
}

#[test]
fn registers_hold_their_writable_bits_and_drop_the_rest() {
    let mut a = enabled(0);
    for (slot, value, reads) in [
        (XAPIC_TPR, 0xffff_ffff, 0xff),
        (XAPIC_TPR, 0x20, 0x20),
        (XAPIC_LDR, 0xffff_ffff, 0xff00_0000),
        (XAPIC_LDR, 0x0100_0000, 0x0100_0000),
        (XAPIC_DFR, 0, 0x0fff_ffff),
        (XAPIC_DFR, 0x5000_0000, 0x5fff_ffff),
        (XAPIC_DFR, 0xffff_ffff, 0xffff_ffff),
        (XAPIC_SVR, 0xffff_ffff, 0x3ff),
        (XAPIC_SVR, 0x1ff, 0x1ff),
        (XAPIC_ICR_HIGH, 0xffff_ffff, 0xff00_0000),
        (XAPIC_ICR_HIGH, 0x0200_0000, 0x0200_0000),
        // Without TSC-deadline support bit 18 is reserved: 11b becomes periodic.
        (XAPIC_LVT_TIMER, 0xffff_ffff, 0x3_00ff),
        (XAPIC_LVT_TIMER, 0x1_10ec, 0x1_00ec),
        (XAPIC_LVT_TIMER, 0x4_00ec, 0x0_00ec), // TSC-deadline not offered: one-shot
        (XAPIC_LVT_CMCI, 0xffff_ffff, 0x1_07ff),
        (XAPIC_LVT_THERMAL, 0x1_17ff, 0x1_07ff),
        (XAPIC_LVT_PERF, 0x400, 0x400),
        (XAPIC_LVT_LINT0, 0xffff_ffff, 0x1_a7ff),
        (XAPIC_LVT_LINT0, 0x700, 0x700),
        (XAPIC_LVT_LINT1, 0x0_5400, 0x0_0400), // remote IRR, delivery status read-only
        (XAPIC_LVT_ERROR, 0xffff_ffff, 0x1_00ff),
        (XAPIC_LVT_ERROR, 0xfe, 0xfe),
        (XAPIC_TIMER_DIVIDE, 0xffff_ffff, 0b1011),
        (XAPIC_TIMER_DIVIDE, 0b0011, 0b0011),
        (XAPIC_TIMER_INITIAL_COUNT, 0xffff_ffff, 0xffff_ffff),
        (XAPIC_TIMER_INITIAL_COUNT, 0, 0),
    ] {
        wr(&mut a, slot, value);
        assert_eq!(rd(&mut a, slot), reads, "{slot:#x} <- {value:#x}");
    }
    assert_eq!(errors(&mut a), 0, "reserved bits are no error");
    // ICR_LOW keeps its fields, drops reserved bits and reads delivery status 0.
    wr(&mut a, XAPIC_ICR_HIGH, 0x0500_0000);
    let _ = a.write_mmio(XAPIC_ICR_LOW, 4, 0xfff3_ffff, 0);
    assert_eq!(rd(&mut a, XAPIC_ICR_LOW), 0x0000_cfff);
    let _ = a.write_mmio(XAPIC_ICR_LOW, 4, 0xffff_ffff, 0);
    assert_eq!(rd(&mut a, XAPIC_ICR_LOW), 0x000c_cfff);
    assert_eq!(rd(&mut a, XAPIC_ICR_HIGH), 0x0500_0000);
    // Read-only registers ignore writes.
    for slot in [
        XAPIC_ID,
        XAPIC_VERSION,
        XAPIC_PPR,
        XAPIC_TIMER_CURRENT_COUNT,
    ] {
        let before = rd(&mut a, slot);
        wr(&mut a, slot, !before);
        assert_eq!(rd(&mut a, slot), before, "{slot:#x}");
    }
    assert_eq!(rd(&mut a, XAPIC_ID), 0, "the ID is read-only here");
}

#[test]
fn timer_mode_11b_is_ignored_when_deadline_mode_is_offered() {
    let tsc = GuestTsc {
        hz: GHZ,
        at_zero: 0,
    };
    let mut a = enabled(0).with_tsc_deadline(tsc);
    wr(&mut a, XAPIC_LVT_TIMER, 0x2_00ec);
    wr(&mut a, XAPIC_LVT_TIMER, 0x6_00ed);
    assert_eq!(
        rd(&mut a, XAPIC_LVT_TIMER),
        0x2_00ec,
        "the whole write dropped"
    );
    // TSC-deadline mode works in xAPIC mode, through IA32_TSC_DEADLINE.
    wr(&mut a, XAPIC_LVT_TIMER, 0x4_00ec);
    assert_eq!(a.write_msr(IA32_TSC_DEADLINE, 500, 0), Ok(Effect::None));
    assert_eq!(a.read_msr(IA32_TSC_DEADLINE, 0), Ok(500));
    assert_eq!(a.next_deadline_ns(), Some(500));
    a.poll_timer(500);
    assert_eq!(a.next_interrupt(true), Some(0xec));
}

#[test]
fn software_disable_forces_every_lvt_mask() {
    let mut a = enabled(0);
    wr(&mut a, XAPIC_LVT_TIMER, 0xec);
    wr(&mut a, XAPIC_SVR, 0xff);
    assert_eq!(rd(&mut a, XAPIC_LVT_TIMER), 0x1_00ec);
    wr(&mut a, XAPIC_LVT_TIMER, 0xec);
    assert_eq!(rd(&mut a, XAPIC_LVT_TIMER), 0x1_00ec, "cannot be unmasked");
    assert!(!a.accept(0x40), "dropped while software-disabled");
}

#[test]
fn eoi_takes_any_value_and_broadcasts_level_vectors() {
    let mut a = enabled(0);
    for (v, level) in [(0x40, false), (0x50, true)] {
        assert!(if level {
            a.accept_level(v)
        } else {
            a.accept(v)
        });
        assert_eq!(a.next_interrupt(true), Some(v));
        assert!(a.acknowledge(v));
    }
    assert_eq!(
        rd(&mut a, XAPIC_ISR0 + 0x20),
        0x1_0001,
        "0x40 and 0x50 in service"
    );
    assert_eq!(
        rd(&mut a, XAPIC_TMR0 + 0x20),
        0x1_0000,
        "0x50 level-triggered"
    );
    assert_eq!(
        a.write_mmio(XAPIC_EOI, 4, 0xdead_beef, 0),
        Effect::EoiBroadcast(0x50)
    );
    assert_eq!(a.write_mmio(XAPIC_EOI, 4, 0, 0), Effect::None);
    assert!(!a.in_service(0x40) && !a.in_service(0x50));
    assert_eq!(rd(&mut a, XAPIC_EOI), 0, "write-only: reads 0");
    assert_eq!(
        a.write_mmio(XAPIC_EOI, 4, 0, 0),
        Effect::None,
        "none in service"
    );
}

#[test]
fn tpr_ppr_and_irr_work_through_the_page() {
    let mut a = enabled(0);
    wr(&mut a, XAPIC_TPR, 0x50);
    assert!(a.accept(0x55) && a.accept(0x61));
    assert_eq!(rd(&mut a, XAPIC_IRR0 + 0x20), 0x0020_0000);
    assert_eq!(rd(&mut a, XAPIC_IRR0 + 0x30), 0x0000_0002);
    assert_eq!(a.next_interrupt(true), Some(0x61));
    assert!(a.acknowledge(0x61));
    assert_eq!(rd(&mut a, XAPIC_PPR), 0x60);
    assert_eq!(a.next_interrupt(true), None, "0x55 is below the PPR");
    assert_eq!(a.tpr(), 0x50, "CR8 sees the same TPR");
}

#[test]
fn esr_takes_any_value_and_latches() {
    let mut a = enabled(0);
    let _ = a.write_mmio(XAPIC_ICR_LOW, 4, 0x0000_0005, 0); // fixed vector 5
    assert_eq!(rd(&mut a, XAPIC_ESR), 0, "not latched yet");
    wr(&mut a, XAPIC_ESR, 0xffff_ffff);
    assert_eq!(rd(&mut a, XAPIC_ESR), ESR_SEND_ILLEGAL_VECTOR);
    wr(&mut a, XAPIC_ESR, 0x1234);
    assert_eq!(rd(&mut a, XAPIC_ESR), 0);
}

#[test]
fn reserved_register_accesses_raise_the_error_interrupt() {
    let mut a = enabled(0);
    wr(&mut a, XAPIC_LVT_ERROR, 0xfe);
    assert_eq!(rd(&mut a, 0x3f0), 0, "no SELF IPI register in xAPIC mode");
    assert_eq!(a.next_interrupt(true), Some(0xfe));
    assert_eq!(errors(&mut a), ESR_ILLEGAL_REGISTER);
    // A SELF IPI write sends nothing.
    assert_eq!(a.write_mmio(0x3f0, 4, 0x40, 0), Effect::None);
    assert!(!a.irr_pending(0x40));
}

#[test]
fn narrow_and_misaligned_accesses() {
    let mut a = enabled(0x12);
    wr(&mut a, XAPIC_LVT_TIMER, 0x2_00ec);
    // Reads within a register's first dword return its bytes.
    assert_eq!(a.read_mmio(XAPIC_ID + 3, 1, 0), 0x12);
    assert_eq!(a.read_mmio(XAPIC_ID + 2, 2, 0), 0x1200);
    assert_eq!(a.read_mmio(XAPIC_ID, 2, 0), 0);
    assert_eq!(a.read_mmio(XAPIC_LVT_TIMER, 1, 0), 0xec);
    assert_eq!(a.read_mmio(XAPIC_LVT_TIMER + 2, 1, 0), 0x02);
    assert_eq!(a.read_mmio(XAPIC_LVT_TIMER + 1, 2, 0), 0x0200);
    assert_eq!(a.read_mmio(XAPIC_VERSION + 2, 2, 0), 0x0006);
    // Anything else reads 0: straddling the dword, bytes 4-15, sizes 0, 3, 5-8.
    assert_eq!(a.read_mmio(XAPIC_ID + 1, 4, 0), 0);
    assert_eq!(a.read_mmio(XAPIC_ID + 3, 2, 0), 0);
    assert_eq!(a.read_mmio(XAPIC_ID + 4, 4, 0), 0);
    assert_eq!(a.read_mmio(XAPIC_ID + 12, 1, 0), 0);
    for size in [0, 3, 5, 6, 7, 8] {
        assert_eq!(a.read_mmio(XAPIC_ID, size, 0), 0, "size {size}");
    }
    // Only aligned 4-byte writes count.
    let before = snapshot(&a);
    for (offset, size) in [
        (XAPIC_TPR, 1),
        (XAPIC_TPR, 2),
        (XAPIC_TPR, 8),
        (XAPIC_TPR, 0),
        (XAPIC_TPR + 4, 4),
        (XAPIC_TPR + 1, 4),
        (XAPIC_LVT_TIMER, 2),
        (XAPIC_ICR_LOW, 1),
        (XAPIC_EOI + 8, 4),
    ] {
        assert_eq!(a.write_mmio(offset, size, 0xffff_ffff, 0), Effect::None);
        assert_eq!(snapshot(&a), before, "{offset:#x}/{size}");
    }
    // Malformed accesses to reserved slots record no error.
    assert_eq!(a.read_mmio(0x400, 2, 0), 0);
    let _ = a.write_mmio(0x400, 1, 0, 0);
    assert_eq!(errors(&mut a), 0);
    // Outside the page: nothing.
    assert_eq!(a.read_mmio(XAPIC_PAGE_SIZE + XAPIC_ID, 4, 0), 0);
    assert_eq!(a.read_mmio(u64::MAX, 4, 0), 0);
    assert_eq!(a.write_mmio(u64::MAX - 15, 4, 1, 0), Effect::None);
}

#[test]
fn the_msrs_fault_outside_x2apic_mode_and_the_page_is_empty_outside_xapic_mode() {
    let mut x = enabled(2);
    for msr in MSR_FIRST..=MSR_LAST {
        assert_eq!(x.read_msr(msr, 0), Err(ApicFault::NotX2Apic), "{msr:#x}");
        assert_eq!(
            x.write_msr(msr, 0, 0),
            Err(ApicFault::NotX2Apic),
            "{msr:#x}"
        );
    }
    let mut two = LocalApic::new(2, GHZ);
    assert!(!two.decodes_mmio());
    let mut off = LocalApic::new_xapic(2, GHZ);
    off.set_mode(Mode::Disabled).unwrap();
    for a in [&mut two, &mut off] {
        let before = snapshot(a);
        for offset in [XAPIC_ID, XAPIC_VERSION, XAPIC_SVR, XAPIC_ICR_LOW, 0x400] {
            assert_eq!(
                a.read_mmio(offset, 4, 0),
                u32::MAX,
                "{offset:#x}: empty bus"
            );
            assert_eq!(a.read_mmio(offset, 1, 0), 0xff);
            assert_eq!(a.read_mmio(offset, 2, 0), 0xffff);
            assert_eq!(a.read_mmio(offset, 8, 0), u32::MAX);
            assert_eq!(a.read_mmio(offset, 0, 0), 0);
            assert_eq!(a.write_mmio(offset, 4, 0x1ff, 0), Effect::None);
        }
        assert_eq!(snapshot(a), before, "the page reaches nothing");
    }
    for msr in [ID, SVR, ICR, EOI] {
        assert_eq!(off.read_msr(msr, 0), Err(ApicFault::NotX2Apic), "{msr:#x}");
    }
    assert!(two.read_msr(ID, 0).is_ok());
}

#[test]
fn mode_transitions_follow_the_sdm() {
    use Mode::*;
    let legal = |from: Mode, to: Mode| !matches!((from, to), (X2Apic, XApic) | (Disabled, X2Apic));
    for from in [Disabled, XApic, X2Apic] {
        for to in [Disabled, XApic, X2Apic] {
            let mut a = LocalApic::new_xapic(1, GHZ);
            match from {
                Disabled => a.set_mode(Disabled).unwrap(),
                XApic => {}
                X2Apic => a.set_mode(X2Apic).unwrap(),
            }
            assert_eq!(a.mode(), from);
            let before = snapshot(&a);
            let result = a.set_mode(to);
            if legal(from, to) {
                assert_eq!(result, Ok(()), "{from:?} -> {to:?}");
                assert_eq!(a.mode(), to);
            } else {
                assert_eq!(
                    result,
                    Err(ApicFault::IllegalTransition),
                    "{from:?} -> {to:?}"
                );
                assert_eq!(snapshot(&a), before, "{from:?} -> {to:?} changed state");
            }
        }
    }
    // An ID beyond 8 bits cannot be an xAPIC.
    let mut big = LocalApic::new(0x100, GHZ);
    big.set_mode(Disabled).unwrap();
    assert_eq!(big.set_mode(XApic), Err(ApicFault::NotOffered));
    assert_eq!(big.mode(), Disabled);
}

#[test]
fn apic_base_writes_are_checked() {
    let base = APIC_BASE_DEFAULT;
    let (en, extd, bsp) = (APIC_BASE_EN, APIC_BASE_EXTD, APIC_BASE_BSP);
    let mut a = LocalApic::new_xapic(0, GHZ).with_bsp(true);
    let before = snapshot(&a);
    for (value, fault) in [
        (base | en | 1, ApicFault::Reserved),
        (base | en | 0x80, ApicFault::Reserved),
        (base | en | (1 << 9), ApicFault::Reserved),
        (base | extd, ApicFault::Reserved), // EXTD without EN: invalid
        (0xfec0_0000 | en, ApicFault::NotOffered),
        (0xfec0_0000, ApicFault::NotOffered),
        ((1 << 40) | base | en, ApicFault::NotOffered),
        (en, ApicFault::NotOffered),
    ] {
        assert_eq!(a.apic_base_write(value), Err(fault), "{value:#x}");
        assert_eq!(snapshot(&a), before, "{value:#x} changed state");
    }
    // The BSP flag is fixed: a write's bit 8 is ignored either way.
    assert_eq!(a.apic_base_write(base | en), Ok(()));
    assert_eq!(a.apic_base(), base | en | bsp);
    assert_eq!(a.apic_base_write(base | en | bsp), Ok(()));
    assert_eq!(a.apic_base_write(base | en | extd | bsp), Ok(()));
    assert_eq!(a.mode(), Mode::X2Apic);
    assert_eq!(a.apic_base(), base | en | extd | bsp);
    assert_eq!(
        a.apic_base_write(base | en | bsp),
        Err(ApicFault::IllegalTransition),
        "x2APIC to xAPIC"
    );
    assert_eq!(a.apic_base_write(base | bsp), Ok(()));
    assert_eq!(a.apic_base(), base | bsp, "disabled: the base stays");
    assert_eq!(
        a.apic_base_write(base | en | extd),
        Err(ApicFault::IllegalTransition),
        "disabled to x2APIC"
    );
    assert_eq!(a.apic_base_write(base | en), Ok(()));
    assert_eq!(a.mode(), Mode::XApic);
    // An AP's reads no BSP flag.
    assert_eq!(LocalApic::new(1, GHZ).apic_base(), base | en | extd);
}

#[test]
fn xapic_to_x2apic_keeps_the_state() {
    let mut a = enabled(0x21);
    wr(&mut a, XAPIC_TPR, 0x30);
    wr(&mut a, XAPIC_LDR, 0x0400_0000);
    wr(&mut a, XAPIC_LVT_TIMER, 0x2_00ec);
    wr(&mut a, XAPIC_TIMER_DIVIDE, 0b1011);
    wr(&mut a, XAPIC_TIMER_INITIAL_COUNT, 1_000);
    assert!(a.accept(0x80));
    a.set_mode(Mode::X2Apic).unwrap();
    let r = |a: &mut LocalApic, msr| a.read_msr(msr, 100).unwrap();
    assert_eq!(r(&mut a, ID), 0x21, "the x2APIC ID");
    assert_eq!(
        r(&mut a, LDR),
        0x0002_0002,
        "derived from the ID, not the xAPIC LDR"
    );
    assert_eq!(r(&mut a, TPR), 0x30);
    assert_eq!(r(&mut a, SVR), 0x1ff);
    assert_eq!(r(&mut a, LVT_TIMER), 0x2_00ec);
    assert_eq!(r(&mut a, TIMER_CURRENT_COUNT), 900, "still counting");
    assert!(a.irr_pending(0x80));
    assert_eq!(a.read_mmio(XAPIC_ID, 4, 100), u32::MAX, "the page is gone");
}

#[test]
fn disabling_resets_everything_but_the_id() {
    let fresh = snapshot(&LocalApic::new_xapic(5, GHZ).with_bsp(true));
    for through_x2apic in [false, true] {
        let mut a = LocalApic::new_xapic(5, GHZ).with_bsp(true);
        wr(&mut a, XAPIC_SVR, 0x1ff);
        wr(&mut a, XAPIC_TPR, 0x30);
        wr(&mut a, XAPIC_LDR, 0x0100_0000);
        wr(&mut a, XAPIC_DFR, 0x0fff_ffff);
        wr(&mut a, XAPIC_LVT_TIMER, 0x2_00ec);
        wr(&mut a, XAPIC_TIMER_INITIAL_COUNT, 10);
        assert!(a.accept(0x80));
        if through_x2apic {
            a.set_mode(Mode::X2Apic).unwrap();
        }
        a.set_mode(Mode::Disabled).unwrap();
        assert_eq!(a.next_interrupt(true), None);
        assert_eq!(a.next_deadline_ns(), None);
        assert!(!a.accept(0x90), "a disabled APIC takes nothing");
        assert!(!a.accept(3), "not even an error");
        assert_eq!(a.raise_lint(false), LintDelivery::ExtInt, "LINT0 is INTR");
        assert_eq!(a.raise_lint(true), LintDelivery::Nmi, "LINT1 is NMI");
        assert_eq!(a.ldr(), 0);
        a.set_mode(Mode::XApic).unwrap();
        assert_eq!(snapshot(&a), fresh, "re-enabled into the power-up state");
    }
}

#[test]
fn init_keeps_the_mode_and_resets_ldr_and_dfr() {
    let mut a = enabled(4).with_bsp(true);
    wr(&mut a, XAPIC_LDR, 0x1000_0000);
    wr(&mut a, XAPIC_DFR, 0x0fff_ffff);
    a.init_reset();
    assert_eq!(
        snapshot(&a),
        snapshot(&LocalApic::new_xapic(4, GHZ).with_bsp(true))
    );
    assert_eq!(rd(&mut a, XAPIC_ID), 0x0400_0000);
}

#[test]
fn icr_writes_decode_into_xapic_ipis() {
    let mut a = enabled(3);
    let ipi = sent(&mut a, 0x0700_0000, 0x0000_4031);
    assert_eq!(
        ipi,
        Ipi {
            source: 3,
            delivery: Delivery::Fixed,
            vector: 0x31,
            destination: Destination::XApicPhysical(7),
        }
    );
    assert_eq!(
        rd(&mut a, XAPIC_ICR_LOW) & 1 << 12,
        0,
        "delivery is instant"
    );
    let ipi = sent(&mut a, 0x0300_0000, 0x0000_0841);
    assert_eq!(ipi.destination, Destination::XApicLogical(3));
    // Writing ICR_LOW again resends to what ICR_HIGH holds.
    assert_eq!(sent(&mut a, 0x0300_0000, 0x0000_0841), ipi);
    for (low, delivery) in [
        (0x0000_4500, Delivery::Init),
        (0x0000_c500, Delivery::Init),
        (0x0000_0608, Delivery::StartUp),
        (0x0000_0400, Delivery::Nmi),
        (0x0000_0200, Delivery::Smi),
        (0x0000_0150, Delivery::LowestPriority),
    ] {
        assert_eq!(
            sent(&mut a, 0x0100_0000, low).delivery,
            delivery,
            "{low:#x}"
        );
    }
    assert_eq!(
        sent(&mut a, 0, 0x0004_0040).destination,
        Destination::ToSelf
    );
    assert_eq!(
        sent(&mut a, 0, 0x0008_0040).destination,
        Destination::AllIncludingSelf
    );
    assert_eq!(
        sent(&mut a, 0, 0x000c_0040).destination,
        Destination::AllExcludingSelf
    );
    assert_eq!(errors(&mut a), 0);
    // What sends nothing: INIT de-assert, reserved modes, illegal vectors (with ESR).
    for low in [0x0000_8500, 0x0000_0340, 0x0000_0740] {
        assert_eq!(
            a.write_mmio(XAPIC_ICR_LOW, 4, low, 0),
            Effect::None,
            "{low:#x}"
        );
    }
    assert_eq!(errors(&mut a), 0);
    for low in [0x0000_000f, 0x0000_010f] {
        assert_eq!(
            a.write_mmio(XAPIC_ICR_LOW, 4, low, 0),
            Effect::None,
            "{low:#x}"
        );
        assert_eq!(errors(&mut a), ESR_SEND_ILLEGAL_VECTOR, "{low:#x}");
    }
}

#[test]
fn physical_destinations_are_8_bit_ids() {
    let ipi = |dest| Ipi {
        source: 0,
        delivery: Delivery::Fixed,
        vector: 0x40,
        destination: Destination::XApicPhysical(dest),
    };
    assert!(ipi(5).reaches(5) && !ipi(5).reaches(4) && !ipi(5).reaches(0x105));
    assert!(
        ipi(0xff).reaches(0) && ipi(0xff).reaches(0x1234),
        "broadcast"
    );
    let target = LocalApic::new_xapic(5, GHZ);
    assert!(ipi(5).reaches_apic(&target) && !ipi(6).reaches_apic(&target));
    let mut off = LocalApic::new_xapic(5, GHZ);
    off.set_mode(Mode::Disabled).unwrap();
    assert!(!ipi(5).reaches_apic(&off) && !ipi(0xff).reaches_apic(&off));
}

#[test]
fn logical_destinations_match_ldr_and_dfr() {
    let ipi = |mda| Ipi {
        source: 0,
        delivery: Delivery::Fixed,
        vector: 0x40,
        destination: Destination::XApicLogical(mda),
    };
    let apic = |ldr: u32, dfr: u32| {
        let mut a = enabled(0);
        wr(&mut a, XAPIC_LDR, ldr);
        wr(&mut a, XAPIC_DFR, dfr);
        a
    };
    // Flat: any common bit.
    let flat = apic(0x0400_0000, 0xffff_ffff);
    assert!(ipi(0x04).reaches_apic(&flat) && ipi(0x07).reaches_apic(&flat));
    assert!(!ipi(0x03).reaches_apic(&flat) && !ipi(0).reaches_apic(&flat));
    // Cluster: cluster 2, member bit 1.
    let cluster = apic(0x2200_0000, 0x0fff_ffff);
    assert!(ipi(0x22).reaches_apic(&cluster) && ipi(0x2f).reaches_apic(&cluster));
    assert!(!ipi(0x12).reaches_apic(&cluster) && !ipi(0x21).reaches_apic(&cluster));
    // Flat rules would have matched 0x12; cluster rules do not.
    assert!(ipi(0x12).reaches_apic(&apic(0x2200_0000, 0xffff_ffff)));
    // No model, no match; broadcast reaches all, even an APIC without an LDR.
    let odd = apic(0x2200_0000, 0x5fff_ffff);
    assert!(!ipi(0x22).reaches_apic(&odd));
    for a in [&flat, &cluster, &odd, &apic(0, 0xffff_ffff)] {
        assert!(ipi(0xff).reaches_apic(a));
    }
    // `reaches(id)` cannot know the LDR: it answers the broadcast only.
    assert!(ipi(0xff).reaches(7) && !ipi(0x04).reaches(2));
}

#[test]
fn every_offset_and_size_takes_junk_without_panicking() {
    let values = [0, 1, 0xff, 0x100, 0x1_0000, 0x6_00ff, 0x8000_0000, u32::MAX];
    let times = [0, 1, 1_000_000, u64::MAX - 1, u64::MAX, 7];
    let tsc = GuestTsc {
        hz: u64::MAX,
        at_zero: 0,
    };
    for hz in [0, GHZ, u64::MAX] {
        for (id, deadline) in [(0u8, false), (0xff, true)] {
            let mut a = LocalApic::new_xapic(id, hz);
            if deadline {
                a = a.with_tsc_deadline(tsc);
            }
            for &now in &times {
                for offset in 0..XAPIC_PAGE_SIZE + 16 {
                    for size in 0..=8 {
                        let _ = a.read_mmio(offset, size, now);
                        for &value in &values {
                            let _ = a.write_mmio(offset, size, value, now);
                        }
                    }
                }
                for offset in [u64::MAX, u64::MAX - 3, 1 << 63] {
                    for size in [0, 4, 8, u8::MAX] {
                        let _ = a.read_mmio(offset, size, now);
                        let _ = a.write_mmio(offset, size, u32::MAX, now);
                    }
                }
                a.poll_timer(now);
                while let Some(v) = a.next_interrupt(true) {
                    assert!(v >= 16);
                    assert!(a.acknowledge(v));
                    let _ = a.write_mmio(XAPIC_EOI, 4, 0, now);
                }
                let _ = a.next_deadline_ns();
            }
            // The same sweep outside xAPIC mode reads the empty bus.
            a.set_mode(Mode::X2Apic).unwrap();
            for offset in (0..XAPIC_PAGE_SIZE).step_by(4) {
                for size in 0..=8 {
                    let v = a.read_mmio(offset, size, 0);
                    assert!(v == 0 || v.count_zeros() == 32 - 8 * u32::from(size.min(4)));
                }
            }
        }
    }
}

#[test]
fn random_hostile_sequences_keep_the_invariants() {
    // xorshift64*
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for _ in 0..20 {
        let mut a = LocalApic::new_xapic(next() as u8, next() % (2 * GHZ));
        let mut now = next() % GHZ;
        for _ in 0..3_000 {
            now = now.saturating_add(next() % 10_000);
            let offset = (next() % 0x400) & !3;
            let r = next();
            match r % 8 {
                0..=2 => {
                    let _ = a.read_mmio(offset, 4, now);
                }
                3..=5 => {
                    let value = match r % 5 {
                        0 => u32::MAX,
                        1 => next() as u32 & 0xff,
                        _ => next() as u32,
                    };
                    let _ = a.write_mmio(offset & !0xf, 4, value, now);
                }
                6 => {
                    let _ = a.accept(next() as u8);
                }
                _ => {
                    a.poll_timer(now);
                    if let Some(v) = a.next_interrupt(true) {
                        assert!(v >= 16 && v >> 4 > a.ppr() >> 4);
                        assert!(a.acknowledge(v));
                    }
                }
            }
            assert_eq!(a.irr[0] & 0xffff, 0, "vectors 0-15 in the IRR");
            assert_eq!(a.mode(), Mode::XApic, "the page cannot change the mode");
            assert_eq!(rd(&mut a, XAPIC_ICR_LOW) & (1 << 12), 0);
        }
    }
}

/// What a Linux 6.1 kernel without interrupt remapping or a hypervisor it knows does with
/// its local APIC (arch/x86/kernel/apic/apic.c, apic_flat_64.c, smpboot.c, ipi.c): leave
/// x2APIC mode through the disabled state, then drive the MMIO page with the flat logical
/// model. The register values are the ones it writes.
#[test]
fn linux_xapic_boot_replay() {
    const LOCAL_TIMER_VECTOR: u32 = 0xec;
    const ERROR_APIC_VECTOR: u32 = 0xfe;
    const RESCHEDULE_VECTOR: u32 = 0xfd;
    const CALL_FUNCTION_VECTOR: u32 = 0xfc;
    const SPURIOUS_APIC_VECTOR: u32 = 0xff;
    const APIC_DM_NMI: u32 = 0x400;
    const APIC_DM_EXTINT: u32 = 0x700;
    const APIC_DM_INIT: u32 = 0x500;
    const APIC_DM_STARTUP: u32 = 0x600;
    const APIC_INT_ASSERT: u32 = 0x4000;
    const APIC_INT_LEVELTRIG: u32 = 0x8000;
    const APIC_DEST_LOGICAL: u32 = 0x800;
    const APIC_DEST_ALLBUT: u32 = 0xc_0000;
    const APIC_LVT_MASKED: u32 = 0x1_0000;
    const APIC_LVT_TIMER_PERIODIC: u32 = 0x2_0000;
    const APIC_TDR_DIV_16: u32 = 0x3;
    const APIC_TDR_DIV_TMBASE: u32 = 0x4;
    const APIC_TDR_DIV_1: u32 = 0xb;
    const APIC_SPIV_APIC_ENABLED: u32 = 0x100;
    const APIC_SPIV_FOCUS_DISABLED: u32 = 0x200;
    const APIC_ICR_BUSY: u32 = 0x1000;
    const APIC_DFR_FLAT: u32 = 0xffff_ffff;
    const APIC_DIVISOR: u64 = 16;
    const HZ: u64 = 250;
    const LAPIC_CAL_LOOPS: u64 = HZ / 10;
    const MS: u64 = 1_000_000;
    const TIMER_HZ: u64 = 25_000_000;
    const X2APIC_ENABLE: u64 = 1 << 10;
    const XAPIC_ENABLE: u64 = 1 << 11;

    // The vCPUs as a backend that starts them in x2APIC mode leaves them.
    let mut cpus = vec![
        LocalApic::new(0, TIMER_HZ).with_bsp(true),
        LocalApic::new(1, TIMER_HZ),
    ];
    let mut now = 1_000 * MS;
    let r = |a: &mut LocalApic, offset: u64, now: u64| a.read_mmio(offset, 4, now);
    let w = |a: &mut LocalApic, offset: u64, value: u32, now: u64| {
        assert_eq!(
            a.write_mmio(offset, 4, value, now),
            Effect::None,
            "{offset:#x} <- {value:#x}"
        );
    };
    // native_apic_icr_write: ICR2 first, then ICR (which sends).
    let icr = |a: &mut LocalApic, low: u32, dest: u32, now: u64| {
        w(a, XAPIC_ICR_HIGH, dest << 24, now);
        let effect = a.write_mmio(XAPIC_ICR_LOW, 4, low, now);
        // __xapic_wait_icr_idle
        assert_eq!(r(a, XAPIC_ICR_LOW, now) & APIC_ICR_BUSY, 0);
        effect
    };
    // The backend's part of an IPI.
    let deliver = |cpus: &mut [LocalApic], effect: Effect| -> Vec<(u32, Delivery, u8)> {
        let Effect::SendIpi(ipi) = effect else {
            panic!("{effect:?}");
        };
        let mut others = Vec::new();
        for apic in cpus.iter_mut() {
            if ipi.reaches_apic(apic) {
                if ipi.delivery == Delivery::Fixed {
                    assert!(apic.accept(ipi.vector));
                } else {
                    others.push((apic.id(), ipi.delivery, ipi.vector));
                }
            }
        }
        others
    };

    // __x2apic_disable, on the BSP (and each AP when it comes up): EN and EXTD off, then EN.
    let leave_x2apic = |a: &mut LocalApic| {
        let msr = a.apic_base();
        assert_ne!(msr & X2APIC_ENABLE, 0);
        a.apic_base_write(msr & !(X2APIC_ENABLE | XAPIC_ENABLE))
            .unwrap();
        a.apic_base_write(msr & !X2APIC_ENABLE).unwrap();
        assert_eq!(a.mode(), Mode::XApic);
        // From now on the x2APIC MSRs are #GP.
        assert_eq!(a.read_msr(ID, 0), Err(ApicFault::NotX2Apic));
    };
    leave_x2apic(&mut cpus[0]);
    let bsp = &mut cpus[0];
    assert_eq!(
        bsp.apic_base(),
        0xfee0_0900,
        "register_lapic_address: the default base"
    );

    // read_apic_id; lapic_get_maxlvt / APIC_INTEGRATED / modern_apic.
    assert_eq!((r(bsp, XAPIC_ID, now) >> 24) & 0xff, 0);
    let version = r(bsp, XAPIC_VERSION, now);
    assert!(version & 0xff >= 0x14, "APIC_XAPIC(version)");
    let maxlvt = (version >> 16) & 0xff;
    assert_eq!(maxlvt, 6);

    // setup_local_APIC (and end_local_APIC_setup), on each CPU.
    let setup_local_apic = |a: &mut LocalApic, cpu: u32, now: u64| {
        // check_apic_id_registered.
        assert_eq!(r(a, XAPIC_ID, now) >> 24, cpu);
        // flat_init_apic_ldr.
        w(a, XAPIC_DFR, APIC_DFR_FLAT, now);
        let v = r(a, XAPIC_LDR, now) & !0xff00_0000;
        w(a, XAPIC_LDR, v | ((1 << cpu) << 24), now);
        assert_eq!(a.ldr(), (1 << cpu) << 24);
        // Task priority: accept all.
        let v = r(a, XAPIC_TPR, now) & !0xff;
        w(a, XAPIC_TPR, v, now);
        // apic_pending_intr_clear: nothing stale.
        for i in 0..8 {
            assert_eq!(r(a, XAPIC_IRR0 + i * 16, now), 0);
            assert_eq!(r(a, XAPIC_ISR0 + i * 16, now), 0);
        }
        // SPIV: enable, focus processor checking off, spurious vector 0xff.
        let mut v = r(a, XAPIC_SVR, now);
        v &= !0xff;
        v |= APIC_SPIV_APIC_ENABLED | APIC_SPIV_FOCUS_DISABLED | SPURIOUS_APIC_VECTOR;
        w(a, XAPIC_SVR, v, now);
        assert!(a.software_enabled());
        // perf_events_lapic_init.
        w(a, XAPIC_LVT_PERF, APIC_DM_NMI, now);
        // LINT0: ExtINT on the BSP, masked elsewhere; LINT1: NMI on the BSP only.
        let masked = r(a, XAPIC_LVT_LINT0, now) & APIC_LVT_MASKED;
        let v = if cpu == 0 && masked != 0 {
            APIC_DM_EXTINT
        } else {
            APIC_DM_EXTINT | APIC_LVT_MASKED
        };
        w(a, XAPIC_LVT_LINT0, v, now);
        let v = if cpu == 0 {
            APIC_DM_NMI
        } else {
            APIC_DM_NMI | APIC_LVT_MASKED
        };
        w(a, XAPIC_LVT_LINT1, v, now);
        // lapic_setup_esr.
        w(a, XAPIC_ESR, 0, now);
        let _old = r(a, XAPIC_ESR, now);
        w(a, XAPIC_LVT_ERROR, ERROR_APIC_VECTOR, now);
        w(a, XAPIC_ESR, 0, now);
        assert_eq!(r(a, XAPIC_ESR, now), 0);
    };
    setup_local_apic(bsp, 0, now);
    assert_eq!(bsp.raise_lint(false), LintDelivery::ExtInt);
    assert_eq!(bsp.raise_lint(true), LintDelivery::Nmi);

    // calibrate_APIC_clock: __setup_APIC_LVTT(0xffffffff, 0, 0): periodic, masked.
    w(
        bsp,
        XAPIC_LVT_TIMER,
        LOCAL_TIMER_VECTOR | APIC_LVT_TIMER_PERIODIC | APIC_LVT_MASKED,
        now,
    );
    let v = r(bsp, XAPIC_TIMER_DIVIDE, now);
    w(
        bsp,
        XAPIC_TIMER_DIVIDE,
        (v & !(APIC_TDR_DIV_1 | APIC_TDR_DIV_TMBASE)) | APIC_TDR_DIV_16,
        now,
    );
    w(
        bsp,
        XAPIC_TIMER_INITIAL_COUNT,
        (0xffff_ffff / APIC_DIVISOR) as u32,
        now,
    );
    let start = r(bsp, XAPIC_TIMER_CURRENT_COUNT, now);
    now += LAPIC_CAL_LOOPS * 1_000_000_000 / HZ;
    let end = r(bsp, XAPIC_TIMER_CURRENT_COUNT, now);
    let delta = u64::from(start - end);
    let lapic_timer_period = delta * APIC_DIVISOR / LAPIC_CAL_LOOPS;
    assert_eq!(
        lapic_timer_period,
        TIMER_HZ / HZ,
        "calibrated to the timer clock"
    );
    assert_eq!(bsp.next_interrupt(true), None, "masked during calibration");
    // Then one-shot, unmasked (lapic_timer_set_oneshot) and a first event.
    w(bsp, XAPIC_LVT_TIMER, LOCAL_TIMER_VECTOR, now);
    w(bsp, XAPIC_TIMER_DIVIDE, APIC_TDR_DIV_16, now);
    let delta = (lapic_timer_period / APIC_DIVISOR) as u32; // one tick's worth
    w(bsp, XAPIC_TIMER_INITIAL_COUNT, delta, now);
    let due = bsp.next_deadline_ns().expect("armed");
    assert_eq!(due, now + 4 * MS);
    now = due;
    bsp.poll_timer(now);
    assert_eq!(bsp.next_interrupt(true), Some(LOCAL_TIMER_VECTOR as u8));
    assert!(bsp.acknowledge(LOCAL_TIMER_VECTOR as u8));
    // apic_eoi: native_apic_mem_eoi writes APIC_EOI_ACK (0).
    w(bsp, XAPIC_EOI, 0, now);
    assert!(!bsp.in_service(LOCAL_TIMER_VECTOR as u8));

    // wakeup_secondary_cpu_via_init(1, 0x9a000).
    let start_eip: u32 = 0x9a000;
    w(&mut cpus[0], XAPIC_ESR, 0, now);
    let _ = r(&mut cpus[0], XAPIC_ESR, now);
    let effect = icr(
        &mut cpus[0],
        APIC_INT_LEVELTRIG | APIC_INT_ASSERT | APIC_DM_INIT,
        1,
        now,
    );
    assert_eq!(deliver(&mut cpus, effect), vec![(1, Delivery::Init, 0)]);
    cpus[1].init_reset(); // the backend's INIT: still in x2APIC mode, as IA32_APIC_BASE says
    assert_eq!(
        icr(&mut cpus[0], APIC_INT_LEVELTRIG | APIC_DM_INIT, 1, now),
        Effect::None,
        "INIT de-assert sends nothing"
    );
    for _ in 0..2 {
        w(&mut cpus[0], XAPIC_ESR, 0, now);
        let _ = r(&mut cpus[0], XAPIC_ESR, now);
        let effect = icr(&mut cpus[0], APIC_DM_STARTUP | (start_eip >> 12), 1, now);
        assert_eq!(
            deliver(&mut cpus, effect),
            vec![(1, Delivery::StartUp, 0x9a)]
        );
        w(&mut cpus[0], XAPIC_ESR, 0, now);
        assert_eq!(r(&mut cpus[0], XAPIC_ESR, now) & 0xef, 0, "accept_status");
    }

    // The AP: leaves x2APIC mode too, then the same setup with logical ID bit 1.
    now += MS;
    leave_x2apic(&mut cpus[1]);
    assert_eq!(cpus[1].apic_base(), 0xfee0_0800, "no BSP flag");
    setup_local_apic(&mut cpus[1], 1, now);
    assert_eq!(
        cpus[1].raise_lint(false),
        LintDelivery::None,
        "masked on the AP"
    );

    // flat_send_IPI_mask: a reschedule IPI to CPU 1, logical destination bit 1.
    let effect = icr(
        &mut cpus[0],
        APIC_DEST_LOGICAL | RESCHEDULE_VECTOR,
        1 << 1,
        now,
    );
    assert_eq!(deliver(&mut cpus, effect), vec![]);
    assert!(cpus[1].irr_pending(RESCHEDULE_VECTOR as u8));
    assert!(!cpus[0].irr_pending(RESCHEDULE_VECTOR as u8));
    assert_eq!(cpus[1].next_interrupt(true), Some(RESCHEDULE_VECTOR as u8));
    assert!(cpus[1].acknowledge(RESCHEDULE_VECTOR as u8));
    w(&mut cpus[1], XAPIC_EOI, 0, now);
    // A function call to both through the mask 0b11, and one to all but self.
    let effect = icr(
        &mut cpus[1],
        APIC_DEST_LOGICAL | CALL_FUNCTION_VECTOR,
        0b11,
        now,
    );
    let _ = deliver(&mut cpus, effect);
    assert!(cpus[0].irr_pending(0xfc) && cpus[1].irr_pending(0xfc));
    let effect = icr(
        &mut cpus[0],
        APIC_DEST_ALLBUT | CALL_FUNCTION_VECTOR,
        0,
        now,
    );
    let Effect::SendIpi(ipi) = effect else {
        panic!("{effect:?}")
    };
    assert!(!ipi.reaches_apic(&cpus[0]) && ipi.reaches_apic(&cpus[1]));
    for (cpu, a) in cpus.iter_mut().enumerate() {
        assert_eq!(a.next_interrupt(true), Some(0xfc), "CPU {cpu}");
        assert!(a.acknowledge(0xfc));
        w(a, XAPIC_EOI, 0, now);
    }

    // Power-off: clear_local_APIC / disable_local_APIC on each CPU.
    for a in cpus.iter_mut() {
        for slot in [
            XAPIC_LVT_ERROR,
            XAPIC_LVT_TIMER,
            XAPIC_LVT_LINT0,
            XAPIC_LVT_LINT1,
        ] {
            let v = r(a, slot, now);
            w(a, slot, v | APIC_LVT_MASKED, now);
        }
        w(a, XAPIC_ESR, 0, now);
        let _ = r(a, XAPIC_ESR, now);
        let v = r(a, XAPIC_SVR, now) & !APIC_SPIV_APIC_ENABLED;
        w(a, XAPIC_SVR, v, now);
        assert!(!a.software_enabled());
        assert_eq!(a.next_deadline_ns(), None);
    }
}

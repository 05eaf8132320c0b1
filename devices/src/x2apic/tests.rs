use super::*;

/// A 1 GHz timer clock: divide by 1 gives a tick a nanosecond.
const GHZ: u64 = 1_000_000_000;
const DIVIDE_BY_1: u64 = 0b1011;
const DIVIDE_BY_16: u64 = 0b0011;

fn rd(a: &mut LocalApic, msr: u32) -> u64 {
    a.read_msr(msr, 0)
        .unwrap_or_else(|e| panic!("rdmsr {msr:#x}: {e:?}"))
}

fn wr(a: &mut LocalApic, msr: u32, value: u64) {
    wr_at(a, msr, value, 0);
}

fn wr_at(a: &mut LocalApic, msr: u32, value: u64, now: u64) {
    assert_eq!(
        a.write_msr(msr, value, now),
        Ok(Effect::None),
        "wrmsr {msr:#x} <- {value:#x}"
    );
}

/// Software-enabled with spurious vector 0xff, as an OS leaves it.
fn enabled(id: u32, hz: u64) -> LocalApic {
    let mut a = LocalApic::new(id, hz);
    wr(&mut a, SVR, u64::from(SVR_ENABLE | 0xff));
    a
}

/// The timer unmasked on `vector` in `mode`, counting at `hz` (the divider set to 1).
fn timer(mode: u32, vector: u8) -> LocalApic {
    let mut a = enabled(0, GHZ);
    wr(&mut a, TIMER_DIVIDE, DIVIDE_BY_1);
    wr(&mut a, LVT_TIMER, u64::from(mode | u32::from(vector)));
    a
}

fn send(a: &mut LocalApic, icr: u64) -> Effect {
    a.write_msr(ICR, icr, 0).expect("ICR write")
}

fn sent(a: &mut LocalApic, icr: u64) -> Ipi {
    match send(a, icr) {
        Effect::SendIpi(ipi) => ipi,
        other => panic!("ICR {icr:#x}: {other:?}"),
    }
}

/// Latches and reads the errors since the last ESR write.
fn errors(a: &mut LocalApic) -> u64 {
    wr(a, ESR, 0);
    rd(a, ESR)
}

/// The backend's part of an IPI: every APIC it reaches takes a fixed vector; the other
/// deliveries are listed for the caller to check.
fn deliver(apics: &mut [LocalApic], ipi: Ipi) -> Vec<(u32, Delivery)> {
    let mut others = Vec::new();
    for apic in apics.iter_mut().filter(|a| ipi.reaches(a.id())) {
        if ipi.delivery == Delivery::Fixed {
            apic.accept(ipi.vector);
        } else {
            others.push((apic.id(), ipi.delivery));
        }
    }
    others
}

/// What the guest would see of the whole register file, for comparing states.
fn snapshot(a: &LocalApic) -> String {
    format!("{a:?}")
}

#[test]
fn reset_state_matches_the_sdm() {
    let mut a = LocalApic::new(3, GHZ);
    assert_eq!(rd(&mut a, ID), 3);
    assert_eq!(
        rd(&mut a, VERSION),
        0x0006_0014,
        "version 0x14, 7 LVT entries"
    );
    assert_eq!(rd(&mut a, SVR), 0xff, "software-disabled, vector 0xff");
    assert!(!a.software_enabled());
    for msr in [
        TPR,
        PPR,
        ESR,
        ICR,
        TIMER_INITIAL_COUNT,
        TIMER_CURRENT_COUNT,
        TIMER_DIVIDE,
    ] {
        assert_eq!(rd(&mut a, msr), 0, "MSR {msr:#x}");
    }
    for msr in ISR0..=IRR7 {
        assert_eq!(rd(&mut a, msr), 0, "MSR {msr:#x}");
    }
    for msr in [
        LVT_CMCI,
        LVT_TIMER,
        LVT_THERMAL,
        LVT_PERF,
        LVT_LINT0,
        LVT_LINT1,
        LVT_ERROR,
    ] {
        assert_eq!(rd(&mut a, msr), 0x1_0000, "LVT {msr:#x} masked");
    }
    assert_eq!(a.next_deadline_ns(), None);
    assert_eq!(a.next_interrupt(true), None);
}

/// Table 11-6 row by row: what each MSR of 0x800-0x8ff is.
#[derive(Debug, PartialEq)]
enum Access {
    ReadWrite,
    ReadOnly,
    WriteOnly,
    Reserved,
}

fn table_11_6(msr: u32) -> Access {
    match msr {
        ID | VERSION | PPR | LDR | ISR0..=IRR7 | TIMER_CURRENT_COUNT => Access::ReadOnly,
        EOI | SELF_IPI => Access::WriteOnly,
        TPR
        | SVR
        | ESR
        | LVT_CMCI
        | ICR
        | LVT_TIMER..=LVT_ERROR
        | TIMER_INITIAL_COUNT
        | TIMER_DIVIDE => Access::ReadWrite,
        _ => Access::Reserved,
    }
}

#[test]
fn every_msr_follows_table_11_6() {
    let mut a = enabled(1, GHZ);
    let mut counts = [0; 4];
    for msr in MSR_FIRST..=MSR_LAST {
        let read = a.read_msr(msr, 0);
        let zero_write = a.write_msr(msr, 0, 0);
        match table_11_6(msr) {
            Access::ReadWrite => {
                assert!(read.is_ok(), "{msr:#x}");
                assert!(
                    zero_write.is_ok(),
                    "{msr:#x}: 0 is a valid value of every RW register"
                );
                counts[0] += 1;
            }
            Access::ReadOnly => {
                assert!(read.is_ok(), "{msr:#x}");
                assert_eq!(zero_write, Err(ApicFault::ReadOnly), "{msr:#x}");
                counts[1] += 1;
            }
            Access::WriteOnly => {
                assert_eq!(read, Err(ApicFault::WriteOnly), "{msr:#x}");
                counts[2] += 1;
            }
            Access::Reserved => {
                assert_eq!(read, Err(ApicFault::NoRegister), "{msr:#x}");
                assert_eq!(zero_write, Err(ApicFault::NoRegister), "{msr:#x}");
                counts[3] += 1;
            }
        }
    }
    // 13 read/write (TPR, SVR, ESR, 7 LVTs, ICR, initial count, divide), 29 read-only
    // (ID, version, PPR, LDR, 24 ISR/TMR/IRR, current count), EOI and SELF IPI.
    assert_eq!(counts, [13, 29, 2, 256 - 44]);
    // xAPIC-only registers are gone: DFR, ICR high half, arbitration priority, remote read.
    for msr in [0x80e, 0x831, 0x809, 0x80c] {
        assert_eq!(a.read_msr(msr, 0), Err(ApicFault::NoRegister), "{msr:#x}");
    }
    // Nor are MSRs outside the range this model's: IA32_APIC_BASE is the backend's.
    for msr in [IA32_APIC_BASE, IA32_TSC_DEADLINE, 0x7ff, 0x900] {
        assert_eq!(a.read_msr(msr, 0), Err(ApicFault::NoRegister), "{msr:#x}");
        assert_eq!(
            a.write_msr(msr, 0, 0),
            Err(ApicFault::NoRegister),
            "{msr:#x}"
        );
    }
}

#[test]
fn read_only_registers_fault_even_for_the_value_they_hold() {
    let mut a = enabled(7, GHZ);
    for msr in [ID, VERSION, LDR, PPR] {
        let value = rd(&mut a, msr);
        assert_eq!(
            a.write_msr(msr, value, 0),
            Err(ApicFault::ReadOnly),
            "{msr:#x}"
        );
    }
    assert_eq!(rd(&mut a, ID), 7);
}

#[test]
fn ldr_is_derived_from_the_id() {
    for (id, ldr) in [
        (0, 0x0000_0001),
        (1, 0x0000_0002),
        (15, 0x0000_8000),
        (16, 0x0001_0001),
        (0x21, 0x0002_0002),
        (0x000f_ffff, 0xffff_8000),
        (u32::MAX, 0xffff_8000),
    ] {
        let mut a = LocalApic::new(id, GHZ);
        assert_eq!(rd(&mut a, ID), u64::from(id));
        assert_eq!(rd(&mut a, LDR), ldr, "ID {id:#x}");
        assert_eq!(u64::from(a.ldr()), ldr);
    }
}

#[test]
fn registers_hold_their_writable_bits_and_ignore_read_only_ones() {
    let mut a = enabled(0, GHZ);
    for (msr, value, reads) in [
        (TPR, 0xff, 0xff),
        (SVR, 0x3ff, 0x3ff),
        (SVR, 0x10f, 0x10f),
        (LVT_TIMER, 0x3_00ff, 0x3_00ff),
        (LVT_TIMER, 0x1_10ff, 0x1_00ff), // delivery status read-only
        (LVT_CMCI, 0x1_07ff, 0x1_07ff),
        (LVT_THERMAL, 0x1_17ff, 0x1_07ff),
        (LVT_PERF, 0x0_0400, 0x0_0400),
        (LVT_LINT0, 0x1_a7ff, 0x1_a7ff),
        (LVT_LINT0, 0x0_5700, 0x0_0700), // remote IRR and delivery status read-only
        (LVT_LINT1, 0x1_f7ff, 0x1_a7ff),
        (LVT_ERROR, 0x1_10fe, 0x1_00fe),
        (TIMER_DIVIDE, 0b1011, 0b1011),
        (TIMER_INITIAL_COUNT, 0xffff_ffff, 0xffff_ffff),
    ] {
        wr(&mut a, msr, value);
        assert_eq!(rd(&mut a, msr), reads, "{msr:#x} <- {value:#x}");
    }
    // The ICR holds 64 bits; bit 12 (delivery status in xAPIC mode) is ignored.
    let _ = send(&mut a, 0xfedc_ba98_000c_d0ff);
    assert_eq!(rd(&mut a, ICR), 0xfedc_ba98_000c_c0ff);
}

#[test]
fn reserved_bits_raise_gp_and_change_nothing() {
    let mut a = enabled(0, GHZ);
    wr(&mut a, LVT_TIMER, 0xec);
    let before = snapshot(&a);
    for (msr, value) in [
        (TPR, 0x100),
        (TPR, 1 << 32),
        (SVR, 1 << 10),
        (SVR, u64::from(SVR_EOI_SUPPRESSION) | 0x1ff),
        (SVR, 1 << 31),
        (LVT_TIMER, 1 << 18), // TSC-deadline mode, not offered
        (LVT_TIMER, 0b11 << 17),
        (LVT_TIMER, 0x400), // no delivery mode in the timer LVT
        (LVT_TIMER, 1 << 13),
        (LVT_ERROR, 0x4fe),
        (LVT_ERROR, 1 << 15),
        (LVT_CMCI, 1 << 15),
        (LVT_PERF, 1 << 17),
        (LVT_THERMAL, 1 << 13),
        (LVT_LINT0, 1 << 17),
        (LVT_LINT1, 1 << 11),
        (LVT_LINT1, 1 << 63),
        (TIMER_DIVIDE, 0b0100),
        (TIMER_DIVIDE, 0b1111), // the divide-by-1 pattern with reserved bit 2
        (TIMER_DIVIDE, 0b1_0000),
        (TIMER_INITIAL_COUNT, 1 << 32),
        (ESR, 1),
        (ESR, 1 << 32),
        (EOI, 1),
        (EOI, 1 << 40),
        (SELF_IPI, 0x100),
        (SELF_IPI, 1 << 32),
        (ICR, 1 << 13),
        (ICR, 1 << 16),
        (ICR, 1 << 17),
        (ICR, 1 << 20),
        (ICR, 1 << 31),
    ] {
        assert_eq!(
            a.write_msr(msr, value, 0),
            Err(ApicFault::Reserved),
            "{msr:#x} <- {value:#x}"
        );
        assert_eq!(snapshot(&a), before, "{msr:#x} <- {value:#x} changed state");
    }
}

#[test]
fn software_disable_forces_every_lvt_mask() {
    let mut a = enabled(0, GHZ);
    let lvts = [
        LVT_CMCI,
        LVT_TIMER,
        LVT_THERMAL,
        LVT_PERF,
        LVT_LINT0,
        LVT_LINT1,
        LVT_ERROR,
    ];
    for msr in lvts {
        wr(&mut a, msr, 0x40);
        assert_eq!(rd(&mut a, msr), 0x40, "{msr:#x} unmasked while enabled");
    }
    wr(&mut a, SVR, 0xff);
    for msr in lvts {
        assert_eq!(rd(&mut a, msr), 0x1_0040, "{msr:#x} masked by the disable");
        wr(&mut a, msr, 0x41);
        assert_eq!(
            rd(&mut a, msr),
            0x1_0041,
            "{msr:#x}: the mask cannot be cleared"
        );
    }
    wr(&mut a, SVR, 0x1ff);
    for msr in lvts {
        assert_eq!(
            rd(&mut a, msr),
            0x1_0041,
            "{msr:#x} stays masked after re-enabling"
        );
    }
    wr(&mut a, LVT_TIMER, 0xec);
    assert_eq!(rd(&mut a, LVT_TIMER), 0xec);
}

#[test]
fn a_software_disabled_apic_drops_new_interrupts_and_holds_pending_ones() {
    let mut a = enabled(0, GHZ);
    assert!(a.accept(0x50));
    wr(&mut a, SVR, 0xff);
    assert!(!a.accept(0x60), "dropped while disabled");
    assert!(!a.irr_pending(0x60));
    assert_eq!(a.next_interrupt(true), Some(0x50), "held, still delivered");
    // A self IPI while disabled goes nowhere either.
    wr(&mut a, SELF_IPI, 0x70);
    assert!(!a.irr_pending(0x70));
}

#[test]
fn priority_classes_order_delivery() {
    let mut a = enabled(0, GHZ);
    for v in [0x31, 0x52, 0x45] {
        assert!(a.accept(v));
    }
    assert_eq!(a.next_interrupt(false), None, "RFLAGS.IF clear");
    assert_eq!(a.next_interrupt(true), Some(0x52), "highest vector first");
    assert!(a.acknowledge(0x52));
    assert_eq!(rd(&mut a, ISR0 + 2), 1 << (0x52 - 0x40));
    assert_eq!(rd(&mut a, IRR0 + 2), 1 << (0x45 - 0x40));
    assert_eq!(rd(&mut a, PPR), 0x50, "class of the vector in service");
    assert_eq!(
        a.next_interrupt(true),
        None,
        "0x45 is below the class in service"
    );
    assert!(a.accept(0x5f));
    assert_eq!(
        a.next_interrupt(true),
        None,
        "same class as in service: waits"
    );
    assert!(a.accept(0x61));
    assert_eq!(a.next_interrupt(true), Some(0x61), "a higher class nests");
    assert!(a.acknowledge(0x61));
    assert_eq!(rd(&mut a, PPR), 0x60);

    // EOI completes the highest vector in service first.
    wr(&mut a, EOI, 0);
    assert!(!a.in_service(0x61) && a.in_service(0x52));
    assert_eq!(a.next_interrupt(true), None);
    wr(&mut a, EOI, 0);
    assert!(!a.in_service(0x52));
    assert_eq!(rd(&mut a, PPR), 0);
    assert_eq!(a.next_interrupt(true), Some(0x5f));
    for v in [0x5f, 0x45, 0x31] {
        assert_eq!(a.next_interrupt(true), Some(v));
        assert!(a.acknowledge(v));
        wr(&mut a, EOI, 0);
    }
    assert_eq!(a.next_interrupt(true), None);
    wr(&mut a, EOI, 0); // nothing in service: no effect
    assert!(!a.acknowledge(0x31), "not pending");
}

#[test]
fn tpr_masks_classes_at_or_below_it() {
    let mut a = enabled(0, GHZ);
    wr(&mut a, TPR, 0x45);
    assert_eq!(rd(&mut a, PPR), 0x45, "TPR with its sub-class");
    a.accept(0x4f);
    assert_eq!(a.next_interrupt(true), None, "class 4 is not above 4");
    a.accept(0x50);
    assert_eq!(a.next_interrupt(true), Some(0x50));
    a.acknowledge(0x50);
    assert_eq!(
        rd(&mut a, PPR),
        0x50,
        "the in-service class wins, sub-class 0"
    );
    wr(&mut a, TPR, 0x65);
    assert_eq!(
        rd(&mut a, PPR),
        0x65,
        "a TPR above the in-service class wins"
    );
    wr(&mut a, TPR, 0);
    wr(&mut a, EOI, 0);
    assert_eq!(a.next_interrupt(true), Some(0x4f));
    // CR8 reaches the same register (§11.8.6).
    a.set_tpr(0xf << 4);
    assert_eq!(rd(&mut a, TPR), 0xf0);
    assert_eq!(a.tpr(), 0xf0);
    assert_eq!(a.next_interrupt(true), None);
}

#[test]
fn vectors_spread_over_the_eight_irr_registers() {
    let mut a = enabled(0, GHZ);
    for v in [16u8, 31, 32, 100, 255] {
        a.accept(v);
        let msr = IRR0 + u32::from(v >> 5);
        assert_ne!(rd(&mut a, msr) & (1 << (v & 31)), 0, "vector {v}");
    }
    assert_eq!(a.next_interrupt(true), Some(255));
}

#[test]
fn level_triggered_vectors_broadcast_their_eoi() {
    let mut a = enabled(0, GHZ);
    assert!(a.accept_level(0x61));
    assert_eq!(rd(&mut a, TMR0 + 3), 1 << 1);
    a.acknowledge(0x61);
    assert_eq!(a.write_msr(EOI, 0, 0), Ok(Effect::EoiBroadcast(0x61)));
    // An edge-triggered arrival of the same vector clears its TMR bit (§11.8.4).
    a.accept_level(0x62);
    a.accept(0x62);
    assert_eq!(rd(&mut a, TMR0 + 3) & (1 << 2), 0);
    a.acknowledge(0x62);
    assert_eq!(a.write_msr(EOI, 0, 0), Ok(Effect::None));
}

#[test]
fn esr_shows_errors_only_after_a_write() {
    let mut a = enabled(0, GHZ);
    assert!(!a.accept(15), "vectors 0-15 are illegal");
    assert_eq!(rd(&mut a, IRR0), 0, "never in the IRR");
    assert_eq!(rd(&mut a, ESR), 0, "not latched yet");
    wr(&mut a, ESR, 0);
    assert_eq!(rd(&mut a, ESR), u64::from(ESR_RECEIVE_ILLEGAL_VECTOR));
    assert_eq!(
        rd(&mut a, ESR),
        u64::from(ESR_RECEIVE_ILLEGAL_VECTOR),
        "reads do not clear"
    );
    wr(&mut a, ESR, 0);
    assert_eq!(rd(&mut a, ESR), 0, "the next write clears");
    // Illegal vectors are refused even while software-disabled.
    let mut off = LocalApic::new(0, GHZ);
    off.accept(0);
    assert_eq!(errors(&mut off), u64::from(ESR_RECEIVE_ILLEGAL_VECTOR));
}

#[test]
fn errors_raise_the_error_interrupt_once_until_esr_is_written() {
    let mut a = enabled(0, GHZ);
    wr(&mut a, LVT_ERROR, 0xfe);
    a.accept(3);
    assert!(a.irr_pending(0xfe));
    a.acknowledge(0xfe);
    wr(&mut a, EOI, 0);
    a.accept(4);
    assert!(!a.irr_pending(0xfe), "disarmed until ESR is written");
    assert_eq!(errors(&mut a), u64::from(ESR_RECEIVE_ILLEGAL_VECTOR));
    a.accept(5);
    assert!(a.irr_pending(0xfe), "re-armed");

    // An illegal error vector records one more error and stops there.
    let mut b = enabled(0, GHZ);
    wr(&mut b, LVT_ERROR, 0x02);
    wr(&mut b, SELF_IPI, 0x01);
    assert_eq!(rd(&mut b, IRR0), 0);
    assert_eq!(
        errors(&mut b),
        u64::from(ESR_SEND_ILLEGAL_VECTOR | ESR_RECEIVE_ILLEGAL_VECTOR)
    );
    // A masked error LVT records errors without an interrupt.
    let mut c = enabled(0, GHZ);
    wr(&mut c, LVT_ERROR, 0x1_00fe);
    c.accept(1);
    assert!(!c.irr_pending(0xfe));
    assert_eq!(errors(&mut c), u64::from(ESR_RECEIVE_ILLEGAL_VECTOR));
}

#[test]
fn icr_writes_decode_into_ipis_for_every_delivery_mode() {
    let mut a = enabled(2, GHZ);
    let to = |dest: u64| dest << 32;
    for (icr, delivery, vector) in [
        (0x0000_00fd, Delivery::Fixed, 0xfd),
        (0x0000_0200, Delivery::Smi, 0),
        (0x0000_0400, Delivery::Nmi, 0),
        (0x0000_c500, Delivery::Init, 0),
        (0x0000_0500, Delivery::Init, 0), // edge INIT
        (0x0000_0699, Delivery::StartUp, 0x99),
    ] {
        let ipi = sent(&mut a, icr | to(5));
        assert_eq!(
            ipi,
            Ipi {
                source: 2,
                delivery,
                vector,
                destination: Destination::Physical(5),
            },
            "ICR {icr:#x}"
        );
        assert_eq!(rd(&mut a, ICR), icr | to(5));
    }
    assert_eq!(errors(&mut a), 0, "nothing went wrong");
}

#[test]
fn icr_writes_decode_every_destination_form() {
    let mut a = enabled(0x12, GHZ);
    for (icr, destination) in [
        (
            0x0000_0040 | (0x1234_5678 << 32),
            Destination::Physical(0x1234_5678),
        ),
        (
            0x0000_0040 | (0xffff_ffff << 32),
            Destination::Physical(BROADCAST),
        ),
        (
            0x0000_0840 | (0x0001_0006 << 32),
            Destination::Logical(0x0001_0006),
        ),
        (
            0x0000_0840 | (0xffff_ffff << 32),
            Destination::Logical(BROADCAST),
        ),
        (0x0004_0040 | (7 << 32), Destination::ToSelf),
        (0x0008_0040, Destination::AllIncludingSelf),
        (0x000c_0840, Destination::AllExcludingSelf),
    ] {
        let ipi = sent(&mut a, icr);
        assert_eq!(ipi.destination, destination, "ICR {icr:#x}");
        assert_eq!((ipi.delivery, ipi.vector), (Delivery::Fixed, 0x40));
    }
    // ID 0x12 is member 2 of cluster 1.
    let logical = sent(&mut a, 0x0000_0840 | (0x0001_0006 << 32));
    assert!(logical.reaches(0x12) && logical.reaches(0x11) && !logical.reaches(0x02));
}

#[test]
fn icr_writes_that_send_nothing() {
    let mut a = enabled(0, GHZ);
    // INIT level de-assert, what Linux sends after every INIT.
    assert_eq!(send(&mut a, 0x0000_8500 | (1 << 32)), Effect::None);
    // Reserved delivery modes.
    assert_eq!(send(&mut a, 0x0000_0340), Effect::None);
    assert_eq!(send(&mut a, 0x0000_0740), Effect::None);
    assert_eq!(errors(&mut a), 0);
    // Lowest priority: reserved for x2APIC IPIs, reported as a redirectable IPI.
    assert_eq!(send(&mut a, 0x0000_0140 | (1 << 32)), Effect::None);
    assert_eq!(errors(&mut a), u64::from(ESR_REDIRECTABLE_IPI));
    // A fixed IPI with an illegal vector, to others or to self: a send error only.
    assert_eq!(send(&mut a, 0x0000_000f | (1 << 32)), Effect::None);
    assert_eq!(send(&mut a, 0x0004_0001), Effect::None);
    assert_eq!(errors(&mut a), u64::from(ESR_SEND_ILLEGAL_VECTOR));
    assert_eq!(rd(&mut a, IRR0), 0);
    assert_eq!(
        rd(&mut a, ICR),
        0x0004_0001,
        "the ICR holds the value anyway"
    );
}

#[test]
fn self_ipi_logs_into_the_irr_before_the_wrmsr_completes() {
    let mut a = enabled(0, GHZ);
    wr(&mut a, SELF_IPI, 0x40);
    assert!(a.irr_pending(0x40));
    assert_eq!(rd(&mut a, TMR0 + 2), 0, "edge-triggered");
    assert_eq!(a.read_msr(SELF_IPI, 0), Err(ApicFault::WriteOnly));
    assert_eq!(a.next_interrupt(true), Some(0x40));
    wr(&mut a, SELF_IPI, 0x0f);
    assert_eq!(rd(&mut a, IRR0), 0);
    assert_eq!(
        errors(&mut a),
        u64::from(ESR_SEND_ILLEGAL_VECTOR | ESR_RECEIVE_ILLEGAL_VECTOR)
    );
}

#[test]
fn ipis_route_between_apics_through_the_backend() {
    let mut cpus: Vec<LocalApic> = (0..3).map(|id| enabled(id, GHZ)).collect();
    // CPU 0 sends a fixed IPI to all including itself, then NMIs all but itself.
    let all = sent(&mut cpus[0], 0x0008_00f0);
    assert!(deliver(&mut cpus, all).is_empty());
    assert!(cpus.iter().all(|c| c.irr_pending(0xf0)));
    let nmi = sent(&mut cpus[0], 0x000c_0400);
    assert_eq!(
        deliver(&mut cpus, nmi),
        [(1, Delivery::Nmi), (2, Delivery::Nmi)]
    );
    // Logical cluster 0, members 1 and 2.
    let some = sent(&mut cpus[0], 0x0000_08e0 | (0b110 << 32));
    deliver(&mut cpus, some);
    let got: Vec<bool> = cpus.iter().map(|c| c.irr_pending(0xe0)).collect();
    assert_eq!(got, [false, true, true]);
}

#[test]
fn lint_pins_deliver_as_their_lvt_says() {
    let mut a = enabled(0, GHZ);
    assert_eq!(
        a.raise_lint(false),
        LintDelivery::None,
        "masked after reset"
    );
    wr(&mut a, LVT_LINT0, 0x700);
    assert_eq!(a.raise_lint(false), LintDelivery::ExtInt);
    wr(&mut a, LVT_LINT1, 0x400);
    assert_eq!(a.raise_lint(true), LintDelivery::Nmi);
    wr(&mut a, LVT_LINT1, 0x500);
    assert_eq!(a.raise_lint(true), LintDelivery::Init);
    wr(&mut a, LVT_LINT1, 0x200);
    assert_eq!(a.raise_lint(true), LintDelivery::Smi);
    wr(&mut a, LVT_LINT0, 0x33);
    assert_eq!(a.raise_lint(false), LintDelivery::None);
    assert!(a.irr_pending(0x33), "fixed: into the IRR");
    wr(&mut a, LVT_LINT0, 0x133);
    assert_eq!(a.raise_lint(false), LintDelivery::None, "reserved mode 001");
    wr(&mut a, LVT_LINT0, 0x1_0400);
    assert_eq!(a.raise_lint(false), LintDelivery::None, "masked NMI");
}

#[test]
fn one_shot_timer_expires_once() {
    let mut a = timer(0, 0xec);
    wr_at(&mut a, TIMER_INITIAL_COUNT, 1_000, 5_000);
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 5_250), Ok(750));
    assert_eq!(a.next_deadline_ns(), Some(6_000));
    a.poll_timer(5_999);
    assert!(!a.irr_pending(0xec));
    a.poll_timer(6_000);
    assert!(a.irr_pending(0xec));
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 6_000), Ok(0));
    assert_eq!(a.read_msr(TIMER_INITIAL_COUNT, 6_000), Ok(1_000));
    assert_eq!(a.next_deadline_ns(), None);
    a.acknowledge(0xec);
    wr_at(&mut a, EOI, 0, 6_001);
    a.poll_timer(100_000);
    assert!(!a.irr_pending(0xec), "one-shot");
    // Writing the initial count restarts it; 0 stops it.
    wr_at(&mut a, TIMER_INITIAL_COUNT, 10, 200_000);
    assert_eq!(a.next_deadline_ns(), Some(200_010));
    wr_at(&mut a, TIMER_INITIAL_COUNT, 0, 200_005);
    assert_eq!(a.next_deadline_ns(), None);
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 200_006), Ok(0));
    a.poll_timer(300_000);
    assert!(!a.irr_pending(0xec));
}

#[test]
fn periodic_timer_reloads_and_catches_up_in_o1() {
    let mut a = timer(LVT_TIMER_PERIODIC, 0xef);
    wr_at(&mut a, TIMER_INITIAL_COUNT, 100, 0);
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 99), Ok(1));
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 100), Ok(100), "reloaded");
    assert!(
        a.irr_pending(0xef),
        "the read polled: the expiry is in the IRR"
    );
    assert_eq!(a.next_deadline_ns(), Some(200));
    a.acknowledge(0xef);
    wr_at(&mut a, EOI, 0, 150);
    a.poll_timer(250);
    assert!(a.irr_pending(0xef));
    assert_eq!(a.next_deadline_ns(), Some(300));
    // Ten billion periods later: one interrupt pending, the next deadline a period ahead.
    let later = 1_000_000_000_000_050;
    a.poll_timer(later);
    assert_eq!(a.next_deadline_ns(), Some(later + 50));
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, later), Ok(50));
}

#[test]
fn the_divide_configuration_scales_the_count_rate() {
    for (divide, divisor) in [
        (0b0000, 2),
        (0b0001, 4),
        (0b0010, 8),
        (0b0011, 16),
        (0b1000, 32),
        (0b1001, 64),
        (0b1010, 128),
        (0b1011, 1),
    ] {
        let mut a = timer(0, 0xec);
        wr(&mut a, TIMER_DIVIDE, divide);
        assert_eq!(rd(&mut a, TIMER_DIVIDE), divide);
        wr(&mut a, TIMER_INITIAL_COUNT, 1_000);
        assert_eq!(
            a.next_deadline_ns(),
            Some(1_000 * divisor),
            "divide {divide:#06b}"
        );
        assert_eq!(
            a.read_msr(TIMER_CURRENT_COUNT, 10 * divisor),
            Ok(990),
            "divide {divide:#06b}"
        );
    }
    // A change mid-count carries the remaining count on at the new rate.
    let mut a = timer(0, 0xec);
    wr_at(&mut a, TIMER_INITIAL_COUNT, 1_000, 0);
    wr_at(&mut a, TIMER_DIVIDE, DIVIDE_BY_16, 400);
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 400 + 16 * 100), Ok(500));
    assert_eq!(a.next_deadline_ns(), Some(400 + 16 * 600));
}

#[test]
fn a_masked_timer_counts_but_raises_nothing() {
    let mut a = timer(LVT_TIMER_PERIODIC | LVT_MASKED, 0xec);
    wr_at(&mut a, TIMER_INITIAL_COUNT, 100, 0);
    assert_eq!(a.next_deadline_ns(), None, "nothing to wake up for");
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 130), Ok(70), "it counts");
    a.poll_timer(1_000);
    assert!(!a.irr_pending(0xec));
    // Unmasking does not deliver the expiries missed while masked.
    wr_at(
        &mut a,
        LVT_TIMER,
        u64::from(LVT_TIMER_PERIODIC | 0xec),
        1_050,
    );
    assert!(!a.irr_pending(0xec));
    assert_eq!(a.next_deadline_ns(), Some(1_100));
    a.poll_timer(1_100);
    assert!(a.irr_pending(0xec));

    // A one-shot expiring masked is lost for good.
    let mut b = timer(LVT_MASKED, 0xec);
    wr_at(&mut b, TIMER_INITIAL_COUNT, 10, 0);
    wr_at(&mut b, LVT_TIMER, 0xec, 20);
    assert_eq!(b.next_deadline_ns(), None);
    b.poll_timer(1_000);
    assert!(!b.irr_pending(0xec));
}

#[test]
fn switching_between_one_shot_and_periodic_keeps_counting() {
    let mut a = timer(0, 0xec);
    wr_at(&mut a, TIMER_INITIAL_COUNT, 100, 0);
    wr_at(&mut a, LVT_TIMER, u64::from(LVT_TIMER_PERIODIC | 0xec), 30);
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 30), Ok(70));
    a.poll_timer(100);
    assert!(a.irr_pending(0xec));
    assert_eq!(a.next_deadline_ns(), Some(200), "re-armed as periodic");
    wr_at(&mut a, LVT_TIMER, 0xec, 150);
    a.poll_timer(200);
    assert_eq!(a.next_deadline_ns(), None, "stopped as one-shot");
}

#[test]
fn a_timer_vector_below_16_is_an_error_not_an_interrupt() {
    let mut a = timer(0, 0x05);
    wr_at(&mut a, TIMER_INITIAL_COUNT, 10, 0);
    a.poll_timer(10);
    assert_eq!(rd(&mut a, IRR0), 0);
    assert_eq!(errors(&mut a), u64::from(ESR_RECEIVE_ILLEGAL_VECTOR));
}

#[test]
fn tsc_deadline_mode_is_refused_unless_offered() {
    let mut a = enabled(0, GHZ);
    assert!(!a.offers_tsc_deadline());
    assert_eq!(
        a.write_msr(LVT_TIMER, u64::from(LVT_TIMER_TSC_DEADLINE | 0xec), 0),
        Err(ApicFault::Reserved)
    );
    assert_eq!(a.read_msr(IA32_TSC_DEADLINE, 0), Err(ApicFault::NoRegister));
    assert_eq!(
        a.write_msr(IA32_TSC_DEADLINE, 5, 0),
        Err(ApicFault::NoRegister)
    );
}

#[test]
fn tsc_deadline_mode_fires_at_the_deadline_and_disarms() {
    // The guest's TSC runs at 2 GHz and read 10,000 at time 0.
    let tsc = GuestTsc {
        hz: 2_000_000_000,
        at_zero: 10_000,
    };
    let mut a = enabled(0, GHZ).with_tsc_deadline(tsc);
    assert!(a.offers_tsc_deadline());
    // Outside TSC-deadline mode the MSR reads 0 and ignores writes.
    wr(&mut a, IA32_TSC_DEADLINE, 50_000);
    assert_eq!(rd(&mut a, IA32_TSC_DEADLINE), 0);
    assert_eq!(a.next_deadline_ns(), None);

    wr(&mut a, LVT_TIMER, u64::from(LVT_TIMER_TSC_DEADLINE | 0xec));
    wr_at(&mut a, IA32_TSC_DEADLINE, 30_000, 1_000);
    assert_eq!(a.read_msr(IA32_TSC_DEADLINE, 1_000), Ok(30_000));
    assert_eq!(a.next_deadline_ns(), Some(10_000), "20,000 cycles at 2 GHz");
    // The count registers sleep in this mode.
    wr_at(&mut a, TIMER_INITIAL_COUNT, 5, 1_000);
    assert_eq!(a.read_msr(TIMER_INITIAL_COUNT, 1_000), Ok(0));
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 1_000), Ok(0));
    a.poll_timer(9_999);
    assert!(!a.irr_pending(0xec));
    a.poll_timer(10_000);
    assert!(a.irr_pending(0xec));
    assert_eq!(a.read_msr(IA32_TSC_DEADLINE, 10_000), Ok(0), "disarmed");
    assert_eq!(a.next_deadline_ns(), None);
    a.acknowledge(0xec);
    wr_at(&mut a, EOI, 0, 10_001);

    // A deadline already past fires as the WRMSR completes; 0 disarms.
    wr_at(&mut a, IA32_TSC_DEADLINE, 1, 20_000);
    assert!(a.irr_pending(0xec));
    a.acknowledge(0xec);
    wr_at(&mut a, EOI, 0, 20_000);
    wr_at(&mut a, IA32_TSC_DEADLINE, 1 << 40, 20_000);
    wr_at(&mut a, IA32_TSC_DEADLINE, 0, 20_000);
    assert_eq!(a.next_deadline_ns(), None);

    // Leaving TSC-deadline mode disarms it, and so does entering it.
    wr_at(&mut a, IA32_TSC_DEADLINE, 1 << 40, 20_000);
    wr_at(&mut a, LVT_TIMER, 0xec, 20_000);
    wr_at(&mut a, TIMER_INITIAL_COUNT, 100, 20_000);
    wr_at(
        &mut a,
        LVT_TIMER,
        u64::from(LVT_TIMER_TSC_DEADLINE | 0xec),
        20_050,
    );
    assert_eq!(a.read_msr(IA32_TSC_DEADLINE, 20_050), Ok(0));
    assert_eq!(a.read_msr(TIMER_INITIAL_COUNT, 20_050), Ok(0));
    assert_eq!(a.next_deadline_ns(), None);
    a.poll_timer(u64::MAX);
    assert!(!a.irr_pending(0xec));
    // Mode 11b stays reserved.
    assert_eq!(
        a.write_msr(LVT_TIMER, u64::from(LVT_TIMER_MODE | 0xec), 0),
        Err(ApicFault::Reserved)
    );
}

#[test]
fn time_going_backwards_does_not_confuse_the_timer() {
    let mut a = timer(LVT_TIMER_PERIODIC, 0xec);
    wr_at(&mut a, TIMER_INITIAL_COUNT, 100, 1_000_000);
    assert_eq!(a.read_msr(TIMER_CURRENT_COUNT, 0), Ok(100));
    a.poll_timer(5);
    assert!(!a.irr_pending(0xec));
    wr_at(&mut a, TIMER_DIVIDE, DIVIDE_BY_16, 3);
    assert_eq!(a.next_deadline_ns(), Some(3 + 1_600));
}

#[test]
fn init_resets_everything_but_the_id() {
    let tsc = GuestTsc { hz: 1, at_zero: 0 };
    let mut a = timer(LVT_TIMER_PERIODIC, 0xec).with_tsc_deadline(tsc);
    wr(&mut a, TPR, 0x20);
    wr(&mut a, TIMER_INITIAL_COUNT, 10);
    a.accept(0x80);
    a.accept(1);
    a.init_reset();
    let mut fresh = LocalApic::new(0, GHZ).with_tsc_deadline(tsc);
    assert_eq!(snapshot(&a), snapshot(&fresh));
    assert_eq!(rd(&mut a, ID), rd(&mut fresh, ID));
    assert!(a.offers_tsc_deadline());
}

/// A small deterministic generator (xorshift64*), for hostile sequences.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Values that reach the interesting bits more often than uniform ones would.
    fn value(&mut self) -> u64 {
        let r = self.next();
        match r % 8 {
            0 => 0,
            1 => u64::MAX,
            2 => r >> (r % 64),
            3 => 1 << (r % 64),
            4 => r & 0xff,
            5 => r & 0xffff_ffff,
            6 => r & 0x000f_ffff,
            _ => r,
        }
    }
}

#[test]
fn every_msr_takes_junk_without_panicking() {
    let values = [
        0,
        1,
        0x0f,
        0xff,
        0x100,
        0x1_0000,
        0x2_0000,
        0x4_0000,
        0x6_00ff,
        0xffff_ffff,
        1 << 32,
        0x8000_0000_0000_0000,
        u64::MAX,
    ];
    let times = [0, 1, 1_000_000, u64::MAX / 2, u64::MAX - 1, u64::MAX, 7];
    for hz in [0, 1, GHZ, u64::MAX] {
        for tsc in [
            None,
            Some(GuestTsc {
                hz: 0,
                at_zero: u64::MAX,
            }),
            Some(GuestTsc {
                hz: u64::MAX,
                at_zero: 0,
            }),
        ] {
            let mut a = LocalApic::new(u32::MAX, hz);
            if let Some(tsc) = tsc {
                a = a.with_tsc_deadline(tsc);
            }
            for &now in &times {
                for msr in
                    (MSR_FIRST..=MSR_LAST).chain([IA32_TSC_DEADLINE, IA32_APIC_BASE, 0, u32::MAX])
                {
                    for &value in &values {
                        let _ = a.write_msr(msr, value, now);
                        let _ = a.read_msr(msr, now);
                        let _ = a.next_deadline_ns();
                    }
                }
                a.poll_timer(now);
                while let Some(v) = a.next_interrupt(true) {
                    assert!(v >= 16);
                    assert!(a.acknowledge(v));
                    let _ = a.write_msr(EOI, 0, now);
                }
            }
        }
    }
}

#[test]
fn random_hostile_sequences_keep_the_invariants() {
    let mut junk = Junk(0x9e37_79b9_7f4a_7c15);
    let interesting: Vec<u32> = (MSR_FIRST..=MSR_LAST)
        .filter(|&m| table_11_6(m) != Access::Reserved)
        .chain([IA32_TSC_DEADLINE])
        .collect();
    for round in 0..40 {
        let tsc = GuestTsc {
            hz: junk.value(),
            at_zero: junk.value(),
        };
        let mut a = LocalApic::new(junk.next() as u32, junk.value());
        if round % 2 == 0 {
            a = a.with_tsc_deadline(tsc);
        }
        let mut now = junk.value();
        for _ in 0..2_000 {
            // Time mostly moves forward a little, sometimes jumps either way.
            now = match junk.next() % 16 {
                0 => junk.value(),
                _ => now.saturating_add(junk.next() % 10_000),
            };
            let msr = interesting[(junk.next() % interesting.len() as u64) as usize];
            match junk.next() % 6 {
                0 | 1 => {
                    let _ = a.read_msr(msr, now);
                }
                2 | 3 => {
                    a.poll_timer(now);
                    let before = snapshot(&a);
                    if a.write_msr(msr, junk.value(), now).is_err() {
                        assert_eq!(snapshot(&a), before, "a faulting write changed state");
                    }
                }
                4 => {
                    let v = junk.next() as u8;
                    let _ = if junk.next().is_multiple_of(2) {
                        a.accept(v)
                    } else {
                        a.accept_level(v)
                    };
                }
                _ => {
                    a.poll_timer(now);
                    if let Some(v) = a.next_interrupt(true) {
                        assert!(v >= 16, "an illegal vector reached the CPU");
                        assert!(v >> 4 > a.ppr() >> 4);
                        assert!(a.acknowledge(v));
                    }
                }
            }
            assert_eq!(a.irr[0] & 0xffff, 0, "vectors 0-15 in the IRR");
            assert_eq!(a.isr[0] & 0xffff, 0, "vectors 0-15 in service");
            if let Some(at) = a.next_deadline_ns() {
                let _ = at; // any value is fine; computing it must not panic
            }
        }
    }
}

/// What a Linux kernel (arch/x86/kernel/apic/apic.c, x2apic_cluster.c, smpboot.c) does with
/// its x2APIC from boot to power-off, without TSC-deadline mode: the register values are
/// the ones it writes.
#[test]
fn linux_boot_replay() {
    const LOCAL_TIMER_VECTOR: u64 = 0xec;
    const ERROR_APIC_VECTOR: u64 = 0xfe;
    const RESCHEDULE_VECTOR: u8 = 0xfd;
    const CALL_FUNCTION_VECTOR: u64 = 0xfc;
    const SPURIOUS_APIC_VECTOR: u64 = 0xff;
    const APIC_DM_NMI: u64 = 0x400;
    const APIC_DM_EXTINT: u64 = 0x700;
    const APIC_DM_INIT: u64 = 0x500;
    const APIC_DM_STARTUP: u64 = 0x600;
    const APIC_INT_ASSERT: u64 = 0x4000;
    const APIC_INT_LEVELTRIG: u64 = 0x8000;
    const APIC_DEST_LOGICAL: u64 = 0x800;
    const APIC_DEST_ALLBUT: u64 = 0xc_0000;
    const APIC_LVT_MASKED: u64 = 0x1_0000;
    const APIC_LVT_TIMER_PERIODIC: u64 = 0x2_0000;
    const APIC_TDR_DIV_16: u64 = 0x3;
    const APIC_TDR_DIV_TMBASE: u64 = 0x4;
    const APIC_TDR_DIV_1: u64 = 0xb;
    const APIC_SPIV_APIC_ENABLED: u64 = 0x100;
    const APIC_SPIV_FOCUS_DISABLED: u64 = 0x200;
    const APIC_LVT_REMOTE_IRR: u64 = 0x4000;
    const APIC_SEND_PENDING: u64 = 0x1000;
    const APIC_DIVISOR: u64 = 16;
    const HZ: u64 = 250;
    const LAPIC_CAL_LOOPS: u64 = HZ / 10;
    const MS: u64 = 1_000_000;
    // A 25 MHz timer clock.
    const TIMER_HZ: u64 = 25_000_000;

    let mut cpus = vec![LocalApic::new(0, TIMER_HZ), LocalApic::new(1, TIMER_HZ)];
    let mut now = 1_000 * MS;
    let r = |a: &mut LocalApic, msr: u32, now: u64| a.read_msr(msr, now).unwrap();
    let effect = |a: &mut LocalApic, msr: u32, value: u64, now: u64| {
        a.write_msr(msr, value, now)
            .unwrap_or_else(|e| panic!("{msr:#x} <- {value:#x}: {e:?}"))
    };
    let w = |a: &mut LocalApic, msr: u32, value: u64, now: u64| {
        assert_eq!(
            effect(a, msr, value, now),
            Effect::None,
            "{msr:#x} <- {value:#x}"
        );
    };

    // check_x2apic -> apic_read_boot_cpu_id; lapic_get_maxlvt.
    let bsp = &mut cpus[0];
    assert_eq!(r(bsp, ID, now), 0);
    let version = r(bsp, VERSION, now);
    assert!(version & 0xff >= 0x14, "APIC_XAPIC(version)");
    let maxlvt = (version >> 16) & 0xff;
    assert_eq!(maxlvt, 6);

    // setup_local_APIC, on each CPU.
    let setup_local_apic = |a: &mut LocalApic, cpu: usize, now: u64| {
        let v = r(a, SVR, now) & !APIC_SPIV_APIC_ENABLED;
        w(a, SVR, v, now);
        let _ldr = r(a, LDR, now); // init_x2apic_ldr
        let v = r(a, TPR, now) & !0xff;
        w(a, TPR, v | 0x10, now);
        // apic_pending_intr_clear: nothing stale.
        for i in 0..8 {
            assert_eq!(r(a, IRR0 + i, now), 0);
            assert_eq!(r(a, ISR0 + i, now), 0);
        }
        let mut v = r(a, SVR, now) & !0xff;
        v |= APIC_SPIV_APIC_ENABLED;
        v &= !APIC_SPIV_FOCUS_DISABLED;
        w(a, SVR, v | SPURIOUS_APIC_VECTOR, now);
        w(a, LVT_PERF, APIC_DM_NMI, now); // perf_events_lapic_init
        let masked = r(a, LVT_LINT0, now) & APIC_LVT_MASKED;
        assert_ne!(masked, 0);
        w(a, LVT_LINT0, APIC_DM_EXTINT | APIC_LVT_MASKED, now);
        let lint1 = if cpu == 0 {
            APIC_DM_NMI
        } else {
            APIC_DM_NMI | APIC_LVT_MASKED
        };
        w(a, LVT_LINT1, lint1, now);
        // end_local_APIC_setup -> lapic_setup_esr
        w(a, ESR, 0, now);
        let old = r(a, ESR, now);
        w(a, LVT_ERROR, ERROR_APIC_VECTOR, now);
        w(a, ESR, 0, now);
        assert_eq!(r(a, ESR, now), old);
        assert_eq!(old, 0);
    };
    setup_local_apic(bsp, 0, now);
    assert_eq!(r(bsp, SVR, now), 0x1ff);
    assert_eq!(r(bsp, PPR, now), 0x10);

    // calibrate_APIC_clock: __setup_APIC_LVTT(0xffffffff, 0, 0), then the count read at the
    // first and the LAPIC_CAL_LOOPS-th jiffy (the loop waits on the TSC).
    let setup_lvtt = |a: &mut LocalApic, clocks: u64, oneshot: bool, irqen: bool, now: u64| {
        let mut lvtt = LOCAL_TIMER_VECTOR;
        if !oneshot {
            lvtt |= APIC_LVT_TIMER_PERIODIC;
        }
        if !irqen {
            lvtt |= APIC_LVT_MASKED;
        }
        w(a, LVT_TIMER, lvtt, now);
        let tdcr = r(a, TIMER_DIVIDE, now);
        w(
            a,
            TIMER_DIVIDE,
            (tdcr & !(APIC_TDR_DIV_1 | APIC_TDR_DIV_TMBASE)) | APIC_TDR_DIV_16,
            now,
        );
        if !oneshot {
            w(a, TIMER_INITIAL_COUNT, clocks / APIC_DIVISOR, now);
        }
    };
    setup_lvtt(bsp, 0xffff_ffff, false, false, now);
    let jiffy = 1_000 * MS / HZ;
    let t1 = r(bsp, TIMER_CURRENT_COUNT, now + jiffy);
    let t2 = r(
        bsp,
        TIMER_CURRENT_COUNT,
        now + jiffy * (1 + LAPIC_CAL_LOOPS),
    );
    let delta = t1 - t2;
    let lapic_timer_period = delta * APIC_DIVISOR / LAPIC_CAL_LOOPS;
    assert_eq!(lapic_timer_period, TIMER_HZ / HZ, "timer clocks per jiffy");
    assert!(
        !bsp.irr_pending(LOCAL_TIMER_VECTOR as u8),
        "masked throughout"
    );
    now += jiffy * (2 + LAPIC_CAL_LOOPS);

    // The clockevent in periodic mode: a tick every jiffy.
    setup_lvtt(bsp, lapic_timer_period, false, true, now);
    for tick in 1..=3 {
        let at = bsp.next_deadline_ns().expect("armed");
        assert_eq!(at, now + tick * jiffy);
        bsp.poll_timer(at);
        let vector = bsp.next_interrupt(true).expect("the tick");
        assert_eq!(u64::from(vector), LOCAL_TIMER_VECTOR);
        bsp.acknowledge(vector);
        w(bsp, EOI, 0, at);
    }
    now += 3 * jiffy;

    // Oneshot mode (NO_HZ): lapic_timer_set_oneshot, then lapic_next_event per event.
    setup_lvtt(bsp, lapic_timer_period, true, true, now);
    assert_eq!(
        bsp.next_deadline_ns(),
        Some(now + jiffy),
        "the count started in periodic mode runs on, to expire once"
    );
    let delta_ticks = 12_345; // clockevent ticks at the divided rate
    w(bsp, TIMER_INITIAL_COUNT, delta_ticks, now);
    let at = bsp.next_deadline_ns().unwrap();
    assert_eq!(
        at,
        now + (delta_ticks * APIC_DIVISOR * 1_000_000_000).div_ceil(TIMER_HZ)
    );
    bsp.poll_timer(at);
    let vector = bsp.next_interrupt(true).unwrap();
    bsp.acknowledge(vector);
    w(bsp, TIMER_INITIAL_COUNT, 0x7fff_ffff, at); // the handler programs the next event
    w(bsp, EOI, 0, at);
    now = at;

    // SMP bring-up of APIC 1 (wakeup_secondary_cpu_via_init): ESR cleared, INIT asserted,
    // INIT de-asserted, two STARTUPs; the ESR read back after each.
    let trampoline_page = 0x9a;
    let mut ipis = Vec::new();
    w(bsp, ESR, 0, now);
    r(bsp, ESR, now);
    for icr in [
        APIC_INT_LEVELTRIG | APIC_INT_ASSERT | APIC_DM_INIT,
        APIC_INT_LEVELTRIG | APIC_DM_INIT,
        APIC_DM_STARTUP | trampoline_page,
        APIC_DM_STARTUP | trampoline_page,
    ] {
        if let Effect::SendIpi(ipi) = effect(bsp, ICR, icr | (1 << 32), now) {
            ipis.push(ipi);
        }
        w(bsp, ESR, 0, now);
        assert_eq!(r(bsp, ESR, now) & 0xef, 0, "accept_status");
    }
    let seen: Vec<(Delivery, u8, Destination)> = ipis
        .iter()
        .map(|i| (i.delivery, i.vector, i.destination))
        .collect();
    assert_eq!(
        seen,
        [
            (Delivery::Init, 0, Destination::Physical(1)),
            (Delivery::StartUp, 0x9a, Destination::Physical(1)),
            (Delivery::StartUp, 0x9a, Destination::Physical(1)),
        ]
    );
    for ipi in ipis {
        let others = deliver(&mut cpus, ipi);
        if others == [(1, Delivery::Init)] {
            cpus[1].init_reset();
        }
    }
    let ap = &mut cpus[1];
    assert_eq!(r(ap, ID, now), 1);
    setup_local_apic(ap, 1, now);
    assert_eq!(r(ap, LDR, now), 0x0000_0002);

    // x2apic_cluster: a reschedule IPI to CPU 1 (logical, cluster 0, member bit 1), and a
    // function call to all but self.
    let ldr1 = r(&mut cpus[1], LDR, now);
    let Effect::SendIpi(resched) = effect(
        &mut cpus[0],
        ICR,
        APIC_DEST_LOGICAL | u64::from(RESCHEDULE_VECTOR) | (ldr1 << 32),
        now,
    ) else {
        panic!("no IPI");
    };
    assert!(deliver(&mut cpus, resched).is_empty());
    let Effect::SendIpi(call) = effect(
        &mut cpus[0],
        ICR,
        APIC_DEST_ALLBUT | CALL_FUNCTION_VECTOR,
        now,
    ) else {
        panic!("no IPI");
    };
    deliver(&mut cpus, call);
    assert!(!cpus[0].irr_pending(CALL_FUNCTION_VECTOR as u8));
    let ap = &mut cpus[1];
    assert_eq!(ap.next_interrupt(true), Some(RESCHEDULE_VECTOR));
    ap.acknowledge(RESCHEDULE_VECTOR);
    w(ap, EOI, 0, now);
    assert_eq!(ap.next_interrupt(true), Some(CALL_FUNCTION_VECTOR as u8));
    ap.acknowledge(CALL_FUNCTION_VECTOR as u8);
    w(ap, EOI, 0, now);
    assert_eq!(ap.next_interrupt(true), None);

    // lapic_timer_shutdown, then power-off: disconnect_bsp_APIC writes the read-only remote
    // IRR and send-pending bits back into LINT0/LINT1; apic_soft_disable.
    let bsp = &mut cpus[0];
    let v = r(bsp, LVT_TIMER, now) | APIC_LVT_MASKED | LOCAL_TIMER_VECTOR;
    w(bsp, LVT_TIMER, v, now);
    w(bsp, TIMER_INITIAL_COUNT, 0, now);
    assert_eq!(bsp.next_deadline_ns(), None);
    let v = (r(bsp, SVR, now) & !0xff) | APIC_SPIV_APIC_ENABLED | 0xf;
    w(bsp, SVR, v, now);
    for (lvt, mode) in [(LVT_LINT0, APIC_DM_EXTINT), (LVT_LINT1, APIC_DM_NMI)] {
        let clear =
            0x700 | APIC_SEND_PENDING | 0x2000 | APIC_LVT_REMOTE_IRR | 0x8000 | APIC_LVT_MASKED;
        let v = (r(bsp, lvt, now) & !clear) | APIC_LVT_REMOTE_IRR | APIC_SEND_PENDING | mode;
        w(bsp, lvt, v, now);
        assert_eq!(r(bsp, lvt, now), mode, "read-only bits dropped");
    }
    assert_eq!(bsp.raise_lint(false), LintDelivery::ExtInt, "virtual wire");
    let v = r(bsp, SVR, now) & !APIC_SPIV_APIC_ENABLED;
    w(bsp, SVR, v, now);
    assert!(!bsp.software_enabled());
}

/// Linux's "lapic-deadline" clockevent (CPUID.01H:ECX[24] set): `__setup_APIC_LVTT` with
/// `APIC_LVT_TIMER_TSCDEADLINE`, `lapic_next_deadline` (rdtsc + delta into
/// IA32_TSC_DEADLINE), and `lapic_timer_shutdown`.
#[test]
fn linux_tsc_deadline_replay() {
    const LOCAL_TIMER_VECTOR: u64 = 0xec;
    const APIC_LVT_TIMER_TSCDEADLINE: u64 = 0x4_0000;
    const APIC_LVT_MASKED: u64 = 0x1_0000;
    let tsc = GuestTsc {
        hz: 2_500_000_000,
        at_zero: 123_456_789,
    };
    // What the guest's rdtsc reads at `now`.
    let rdtsc = |now: u64| tsc.at_zero + now * 5 / 2;
    let mut a = enabled(0, 25_000_000).with_tsc_deadline(tsc);
    let mut now = 5_000_000;
    wr_at(
        &mut a,
        LVT_TIMER,
        LOCAL_TIMER_VECTOR | APIC_LVT_TIMER_TSCDEADLINE,
        now,
    );
    for delta_ns in [4_000_000u64, 1, 999_999] {
        let deadline = rdtsc(now) + delta_ns * 5 / 2;
        wr_at(&mut a, IA32_TSC_DEADLINE, deadline, now);
        let at = a.next_deadline_ns().expect("armed");
        assert_eq!(at, now + delta_ns);
        assert!(
            rdtsc(at) >= deadline && rdtsc(at - 1) < deadline,
            "neither early nor late"
        );
        a.poll_timer(at - 1);
        assert_eq!(a.next_interrupt(true), None);
        a.poll_timer(at);
        assert_eq!(a.next_interrupt(true), Some(LOCAL_TIMER_VECTOR as u8));
        a.acknowledge(LOCAL_TIMER_VECTOR as u8);
        wr_at(&mut a, EOI, 0, at);
        now = at + 10;
    }
    // lapic_timer_shutdown.
    let v = a.read_msr(LVT_TIMER, now).unwrap() | APIC_LVT_MASKED | LOCAL_TIMER_VECTOR;
    wr_at(&mut a, LVT_TIMER, v, now);
    wr_at(&mut a, IA32_TSC_DEADLINE, 0, now);
    assert_eq!(a.next_deadline_ns(), None);
    a.poll_timer(u64::MAX);
    assert_eq!(a.next_interrupt(true), None);
}

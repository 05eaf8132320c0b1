use super::*;

/// Linux's GICD_INT_DEF_PRI_X4 (include/linux/irqchip/arm-gic.h): priority 0xa0 in each byte.
const DEF_PRI_X4: u32 = 0xa0a0_a0a0;
/// The PL011's SPI on QEMU's virt machine (SPI 1 in the device tree).
const UART: u32 = 33;
/// The EL1 virtual timer's PPI (PPI 11 in the device tree).
const VTIMER: u32 = 27;

/// QEMU virt's affinities: CPU n has Aff0 = n % 8... here simply Aff0 = n (n < 16).
fn gic(cpus: usize, spis: u32) -> VGic {
    let affinities: Vec<u32> = (0..cpus as u32).collect();
    VGic::new(&affinities, spis)
}

fn dr(g: &mut VGic, offset: u64) -> u32 {
    let v = g.read_distributor(offset, 4);
    assert!(v <= u64::from(u32::MAX), "32-bit read at {offset:#x}");
    v as u32
}

fn dw(g: &mut VGic, offset: u64, value: u32) -> CpuSet {
    g.write_distributor(offset, 4, u64::from(value))
}

/// A 32-bit read of CPU `cpu`'s RD_base frame.
fn rr(g: &mut VGic, cpu: usize, offset: u64) -> u32 {
    g.read_redistributor(cpu as u64 * REDISTRIBUTOR_STRIDE + offset, 4) as u32
}

fn rw(g: &mut VGic, cpu: usize, offset: u64, value: u32) -> CpuSet {
    g.write_redistributor(
        cpu as u64 * REDISTRIBUTOR_STRIDE + offset,
        4,
        u64::from(value),
    )
}

/// A 32-bit read / write of CPU `cpu`'s SGI_base frame.
fn sr(g: &mut VGic, cpu: usize, offset: u64) -> u32 {
    rr(g, cpu, SGI_BASE + offset)
}

fn sw(g: &mut VGic, cpu: usize, offset: u64, value: u32) -> CpuSet {
    rw(g, cpu, SGI_BASE + offset, value)
}

fn intids(list: &[Pending]) -> Vec<u32> {
    list.iter().map(|p| p.intid).collect()
}

fn set(cpus: &[usize]) -> CpuSet {
    cpus.iter().copied().collect()
}

/// Distributor on (Group 1), every CPU awake, `intid` enabled (SPI or, on every CPU, private).
fn running(cpus: usize, spis: u32) -> VGic {
    let mut g = gic(cpus, spis);
    let _ = dw(&mut g, GICD_CTLR, CTLR_ENABLE_GRP1);
    for cpu in 0..cpus {
        let _ = rw(&mut g, cpu, GICR_WAKER, 0);
    }
    g
}

fn enable_spi(g: &mut VGic, intid: u32) {
    let _ = dw(
        g,
        GICD_ISENABLER + u64::from(intid / 32) * 4,
        1 << (intid % 32),
    );
}

fn enable_private(g: &mut VGic, cpu: usize, intid: u32) {
    let _ = sw(g, cpu, GICR_ISENABLER0, 1 << intid);
}

#[test]
fn distributor_reset_values() {
    let mut g = gic(2, 64);
    assert_eq!(
        dr(&mut g, GICD_CTLR),
        0x50,
        "ARE and DS set, groups disabled, RWP 0"
    );
    // ITLinesNumber 2 (96 INTIDs), IDbits 9 (10 bits), A3V, RSS; no LPIs, MBIs, security.
    assert_eq!(
        dr(&mut g, GICD_TYPER),
        2 | (9 << 19) | (1 << 24) | (1 << 26)
    );
    assert_eq!(dr(&mut g, GICD_IIDR), 0x5000_0000);
    assert_eq!(dr(&mut g, GICD_TYPER2), 0);
    assert_eq!(dr(&mut g, GICD_STATUSR), 0);
    assert_eq!(dr(&mut g, GICD_PIDR2), 0x30);
    assert_eq!(
        dr(&mut g, GICD_PIDR2) & 0xf0,
        0x30,
        "Linux: GIC_PIDR2_ARCH_GICv3"
    );
    for id in (0xffd0..0x1_0000).step_by(4).filter(|o| *o != GICD_PIDR2) {
        assert_eq!(dr(&mut g, id), 0, "ID register {id:#x}");
    }
    // Word 0 (SGIs/PPIs) is the redistributors' with ARE: RAZ/WI here.
    for block in (GICD_IGROUPR..GICD_IPRIORITYR).step_by(0x80) {
        assert_eq!(dr(&mut g, block), 0, "{block:#x} word 0");
    }
    assert_eq!(
        dr(&mut g, GICD_IGROUPR + 4),
        u32::MAX,
        "SPIs 32-63 in Group 1"
    );
    assert_eq!(
        dr(&mut g, GICD_IGROUPR + 8),
        u32::MAX,
        "SPIs 64-95 in Group 1"
    );
    assert_eq!(dr(&mut g, GICD_IGROUPR + 12), 0, "unimplemented");
    for block in (GICD_ISENABLER..GICD_IPRIORITYR).step_by(0x80) {
        for n in 1..4 {
            assert_eq!(dr(&mut g, block + 4 * n), 0, "{block:#x}[{n}]");
        }
    }
    for intid in 32..96u64 {
        assert_eq!(g.read_distributor(GICD_IPRIORITYR + intid, 1), 0);
        assert_eq!(g.read_distributor(GICD_IROUTER + 8 * intid, 8), 0);
    }
    for n in 0..12 {
        assert_eq!(dr(&mut g, GICD_ICFGR + 4 * n), 0, "ICFGR{n}: level");
    }
    assert_eq!(g.stats(), Stats::default(), "nothing above was refused");
}

#[test]
fn redistributor_reset_values() {
    let affinities = [0x0000_0000, 0x0000_0001, 0x0001_0000, 0x0100_0203];
    let mut g = VGic::new(&affinities, 32);
    assert_eq!(g.redistributor_region_size(), 4 * 0x20000);
    for (cpu, aff) in affinities.iter().enumerate() {
        let last = if cpu == 3 { 1 << 4 } else { 0 };
        let typer = (u64::from(*aff) << 32) | ((cpu as u64) << 8) | last;
        let base = cpu as u64 * REDISTRIBUTOR_STRIDE;
        assert_eq!(g.read_redistributor(base + GICR_TYPER, 8), typer);
        assert_eq!(g.gicr_typer(cpu), typer);
        assert_eq!(rr(&mut g, cpu, GICR_TYPER), typer as u32, "low half");
        assert_eq!(rr(&mut g, cpu, GICR_TYPER + 4), *aff, "high half");
        assert_eq!(rr(&mut g, cpu, GICR_CTLR), 0, "no LPIs, RWP and UWP 0");
        assert_eq!(rr(&mut g, cpu, GICR_IIDR), 0x5000_0000);
        assert_eq!(rr(&mut g, cpu, GICR_WAKER), 0b110, "asleep at reset");
        assert_eq!(rr(&mut g, cpu, GICR_PIDR2), 0x30);
        assert_eq!(sr(&mut g, cpu, GICR_IGROUPR0), u32::MAX);
        assert_eq!(sr(&mut g, cpu, GICR_IGRPMODR0), 0);
        for reg in [
            GICR_ISENABLER0,
            GICR_ICENABLER0,
            GICR_ISPENDR0,
            GICR_ICPENDR0,
            GICR_ISACTIVER0,
            GICR_ICACTIVER0,
        ] {
            assert_eq!(sr(&mut g, cpu, reg), 0, "{reg:#x}");
        }
        for n in 0..8 {
            assert_eq!(sr(&mut g, cpu, GICR_IPRIORITYR + 4 * n), 0);
        }
        assert_eq!(sr(&mut g, cpu, GICR_ICFGR0), 0xaaaa_aaaa, "SGIs edge");
        assert_eq!(sr(&mut g, cpu, GICR_ICFGR1), 0, "PPIs level");
        assert!(!g.awake(cpu));
        assert_eq!(g.cpu_with_affinity(*aff), Some(cpu));
    }
    assert_eq!(g.stats(), Stats::default());
}

#[test]
fn typer_sizes_follow_spi_count() {
    for (spis, it_lines, implemented) in [
        (0, 0, 0),
        (1, 1, 32),
        (32, 1, 32),
        (33, 2, 64),
        (960, 30, 960),
        (961, 31, 988),
        (988, 31, 988),
        (u32::MAX, 31, 988),
    ] {
        let mut g = gic(1, spis);
        assert_eq!(g.spi_count(), implemented, "spi_count {spis}");
        assert_eq!(dr(&mut g, GICD_TYPER) & 0x1f, it_lines, "spi_count {spis}");
        // Linux: GIC_LINE_NR = min(32 * (ITLinesNumber + 1), 1020).
        let lines = (32 * (it_lines + 1)).min(1020);
        assert_eq!(lines, 32 + implemented);
    }
    // With ITLinesNumber 31, INTIDs 1020-1023 do not exist.
    let mut g = gic(1, 988);
    assert_eq!(dr(&mut g, GICD_IGROUPR + 4 * 31), 0x0fff_ffff);
    let _ = dw(&mut g, GICD_ISENABLER + 4 * 31, u32::MAX);
    assert_eq!(dr(&mut g, GICD_ISENABLER + 4 * 31), 0x0fff_ffff);
    let _ = g.write_distributor(GICD_IPRIORITYR + 1020, 1, 0xff);
    assert_eq!(g.read_distributor(GICD_IPRIORITYR + 1020, 1), 0);
    let _ = g.write_distributor(GICD_IROUTER + 8 * 1020, 8, 1);
    assert_eq!(g.read_distributor(GICD_IROUTER + 8 * 1020, 8), 0);
    let _ = g.write_distributor(GICD_IROUTER + 8 * 1019, 8, 1);
    assert_eq!(g.read_distributor(GICD_IROUTER + 8 * 1019, 8), 1);
}

// ---- Linux replays (drivers/irqchip/irq-gic-v3.c, irq-gic-common.c). ----

/// `gic_do_wait_for_rwp`: polls a bit of GICD_CTLR / GICR_CTLR (given as `ctlr`); the model
/// must have it clear at once, or Linux spins for a second and complains.
fn wait_for_rwp(ctlr: u32, bit: u32) {
    assert_eq!(ctlr & bit, 0, "RWP never pending");
}

/// `gic_mpidr_to_affinity` applied to a GICR_TYPER[63:32]-style affinity: the IROUTER value.
fn linux_irouter(aff: u32) -> u64 {
    let aff3 = u64::from(aff >> 24);
    let aff2 = u64::from((aff >> 16) & 0xff);
    let aff1 = u64::from((aff >> 8) & 0xff);
    let aff0 = u64::from(aff & 0xff);
    (aff3 << 32) | (aff2 << 16) | (aff1 << 8) | aff0
}

/// `gic_validate_dist_version`, the GICD_TYPER/IIDR/TYPER2 reads of `gic_init_bases`, and
/// `gic_dist_init` with `gic_dist_config`, for a boot CPU with `boot_aff`. Returns
/// GIC_LINE_NR.
fn linux_dist_init(g: &mut VGic, boot_aff: u32) -> u32 {
    let pidr2 = dr(g, GICD_PIDR2) & 0xf0;
    assert!(pidr2 == 0x30 || pidr2 == 0x40, "no distributor detected");
    let typer = dr(g, GICD_TYPER);
    let lines = (32 * ((typer & 0x1f) + 1)).min(1020);
    let _iidr = dr(g, GICD_IIDR);
    assert_eq!(dr(g, GICD_TYPER2), 0);
    assert_eq!(typer & (1 << 17), 0, "no LPIs: no ITS set-up");
    assert_eq!(typer & (1 << 16), 0, "no MBIs");
    assert_eq!(typer & (1 << 8), 0, "no extended SPIs");
    assert_eq!(((typer >> 19) & 0x1f) + 1, 10, "IDbits");

    // gic_dist_init
    let _ = dw(g, GICD_CTLR, 0);
    wait_for_rwp(dr(g, GICD_CTLR), 1 << 31);
    for i in (32..lines).step_by(32) {
        let _ = dw(g, GICD_IGROUPR + u64::from(i / 8), !0);
    }
    // gic_dist_config: level-triggered, priority 0xa0, deactivated and disabled.
    for i in (32..lines).step_by(16) {
        let _ = dw(g, GICD_ICFGR + u64::from(i / 4), 0);
    }
    for i in (32..lines).step_by(4) {
        let _ = dw(g, GICD_IPRIORITYR + u64::from(i), DEF_PRI_X4);
    }
    for i in (32..lines).step_by(32) {
        let _ = dw(g, GICD_ICACTIVER + u64::from(i / 8), !0);
        let _ = dw(g, GICD_ICENABLER + u64::from(i / 8), !0);
    }
    wait_for_rwp(dr(g, GICD_CTLR), 1 << 31);
    // ARE_NS | ENABLE_G1A | ENABLE_G1
    let _ = dw(g, GICD_CTLR, (1 << 4) | (1 << 1) | 1);
    let affinity = linux_irouter(boot_aff);
    for i in 32..lines {
        // gic_write_irouter: writeq on arm64.
        let _ = g.write_distributor(GICD_IROUTER + 8 * u64::from(i), 8, affinity);
    }
    lines
}

/// `gic_iterate_rdists` with `__gic_populate_rdist`: the RD_base offset of the CPU with
/// affinity `aff`, found by walking GICR_TYPER until Last.
fn linux_find_rdist(g: &mut VGic, aff: u32) -> Option<u64> {
    let pidr2 = g.read_redistributor(GICR_PIDR2, 4) as u32 & 0xf0;
    if pidr2 != 0x30 && pidr2 != 0x40 {
        return None;
    }
    let mut ptr = 0u64;
    for _ in 0..=MAX_CPUS {
        let typer = g.read_redistributor(ptr + GICR_TYPER, 8);
        if (typer >> 32) as u32 == aff {
            return Some(ptr);
        }
        ptr += 0x20000;
        if typer & (1 << 1) != 0 {
            ptr += 0x20000; // VLPIS: VLPI_base and a reserved frame
        }
        if typer & (1 << 4) != 0 {
            return None;
        }
    }
    panic!("GICR_TYPER.Last never seen");
}

/// `gic_cpu_init` on the CPU with affinity `aff`: find its redistributor, wake it
/// (`gic_enable_redist(true)`), put SGIs and PPIs in Group 1, `gic_cpu_config`, RWP.
fn linux_cpu_init(g: &mut VGic, aff: u32) -> u64 {
    let rbase = linux_find_rdist(g, aff).expect("CPU has no re-distributor");
    // gic_enable_redist(true)
    let waker = g.read_redistributor(rbase + GICR_WAKER, 4) as u32;
    let _ = g.write_redistributor(rbase + GICR_WAKER, 4, u64::from(waker & !(1 << 1)));
    let mut count = 1_000_000;
    loop {
        let waker = g.read_redistributor(rbase + GICR_WAKER, 4) as u32;
        if waker & (1 << 2) == 0 {
            break;
        }
        count -= 1;
        assert!(count > 999_990, "redistributor failed to wakeup");
    }
    let sgi = rbase + SGI_BASE;
    // gic_update_rdist_properties saw PPInum 0: ppi_nr = 16, one IGROUPR0 write.
    let _ = g.write_redistributor(sgi + GICR_IGROUPR0, 4, 0xffff_ffff);
    // gic_cpu_config(rbase, 32, gic_redist_wait_for_rwp)
    let _ = g.write_redistributor(sgi + GICR_ICACTIVER0, 4, 0xffff_ffff);
    let _ = g.write_redistributor(sgi + GICR_ICENABLER0, 4, 0xffff_ffff);
    for i in (0..32u64).step_by(4) {
        let _ = g.write_redistributor(sgi + GICR_IPRIORITYR + i, 4, u64::from(DEF_PRI_X4));
    }
    let _ = g.write_redistributor(sgi + GICR_ISENABLER0, 4, 0x0000_ffff);
    // gic_redist_wait_for_rwp: GICR_CTLR_RWP (bit 3); before 5.18, bit 31.
    let ctlr = g.read_redistributor(rbase + GICR_CTLR, 4) as u32;
    wait_for_rwp(ctlr, (1 << 3) | (1 << 31));
    rbase
}

/// `gic_configure_irq` for `IRQ_TYPE_LEVEL_HIGH` (clear the edge bit) or
/// `IRQ_TYPE_EDGE_RISING` (set it) at `base` (GICD or SGI_base), reading back like Linux.
fn linux_set_type(
    read: &mut dyn FnMut(u64) -> u32,
    write: &mut dyn FnMut(u64, u32),
    irq: u32,
    edge: bool,
) {
    let confmask = 2u32 << ((irq % 16) * 2);
    let confoff = u64::from(irq / 16) * 4;
    let old = read(GICD_ICFGR + confoff);
    let val = if edge {
        old | confmask
    } else {
        old & !confmask
    };
    if val == old {
        return;
    }
    write(GICD_ICFGR + confoff, val);
    assert_eq!(
        read(GICD_ICFGR + confoff),
        val,
        "GIC: PPI/SPI misconfigured"
    );
}

#[test]
fn linux_boot_replay() {
    // Two CPUs as QEMU virt makes them (MPIDR Aff0 0 and 1), 64 SPIs.
    let mut g = gic(2, 64);
    let lines = linux_dist_init(&mut g, 0);
    assert_eq!(lines, 96);
    assert_eq!(dr(&mut g, GICD_CTLR), (1 << 6) | (1 << 4) | 0b11);
    for i in 32..lines {
        assert_eq!(g.read_distributor(GICD_IROUTER + 8 * u64::from(i), 8), 0);
        assert_eq!(g.read_distributor(GICD_IPRIORITYR + u64::from(i), 1), 0xa0);
    }
    assert_eq!(dr(&mut g, GICD_ISENABLER + 4), 0);

    // Boot CPU, then the secondary when it comes up (gic_starting_cpu).
    let rd0 = linux_cpu_init(&mut g, 0);
    assert_eq!(rd0, 0);
    assert!(g.awake(0) && !g.awake(1));
    let rd1 = linux_cpu_init(&mut g, 1);
    assert_eq!(rd1, 0x20000);
    for cpu in 0..2 {
        assert_eq!(
            sr(&mut g, cpu, GICR_ISENABLER0),
            0xffff,
            "SGIs on, PPIs off"
        );
        assert_eq!(sr(&mut g, cpu, GICR_IPRIORITYR + 12), DEF_PRI_X4);
    }
    assert!(g.deliverable(0).is_empty() && g.deliverable(1).is_empty());

    // The arch timer: PPI 27, level-high, enabled on each CPU (gic_set_type, gic_unmask_irq).
    for cpu in 0..2 {
        let base = cpu as u64 * REDISTRIBUTOR_STRIDE + SGI_BASE;
        let cell = core::cell::RefCell::new(&mut g);
        linux_set_type(
            &mut |o| cell.borrow_mut().read_redistributor(base + o, 4) as u32,
            &mut |o, v| {
                let _ = cell
                    .borrow_mut()
                    .write_redistributor(base + o, 4, u64::from(v));
            },
            VTIMER,
            false,
        );
        let _ = sw(&mut g, cpu, GICR_ISENABLER0, 1 << VTIMER);
    }
    // The PL011: SPI 33, level-high, enabled, affinity to CPU 1 (gic_set_affinity: mask,
    // IROUTER, unmask).
    {
        let cell = core::cell::RefCell::new(&mut g);
        linux_set_type(
            &mut |o| cell.borrow_mut().read_distributor(o, 4) as u32,
            &mut |o, v| {
                let _ = cell.borrow_mut().write_distributor(o, 4, u64::from(v));
            },
            UART,
            false,
        );
    }
    enable_spi(&mut g, UART);
    let _ = dw(&mut g, GICD_ICENABLER + 4, 1 << 1);
    let _ = g.write_distributor(GICD_IROUTER + 8 * u64::from(UART), 8, linux_irouter(1));
    enable_spi(&mut g, UART);

    // The timer fires on CPU 0; the UART on CPU 1.
    assert_eq!(g.set_ppi_level(0, VTIMER, true), set(&[0]));
    assert_eq!(g.set_spi_level(UART, true), set(&[1]));
    assert_eq!(
        g.deliverable(0),
        [Pending {
            intid: VTIMER,
            priority: 0xa0,
            level: true
        }]
    );
    assert_eq!(intids(&g.deliverable(1)), [UART]);
    assert_eq!(g.inject(0, VTIMER).map(|p| p.intid), Ok(VTIMER));
    assert_eq!(g.inject(1, UART).map(|p| p.level), Ok(true));
    // The guest's handlers quiet the devices, then deactivate.
    let _ = g.set_ppi_level(0, VTIMER, false);
    let _ = g.set_spi_level(UART, false);
    assert!(g.completed(0, VTIMER).is_ok_and(|k| k.is_empty()));
    assert!(g.completed(1, UART).is_ok_and(|k| k.is_empty()));

    // An IPI from CPU 0 to CPU 1 (gic_ipi_send_mask -> gic_send_sgi): cluster 0, tlist bit 1.
    let value = (1u64 << 1) | (3 << 24);
    assert_eq!(g.send_sgi1r(0, value), set(&[1]));
    assert_eq!(
        g.deliverable(1),
        [Pending {
            intid: 3,
            priority: 0xa0,
            level: false
        }]
    );
    assert_eq!(
        g.stats(),
        Stats::default(),
        "Linux made no access the model refused"
    );
}

#[test]
fn linux_finds_each_redistributor_by_affinity_and_stops_at_last() {
    // Two clusters and an Aff3: 0.0.0.0, 0.0.0.1, 0.0.1.0, 0.0.1.1, 1.2.3.4.
    let affinities = [
        0x0000_0000,
        0x0000_0001,
        0x0000_0100,
        0x0000_0101,
        0x0102_0304,
    ];
    let mut g = VGic::new(&affinities, 32);
    for (cpu, aff) in affinities.iter().enumerate() {
        assert_eq!(
            linux_find_rdist(&mut g, *aff),
            Some(cpu as u64 * 0x20000),
            "{aff:#x}"
        );
    }
    assert_eq!(
        linux_find_rdist(&mut g, 0x0000_0002),
        None,
        "Last ends the walk"
    );
    // Every CPU initialises; all end awake and programmed.
    for aff in affinities {
        let _ = linux_cpu_init(&mut g, aff);
    }
    assert!((0..5).all(|cpu| g.awake(cpu)));
    // Beyond the last frame: nothing, and counted.
    let end = g.redistributor_region_size();
    assert_eq!(g.read_redistributor(end + GICR_TYPER, 8), 0);
    assert_eq!(g.read_redistributor(end + GICR_PIDR2, 4), 0);
    assert_eq!(g.stats().redistributor_rejected, 2);
}

#[test]
fn waker_handshake_and_sleeping_redistributors_hold_interrupts() {
    let mut g = gic(2, 32);
    let _ = dw(&mut g, GICD_CTLR, CTLR_ENABLE_GRP1);
    enable_private(&mut g, 0, VTIMER);
    assert!(g.set_ppi_level(0, VTIMER, true).is_empty(), "asleep");
    assert!(g.deliverable(0).is_empty());
    // Clearing ProcessorSleep makes ChildrenAsleep read 0 at once, and releases the PPI.
    assert_eq!(rw(&mut g, 0, GICR_WAKER, 0), set(&[0]));
    assert_eq!(rr(&mut g, 0, GICR_WAKER), 0);
    assert_eq!(intids(&g.deliverable(0)), [VTIMER]);
    // gic_enable_redist(false): set ProcessorSleep, read it back, wait for ChildrenAsleep.
    assert!(rw(&mut g, 0, GICR_WAKER, 1 << 1).is_empty());
    assert_eq!(rr(&mut g, 0, GICR_WAKER), 0b110);
    assert!(g.deliverable(0).is_empty());
    // Only bits 1 reaches the register; bits 0 and 31 are RAZ/WI.
    let _ = rw(&mut g, 0, GICR_WAKER, 0x8000_0001);
    assert_eq!(rr(&mut g, 0, GICR_WAKER), 0);
    // SGIs to a sleeping CPU are held pending, delivered once it wakes.
    enable_private(&mut g, 1, 5);
    assert_eq!(g.send_sgi1r(0, (1 << 1) | (5 << 24)), set(&[1]));
    assert!(g.deliverable(1).is_empty());
    assert_eq!(sr(&mut g, 1, GICR_ISPENDR0), 1 << 5);
    assert_eq!(rw(&mut g, 1, GICR_WAKER, 0), set(&[0, 1]));
    assert_eq!(intids(&g.deliverable(1)), [5]);
}

// ---- SPI routing and trigger semantics. ----

#[test]
fn spi_level_lifecycle() {
    let mut g = running(2, 64);
    enable_spi(&mut g, UART);
    let _ = g.write_distributor(GICD_IROUTER + 8 * 33, 8, affinity_router(1));
    assert!(g.deliverable(1).is_empty());
    // Line high: pending, deliverable to CPU 1 only.
    assert_eq!(g.set_spi_level(UART, true), set(&[1]));
    assert_eq!(dr(&mut g, GICD_ISPENDR + 4), 1 << 1);
    assert!(g.deliverable(0).is_empty());
    assert_eq!(
        g.highest_deliverable(1),
        Some(Pending {
            intid: UART,
            priority: 0,
            level: true
        })
    );
    assert_eq!(
        g.inject(0, UART),
        Err(ListError::NotDeliverable),
        "wrong CPU"
    );
    // Injected: active, still pending while the line is high (active and pending), and not
    // offered again.
    assert!(g.inject(1, UART).is_ok());
    assert_eq!(dr(&mut g, GICD_ISACTIVER + 4), 1 << 1);
    assert_eq!(dr(&mut g, GICD_ISPENDR + 4), 1 << 1);
    assert!(g.deliverable(1).is_empty());
    assert_eq!(g.inject(1, UART), Err(ListError::NotDeliverable));
    // Completed while the line is still high: pending again.
    assert_eq!(g.completed(1, UART), Ok(set(&[1])));
    assert_eq!(dr(&mut g, GICD_ISACTIVER + 4), 0);
    assert_eq!(intids(&g.deliverable(1)), [UART]);
    // Injected again; the device drops the line before the guest deactivates: inactive.
    assert!(g.inject(1, UART).is_ok());
    assert!(g.set_spi_level(UART, false).is_empty());
    assert_eq!(dr(&mut g, GICD_ISPENDR + 4), 0);
    assert_eq!(g.completed(1, UART), Ok(CpuSet::default()));
    assert!(g.deliverable(1).is_empty());
    assert_eq!(g.completed(1, UART), Err(ListError::NotListed), "twice");
    // Line low: nothing pending, nothing deliverable.
    assert!(g.set_spi_level(UART, false).is_empty());
    assert!(g.deliverable(0).is_empty() && g.deliverable(1).is_empty());
    assert_eq!(g.stats().calls_rejected, 3);
}

#[test]
fn spi_edge_lifecycle() {
    let mut g = running(1, 32);
    let _ = dw(&mut g, GICD_ICFGR + 8, 2 << 2); // INTID 33 edge-triggered
    assert_eq!(dr(&mut g, GICD_ICFGR + 8), 0x8);
    enable_spi(&mut g, 33);
    assert_eq!(g.set_spi_level(33, true), set(&[0]));
    assert!(g.set_spi_level(33, true).is_empty(), "no new edge");
    let _ = g.set_spi_level(33, false);
    assert_eq!(
        g.deliverable(0),
        [Pending {
            intid: 33,
            priority: 0,
            level: false
        }],
        "latched after the line fell"
    );
    assert!(g.inject(0, 33).is_ok());
    assert_eq!(dr(&mut g, GICD_ISPENDR + 4), 0, "inject cleared the latch");
    // A second edge while it is in the list register: active and pending.
    let _ = g.set_spi_level(33, true);
    let _ = g.set_spi_level(33, false);
    assert!(g.deliverable(0).is_empty());
    assert_eq!(g.completed(0, 33), Ok(set(&[0])));
    assert_eq!(intids(&g.deliverable(0)), [33]);
    assert!(g.inject(0, 33).is_ok());
    assert_eq!(g.completed(0, 33), Ok(CpuSet::default()));
    assert!(g.deliverable(0).is_empty());
}

#[test]
fn ppi_timer_level_lifecycle() {
    let mut g = running(2, 32);
    enable_private(&mut g, 1, VTIMER);
    assert!(
        g.set_ppi_level(0, VTIMER, true).is_empty(),
        "not enabled on CPU 0"
    );
    assert_eq!(g.set_ppi_level(1, VTIMER, true), set(&[1]));
    assert!(g.deliverable(0).is_empty(), "PPIs are per CPU");
    assert!(g.inject(1, VTIMER).is_ok_and(|p| p.level));
    assert_eq!(sr(&mut g, 1, GICR_ISACTIVER0), 1 << VTIMER);
    // The guest reprograms the timer (line drops) before deactivating.
    let _ = g.set_ppi_level(1, VTIMER, false);
    assert_eq!(g.completed(1, VTIMER), Ok(CpuSet::default()));
    assert!(g.deliverable(1).is_empty());
    // The guest masks the timer with the line high (as Linux does with CNTV_CTL.IMASK
    // unavailable): held pending, delivered once unmasked.
    let _ = g.set_ppi_level(1, VTIMER, true);
    let _ = sw(&mut g, 1, GICR_ICENABLER0, 1 << VTIMER);
    assert!(g.deliverable(1).is_empty());
    assert_eq!(sr(&mut g, 1, GICR_ISPENDR0), 1 << VTIMER);
    assert_eq!(sw(&mut g, 1, GICR_ISENABLER0, 1 << VTIMER), set(&[1]));
    assert_eq!(intids(&g.deliverable(1)), [VTIMER]);
    // PPI trigger mode is programmable; SGI's is not.
    let _ = sw(&mut g, 1, GICR_ICFGR1, 0xffff_ffff);
    assert_eq!(sr(&mut g, 1, GICR_ICFGR1), 0xaaaa_aaaa);
    let _ = sw(&mut g, 1, GICR_ICFGR0, 0);
    assert_eq!(sr(&mut g, 1, GICR_ICFGR0), 0xaaaa_aaaa);
    // Only PPIs have an input.
    assert!(g.set_ppi_level(1, 3, true).is_empty());
    assert!(g.set_ppi_level(1, 32, true).is_empty());
    assert!(g.set_ppi_level(2, VTIMER, true).is_empty());
    assert_eq!(g.stats().calls_rejected, 3);
}

#[test]
fn spi_routing_irm_and_unmatched_affinity() {
    let mut g = gic(3, 32);
    let _ = dw(&mut g, GICD_CTLR, CTLR_ENABLE_GRP1);
    let _ = rw(&mut g, 1, GICR_WAKER, 0);
    let _ = rw(&mut g, 2, GICR_WAKER, 0);
    enable_spi(&mut g, 40);
    // 1 of N: the lowest-numbered awake CPU (CPU 0 sleeps).
    let _ = g.write_distributor(GICD_IROUTER + 8 * 40, 8, IROUTER_IRM);
    assert_eq!(g.set_spi_level(40, true), set(&[1]));
    assert_eq!(intids(&g.deliverable(1)), [40]);
    assert!(g.deliverable(0).is_empty() && g.deliverable(2).is_empty());
    // CPU 0 wakes: now it is the one, and only it.
    assert_eq!(rw(&mut g, 0, GICR_WAKER, 0), set(&[0]));
    assert_eq!(intids(&g.deliverable(0)), [40]);
    assert!(g.deliverable(1).is_empty());
    // An affinity that names no CPU: held pending, reads back as written.
    let nowhere = affinity_router(0x0000_0700);
    assert!(g
        .write_distributor(GICD_IROUTER + 8 * 40, 8, nowhere)
        .is_empty());
    assert_eq!(g.read_distributor(GICD_IROUTER + 8 * 40, 8), nowhere);
    assert!((0..3).all(|cpu| g.deliverable(cpu).is_empty()));
    assert_eq!(dr(&mut g, GICD_ISPENDR + 4), 1 << 8);
    // Rerouted to CPU 2: the write says whom to kick.
    assert_eq!(
        g.write_distributor(GICD_IROUTER + 8 * 40, 8, affinity_router(2)),
        set(&[2])
    );
    assert_eq!(intids(&g.deliverable(2)), [40]);
    // Rerouted while in CPU 2's list register: not offered to CPU 0 meanwhile, completed
    // only by CPU 2, and then offered to CPU 0 (still high).
    assert!(g.inject(2, 40).is_ok());
    let _ = g.write_distributor(GICD_IROUTER + 8 * 40, 8, affinity_router(0));
    assert!(g.deliverable(0).is_empty());
    assert_eq!(g.completed(0, 40), Err(ListError::NotListed));
    assert_eq!(g.completed(2, 40), Ok(set(&[0])));
    assert_eq!(intids(&g.deliverable(0)), [40]);
}

#[test]
fn irouter_halves_and_reserved_bits() {
    let mut g = gic(1, 32);
    let r = GICD_IROUTER + 8 * 35;
    let _ = g.write_distributor(r, 8, u64::MAX);
    assert_eq!(
        g.read_distributor(r, 8),
        0xff_80ff_ffff,
        "bits 63:40 and 30:24 RES0"
    );
    assert_eq!(g.read_distributor(r, 4), 0x80ff_ffff);
    assert_eq!(g.read_distributor(r + 4, 4), 0xff);
    let _ = g.write_distributor(r + 4, 4, 0x12);
    let _ = g.write_distributor(r, 4, 0x0003_0201);
    assert_eq!(g.read_distributor(r, 8), 0x12_0003_0201);
    assert_eq!(router_affinity(0x12_0003_0201), 0x1203_0201);
    assert_eq!(affinity_router(0x1203_0201), 0x12_0003_0201);
    // INTIDs 0-31 have no IROUTER.
    let _ = g.write_distributor(GICD_IROUTER + 8 * 5, 8, 1);
    assert_eq!(g.read_distributor(GICD_IROUTER + 8 * 5, 8), 0);
    // Misaligned or odd-sized: refused.
    assert_eq!(g.read_distributor(r + 4, 8), 0);
    assert_eq!(g.read_distributor(r + 2, 4), 0);
    assert_eq!(g.read_distributor(r, 2), 0);
    assert_eq!(g.read_distributor(r, 1), 0);
    assert_eq!(g.stats().distributor_rejected, 4);
}

// ---- SGIs. ----

#[test]
fn sgi1r_decodes_every_field() {
    let v = 0x00a5_0000_0000_0000 // Aff3 0xa5
        | (0x3 << 44) // RS 3
        | (0x5a << 32) // Aff2
        | (0xc << 24) // INTID 12
        | (0x77 << 16) // Aff1
        | 0x8001; // targets 0 and 15
    assert_eq!(
        Sgi1r::decode(v),
        Sgi1r {
            intid: 12,
            targets: SgiTargets::List {
                cluster: 0xa55a_7700,
                range_selector: 3,
                target_list: 0x8001,
            }
        }
    );
    assert_eq!(
        Sgi1r::decode(SGI1R_IRM | (7 << 24) | 0xffff | (0xff << 16)),
        Sgi1r {
            intid: 7,
            targets: SgiTargets::AllButSelf
        },
        "IRM ignores the affinity fields"
    );
    assert_eq!(Sgi1r::decode(u64::MAX).intid, 15);
}

#[test]
fn sgi_targets_by_list_aff1_rs_and_irm() {
    // Cluster 0: Aff0 0-3; cluster 1 (Aff1 = 1): Aff0 0-1; and Aff0 17 in cluster 0.
    let affinities = [0x000, 0x001, 0x002, 0x003, 0x100, 0x101, 0x011];
    let mut g = VGic::new(&affinities, 0);
    let _ = dw(&mut g, GICD_CTLR, CTLR_ENABLE_GRP1);
    for cpu in 0..affinities.len() {
        let _ = rw(&mut g, cpu, GICR_WAKER, 0);
        let _ = sw(&mut g, cpu, GICR_ISENABLER0, 0xffff);
    }
    // TargetList 0b1010 in cluster 0: CPUs 1 and 3.
    assert_eq!(g.send_sgi1r(0, 0b1010 | (1 << 24)), set(&[1, 3]));
    // Aff1 = 1, TargetList 0b11: CPUs 4 and 5; bit 5 names nobody and is ignored.
    assert_eq!(
        g.send_sgi1r(0, 0b10_0011 | (1 << 16) | (2 << 24)),
        set(&[4, 5])
    );
    // RS = 1, bit 1: Aff0 17 in cluster 0, CPU 6.
    assert_eq!(g.send_sgi1r(0, (1 << 44) | 0b10 | (3 << 24)), set(&[6]));
    // The sender may name itself.
    assert_eq!(g.send_sgi1r(2, 0b100 | (4 << 24)), set(&[2]));
    // IRM: everyone but the sender.
    assert_eq!(
        g.send_sgi1r(4, SGI1R_IRM | (5 << 24)),
        set(&[0, 1, 2, 3, 5, 6])
    );
    assert_eq!(intids(&g.deliverable(1)), [1, 5]);
    assert_eq!(intids(&g.deliverable(4)), [2]);
    assert_eq!(intids(&g.deliverable(6)), [3, 5]);
    assert_eq!(intids(&g.deliverable(2)), [4, 5]);
    assert!(g.deliverable(0).len() == 1 && g.deliverable(0)[0].intid == 5);
    // An empty target list, a cluster with nobody: nothing.
    assert!(g.send_sgi1r(0, 6 << 24).is_empty());
    assert!(g.send_sgi1r(0, 0xffff | (9 << 16)).is_empty());
    // A sender that is not a CPU sends nothing.
    assert!(g.send_sgi1r(7, SGI1R_IRM).is_empty());
    assert!(g.send_sgi1r(usize::MAX, SGI1R_IRM).is_empty());
    assert_eq!(g.stats().sgis_rejected, 2);
}

#[test]
fn sgis_are_edge_and_group0_targets_are_not_forwarded() {
    let mut g = running(2, 0);
    enable_private(&mut g, 1, 0);
    // SGI 0 in Group 0 on CPU 1: ICC_SGI1R_EL1 does not reach it.
    let _ = sw(&mut g, 1, GICR_IGROUPR0, !1);
    assert!(g.send_sgi1r(0, 0b10).is_empty());
    assert_eq!(sr(&mut g, 1, GICR_ISPENDR0), 0);
    let _ = sw(&mut g, 1, GICR_IGROUPR0, !0);
    assert_eq!(g.send_sgi1r(0, 0b10), set(&[1]));
    // Two sends before delivery make one pending SGI; one sent while it is listed makes it
    // active and pending.
    assert_eq!(g.send_sgi1r(0, 0b10), set(&[1]));
    assert!(g.inject(1, 0).is_ok_and(|p| !p.level));
    assert!(g.deliverable(1).is_empty());
    let _ = g.send_sgi1r(0, 0b10);
    assert_eq!(sr(&mut g, 1, GICR_ISPENDR0), 1);
    assert_eq!(sr(&mut g, 1, GICR_ISACTIVER0), 1);
    assert_eq!(g.completed(1, 0), Ok(set(&[1])));
    assert_eq!(intids(&g.deliverable(1)), [0]);
    assert!(g.inject(1, 0).is_ok());
    assert_eq!(g.completed(1, 0), Ok(CpuSet::default()));
    assert!(g.deliverable(1).is_empty());
}

// ---- Delivery order and gating. ----

#[test]
fn deliverable_is_ordered_by_priority_then_intid() {
    let mut g = running(1, 64);
    // Linux's gic_irq_set_prio: byte writes.
    for (intid, prio) in [(40u32, 0x80u8), (33, 0xa0), (70, 0x20), (34, 0x80)] {
        let _ = g.write_distributor(GICD_IPRIORITYR + u64::from(intid), 1, u64::from(prio));
        let _ = g.write_distributor(GICD_IROUTER + 8 * u64::from(intid), 8, 0);
        enable_spi(&mut g, intid);
        let _ = g.set_spi_level(intid, true);
    }
    let _ = sw(&mut g, 0, GICR_IPRIORITYR + 24, 0x0000_f060); // INTID 25: 0xf0, 24: 0x60
    enable_private(&mut g, 0, 25);
    let _ = g.set_ppi_level(0, 25, true);
    let _ = g.write_redistributor(SGI_BASE + GICR_IPRIORITYR + 2, 1, 0x80);
    enable_private(&mut g, 0, 2);
    let _ = sw(&mut g, 0, GICR_ISPENDR0, 1 << 2);
    let order: Vec<(u32, u8)> = g
        .deliverable(0)
        .iter()
        .map(|p| (p.intid, p.priority))
        .collect();
    assert_eq!(
        order,
        [
            (70, 0x20),
            (2, 0x80),
            (34, 0x80),
            (40, 0x80),
            (33, 0xa0),
            (25, 0xf0)
        ]
    );
    assert_eq!(g.highest_deliverable(0).map(|p| p.intid), Some(70));
    // A 32-bit priority write and read cover four INTIDs.
    assert_eq!(
        dr(&mut g, GICD_IPRIORITYR + 32),
        0x0080_a000,
        "INTID 32 in bits 7:0"
    );
    let _ = dw(&mut g, GICD_IPRIORITYR + 32, 0x4030_2010);
    assert_eq!(g.read_distributor(GICD_IPRIORITYR + 35, 1), 0x40);
    assert_eq!(g.highest_deliverable(0).map(|p| p.intid), Some(33));
}

#[test]
fn group_and_distributor_enables_gate_delivery() {
    let mut g = running(1, 32);
    enable_spi(&mut g, 33);
    let _ = g.set_spi_level(33, true);
    assert_eq!(intids(&g.deliverable(0)), [33]);
    // Group 0: held (never delivered, whatever EnableGrp0 says).
    let _ = dw(&mut g, GICD_IGROUPR + 4, !(1 << 1));
    let _ = dw(&mut g, GICD_CTLR, CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1);
    assert!(g.deliverable(0).is_empty());
    assert_eq!(g.inject(0, 33), Err(ListError::NotDeliverable));
    assert_eq!(dw(&mut g, GICD_IGROUPR + 4, !0), set(&[0]));
    // EnableGrp1 clear: nothing at all, SGIs and PPIs included.
    enable_private(&mut g, 0, VTIMER);
    let _ = g.set_ppi_level(0, VTIMER, true);
    let _ = dw(&mut g, GICD_CTLR, 0);
    assert_eq!(dr(&mut g, GICD_CTLR), 0x50);
    assert!(g.deliverable(0).is_empty());
    assert!(g.set_spi_level(33, true).is_empty());
    // Turning it on releases both, and says whom to kick.
    assert_eq!(dw(&mut g, GICD_CTLR, 0xffff_ffff), set(&[0]));
    assert_eq!(dr(&mut g, GICD_CTLR), 0x53, "only the enables are writable");
    assert_eq!(intids(&g.deliverable(0)), [VTIMER, 33]);
}

#[test]
fn guest_pending_and_active_writes_act_on_the_same_state() {
    let mut g = running(2, 32);
    enable_spi(&mut g, 50);
    // ISPENDR on a level SPI with the line low: pending until acknowledged (injected).
    assert_eq!(dw(&mut g, GICD_ISPENDR + 4, 1 << 18), set(&[0]));
    assert_eq!(intids(&g.deliverable(0)), [50]);
    let _ = dw(&mut g, GICD_ICPENDR + 4, 1 << 18);
    assert!(g.deliverable(0).is_empty());
    let _ = dw(&mut g, GICD_ISPENDR + 4, 1 << 18);
    assert!(g.inject(0, 50).is_ok());
    assert_eq!(
        g.completed(0, 50),
        Ok(CpuSet::default()),
        "latch cleared by inject"
    );
    // ICPENDR cannot clear an asserted level input.
    let _ = g.set_spi_level(50, true);
    let _ = dw(&mut g, GICD_ICPENDR + 4, 1 << 18);
    assert_eq!(dr(&mut g, GICD_ISPENDR + 4), 1 << 18);
    let _ = g.set_spi_level(50, false);
    // ISACTIVER holds a pending interrupt back; ICACTIVER releases it.
    let _ = dw(&mut g, GICD_ISPENDR + 4, 1 << 18);
    let _ = dw(&mut g, GICD_ISACTIVER + 4, 1 << 18);
    assert_eq!(dr(&mut g, GICD_ICACTIVER + 4), 1 << 18);
    assert!(g.deliverable(0).is_empty());
    assert_eq!(g.inject(0, 50), Err(ListError::NotDeliverable));
    assert_eq!(
        g.completed(0, 50),
        Err(ListError::NotListed),
        "active, not listed"
    );
    assert_eq!(dw(&mut g, GICD_ICACTIVER + 4, 1 << 18), set(&[0]));
    assert_eq!(intids(&g.deliverable(0)), [50]);
    // ICACTIVER on an interrupt in a list register: the state changes, but it is not offered
    // again until its list register empties.
    assert!(g.inject(0, 50).is_ok());
    let _ = dw(&mut g, GICD_ISPENDR + 4, 1 << 18);
    let _ = dw(&mut g, GICD_ICACTIVER + 4, 1 << 18);
    assert_eq!(dr(&mut g, GICD_ISACTIVER + 4), 0);
    assert!(g.deliverable(0).is_empty());
    assert_eq!(g.completed(0, 50), Ok(set(&[0])));
    assert_eq!(intids(&g.deliverable(0)), [50]);
    // The same through a redistributor, for an SGI.
    enable_private(&mut g, 1, 9);
    assert_eq!(sw(&mut g, 1, GICR_ISPENDR0, 1 << 9), set(&[1]));
    assert_eq!(intids(&g.deliverable(1)), [9]);
    let _ = sw(&mut g, 1, GICR_ICPENDR0, 1 << 9);
    assert!(g.deliverable(1).is_empty());
    // Disabled interrupts still become pending; enabling delivers them.
    let _ = sw(&mut g, 1, GICR_ICENABLER0, 1 << 9);
    let _ = g.send_sgi1r(0, (0b10) | (9 << 24));
    assert!(g.deliverable(1).is_empty());
    assert_eq!(sw(&mut g, 1, GICR_ISENABLER0, 1 << 9), set(&[1]));
}

#[test]
fn inject_and_completed_refuse_what_breaks_the_lifecycle() {
    let mut g = running(2, 32);
    assert_eq!(g.inject(2, 33), Err(ListError::NoCpu));
    assert_eq!(
        g.inject(0, 64),
        Err(ListError::NoInterrupt),
        "beyond the SPIs"
    );
    assert_eq!(g.inject(0, 1023), Err(ListError::NoInterrupt));
    assert_eq!(g.inject(0, u32::MAX), Err(ListError::NoInterrupt));
    assert_eq!(
        g.inject(0, 33),
        Err(ListError::NotDeliverable),
        "not pending"
    );
    assert_eq!(g.completed(0, 33), Err(ListError::NotListed));
    assert_eq!(g.completed(0, 3), Err(ListError::NotListed));
    assert_eq!(g.completed(0, 2000), Err(ListError::NoInterrupt));
    assert_eq!(g.completed(usize::MAX, 3), Err(ListError::NoCpu));
    assert!(g.set_spi_level(31, true).is_empty());
    assert!(g.set_spi_level(64, true).is_empty());
    assert!(g.set_spi_level(u32::MAX, true).is_empty());
    // A private interrupt listed on CPU 0 is not CPU 1's to complete.
    enable_private(&mut g, 0, 4);
    let _ = sw(&mut g, 0, GICR_ISPENDR0, 1 << 4);
    assert!(g.inject(0, 4).is_ok());
    assert_eq!(g.completed(1, 4), Err(ListError::NotListed));
    assert_eq!(g.stats().calls_rejected, 13);
}

#[test]
fn kicks_name_whoever_has_something_new() {
    let mut g = gic(3, 32);
    for cpu in 0..3 {
        let _ = rw(&mut g, cpu, GICR_WAKER, 0);
    }
    for cpu in 0..3 {
        enable_private(&mut g, cpu, VTIMER);
        let _ = g.set_ppi_level(cpu, VTIMER, cpu != 1);
    }
    // Distributor off: the lines are pending but nothing is deliverable, no kicks.
    assert!(g.kick_all().is_empty());
    assert_eq!(dw(&mut g, GICD_CTLR, CTLR_ENABLE_GRP1), set(&[0, 2]));
    // Writes that cannot raise anything kick nobody.
    assert!(
        dw(&mut g, GICD_CTLR, CTLR_ENABLE_GRP1).is_empty(),
        "no change"
    );
    assert!(sw(&mut g, 1, GICR_ICENABLER0, 1 << VTIMER).is_empty());
    assert!(g.write_distributor(GICD_IPRIORITYR + 33, 1, 5).is_empty());
    // An SPI unmask kicks its target, if pending.
    let _ = g.write_distributor(GICD_IROUTER + 8 * 33, 8, affinity_router(2));
    assert!(
        dw(&mut g, GICD_ISENABLER + 4, 1 << 1).is_empty(),
        "not pending"
    );
    let _ = dw(&mut g, GICD_ICENABLER + 4, 1 << 1);
    let _ = g.set_spi_level(33, true);
    assert_eq!(dw(&mut g, GICD_ISENABLER + 4, 1 << 1), set(&[2]));
    // Level to edge to level with the line high: pending again through ICFGR.
    let _ = g.set_spi_level(33, false);
    let _ = dw(&mut g, GICD_ICFGR + 8, 0x8);
    let _ = g.set_spi_level(33, true);
    assert!(g.inject(2, 33).is_ok());
    assert_eq!(
        g.completed(2, 33),
        Ok(CpuSet::default()),
        "edge: latch consumed"
    );
    assert_eq!(dw(&mut g, GICD_ICFGR + 8, 0), set(&[2]), "level, line high");
}

// ---- Hostile accesses. ----

const SIZES: [u8; 9] = [0, 1, 2, 3, 4, 5, 8, 16, 255];
const JUNK: [u64; 4] = [0, u64::MAX, 0xdead_beef_dead_beef, 0x5555_5555_aaaa_aaaa];

/// Whether a distributor access is one the module comment says is honoured.
fn distributor_honours(offset: u64, size: u8) -> bool {
    let aligned = size != 0 && offset.is_multiple_of(u64::from(size));
    match size {
        4 => {
            aligned
                && (matches!(
                    offset,
                    0x0 | 0x4 | 0x8 | 0xc | 0x10 | 0x40 | 0x48 | 0x50 | 0x58
                ) || (0x80..0xd80).contains(&offset)
                    || (0xe00..0xf00).contains(&offset)
                    || matches!(offset, 0xf00 | 0xf10..=0xf1c | 0xf20..=0xf2c)
                    || (0x6000..0x8000).contains(&offset)
                    || (0xffd0..0x10000).contains(&offset))
        }
        1 => (0x400..0xc00).contains(&offset),
        8 => aligned && (0x6000..0x8000).contains(&offset),
        _ => false,
    }
}

#[test]
fn distributor_sweep_never_panics_and_refuses_what_it_should() {
    let mut g = running(2, 64);
    let offsets = (0..0x1_0000u64)
        .step_by(1)
        .filter(|o| o % 4 == 0 || *o < 0x40 || (0x6000..0x6010).contains(o) || *o > 0xffe0)
        .chain([0x1_0000, 0x1_0004, 0x7fff_ffff, u64::MAX - 7, u64::MAX]);
    let mut refused = 0;
    for offset in offsets {
        for size in SIZES {
            let honoured = distributor_honours(offset, size);
            let before = g.stats().distributor_rejected;
            let value = g.read_distributor(offset, size);
            let counted = g.stats().distributor_rejected - before;
            assert_eq!(counted, u64::from(!honoured), "{offset:#x}/{size}");
            if !honoured {
                assert_eq!(value, 0, "{offset:#x}/{size}");
                refused += 1;
            } else if size != 8 {
                assert!(value <= u64::from(u32::MAX), "{offset:#x}/{size}");
            }
            if size == 1 {
                assert!(value <= 0xff);
            }
            for junk in JUNK {
                let _ = g.write_distributor(offset, size, junk);
            }
        }
    }
    assert!(refused > 0);
    // After all that junk, the read-only registers are intact and the state consistent.
    assert_eq!(
        dr(&mut g, GICD_TYPER),
        2 | (9 << 19) | (1 << 24) | (1 << 26)
    );
    assert_eq!(dr(&mut g, GICD_CTLR) & !0b11, 0x50);
    assert_eq!(dr(&mut g, GICD_PIDR2), 0x30);
    for cpu in 0..2 {
        for p in g.deliverable(cpu) {
            assert!((32..96).contains(&p.intid), "{p:?}");
        }
    }
    assert_eq!(dr(&mut g, GICD_IGROUPR + 12), 0, "unimplemented stays RAZ");
}

/// Whether an access to a redistributor frame (offset within the CPU's 128 KiB) is honoured.
fn redistributor_honours(local: u64, size: u8) -> bool {
    let aligned = size != 0 && local.is_multiple_of(u64::from(size));
    if !aligned {
        return false;
    }
    let lpi64 = [0x40, 0x48, 0x70, 0x78, 0xa0, 0xb0];
    if local < SGI_BASE {
        match size {
            4 => {
                matches!(local, 0x0 | 0x4 | 0x8 | 0xc | 0x10 | 0x14 | 0xc0)
                    || lpi64.contains(&(local & !7))
                    || (0xffd0..0x10000).contains(&local)
            }
            8 => local == 0x8 || lpi64.contains(&local),
            _ => false,
        }
    } else {
        let o = local - SGI_BASE;
        match size {
            1 => (0x400..0x420).contains(&o),
            4 => {
                matches!(
                    o,
                    0x80 | 0x100
                        | 0x180
                        | 0x200
                        | 0x280
                        | 0x300
                        | 0x380
                        | 0xc00
                        | 0xc04
                        | 0xd00
                        | 0xe00
                ) || (0x400..0x420).contains(&o)
            }
            _ => false,
        }
    }
}

#[test]
fn redistributor_sweep_never_panics_and_refuses_what_it_should() {
    let mut g = running(2, 32);
    let region = g.redistributor_region_size();
    let interesting = |o: &u64| {
        let local = o % REDISTRIBUTOR_STRIDE;
        local < 0x100
            || (0xffc0..0x10500).contains(&local)
            || (0x10c00..0x10e10).contains(&local)
            || local > 0x1ffe0
    };
    let offsets = (0..region + 0x100).filter(interesting).chain([
        region + 0x10000,
        0x7fff_ffff_ffff,
        u64::MAX - 3,
        u64::MAX,
    ]);
    for offset in offsets {
        for size in SIZES {
            let honoured = offset < region && redistributor_honours(offset % 0x20000, size);
            let before = g.stats().redistributor_rejected;
            let value = g.read_redistributor(offset, size);
            assert_eq!(
                g.stats().redistributor_rejected - before,
                u64::from(!honoured),
                "{offset:#x}/{size}"
            );
            if !honoured {
                assert_eq!(value, 0, "{offset:#x}/{size}");
            }
            for junk in JUNK {
                let _ = g.write_redistributor(offset, size, junk);
            }
        }
    }
    for cpu in 0..2 {
        assert_eq!(
            g.read_redistributor(cpu as u64 * 0x20000 + GICR_TYPER, 8) >> 32,
            cpu as u64
        );
        assert_eq!(sr(&mut g, cpu, GICR_ICFGR0), 0xaaaa_aaaa);
        assert_eq!(rr(&mut g, cpu, GICR_CTLR), 0);
        assert_eq!(rr(&mut g, cpu, GICR_PIDR2), 0x30);
        for p in g.deliverable(cpu) {
            assert!(p.intid < 64, "{p:?}");
        }
    }
}

#[test]
fn junk_from_every_entry_point_never_panics() {
    let mut g = running(3, 100);
    let values = [
        0u64,
        1,
        0xffff,
        0x1_0000_ffff,
        SGI1R_IRM,
        u64::MAX,
        0x00ff_f0ff_0fff_ffff,
    ];
    for from in [0usize, 1, 2, 3, usize::MAX] {
        for v in values {
            let _ = g.send_sgi1r(from, v);
        }
    }
    for intid in (0..1100).chain([u32::MAX - 1, u32::MAX]) {
        for cpu in [0usize, 2, 3, usize::MAX] {
            let _ = g.set_ppi_level(cpu, intid, intid % 2 == 0);
            let _ = g.inject(cpu, intid);
            let _ = g.completed(cpu, intid);
            let _ = g.deliverable(cpu);
            let _ = g.highest_deliverable(cpu);
        }
        let _ = g.set_spi_level(intid, intid % 3 == 0);
    }
    // Everything enabled, routed everywhere, then drained through inject/completed.
    for n in 1..5 {
        let _ = dw(&mut g, GICD_ISENABLER + 4 * n, u32::MAX);
        let _ = dw(&mut g, GICD_ISPENDR + 4 * n, u32::MAX);
    }
    for intid in 32..132u64 {
        let _ = g.write_distributor(GICD_IROUTER + 8 * intid, 8, intid % 5);
    }
    for cpu in 0..3 {
        let _ = sw(&mut g, cpu, GICR_ISENABLER0, u32::MAX);
        let _ = sw(&mut g, cpu, GICR_ISPENDR0, u32::MAX);
    }
    for _ in 0..3 {
        for cpu in 0..3 {
            for p in g.deliverable(cpu) {
                assert_eq!(g.inject(cpu, p.intid), Ok(p));
                assert!(g.completed(cpu, p.intid).is_ok());
            }
        }
    }
    // What is left pending is level inputs still high (the SPIs driven high above), or
    // SPIs routed to affinities nobody has (IROUTER 3 and 4).
    for cpu in 0..3 {
        for p in g.deliverable(cpu) {
            assert!(p.level, "{p:?}");
        }
    }
}

#[test]
fn odd_constructions() {
    // No CPUs: every redistributor access refused, SPIs never delivered, nothing panics.
    let mut g = VGic::new(&[], 64);
    assert_eq!(g.redistributor_region_size(), 0);
    assert_eq!(g.read_redistributor(GICR_TYPER, 8), 0);
    let _ = dw(&mut g, GICD_CTLR, CTLR_ENABLE_GRP1);
    enable_spi(&mut g, 40);
    assert!(g.set_spi_level(40, true).is_empty());
    assert!(g.deliverable(0).is_empty());
    assert!(g.send_sgi1r(0, SGI1R_IRM).is_empty());
    // More CPUs than MAX_CPUS: the rest are ignored; GICR_TYPER.Last on the last kept.
    let many: Vec<u32> = (0..(MAX_CPUS as u32 + 10)).map(|i| i << 8).collect();
    let mut g = VGic::new(&many, 0);
    assert_eq!(g.cpu_count(), MAX_CPUS);
    let last = (MAX_CPUS as u64 - 1) * REDISTRIBUTOR_STRIDE;
    assert_ne!(
        g.read_redistributor(last + GICR_TYPER, 8) & GICR_TYPER_LAST,
        0
    );
    assert_eq!(
        g.read_redistributor(last + GICR_TYPER, 8) >> 8 & 0xffff,
        MAX_CPUS as u64 - 1,
        "processor number"
    );
    let all = g.send_sgi1r(0, SGI1R_IRM);
    assert_eq!(all.len(), MAX_CPUS - 1);
    assert!(!all.contains(0) && all.contains(MAX_CPUS - 1) && !all.contains(MAX_CPUS));
    // CpuSet ignores what it cannot hold.
    let mut s = CpuSet::default();
    s.insert(MAX_CPUS);
    s.insert(usize::MAX);
    assert!(s.is_empty() && !s.contains(usize::MAX));
}

#[test]
fn cpu_sets_list_their_members_in_order() {
    let set: CpuSet = [511, 0, 64, 63].into_iter().collect();
    assert_eq!(set.iter().collect::<Vec<_>>(), [0, 63, 64, 511]);
    assert_eq!(CpuSet::default().iter().count(), 0);
    let both = set.union([1, 64].into_iter().collect());
    assert_eq!(both.iter().collect::<Vec<_>>(), [0, 1, 63, 64, 511]);
}

//! Register offsets and fields of the GICv3 distributor and redistributors, and the values this
//! model reports. Arm IHI 0069H ("GIC architecture version 3 and version 4"), chapter 12
//! "Programmers' Model": the Distributor register map (§12.8) and descriptions (§12.9), the
//! Redistributor register map (§12.10) and descriptions (§12.11), and ICC_SGI1R_EL1 among the
//! AArch64 System register descriptions of the same chapter. Field positions below name the register
//! description they come from; Linux's include/linux/irqchip/arm-gic-v3.h uses the same ones.

/// The distributor's frame: 64 KiB (§12.8: GICD registers occupy one 64 KiB frame, the ID
/// registers at its top).
pub const DISTRIBUTOR_SIZE: u64 = 0x1_0000;
/// A redistributor frame: 64 KiB (§12.10).
pub const REDISTRIBUTOR_FRAME: u64 = 0x1_0000;
/// GICv3 redistributors have two frames, RD_base then SGI_base (§12.10). GICv4's VLPI_base
/// and reserved frames exist only with GICR_TYPER.VLPIS, which reads 0 here.
pub const REDISTRIBUTOR_STRIDE: u64 = 2 * REDISTRIBUTOR_FRAME;
/// SGI_base: the second frame of each redistributor.
pub const SGI_BASE: u64 = REDISTRIBUTOR_FRAME;

// ---- Distributor (GICD), offsets from the distributor base (§12.8, Table "Distributor
// register map"). ----

/// GICD_CTLR, Distributor Control Register.
pub const GICD_CTLR: u64 = 0x0000;
/// GICD_TYPER, Interrupt Controller Type Register (RO).
pub const GICD_TYPER: u64 = 0x0004;
/// GICD_IIDR, Distributor Implementer Identification Register (RO).
pub const GICD_IIDR: u64 = 0x0008;
/// GICD_TYPER2 (GICv3.1, RO): every field 0 here (no vPE IDs, no nASSGIcap). Linux reads it
/// (`gic_init_bases`).
pub const GICD_TYPER2: u64 = 0x000c;
/// GICD_STATUSR (optional error reporting): RAZ/WI here.
pub const GICD_STATUSR: u64 = 0x0010;
/// GICD_SETSPI_NSR, GICD_CLRSPI_NSR, GICD_SETSPI_SR, GICD_CLRSPI_SR: message-based SPIs,
/// which exist only with GICD_TYPER.MBIS (0 here): RAZ/WI.
pub const GICD_SETSPI_NSR: u64 = 0x0040;
pub const GICD_CLRSPI_NSR: u64 = 0x0048;
pub const GICD_SETSPI_SR: u64 = 0x0050;
pub const GICD_CLRSPI_SR: u64 = 0x0058;
/// GICD_IGROUPR<n>: one group bit per INTID, 32 a register.
pub const GICD_IGROUPR: u64 = 0x0080;
/// GICD_ISENABLER<n> / GICD_ICENABLER<n>: write 1 to enable / disable; both read the enables.
pub const GICD_ISENABLER: u64 = 0x0100;
pub const GICD_ICENABLER: u64 = 0x0180;
/// GICD_ISPENDR<n> / GICD_ICPENDR<n>: write 1 to set / clear pending; both read pending.
pub const GICD_ISPENDR: u64 = 0x0200;
pub const GICD_ICPENDR: u64 = 0x0280;
/// GICD_ISACTIVER<n> / GICD_ICACTIVER<n>: write 1 to set / clear active; both read active.
pub const GICD_ISACTIVER: u64 = 0x0300;
pub const GICD_ICACTIVER: u64 = 0x0380;
/// GICD_IPRIORITYR<n>: one byte per INTID (byte-accessible).
pub const GICD_IPRIORITYR: u64 = 0x0400;
/// GICD_ITARGETSR<n>: legacy (ARE = 0) targets, RES0 with affinity routing: RAZ/WI.
pub const GICD_ITARGETSR: u64 = 0x0800;
/// GICD_ICFGR<n>: two bits per INTID, 16 a register; bit 2m+1 set = edge-triggered.
pub const GICD_ICFGR: u64 = 0x0c00;
/// GICD_IGRPMODR<n>: RAZ/WI when GICD_CTLR.DS == 1.
pub const GICD_IGRPMODR: u64 = 0x0d00;
/// GICD_NSACR<n>: RAZ/WI when GICD_CTLR.DS == 1.
pub const GICD_NSACR: u64 = 0x0e00;
/// GICD_SGIR, GICD_CPENDSGIR<n>, GICD_SPENDSGIR<n>: legacy SGI registers, RES0 with
/// affinity routing (SGIs come from ICC_SGI1R_EL1 instead): RAZ/WI.
pub const GICD_SGIR: u64 = 0x0f00;
pub const GICD_CPENDSGIR: u64 = 0x0f10;
pub const GICD_SPENDSGIR: u64 = 0x0f20;
/// GICD_IROUTER<n>: 64-bit, at 0x6000 + 8n for SPI n (32-1019); n = 0-31 are reserved.
pub const GICD_IROUTER: u64 = 0x6000;
/// GICD_PIDR2 (the ID registers occupy 0xFFD0-0xFFFC, §12.9 "GICD_PIDR2"; the others are
/// IMPLEMENTATION DEFINED and read 0 here).
pub const GICD_PIDR2: u64 = 0xffe8;
/// The identification registers' block (GICD_PIDR4-7, PIDR0-3, CIDR0-3).
pub const ID_REGISTERS: core::ops::Range<u64> = 0xffd0..0x1_0000;

/// Bytes of each one-bit-per-INTID register block (32 registers of 32 INTIDs).
pub const BITS_BLOCK: u64 = 0x80;
/// Bytes of the IPRIORITYR block (1024 INTIDs, a byte each).
pub const PRIORITY_BLOCK: u64 = 0x400;
/// Bytes of the ICFGR block (1024 INTIDs, two bits each).
pub const CONFIG_BLOCK: u64 = 0x100;
/// Bytes of the IROUTER block (1024 INTIDs, 8 bytes each).
pub const ROUTER_BLOCK: u64 = 0x2000;

/// GICD_CTLR with GICD_CTLR.DS == 1 (§12.9 "GICD_CTLR", the single Security state layout):
/// EnableGrp0 bit 0, EnableGrp1 bit 1, ARE bit 4, DS bit 6, E1NWF bit 7, RWP bit 31.
pub const CTLR_ENABLE_GRP0: u32 = 1 << 0;
pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
/// Affinity routing: RAO/WI here (no legacy operation).
pub const CTLR_ARE: u32 = 1 << 4;
/// Disable Security: RAO/WI here (one Security state).
pub const CTLR_DS: u32 = 1 << 6;
/// Register Write Pending: always 0, since every write takes effect before the access
/// completes.
pub const CTLR_RWP: u32 = 1 << 31;
/// The GICD_CTLR bits a write keeps.
pub const CTLR_WRITABLE: u32 = CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1;
/// GICD_CTLR after reset: both groups disabled, ARE and DS set.
pub const CTLR_RESET: u32 = CTLR_ARE | CTLR_DS;

/// GICD_TYPER fields (§12.9 "GICD_TYPER"). ITLinesNumber in bits 4:0: 32 * (N + 1) INTIDs.
pub const TYPER_ITLINES_MASK: u32 = 0x1f;
/// IDbits in bits 23:19: the number of INTID bits minus one.
pub const TYPER_IDBITS_SHIFT: u32 = 19;
/// INTID bits this distributor supports: 10, so INTIDs below 1024 (1020-1023 special).
pub const ID_BITS: u32 = 10;
/// LPIS (bit 17) and MBIS (bit 16): 0 here, no LPIs and no message-based SPIs.
pub const TYPER_LPIS: u32 = 1 << 17;
pub const TYPER_MBIS: u32 = 1 << 16;
/// A3V (bit 24): non-zero Aff3 values are supported.
pub const TYPER_A3V: u32 = 1 << 24;
/// No1N (bit 25): 0 = 1 of N SPI distribution is supported.
pub const TYPER_NO1N: u32 = 1 << 25;
/// RSS (bit 26): targeted SGIs reach Aff0 values 0-255 (ICC_SGI1R_EL1.RS is honoured).
pub const TYPER_RSS: u32 = 1 << 26;

/// GICD_IIDR and GICR_IIDR (§12.9 "GICD_IIDR"): ProductID bits 31:24, Variant 19:16,
/// Revision 15:12, Implementer 11:0 (a JEP106 code). Parapet has no JEP106 code, so the
/// Implementer is 0 and the ProductID 0x50 ('P'); the value matches none of the IIDRs Linux
/// keys its quirks on (0, 0x0204043b, 0xa000034c under mask 0xe8f00fff, in irq-gic-v3.c).
pub const IIDR_VALUE: u32 = 0x50 << 24;

/// GICD_PIDR2 / GICR_PIDR2: ArchRev in bits 7:4, 0x3 for GICv3. Linux checks `PIDR2 & 0xf0`
/// against 0x30 or 0x40 (`gic_validate_dist_version`, `gic_iterate_rdists`).
pub const PIDR2_VALUE: u32 = 0x30;

/// GICD_IROUTER<n> (§12.9 "GICD_IROUTER<n>"): Aff0 7:0, Aff1 15:8, Aff2 23:16,
/// Interrupt_Routing_Mode bit 31, Aff3 39:32; the rest RES0.
pub const IROUTER_IRM: u64 = 1 << 31;
pub const IROUTER_WRITABLE: u64 = 0xff_80ff_ffff;

// ---- Redistributor RD_base frame (§12.10, Table "Redistributor register map", RD_base). ----

/// GICR_CTLR: no LPIs (EnableLPIs RES0), no DPG bits (GICR_TYPER.DPGS = 0), RWP (bit 3) and
/// UWP (bit 31) always 0: reads 0, writes ignored.
pub const GICR_CTLR: u64 = 0x0000;
/// GICR_CTLR.RWP, bit 3: what Linux polls (`gic_redist_wait_for_rwp`; before 5.18 it polled
/// bit 31, UWP, by mistake). Both read 0.
pub const GICR_CTLR_RWP: u32 = 1 << 3;
pub const GICR_CTLR_UWP: u32 = 1 << 31;
pub const GICR_IIDR: u64 = 0x0004;
/// GICR_TYPER, 64-bit (32-bit halves allowed).
pub const GICR_TYPER: u64 = 0x0008;
pub const GICR_STATUSR: u64 = 0x0010;
pub const GICR_WAKER: u64 = 0x0014;
/// LPI registers (GICR_SETLPIR, CLRLPIR, PROPBASER, PENDBASER, INVLPIR, INVALLR, SYNCR):
/// present only with GICR_TYPER.PLPIS (0 here): RAZ/WI.
pub const GICR_SETLPIR: u64 = 0x0040;
pub const GICR_CLRLPIR: u64 = 0x0048;
pub const GICR_PROPBASER: u64 = 0x0070;
pub const GICR_PENDBASER: u64 = 0x0078;
pub const GICR_INVLPIR: u64 = 0x00a0;
pub const GICR_INVALLR: u64 = 0x00b0;
pub const GICR_SYNCR: u64 = 0x00c0;
pub const GICR_PIDR2: u64 = 0xffe8;

/// GICR_TYPER (§12.11 "GICR_TYPER"): PLPIS 0, VLPIS 1, Dirty 2, DirectLPI 3 (all 0 here),
/// Last bit 4, DPGS 5, MPAM 6, RVPEID 7 (0), Processor_Number 23:8, CommonLPIAff 25:24,
/// VSGI 26, PPInum 31:27 (0: PPIs 16-31 only), Affinity_Value 63:32 (Aff3.Aff2.Aff1.Aff0).
pub const GICR_TYPER_LAST: u64 = 1 << 4;
pub const GICR_TYPER_PROCESSOR_NUMBER_SHIFT: u32 = 8;
pub const GICR_TYPER_AFFINITY_SHIFT: u32 = 32;

/// GICR_WAKER (§12.11 "GICR_WAKER"): ProcessorSleep bit 1 (RW), ChildrenAsleep bit 2 (RO);
/// bits 0 and 31 IMPLEMENTATION DEFINED (RAZ/WI here), the rest RES0. Both reset to 1.
pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

// ---- Redistributor SGI_base frame: offsets from SGI_base (§12.10, Table "SGI_base"). ----

pub const GICR_IGROUPR0: u64 = 0x0080;
pub const GICR_ISENABLER0: u64 = 0x0100;
pub const GICR_ICENABLER0: u64 = 0x0180;
pub const GICR_ISPENDR0: u64 = 0x0200;
pub const GICR_ICPENDR0: u64 = 0x0280;
pub const GICR_ISACTIVER0: u64 = 0x0300;
pub const GICR_ICACTIVER0: u64 = 0x0380;
/// GICR_IPRIORITYR0-7: one byte per SGI/PPI (byte-accessible).
pub const GICR_IPRIORITYR: u64 = 0x0400;
/// GICR_ICFGR0 (SGIs: read-only, all edge-triggered, reads 0xAAAAAAAA) and GICR_ICFGR1
/// (PPIs: programmable here).
pub const GICR_ICFGR0: u64 = 0x0c00;
pub const GICR_ICFGR1: u64 = 0x0c04;
/// GICR_IGRPMODR0 and GICR_NSACR: RAZ/WI when GICD_CTLR.DS == 1.
pub const GICR_IGRPMODR0: u64 = 0x0d00;
pub const GICR_NSACR: u64 = 0x0e00;

/// ICFGR0 as read: every SGI edge-triggered (Int_config[1] set in each field).
pub const ICFGR_ALL_EDGE: u32 = 0xaaaa_aaaa;

// ---- ICC_SGI1R_EL1 (chapter 12, "ICC_SGI1R_EL1"). ----

/// TargetList, bits 15:0: bit n is the PE with Aff0 = RS * 16 + n in the named cluster.
pub const SGI1R_TARGET_LIST: u64 = 0xffff;
pub const SGI1R_AFF1_SHIFT: u32 = 16;
/// INTID, bits 27:24.
pub const SGI1R_INTID_SHIFT: u32 = 24;
pub const SGI1R_AFF2_SHIFT: u32 = 32;
/// IRM, bit 40: 1 = every PE but the sender; the affinity fields are then RES0.
pub const SGI1R_IRM: u64 = 1 << 40;
/// RS (RangeSelector), bits 47:44.
pub const SGI1R_RS_SHIFT: u32 = 44;
pub const SGI1R_AFF3_SHIFT: u32 = 48;

// ---- INTID ranges (§2.2 "INTIDs", Table 2-1). ----

/// SGIs are INTIDs 0-15, PPIs 16-31, SPIs 32-1019; 1020-1023 are special.
pub const SGI_COUNT: u32 = 16;
pub const PRIVATE_COUNT: u32 = 32;
pub const SPI_LIMIT: u32 = 1020;
/// The most SPIs a distributor with 10 INTID bits has: INTIDs 32-1019.
pub const MAX_SPIS: u32 = SPI_LIMIT - PRIVATE_COUNT;

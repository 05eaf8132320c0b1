//! Interprocessor interrupts: the ICR decoded into what the backend delivers, and which local
//! APICs a destination reaches (§11.6.1, §11.12.9, §11.12.10).

use super::registers::*;

/// What an IPI asks of each local APIC it reaches (§11.6.1, ICR delivery mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The vector goes into the target's IRR: `LocalApic::accept`.
    Fixed,
    Smi,
    Nmi,
    /// INIT (asserted): the target resets (`LocalApic::init_reset`) and waits for a SIPI.
    Init,
    /// Start-up: a target waiting for SIPI starts in real mode at `vector << 12` (CS =
    /// `vector << 8`, IP = 0).
    StartUp,
    /// Lowest priority (xAPIC mode only; reserved for x2APIC IPIs): a fixed interrupt with
    /// this vector for exactly **one** of the local APICs reached. Which one is the
    /// platform's arbitration (§11.6.2.4, model-specific); any of them is correct, e.g. the
    /// first, or the one with the lowest [`LocalApic::ppr`](super::LocalApic::ppr).
    LowestPriority,
}

/// Where an IPI goes (§11.6.2, §11.12.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Physical mode: the x2APIC ID; `BROADCAST` reaches every local APIC, the sender too.
    Physical(u32),
    /// Logical mode: cluster ID in bits 31:16, a bit per member in 15:0 (matched against
    /// each target's LDR); `BROADCAST` reaches every local APIC, the sender too.
    Logical(u32),
    /// xAPIC physical mode (§11.6.2.1): the 8-bit APIC ID; `XAPIC_BROADCAST` (0xff) reaches
    /// every local APIC, the sender too. No APIC with an ID above 0xff matches otherwise.
    XApicPhysical(u8),
    /// xAPIC logical mode (§11.6.2.2): the 8-bit message destination address, matched
    /// against each target's own LDR and DFR (flat: any common bit; cluster: the cluster in
    /// bits 7:4 equal and a common member bit in 3:0). `XAPIC_BROADCAST` reaches every local
    /// APIC. **Routing depends on the targets' registers, not their IDs**: use
    /// [`Ipi::reaches_apic`]; [`Ipi::reaches`] only answers the broadcast.
    XApicLogical(u8),
    /// Shorthand 01: the sender only.
    ToSelf,
    /// Shorthand 10.
    AllIncludingSelf,
    /// Shorthand 11.
    AllExcludingSelf,
}

/// The destination value that reaches every local APIC in either mode (§11.12.9).
pub const BROADCAST: u32 = u32::MAX;

/// An IPI the guest sent through the ICR, for the backend to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    /// The sender's x2APIC ID.
    pub source: u32,
    pub delivery: Delivery,
    /// The vector for `Fixed` (16-255: lower ones are refused at the sender), the start page
    /// for `StartUp`; meaningless for the others.
    pub vector: u8,
    pub destination: Destination,
}

/// The logical x2APIC ID of the local APIC with x2APIC ID `id` (§11.12.10.2): cluster
/// `id[19:4]` in bits 31:16, and bit `id[3:0]` set in 15:0.
pub fn logical_id(id: u32) -> u32 {
    (((id >> 4) & 0xffff) << 16) | (1 << (id & 0xf))
}

impl Ipi {
    /// Whether the local APIC with x2APIC ID `id` is a target. The backend delivers the IPI
    /// to every local APIC (the sender's included) for which this holds.
    ///
    /// Exact for every destination except [`Destination::XApicLogical`], whose matching needs
    /// the target's LDR and DFR: for it this answers only the broadcast (0xff: true) and is
    /// false otherwise. A backend whose guests may use xAPIC mode routes with
    /// [`Ipi::reaches_apic`] instead, which is exact for every form.
    pub fn reaches(&self, id: u32) -> bool {
        match self.destination {
            Destination::XApicPhysical(dest) => dest == XAPIC_BROADCAST || u32::from(dest) == id,
            Destination::XApicLogical(mda) => mda == XAPIC_BROADCAST,
            Destination::Physical(dest) => dest == BROADCAST || dest == id,
            Destination::Logical(dest) => {
                let ldr = logical_id(id);
                dest == BROADCAST || (dest >> 16 == ldr >> 16 && dest & ldr & 0xffff != 0)
            }
            Destination::ToSelf => id == self.source,
            Destination::AllIncludingSelf => true,
            Destination::AllExcludingSelf => id != self.source,
        }
    }
}

/// Why an ICR write sends nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NotSent {
    /// INIT level de-assert (INIT, level-triggered, level bit clear): not supported by
    /// Pentium 4 and later processors (§11.6.1). Linux still sends one after every INIT; it
    /// is dropped, as KVM does, which leaves the target as the INIT left it.
    Deassert,
    /// Delivery mode 011 or 111: reserved (Figure 11-28).
    ReservedMode,
    /// Delivery mode 001, lowest priority: reserved for IPIs in x2APIC mode (Figure 11-28);
    /// ESR's redirectable-IPI bit reports it (§11.5.3).
    LowestPriority,
    /// A fixed IPI with vector 0-15: ESR's send-illegal-vector bit reports it (§11.5.3).
    IllegalVector,
}

/// Decodes an ICR value, already checked for reserved bits, written by the local APIC with
/// x2APIC ID `source` in x2APIC mode.
pub(super) fn decode(icr: u64, source: u32) -> Result<Ipi, NotSent> {
    decode_in(icr, source, false)
}

/// Decodes an xAPIC-mode ICR (ICR_HIGH in bits 63:32, reserved bits already dropped): the
/// destination is the 8-bit field in bits 63:56, and lowest-priority delivery is legal.
pub(super) fn decode_xapic(icr: u64, source: u32) -> Result<Ipi, NotSent> {
    decode_in(icr, source, true)
}

fn decode_in(icr: u64, source: u32, xapic: bool) -> Result<Ipi, NotSent> {
    let vector = (icr & ICR_VECTOR) as u8;
    // §11.6.1: on Pentium 4 and later the level bit "has no meaning ... and will always be
    // issued as a 1", and level-triggered IPIs are issued as edge-triggered (the xAPIC ICR
    // combinations table, note 2): only the INIT de-assert combination is told apart.
    let deassert = icr & ICR_LEVEL_TRIGGERED != 0 && icr & ICR_LEVEL_ASSERT == 0;
    let delivery = match (icr & ICR_DELIVERY_MODE) >> 8 {
        0b000 => Delivery::Fixed,
        0b001 if xapic => Delivery::LowestPriority,
        0b001 => return Err(NotSent::LowestPriority),
        0b010 => Delivery::Smi,
        0b100 => Delivery::Nmi,
        0b101 if deassert => return Err(NotSent::Deassert),
        0b101 => Delivery::Init,
        0b110 => Delivery::StartUp,
        _ => return Err(NotSent::ReservedMode),
    };
    if matches!(delivery, Delivery::Fixed | Delivery::LowestPriority) && vector < 16 {
        return Err(NotSent::IllegalVector);
    }
    let dest = (icr >> 32) as u32;
    let xapic_dest = (icr >> 56) as u8;
    let destination = match (icr & ICR_SHORTHAND) >> 18 {
        0b00 if xapic && icr & ICR_LOGICAL != 0 => Destination::XApicLogical(xapic_dest),
        0b00 if xapic => Destination::XApicPhysical(xapic_dest),
        0b00 if icr & ICR_LOGICAL != 0 => Destination::Logical(dest),
        0b00 => Destination::Physical(dest),
        0b01 => Destination::ToSelf,
        0b10 => Destination::AllIncludingSelf,
        _ => Destination::AllExcludingSelf,
    };
    Ok(Ipi {
        source,
        delivery,
        vector,
        destination,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipi(destination: Destination) -> Ipi {
        Ipi {
            source: 0x21,
            delivery: Delivery::Fixed,
            vector: 0x40,
            destination,
        }
    }

    #[test]
    fn logical_ids_follow_the_sdm_derivation() {
        assert_eq!(logical_id(0), 0x0000_0001);
        assert_eq!(logical_id(1), 0x0000_0002);
        assert_eq!(logical_id(0xf), 0x0000_8000);
        assert_eq!(logical_id(0x10), 0x0001_0001);
        assert_eq!(logical_id(0x21), 0x0002_0002);
        assert_eq!(logical_id(0x000f_fff5), 0xffff_0020);
        // Bits 31:20 of the ID do not reach the logical ID.
        assert_eq!(logical_id(0xfff0_0003), 0x0000_0008);
    }

    #[test]
    fn physical_destinations_match_one_id_or_broadcast() {
        let to_5 = ipi(Destination::Physical(5));
        assert!(to_5.reaches(5));
        assert!(!to_5.reaches(0x21) && !to_5.reaches(4) && !to_5.reaches(0x105));
        let all = ipi(Destination::Physical(BROADCAST));
        assert!(all.reaches(0) && all.reaches(0x21) && all.reaches(0xffff_fffe));
    }

    #[test]
    fn logical_destinations_match_cluster_and_member_bits() {
        // Cluster 0, members 0 and 2; cluster 2, member 1 (ID 0x21).
        let c0 = ipi(Destination::Logical(0x0000_0005));
        assert!(c0.reaches(0) && c0.reaches(2));
        assert!(!c0.reaches(1) && !c0.reaches(0x10) && !c0.reaches(0x12));
        let c2 = ipi(Destination::Logical(0x0002_0002));
        assert!(c2.reaches(0x21) && !c2.reaches(0x1) && !c2.reaches(0x22));
        assert!(
            !ipi(Destination::Logical(0x0002_0000)).reaches(0x21),
            "no members"
        );
        let all = ipi(Destination::Logical(BROADCAST));
        assert!(all.reaches(0) && all.reaches(0x21) && all.reaches(0x1234_5678));
    }

    #[test]
    fn shorthands_match_relative_to_the_sender() {
        let own = ipi(Destination::ToSelf);
        assert!(own.reaches(0x21) && !own.reaches(0));
        let incl = ipi(Destination::AllIncludingSelf);
        assert!(incl.reaches(0x21) && incl.reaches(0));
        let excl = ipi(Destination::AllExcludingSelf);
        assert!(!excl.reaches(0x21) && excl.reaches(0) && excl.reaches(0x22));
    }

    #[test]
    fn decode_reads_every_field() {
        let icr = (7u64 << 32) | 0x0000_4630; // SIPI-like fields: level assert, mode 110
        assert_eq!(
            decode(icr, 0),
            Ok(Ipi {
                source: 0,
                delivery: Delivery::StartUp,
                vector: 0x30,
                destination: Destination::Physical(7),
            })
        );
        assert_eq!(
            decode(0x0000_0800 | 0x40 | (0x0001_0003u64 << 32), 3).map(|i| i.destination),
            Ok(Destination::Logical(0x0001_0003))
        );
        // A shorthand ignores the destination mode and field.
        assert_eq!(
            decode(0x000c_0840 | (9u64 << 32), 3).map(|i| i.destination),
            Ok(Destination::AllExcludingSelf)
        );
        // Vectors 0-15 are legal for the modes that do not deliver a vector.
        assert_eq!(decode(0x0400, 0).map(|i| i.delivery), Ok(Delivery::Nmi));
        assert_eq!(decode(0x0200, 0).map(|i| i.delivery), Ok(Delivery::Smi));
        assert_eq!(decode(0x0600, 0).map(|i| i.vector), Ok(0));
    }

    #[test]
    fn decode_refuses_what_is_not_sent() {
        assert_eq!(decode(0x0000_8500, 1), Err(NotSent::Deassert));
        assert_eq!(
            decode(0x0000_c500, 1).map(|i| i.delivery),
            Ok(Delivery::Init),
            "asserted level INIT is sent"
        );
        for icr in [0x0000_c040, 0x0000_8040, 0x0000_0040, 0x0000_4040] {
            assert_eq!(
                decode(icr, 1).map(|i| i.delivery),
                Ok(Delivery::Fixed),
                "ICR {icr:#x}: trigger and level bits do not matter to a fixed IPI"
            );
        }
        assert_eq!(
            decode(0x0000_8400, 1).map(|i| i.delivery),
            Ok(Delivery::Nmi)
        );
        assert_eq!(decode(0x0140, 1), Err(NotSent::LowestPriority));
        assert_eq!(decode(0x0340, 1), Err(NotSent::ReservedMode));
        assert_eq!(decode(0x0740, 1), Err(NotSent::ReservedMode));
        assert_eq!(decode(0x000f, 1), Err(NotSent::IllegalVector));
        assert_eq!(decode(0x0004_0000, 1), Err(NotSent::IllegalVector));
    }
}

//! An emulated Arm PrimeCell GPIO (PL061): eight pins, each an input or an output, with edge
//! or level interrupts (ARM DDI 0190B, PrimeCell GPIO (PL061) Technical Reference Manual,
//! §3.2 register summary and §3.3 descriptions).
//!
//! What a pin reads is its level: the output latch where the pin is an output, what the
//! board drives (or pulls) where it is an input. The board sets those external levels
//! through [`Pl061::set_external`] and learns the pins' levels from [`Pl061::pins`] after
//! each access. Every register value comes from the guest: any offset and size is answered
//! and nothing panics.

/// Register offsets (DDI 0190B Table 3-1).
pub mod registers {
    /// GPIODATA: 0x000-0x3FC; address bits 9:2 mask which pins an access touches.
    pub const DATA_END: u64 = 0x400;
    pub const DIR: u64 = 0x400;
    pub const IS: u64 = 0x404;
    pub const IBE: u64 = 0x408;
    pub const IEV: u64 = 0x40c;
    pub const IE: u64 = 0x410;
    pub const RIS: u64 = 0x414;
    pub const MIS: u64 = 0x418;
    pub const IC: u64 = 0x41c;
    pub const AFSEL: u64 = 0x420;
    /// GPIOPeriphID0-3 and GPIOPCellID0-3, one byte each in the low bits of a word.
    pub const PERIPH_ID0: u64 = 0xfe0;
    /// The frame's size.
    pub const SIZE: u64 = 0x1000;
}

/// GPIOPeriphID0-3 then GPIOPCellID0-3 (DDI 0190B §3.3.11-12): part 0x061, designer 0x41
/// (Arm), revision 0; the PrimeCell identification 0xB105F00D, which Linux's AMBA bus
/// reads to bind the `pl061` driver.
const ID: [u8; 8] = [0x61, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

#[derive(Clone, Debug, Default)]
pub struct Pl061 {
    /// The output latch (GPIODATA as written).
    data: u8,
    /// GPIODIR: 1 = output.
    dir: u8,
    /// GPIOIS: 1 = level-sensitive, 0 = edge.
    sense: u8,
    /// GPIOIBE: 1 = both edges.
    both_edges: u8,
    /// GPIOIEV: 1 = rising edge or high level.
    event: u8,
    /// GPIOIE: 1 = unmasked.
    enable: u8,
    /// Edges seen since last cleared (GPIORIS's edge part).
    edges: u8,
    /// GPIOAFSEL: kept for reads; no pin has an alternate function here.
    afsel: u8,
    /// The levels the board drives or pulls on the pins.
    external: u8,
}

impl Pl061 {
    /// A GPIO as it leaves reset: every pin an input, interrupts masked, with the board's
    /// `external` levels on its pins.
    pub fn new(external: u8) -> Self {
        Self {
            external,
            ..Self::default()
        }
    }

    /// Each pin's level.
    pub fn pins(&self) -> u8 {
        (self.data & self.dir) | (self.external & !self.dir)
    }

    /// The board drives `levels` onto the pins (outputs ignore them); edges on them are
    /// latched as the interrupt registers say.
    pub fn set_external(&mut self, levels: u8) {
        let before = self.pins();
        self.external = levels;
        self.latch_edges(before);
    }

    /// Whether the interrupt line is asserted (GPIOMIS non-zero).
    pub fn interrupt_asserted(&self) -> bool {
        self.masked_status() != 0
    }

    /// A read of `size` bytes at `offset`: the registers are a byte wide; wider reads get
    /// the byte zero-extended.
    pub fn read(&self, offset: u64) -> u32 {
        use registers::*;
        u32::from(match offset {
            o if o < DATA_END => self.pins() & mask(o),
            DIR => self.dir,
            IS => self.sense,
            IBE => self.both_edges,
            IEV => self.event,
            IE => self.enable,
            RIS => self.raw_status(),
            MIS => self.masked_status(),
            AFSEL => self.afsel,
            o if (PERIPH_ID0..PERIPH_ID0 + 32).contains(&o) && o % 4 == 0 => {
                ID[((o - PERIPH_ID0) / 4) as usize]
            }
            _ => 0,
        })
    }

    /// A write at `offset` of `value`'s low byte.
    pub fn write(&mut self, offset: u64, value: u32) {
        use registers::*;
        let value = value as u8;
        let before = self.pins();
        match offset {
            o if o < DATA_END => {
                let mask = mask(o);
                self.data = (self.data & !mask) | (value & mask);
            }
            DIR => self.dir = value,
            IS => self.sense = value,
            IBE => self.both_edges = value,
            IEV => self.event = value,
            IE => self.enable = value,
            // Write 1 to clear an edge.
            IC => self.edges &= !value,
            AFSEL => self.afsel = value,
            // GPIORIS, GPIOMIS and the identification registers are read-only.
            _ => {}
        }
        self.latch_edges(before);
    }

    /// Latches the edges between `before` and the pins now on edge-sensitive pins.
    fn latch_edges(&mut self, before: u8) {
        let now = self.pins();
        let rising = !before & now;
        let falling = before & !now;
        let wanted = (self.both_edges & (rising | falling))
            | (!self.both_edges & self.event & rising)
            | (!self.both_edges & !self.event & falling);
        self.edges |= wanted & !self.sense;
    }

    /// GPIORIS: latched edges, and level-sensitive pins at their active level.
    fn raw_status(&self) -> u8 {
        let pins = self.pins();
        let levels = self.sense & !(pins ^ self.event);
        (self.edges & !self.sense) | levels
    }

    fn masked_status(&self) -> u8 {
        self.raw_status() & self.enable
    }
}

/// The pins a GPIODATA access at `offset` touches: address bits 9:2.
fn mask(offset: u64) -> u8 {
    (offset >> 2) as u8
}

#[cfg(test)]
mod tests {
    use super::registers::*;
    use super::*;

    /// Linux's gpio-pl061 sets pin n through GPIODATA at offset 4 << n.
    fn set(gpio: &mut Pl061, pin: u8, level: bool) {
        gpio.write(4 << pin, u32::from(level) << pin);
    }

    #[test]
    fn data_accesses_touch_only_the_pins_their_address_masks() {
        let mut gpio = Pl061::new(0b1000_0100);
        let id: Vec<u32> = (0..8).map(|i| gpio.read(PERIPH_ID0 + 4 * i)).collect();
        assert_eq!(id, [0x61, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        assert_eq!(gpio.pins(), 0b1000_0100, "inputs at reset");
        gpio.write(DIR, 0b0000_0011);
        set(&mut gpio, 0, true);
        assert_eq!(gpio.pins(), 0b1000_0101);
        // A masked write leaves the other outputs alone; inputs ignore the latch.
        gpio.write(0x3fc, 0b1111_1110);
        assert_eq!(gpio.pins(), 0b1000_0110);
        assert_eq!(gpio.read(4 << 2), 0b100, "pin 2 through its mask");
        assert_eq!(gpio.read(4), 0, "pin 0 through its mask");
        assert_eq!(gpio.read(0x3fc), 0b1000_0110);
        gpio.set_external(0);
        assert_eq!(gpio.pins(), 0b0000_0010);
    }

    #[test]
    fn edges_latch_until_cleared_and_levels_follow_the_pin() {
        let mut gpio = Pl061::new(0);
        // Pin 0 rising edge, pin 1 both edges, pin 2 level low.
        gpio.write(IEV, 0b001);
        gpio.write(IBE, 0b010);
        gpio.write(IS, 0b100);
        gpio.write(IE, 0b111);
        assert_eq!(gpio.read(RIS), 0b100, "pin 2 is low");
        gpio.set_external(0b111);
        assert_eq!(gpio.read(RIS), 0b011);
        gpio.set_external(0b100);
        assert_eq!(
            gpio.read(RIS),
            0b011,
            "pin 1's falling edge, pin 0's latched rise"
        );
        gpio.write(IC, 0b001);
        assert_eq!(gpio.read(MIS), 0b010);
        gpio.write(IE, 0);
        assert!(!gpio.interrupt_asserted());
        assert_eq!(gpio.read(RIS), 0b010);
    }

    #[test]
    fn any_offset_is_answered() {
        let mut gpio = Pl061::new(0xff);
        for offset in (0..SIZE + 8).step_by(1) {
            gpio.write(offset, 0xffff_ffff);
            let _ = gpio.read(offset);
        }
    }
}

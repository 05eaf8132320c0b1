//! The target's end of an SPI bus driven pin by pin (Linux's `spi-gpio`, or any bit-banging
//! controller): clock, MOSI and chip select levels in, MISO level out, bytes to and from
//! the device behind it.
//!
//! Mode 0 (CPOL 0, CPHA 0), most significant bit first, the mode TPMs use (PTP §6.4.6): the
//! target puts a bit on MISO when chip select asserts and after every falling clock edge,
//! and both sides sample on the rising edge. So the device's next byte must be known before
//! the controller's byte has arrived, which [`SpiTarget`] reflects.

/// A device on the bus, seen a byte at a time.
pub trait SpiTarget {
    /// Chip select asserted: a transaction begins.
    fn select(&mut self);
    /// Chip select released: the transaction ends.
    fn deselect(&mut self);
    /// The byte to shift out on MISO next.
    fn next_out(&self) -> u8;
    /// The byte that came in on MOSI while the last `next_out` went out.
    fn receive(&mut self, byte: u8);
}

/// Bus levels as the pins carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// Chip select asserted (whatever its polarity on the wire).
    pub selected: bool,
    pub clock: bool,
    pub mosi: bool,
}

/// The bit-level state of a transaction.
#[derive(Clone, Debug, Default)]
pub struct SpiWires {
    selected: bool,
    clock: bool,
    /// Bits in so far of the byte being clocked in, and how many.
    incoming: u8,
    bits: u8,
    /// The byte going out.
    outgoing: u8,
    miso: bool,
}

impl SpiWires {
    pub fn new() -> Self {
        Self {
            miso: true,
            ..Self::default()
        }
    }

    /// The pins now carry `levels`: acts on chip select's and the clock's changes and gives
    /// the level the target drives on MISO (high, as its pull-up leaves it, when not
    /// selected).
    pub fn update(&mut self, target: &mut (impl SpiTarget + ?Sized), levels: Levels) -> bool {
        if levels.selected != self.selected {
            self.selected = levels.selected;
            self.clock = levels.clock;
            if levels.selected {
                target.select();
                self.begin_byte(target);
                self.miso = self.outgoing & 0x80 != 0;
            } else {
                target.deselect();
                self.miso = true;
            }
            return self.miso;
        }
        if !self.selected {
            self.clock = levels.clock;
            return self.miso;
        }
        match (self.clock, levels.clock) {
            // Rising: sample MOSI; a whole byte goes to the target.
            (false, true) => {
                self.incoming = (self.incoming << 1) | u8::from(levels.mosi);
                self.bits += 1;
                if self.bits == 8 {
                    target.receive(self.incoming);
                    self.begin_byte(target);
                }
            }
            // Falling: the next bit out.
            (true, false) => self.miso = self.outgoing & (0x80 >> self.bits) != 0,
            _ => {}
        }
        self.clock = levels.clock;
        self.miso
    }

    /// A new byte: the target's next goes out. Its first bit goes on MISO when chip select
    /// asserts, or at the falling edge after the last byte's eighth bit was sampled.
    fn begin_byte(&mut self, target: &(impl SpiTarget + ?Sized)) {
        self.incoming = 0;
        self.bits = 0;
        self.outgoing = target.next_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that echoes each byte, plus one, in the next.
    #[derive(Default)]
    struct Echo {
        selects: u32,
        received: Vec<u8>,
    }

    impl SpiTarget for Echo {
        fn select(&mut self) {
            self.selects += 1;
        }
        fn deselect(&mut self) {}
        fn next_out(&self) -> u8 {
            self.received.last().map_or(0xa5, |b| b.wrapping_add(1))
        }
        fn receive(&mut self, byte: u8) {
            self.received.push(byte);
        }
    }

    /// Linux's spi-bitbang in mode 0: per bit, MOSI, clock high, read MISO, clock low.
    fn exchange(wires: &mut SpiWires, target: &mut Echo, byte: u8) -> u8 {
        let mut read = 0;
        for bit in (0..8).rev() {
            let mosi = byte & (1 << bit) != 0;
            let levels = |clock| Levels {
                selected: true,
                clock,
                mosi,
            };
            wires.update(target, levels(false));
            let miso = wires.update(target, levels(true));
            read = (read << 1) | u8::from(miso);
            wires.update(target, levels(false));
        }
        read
    }

    #[test]
    fn bytes_cross_in_mode_0() {
        let (mut wires, mut target) = (SpiWires::new(), Echo::default());
        let idle = Levels {
            selected: false,
            clock: false,
            mosi: false,
        };
        assert!(wires.update(&mut target, idle), "MISO pulled high");
        wires.update(
            &mut target,
            Levels {
                selected: true,
                ..idle
            },
        );
        assert_eq!(target.selects, 1);
        assert_eq!(exchange(&mut wires, &mut target, 0x3c), 0xa5);
        assert_eq!(exchange(&mut wires, &mut target, 0x80), 0x3d);
        assert_eq!(exchange(&mut wires, &mut target, 0x01), 0x81);
        assert_eq!(target.received, [0x3c, 0x80, 0x01]);
        // Clocking with chip select released reaches nobody.
        wires.update(&mut target, idle);
        wires.update(
            &mut target,
            Levels {
                clock: true,
                ..idle
            },
        );
        wires.update(&mut target, idle);
        assert_eq!(target.received.len(), 3);
        // A new transaction starts at a byte boundary even after a partial byte.
        wires.update(
            &mut target,
            Levels {
                selected: true,
                ..idle
            },
        );
        wires.update(
            &mut target,
            Levels {
                selected: true,
                clock: true,
                mosi: true,
            },
        );
        wires.update(&mut target, idle);
        wires.update(
            &mut target,
            Levels {
                selected: true,
                ..idle
            },
        );
        assert_eq!(exchange(&mut wires, &mut target, 0x10), 0x02);
        assert_eq!(target.received, [0x3c, 0x80, 0x01, 0x10]);
    }
}

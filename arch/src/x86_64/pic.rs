//! The legacy 8259A interrupt controllers, which Parapet keeps fully masked.
//!
//! Firmware leaves them programmed with vector bases that overlap CPU exceptions (IRQ0 on
//! vector 8, #DF's), so they are remapped clear of 0-31 and masked before interrupts are
//! ever enabled (8259A datasheet, ICW1-ICW4 and OCW1).

use super::instructions::outb;

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;
/// ICW1: initialisation, ICW4 follows.
const ICW1_INIT: u8 = 0x11;
/// ICW4: 8086 mode.
const ICW4_8086: u8 = 0x01;

/// Remaps both PICs to vectors `base..base + 16` and masks every line.
///
/// # Safety
/// The PIC ports must not be in use by anything else; interrupts should be masked.
pub unsafe fn remap_and_mask(base: u8) {
    // SAFETY: the caller owns the PICs. The sequence is the datasheet's ICW1..ICW4, then OCW1.
    unsafe {
        outb(MASTER_COMMAND, ICW1_INIT);
        outb(SLAVE_COMMAND, ICW1_INIT);
        outb(MASTER_DATA, base);
        outb(SLAVE_DATA, base + 8);
        outb(MASTER_DATA, 1 << 2); // slave on IRQ2
        outb(SLAVE_DATA, 2); // cascade identity
        outb(MASTER_DATA, ICW4_8086);
        outb(SLAVE_DATA, ICW4_8086);
        outb(MASTER_DATA, 0xff);
        outb(SLAVE_DATA, 0xff);
    }
}

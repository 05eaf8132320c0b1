//! The VP register page: a page the hypervisor fills with a lower VTL's registers when the
//! higher VTL is entered, and from which it takes the ones the higher VTL marked dirty on the
//! VTL return — so an intercept is completed (RIP stepped) without a SetVpRegisters call.
//!
//! Not in the public TLFS; Hyper-V offers it to VTL2 and Linux's mshv_vtl uses it
//! (`hv_vp_register_page`, enabled through register HV_X64_REGISTER_REG_PAGE set for VTL0,
//! value: bit 0 enable, 63:12 page number). Layout (x64): version u16, isvalid u8, reserved
//! u8, dirty u32, then RAX..R15 (16 u64, in RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15
//! order), RIP, RFLAGS.

use crate::bytes::{put, u32_at, u64_at, u8_at};

/// The register name that places the page (set by VTL2 for target VTL0).
pub const REGISTER_NAME: u32 = 0x0009_001c;

pub const VERSION: usize = 0;
pub const IS_VALID: usize = 2;
pub const DIRTY: usize = 4;
pub const GP_REGISTERS: usize = 8;
/// RSP is the fifth general-purpose register.
pub const RSP: usize = GP_REGISTERS + 4 * 8;
pub const RIP: usize = GP_REGISTERS + 16 * 8;
pub const RFLAGS: usize = RIP + 8;
/// The bytes this implementation reads and writes.
pub const SIZE: usize = RFLAGS + 8;

/// Dirty bits: the register classes the higher VTL changed.
pub mod dirty {
    pub const GENERAL: u32 = 1 << 0;
    pub const IP: u32 = 1 << 1;
    pub const FLAGS: u32 = 1 << 4;
}

/// The lower VTL's registers in the page's layout, valid, nothing dirty.
pub fn encode(general: &[u64; 16], rip: u64, rflags: u64) -> [u8; SIZE] {
    let mut page = [0u8; SIZE];
    put(&mut page, VERSION, &1u16.to_le_bytes());
    put(&mut page, IS_VALID, &[1]);
    for (i, value) in general.iter().enumerate() {
        put(&mut page, GP_REGISTERS + 8 * i, &value.to_le_bytes());
    }
    put(&mut page, RIP, &rip.to_le_bytes());
    put(&mut page, RFLAGS, &rflags.to_le_bytes());
    page
}

/// What the higher VTL asks to change, read from a copy of the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub rsp: Option<u64>,
    pub rip: Option<u64>,
    pub rflags: Option<u64>,
}

/// The dirty registers of `page` (a copy). Only RSP among the general-purpose ones: the rest
/// are shared between VTLs and travel in the registers themselves.
pub fn changes(page: &[u8]) -> Changes {
    if u8_at(page, IS_VALID) != Some(1) {
        return Changes::default();
    }
    let dirty = u32_at(page, DIRTY).unwrap_or(0);
    let pick = |class: u32, at: usize| (dirty & class != 0).then(|| u64_at(page, at)).flatten();
    Changes {
        rsp: pick(dirty::GENERAL, RSP),
        rip: pick(dirty::IP, RIP),
        rflags: pick(dirty::FLAGS, RFLAGS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_rip_is_taken_and_unmarked_ones_are_not() {
        let mut gp = [0u64; 16];
        gp[4] = 0x7000; // RSP
        let mut page = encode(&gp, 0x1000, 0x202);
        assert_eq!(u64_at(&page, RSP), Some(0x7000));
        assert_eq!(changes(&page), Changes::default(), "nothing dirty yet");
        page[RIP..RIP + 8].copy_from_slice(&0x1002u64.to_le_bytes());
        page[DIRTY] = dirty::IP as u8;
        assert_eq!(
            changes(&page),
            Changes {
                rip: Some(0x1002),
                ..Default::default()
            }
        );
        page[IS_VALID] = 0;
        assert_eq!(
            changes(&page),
            Changes::default(),
            "an invalid page changes nothing"
        );
        assert_eq!(changes(&[]), Changes::default());
    }
}

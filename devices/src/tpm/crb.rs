//! The TPM's Command Response Buffer interface (CRB): the MMIO registers through which a
//! guest OS drives a TPM 2.0 (TCG PC Client Platform TPM Profile Specification, PTP, version
//! 1.05, §6.5 "CRB Interface"; register layout in its Table 23 and §6.5.3).
//!
//! One 4 KiB register page per locality from the base (0xFED4_0000 on a PC), five in all.
//! In each: the locality registers (state, control, status), the interface identifier, the
//! control area (request, status, cancel, start, the buffers' sizes and addresses), and the
//! 3968-byte data buffer at 0x80, which is both the command and the response buffer.
//!
//! A command runs at once: the write of 1 to TPM_CRB_CTRL_START reads the command out of the
//! buffer (one copy: the guest cannot change it while it runs), executes it, and writes the
//! response before the write completes, so START reads back 0 when the driver first looks.
//! Everything here comes from the guest: any access at any offset and size gets what the
//! PTP says or, where it says nothing, reads 0 and is ignored, and never panics.

use alloc::vec;
use alloc::vec::Vec;

use super::Tpm;

/// Where PCs put it (PTP §5.4.1, "TPM Locality Address Assignment").
pub const BASE: u64 = 0xfed4_0000;
/// Five localities of 4 KiB.
pub const WINDOW: u64 = LOCALITIES as u64 * LOCALITY_PAGE;
const LOCALITIES: u8 = 5;
const LOCALITY_PAGE: u64 = 0x1000;

/// Register offsets within a locality's page (PTP Table 23).
mod reg {
    pub const LOC_STATE: u64 = 0x00;
    pub const LOC_CTRL: u64 = 0x08;
    pub const LOC_STS: u64 = 0x0c;
    pub const INTF_ID: u64 = 0x30;
    pub const CTRL_EXT: u64 = 0x38;
    pub const CTRL_REQ: u64 = 0x40;
    pub const CTRL_STS: u64 = 0x44;
    pub const CTRL_CANCEL: u64 = 0x48;
    pub const CTRL_START: u64 = 0x4c;
    pub const INT_ENABLE: u64 = 0x50;
    pub const INT_STS: u64 = 0x54;
    pub const CMD_SIZE: u64 = 0x58;
    pub const CMD_LADDR: u64 = 0x5c;
    pub const CMD_HADDR: u64 = 0x60;
    pub const RSP_SIZE: u64 = 0x64;
    pub const RSP_ADDR: u64 = 0x68;
    pub const DATA_BUFFER: u64 = 0x80;
}

/// The data buffer's size: the rest of the page.
pub const DATA_BUFFER_SIZE: usize = (LOCALITY_PAGE - reg::DATA_BUFFER) as usize;

/// TPM_LOC_STATE_x bits (PTP §6.5.3.1).
const LOC_STATE_ESTABLISHED: u32 = 1 << 0;
const LOC_STATE_ASSIGNED: u32 = 1 << 1;
const LOC_STATE_ACTIVE_SHIFT: u32 = 2;
const LOC_STATE_REG_VALID: u32 = 1 << 7;
/// TPM_LOC_CTRL_x bits (§6.5.3.2).
const LOC_CTRL_REQUEST_ACCESS: u32 = 1 << 0;
const LOC_CTRL_RELINQUISH: u32 = 1 << 1;
const LOC_CTRL_SEIZE: u32 = 1 << 2;
const LOC_CTRL_RESET_ESTABLISHMENT: u32 = 1 << 3;
/// TPM_LOC_STS_x bits (§6.5.3.3).
const LOC_STS_GRANTED: u32 = 1 << 0;
const LOC_STS_BEEN_SEIZED: u32 = 1 << 1;
/// TPM_CRB_CTRL_REQ_x bits (§6.5.3.6).
const REQ_CMD_READY: u32 = 1 << 0;
const REQ_GO_IDLE: u32 = 1 << 1;
/// TPM_CRB_CTRL_STS_x bits (§6.5.3.7).
const STS_IDLE: u32 = 1 << 1;
/// TPM_CRB_CTRL_START_x / CANCEL_x: bit 0.
const INVOKE: u32 = 1;

/// TPM_INTERFACE_ID_x (§6.5.3.4): InterfaceType 3:0 = 1 (CRB active), InterfaceVersion 7:4 =
/// 1 (CRB), CapLocality 8 = 1 (five localities), CapDataXferSizeSupport 12:11 = 3 (64-byte
/// transfers), CapCRB 14 = 1, InterfaceSelector 18:17 = 1 (CRB), IntfSelLock 19 = 1 (only
/// CRB is offered). VID and DID (bits 63:32): none registered; 0xFFFF as no PCI vendor.
const INTERFACE_ID: u64 = 1
    | (1 << 4)
    | (1 << 8)
    | (3 << 11)
    | (1 << 14)
    | (1 << 17)
    | (1 << 19)
    | (0xffff << 32)
    | (0x0001 << 48);

/// A TPM behind its CRB registers.
pub struct Crb {
    tpm: Tpm,
    /// The locality that has the TPM, if any.
    active: Option<u8>,
    /// A locality's access was taken by a seize (reported in its LOC_STS until it asks
    /// again).
    seized: [bool; LOCALITIES as usize],
    /// Idle (after goIdle, and at reset) or ready for a command (after cmdReady).
    idle: bool,
    cancel: u32,
    int_enable: u32,
    int_status: u32,
    data: Vec<u8>,
    /// Commands run, for the platform's logs.
    commands: u64,
}

impl Crb {
    pub fn new(tpm: Tpm) -> Self {
        Self {
            tpm,
            active: None,
            seized: [false; LOCALITIES as usize],
            idle: true,
            cancel: 0,
            int_enable: 0,
            int_status: 0,
            data: vec![0; DATA_BUFFER_SIZE],
            commands: 0,
        }
    }

    /// The TPM, for the platform (to measure what it boots before the guest runs).
    pub fn tpm_mut(&mut self) -> &mut Tpm {
        &mut self.tpm
    }

    pub fn commands_run(&self) -> u64 {
        self.commands
    }

    /// A guest read of `size` bytes (1, 2, 4 or 8) at `offset` into the window. Registers
    /// read by parts give those parts; a read past the window or across a register's end
    /// reads the bytes that are there (0 where nothing is).
    pub fn read(&self, offset: u64, size: u8) -> u64 {
        let size = u64::from(size.clamp(1, 8));
        let mut value = 0u64;
        for i in 0..size {
            let byte = offset.checked_add(i).map_or(0, |at| self.read_byte(at));
            value |= u64::from(byte) << (8 * i);
        }
        value
    }

    /// A guest write of the low `size` bytes of `value` at `offset`. Control registers act
    /// on a write that covers their first byte (drivers write them whole, as 32 bits).
    pub fn write(&mut self, offset: u64, size: u8, value: u64) {
        let size = size.clamp(1, 8);
        let Some((locality, at)) = split(offset) else {
            return;
        };
        if at >= reg::DATA_BUFFER {
            self.write_buffer(locality, at, size, value);
            return;
        }
        let value = value as u32;
        match at {
            reg::LOC_CTRL => self.locality_control(locality, value),
            _ if self.active != Some(locality) => {
                // Only the active locality's control area responds (§6.5.3.6-12): writes
                // from another are dropped.
            }
            reg::CTRL_REQ => {
                if value & REQ_CMD_READY != 0 {
                    self.idle = false;
                } else if value & REQ_GO_IDLE != 0 {
                    self.idle = true;
                }
            }
            reg::CTRL_CANCEL => self.cancel = value & INVOKE,
            reg::CTRL_START if value & INVOKE != 0 => self.start(locality),
            reg::INT_ENABLE => self.int_enable = value,
            // Write 1 to clear (§6.5.3.11).
            reg::INT_STS => self.int_status &= !value,
            _ => {}
        }
    }

    fn read_byte(&self, offset: u64) -> u8 {
        let Some((locality, at)) = split(offset) else {
            return 0;
        };
        if at >= reg::DATA_BUFFER {
            // Only the active locality sees the buffer.
            return if self.active == Some(locality) {
                self.data
                    .get((at - reg::DATA_BUFFER) as usize)
                    .copied()
                    .unwrap_or(0)
            } else {
                0xff
            };
        }
        let (start, value) = match at & !3 {
            reg::LOC_STATE => (reg::LOC_STATE, u64::from(self.loc_state())),
            reg::LOC_STS => (reg::LOC_STS, u64::from(self.loc_sts(locality))),
            reg::INTF_ID | 0x34 => (reg::INTF_ID, INTERFACE_ID),
            reg::CTRL_EXT | 0x3c => (reg::CTRL_EXT, 0),
            reg::CTRL_REQ => (reg::CTRL_REQ, 0),
            reg::CTRL_STS => (reg::CTRL_STS, u64::from(self.ctrl_sts())),
            reg::CTRL_CANCEL => (reg::CTRL_CANCEL, u64::from(self.cancel)),
            // Commands complete within the START write: never seen running.
            reg::CTRL_START => (reg::CTRL_START, 0),
            reg::INT_ENABLE => (reg::INT_ENABLE, u64::from(self.int_enable)),
            reg::INT_STS => (reg::INT_STS, u64::from(self.int_status)),
            reg::CMD_SIZE | reg::RSP_SIZE => (at & !3, DATA_BUFFER_SIZE as u64),
            reg::CMD_LADDR => (reg::CMD_LADDR, self.buffer_address(locality) & 0xffff_ffff),
            reg::CMD_HADDR => (reg::CMD_HADDR, self.buffer_address(locality) >> 32),
            reg::RSP_ADDR | 0x6c => (reg::RSP_ADDR, self.buffer_address(locality)),
            _ => return 0,
        };
        (value >> (8 * (at - start))) as u8
    }

    /// The guest-physical address of `locality`'s data buffer, which the address registers
    /// give (command and response share it).
    fn buffer_address(&self, locality: u8) -> u64 {
        BASE + u64::from(locality) * LOCALITY_PAGE + reg::DATA_BUFFER
    }

    fn loc_state(&self) -> u32 {
        let assigned = match self.active {
            Some(l) => LOC_STATE_ASSIGNED | (u32::from(l) << LOC_STATE_ACTIVE_SHIFT),
            None => 0,
        };
        // tpmEstablished: no dynamic (DRTM) launch has happened; it reads 1 until one does
        // (the bit is "1 = not established" in the TIS sense the PTP keeps).
        LOC_STATE_REG_VALID | LOC_STATE_ESTABLISHED | assigned
    }

    fn loc_sts(&self, locality: u8) -> u32 {
        let mut status = 0;
        if self.active == Some(locality) {
            status |= LOC_STS_GRANTED;
        }
        if self.seized[usize::from(locality)] {
            status |= LOC_STS_BEEN_SEIZED;
        }
        status
    }

    fn ctrl_sts(&self) -> u32 {
        if self.idle {
            STS_IDLE
        } else {
            0
        }
    }

    /// TPM_LOC_CTRL_x (§6.5.3.2, §5.5.4 locality arbitration): a request is granted when no
    /// locality holds the TPM; relinquish frees it; seize takes it from a lower locality.
    fn locality_control(&mut self, locality: u8, value: u32) {
        let index = usize::from(locality);
        if value & LOC_CTRL_RELINQUISH != 0 && self.active == Some(locality) {
            self.active = None;
        }
        if value & LOC_CTRL_REQUEST_ACCESS != 0 && self.active.is_none() {
            self.active = Some(locality);
            self.seized[index] = false;
        }
        if value & LOC_CTRL_SEIZE != 0 {
            if let Some(holder) = self.active.filter(|&h| h < locality) {
                self.seized[usize::from(holder)] = true;
                self.active = Some(locality);
            }
        }
        // resetEstablishmentBit only works from locality 3 or 4 (§6.5.3.2); nothing is
        // established here to reset.
        let _ = value & LOC_CTRL_RESET_ESTABLISHMENT;
    }

    fn write_buffer(&mut self, locality: u8, at: u64, size: u8, value: u64) {
        if self.active != Some(locality) {
            return;
        }
        let start = (at - reg::DATA_BUFFER) as usize;
        for i in 0..usize::from(size) {
            if let Some(byte) = self.data.get_mut(start + i) {
                *byte = (value >> (8 * i)) as u8;
            }
        }
    }

    /// TPM_CRB_CTRL_START: runs the command in the buffer and puts the response there. The
    /// command's length is its header's commandSize, bounded by the buffer; the TPM judges
    /// the rest (a bad size is its TPM_RC_COMMAND_SIZE).
    fn start(&mut self, locality: u8) {
        const HEADER: usize = 10;
        let declared = self
            .data
            .get(2..6)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let length = declared.clamp(HEADER, DATA_BUFFER_SIZE);
        // One copy, taken before the TPM runs: the response overwrites the buffer.
        let command = self.data[..length].to_vec();
        let response = self.tpm.execute(locality, &command);
        let n = response.len().min(DATA_BUFFER_SIZE);
        self.data[..n].copy_from_slice(&response[..n]);
        self.cancel = 0;
        self.commands += 1;
    }
}

/// (locality, offset in its page) for a window offset.
fn split(offset: u64) -> Option<(u8, u64)> {
    let locality = u8::try_from(offset / LOCALITY_PAGE)
        .ok()
        .filter(|&l| l < LOCALITIES)?;
    Some((locality, offset % LOCALITY_PAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crb() -> Crb {
        Crb::new(Tpm::new([7; 32]))
    }

    /// Writes `bytes` into the buffer of locality 0 as a driver does, 4 bytes at a time.
    fn put(crb: &mut Crb, bytes: &[u8]) {
        for (i, chunk) in bytes.chunks(4).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            crb.write(reg::DATA_BUFFER + 4 * i as u64, 4, u64::from_le_bytes(word));
        }
    }

    fn get(crb: &Crb, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| crb.read(reg::DATA_BUFFER + i, 1) as u8)
            .collect()
    }

    #[test]
    fn the_linux_driver_sequence_runs_a_command() {
        let mut crb = crb();
        assert_eq!(crb.read(reg::INTF_ID, 4) & 0xf, 1, "CRB interface");
        assert_eq!(
            crb.read(reg::LOC_STATE, 4) & u64::from(LOC_STATE_ASSIGNED),
            0
        );
        crb.write(reg::LOC_CTRL, 4, u64::from(LOC_CTRL_REQUEST_ACCESS));
        let state = crb.read(reg::LOC_STATE, 4) as u32;
        assert_eq!(
            state & (LOC_STATE_ASSIGNED | LOC_STATE_REG_VALID),
            LOC_STATE_ASSIGNED | LOC_STATE_REG_VALID
        );
        assert_eq!(crb.read(reg::LOC_STS, 4), u64::from(LOC_STS_GRANTED));
        // The buffer's place, as the driver reads it (RSP_ADDR as two dwords, the way
        // memcpy_fromio copies it).
        let rsp = crb.read(reg::RSP_ADDR, 4) | crb.read(reg::RSP_ADDR + 4, 4) << 32;
        assert_eq!(rsp, BASE + 0x80);
        assert_eq!(crb.read(reg::CMD_LADDR, 4), BASE + 0x80);
        assert_eq!(crb.read(reg::CMD_HADDR, 4), 0);
        assert_eq!(crb.read(reg::CMD_SIZE, 4), DATA_BUFFER_SIZE as u64);
        crb.write(reg::CTRL_REQ, 4, u64::from(REQ_CMD_READY));
        assert_eq!(crb.read(reg::CTRL_REQ, 4), 0, "ready at once");
        assert_eq!(crb.read(reg::CTRL_STS, 4) & u64::from(STS_IDLE), 0);
        // TPM2_Startup(SU_CLEAR): tag 8001, size 12, code 0x144, 0000.
        put(&mut crb, &[0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0]);
        crb.write(reg::CTRL_START, 4, 1);
        assert_eq!(crb.read(reg::CTRL_START, 4), 0, "done");
        assert_eq!(get(&crb, 10), [0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0]);
        assert!(crb.tpm_mut().is_started());
        crb.write(reg::CTRL_REQ, 4, u64::from(REQ_GO_IDLE));
        assert_eq!(crb.read(reg::CTRL_STS, 4), u64::from(STS_IDLE));
        crb.write(reg::LOC_CTRL, 4, u64::from(LOC_CTRL_RELINQUISH));
        assert_eq!(crb.read(reg::LOC_STS, 4), 0);
    }

    #[test]
    fn another_locality_cannot_use_the_control_area_or_the_buffer() {
        let mut crb = crb();
        crb.write(reg::LOC_CTRL, 4, u64::from(LOC_CTRL_REQUEST_ACCESS));
        let l1 = LOCALITY_PAGE;
        crb.write(l1 + reg::LOC_CTRL, 4, u64::from(LOC_CTRL_REQUEST_ACCESS));
        assert_eq!(
            crb.read(l1 + reg::LOC_STS, 4),
            0,
            "not granted while 0 holds it"
        );
        crb.write(l1 + reg::DATA_BUFFER, 4, 0x1234_5678);
        assert_eq!(crb.read(l1 + reg::DATA_BUFFER, 4), 0xffff_ffff);
        assert_eq!(
            crb.read(reg::DATA_BUFFER, 4),
            0,
            "locality 0's buffer untouched"
        );
        crb.write(l1 + reg::CTRL_START, 4, 1);
        assert_eq!(crb.commands_run(), 0);
        // A seize from a higher locality takes it, and 0 learns it was seized.
        crb.write(l1 + reg::LOC_CTRL, 4, u64::from(LOC_CTRL_SEIZE));
        assert_eq!(crb.read(l1 + reg::LOC_STS, 4), u64::from(LOC_STS_GRANTED));
        assert_eq!(crb.read(reg::LOC_STS, 4), u64::from(LOC_STS_BEEN_SEIZED));
        assert_eq!(
            (crb.read(reg::LOC_STATE, 4) >> 2) & 7,
            1,
            "activeLocality 1"
        );
    }

    #[test]
    fn hostile_commands_and_accesses_get_errors_not_panics() {
        let mut crb = crb();
        crb.write(reg::LOC_CTRL, 4, u64::from(LOC_CTRL_REQUEST_ACCESS));
        // A header claiming more than the buffer, and one claiming less than a header.
        for size in [u32::MAX, 0, 3] {
            let mut command = [0x80, 1, 0, 0, 0, 0, 0, 0, 1, 0x44];
            command[2..6].copy_from_slice(&size.to_be_bytes());
            put(&mut crb, &command);
            crb.write(reg::CTRL_START, 4, 1);
            let response = get(&crb, 10);
            assert_eq!(&response[..2], &[0x80, 1]);
            assert_ne!(
                &response[6..10],
                &[0, 0, 0, 0],
                "an error code for size {size}"
            );
        }
        // Every offset and size, in and past the window.
        for offset in (0..WINDOW + 16).step_by(3) {
            for size in [0, 1, 2, 3, 4, 8, 9] {
                let _ = crb.read(offset, size);
            }
        }
        crb.write(u64::MAX, 8, u64::MAX);
        crb.write(WINDOW - 1, 8, u64::MAX);
        let _ = crb.read(u64::MAX - 2, 8);
    }
}

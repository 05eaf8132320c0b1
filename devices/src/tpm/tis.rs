//! The TPM's FIFO interface, the register set TPMs on SPI, I2C and LPC buses present (TCG PC
//! Client Platform TPM Profile Specification, PTP, version 1.05: §6.3 "FIFO Interface",
//! register layout in its Table 18, the state machine in §5.5.2 and Table 16).
//!
//! Addresses are the register space's, one 4 KiB page per locality (locality in bits 15:12),
//! as a bus transaction carries them; how they arrive (SPI frames, MMIO) is the caller's
//! business. Accesses are byte streams: `n` bytes at a register read or write it and those
//! after it, except at the data FIFOs, where every byte is the FIFO's next (PTP §6.4.6.1: the
//! address does not advance within the FIFO).
//!
//! A command runs when software writes tpmGo, before that write completes: status never
//! shows it executing. Everything here comes from the guest: any access at any address gets
//! what the PTP says or, where it says nothing, reads 0 and is ignored, and never panics.

use alloc::vec::Vec;

use super::Tpm;

const LOCALITIES: u8 = 5;
const LOCALITY_SHIFT: u32 = 12;

/// Register offsets within a locality's page (PTP Table 18).
mod reg {
    pub const ACCESS: u16 = 0x00;
    pub const INT_ENABLE: u16 = 0x08;
    pub const INT_VECTOR: u16 = 0x0c;
    pub const INT_STATUS: u16 = 0x10;
    pub const INTF_CAPABILITY: u16 = 0x14;
    pub const STS: u16 = 0x18;
    pub const DATA_FIFO: u16 = 0x24;
    pub const INTERFACE_ID: u16 = 0x30;
    pub const XDATA_FIFO: u16 = 0x80;
    pub const DID_VID: u16 = 0xf00;
    pub const RID: u16 = 0xf04;
}

/// TPM_ACCESS_x bits (PTP §6.3.2.1 Table 19).
mod access {
    pub const ESTABLISHMENT: u8 = 1 << 0;
    pub const REQUEST_USE: u8 = 1 << 1;
    pub const PENDING_REQUEST: u8 = 1 << 2;
    pub const SEIZE: u8 = 1 << 3;
    pub const BEEN_SEIZED: u8 = 1 << 4;
    pub const ACTIVE_LOCALITY: u8 = 1 << 5;
    pub const REG_VALID: u8 = 1 << 7;
}

/// TPM_STS_x bits (PTP §6.3.2.6 Table 20).
mod sts {
    pub const RESPONSE_RETRY: u32 = 1 << 1;
    pub const SELF_TEST_DONE: u32 = 1 << 2;
    pub const EXPECT: u32 = 1 << 3;
    pub const DATA_AVAIL: u32 = 1 << 4;
    pub const TPM_GO: u32 = 1 << 5;
    pub const COMMAND_READY: u32 = 1 << 6;
    pub const VALID: u32 = 1 << 7;
    pub const BURST_COUNT_SHIFT: u32 = 8;
    pub const COMMAND_CANCEL: u32 = 1 << 24;
    /// tpmFamily, bits 27:26: 01 for TPM 2.0.
    pub const FAMILY_TPM2: u32 = 1 << 26;
}

/// TPM_INTF_CAPABILITY_x (PTP §6.3.2.5 Table 22): InterfaceVersion 30:28 = 3 (the FIFO
/// interface of a TPM 2.0), DataTransferSizeSupport 10:9 = 3 (transfers of up to 64 bytes,
/// an SPI frame's most), no interrupt support (bits 7:0 clear: the guest polls), burst count
/// dynamic (bit 8 clear).
const INTF_CAPABILITY: u32 = (3 << 28) | (3 << 9);

/// TPM_INTERFACE_ID_x (PTP §6.3.2.8 Table 24): InterfaceType 3:0 = 0 (FIFO for TPM 2.0),
/// InterfaceVersion 7:4 = 0, CapLocality 8 (five localities), CapDataXferSizeSupport 12:11 =
/// 3 (64 bytes), CapFIFO 13, InterfaceSelector 18:17 = 0 (FIFO), IntfSelLock 19 (only FIFO).
const INTERFACE_ID: u32 = (1 << 8) | (3 << 11) | (1 << 13) | (1 << 19);

/// TPM_DID_VID_x: vendor 0xFFFF (no registered vendor) and device 1, as the CRB's interface
/// identifier gives them; TPM_RID_x: revision 1.
const DID_VID: u32 = 0x0001_ffff;
const RID: u8 = 1;

/// The command and response buffer: the largest command or response the TPM reports
/// (TPM_PT_MAX_COMMAND_SIZE, TPM_PT_MAX_RESPONSE_SIZE).
pub const BUFFER_SIZE: usize = 4096;
/// The shortest command: its header (tag, commandSize, commandCode).
const HEADER: usize = 10;

/// Where the FIFO's state machine is (PTP §5.5.2.2 Table 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No command; commandReady reads 0.
    Idle,
    /// Waiting for a command's first byte; commandReady reads 1.
    Ready,
    /// Taking a command's bytes.
    Reception,
    /// Holding a response for software to read.
    Completion,
}

/// A TPM behind its FIFO registers.
pub struct Tis {
    tpm: Tpm,
    /// The locality that has the TPM, if any.
    active: Option<u8>,
    /// Localities waiting for the TPM (requestUse written while another holds it).
    requested: [bool; LOCALITIES as usize],
    /// A locality whose access a seize took (beenSeized until it asks again).
    seized: [bool; LOCALITIES as usize],
    phase: Phase,
    /// The command being received, then the response being read.
    buffer: Vec<u8>,
    /// How much of the response has been read.
    read_at: usize,
    int_enable: u32,
    int_vector: u8,
    int_status: u32,
    /// Commands run, for the platform's logs.
    commands: u64,
}

impl Tis {
    pub fn new(tpm: Tpm) -> Self {
        Self {
            tpm,
            active: None,
            requested: [false; LOCALITIES as usize],
            seized: [false; LOCALITIES as usize],
            phase: Phase::Idle,
            buffer: Vec::new(),
            read_at: 0,
            int_enable: 0,
            int_vector: 0,
            int_status: 0,
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

    /// Reads `out.len()` bytes starting at register address `address`.
    pub fn read(&mut self, address: u32, out: &mut [u8]) {
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = match split(address) {
                Some((locality, offset)) if is_fifo(offset) => self.fifo_read(locality),
                _ => self.register_byte(address.wrapping_add(i as u32)),
            };
        }
    }

    /// Writes `bytes` starting at register address `address`.
    pub fn write(&mut self, address: u32, bytes: &[u8]) {
        for (i, &byte) in bytes.iter().enumerate() {
            match split(address) {
                Some((locality, offset)) if is_fifo(offset) => self.fifo_write(locality, byte),
                _ => self.register_write(address.wrapping_add(i as u32), byte),
            }
        }
    }

    fn register_byte(&self, address: u32) -> u8 {
        let Some((locality, offset)) = split(address) else {
            return 0;
        };
        let word = |start: u16, value: u32| (value >> (8 * (offset - start))) as u8;
        match offset {
            reg::ACCESS => self.access(locality),
            o if (reg::INTF_CAPABILITY..reg::INTF_CAPABILITY + 4).contains(&o) => {
                word(reg::INTF_CAPABILITY, INTF_CAPABILITY)
            }
            o if (reg::INTERFACE_ID..reg::INTERFACE_ID + 4).contains(&o) => {
                word(reg::INTERFACE_ID, INTERFACE_ID)
            }
            o if (reg::DID_VID..reg::DID_VID + 4).contains(&o) => word(reg::DID_VID, DID_VID),
            reg::RID => RID,
            // The rest belongs to the active locality; others read all ones (PTP §5.5.2.3).
            _ if self.active != Some(locality) => 0xff,
            o if (reg::INT_ENABLE..reg::INT_ENABLE + 4).contains(&o) => {
                word(reg::INT_ENABLE, self.int_enable)
            }
            reg::INT_VECTOR => self.int_vector,
            o if (reg::INT_STATUS..reg::INT_STATUS + 4).contains(&o) => {
                word(reg::INT_STATUS, self.int_status)
            }
            o if (reg::STS..reg::STS + 4).contains(&o) => word(reg::STS, self.status()),
            _ => 0,
        }
    }

    fn register_write(&mut self, address: u32, byte: u8) {
        let Some((locality, offset)) = split(address) else {
            return;
        };
        if offset == reg::ACCESS {
            self.access_write(locality, byte);
            return;
        }
        if self.active != Some(locality) {
            // Only the active locality's registers take writes (PTP §5.5.2.3).
            return;
        }
        let shift = |start: u16| 8 * u32::from(offset - start);
        match offset {
            o if (reg::INT_ENABLE..reg::INT_ENABLE + 4).contains(&o) => {
                let shift = shift(reg::INT_ENABLE);
                self.int_enable = (self.int_enable & !(0xff << shift)) | (u32::from(byte) << shift);
            }
            reg::INT_VECTOR => self.int_vector = byte & 0x0f,
            // Write 1 to clear.
            o if (reg::INT_STATUS..reg::INT_STATUS + 4).contains(&o) => {
                self.int_status &= !(u32::from(byte) << shift(reg::INT_STATUS));
            }
            o if (reg::STS..reg::STS + 4).contains(&o) => {
                self.status_write(u32::from(byte) << shift(reg::STS));
            }
            _ => {}
        }
    }

    /// TPM_ACCESS_x as `locality` reads it.
    fn access(&self, locality: u8) -> u8 {
        let index = usize::from(locality);
        let mut value = access::REG_VALID | access::ESTABLISHMENT;
        if self.active == Some(locality) {
            value |= access::ACTIVE_LOCALITY;
        }
        if self.requested[index] {
            value |= access::REQUEST_USE;
        }
        let others_waiting =
            (0..LOCALITIES).any(|l| l != locality && self.requested[usize::from(l)]);
        if others_waiting {
            value |= access::PENDING_REQUEST;
        }
        if self.seized[index] {
            value |= access::BEEN_SEIZED;
        }
        value
    }

    /// Locality arbitration (PTP §5.5.2.3, §6.3.2.1): a request is granted at once when no
    /// locality holds the TPM and otherwise waits; relinquishing passes the TPM to the
    /// highest waiting locality; a seize takes it from a lower one. A locality that loses
    /// the TPM mid-command loses the command.
    fn access_write(&mut self, locality: u8, byte: u8) {
        let index = usize::from(locality);
        // beenSeized: write 1 to clear.
        if byte & access::BEEN_SEIZED != 0 {
            self.seized[index] = false;
        }
        if byte & access::ACTIVE_LOCALITY != 0 {
            if self.active == Some(locality) {
                self.release();
                self.active = self.highest_waiting();
                if let Some(next) = self.active {
                    self.requested[usize::from(next)] = false;
                    self.seized[usize::from(next)] = false;
                }
            } else {
                // Writing it from a waiting locality withdraws the request.
                self.requested[index] = false;
            }
        }
        if byte & access::REQUEST_USE != 0 && self.active != Some(locality) {
            if self.active.is_none() {
                self.active = Some(locality);
                self.seized[index] = false;
            } else {
                self.requested[index] = true;
            }
        }
        if byte & access::SEIZE != 0 {
            if let Some(holder) = self.active.filter(|&h| h < locality) {
                self.seized[usize::from(holder)] = true;
                self.release();
                self.active = Some(locality);
                self.requested[index] = false;
                self.seized[index] = false;
            }
        }
    }

    fn highest_waiting(&self) -> Option<u8> {
        (0..LOCALITIES)
            .rev()
            .find(|&l| self.requested[usize::from(l)])
    }

    /// The TPM leaves its holder: any command or response it had is dropped.
    fn release(&mut self) {
        self.phase = Phase::Idle;
        self.buffer.clear();
        self.read_at = 0;
    }

    /// TPM_STS_x as the active locality reads it.
    fn status(&self) -> u32 {
        let mut value = sts::VALID | sts::SELF_TEST_DONE | sts::FAMILY_TPM2;
        let burst = match self.phase {
            Phase::Idle => 0,
            Phase::Ready => BUFFER_SIZE,
            Phase::Reception => {
                if self.expects_more() {
                    value |= sts::EXPECT;
                }
                BUFFER_SIZE - self.buffer.len()
            }
            Phase::Completion => {
                let left = self.buffer.len() - self.read_at;
                if left > 0 {
                    value |= sts::DATA_AVAIL;
                }
                left
            }
        };
        if self.phase == Phase::Ready {
            value |= sts::COMMAND_READY;
        }
        value | ((burst.min(0xffff) as u32) << sts::BURST_COUNT_SHIFT)
    }

    /// Whether the command being received is shorter than its header's commandSize (or its
    /// header is not yet whole).
    fn expects_more(&self) -> bool {
        match declared_size(&self.buffer) {
            Some(size) => self.buffer.len() < size.min(BUFFER_SIZE),
            None => true,
        }
    }

    /// A write to TPM_STS_x (PTP Table 16's transitions).
    fn status_write(&mut self, value: u32) {
        if value & sts::COMMAND_READY != 0 {
            match self.phase {
                // Completion goes to Idle, dropping the response; software asks again.
                Phase::Completion => self.release(),
                Phase::Idle | Phase::Ready | Phase::Reception => {
                    self.buffer.clear();
                    self.read_at = 0;
                    self.phase = Phase::Ready;
                }
            }
        }
        if value & sts::TPM_GO != 0 && self.phase == Phase::Reception && !self.expects_more() {
            self.execute();
        }
        if value & sts::RESPONSE_RETRY != 0 && self.phase == Phase::Completion {
            self.read_at = 0;
        }
        // commandCancel: commands finish within the tpmGo write, so none is left to cancel.
        let _ = value & sts::COMMAND_CANCEL;
    }

    fn fifo_write(&mut self, locality: u8, byte: u8) {
        if self.active != Some(locality) {
            return;
        }
        match self.phase {
            Phase::Ready => {
                self.phase = Phase::Reception;
                self.buffer.push(byte);
            }
            // Bytes past the declared size or the buffer are dropped, as the PTP lets a TPM
            // do; tpmGo still runs what the header declared.
            Phase::Reception if self.expects_more() => self.buffer.push(byte),
            _ => {}
        }
    }

    fn fifo_read(&mut self, locality: u8) -> u8 {
        if self.active != Some(locality) || self.phase != Phase::Completion {
            return 0xff;
        }
        match self.buffer.get(self.read_at) {
            Some(&byte) => {
                self.read_at += 1;
                byte
            }
            None => 0xff,
        }
    }

    /// tpmGo: runs the received command (already one copy, out of the guest's reach) and
    /// makes its response the FIFO's contents.
    fn execute(&mut self) {
        let locality = self.active.unwrap_or(0);
        let response = self.tpm.execute(locality, &self.buffer);
        self.buffer = response;
        self.buffer.truncate(BUFFER_SIZE);
        self.read_at = 0;
        self.phase = Phase::Completion;
        self.commands += 1;
    }
}

/// The locality and in-page offset of a register address; `None` past the fifth locality or
/// outside the TPM's 64 KiB (as the SPI address 0xD4xxxx carries it, the top byte is the
/// caller's).
fn split(address: u32) -> Option<(u8, u16)> {
    let address = address & 0xffff;
    let locality = (address >> LOCALITY_SHIFT) as u8;
    (locality < LOCALITIES).then_some((locality, (address & 0xfff) as u16))
}

fn is_fifo(offset: u16) -> bool {
    (reg::DATA_FIFO..reg::DATA_FIFO + 4).contains(&offset)
        || (reg::XDATA_FIFO..reg::XDATA_FIFO + 4).contains(&offset)
}

/// A command's commandSize, once its header has arrived; at least the header's size.
fn declared_size(command: &[u8]) -> Option<usize> {
    let bytes = command.get(2..6)?;
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    Some(size.max(HEADER))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TPM2_Startup(SU_CLEAR): tag 8001, size 12, code 0x144, 0000.
    const STARTUP: [u8; 12] = [0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0];
    const SUCCESS: [u8; 10] = [0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0];

    fn tis() -> Tis {
        Tis::new(Tpm::new([7; 32]))
    }

    fn read32(tis: &mut Tis, address: u32) -> u32 {
        let mut bytes = [0; 4];
        tis.read(address, &mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn read8(tis: &mut Tis, address: u32) -> u8 {
        let mut byte = [0];
        tis.read(address, &mut byte);
        byte[0]
    }

    fn burst_count(tis: &mut Tis, locality: u32) -> usize {
        ((read32(tis, (locality << 12) | u32::from(reg::STS)) >> 8) & 0xffff) as usize
    }

    /// What Linux's tpm_tis_core does for one command at `locality`: request the locality,
    /// commandReady, the command in bursts (Expect set until the last byte), tpmGo, the
    /// response in bursts (header first), commandReady, relinquish.
    fn run(tis: &mut Tis, locality: u32, command: &[u8]) -> Vec<u8> {
        let page = locality << 12;
        let sts = page | u32::from(reg::STS);
        let fifo = page | u32::from(reg::DATA_FIFO);
        tis.write(page, &[access::REQUEST_USE]);
        let granted = access::ACTIVE_LOCALITY | access::REG_VALID;
        assert_eq!(read8(tis, page) & (granted | access::REQUEST_USE), granted);
        assert_eq!(read8(tis, sts) & sts::COMMAND_READY as u8, 0, "idle");
        tis.write(sts, &[sts::COMMAND_READY as u8]);
        assert_ne!(read8(tis, sts) & sts::COMMAND_READY as u8, 0);
        let (body, last) = command.split_at(command.len() - 1);
        let mut sent = 0;
        while sent < body.len() {
            let n = burst_count(tis, locality).min(body.len() - sent).min(64);
            assert!(n > 0);
            tis.write(fifo, &body[sent..sent + n]);
            sent += n;
            assert_ne!(read8(tis, sts) & sts::EXPECT as u8, 0, "expects more");
        }
        tis.write(fifo, last);
        let status = read8(tis, sts);
        assert_eq!(status & (sts::VALID | sts::EXPECT) as u8, sts::VALID as u8);
        tis.write(sts, &[sts::TPM_GO as u8]);
        let status = read8(tis, sts);
        assert_eq!(status & 0x23, 0, "tpmGo, responseRetry and bit 0 read 0");
        assert_ne!(status & sts::DATA_AVAIL as u8, 0);
        let mut response = vec![0; 10];
        tis.read(fifo, &mut response);
        let size = u32::from_be_bytes(response[2..6].try_into().unwrap()) as usize;
        while response.len() < size {
            let n = burst_count(tis, locality).min(size - response.len());
            let mut part = vec![0; n];
            tis.read(fifo, &mut part);
            response.extend(part);
        }
        assert_eq!(read8(tis, sts) & sts::DATA_AVAIL as u8, 0, "all read");
        tis.write(sts, &[sts::COMMAND_READY as u8]);
        tis.write(page, &[access::ACTIVE_LOCALITY]);
        assert_eq!(read8(tis, page) & access::ACTIVE_LOCALITY, 0);
        response
    }

    #[test]
    fn the_linux_driver_sequence_runs_commands() {
        let mut tis = tis();
        assert_eq!(read32(&mut tis, 0xf00), DID_VID);
        assert_eq!(
            read32(&mut tis, 0x14) >> 28,
            3,
            "FIFO interface of a TPM 2.0"
        );
        assert_eq!(read32(&mut tis, 0x30) & 0xf, 0, "FIFO interface type");
        assert_eq!(run(&mut tis, 0, &STARTUP), SUCCESS);
        assert!(tis.tpm_mut().is_started());
        // TPM2_GetRandom(32): a response longer than the header, read in two bursts.
        let get_random = [0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 32];
        let response = run(&mut tis, 0, &get_random);
        assert_eq!(response.len(), 10 + 2 + 32);
        assert_eq!(&response[6..10], &[0, 0, 0, 0]);
        assert_eq!(tis.commands_run(), 2);
    }

    #[test]
    fn status_follows_the_fifo_state_machine() {
        let mut tis = tis();
        tis.write(0, &[access::REQUEST_USE]);
        let sts = u32::from(reg::STS);
        let status = read32(&mut tis, sts);
        assert_eq!(status & (3 << 26), sts::FAMILY_TPM2);
        assert_ne!(status & sts::VALID, 0);
        tis.write(sts, &[sts::COMMAND_READY as u8]);
        assert_eq!(burst_count(&mut tis, 0), BUFFER_SIZE);
        // tpmGo before the whole command is ignored.
        tis.write(0x24, &STARTUP[..8]);
        tis.write(sts, &[sts::TPM_GO as u8]);
        assert_ne!(read8(&mut tis, sts) & sts::EXPECT as u8, 0);
        assert_eq!(tis.commands_run(), 0);
        // commandReady mid-command drops it.
        tis.write(sts, &[sts::COMMAND_READY as u8]);
        assert_eq!(read8(&mut tis, sts) & sts::EXPECT as u8, 0);
        tis.write(0x24, &STARTUP);
        tis.write(sts, &[sts::TPM_GO as u8]);
        let mut first = [0; 10];
        tis.read(0x24, &mut first);
        // responseRetry reads it again from the start.
        tis.write(sts, &[sts::RESPONSE_RETRY as u8]);
        let mut again = [0; 10];
        tis.read(0x80, &mut again);
        assert_eq!(first, again);
        assert_eq!(first, SUCCESS);
        // Past the response the FIFO reads all ones.
        assert_eq!(read8(&mut tis, 0x24), 0xff);
        // Bytes after the declared size are dropped, and the command runs as declared.
        tis.write(sts, &[sts::COMMAND_READY as u8]);
        tis.write(sts, &[sts::COMMAND_READY as u8]);
        let mut long = STARTUP.to_vec();
        long.extend([0xaa; 5]);
        tis.write(0x24, &long);
        tis.write(sts, &[sts::TPM_GO as u8]);
        let mut response = [0; 10];
        tis.read(0x24, &mut response);
        assert_eq!(
            &response[6..10],
            &[0, 0, 0x01, 0x00],
            "TPM_RC_INITIALIZE: started once"
        );
    }

    #[test]
    fn localities_wait_their_turn_and_seize_from_lower_ones() {
        let mut tis = tis();
        tis.write(0x0000, &[access::REQUEST_USE]);
        tis.write(0x2000, &[access::REQUEST_USE]);
        tis.write(0x1000, &[access::REQUEST_USE]);
        assert_ne!(read8(&mut tis, 0x0000) & access::PENDING_REQUEST, 0);
        let waiting = read8(&mut tis, 0x2000);
        assert_eq!(
            waiting & (access::ACTIVE_LOCALITY | access::REQUEST_USE),
            access::REQUEST_USE
        );
        // Another locality's registers read all ones and take no writes.
        assert_eq!(read32(&mut tis, 0x2018), 0xffff_ffff);
        tis.write(0x2018, &[sts::COMMAND_READY as u8]);
        tis.write(0x0018, &[sts::COMMAND_READY as u8]);
        tis.write(0x0024, &STARTUP[..4]);
        // Relinquishing passes the TPM to the highest waiting locality, and the half
        // command is gone.
        tis.write(0x0000, &[access::ACTIVE_LOCALITY]);
        assert_ne!(read8(&mut tis, 0x2000) & access::ACTIVE_LOCALITY, 0);
        assert_eq!(read8(&mut tis, 0x2018) & sts::EXPECT as u8, 0);
        // Locality 4 seizes it from 2, which is told until it clears the flag.
        tis.write(0x4000, &[access::SEIZE]);
        assert_ne!(read8(&mut tis, 0x4000) & access::ACTIVE_LOCALITY, 0);
        assert_ne!(read8(&mut tis, 0x2000) & access::BEEN_SEIZED, 0);
        tis.write(0x2000, &[access::BEEN_SEIZED]);
        assert_eq!(read8(&mut tis, 0x2000) & access::BEEN_SEIZED, 0);
        // A lower locality cannot seize.
        tis.write(0x1000, &[access::SEIZE]);
        assert_ne!(read8(&mut tis, 0x4000) & access::ACTIVE_LOCALITY, 0);
        // Locality 1 withdraws its request; 4 relinquishes; nobody is left waiting.
        tis.write(0x1000, &[access::ACTIVE_LOCALITY]);
        tis.write(0x4000, &[access::ACTIVE_LOCALITY]);
        for page in [0x0000, 0x1000, 0x2000, 0x4000] {
            assert_eq!(read8(&mut tis, page) & access::ACTIVE_LOCALITY, 0);
        }
        // Past the fifth locality nothing answers.
        assert_eq!(read8(&mut tis, 0x5000), 0);
    }

    #[test]
    fn hostile_access_streams_never_panic() {
        // A small deterministic generator: the fuzz target covers this at scale.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut tis = tis();
        for _ in 0..20_000 {
            let r = next();
            let address = match r % 4 {
                0 => (r >> 8) as u32,
                1 => ((r >> 8) as u32 & 0x7000) | 0x24,
                2 => ((r >> 8) as u32 & 0x7000) | 0x18,
                _ => (r >> 8) as u32 & 0x70ff,
            };
            let len = ((r >> 40) % 70) as usize;
            if r & (1 << 63) != 0 {
                let mut out = vec![0; len];
                tis.read(address, &mut out);
            } else {
                let bytes: Vec<u8> = (0..len).map(|i| (r >> (i % 56)) as u8).collect();
                tis.write(address, &bytes);
            }
        }
    }
}

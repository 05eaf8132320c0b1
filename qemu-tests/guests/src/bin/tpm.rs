//! The tpm guest: drives the TPM Parapet gives it the way Linux's drivers do, through the
//! registers of the TCG PC Client Platform TPM Profile (PTP):
//!
//! - x86_64: the CRB interface at 0xFED40000 (PTP §6.5), as `tpm_crb` does: takes locality
//!   0, asks for cmdReady, writes the command into the data buffer with 32-bit stores, sets
//!   START, polls it back to 0, reads the response, goes idle and relinquishes.
//! - aarch64: the FIFO interface at 0x0C000000 (PTP §6.3; Parapet's `parapet.tpm=tis-mmio`),
//!   as `tpm_tis` does: takes locality 0, commandReady, the command byte by byte into the
//!   FIFO (Expect set until the last), tpmGo, waits for dataAvail, reads the response from the
//!   FIFO, commandReady again and relinquishes.
//!
//! Its commands: TPM2_GetRandom(16); TPM2_PCR_Extend of SHA-256 PCR 16 (the resettable debug
//! PCR) with 32 bytes of 0x11 under a password session; TPM2_PCR_Read of it. It prints each
//! result and ends with success only if every response code is 0, the random bytes came
//! back, and PCR 16 holds SHA-256(32 zero bytes || 32 bytes of 0x11), which any TPM gives.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("tpm is a test guest; `cargo xtask build` builds it for x86_64 and aarch64");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
use parapet_test_guests::{exit, println, serial, EXIT_FAILURE, EXIT_SUCCESS};

/// SHA-256(32 zero bytes || 32 bytes of 0x11): PCR 16 after the extend.
#[cfg(target_os = "none")]
const PCR16_AFTER: [u8; 32] = [
    0x88, 0x78, 0xb1, 0x5a, 0x7d, 0x6a, 0x3a, 0x4f, 0x46, 0x4e, 0x8f, 0x9f, 0x42, 0x59, 0x1d, 0xbc,
    0x0c, 0xf4, 0xbe, 0xde, 0xa0, 0xec, 0x30, 0x90, 0x03, 0xd2, 0xb2, 0xee, 0x53, 0x65, 0x5e, 0xf8,
];

#[cfg(target_os = "none")]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    serial::init();
    transport::open();
    let mut ok = true;
    let mut response = [0u8; 256];

    // TPM2_GetRandom(16).
    let get_random = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16];
    let n = transport::execute(&get_random, &mut response);
    let random = &response[12..28];
    println!(
        "tpm: GetRandom rc {:#x}, {} bytes: {}",
        response_code(&response),
        n.saturating_sub(12),
        Hex(random)
    );
    ok &= response_code(&response) == 0 && n == 28 && random.iter().any(|&b| b != 0);

    // TPM2_PCR_Extend(PCR 16, SHA-256: 32 x 0x11), password session with empty auth.
    const EXTEND_SIZE: usize = 10 + 4 + 4 + 9 + 4 + 2 + 32;
    let mut extend = [0u8; EXTEND_SIZE];
    extend[..10].copy_from_slice(&[0x80, 0x02, 0, 0, 0, EXTEND_SIZE as u8, 0, 0, 0x01, 0x82]);
    extend[10..14].copy_from_slice(&16u32.to_be_bytes());
    extend[14..18].copy_from_slice(&9u32.to_be_bytes());
    extend[18..27].copy_from_slice(&[0x40, 0, 0, 0x09, 0, 0, 0, 0, 0]);
    extend[27..31].copy_from_slice(&1u32.to_be_bytes());
    extend[31..33].copy_from_slice(&[0x00, 0x0b]);
    extend[33..].fill(0x11);
    transport::execute(&extend, &mut response);
    println!("tpm: PCR_Extend rc {:#x}", response_code(&response));
    ok &= response_code(&response) == 0;

    // TPM2_PCR_Read(SHA-256, PCR 16).
    let pcr_read = [
        0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, 0x00, 0x0b, 3, 0, 0, 0x01,
    ];
    let n = transport::execute(&pcr_read, &mut response);
    // Header, update counter, the selection (4 + 2 + 1 + 3), digest count, TPM2B size.
    let digest = &response[10 + 4 + 10 + 4 + 2..][..32];
    println!(
        "tpm: PCR_Read rc {:#x}, sha256 PCR 16 = {}",
        response_code(&response),
        Hex(digest)
    );
    ok &= response_code(&response) == 0 && n == 62 && digest == PCR16_AFTER;

    transport::close();
    if ok {
        println!("tpm: all answers as expected");
        exit(EXIT_SUCCESS)
    }
    println!("tpm: an answer was wrong");
    exit(EXIT_FAILURE)
}

#[cfg(target_os = "none")]
fn response_code(response: &[u8]) -> u32 {
    u32::from_be_bytes([response[6], response[7], response[8], response[9]])
}

/// The size a response's header declares, bounded by the buffer.
#[cfg(target_os = "none")]
fn response_size(response: &[u8]) -> usize {
    let size = u32::from_be_bytes([response[2], response[3], response[4], response[5]]);
    (size as usize).min(response.len())
}

#[cfg(target_os = "none")]
fn fail(why: &str) -> ! {
    println!("tpm: {why}");
    exit(EXIT_FAILURE)
}

#[cfg(target_os = "none")]
struct Hex<'a>(&'a [u8]);

#[cfg(target_os = "none")]
impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The CRB interface, locality 0 (PTP Table 23).
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod transport {
    use super::{fail, response_size};
    use parapet_test_guests::println;

    const BASE: u64 = 0xfed4_0000;
    const LOC_CTRL: u64 = 0x08;
    const LOC_STS: u64 = 0x0c;
    const INTF_ID: u64 = 0x30;
    const CTRL_REQ: u64 = 0x40;
    const CTRL_STS: u64 = 0x44;
    const CTRL_START: u64 = 0x4c;
    const DATA_BUFFER: u64 = 0x80;

    /// A 32-bit register read by one MOV, as Linux's `readl` makes it: a volatile read
    /// may be folded into another instruction's operand (`test [reg], imm`), and Parapet's
    /// MMIO emulation decodes the MOV and MOVS forms OSes use for device registers.
    fn read(offset: u64) -> u32 {
        let value: u32;
        // SAFETY: the CRB's registers, a device page the paravisor emulates.
        unsafe {
            core::arch::asm!("mov {0:e}, [{1}]", out(reg) value, in(reg) BASE + offset, options(nostack, preserves_flags))
        };
        value
    }

    /// A 32-bit register write by one MOV, as Linux's `writel` makes it.
    fn write(offset: u64, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::arch::asm!("mov [{1}], {0:e}", in(reg) value, in(reg) BASE + offset, options(nostack, preserves_flags))
        };
    }

    /// Checks the interface and takes locality 0.
    pub fn open() {
        let interface = read(INTF_ID);
        println!("tpm: interface id {interface:#010x}");
        if interface & 0xf != 1 {
            fail("not a CRB interface");
        }
        write(LOC_CTRL, 1);
        if read(LOC_STS) & 1 == 0 {
            fail("locality 0 not granted");
        }
    }

    /// Relinquishes locality 0.
    pub fn close() {
        write(LOC_CTRL, 0b10);
    }

    /// Runs one command; the response in `response`, and its length.
    pub fn execute(command: &[u8], response: &mut [u8; 256]) -> usize {
        write(CTRL_REQ, 1);
        if read(CTRL_STS) & 0b10 != 0 {
            fail("still idle after cmdReady");
        }
        for (i, chunk) in command.chunks(4).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            write(DATA_BUFFER + 4 * i as u64, u32::from_le_bytes(word));
        }
        write(CTRL_START, 1);
        let mut polls = 0u32;
        while read(CTRL_START) != 0 {
            polls += 1;
            if polls > 1_000_000 {
                fail("START never cleared");
            }
        }
        for (i, chunk) in response.chunks_mut(4).enumerate() {
            chunk.copy_from_slice(&read(DATA_BUFFER + 4 * i as u64).to_le_bytes());
        }
        write(CTRL_REQ, 0b10);
        response_size(response)
    }
}

/// The FIFO interface, locality 0 (PTP Table 18).
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
mod transport {
    use super::{fail, response_size};
    use parapet_test_guests::println;

    const BASE: u64 = 0x0c00_0000;
    const ACCESS: u64 = 0x00;
    const INTF_CAPABILITY: u64 = 0x14;
    const STS: u64 = 0x18;
    const DATA_FIFO: u64 = 0x24;
    const INTERFACE_ID: u64 = 0x30;
    /// TPM_ACCESS_x and TPM_STS_x bits (PTP Tables 19 and 20).
    const REQUEST_USE: u8 = 1 << 1;
    const ACTIVE_LOCALITY: u8 = 1 << 5;
    const REG_VALID: u8 = 1 << 7;
    const EXPECT: u8 = 1 << 3;
    const DATA_AVAIL: u8 = 1 << 4;
    const TPM_GO: u8 = 1 << 5;
    const COMMAND_READY: u8 = 1 << 6;
    const STS_VALID: u8 = 1 << 7;

    fn read8(offset: u64) -> u8 {
        // SAFETY: the TPM's registers, a device window the paravisor emulates; the MMU is
        // off, so this is a Device-nGnRnE byte load.
        unsafe { ((BASE + offset) as *const u8).read_volatile() }
    }

    fn write8(offset: u64, value: u8) {
        // SAFETY: as in `read8`.
        unsafe { ((BASE + offset) as *mut u8).write_volatile(value) }
    }

    fn read32(offset: u64) -> u32 {
        // SAFETY: as in `read8`; the offset is 4-byte aligned.
        unsafe { ((BASE + offset) as *const u32).read_volatile() }
    }

    /// Checks the interface and takes locality 0.
    pub fn open() {
        let interface = read32(INTERFACE_ID);
        let capability = read32(INTF_CAPABILITY);
        println!("tpm: interface id {interface:#010x}, capability {capability:#010x}");
        if interface & 0xf != 0 || (capability >> 28) & 7 != 3 {
            fail("not the FIFO interface of a TPM 2.0");
        }
        write8(ACCESS, REQUEST_USE);
        if read8(ACCESS) & (ACTIVE_LOCALITY | REG_VALID) != ACTIVE_LOCALITY | REG_VALID {
            fail("locality 0 not granted");
        }
    }

    /// Relinquishes locality 0.
    pub fn close() {
        write8(ACCESS, ACTIVE_LOCALITY);
    }

    /// Runs one command; the response in `response`, and its length.
    pub fn execute(command: &[u8], response: &mut [u8; 256]) -> usize {
        write8(STS, COMMAND_READY);
        if read8(STS) & COMMAND_READY == 0 {
            fail("not ready after commandReady");
        }
        let (body, last) = command.split_at(command.len() - 1);
        for &byte in body {
            write8(DATA_FIFO, byte);
        }
        if read8(STS) & (STS_VALID | EXPECT) != STS_VALID | EXPECT {
            fail("the TPM does not expect the command's last byte");
        }
        write8(DATA_FIFO, last[0]);
        if read8(STS) & EXPECT != 0 {
            fail("the TPM expects more than the command");
        }
        write8(STS, TPM_GO);
        let mut polls = 0u32;
        while read8(STS) & (STS_VALID | DATA_AVAIL) != STS_VALID | DATA_AVAIL {
            polls += 1;
            if polls > 1_000_000 {
                fail("no response");
            }
        }
        for byte in response.iter_mut().take(10) {
            *byte = read8(DATA_FIFO);
        }
        let size = response_size(response);
        for byte in response.iter_mut().take(size).skip(10) {
            *byte = read8(DATA_FIFO);
        }
        if read8(STS) & DATA_AVAIL != 0 {
            fail("the response is longer than it says");
        }
        write8(STS, COMMAND_READY);
        size
    }
}

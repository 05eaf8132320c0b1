//! The tpm guest (x86_64): drives the TPM Parapet gives it through the CRB registers at
//! 0xFED40000 the way Linux's tpm_crb driver does (TCG PC Client Platform TPM Profile, §6.5):
//! takes locality 0, asks for cmdReady, writes a command into the data buffer with 32-bit
//! stores, sets START, polls it back to 0, reads the response, goes idle and relinquishes.
//!
//! Its commands: TPM2_GetRandom(16); TPM2_PCR_Extend of SHA-256 PCR 16 (the resettable debug
//! PCR) with 32 bytes of 0x11 under a password session; TPM2_PCR_Read of it. It prints each
//! result and ends with success only if every response code is 0, the random bytes came
//! back, and PCR 16 holds SHA-256(32 zero bytes || 32 bytes of 0x11), which any TPM gives.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("tpm is a test guest; `cargo xtask build` builds it for x86_64");
    std::process::exit(2);
}

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    use parapet_test_guests::{exit, println, serial, EXIT_FAILURE};

    serial::init();
    println!("tpm: x86_64 only (the aarch64 guest's TPM is on SPI)");
    exit(EXIT_FAILURE)
}

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod x86 {
    use parapet_test_guests::{exit, println, serial, EXIT_FAILURE, EXIT_SUCCESS};

    /// The CRB's registers, locality 0 (PTP Table 23).
    const BASE: u64 = 0xfed4_0000;
    const LOC_CTRL: u64 = 0x08;
    const LOC_STS: u64 = 0x0c;
    const INTF_ID: u64 = 0x30;
    const CTRL_REQ: u64 = 0x40;
    const CTRL_STS: u64 = 0x44;
    const CTRL_START: u64 = 0x4c;
    const DATA_BUFFER: u64 = 0x80;

    /// SHA-256(32 zero bytes || 32 bytes of 0x11): PCR 16 after the extend.
    const PCR16_AFTER: [u8; 32] = [
        0x88, 0x78, 0xb1, 0x5a, 0x7d, 0x6a, 0x3a, 0x4f, 0x46, 0x4e, 0x8f, 0x9f, 0x42, 0x59, 0x1d,
        0xbc, 0x0c, 0xf4, 0xbe, 0xde, 0xa0, 0xec, 0x30, 0x90, 0x03, 0xd2, 0xb2, 0xee, 0x53, 0x65,
        0x5e, 0xf8,
    ];

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

    /// Runs one command; the response, in `response`, and its length.
    fn execute(command: &[u8], response: &mut [u8; 256]) -> usize {
        write(CTRL_REQ, 1);
        if read(CTRL_STS) & 0b10 != 0 {
            println!("tpm: still idle after cmdReady");
            exit(EXIT_FAILURE)
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
                println!("tpm: START never cleared");
                exit(EXIT_FAILURE)
            }
        }
        for (i, chunk) in response.chunks_mut(4).enumerate() {
            chunk.copy_from_slice(&read(DATA_BUFFER + 4 * i as u64).to_le_bytes());
        }
        write(CTRL_REQ, 0b10);
        let size = u32::from_be_bytes([response[2], response[3], response[4], response[5]]);
        (size as usize).min(response.len())
    }

    fn response_code(response: &[u8]) -> u32 {
        u32::from_be_bytes([response[6], response[7], response[8], response[9]])
    }

    struct Hex<'a>(&'a [u8]);

    impl core::fmt::Display for Hex<'_> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }

    #[no_mangle]
    extern "C" fn guest_main() -> ! {
        serial::init();
        let interface = read(INTF_ID);
        println!("tpm: interface id {interface:#010x}");
        if interface & 0xf != 1 {
            println!("tpm: not a CRB interface");
            exit(EXIT_FAILURE)
        }
        write(LOC_CTRL, 1);
        if read(LOC_STS) & 1 == 0 {
            println!("tpm: locality 0 not granted");
            exit(EXIT_FAILURE)
        }
        let mut ok = true;
        let mut response = [0u8; 256];

        // TPM2_GetRandom(16).
        let get_random = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 16];
        let n = execute(&get_random, &mut response);
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
        execute(&extend, &mut response);
        println!("tpm: PCR_Extend rc {:#x}", response_code(&response));
        ok &= response_code(&response) == 0;

        // TPM2_PCR_Read(SHA-256, PCR 16).
        let pcr_read = [
            0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, 0x00, 0x0b, 3, 0, 0, 0x01,
        ];
        let n = execute(&pcr_read, &mut response);
        // Header, update counter, the selection (4 + 2 + 1 + 3), digest count, TPM2B size.
        let digest = &response[10 + 4 + 10 + 4 + 2..][..32];
        println!(
            "tpm: PCR_Read rc {:#x}, sha256 PCR 16 = {}",
            response_code(&response),
            Hex(digest)
        );
        ok &= response_code(&response) == 0 && n == 62 && digest == PCR16_AFTER;

        write(LOC_CTRL, 0b10);
        if ok {
            println!("tpm: all answers as expected");
            exit(EXIT_SUCCESS)
        }
        println!("tpm: an answer was wrong");
        exit(EXIT_FAILURE)
    }
}

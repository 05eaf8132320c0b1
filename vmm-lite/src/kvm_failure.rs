//! The one line vmm-lite prints when KVM cannot go on with a vCPU, and the exit status that
//! goes with it: an internal error (KVM could not emulate an instruction, or hit an exception
//! or exit it cannot handle), a failed VM entry, or a KVM_RUN that failed outright.
//!
//! The line's shape is stable, for tests and for people grepping logs:
//! `vmm-lite: KVM cannot run VTL0 on vCPU 0: emulation failure at RIP 0x1000, instruction
//! bytes d9 05 00 00 00 80 (exit status 3)`. KVM's exit data comes from the host kernel
//! about a hostile guest: every count in it is clamped to the array it describes.

use hvdef::vtl::Vtl;

/// `vmm-lite run`'s exit status when KVM cannot run a vCPU.
pub const EXIT_STATUS: u8 = 3;

/// `kvm_run.internal.suberror` values (Linux `include/uapi/linux/kvm.h`).
const EMULATION: u32 = 1;
/// `emulation_failure.flags`: `insn_size` and `insn_bytes` hold what KVM fetched.
const FLAG_INSTRUCTION_BYTES: u64 = 1;
/// The longest x86 instruction, and the most bytes `emulation_failure` carries.
pub const MAX_INSTRUCTION_BYTES: usize = 15;
/// `kvm_run.internal.data` has this many words.
const DATA_WORDS: usize = 16;

/// Why KVM stopped, as it reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// KVM_EXIT_INTERNAL_ERROR: `kvm_run.internal` as KVM left it. For suberror 1 (emulation)
    /// it is `kvm_run.emulation_failure`: `data[0]` its flags, `data[1..3]` `insn_size` (the
    /// low byte of `data[1]`) and `insn_bytes` after it, in memory order.
    Internal {
        suberror: u32,
        ndata: u32,
        data: [u64; DATA_WORDS],
    },
    /// KVM_EXIT_FAIL_ENTRY: the hardware's entry failure reason and the host CPU.
    FailEntry { reason: u64, cpu: u32 },
    /// KVM_EXIT_MEMORY_FAULT (KVM_RUN fails with EFAULT or EHWPOISON and says where).
    MemoryFault { gpa: u64, size: u64, flags: u64 },
    /// KVM_RUN failed with this errno.
    RunError(i32),
}

impl Stop {
    /// The instruction bytes an emulation failure carries, if KVM put any in it.
    pub fn instruction_bytes(&self) -> Option<Vec<u8>> {
        let Stop::Internal {
            suberror: EMULATION,
            ndata,
            data,
        } = self
        else {
            return None;
        };
        // flags, then 16 bytes of insn_size and insn_bytes: three words in all.
        if *ndata < 3 || data[0] & FLAG_INSTRUCTION_BYTES == 0 {
            return None;
        }
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&data[1].to_ne_bytes());
        raw[8..].copy_from_slice(&data[2].to_ne_bytes());
        let size = usize::from(raw[0]).min(MAX_INSTRUCTION_BYTES);
        Some(raw[1..=size].to_vec()).filter(|bytes| !bytes.is_empty())
    }

    /// Whether this is an emulation failure without instruction bytes: guest memory at RIP
    /// is then the next best thing.
    pub fn wants_guest_bytes(&self) -> bool {
        matches!(
            self,
            Stop::Internal {
                suberror: EMULATION,
                ..
            }
        ) && self.instruction_bytes().is_none()
    }

    /// What happened, put before "at RIP".
    fn kind(&self) -> String {
        match self {
            Stop::Internal {
                suberror: EMULATION,
                ..
            } => "emulation failure".into(),
            Stop::Internal { suberror, .. } => {
                let what = match suberror {
                    2 => " (an exception while delivering an exception)",
                    3 => " (an exit while delivering an event)",
                    4 => " (an exit reason KVM does not handle)",
                    _ => "",
                };
                format!("KVM internal error suberror {suberror}{what}")
            }
            Stop::FailEntry { reason, cpu } => {
                format!("VM entry failed, hardware reason {reason:#x} on host CPU {cpu}")
            }
            Stop::MemoryFault { gpa, size, flags } => format!(
                "memory fault on guest-physical {gpa:#x} ({size:#x} bytes, flags {flags:#x})"
            ),
            Stop::RunError(errno) => format!(
                "KVM_RUN failed with {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }

    /// What follows RIP: the instruction bytes of an emulation failure, the data words of
    /// other internal errors.
    fn detail(&self, fetched: &[u8]) -> String {
        let hex = |bytes: &[u8]| {
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Stop::Internal {
                suberror: EMULATION,
                ..
            } => match self.instruction_bytes() {
                Some(bytes) => format!(", instruction bytes {}", hex(&bytes)),
                None if !fetched.is_empty() => {
                    let n = fetched.len().min(MAX_INSTRUCTION_BYTES);
                    format!(
                        ", KVM gave no instruction bytes; guest memory at RIP holds {}",
                        hex(&fetched[..n])
                    )
                }
                None => ", instruction bytes unavailable".into(),
            },
            Stop::Internal { ndata, data, .. } => {
                let n = (*ndata as usize).min(DATA_WORDS);
                let words: Vec<String> = data[..n].iter().map(|w| format!("{w:#x}")).collect();
                if words.is_empty() {
                    String::new()
                } else {
                    format!(", data {}", words.join(" "))
                }
            }
            _ => String::new(),
        }
    }
}

/// KVM could not go on with a vCPU: which, where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmFailure {
    /// The VTL the vCPU was running (the firmware's vCPU is VTL2's, also on the native
    /// platform).
    pub vtl: Vtl,
    /// The VP index.
    pub vp: usize,
    /// RIP after the exit (KVM_GET_REGS), or why it could not be read.
    pub rip: Result<u64, String>,
    pub stop: Stop,
    /// Up to 15 bytes of guest memory at RIP, through the vCPU's page tables, for an
    /// emulation failure that came without instruction bytes; empty if none could be read.
    pub fetched: Vec<u8>,
}

impl KvmFailure {
    /// The line for stderr, without a newline.
    pub fn line(&self) -> String {
        format!("vmm-lite: {self} (exit status {EXIT_STATUS})")
    }
}

/// The line's middle: `KVM cannot run VTL0 on vCPU 0: emulation failure at RIP 0x1000, ...`.
impl std::fmt::Display for KvmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vtl = match self.vtl {
            Vtl::Vtl0 => "VTL0",
            Vtl::Vtl1 => "VTL1",
            Vtl::Vtl2 => "VTL2",
        };
        write!(
            f,
            "KVM cannot run {vtl} on vCPU {}: {} at RIP ",
            self.vp,
            self.stop.kind()
        )?;
        match &self.rip {
            Ok(rip) => write!(f, "{rip:#x}")?,
            Err(why) => write!(f, "unknown ({why})")?,
        }
        f.write_str(&self.stop.detail(&self.fetched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kvm_run.internal` for an emulation failure, laid out as KVM writes it.
    fn emulation(flags: u64, insn_size: u8, bytes: &[u8], ndata: u32) -> Stop {
        let mut raw = [0u8; 16];
        raw[0] = insn_size;
        raw[1..=bytes.len()].copy_from_slice(bytes);
        let mut data = [0u64; DATA_WORDS];
        data[0] = flags;
        data[1] = u64::from_ne_bytes(raw[..8].try_into().unwrap());
        data[2] = u64::from_ne_bytes(raw[8..].try_into().unwrap());
        data[3] = 0x1000; // exit information follows the bytes
        Stop::Internal {
            suberror: EMULATION,
            ndata,
            data,
        }
    }

    fn failure(vtl: Vtl, stop: Stop) -> KvmFailure {
        KvmFailure {
            vtl,
            vp: 0,
            rip: Ok(0xffff_ffff_8100_0000),
            stop,
            fetched: Vec::new(),
        }
    }

    /// The pattern tests of the whole program match.
    fn matches_the_stable_shape(line: &str) -> bool {
        let Some(rest) = line.strip_prefix("vmm-lite: KVM cannot run VTL") else {
            return false;
        };
        let Some((_, after)) = rest.split_once(" at RIP 0x") else {
            return false;
        };
        after.starts_with(|c: char| c.is_ascii_hexdigit())
            && line.ends_with(&format!("(exit status {EXIT_STATUS})"))
    }

    #[test]
    fn an_emulation_failure_with_bytes_names_vtl_vcpu_rip_and_the_bytes() {
        let stop = emulation(1, 6, &[0xcc, 0x0f, 0x1f, 0x44, 0x00, 0x00], 8);
        let line = failure(Vtl::Vtl0, stop).line();
        assert_eq!(
            line,
            "vmm-lite: KVM cannot run VTL0 on vCPU 0: emulation failure at RIP 0xffffffff81000000, instruction bytes cc 0f 1f 44 00 00 (exit status 3)"
        );
        assert!(matches_the_stable_shape(&line));
    }

    #[test]
    fn what_this_hosts_kvm_reported_for_fld_on_mmio_decodes() {
        // Seen here: `fld dword [0x9000]` outside RAM, in real mode; KVM gives its whole
        // 15-byte fetch window.
        let mut data = [0u64; DATA_WORDS];
        (data[0], data[1], data[3]) = (1, 0xf490_0006_d90f, 0x1000);
        let stop = Stop::Internal {
            suberror: 1,
            ndata: 8,
            data,
        };
        assert_eq!(
            stop.instruction_bytes().unwrap(),
            [0xd9, 0x06, 0x00, 0x90, 0xf4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn an_emulation_failure_without_bytes_says_so_or_shows_guest_memory() {
        let no_flag = emulation(0, 6, &[0xcc; 6], 6);
        let flag_but_short = emulation(1, 6, &[0xcc; 6], 2);
        let flag_but_empty = emulation(1, 0, &[], 8);
        for stop in [no_flag, flag_but_short, flag_but_empty] {
            assert!(stop.wants_guest_bytes(), "{stop:?}");
            let mut f = failure(Vtl::Vtl2, stop);
            f.vp = 3;
            let line = f.line();
            assert_eq!(
                line,
                "vmm-lite: KVM cannot run VTL2 on vCPU 3: emulation failure at RIP 0xffffffff81000000, instruction bytes unavailable (exit status 3)"
            );
            assert!(matches_the_stable_shape(&line));
            f.fetched = vec![0xf3, 0x90];
            assert!(
                f.line().ends_with(
                    ", KVM gave no instruction bytes; guest memory at RIP holds f3 90 (exit status 3)"
                ),
                "{}",
                f.line()
            );
        }
    }

    #[test]
    fn an_insn_size_past_the_array_is_clamped() {
        for size in [15, 16, 0x80, 0xff] {
            let stop = emulation(1, size, &[0xab; 15], 3);
            assert_eq!(stop.instruction_bytes(), Some(vec![0xab; 15]), "{size}");
            assert!(failure(Vtl::Vtl0, stop)
                .line()
                .contains(&format!("instruction bytes{}", " ab".repeat(15))));
        }
        // Fetched memory is clamped as well.
        let mut f = failure(Vtl::Vtl0, emulation(0, 0, &[], 1));
        f.fetched = vec![0x90; 40];
        assert!(f
            .line()
            .ends_with(&format!("holds{} (exit status 3)", " 90".repeat(15))));
    }

    #[test]
    fn other_internal_errors_give_their_suberror_and_data() {
        let mut data = [0u64; DATA_WORDS];
        data[..4].copy_from_slice(&[0x8000_0b0e, 0x31, 0, 0x7]);
        let delivery = Stop::Internal {
            suberror: 3,
            ndata: 4,
            data,
        };
        assert!(!delivery.wants_guest_bytes());
        let line = failure(Vtl::Vtl2, delivery).line();
        assert_eq!(
            line,
            "vmm-lite: KVM cannot run VTL2 on vCPU 0: KVM internal error suberror 3 (an exit while delivering an event) at RIP 0xffffffff81000000, data 0x80000b0e 0x31 0x0 0x7 (exit status 3)"
        );
        assert!(matches_the_stable_shape(&line));
        for (suberror, words) in [(2, 0), (4, 2), (99, 1000), (0, u32::MAX)] {
            let stop = Stop::Internal {
                suberror,
                ndata: words,
                data: [0x5a; DATA_WORDS],
            };
            let line = failure(Vtl::Vtl0, stop).line();
            assert!(
                line.contains(&format!("KVM internal error suberror {suberror}")),
                "{line}"
            );
            let shown = line.matches("0x5a").count();
            assert_eq!(shown, (words as usize).min(DATA_WORDS), "{line}");
            assert!(matches_the_stable_shape(&line), "{line}");
        }
    }

    #[test]
    fn a_failed_entry_gives_the_hardware_reason() {
        let mut f = failure(
            Vtl::Vtl0,
            Stop::FailEntry {
                reason: 0x8000_0021,
                cpu: 1,
            },
        );
        (f.vp, f.rip) = (2, Ok(0xfff0));
        let line = f.line();
        assert_eq!(
            line,
            "vmm-lite: KVM cannot run VTL0 on vCPU 2: VM entry failed, hardware reason 0x80000021 on host CPU 1 at RIP 0xfff0 (exit status 3)"
        );
        assert!(matches_the_stable_shape(&line));
    }

    #[test]
    fn run_errors_name_the_errno_and_an_unreadable_rip_says_why() {
        let line = failure(Vtl::Vtl2, Stop::RunError(libc::EFAULT)).line();
        assert!(
            line.starts_with(
                "vmm-lite: KVM cannot run VTL2 on vCPU 0: KVM_RUN failed with Bad address"
            ),
            "{line}"
        );
        assert!(matches_the_stable_shape(&line), "{line}");
        let fault = Stop::MemoryFault {
            gpa: 0x1_0000_0000,
            size: 0x1000,
            flags: 0,
        };
        assert!(matches_the_stable_shape(&failure(Vtl::Vtl0, fault).line()));
        let mut f = failure(Vtl::Vtl0, Stop::RunError(libc::EIO));
        f.rip = Err("KVM_GET_REGS failed: Input/output error (os error 5)".into());
        assert!(
            f.line()
                .contains(" at RIP unknown (KVM_GET_REGS failed: Input/output error (os error 5)) (exit status 3)"),
            "{}",
            f.line()
        );
    }
}

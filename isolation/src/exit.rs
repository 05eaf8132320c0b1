//! A guest exit as the device layer sees it, whatever the platform reported it as (a Hyper-V
//! intercept message here; an SVM #VMEXIT or a TDX exit later): what the guest did, and where,
//! so the backend can complete it once a device has answered.

/// What the guest did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// An x86 port access.
    Port(PortAccess),
    /// `rdmsr`.
    MsrRead { msr: u32 },
    /// `wrmsr` of EDX:EAX.
    MsrWrite { msr: u32, value: u64 },
    /// An access to guest-physical memory the guest may not reach (a VTL protection, or no
    /// memory there). `completed`: the platform already finished it as an empty bus would
    /// (reads all ones, writes dropped) and only reports it.
    Memory {
        gpa: u64,
        write: bool,
        completed: bool,
    },
    /// `cpuid`, with what the platform would answer without us (EAX, EBX, ECX, EDX).
    Cpuid {
        leaf: u32,
        subleaf: u32,
        default: [u32; 4],
    },
    /// The guest called its paravisor on purpose (a VTL call).
    Call,
    /// `hlt`, `wfi`: the guest waits for an interrupt.
    Halt,
    /// A load or store the platform decoded for us (Arm's data-abort syndrome), to
    /// guest-physical memory that is not the guest's RAM: a device's registers, or nothing.
    Mmio {
        gpa: u64,
        size: u8,
        access: MmioAccess,
    },
    /// A call to the firmware or hypervisor under the Arm SMC Calling Convention (HVC or
    /// SMC): the function ID in W0 and the first arguments (PSCI travels this way).
    FirmwareCall { function: u32, args: [u64; 3] },
    /// The guest cannot go on (triple fault, failed entry).
    Unrecoverable,
    /// A report this build does not decode: the platform's kind code.
    Unknown { kind: u32 },
}

/// The direction of an [`GuestExit::Mmio`] access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioAccess {
    /// A load into general-purpose register `register` (31: the zero register, which
    /// discards it), sign-extended from `size` bytes if `sign_extend`, to 64 bits if `wide`
    /// else to 32 (and then zero-extended).
    Read {
        register: u8,
        sign_extend: bool,
        wide: bool,
    },
    /// A store of this value (the low `size` bytes of the register).
    Write(u64),
}

/// A port access of `size` bytes (1, 2 or 4) at `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAccess {
    pub port: u16,
    pub size: u8,
    pub direction: PortDirection,
    /// INS/OUTS: the elements come from or go to guest memory.
    pub string: Option<StringOp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortDirection {
    /// IN: the answer merges into the accumulator.
    In,
    /// OUT of this value (the low `size` bytes of the accumulator).
    Out(u32),
}

/// The memory side of INS/OUTS, as the registers stood before the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StringOp {
    /// REP: `count` elements (RCX); else one.
    pub rep: bool,
    pub count: u64,
    /// Guest linear address of the first element (DS:RSI for OUTS, ES:RDI for INS).
    pub address: u64,
    /// RFLAGS.DF: addresses step down.
    pub down: bool,
    /// The address size's mask on RSI/RDI/RCX: all ones in 64-bit code, 0xffff_ffff or
    /// 0xffff in 32- or 16-bit code, whose index registers wrap and whose upper bits stay.
    pub mask: u64,
}

impl StringOp {
    /// Elements the instruction moves.
    pub fn elements(&self) -> u64 {
        if self.rep {
            self.count
        } else {
            1
        }
    }

    /// Where the instruction stands after `done` of the `attempted` elements of one exit
    /// moved, `size` bytes each: the index register (RSI or RDI) from `pointer`, RCX from
    /// `rcx`, and whether it is finished (RIP steps past it). A REP left with elements when
    /// every attempted one moved is not finished: the guest executes it again, as a CPU does
    /// after an interrupt. One that stopped early (a fault) ends there.
    pub fn progress(
        &self,
        pointer: u64,
        rcx: u64,
        size: u8,
        done: u64,
        attempted: u64,
    ) -> Progress {
        let within = |old: u64, new: u64| (old & !self.mask) | (new & self.mask);
        let moved = done.wrapping_mul(u64::from(size));
        let stepped = if self.down {
            pointer.wrapping_sub(moved)
        } else {
            pointer.wrapping_add(moved)
        };
        let pointer = within(pointer, stepped);
        if !self.rep {
            return Progress {
                pointer,
                rcx,
                finished: true,
            };
        }
        let rcx = within(rcx, rcx.wrapping_sub(done));
        Progress {
            pointer,
            rcx,
            finished: rcx & self.mask == 0 || done < attempted,
        }
    }
}

/// A string instruction's registers after an exit's share of it (see [`StringOp::progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub pointer: u64,
    pub rcx: u64,
    pub finished: bool,
}

/// Where the exiting instruction is, so the backend can step past it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitSite {
    pub vp: u32,
    pub rip: u64,
    /// Bytes; 0 if the platform did not say.
    pub instruction_length: u8,
    /// The accumulator before the instruction (IN merges into it).
    pub rax: u64,
    pub rflags: u64,
    /// Code running at CPL 3.
    pub user_mode: bool,
    /// Instruction bytes, when the platform supplies them (`instruction_length` of them).
    pub instruction_bytes: [u8; 16],
}

/// RAX after an IN of `size` bytes returned `value`: 8/16-bit INs keep the other bits,
/// a 32-bit IN zero-extends (Intel SDM Vol. 1 §3.4.1.1).
pub fn merge_in(rax: u64, size: u8, value: u32) -> u64 {
    match size {
        1 => (rax & !0xff) | u64::from(value & 0xff),
        2 => (rax & !0xffff) | u64::from(value & 0xffff),
        _ => u64::from(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_results_merge_as_the_sdm_says() {
        let rax = 0x1122_3344_5566_7788;
        assert_eq!(merge_in(rax, 1, 0xab), 0x1122_3344_5566_77ab);
        assert_eq!(merge_in(rax, 2, 0xabcd), 0x1122_3344_5566_abcd);
        assert_eq!(merge_in(rax, 4, 0xabcd_ef01), 0xabcd_ef01);
        assert_eq!(
            merge_in(rax, 1, 0x1ff),
            0x1122_3344_5566_77ff,
            "value cut to size"
        );
    }

    #[test]
    fn string_progress_steps_registers_and_restarts_long_reps() {
        let op = StringOp {
            rep: true,
            count: 10_000,
            address: 0x1000,
            down: false,
            mask: u64::MAX,
        };
        // 4096 of 10000 bytes this time: RSI on, RCX down, RIP stays.
        assert_eq!(
            op.progress(0x1000, 10_000, 1, 4096, 4096),
            Progress {
                pointer: 0x2000,
                rcx: 5904,
                finished: false
            }
        );
        // The last ones.
        assert!(op.progress(0x2000, 4, 4, 4, 4).finished);
        // Stepping down, 2-byte elements.
        let down = StringOp { down: true, ..op };
        assert_eq!(down.progress(0x1000, 3, 2, 3, 3).pointer, 0x1000 - 6);
        // A fault after 2 of 5: ends there, RCX says what is left.
        let faulted = op.progress(0x1000, 5, 1, 2, 5);
        assert_eq!((faulted.rcx, faulted.finished), (3, true));
        // Without REP, one element and RCX untouched.
        // 16-bit code: CX counts, SI wraps, the upper bits stay.
        let real = StringOp { mask: 0xffff, ..op };
        let p = real.progress(0x1_fffe, 0x1_0002, 1, 2, 2);
        assert_eq!((p.pointer, p.rcx, p.finished), (0x1_0000, 0x1_0000, true));
        let once = StringOp { rep: false, ..op };
        assert_eq!(
            once.progress(0x1000, 7, 4, 1, 1),
            Progress {
                pointer: 0x1004,
                rcx: 7,
                finished: true
            }
        );
    }

    #[test]
    fn a_string_op_without_rep_moves_one_element() {
        let op = StringOp {
            rep: false,
            count: 9,
            address: 0,
            down: false,
            mask: u64::MAX,
        };
        assert_eq!(op.elements(), 1);
        assert_eq!(StringOp { rep: true, ..op }.elements(), 9);
    }
}

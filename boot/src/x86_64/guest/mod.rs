//! The x86 guest Parapet hosts, whatever the isolation backend: its boot state, the devices
//! it sees, and the answers to its exits (its RAM and payload are `crate::guest`'s). A backend (`hv_vtl`, `svm`) decodes what its
//! platform reports into `isolation::exit::GuestExit` and hands it here with a [`GuestVp`]
//! that reaches the guest's registers; everything after that is this one copy.

pub mod devices;
pub mod exits;
pub mod linux;
pub mod loader;
pub mod paging;
pub mod policy;
mod string_move;
pub mod vmlinux;

use isolation::x86_insn::CodeMode;
use paging::Paging;
/// The guest's general-purpose registers other than RSP, in the order the backends' entry
/// code stores them (RSP lives in the platform's own state: VMCB, or VTL0's vCPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Gprs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

impl Gprs {
    /// General-purpose register `number` in the encoding's order (0 RAX ... 15 R15); RSP
    /// (4) is not kept here.
    pub fn by_number(&mut self, number: u8) -> Option<&mut u64> {
        Some(match number {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            15 => &mut self.r15,
            _ => return None,
        })
    }
}

/// How log lines name the backend and the guest ("hv_vtl", "VTL0").
#[derive(Clone, Copy, Debug)]
pub struct Names {
    pub backend: &'static str,
    pub guest: &'static str,
}

/// One guest VP stopped at an exit, as a backend lets the shared code finish the exit.
pub trait GuestVp {
    fn names(&self) -> Names;
    /// The registers the exit left; what the handler changes here the guest gets back.
    fn gprs(&mut self) -> &mut Gprs;
    /// Moves the guest's RIP to `rip` (past the exiting instruction).
    fn set_rip(&mut self, rip: u64);
    /// General-purpose register `number` (0 RAX ... 15 R15); RSP only where the backend
    /// holds it.
    fn register(&mut self, number: u8) -> Option<u64> {
        self.gprs().by_number(number).map(|r| *r)
    }
    fn set_register(&mut self, number: u8, value: u64) {
        if let Some(register) = self.gprs().by_number(number) {
            *register = value;
        }
    }
    /// The guest's paging registers, for walking its page tables.
    fn paging(&mut self) -> Option<Paging>;
    /// The code the guest runs (CS.L / CS.D) and CS's base, for fetching and decoding the
    /// instruction behind an access the platform did not complete; `None` when the backend
    /// cannot tell (the access then stops the guest).
    fn code(&mut self) -> Option<(CodeMode, u64)> {
        None
    }
    /// A load of `size` bytes from a device the backend emulates at guest-physical `gpa`
    /// (outside RAM); `None` when nothing is there.
    fn mmio_read(&mut self, _gpa: u64, _size: u8) -> Option<u64> {
        None
    }
    /// A store to such a device; false when nothing is there.
    fn mmio_write(&mut self, _gpa: u64, _size: u8, _value: u64) -> bool {
        false
    }
    /// The guest's `rdmsr` of an MSR no device owns: the backend's MSR policy. `None` when
    /// the backend raised #GP in the guest instead (the instruction then does not complete).
    fn read_msr(&mut self, msr: u32) -> Option<u64>;
    /// The guest's `wrmsr`, likewise; false when it raised #GP.
    fn write_msr(&mut self, msr: u32, value: u64) -> bool;
}

//! Per-CPU GDT and TSS (Intel SDM Vol. 3A §3.4.5 segment descriptors, §8.7 64-bit TSS).
//!
//! Long mode ignores segment bases and limits; the GDT exists for the code/data selectors and
//! the TSS, whose interrupt stack table gives double faults and NMIs a known-good stack.

use core::arch::asm;
use core::mem::size_of;

pub const KERNEL_CODE: u16 = 0x08;
pub const KERNEL_DATA: u16 = 0x10;
pub const TSS_SELECTOR: u16 = 0x18;
/// IST slot (1-based, as the IDT gate encodes it) used for #DF, #NMI and #MC.
pub const IST_CRITICAL: u8 = 1;
const CRITICAL_STACK_SIZE: usize = 16 * 1024;

/// 64-bit code: L, P, S, type execute/read.
const CODE64: u64 = 0x00af_9a00_0000_ffff;
/// Data: P, S, type read/write.
const DATA: u64 = 0x00cf_9200_0000_ffff;

#[repr(C, packed(4))]
pub struct TaskStateSegment {
    _reserved0: u32,
    privilege_stacks: [u64; 3],
    _reserved1: u64,
    interrupt_stacks: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    io_map_base: u16,
}

/// One CPU's descriptor tables and its critical-exception stack.
#[repr(C, align(16))]
pub struct CpuTables {
    gdt: [u64; 5],
    tss: TaskStateSegment,
    critical_stack: [u8; CRITICAL_STACK_SIZE],
}

#[repr(C, packed(2))]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

impl CpuTables {
    pub const fn new() -> Self {
        Self {
            gdt: [0; 5],
            tss: TaskStateSegment {
                _reserved0: 0,
                privilege_stacks: [0; 3],
                _reserved1: 0,
                interrupt_stacks: [0; 7],
                _reserved2: 0,
                _reserved3: 0,
                // No I/O permission bitmap: past the limit.
                io_map_base: size_of::<TaskStateSegment>() as u16,
            },
            critical_stack: [0; CRITICAL_STACK_SIZE],
        }
    }

    /// Fills the tables and loads them into this CPU: GDTR, CS/DS/ES/SS, TR.
    ///
    /// # Safety
    /// `self` must stay alive and unmoved for as long as this CPU runs (it is `'static`).
    /// Must run once per CPU, with interrupts disabled.
    pub unsafe fn load(&'static mut self) {
        let stack_top = self.critical_stack.as_ptr() as u64 + CRITICAL_STACK_SIZE as u64;
        self.tss.interrupt_stacks[usize::from(IST_CRITICAL) - 1] = stack_top;
        let tss = &self.tss as *const TaskStateSegment as u64;
        let limit = size_of::<TaskStateSegment>() as u64 - 1;
        // Available 64-bit TSS descriptor (type 9), present, 16 bytes (SDM Fig. 8-4).
        let low = (limit & 0xffff)
            | ((tss & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((tss >> 24) & 0xff) << 56);
        self.gdt = [0, CODE64, DATA, low, tss >> 32];
        let pointer = DescriptorPointer {
            limit: (size_of::<[u64; 5]>() - 1) as u16,
            base: self.gdt.as_ptr() as u64,
        };
        // SAFETY: the GDT is 'static and holds valid descriptors at the selectors loaded here;
        // the far return reloads CS with the 64-bit code segment we are already running in.
        unsafe {
            asm!(
                "lgdt [{ptr}]",
                "push {code}",
                "lea {tmp}, [rip + 2f]",
                "push {tmp}",
                "retfq",
                "2:",
                "mov ds, {data:x}",
                "mov es, {data:x}",
                "mov ss, {data:x}",
                "ltr {tss:x}",
                ptr = in(reg) &pointer,
                code = in(reg) u64::from(KERNEL_CODE),
                tmp = out(reg) _,
                data = in(reg) u64::from(KERNEL_DATA),
                tss = in(reg) u64::from(TSS_SELECTOR),
            );
        }
    }
}

impl Default for CpuTables {
    fn default() -> Self {
        Self::new()
    }
}

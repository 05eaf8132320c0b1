//! The VMCB: one 4 KiB page per guest VP, a control area (what to intercept, where the
//! permission maps and nested tables are, what the exit was) and a state save area (the
//! guest's registers while it is not running). Offsets from the AMD64 APM Vol. 2, Appendix B
//! (Tables B-1 and B-2).

use hvdef::registers::SegmentRegister;

/// Control area (Table B-1).
pub mod control {
    /// One bit per exception vector.
    pub const INTERCEPT_EXCEPTIONS: usize = 0x008;
    /// Word 3 (bit numbers as in Table B-1).
    pub const INTERCEPT_MISC1: usize = 0x00c;
    pub const INTERCEPT_MISC2: usize = 0x010;
    pub const IOPM_BASE: usize = 0x040;
    pub const MSRPM_BASE: usize = 0x048;
    pub const GUEST_ASID: usize = 0x058;
    pub const TLB_CONTROL: usize = 0x05c;
    /// V_TPR, V_IRQ, ... V_INTR_MASKING (bit 24).
    pub const VIRTUAL_INTERRUPTS: usize = 0x060;
    /// Bit 0: the guest is in an interrupt shadow (after STI or MOV SS).
    pub const INTERRUPT_SHADOW: usize = 0x068;
    pub const EXIT_CODE: usize = 0x070;
    pub const EXIT_INFO1: usize = 0x078;
    pub const EXIT_INFO2: usize = 0x080;
    /// An event the exit interrupted on its way into the guest (EVENTINJ's format).
    pub const EXIT_INT_INFO: usize = 0x088;
    /// Bit 0: nested paging.
    pub const NESTED_CONTROL: usize = 0x090;
    pub const EVENT_INJECTION: usize = 0x0a8;
    pub const NESTED_CR3: usize = 0x0b0;
    /// The next instruction's RIP, on CPUs with NRIPS.
    pub const NEXT_RIP: usize = 0x0c8;
}

/// INTERCEPT_MISC1 bits.
pub mod misc1 {
    pub const INTR: u32 = 1 << 0;
    pub const NMI: u32 = 1 << 1;
    /// Exit when the guest can take the virtual interrupt V_IRQ asks for.
    pub const VINTR: u32 = 1 << 4;
    pub const CPUID: u32 = 1 << 18;
    pub const INVD: u32 = 1 << 22;
    pub const HLT: u32 = 1 << 24;
    pub const INVLPGA: u32 = 1 << 26;
    pub const IOIO_PROT: u32 = 1 << 27;
    pub const MSR_PROT: u32 = 1 << 28;
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// INTERCEPT_MISC2 bits.
pub mod misc2 {
    /// Must be set, or VMRUN fails its consistency checks (APM §15.5.1).
    pub const VMRUN: u32 = 1 << 0;
    pub const VMMCALL: u32 = 1 << 1;
    pub const VMLOAD: u32 = 1 << 2;
    pub const VMSAVE: u32 = 1 << 3;
    pub const STGI: u32 = 1 << 4;
    pub const CLGI: u32 = 1 << 5;
    pub const SKINIT: u32 = 1 << 6;
}

/// VIRTUAL_INTERRUPTS bit 24: the guest's RFLAGS.IF masks only virtual interrupts; physical
/// ones stay the host's, under the host's IF (APM §15.21.1).
pub const V_INTR_MASKING: u64 = 1 << 24;
/// VIRTUAL_INTERRUPTS: V_IRQ (bit 8) asks for an interrupt window, at priority 15 (bits
/// 19:16), ignoring the virtual TPR (bit 20): only the guest's RFLAGS.IF and shadow hold it
/// (APM §15.21.4).
pub const V_IRQ_WINDOW: u64 = (1 << 8) | (0xf << 16) | (1 << 20);
/// TLB_CONTROL: flush the whole TLB at the next VMRUN (the one value every SVM CPU takes;
/// flushing by ASID needs the FlushByAsid feature).
pub const TLB_FLUSH_ALL: u8 = 1;

/// State save area (Table B-2).
pub mod save {
    pub const ES: usize = 0x400;
    pub const CS: usize = 0x410;
    pub const SS: usize = 0x420;
    pub const DS: usize = 0x430;
    pub const FS: usize = 0x440;
    pub const GS: usize = 0x450;
    pub const GDTR: usize = 0x460;
    pub const LDTR: usize = 0x470;
    pub const IDTR: usize = 0x480;
    pub const TR: usize = 0x490;
    pub const CPL: usize = 0x4cb;
    pub const EFER: usize = 0x4d0;
    pub const CR4: usize = 0x548;
    pub const CR3: usize = 0x550;
    pub const CR0: usize = 0x558;
    pub const DR7: usize = 0x560;
    pub const DR6: usize = 0x568;
    pub const RFLAGS: usize = 0x570;
    pub const RIP: usize = 0x578;
    pub const RSP: usize = 0x5d8;
    pub const RAX: usize = 0x5f8;
    pub const G_PAT: usize = 0x668;
}

/// Segment registers in the save area's order of the SDM numbering (ES, CS, SS, DS, FS, GS).
pub const SEGMENTS: [usize; 6] = [save::ES, save::CS, save::SS, save::DS, save::FS, save::GS];
/// A segment's fields: selector (u16), attributes (u16), limit (u32), base (u64).
const SEGMENT_ATTRIBUTES: usize = 2;
const SEGMENT_LIMIT: usize = 4;
const SEGMENT_BASE: usize = 8;

/// EFER.SVME: set in the guest's EFER too, or VMRUN refuses it (APM §15.5.1).
pub const EFER_SVME: u64 = 1 << 12;
pub const EFER_LMA: u64 = 1 << 10;
/// CS attribute bits for 64-bit code and for a 32-bit default size, in the VMCB's 12-bit
/// layout.
const ATTRIBUTE_L: u16 = 1 << 9;
const ATTRIBUTE_DB: u16 = 1 << 10;

/// One VMCB page, identity-mapped. Plain reads and writes: only this CPU touches it, and only
/// while its guest is not running.
pub struct Vmcb {
    page: u64,
}

impl Vmcb {
    /// # Safety
    /// `page` must be a zeroed, 4 KiB-aligned frame this VP owns, identity-mapped, used for
    /// nothing else.
    pub unsafe fn new(page: u64) -> Self {
        Self { page }
    }

    pub fn address(&self) -> u64 {
        self.page
    }

    fn at<T>(&self, offset: usize) -> *mut T {
        debug_assert!(offset + size_of::<T>() <= 4096);
        (self.page + offset as u64) as *mut T
    }

    pub fn read_u64(&self, offset: usize) -> u64 {
        // SAFETY: inside the page (offsets are the constants above), which this VP owns.
        unsafe { self.at::<u64>(offset).read_volatile() }
    }

    pub fn write_u64(&mut self, offset: usize, value: u64) {
        // SAFETY: as in `read_u64`.
        unsafe { self.at::<u64>(offset).write_volatile(value) }
    }

    pub fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: as in `read_u64`.
        unsafe { self.at::<u32>(offset).read_volatile() }
    }

    pub fn write_u32(&mut self, offset: usize, value: u32) {
        // SAFETY: as in `read_u64`.
        unsafe { self.at::<u32>(offset).write_volatile(value) }
    }

    pub fn read_u8(&self, offset: usize) -> u8 {
        // SAFETY: as in `read_u64`.
        unsafe { self.at::<u8>(offset).read_volatile() }
    }

    pub fn write_u8(&mut self, offset: usize, value: u8) {
        // SAFETY: as in `read_u64`.
        unsafe { self.at::<u8>(offset).write_volatile(value) }
    }

    /// Writes a segment given in the VMX/TLFS attribute layout (type 3:0, S 4, DPL 6:5, P 7,
    /// AVL 12, L 13, D/B 14, G 15) in the VMCB's 12-bit one (the upper nibble moved down).
    pub fn set_segment(&mut self, offset: usize, segment: &SegmentRegister) {
        let attributes = (segment.attributes & 0xff) | ((segment.attributes >> 4) & 0xf00);
        // SAFETY: as in `read_u64`; the fields lie inside the 16-byte segment slot.
        unsafe {
            self.at::<u16>(offset).write_volatile(segment.selector);
            self.at::<u16>(offset + SEGMENT_ATTRIBUTES)
                .write_volatile(attributes);
            self.at::<u32>(offset + SEGMENT_LIMIT)
                .write_volatile(segment.limit);
        }
        self.write_u64(offset + SEGMENT_BASE, segment.base);
    }

    /// A descriptor-table register (GDTR, IDTR): limit and base.
    pub fn set_table(&mut self, offset: usize, base: u64, limit: u16) {
        self.write_u32(offset + SEGMENT_LIMIT, u32::from(limit));
        self.write_u64(offset + SEGMENT_BASE, base);
    }

    pub fn segment_base(&self, offset: usize) -> u64 {
        self.read_u64(offset + SEGMENT_BASE)
    }

    /// Whether CS.D makes 32 bits the default operand and address size.
    pub fn code_default_32(&self) -> bool {
        // SAFETY: as in `read_u64`.
        let cs = unsafe {
            self.at::<u16>(save::CS + SEGMENT_ATTRIBUTES)
                .read_volatile()
        };
        cs & ATTRIBUTE_DB != 0
    }

    /// Whether the guest runs 64-bit code: EFER.LMA and CS.L.
    pub fn long_mode(&self) -> bool {
        // SAFETY: as in `read_u64`.
        let cs = unsafe {
            self.at::<u16>(save::CS + SEGMENT_ATTRIBUTES)
                .read_volatile()
        };
        self.read_u64(save::EFER) & EFER_LMA != 0 && cs & ATTRIBUTE_L != 0
    }
}

//! Parapet's half of the VTL switch (TLFS §15.6): the VP assist page, the SynIC message
//! page where intercepts arrive, and the VTL return that runs VTL0 until it needs us again.
//!
//! VTLs share the general-purpose registers other than RSP (TLFS §15.11), so a VTL return
//! hands VTL0 the values in [`Gprs`] and a VTL entry brings VTL0's back in the same
//! registers. RAX and RCX carry the call itself, so VTL0's travel through the VP assist page
//! (VtlReturnX64Rax/Rcx).

use core::arch::asm;

use arch::x86_64::instructions::wrmsr;
use hvdef::hypercall::vp_assist;
use hvdef::message::{
    message_type, HvMessage, FLAG_MESSAGE_PENDING, HEADER_SIZE, INTERCEPT_SINT, MESSAGE_SIZE,
};
use hvdef::msr::{self, PageMsr, Sint};
use hvdef::register_page;
use hvdef::registers;
use hvdef::vtl::VsmCodePageOffsets;
use hvdef::vtl::{InputVtl, Vtl};

use super::HvVtlError;
use crate::machine::guest::Gprs;
use crate::machine::hv;

/// The vector SINT0 names. vmm-lite delivers no SynIC interrupts (VTL2 learns of a message
/// from the VTL entry itself), but a valid vector keeps the SINT well-formed for hypervisors
/// that do; the firmware leaves it unhandled-but-reported like any stray vector.
const SINT0_VECTOR: u64 = 0x50;

/// Why VTL0 came back (VtlEntryReason in the VP assist page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryReason {
    VtlCall,
    Interrupt,
    Intercept,
    Other(u32),
}

/// This VP's switch state: its VP assist and message pages and the return sequence.
pub struct VtlSwitch {
    assist: u64,
    message_page: u64,
    vtl_return: u64,
    /// VTL0's register page, when the hypervisor offers one (`hvdef::register_page`).
    vtl0_registers: Option<u64>,
}

impl VtlSwitch {
    /// Enables the VP assist page and the SynIC message page with SINT0 on this VP, and
    /// finds the VTL return sequence in the hypercall page.
    pub fn new() -> Result<Self, HvVtlError> {
        let frame = || kernel::memory::allocate_zeroed_frame().map_err(|_| HvVtlError::OutOfFrames);
        let (assist, message_page) = (frame()?, frame()?);
        let code = hv::code_page().ok_or(HvVtlError::NoHypercallPage)?;
        let offsets =
            hv::get_vp_register(registers::VSM_CODE_PAGE_OFFSETS).map_err(HvVtlError::Hypercall)?;
        let offsets = VsmCodePageOffsets::decode(le::u64_at(&offsets, 0).unwrap_or_default());
        // SAFETY: the VTL interface is present (platform hv_vtl), so these synthetic MSRs
        // exist; the pages are frames this CPU owns, identity-mapped.
        unsafe {
            wrmsr(msr::VP_ASSIST_PAGE, PageMsr::new(assist, true).0);
            wrmsr(msr::SIMP, PageMsr::new(message_page, true).0);
            wrmsr(
                msr::SINT0 + INTERCEPT_SINT as u32,
                SINT0_VECTOR & !Sint::MASKED,
            );
            wrmsr(msr::SCONTROL, 1);
        }
        let page = frame()?;
        let place = hv::set_register(
            InputVtl(Some(Vtl::Vtl0)),
            register_page::REGISTER_NAME,
            registers::u64_value(PageMsr::new(page, true).0),
        );
        let vtl0_registers = match place {
            Ok(()) => Some(page),
            Err(status) => {
                log::info!(
                    "hv_vtl: no VTL0 register page (status {:#x}); RIP goes by hypercall",
                    status.0
                );
                None
            }
        };
        Ok(Self {
            assist,
            message_page,
            vtl_return: code + u64::from(offsets.vtl_return),
            vtl0_registers,
        })
    }

    /// Sets VTL0's RIP for the next VTL return through its register page; false without a
    /// page or when the hypervisor did not fill it on this entry.
    pub fn set_vtl0_rip(&self, rip: u64) -> bool {
        let Some(page) = self.vtl0_registers else {
            return false;
        };
        let at = |offset: usize| page + offset as u64;
        // SAFETY: the page is this VP's frame, identity-mapped; the hypervisor reads it at
        // the VTL return, while this VP runs nothing else.
        unsafe {
            if (at(register_page::IS_VALID) as *const u8).read_volatile() != 1 {
                return false;
            }
            (at(register_page::RIP) as *mut u64).write_volatile(rip);
            let dirty = at(register_page::DIRTY) as *mut u32;
            dirty.write_volatile(dirty.read_volatile() | register_page::dirty::IP);
        }
        true
    }

    /// Runs VTL0 with `gprs` until it enters VTL2 again; `gprs` then holds VTL0's registers
    /// as the entry found them.
    pub fn run_vtl0(&self, gprs: &mut Gprs) -> EntryReason {
        let field = |offset: usize| (self.assist + offset as u64) as *mut u64;
        // SAFETY: the assist page is this VP's frame, identity-mapped; the hypervisor reads
        // these fields on the return.
        unsafe {
            field(vp_assist::VTL_RETURN_RAX).write_volatile(gprs.rax);
            field(vp_assist::VTL_RETURN_RCX).write_volatile(gprs.rcx);
        }
        // SAFETY: `vtl_return` is the hypervisor's VTL return sequence (TLFS §15.6.3), which
        // comes back here, like a call, once VTL0 enters VTL2: with RSP and RIP ours and every
        // other general-purpose register VTL0's. RBX and RBP (which Rust reserves) are saved
        // on the stack, the rest are declared clobbered, and the FPU/SIMD registers, also
        // shared, are clobbered per the C ABI. `gprs` points at 15 u64s in Gprs order.
        unsafe {
            asm!(
                "push rbp",
                "push rbx",
                "push {gprs}",
                "push {target}",
                "mov rax, [rsp + 8]",
                "mov rcx, [rax + 8]",
                "mov rdx, [rax + 16]",
                "mov rbx, [rax + 24]",
                "mov rbp, [rax + 32]",
                "mov rsi, [rax + 40]",
                "mov rdi, [rax + 48]",
                "mov r8, [rax + 56]",
                "mov r9, [rax + 64]",
                "mov r10, [rax + 72]",
                "mov r11, [rax + 80]",
                "mov r12, [rax + 88]",
                "mov r13, [rax + 96]",
                "mov r14, [rax + 104]",
                "mov r15, [rax + 112]",
                "mov rax, [rax]",
                "call qword ptr [rsp]",
                "push rax",
                "mov rax, [rsp + 16]",
                "mov [rax + 8], rcx",
                "mov [rax + 16], rdx",
                "mov [rax + 24], rbx",
                "mov [rax + 32], rbp",
                "mov [rax + 40], rsi",
                "mov [rax + 48], rdi",
                "mov [rax + 56], r8",
                "mov [rax + 64], r9",
                "mov [rax + 72], r10",
                "mov [rax + 80], r11",
                "mov [rax + 88], r12",
                "mov [rax + 96], r13",
                "mov [rax + 104], r14",
                "mov [rax + 112], r15",
                "pop rcx",
                "mov [rax], rcx",
                "add rsp, 16",
                "pop rbx",
                "pop rbp",
                gprs = in(reg) gprs as *mut Gprs,
                target = in(reg) self.vtl_return,
                lateout("r12") _,
                lateout("r13") _,
                lateout("r14") _,
                lateout("r15") _,
                clobber_abi("C"),
            );
        }
        // SAFETY: as above; the hypervisor wrote the reason before entering VTL2.
        let reason = unsafe { (field(vp_assist::VTL_ENTRY_REASON) as *const u32).read_volatile() };
        match reason {
            vp_assist::ENTRY_VTL_CALL => EntryReason::VtlCall,
            vp_assist::ENTRY_INTERRUPT => EntryReason::Interrupt,
            vp_assist::ENTRY_INTERCEPT => EntryReason::Intercept,
            other => EntryReason::Other(other),
        }
    }

    /// Copies SINT0's message out of the message page (once: the page is shared with the
    /// hypervisor) and frees the slot, telling the hypervisor if another is queued.
    pub fn take_message(&self) -> Option<HvMessage> {
        let slot = (self.message_page + (INTERCEPT_SINT * MESSAGE_SIZE) as u64) as *mut u64;
        let mut message = HvMessage([0; MESSAGE_SIZE]);
        // Word by word (every instruction counts where VTL2 code is emulated), the header
        // first, then only the payload it announces.
        let copy_words = |message: &mut HvMessage, words: core::ops::Range<usize>| {
            for i in words {
                // SAFETY: word `i` < 32 lies inside the 256-byte slot of this VP's message
                // page, identity-mapped and 8-byte aligned.
                let word = unsafe { slot.add(i).read_volatile() };
                message.0[8 * i..8 * i + 8].copy_from_slice(&word.to_le_bytes());
            }
        };
        copy_words(&mut message, 0..HEADER_SIZE / 8);
        let payload_words = message.payload_size().div_ceil(8);
        copy_words(
            &mut message,
            HEADER_SIZE / 8..HEADER_SIZE / 8 + payload_words,
        );
        if message.message_type() == message_type::NONE {
            return None;
        }
        // SAFETY: as above; a zero type frees the slot (TLFS §11.10.3).
        unsafe { (slot as *mut u32).write_volatile(message_type::NONE) };
        if message.flags() & FLAG_MESSAGE_PENDING != 0 {
            // SAFETY: the SynIC is enabled on this VP; EOM asks for the queued message.
            unsafe { wrmsr(msr::EOM, 0) };
        }
        Some(message)
    }
}

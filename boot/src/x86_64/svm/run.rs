//! The privileged half of the `svm` backend: turning SVM on for a CPU, and one guest run
//! (VMRUN to #VMEXIT) with the state VMRUN does not switch itself.

use core::arch::global_asm;

use arch::x86_64::instructions::{rdmsr, wrmsr};

use crate::machine::guest::Gprs;

/// MSRs (AMD64 APM Vol. 2, §15.30 and §3.1.7).
const EFER: u32 = 0xc000_0080;
const VM_CR: u32 = 0xc001_0114;
const VM_HSAVE_PA: u32 = 0xc001_0117;
/// EFER.SVME; VM_CR.SVMDIS (firmware turned SVM off).
const EFER_SVME: u64 = 1 << 12;
const VM_CR_SVMDIS: u64 = 1 << 4;

/// Turns SVM on for this CPU with `host_save_area` (a frame this CPU owns) as the place VMRUN
/// keeps the host's state; fails if firmware disabled SVM.
///
/// # Safety
/// The CPU must support SVM (CPUID), and `host_save_area` must be a 4 KiB frame used for
/// nothing else for as long as SVM stays on.
pub unsafe fn enable(host_save_area: u64) -> Result<(), &'static str> {
    // SAFETY: the caller vouches for SVM, so these MSRs exist.
    unsafe {
        if rdmsr(VM_CR) & VM_CR_SVMDIS != 0 {
            return Err("firmware disabled SVM (VM_CR.SVMDIS)");
        }
        wrmsr(EFER, rdmsr(EFER) | EFER_SVME);
        wrmsr(VM_HSAVE_PA, host_save_area);
    }
    Ok(())
}

extern "C" {
    fn parapet_svm_run(gprs: *mut Gprs, guest_vmcb: u64, host_vmcb: u64);
}

/// Runs the guest of `guest_vmcb` until its next #VMEXIT, with its general-purpose registers
/// (other than RAX and RSP, which live in the VMCB) from and back to `gprs`. `host_vmcb`
/// holds the host's FS, GS, TR, LDTR and syscall MSRs meanwhile (VMSAVE/VMLOAD), since VMRUN
/// does not switch them.
///
/// Physical interrupts end the run (the INTR intercept with V_INTR_MASKING); they are taken
/// when the caller enables interrupts again.
///
/// # Safety
/// SVM is enabled on this CPU ([`enable`]); both VMCBs are frames this CPU owns, the guest's
/// filled so that VMRUN accepts it; interrupts are disabled.
pub unsafe fn run(gprs: &mut Gprs, guest_vmcb: u64, host_vmcb: u64) {
    // SAFETY: the caller's contract; the routine saves and restores every callee-saved
    // register and the host state it switches.
    unsafe { parapet_svm_run(gprs, guest_vmcb, host_vmcb) }
}

// rdi: *mut Gprs (15 u64s: rax, rcx, rdx, rbx, rbp, rsi, rdi, r8-r15), rsi: guest VMCB,
// rdx: host VMCB. GIF is cleared around the switch so nothing interrupts it half-done; IF is
// set inside it, so that with V_INTR_MASKING a physical interrupt ends the guest's run.
global_asm!(
    // Its own section: global_asm blocks share a module's assembly, which may end in another
    // block's data or .bss section.
    ".section .text.parapet_svm, \"ax\"",
    ".global parapet_svm_run",
    "parapet_svm_run:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdi",
    "push rsi",
    "push rdx",
    "mov rax, rdx",
    "vmsave rax",
    "clgi",
    "sti",
    "mov rax, [rsp + 8]",
    "vmload rax",
    "mov rcx, [rdi + 8]",
    "mov rdx, [rdi + 16]",
    "mov rbx, [rdi + 24]",
    "mov rbp, [rdi + 32]",
    "mov rsi, [rdi + 40]",
    "mov r8, [rdi + 56]",
    "mov r9, [rdi + 64]",
    "mov r10, [rdi + 72]",
    "mov r11, [rdi + 80]",
    "mov r12, [rdi + 88]",
    "mov r13, [rdi + 96]",
    "mov r14, [rdi + 104]",
    "mov r15, [rdi + 112]",
    "mov rdi, [rdi + 48]",
    "vmrun rax",
    // #VMEXIT: RSP and RAX are the host's again (the guest VMCB); the rest are the guest's.
    "push rdi",
    "mov rdi, [rsp + 24]",
    "mov [rdi + 8], rcx",
    "mov [rdi + 16], rdx",
    "mov [rdi + 24], rbx",
    "mov [rdi + 32], rbp",
    "mov [rdi + 40], rsi",
    "mov [rdi + 56], r8",
    "mov [rdi + 64], r9",
    "mov [rdi + 72], r10",
    "mov [rdi + 80], r11",
    "mov [rdi + 88], r12",
    "mov [rdi + 96], r13",
    "mov [rdi + 104], r14",
    "mov [rdi + 112], r15",
    "pop rcx",
    "mov [rdi + 48], rcx",
    "vmsave rax",
    "mov rax, [rsp]",
    "vmload rax",
    "cli",
    "stgi",
    "add rsp, 24",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
);

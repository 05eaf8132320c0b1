//! VTL0's own view of the Hyper-V interface: the guest OS id, its hypercall page, and calls
//! through it (TLFS §3; layouts in hvdef, which a guest this small spells out itself).

use core::arch::asm;

const MSR_GUEST_OS_ID: u32 = 0x4000_0000;
const MSR_HYPERCALL: u32 = 0x4000_0001;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut CODE_PAGE: Page = Page([0; 4096]);
static mut INPUT_PAGE: Page = Page([0; 4096]);

/// # Safety
/// `msr` must be readable, or its absence handled by whoever intercepts it.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: the caller vouches for the MSR.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nostack)) };
    (u64::from(high) << 32) | u64::from(low)
}

/// # Safety
/// `msr` must be writable with `value`.
unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller vouches for the MSR.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
    };
}

/// Identifies the guest and enables the hypercall page (once); false if the hypervisor
/// refused.
pub fn init() -> bool {
    let page = &raw mut CODE_PAGE as u64;
    // SAFETY: the synthetic MSRs exist (the hypervisor announces Hyper-V); the page is ours.
    unsafe {
        wrmsr(MSR_GUEST_OS_ID, 1 << 63);
        wrmsr(MSR_HYPERCALL, page | 1);
    }
    // SAFETY: the page is ours; the hypervisor filled it.
    unsafe { (&raw const CODE_PAGE).cast::<u8>().read_volatile() != 0 }
}

/// Makes hypercall `control` with `input` in the input page; returns RAX (status in 15:0).
pub fn call(control: u64, input: &[u8]) -> u64 {
    call_with_output(control, input, 0)
}

/// Writes `value` to a synthetic MSR.
///
/// # Safety
/// `msr` must be writable with `value` (or its refusal handled by whoever intercepts it).
pub unsafe fn write_msr(msr: u32, value: u64) {
    // SAFETY: the caller's contract.
    unsafe { wrmsr(msr, value) }
}

/// As [`call`], with the output page at guest-physical `output`.
pub fn call_with_output(control: u64, input: &[u8], output: u64) -> u64 {
    let input_page = &raw mut INPUT_PAGE;
    // SAFETY: the input page is ours and a page long; `input` is at most that.
    unsafe {
        let n = input.len().min(4096);
        core::ptr::copy_nonoverlapping(input.as_ptr(), input_page.cast::<u8>(), n);
    }
    let result: u64;
    // SAFETY: the code page holds the hypervisor's hypercall sequence (RCX control, RDX
    // input GPA, R8 output GPA; result in RAX); the pages are identity-mapped.
    unsafe {
        asm!(
            "call {code}",
            code = in(reg) &raw const CODE_PAGE as u64,
            inout("rcx") control => _,
            inout("rdx") input_page as u64 => _,
            inout("r8") output => _,
            out("rax") result,
        );
    }
    result
}

//! Parapet's side of the Hyper-V VTL interface (TLFS §3, §15): identify ourselves, enable the
//! hypercall page, and make hypercalls through it.

use core::arch::asm;

use arch::paging::{MapFlags, PAGE_4K};
use arch::x86_64::instructions::{rdmsr, wrmsr};
use hvdef::hypercall::{code, parse_result, Control, VpRegistersHeader, VP_INDEX_SELF};
use hvdef::msr::{self, PageMsr};
use hvdef::status::HvStatus;
use hvdef::vtl::InputVtl;
use spin::{Mutex, Once};

use crate::KERNEL_SPACE;

/// Parapet's version for the guest OS ID: major 23:16, minor 15:8, patch 7:0 (0.1.0).
const VERSION: u64 = 1 << 8;
/// Guest OS ID (TLFS §2.6, open-source encoding): bit 63 set, OS type 0 (none of the listed
/// ones), the version in bits 47:16.
const GUEST_OS_ID: u64 = (1 << 63) | (VERSION << 16);

/// The pages a hypercall uses: the hypervisor's code page, and our input and output pages.
struct Pages {
    code: u64,
    input: u64,
    output: u64,
}

static PAGES: Once<Mutex<Pages>> = Once::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvInitError {
    OutOfFrames,
    Mapping,
    /// The hypervisor did not keep the hypercall page enabled.
    HypercallPageRefused,
}

impl core::fmt::Display for HvInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HvInitError::OutOfFrames => write!(f, "no frames for the hypercall pages"),
            HvInitError::Mapping => write!(f, "cannot make the hypercall page executable"),
            HvInitError::HypercallPageRefused => {
                write!(f, "the hypervisor did not enable the hypercall page")
            }
        }
    }
}

/// Identifies Parapet to the hypervisor and enables the hypercall page. Once, on the boot CPU,
/// with the kernel address space live.
pub fn init() -> Result<(), HvInitError> {
    let frame = || kernel::memory::allocate_zeroed_frame().map_err(|_| HvInitError::OutOfFrames);
    let (code, input, output) = (frame()?, frame()?, frame()?);
    // The hypervisor fills the code page; we only execute it.
    KERNEL_SPACE
        .lock()
        .as_mut()
        .ok_or(HvInitError::Mapping)?
        .protect(code, PAGE_4K, MapFlags::EXECUTE)
        .map_err(|_| HvInitError::Mapping)?;
    // SAFETY: the VTL interface is present (the caller detected it), so these synthetic MSRs
    // exist; the code page is ours, executable and otherwise unused.
    unsafe {
        wrmsr(msr::GUEST_OS_ID, GUEST_OS_ID);
        wrmsr(msr::HYPERCALL, PageMsr::new(code, true).0);
        if !PageMsr(rdmsr(msr::HYPERCALL)).enabled() {
            return Err(HvInitError::HypercallPageRefused);
        }
    }
    PAGES.call_once(|| {
        Mutex::new(Pages {
            code,
            input,
            output,
        })
    });
    // Prove the path end to end: the hypervisor must tell us who we are.
    match get_vp_register(hvdef::registers::VP_INDEX) {
        Ok(value) => log::info!(
            "hv_vtl: hypercall page enabled; GetVpRegisters says VP index {}",
            value[0]
        ),
        Err(status) => log::warn!(
            "hv_vtl: GetVpRegisters(VpIndex) failed with status {:#x}",
            status.0
        ),
    }
    Ok(())
}

/// Makes the hypercall `control` with `input` copied to the input page; copies the output
/// page's first `output.len()` bytes back. Returns the status and the reps completed.
/// Inputs and outputs longer than a page are refused as the hypervisor would refuse them.
pub fn call(control: Control, input: &[u8], output: &mut [u8]) -> (HvStatus, u16) {
    let Some(pages) = PAGES.get() else {
        return (HvStatus::INVALID_HYPERCALL_CODE, 0);
    };
    if input.len() > PAGE_4K as usize || output.len() > PAGE_4K as usize {
        return (HvStatus::INVALID_PARAMETER, 0);
    }
    let pages = pages.lock();
    // SAFETY: the input and output pages are frames this module owns, identity-mapped and
    // writable; the lock keeps other CPUs out of them.
    unsafe {
        core::ptr::copy_nonoverlapping(input.as_ptr(), pages.input as *mut u8, input.len());
    }
    let result: u64;
    // SAFETY: the code page holds the hypervisor's hypercall sequence (TLFS §3.13): it takes
    // RCX, RDX, R8, returns in RAX, and may clobber RCX, RDX and R8; it uses the stack for
    // its return address only.
    unsafe {
        asm!(
            "call {code}",
            code = in(reg) pages.code,
            inout("rcx") control.0 => _,
            inout("rdx") pages.input => _,
            inout("r8") pages.output => _,
            out("rax") result,
        );
    }
    // SAFETY: as above, for the output page.
    unsafe {
        core::ptr::copy_nonoverlapping(
            pages.output as *const u8,
            output.as_mut_ptr(),
            output.len(),
        );
    }
    parse_result(result)
}

/// Reads one register of this VP at the current VTL with HvCallGetVpRegisters.
pub fn get_vp_register(name: u32) -> Result<[u8; 16], HvStatus> {
    get_register(InputVtl(None), name)
}

/// Reads register `name` of this VP at `vtl` with HvCallGetVpRegisters.
pub fn get_register(vtl: InputVtl, name: u32) -> Result<[u8; 16], HvStatus> {
    get_registers(vtl, &[name]).map(|[value]| value)
}

/// Reads `N` registers of this VP at `vtl` in one HvCallGetVpRegisters (a rep call).
pub fn get_registers<const N: usize>(
    vtl: InputVtl,
    names: &[u32; N],
) -> Result<[[u8; 16]; N], HvStatus> {
    // The buffers below hold 16 names and 16 values.
    const { assert!(N <= 16) };
    let mut header = VpRegistersHeader::this_partition(VP_INDEX_SELF);
    header.target_vtl = vtl;
    let mut input = [0u8; 256];
    input[..VpRegistersHeader::SIZE].copy_from_slice(&header.encode());
    for (i, name) in names.iter().enumerate() {
        let at = VpRegistersHeader::SIZE + 4 * i;
        input[at..at + 4].copy_from_slice(&name.to_le_bytes());
    }
    let input = &input[..VpRegistersHeader::SIZE + 4 * N];
    let mut output = [0u8; 256];
    let output = &mut output[..16 * N];
    let control = Control::new(code::GET_VP_REGISTERS).with_rep_count(N as u16);
    match call(control, input, output) {
        (status, reps) if status.is_success() && usize::from(reps) == N => {
            let mut values = [[0u8; 16]; N];
            for (i, value) in values.iter_mut().enumerate() {
                value.copy_from_slice(&output[16 * i..16 * i + 16]);
            }
            Ok(values)
        }
        (status, _) if !status.is_success() => Err(status),
        _ => Err(HvStatus::INVALID_HYPERCALL_INPUT),
    }
}

/// Writes register `name` of this VP at `vtl` with HvCallSetVpRegisters.
#[cfg_attr(feature = "selftest", allow(dead_code))]
pub fn set_register(vtl: InputVtl, name: u32, value: [u8; 16]) -> Result<(), HvStatus> {
    let mut header = VpRegistersHeader::this_partition(VP_INDEX_SELF);
    header.target_vtl = vtl;
    let mut input = [0u8; VpRegistersHeader::SIZE + VpRegistersHeader::SET_ELEMENT_SIZE];
    input[..VpRegistersHeader::SIZE].copy_from_slice(&header.encode());
    input[16..20].copy_from_slice(&name.to_le_bytes());
    input[32..48].copy_from_slice(&value);
    let control = Control::new(code::SET_VP_REGISTERS).with_rep_count(1);
    match call(control, &input, &mut []) {
        (status, 1) if status.is_success() => Ok(()),
        (status, _) if !status.is_success() => Err(status),
        _ => Err(HvStatus::INVALID_HYPERCALL_INPUT),
    }
}

/// Makes a simple (non-rep) hypercall with `input`; its status.
#[cfg_attr(feature = "selftest", allow(dead_code))]
pub fn simple_call(call_code: u16, input: &[u8]) -> HvStatus {
    call(Control::new(call_code), input, &mut []).0
}

/// Where the hypervisor put the hypercall code page (identity-mapped, executable).
#[cfg_attr(feature = "selftest", allow(dead_code))]
pub fn code_page() -> Option<u64> {
    PAGES.get().map(|p| p.lock().code)
}

//! Round trips through vmm-lite's own paths, for `cargo xtask bench vtl`: guests of a few
//! hand-written real-mode instructions, so that what is timed is vmm-lite and KVM, not the
//! guest.
//!
//! - direct: a port write that vmm-lite answers itself, no paravisor;
//! - floor: VTL0 calls VTL2 (the VTL call sequence) and VTL2 returns at once (the VTL return
//!   sequence), through the same VP loop and VTL switch Parapet runs on;
//! - ring0: no round trip, but how fast KVM runs a kernel's own code (64-bit, CPL 0).
//!
//! Each runs `iterations` round trips and ends by writing the exit port; the result is the
//! mean time per round trip.

use std::time::{Duration, Instant};

use hvdef::hypercall::{
    code, Control, InitialVpContext, VpVtlInput, PARTITION_SELF, VP_INDEX_SELF,
};
use hvdef::registers::{SegmentRegister, TableRegister};
use hvdef::vtl::Vtl;

use crate::error::VmmError;
use crate::guest_memory::GuestMemory;
use crate::hyperv::{HyperV, VTL_CALL_PORT, VTL_RETURN_PORT};
use crate::serial::{Com1, SerialBackend};
use crate::vm::{long_mode_vm, open_kvm, real_mode_vm, Outcome, DEFAULT_KVM_DEVICE};
use crate::vp::{HostDevices, Vp};
use crate::vtl0_view::Vtl0Host;

const RAM: u64 = 1 << 20;
const VTL2_CODE: u64 = 0x1000;
const VTL0_CODE: u64 = 0x2000;
const INPUT_PAGE: u64 = 0x9000;

/// `mov ebx, iterations; 1: out port, al; dec ebx; jnz 1b; mov al, 0x10; out 0xf4, al` in
/// 16-bit code: `iterations` writes to `port`, then the exit port's success code.
fn counted_loop(port: u8, iterations: u32) -> Vec<u8> {
    let mut code = vec![0x66, 0xbb];
    code.extend_from_slice(&iterations.to_le_bytes());
    code.extend_from_slice(&[0xe6, port, 0x66, 0x4b, 0x75, 0xfa]);
    code.extend_from_slice(&[0xb0, 0x10, 0xe6, 0xf4]);
    code
}

fn run(vp: Vp<'_>, iterations: u32) -> Result<Duration, VmmError> {
    let start = Instant::now();
    let outcome = vp.run();
    let elapsed = start.elapsed();
    match outcome {
        Outcome::Success => Ok(elapsed / iterations.max(1)),
        Outcome::Failure(why) => Err(VmmError::Benchmark(why)),
        Outcome::KvmCannotRun(failure) => Err(VmmError::Benchmark(failure.to_string())),
    }
}

fn quiet_com1() -> Result<std::sync::Arc<Com1>, VmmError> {
    Com1::open(&SerialBackend::File("/dev/null".into()))
}

/// A port write vmm-lite answers (an empty bus), per round trip.
pub fn direct(iterations: u32) -> Result<Duration, VmmError> {
    let memory = GuestMemory::new(RAM)?;
    memory.write(VTL2_CODE, &counted_loop(0x80, iterations))?;
    // SAFETY: `memory` outlives the VM, which is dropped at the end of this function.
    let (_kvm, _vm, vcpu) = unsafe { real_mode_vm(&memory, VTL2_CODE) }?;
    let com1 = quiet_com1()?;
    let vp = Vp::new(0, vcpu, HostDevices { com1: &com1 }, &memory, None, None);
    run(vp, iterations)
}

/// How fast this KVM runs a kernel's own code: `iterations` rounds of a two-instruction loop
/// (`dec ecx; jnz`) in 64-bit mode at CPL 0, then the exit port; the mean time per round.
/// Hardware virtualization runs it at the processor's speed (well under a nanosecond a
/// round); a KVM that emulates CPL 0, as a software KVM may, takes microseconds.
pub fn ring0(iterations: u32) -> Result<Duration, VmmError> {
    const TABLES: u64 = 0x2000;
    let memory = GuestMemory::new(RAM)?;
    let mut code = vec![0xb9];
    code.extend_from_slice(&iterations.max(1).to_le_bytes());
    code.extend_from_slice(&[0xff, 0xc9, 0x75, 0xfc, 0xb0, 0x10, 0xe6, 0xf4]);
    memory.write(VTL2_CODE, &code)?;
    // SAFETY: `memory` outlives the VM, which is dropped at the end of this function.
    let (_kvm, _vm, vcpu) = unsafe { long_mode_vm(&memory, VTL2_CODE, TABLES) }?;
    let com1 = quiet_com1()?;
    let vp = Vp::new(0, vcpu, HostDevices { com1: &com1 }, &memory, None, None);
    run(vp, iterations)
}

/// Real mode at `rip`, as HvCallEnableVpVtl takes it (VMX-style segment attributes).
fn real_mode_context(rip: u64) -> InitialVpContext {
    let segment = |attributes| SegmentRegister {
        base: 0,
        limit: 0xffff,
        selector: 0,
        attributes,
    };
    let data = segment(0x93);
    InitialVpContext {
        rip,
        rflags: 0x2,
        cs: segment(0x9b),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        tr: segment(0x8b),
        ldtr: segment(0x82),
        idtr: TableRegister {
            limit: 0x3ff,
            base: 0,
        },
        cr0: 0x10,
        ..Default::default()
    }
}

/// A one-VP Hyper-V interface with VTL0 enabled on VP 0 in real mode at `vtl0_rip`; VTL0's
/// view of `memory` leaves out `hidden` (start, size).
pub(crate) fn one_vp_with_vtl0(
    memory: &GuestMemory,
    vtl0_rip: u64,
    hidden: Vec<(u64, u64)>,
) -> Result<HyperV, VmmError> {
    let kvm_device = std::path::Path::new(DEFAULT_KVM_DEVICE);
    let kvm_fd = open_kvm(kvm_device)?;
    let cpuid = kvm_fd
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| VmmError::Kvm("KVM_GET_SUPPORTED_CPUID", e))?;
    let vtl0 = Vtl0Host::new(open_kvm(kvm_device)?, hidden, cpuid, 1);
    let hv = HyperV::new(1).with_vtl0_host(vtl0);
    let status = |result| hvdef::hypercall::parse_result(result).0;
    let enable_partition = Control::new(code::ENABLE_PARTITION_VTL).with_fast(true);
    let enabled = status(hv.hypercall(0, enable_partition.0, PARTITION_SELF, 0, memory));
    let input = VpVtlInput {
        partition_id: PARTITION_SELF,
        vp_index: VP_INDEX_SELF,
        target_vtl: Vtl::Vtl0,
        context: real_mode_context(vtl0_rip),
    };
    memory.write(INPUT_PAGE, &input.encode())?;
    let enable_vp = Control::new(code::ENABLE_VP_VTL);
    let vp_enabled = status(hv.hypercall(0, enable_vp.0, INPUT_PAGE, 0, memory));
    if !enabled.is_success() || !vp_enabled.is_success() {
        return Err(VmmError::Benchmark(format!(
            "enabling VTL0 failed: {:#x}, {:#x}",
            enabled.0, vp_enabled.0
        )));
    }
    Ok(hv)
}

/// A VTL call answered by an immediate VTL return, per round trip: the floor of the
/// two-view design.
pub fn floor(iterations: u32) -> Result<Duration, VmmError> {
    let memory = GuestMemory::new(RAM)?;
    // VTL2: 1: out VTL_RETURN_PORT, al; jmp 1b
    memory.write(VTL2_CODE, &[0xe6, VTL_RETURN_PORT, 0xeb, 0xfc])?;
    memory.write(VTL0_CODE, &counted_loop(VTL_CALL_PORT, iterations))?;
    let hv = one_vp_with_vtl0(&memory, VTL0_CODE, Vec::new())?;
    // SAFETY: `memory` outlives the VM, which is dropped at the end of this function.
    let (_kvm, _vm, vcpu) = unsafe { real_mode_vm(&memory, VTL2_CODE) }?;
    let com1 = quiet_com1()?;
    let vp = Vp::new(
        0,
        vcpu,
        HostDevices { com1: &com1 },
        &memory,
        Some(&hv),
        None,
    );
    run(vp, iterations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_round_trips_run_to_the_end() {
        let direct = direct(50).unwrap();
        let floor = floor(50).unwrap();
        assert!(direct > Duration::ZERO && floor > Duration::ZERO);
    }

    #[test]
    fn the_ring0_loop_runs_every_round_in_64_bit_mode() {
        // A loop that miscounted or ran in the wrong mode would not reach the exit port
        // with the success code (and `run` would fail).
        let per_round = ring0(1000).unwrap();
        assert!(per_round > Duration::ZERO);
    }
}

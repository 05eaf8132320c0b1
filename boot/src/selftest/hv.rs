//! The Hyper-V VTL interface, when Parapet runs on it (platform hv_vtl).

use alloc::boxed::Box;
use alloc::vec::Vec;

use hvdef::hypercall::{
    code, Control, VpRegistersHeader, VpVtlInput, PARTITION_SELF, VP_INDEX_SELF,
};
use hvdef::registers;
use hvdef::status::HvStatus;
use hvdef::vtl::Vtl;
use kernel::ensure;
use kernel::selftest::{TestCase, TestFuture};

use crate::machine::hv;

pub const TESTS: &[TestCase] = &[
    TestCase {
        name: "hv_get_vp_registers_names_each_vp",
        run: get_vp_registers_names_each_vp,
    },
    TestCase {
        name: "hv_unknown_hypercall_is_refused",
        run: unknown_hypercall_is_refused,
    },
    TestCase {
        name: "hv_malformed_control_word_is_refused",
        run: malformed_control_word_is_refused,
    },
    TestCase {
        name: "hv_unknown_register_is_refused",
        run: unknown_register_is_refused,
    },
    TestCase {
        name: "hv_vtl0_is_enabled_once_for_the_partition_and_each_vp",
        run: vtl0_is_enabled_once,
    },
];

/// HvCallEnableVpVtl input for this VP's VTL0, starting at `rip`.
fn enable_vp_vtl0_input(rip: u64) -> [u8; VpVtlInput::SIZE] {
    let mut input = [0u8; VpVtlInput::SIZE];
    input[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
    input[8..12].copy_from_slice(&VP_INDEX_SELF.to_le_bytes());
    input[12] = Vtl::Vtl0 as u8;
    input[16..24].copy_from_slice(&rip.to_le_bytes());
    input
}

fn vtl0_is_enabled_once() -> TestFuture {
    Box::pin(async {
        let mut partition = [0u8; 16];
        partition[0..8].copy_from_slice(&PARTITION_SELF.to_le_bytes());
        let enable = Control::new(code::ENABLE_PARTITION_VTL);
        let (status, _) = hv::call(enable, &partition, &mut []);
        ensure!(
            status.is_success(),
            "EnablePartitionVtl(VTL0): status {:#x}",
            status.0
        );
        let (status, _) = hv::call(enable, &partition, &mut []);
        ensure!(
            status == HvStatus::INVALID_VTL_STATE,
            "second EnablePartitionVtl: status {:#x}",
            status.0
        );
        let outcomes = super::on_every_cpu(|_| async {
            let input = enable_vp_vtl0_input(0xfff0);
            let first = hv::call(Control::new(code::ENABLE_VP_VTL), &input, &mut []).0;
            let second = hv::call(Control::new(code::ENABLE_VP_VTL), &input, &mut []).0;
            (first, second, hv::get_vp_register(registers::VSM_VP_STATUS))
        })
        .await?;
        for (cpu, (first, second, vp_status)) in outcomes.into_iter().enumerate() {
            ensure!(
                first.is_success(),
                "cpu{cpu}: EnableVpVtl(VTL0): status {:#x}",
                first.0
            );
            ensure!(
                second == HvStatus::VTL_ALREADY_ENABLED,
                "cpu{cpu}: second EnableVpVtl: status {:#x}",
                second.0
            );
            let vp_status =
                vp_status.map_err(|s| alloc::format!("cpu{cpu}: VsmVpStatus: {:#x}", s.0))?;
            let enabled = u16::from_le_bytes([vp_status[2], vp_status[3]]);
            ensure!(
                vp_status[0] & 0xf == 2,
                "cpu{cpu}: active VTL {}",
                vp_status[0] & 0xf
            );
            ensure!(
                enabled == 0b101,
                "cpu{cpu}: enabled VTL set {enabled:#b}, expected VTL0 and VTL2"
            );
        }
        Ok(())
    })
}

fn get_vp_registers_names_each_vp() -> TestFuture {
    Box::pin(async {
        let answers: Vec<Result<[u8; 16], HvStatus>> =
            super::on_every_cpu(|_| async { hv::get_vp_register(registers::VP_INDEX) }).await?;
        for (cpu, answer) in answers.into_iter().enumerate() {
            let value = answer.map_err(|s| alloc::format!("cpu{cpu}: status {:#x}", s.0))?;
            let index = u64::from_le_bytes(value[..8].try_into().unwrap_or_default());
            ensure!(index == cpu as u64, "cpu{cpu} was told it is VP {index}");
            ensure!(
                value[8..].iter().all(|&b| b == 0),
                "cpu{cpu}: upper half of the value is not zero"
            );
        }
        Ok(())
    })
}

fn unknown_hypercall_is_refused() -> TestFuture {
    Box::pin(async {
        let (status, _) = hv::call(Control::new(0x7ff7), &[], &mut []);
        ensure!(
            status == HvStatus::INVALID_HYPERCALL_CODE,
            "status {:#x}",
            status.0
        );
        Ok(())
    })
}

fn malformed_control_word_is_refused() -> TestFuture {
    Box::pin(async {
        // A rep call with no reps, then one with a reserved control bit set: both malformed.
        let (status, _) = hv::call(Control::new(code::GET_VP_REGISTERS), &[0; 24], &mut [0; 16]);
        ensure!(
            status == HvStatus::INVALID_HYPERCALL_INPUT,
            "no reps: status {:#x}",
            status.0
        );
        let reserved = Control(Control::new(code::GET_VP_REGISTERS).with_rep_count(1).0 | 1 << 62);
        let (status, _) = hv::call(reserved, &[0; 24], &mut [0; 16]);
        ensure!(
            status == HvStatus::INVALID_HYPERCALL_INPUT,
            "reserved bit: status {:#x}",
            status.0
        );
        Ok(())
    })
}

fn unknown_register_is_refused() -> TestFuture {
    Box::pin(async {
        let mut input = [0u8; VpRegistersHeader::SIZE + 8];
        input[..VpRegistersHeader::SIZE]
            .copy_from_slice(&VpRegistersHeader::this_partition(VP_INDEX_SELF).encode());
        input[16..20].copy_from_slice(&registers::VP_INDEX.to_le_bytes());
        input[20..24].copy_from_slice(&0x00de_ad00u32.to_le_bytes());
        let mut output = [0u8; 32];
        let (status, reps) = hv::call(
            Control::new(code::GET_VP_REGISTERS).with_rep_count(2),
            &input,
            &mut output,
        );
        ensure!(
            status == HvStatus::INVALID_PARAMETER,
            "status {:#x}",
            status.0
        );
        ensure!(
            reps == 1,
            "{reps} reps completed; the first register is valid"
        );
        Ok(())
    })
}

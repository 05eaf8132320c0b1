//! `cargo xtask bench NAME`: ours against a reference, measured side by side in one run
//! (medians of several runs), ending with one line `NAME ratio=X` (X = ours / reference).

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::qemu::{kvm_usable, Accel, Machine, Verdict};
use crate::vmm::VmmLite;
use crate::{build, Arch, Flavor};

const RUNS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(120);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Process start to `parapet: ready`, same firmware and machine size: vmm-lite loading the
/// IGVM file against QEMU/KVM booting the PVH ELF. Runs alternate so drift hits both.
pub fn boot() -> Result<()> {
    kvm_usable()
        .map_err(anyhow::Error::msg)
        .context("the boot benchmark compares KVM boots")?;
    let vmm = VmmLite {
        binary: build::vmm_lite()?,
        igvm: build::igvm(Flavor::Normal)?,
        vps: 2,
        memory_mib: 256,
        cmdline: None,
        platform: "native",
        vtl0: None,
    };
    let qemu = Machine {
        arch: Arch::X86_64,
        accel: Accel::Kvm,
        image: build::firmware(Arch::X86_64, Flavor::Normal)?,
        cpus: 2,
        memory_mib: 256,
        cmdline: None,
        gdb: false,
        gic_version: 3,
    };
    let igvm_size = std::fs::metadata(&vmm.igvm)?.len();
    let (mut ours, mut reference) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let run = vmm.run_timed(Some("poweroff\n"), TIMEOUT)?;
        match (run.ready_after, run.verdict) {
            (Some(t), Verdict::Success) => ours.push(t),
            _ => bail!(
                "vmm-lite boot ended with {:?}:\n{}",
                run.verdict,
                run.output
            ),
        }
        let run = qemu.run_timed(Some("poweroff\n"), TIMEOUT)?;
        match (run.ready_after, run.verdict) {
            (Some(t), Verdict::Success) => reference.push(t),
            _ => bail!("QEMU boot ended with {:?}:\n{}", run.verdict, run.output),
        }
    }
    let (ours_ms, reference_ms) = (ms(median(ours.clone())), ms(median(reference.clone())));
    println!("boot: IGVM file {} ({igvm_size} bytes)", vmm.igvm.display());
    println!(
        "boot: vmm-lite + IGVM, -smp 2, 256 MiB: median {ours_ms:.0} ms over {RUNS} runs {:?}",
        ours.iter().map(|d| ms(*d) as u64).collect::<Vec<_>>()
    );
    println!(
        "boot: QEMU/KVM + PVH, -smp 2, 256 MiB: median {reference_ms:.0} ms over {RUNS} runs {:?}",
        reference.iter().map(|d| ms(*d) as u64).collect::<Vec<_>>()
    );
    println!("boot ratio={:.3}", ours_ms / reference_ms);
    Ok(())
}

//! `cargo xtask report`: the figures a closing note needs, measured in one run — image sizes,
//! memory in use at `parapet: ready`, and boot time to ready under TCG (median of several).

use std::time::Duration;

use anyhow::{bail, Result};

use crate::qemu::{Accel, Machine, Verdict};
use crate::{build, Arch, Flavor};

const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The `memory: ...` log line the firmware prints before `parapet: ready`.
fn memory_line(output: &str) -> &str {
    output
        .lines()
        .find_map(|l| l.split_once("memory: ").map(|(_, m)| m))
        .unwrap_or("(no memory line)")
}

pub fn run() -> Result<()> {
    for arch in Arch::ALL {
        let image = build::firmware(arch, Flavor::Normal)?;
        let size = std::fs::metadata(&image)?.len();
        let machine = Machine {
            arch,
            accel: Accel::Tcg,
            image: image.clone(),
            cpus: 2,
            memory_mib: 256,
            cmdline: None,
            gdb: false,
            gic_version: 3,
            guest: None,
        };
        let mut times = Vec::new();
        let mut memory = String::new();
        for _ in 0..RUNS {
            let run = machine.run_timed(Some("poweroff\n"), Duration::from_secs(60))?;
            if run.verdict != Verdict::Success {
                bail!("{arch} boot ended with {:?}:\n{}", run.verdict, run.output);
            }
            times.extend(run.ready_after);
            memory = memory_line(&run.output).to_string();
        }
        if times.is_empty() {
            bail!("{arch}: never saw `parapet: ready`");
        }
        println!("{arch}: image {} ({size} bytes)", image.display());
        println!("{arch}: at ready: {memory}");
        println!(
            "{arch}: TCG boot to `parapet: ready`, -smp 2 -m 256: median {:.0} ms over {} runs",
            median(times.clone()).as_secs_f64() * 1000.0,
            times.len()
        );
    }
    Ok(())
}

//! `cargo xtask fuzz`: the cargo-fuzz targets in fuzz/ (the TPM's command parser, its CRB
//! registers, its FIFO interface on SPI), each for a bounded time. `cargo xtask test` runs them briefly as a tier.
//!
//! They run on the pinned stable toolchain with `--sanitizer none`: AddressSanitizer needs
//! nightly's `-Zsanitizer`, and the code under test has no `unsafe` for it to watch; the
//! coverage instrumentation libFuzzer steers by (`-Cpasses=sancov-module`) is stable.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::setup;

/// The targets, as fuzz/Cargo.toml names them.
pub const TARGETS: [&str; 3] = ["tpm_command", "tpm_crb", "tpm_tis_spi"];

/// One target's run.
#[derive(Debug)]
pub struct Outcome {
    pub target: &'static str,
    pub passed: bool,
    /// libFuzzer's closing "Done N runs in S second(s)", when it got there.
    pub summary: Option<String>,
}

/// Installs what the fuzzer needs (a C++ compiler for libFuzzer, cargo-fuzz), then runs
/// every target for `seconds`.
pub fn run_all(seconds: u32) -> Result<Vec<Outcome>> {
    setup::tools()?;
    setup::cargo_fuzz()?;
    TARGETS.iter().map(|t| run(t, seconds)).collect()
}

/// Runs `target` for `seconds` from its seed corpus (fuzz/corpus/<target>, read only: what
/// the run finds goes to target/fuzz/corpus/<target>, kept between runs). A crash leaves its
/// input in fuzz/artifacts/<target>/ and fails the run. libFuzzer's progress lines and
/// closing dictionary are left out of the output; everything else (the build, a crash's
/// report) is shown.
fn run(target: &'static str, seconds: u32) -> Result<Outcome> {
    let root = crate::workspace_root();
    let found = root.join("target/fuzz/corpus").join(target);
    std::fs::create_dir_all(&found).with_context(|| format!("creating {}", found.display()))?;
    let seeds = root.join("fuzz/corpus").join(target);
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let mut child = Command::new("cargo")
        .current_dir(root.join("fuzz"))
        .args(["fuzz", "run", "--sanitizer", "none", "--target-dir"])
        .arg(root.join("target/fuzz"))
        .arg(target)
        .arg(&found)
        .arg(&seeds)
        .args([
            "--".to_string(),
            format!("-max_total_time={seconds}"),
            // A hang is a failure, not a stall of the whole run.
            "-timeout=10".to_string(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo fuzz")?;
    let stderr = child.stderr.take().context("cargo fuzz stderr")?;
    let mut summary = None;
    for line in BufReader::new(stderr).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        if line.starts_with("Done ") {
            summary = Some(line.clone());
        }
        // Progress lines ("#4096 pulse cov: ..."), and the dictionary it ends with.
        if !line.starts_with('#') && !line.starts_with('"') {
            eprintln!("{line}");
        }
    }
    let passed = child.wait()?.success();
    match (&summary, passed) {
        (Some(done), true) => eprintln!("xtask: fuzz {target}: {done}, no crash"),
        _ => eprintln!(
            "xtask: fuzz {target} failed (a crash's input is in fuzz/artifacts/{target}/)"
        ),
    }
    Ok(Outcome {
        target,
        passed,
        summary,
    })
}

//! Debian's tpm2-tools run one sequence (`qemu_tests::tpm2_tools::sequence`) against Debian's
//! swtpm and against the TPM under test, in the same run, and every fact that any correct TPM
//! reports identically must agree (PCR values, digests, spec-fixed capabilities, NV contents,
//! public areas' template fields, policy digests, verification results, response codes of
//! the deliberate failures). The TPM under test is `tpm2_tools::ours()`: Parapet's TPM served
//! by `vmm-lite tpm-server` (built first, release).
//!
//! Needs tpm2-tools, swtpm and swtpm-tools (`cargo xtask setup` installs them). Every server
//! the test starts is killed when the test ends, whether it passes, fails or panics.

use std::path::Path;
use std::process::{Command, Stdio};

use libtest_mimic::{Arguments, Failed, Trial};
use qemu_tests::tpm2_tools;

/// Programs the test runs, and the Debian package each comes from.
const NEEDED: [(&str, &str); 3] = [
    ("tpm2_startup", "tpm2-tools"),
    ("tpm2_checkquote", "tpm2-tools"),
    ("swtpm", "swtpm"),
];

fn tools_present() -> Result<(), String> {
    for (program, package) in NEEDED {
        let runs = Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !runs {
            return Err(format!(
                "{program} does not run: install Debian's {package} (`cargo xtask setup` does)"
            ));
        }
    }
    Ok(())
}

/// Runs the sequence against swtpm (side A) and Parapet's TPM (side B, `tpm2_tools::ours`)
/// at the same time, and compares.
fn deterministic_facts_agree() -> Result<(), Failed> {
    tools_present()?;
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tpm2-tools");
    let under_test = tpm2_tools::ours()?;
    let reference = tpm2_tools::swtpm("swtpm", &base.join("swtpm-a-state"))?;
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| tpm2_tools::run_sequence(&reference, &base.join("a")));
        let b = tpm2_tools::run_sequence(&under_test, &base.join("b"));
        (a.join(), b)
    });
    let a = a.map_err(|_| "side A's run panicked")??;
    let b = b?;
    drop((reference, under_test));
    let comparison = tpm2_tools::compare(&a, &b);
    let report = tpm2_tools::report(&a, &b, &comparison);
    println!("{report}");
    let problems = a.problems().len() + b.problems().len();
    if comparison.mismatches.is_empty() && problems == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} mismatches, {problems} problems (listed above; each step's stdout and stderr \
             are in {} and {})",
            comparison.mismatches.len(),
            a.dir.display(),
            b.dir.display()
        )
        .into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![Trial::test(
        "swtpm_and_parapets_tpm_agree_on_deterministic_tpm2_tools_results",
        deterministic_facts_agree,
    )];
    libtest_mimic::run(&args, trials).exit();
}

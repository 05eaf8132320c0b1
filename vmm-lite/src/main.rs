//! `vmm-lite`: Parapet's host VMM on Linux KVM.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vmm-lite", version, about = "Parapet's host VMM on Linux KVM")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that this host's KVM can run Parapet: open /dev/kvm, create a VM and a vCPU,
    /// and list the capabilities vmm-lite relies on. Exits non-zero if any is missing.
    Probe,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Probe => match vmm_lite::probe::probe() {
            Ok(report) => {
                println!("KVM API version {}", report.api_version);
                for (name, ok, required) in &report.capabilities {
                    let need = if *required { "required" } else { "optional" };
                    println!(
                        "  {name:<28} {:<3} ({need})",
                        if *ok { "yes" } else { "no" }
                    );
                }
                let missing = report.missing();
                if missing.is_empty() {
                    println!("vmm-lite: this KVM has everything vmm-lite needs");
                    ExitCode::SUCCESS
                } else {
                    eprintln!("vmm-lite: this KVM lacks {}", missing.join(", "));
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("vmm-lite: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

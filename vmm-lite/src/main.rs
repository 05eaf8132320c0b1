//! `vmm-lite`: Parapet's host VMM on Linux KVM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use vmm_lite::error::VmmError;
use vmm_lite::guest_memory::GuestMemory;

use vmm_lite::hyperv::HyperV;
use vmm_lite::igvm_load::{self, LoadConfig, Platform};
use vmm_lite::kvm_failure;
use vmm_lite::serial::{Com1, SerialBackend};
use vmm_lite::vm::{Outcome, Vm, DEFAULT_KVM_DEVICE};
use vmm_lite::vtl0_payload::Payload;

/// Exit status when the firmware reported failure.
const FIRMWARE_FAILED: u8 = 1;
/// Exit status for bad input or a host problem (as for a usage error).
const VMM_ERROR: u8 = 2;
const MAX_VPS: u32 = 64;
/// RAM stays below the 32-bit MMIO window (LAPIC at 0xfee00000, I/O APIC at 0xfec00000).
const MAX_MEMORY: u64 = 3 << 30;
const MIN_MEMORY: u64 = 16 << 20;

#[derive(Parser)]
#[command(name = "vmm-lite", version, about = "Parapet's host VMM on Linux KVM")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot an IGVM file on KVM (its native platform, or with `--platform vbs` the paravisor
    /// in VTL2). Exits 0 when the firmware reports success, 1 when it reports failure or the
    /// VM dies, 2 for bad input or host problems, 3 when KVM cannot run a vCPU.
    Run(RunOptions),
    /// Check that this host's KVM can run Parapet: open /dev/kvm, create a VM and a vCPU,
    /// and list the capabilities vmm-lite relies on. Exits non-zero if any is missing.
    Probe,
    /// Serve Parapet's TPM 2.0 over the TPM simulator's TCP protocol ("mssim"): TPM commands
    /// on the given port, platform signals (power, NV) on the next one, one client at a
    /// time, until a client sends TPM_STOP. tpm2-tools reach it with
    /// `-T mssim:host=127.0.0.1,port=PORT`. The TPM starts newly manufactured (seeds from
    /// /dev/urandom) and its state lives as long as the server.
    TpmServer {
        /// Where to listen for TPM commands (port 0: any free pair of ports).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:2321")]
        listen: std::net::SocketAddr,
    },
    /// Time one of vmm-lite's own round trips with a tiny built-in guest and print the mean
    /// in microseconds: `direct` (a port write vmm-lite answers), `floor` (a VTL call from
    /// VTL0 answered by an immediate VTL return; `cargo xtask bench vtl` uses both), or
    /// `ring0` (a round of a two-instruction loop in 64-bit mode at CPL 0: how fast this KVM
    /// runs a kernel's code).
    Bench {
        #[arg(value_parser = ["direct", "floor", "ring0"])]
        what: String,
        /// Round trips to time.
        #[arg(long, default_value_t = 10_000)]
        iterations: u32,
    },
}

fn parse_memory(text: &str) -> Result<u64, VmmError> {
    let bad = |why| VmmError::BadMemorySize(text.into(), why);
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return Err(bad("the suffix must be K, M or G")),
    };
    let n: u64 = digits.parse().map_err(|_| bad("not a number"))?;
    let bytes = n.checked_mul(1 << shift).ok_or(bad("too large"))?;
    if bytes % 4096 != 0 {
        return Err(bad("must be a multiple of 4 KiB"));
    }
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&bytes) {
        return Err(bad("must be between 16M and 3G"));
    }
    Ok(bytes)
}

/// IGVM files state their size in 32 bits; anything larger is not one, and is not read.
fn read_igvm(path: &str) -> Result<Vec<u8>, VmmError> {
    let too_big = |len: u64| VmmError::BadIgvm {
        path: path.into(),
        reason: format!("it is {len} bytes; IGVM files are under 4 GiB"),
    };
    let error = |source| VmmError::ReadFile {
        path: path.into(),
        source,
    };
    let len = std::fs::metadata(path).map_err(error)?.len();
    if len > u64::from(u32::MAX) {
        return Err(too_big(len));
    }
    std::fs::read(path).map_err(error)
}

/// What `vmm-lite run` was asked to do.
#[derive(Args)]
struct RunOptions {
    /// The IGVM file to load.
    #[arg(long, value_name = "FILE")]
    igvm: String,
    /// Guest RAM: a byte count with an optional K, M or G suffix (16M to 3G).
    #[arg(long, value_name = "SIZE", default_value = "256M")]
    mem: String,
    /// Number of virtual processors (1 to 64).
    #[arg(long, value_name = "N", default_value_t = 1)]
    vps: u32,
    /// The firmware command line (e.g. `parapet.log=debug`).
    #[arg(long, value_name = "TEXT", default_value = "")]
    cmdline: String,
    /// Where COM1 goes: `stdio` (output to stdout, input from stdin) or `file:PATH`.
    #[arg(long, value_name = "stdio|file:PATH", default_value = "stdio")]
    serial: String,
    /// Which of the file's platforms to run: `native`, or `vbs` (the firmware in VTL2
    /// behind the Hyper-V interface vmm-lite emulates).
    #[arg(long, default_value = "native", value_parser = ["native", "vbs"])]
    platform: String,
    /// A guest for VTL0 (`--platform vbs` only): an ELF, or a Linux guest bundle (kernel,
    /// initrd and command line, as `cargo xtask qemu --kernel` builds), that the paravisor
    /// loads and runs. It is staged at the top of RAM and named on the firmware command line.
    #[arg(long, value_name = "FILE")]
    vtl0: Option<String>,
    /// The KVM device to run on.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_KVM_DEVICE)]
    kvm_device: PathBuf,
}

fn run(o: RunOptions) -> Result<Outcome, VmmError> {
    let RunOptions {
        igvm,
        mem,
        vps,
        cmdline,
        serial,
        platform,
        vtl0,
        kvm_device,
    } = o;
    let (igvm, mem, serial) = (igvm.as_str(), mem.as_str(), serial.as_str());
    let platform = if platform == "vbs" {
        Platform::Vbs
    } else {
        Platform::Native
    };
    let memory_size = parse_memory(mem)?;
    if !(1..=MAX_VPS).contains(&vps) {
        return Err(VmmError::BadVpCount(vps, MAX_VPS));
    }
    let backend: SerialBackend = serial.parse()?;
    let bytes = read_igvm(igvm)?;
    let (file, mask) = igvm_load::parse_for(&bytes, igvm, platform)?;
    let payload = match vtl0 {
        Some(_) if platform != Platform::Vbs => return Err(VmmError::PayloadWithoutVtl0),
        Some(path) => Some(Payload::read(&path, memory_size)?),
        None => None,
    };
    let cmdline = match &payload {
        Some(p) if cmdline.is_empty() => p.option(),
        Some(p) => format!("{cmdline} {}", p.option()),
        None => cmdline,
    };
    let memory = GuestMemory::new(memory_size)?;
    let loaded = igvm_load::load(&file, mask, &memory, &LoadConfig { vps, cmdline })?;
    for what in &loaded.unprovided {
        eprintln!("vmm-lite: the image asks for a {what} parameter, which vmm-lite does not provide; it stays zero");
    }
    let com1 = Com1::open(&backend)?;
    let hyperv = (platform == Platform::Vbs).then(|| HyperV::new(vps));
    let paravisor_regions = igvm_load::vtl2_protectable(&loaded.required);
    if let Some(payload) = &payload {
        payload.stage(&memory, &paravisor_regions)?;
    }
    let vm = Vm::new(
        &kvm_device,
        memory,
        vps,
        &loaded.context,
        hyperv,
        &paravisor_regions,
    )?;
    Ok(vm.run(com1))
}

fn tpm_server(listen: std::net::SocketAddr) -> ExitCode {
    use vmm_lite::tpm_server::{new_tpm, TpmServer};
    let tpm = match new_tpm() {
        Ok(tpm) => tpm,
        Err(e) => {
            eprintln!("vmm-lite: cannot seed the TPM from /dev/urandom: {e}");
            return ExitCode::from(VMM_ERROR);
        }
    };
    let server = match TpmServer::bind(listen, tpm) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("vmm-lite: {e}");
            return ExitCode::from(VMM_ERROR);
        }
    };
    // Scripts and tests that asked for port 0 read the ports from this line.
    println!(
        "vmm-lite: serving a TPM: commands on {}, platform signals on {}",
        server.command_addr(),
        server.platform_addr()
    );
    match server.serve() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmm-lite: {e}");
            ExitCode::from(VMM_ERROR)
        }
    }
}

fn probe() -> ExitCode {
    match vmm_lite::probe::probe() {
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
    }
}

/// What `vmm-lite --help` says about exit status 3.
const KVM_FAILURE_HELP: &str = "\
When KVM cannot run a vCPU (an instruction it cannot emulate, another KVM internal error, a
failed VM entry, a failed KVM_RUN), `vmm-lite run` prints one line on stderr and exits 3:
  vmm-lite: KVM cannot run VTL0 on vCPU 0: emulation failure at RIP 0x1000, instruction bytes d9 05 00 00 00 80 (exit status 3)
It names the VTL the vCPU was running (the firmware's is VTL2), the vCPU, what KVM reported,
and RIP; for an emulation failure, the instruction bytes KVM gave, or else guest memory at
RIP.
";

/// The CLI, its top-level help ending with what exit status 3 prints, then each
/// subcommand's options as the subcommand's own help renders them: `vmm-lite --help`
/// documents every option, written once.
fn cli_command() -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    let mut details = format!("{KVM_FAILURE_HELP}\n");
    let with_arguments = |s: &clap::Command| s.get_arguments().any(|a| a.get_id() != "help");
    for sub in cli.get_subcommands_mut().filter(|s| with_arguments(s)) {
        let usage = sub.clone().about(None).long_about(None).render_help();
        details.push_str(&format!(
            "`vmm-lite {}` in full:\n{usage}\n",
            sub.get_name()
        ));
    }
    cli.after_help(details.trim_end().to_string())
}

fn main() -> ExitCode {
    let parsed = cli_command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(VMM_ERROR);
        }
        Err(e) => {
            // One line naming the problem; `--help` has the rest.
            let text = e.render().to_string();
            let first_paragraph = text.split("\n\n").next().unwrap_or("bad arguments");
            let message = first_paragraph
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!(
                "vmm-lite: {} (see vmm-lite --help)",
                message.trim_start_matches("error: ")
            );
            return ExitCode::from(VMM_ERROR);
        }
    };
    match cli.command {
        Command::Run(options) => match run(options) {
            Ok(Outcome::Success) => ExitCode::SUCCESS,
            Ok(Outcome::Failure(why)) => {
                eprintln!("vmm-lite: {why}");
                ExitCode::from(FIRMWARE_FAILED)
            }
            Ok(Outcome::KvmCannotRun(failure)) => {
                eprintln!("{}", failure.line());
                ExitCode::from(kvm_failure::EXIT_STATUS)
            }
            Err(e) => {
                eprintln!("vmm-lite: {e}");
                ExitCode::from(VMM_ERROR)
            }
        },
        Command::Probe => probe(),
        Command::TpmServer { listen } => tpm_server(listen),
        Command::Bench { what, iterations } => {
            let result = match what.as_str() {
                "direct" => vmm_lite::bench::direct(iterations),
                "ring0" => vmm_lite::bench::ring0(iterations),
                _ => vmm_lite::bench::floor(iterations),
            };
            match result {
                Ok(per_trip) => {
                    println!("{:.2}", per_trip.as_secs_f64() * 1e6);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vmm-lite: {e}");
                    ExitCode::from(VMM_ERROR)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_with_suffixes_and_bounds() {
        assert_eq!(parse_memory("256M").unwrap(), 256 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("33554432").unwrap(), 32 << 20);
        for bad in [
            "",
            "M",
            "12X",
            "4G",
            "1M",
            "100000K1",
            "99999999999999999999G",
            "16777217",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_top_level_help_documents_every_option_of_every_subcommand() {
        let help = cli_command().render_help().to_string();
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments().filter_map(|a| a.get_long()) {
                assert!(
                    help.contains(&format!("--{arg} ")),
                    "--{arg} missing:\n{help}"
                );
            }
        }
        assert!(help.contains("--kvm-device <PATH>"), "{help}");
    }

    #[test]
    fn the_help_documents_every_exit_status_of_run() {
        let help = cli_command().render_help().to_string();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for status in [
            "Exits 0 when",
            "1 when",
            "2 for bad input",
            "3 when KVM cannot run",
        ] {
            assert!(flat.contains(status), "{status:?} missing:\n{help}");
        }
        assert!(
            help.contains("vmm-lite: KVM cannot run VTL0 on vCPU 0: emulation failure at RIP 0x"),
            "{help}"
        );
    }
}

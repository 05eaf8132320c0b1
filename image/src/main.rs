//! `parapet-image`: build, check and measure firmware images.

use std::process::ExitCode;

use anyhow::{Context, Result};
use parapet_image::measure::{measurements, parse};
use parapet_image::{igvm_builder, inspect, ImageInfo};

const USAGE: &str = "\
usage:
  parapet-image inspect FILE                 check a firmware image (x86_64 PVH ELF or aarch64 raw image)
  parapet-image igvm FIRMWARE_ELF OUTPUT     build an IGVM file from the x86_64 firmware ELF
  parapet-image measure FILE                 print each platform's launch measurement of an IGVM file";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["inspect", file] => run_inspect(file),
        ["igvm", firmware, output] => run_igvm(firmware, output),
        ["measure", file] => run_measure(file),
        ["--help"] | ["-h"] | ["help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parapet-image: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads an input file; firmware ELFs and IGVM files are far below 4 GiB, so larger input
/// (or a device like /dev/zero) is refused rather than read.
fn read(file: &str) -> Result<Vec<u8>> {
    let len = std::fs::metadata(file)
        .with_context(|| format!("cannot read {file}"))?
        .len();
    if len > u64::from(u32::MAX) {
        anyhow::bail!("{file} is {len} bytes, too large to be a firmware image or an IGVM file");
    }
    std::fs::read(file).with_context(|| format!("cannot read {file}"))
}

fn run_inspect(file: &str) -> Result<()> {
    let bytes = read(file)?;
    match inspect(&bytes).with_context(|| format!("{file} is not a valid Parapet image"))? {
        ImageInfo::PvhElf { entry, load_bytes, memory_bytes } => println!(
            "{file}: x86_64 PVH ELF, entry {entry:#x}, {load_bytes} bytes loaded, {memory_bytes} bytes in memory, {} bytes on disk",
            bytes.len()
        ),
        ImageInfo::Arm64 { text_offset, image_bytes, file_bytes } => println!(
            "{file}: aarch64 Linux-style image, text offset {text_offset:#x}, {file_bytes} bytes on disk, {image_bytes} bytes in memory"
        ),
    }
    Ok(())
}

fn run_igvm(firmware: &str, output: &str) -> Result<()> {
    let igvm = igvm_builder::build(&read(firmware)?)
        .with_context(|| format!("cannot build IGVM from {firmware}"))?;
    std::fs::write(output, &igvm).with_context(|| format!("cannot write {output}"))?;
    println!("{output}: {} bytes", igvm.len());
    Ok(())
}

fn run_measure(file: &str) -> Result<()> {
    let igvm = parse(&read(file)?).with_context(|| format!("{file} is not a valid IGVM file"))?;
    for m in measurements(&igvm)? {
        match m.digest {
            Some(d) => println!(
                "{}: {}",
                m.platform,
                d.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            None => println!("{}: not measured", m.platform),
        }
    }
    Ok(())
}

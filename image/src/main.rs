//! `parapet-image`: check and describe firmware images.

use std::process::ExitCode;

use anyhow::{Context, Result};
use parapet_image::{inspect, ImageInfo};

const USAGE: &str = "usage: parapet-image inspect FILE\n\nChecks a Parapet firmware image (x86_64 PVH ELF or aarch64 raw image) and prints its layout.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["inspect", file] => match run(file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("parapet-image: {e:#}");
                ExitCode::FAILURE
            }
        },
        ["--help"] | ["-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(file: &str) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    match inspect(&bytes).with_context(|| format!("{file} is not a valid Parapet image"))? {
        ImageInfo::PvhElf {
            entry,
            load_bytes,
            memory_bytes,
        } => {
            println!("{file}: x86_64 PVH ELF, entry {entry:#x}, {load_bytes} bytes loaded, {memory_bytes} bytes in memory, {} bytes on disk", bytes.len());
        }
        ImageInfo::Arm64 {
            text_offset,
            image_bytes,
            file_bytes,
        } => {
            println!("{file}: aarch64 Linux-style image, text offset {text_offset:#x}, {file_bytes} bytes on disk, {image_bytes} bytes in memory");
        }
    }
    Ok(())
}

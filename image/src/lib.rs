//! Parapet's image tooling, behind `parapet-image` and `cargo xtask build`.
//!
//! - `igvm_builder`: the IGVM file (native and VBS platforms) from the x86_64 firmware ELF,
//!   laid out as `parapet_abi::igvm_layout` says; building twice gives the same bytes.
//! - `measure`: each platform's launch measurement of an IGVM file (the VBS boot digest,
//!   computed here and checked against the `igvm` crate's).
//! - `inspect`: checks the two boot formats QEMU loads — a PVH ELF on x86_64 and a Linux
//!   arm64 raw image on aarch64 — so a broken link (lost PVH note, wrong load address) is
//!   caught before any boot.

pub mod arm64_image;
pub mod elf;
pub mod igvm_builder;
pub mod measure;
pub mod pvh_elf;

use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is too short to be a {0}")]
    Truncated(&'static str),
    #[error("not an ELF64 little-endian x86_64 executable")]
    NotX86_64Elf,
    #[error("the ELF has no PVH entry note (Xen note type 18)")]
    NoPvhNote,
    #[error("the PVH entry {entry:#x} is outside every executable segment")]
    EntryOutsideText { entry: u64 },
    #[error("not a Linux arm64 image (no \"ARM\\x64\" magic at offset 56)")]
    NotArm64Image,
    #[error("the arm64 image header says {header} bytes but the file has {file}")]
    SizeMismatch { header: u64, file: u64 },
    #[error("the firmware has no IGVM entry note (\"Parapet\" type 1): is it built with the IGVM entry?")]
    NoIgvmEntry,
    #[error("a firmware segment at {start:#x}..{end:#x} falls outside the paravisor region's image area")]
    OutsideRegion { start: u64, end: u64 },
    #[error("IGVM: {0}")]
    Igvm(String),
}

/// What a valid image looks like, for reports.
#[derive(Debug, PartialEq, Eq)]
pub enum ImageInfo {
    PvhElf {
        entry: u32,
        load_bytes: u64,
        memory_bytes: u64,
    },
    Arm64 {
        text_offset: u64,
        image_bytes: u64,
        file_bytes: u64,
    },
}

/// Validates `bytes` as whichever of the two formats it claims to be.
pub fn inspect(bytes: &[u8]) -> Result<ImageInfo, ImageError> {
    if bytes.starts_with(b"\x7fELF") {
        pvh_elf::inspect(bytes)
    } else {
        arm64_image::inspect(bytes)
    }
}

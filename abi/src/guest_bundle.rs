//! A kernel-and-initrd guest handed to Parapet as one blob: the boot module a PVH loader
//! passes (QEMU's `-initrd`) or the payload vmm-lite stages (`--vtl0`) carries one file, and a
//! Linux guest needs three things, its kernel, its initrd and its command line.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | field                                   |
//! |--------|------|-----------------------------------------|
//! | 0      | 8    | magic `PARAPETG`                        |
//! | 8      | 4    | format version, 1                       |
//! | 12     | 4    | header length (64)                      |
//! | 16     | 8+8  | kernel: offset, length                  |
//! | 32     | 8+8  | initrd: offset, length (length 0: none) |
//! | 48     | 8+8  | command line: offset, length (no NUL)   |
//!
//! Each part starts on a 4 KiB boundary of the bundle, so a page-aligned bundle keeps its
//! initrd page-aligned where it lies and the loader can hand it to the kernel in place
//! (Linux wants its initrd page-aligned, Documentation/arch/x86/boot.rst).
//!
//! The bundle comes from outside Parapet: [`parse`] checks every field against the bundle's
//! length with checked arithmetic, and nothing here panics on any input.

use alloc::vec::Vec;
use core::ops::Range;

use le::{u32_at, u64_at};

pub const MAGIC: &[u8; 8] = b"PARAPETG";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
/// Parts start on this boundary.
pub const PART_ALIGN: usize = 4096;

/// Field offsets in the header.
mod field {
    pub const VERSION: usize = 8;
    pub const HEADER_LEN: usize = 12;
    pub const KERNEL: usize = 16;
    pub const INITRD: usize = 32;
    pub const COMMAND_LINE: usize = 48;
}

/// Where each part lies in the bundle, as byte ranges of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub kernel: Range<usize>,
    pub initrd: Option<Range<usize>>,
    pub command_line: Range<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// Fewer bytes than the header.
    Truncated,
    BadMagic,
    UnsupportedVersion(u32),
    BadHeaderLength(u32),
    /// A part runs past the bundle, or does not start on a [`PART_ALIGN`] boundary.
    BadPart(&'static str),
    EmptyKernel,
}

impl core::fmt::Display for BundleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "shorter than the {HEADER_LEN}-byte bundle header"),
            Self::BadMagic => write!(f, "not a Parapet guest bundle (magic)"),
            Self::UnsupportedVersion(v) => {
                write!(f, "bundle format version {v}; this is {VERSION}")
            }
            Self::BadHeaderLength(n) => write!(f, "bundle header length {n}, not {HEADER_LEN}"),
            Self::BadPart(what) => write!(
                f,
                "the {what} lies outside the bundle or off a {PART_ALIGN}-byte boundary"
            ),
            Self::EmptyKernel => write!(f, "the bundle has no kernel"),
        }
    }
}

/// Whether `bytes` start like a bundle (for loaders that take several formats).
pub fn is_bundle(bytes: &[u8]) -> bool {
    bytes.get(..MAGIC.len()) == Some(MAGIC.as_slice())
}

/// Reads the header of a `len`-byte bundle from its first [`HEADER_LEN`] bytes, `header`.
/// (Taking the length apart lets a loader check a bundle it has not copied.)
pub fn parse(header: &[u8], len: usize) -> Result<Bundle, BundleError> {
    if header.len() < HEADER_LEN || len < HEADER_LEN {
        return Err(BundleError::Truncated);
    }
    if !is_bundle(header) {
        return Err(BundleError::BadMagic);
    }
    let word = |at| u32_at(header, at).ok_or(BundleError::Truncated);
    let version = word(field::VERSION)?;
    if version != VERSION {
        return Err(BundleError::UnsupportedVersion(version));
    }
    let header_len = word(field::HEADER_LEN)?;
    if header_len as usize != HEADER_LEN {
        return Err(BundleError::BadHeaderLength(header_len));
    }
    let part = |at: usize, what: &'static str| -> Result<Range<usize>, BundleError> {
        let bad = BundleError::BadPart(what);
        let offset = u64_at(header, at).ok_or(bad)?;
        let length = u64_at(header, at + 8).ok_or(bad)?;
        let start = usize::try_from(offset).map_err(|_| bad)?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| start.checked_add(l))
            .ok_or(bad)?;
        if end > len || start < HEADER_LEN || !start.is_multiple_of(PART_ALIGN) {
            return Err(bad);
        }
        Ok(start..end)
    };
    let kernel = part(field::KERNEL, "kernel")?;
    if kernel.is_empty() {
        return Err(BundleError::EmptyKernel);
    }
    let initrd = part(field::INITRD, "initrd")?;
    let command_line = part(field::COMMAND_LINE, "command line")?;
    Ok(Bundle {
        kernel,
        initrd: (!initrd.is_empty()).then_some(initrd),
        command_line,
    })
}

/// Builds a bundle (host tools).
pub fn build(kernel: &[u8], initrd: Option<&[u8]>, command_line: &str) -> Vec<u8> {
    let mut out = alloc::vec![0u8; HEADER_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[field::VERSION..field::VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
    out[field::HEADER_LEN..field::HEADER_LEN + 4]
        .copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    let parts = [
        (field::KERNEL, kernel),
        (field::INITRD, initrd.unwrap_or(&[])),
        (field::COMMAND_LINE, command_line.as_bytes()),
    ];
    for (at, bytes) in parts {
        let start = out.len().next_multiple_of(PART_ALIGN);
        out.resize(start, 0);
        out.extend_from_slice(bytes);
        out[at..at + 8].copy_from_slice(&(start as u64).to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_bundle_parses_back_to_its_parts() {
        let kernel = [0xaa; 5000];
        let initrd = [0xbb; 10];
        let bytes = build(&kernel, Some(&initrd), "console=ttyS0");
        let bundle = parse(&bytes[..HEADER_LEN], bytes.len()).unwrap();
        assert_eq!(&bytes[bundle.kernel.clone()], &kernel);
        assert_eq!(&bytes[bundle.initrd.clone().unwrap()], &initrd);
        assert_eq!(&bytes[bundle.command_line.clone()], b"console=ttyS0");
        for start in [bundle.kernel.start, bundle.initrd.unwrap().start] {
            assert_eq!(start % PART_ALIGN, 0);
        }
    }

    #[test]
    fn no_initrd_parses_as_none() {
        let bytes = build(&[1], None, "");
        let bundle = parse(&bytes, bytes.len()).unwrap();
        assert_eq!(bundle.initrd, None);
        assert!(bundle.command_line.is_empty());
    }

    #[test]
    fn damaged_headers_are_refused() {
        let good = build(&[1; 100], Some(&[2; 100]), "x");
        let len = good.len();
        assert_eq!(parse(&good[..10], len), Err(BundleError::Truncated));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(parse(&bad, len), Err(BundleError::BadMagic));
        let mut bad = good.clone();
        bad[field::VERSION] = 2;
        assert_eq!(parse(&bad, len), Err(BundleError::UnsupportedVersion(2)));
        let mut bad = good.clone();
        bad[field::HEADER_LEN] = 63;
        assert_eq!(parse(&bad, len), Err(BundleError::BadHeaderLength(63)));
        // The bundle cut short: the command line runs past it.
        assert_eq!(
            parse(&good, len - 1),
            Err(BundleError::BadPart("command line"))
        );
        // Lengths and offsets that overflow, or point into the header, or off alignment.
        for (at, value) in [
            (field::KERNEL + 8, u64::MAX),
            (field::INITRD, u64::MAX),
            (field::KERNEL, 0),
            (field::KERNEL, 4097),
        ] {
            let mut bad = good.clone();
            bad[at..at + 8].copy_from_slice(&value.to_le_bytes());
            assert!(matches!(parse(&bad, len), Err(BundleError::BadPart(_))));
        }
        let mut bad = good.clone();
        bad[field::KERNEL + 8..field::KERNEL + 16].fill(0);
        assert_eq!(parse(&bad, len), Err(BundleError::EmptyKernel));
    }
}

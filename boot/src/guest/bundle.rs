//! A guest bundle (`abi::guest_bundle`: kernel, initrd, command line) as the host staged it
//! in guest RAM, located part by part: the header is checked against the staged size, the
//! command line copied out, and the kernel and initrd left where they lie for the
//! architecture's loader.

use alloc::vec::Vec;

use abi::guest_bundle::{self, BundleError};

use super::ram;

/// The staged bundle's parts, as guest-physical (start, end) ranges.
pub struct Staged {
    pub kernel: (u64, u64),
    pub initrd: Option<(u64, u64)>,
    pub command_line: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
pub enum StagedError {
    OutsideRam,
    Bundle(BundleError),
    /// A command line of this many bytes, longer than the loader takes.
    CommandLineTooLong(usize),
}

/// Reads the bundle staged at `address` (`size` bytes), with a command line of at most
/// `max_command_line` bytes; `Ok(None)` if the payload is not a bundle.
pub fn read(
    address: u64,
    size: u64,
    max_command_line: usize,
) -> Result<Option<Staged>, StagedError> {
    address.checked_add(size).ok_or(StagedError::OutsideRam)?;
    let mut head = [0u8; guest_bundle::HEADER_LEN];
    let head_len = head.len().min(size as usize);
    ram::load_from(address, &mut head[..head_len]).map_err(|_| StagedError::OutsideRam)?;
    if !guest_bundle::is_bundle(&head) {
        return Ok(None);
    }
    let len = usize::try_from(size).map_err(|_| StagedError::OutsideRam)?;
    let bundle = guest_bundle::parse(&head, len).map_err(StagedError::Bundle)?;
    let at = |r: &core::ops::Range<usize>| (address + r.start as u64, address + r.end as u64);
    if bundle.command_line.len() > max_command_line {
        return Err(StagedError::CommandLineTooLong(bundle.command_line.len()));
    }
    let mut command_line = alloc::vec![0u8; bundle.command_line.len()];
    ram::load_from(at(&bundle.command_line).0, &mut command_line)
        .map_err(|_| StagedError::OutsideRam)?;
    Ok(Some(Staged {
        kernel: at(&bundle.kernel),
        initrd: bundle.initrd.as_ref().map(at),
        command_line,
    }))
}

//! A flattened device tree reader that never panics (Devicetree Specification v0.4, ch. 5).
//!
//! Written here rather than taken from the `fdt` crate: that crate panics on malformed blobs
//! (missing /memory, bad tokens), and the blob comes from the loader, which we do not trust.
//! Every offset is checked; a malformed blob is an error.

const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
/// Deepest nesting we follow; real trees are 4-5 deep.
pub const MAX_DEPTH: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

fn be32(bytes: &[u8], at: usize) -> Result<u32, Malformed> {
    let b = bytes
        .get(at..at.checked_add(4).ok_or(Malformed)?)
        .ok_or(Malformed)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A validated blob.
#[derive(Clone, Copy)]
pub struct Fdt<'a> {
    structure: &'a [u8],
    strings: &'a [u8],
    /// From the memory reservation block to the end of the blob; its end is the zero entry.
    reservations: &'a [u8],
    pub total_size: usize,
}

/// One step of a depth-first walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    Begin(&'a str),
    Property { name: &'a str, value: &'a [u8] },
    End,
}

impl<'a> Fdt<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self, Malformed> {
        if be32(bytes, 0)? != MAGIC {
            return Err(Malformed);
        }
        let total_size = be32(bytes, 4)? as usize;
        // A compacted copy (see `used_size`) may be shorter than total_size: every block is
        // bounds-checked against what is actually here.
        let bytes = &bytes[..total_size.min(bytes.len())];
        let off_struct = be32(bytes, 8)? as usize;
        let off_strings = be32(bytes, 12)? as usize;
        let off_reservations = be32(bytes, 16)? as usize;
        let size_strings = be32(bytes, 32)? as usize;
        let size_struct = be32(bytes, 36)? as usize;
        let structure = bytes
            .get(off_struct..off_struct.checked_add(size_struct).ok_or(Malformed)?)
            .ok_or(Malformed)?;
        let strings = bytes
            .get(off_strings..off_strings.checked_add(size_strings).ok_or(Malformed)?)
            .ok_or(Malformed)?;
        let reservations = bytes.get(off_reservations..).ok_or(Malformed)?;
        Ok(Self {
            structure,
            strings,
            reservations,
            total_size,
        })
    }

    /// The memory reservation block's entries, (address, size) (spec §5.3): memory the
    /// loader keeps for itself. Ends at the zero entry, which must be inside the blob.
    pub fn reservations(&self, mut visit: impl FnMut(u64, u64)) -> Result<(), Malformed> {
        let be64 = |at| {
            Ok::<u64, Malformed>(
                (u64::from(be32(self.reservations, at)?) << 32)
                    | u64::from(be32(self.reservations, at + 4)?),
            )
        };
        let mut at = 0;
        loop {
            let (address, size) = (be64(at)?, be64(at + 8)?);
            if address == 0 && size == 0 {
                return Ok(());
            }
            visit(address, size);
            at += 16;
        }
    }

    /// Walks the structure block, calling `visit` for each token. Stops at the first error.
    pub fn walk(&self, mut visit: impl FnMut(Token<'a>)) -> Result<(), Malformed> {
        let s = self.structure;
        let mut at = 0;
        let mut depth = 0usize;
        loop {
            let token = be32(s, at)?;
            at += 4;
            match token {
                BEGIN_NODE => {
                    let name = c_str(s, at)?;
                    at = (at + name.len() + 1).next_multiple_of(4);
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Malformed);
                    }
                    visit(Token::Begin(name));
                }
                END_NODE => {
                    depth = depth.checked_sub(1).ok_or(Malformed)?;
                    visit(Token::End);
                }
                PROP => {
                    let len = be32(s, at)? as usize;
                    let name_offset = be32(s, at + 4)? as usize;
                    at += 8;
                    let value = s
                        .get(at..at.checked_add(len).ok_or(Malformed)?)
                        .ok_or(Malformed)?;
                    at = (at + len).next_multiple_of(4);
                    let name = c_str(self.strings, name_offset)?;
                    visit(Token::Property { name, value });
                }
                NOP => {}
                END if depth == 0 => return Ok(()),
                _ => return Err(Malformed),
            }
        }
    }
}

/// Length of the header.
pub const HEADER_SIZE: usize = 40;

/// How many bytes from the start of a blob cover its header, reservation map, structure and
/// strings blocks: what must be copied to parse it. QEMU's blobs declare 1 MiB in total_size
/// but use a few KiB.
pub fn used_size(header: &[u8; HEADER_SIZE]) -> Option<usize> {
    if be32(header, 0).ok()? != MAGIC {
        return None;
    }
    let field = |at| be32(header, at).ok().map(|v| v as usize);
    let total = field(4)?;
    let structure_end = field(8)?.checked_add(field(36)?)?;
    let strings_end = field(12)?.checked_add(field(32)?)?;
    // The reservation map ends with a zero entry; 16 bytes past its start is its minimum.
    let rsvmap_end = field(16)?.checked_add(16)?;
    let used = structure_end
        .max(strings_end)
        .max(rsvmap_end)
        .max(HEADER_SIZE);
    (used <= total).then_some(used)
}

/// The NUL-terminated UTF-8 string at `bytes[at..]`.
fn c_str(bytes: &[u8], at: usize) -> Result<&str, Malformed> {
    let tail = bytes.get(at..).ok_or(Malformed)?;
    let len = tail.iter().position(|&b| b == 0).ok_or(Malformed)?;
    core::str::from_utf8(&tail[..len]).map_err(|_| Malformed)
}

/// A property value as a string (without its NUL).
pub fn as_str(value: &[u8]) -> Option<&str> {
    let value = value.strip_suffix(&[0]).unwrap_or(value);
    core::str::from_utf8(value).ok()
}

/// Whether a `compatible` value (NUL-separated list) names `want`.
pub fn is_compatible(value: &[u8], want: &str) -> bool {
    value.split(|&b| b == 0).any(|s| s == want.as_bytes())
}

/// Cell `index` of a property value.
pub fn cell(value: &[u8], index: usize) -> Option<u32> {
    be32(value, index.checked_mul(4)?).ok()
}

/// A number of `cells` cells (1 or 2) starting at cell `index`.
pub fn cells(value: &[u8], index: usize, cells: usize) -> Option<u64> {
    match cells {
        1 => cell(value, index).map(u64::from),
        2 => Some((u64::from(cell(value, index)?) << 32) | u64::from(cell(value, index + 1)?)),
        _ => None,
    }
}

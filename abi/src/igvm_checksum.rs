//! The IGVM file's checksum (IGVM specification, `IGVM_FIXED_HEADER.Checksum`): a CRC32 of the
//! fixed header, taken with its checksum field zero, followed by the variable headers. Loaders
//! check it; tools that change a file on purpose (the fuzz-like tests that flip bytes so the
//! parser, not the checksum, meets them) reseal it.

/// Bytes 20..24 of the fixed header hold the checksum.
const CHECKSUM: core::ops::Range<usize> = 20..24;
/// IGVM_FIXED_HEADER is 24 bytes; version 2 (IGVM_FIXED_HEADER_V2) adds architecture and page
/// size.
const FIXED_V1: usize = 24;
const FIXED_V2: usize = 32;

/// The checksum `file`'s header calls for; `None` if the header does not locate its variable
/// headers inside the file.
pub fn compute(file: &[u8]) -> Option<u32> {
    let field = |at: usize| {
        let bytes = file.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    let (version, offset, size) = (field(4)?, field(8)?, field(12)?);
    let fixed_size = if version >= 2 { FIXED_V2 } else { FIXED_V1 };
    let fixed = file.get(..fixed_size)?;
    let variable = file.get(offset..offset.checked_add(size)?)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&fixed[..CHECKSUM.start]);
    crc.update(&[0; 4]);
    crc.update(&fixed[CHECKSUM.end..]);
    crc.update(variable);
    Some(crc.finalize())
}

/// Stores the checksum `file`'s header calls for; leaves a file whose header does not locate
/// its variable headers as it is.
pub fn reseal(file: &mut [u8]) {
    if let Some(checksum) = compute(file) {
        file[CHECKSUM].copy_from_slice(&checksum.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 header whose variable headers are the CRC32 check string "123456789".
    fn file() -> [u8; 33] {
        let mut file = [0u8; 33];
        file[4..8].copy_from_slice(&1u32.to_le_bytes());
        file[8..12].copy_from_slice(&24u32.to_le_bytes());
        file[12..16].copy_from_slice(&9u32.to_le_bytes());
        file[24..].copy_from_slice(b"123456789");
        file
    }

    #[test]
    fn the_checksum_covers_the_zeroed_header_and_the_variable_headers() {
        let mut file = file();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&file[..24]);
        crc.update(b"123456789");
        let expected = crc.finalize();
        file[20..24].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            compute(&file),
            Some(expected),
            "the stored checksum does not count"
        );
        reseal(&mut file);
        assert_eq!(file[20..24], expected.to_le_bytes());
        // CRC32 (IEEE) of "123456789" alone is the standard check value.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn headers_pointing_outside_the_file_are_left_alone() {
        let mut file = file();
        file[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let before = file;
        reseal(&mut file);
        assert_eq!(file, before);
        assert_eq!(compute(&file[..10]), None);
    }
}

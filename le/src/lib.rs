//! Little-endian field access on byte buffers that may be short or hostile (boot tables,
//! hypercall input, ELF files): reads return `None` past the end, writes report whether they
//! fit, and nothing here panics whatever the offset.

#![no_std]

pub fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Writes `value` at `at`; returns false (writing nothing) if it does not fit.
pub fn put(b: &mut [u8], at: usize, value: &[u8]) -> bool {
    match at
        .checked_add(value.len())
        .and_then(|end| b.get_mut(at..end))
    {
        Some(dst) => {
            dst.copy_from_slice(value);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_fields_and_nothing_past_the_end() {
        let b = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        assert_eq!(u16_at(&b, 6), Some(0x0807));
        assert_eq!(u32_at(&b, 0), Some(0x0403_0201));
        assert_eq!(u64_at(&b, 0), Some(0x0807_0605_0403_0201));
        assert_eq!(u8_at(&b, 8), None);
        assert_eq!(u16_at(&b, 7), None);
        assert_eq!(u64_at(&b, 1), None);
        assert_eq!(u32_at(&b, usize::MAX - 1), None, "offset overflow");
    }

    #[test]
    fn put_writes_only_what_fits() {
        let mut b = [0u8; 4];
        assert!(put(&mut b, 2, &[0xaa, 0xbb]));
        assert_eq!(b, [0, 0, 0xaa, 0xbb]);
        assert!(!put(&mut b, 3, &[1, 2]));
        assert!(!put(&mut b, usize::MAX, &[1]));
        assert_eq!(b, [0, 0, 0xaa, 0xbb]);
    }
}

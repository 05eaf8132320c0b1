//! Big-endian marshalling of TPM 2.0 structures (Part 1 §18.4 "Canonical byte order":
//! every integer is big-endian; Part 2 §4 for the TPM2B "size then bytes" form).
//!
//! [`Reader`] never reads past its slice: every read is bounds-checked and running out is
//! TPM_RC_INSUFFICIENT, which the caller numbers with the handle, session or parameter
//! being read (Part 3 §5.8.2 "Unmarshaling Errors").

use alloc::vec::Vec;

use super::rc::{self, Rc};

/// A cursor over bytes a caller sent.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next `n` octets.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Rc> {
        if n > self.buf.len() {
            return Err(rc::INSUFFICIENT);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Rc> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, Rc> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Rc> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, Rc> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, Rc> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A TPM2B: a UINT16 size, then that many octets. A size over `max` (the structure's
    /// buffer bound) is TPM_RC_SIZE, checked before the octets are looked for.
    pub fn tpm2b(&mut self, max: usize) -> Result<&'a [u8], Rc> {
        let size = usize::from(self.u16()?);
        if size > max {
            return Err(rc::SIZE);
        }
        self.bytes(size)
    }

    /// The octets not read yet, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Splits off the next `n` octets as a reader of their own.
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>, Rc> {
        Ok(Reader::new(self.bytes(n)?))
    }
}

/// Output being built for a response.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }

    /// A TPM2B. Every TPM2B this TPM produces is far below 64 KiB; a longer slice is cut at
    /// 65535 octets so the size field and the data always agree.
    pub fn tpm2b(&mut self, data: &[u8]) {
        let len = data.len().min(usize::from(u16::MAX));
        self.u16(len as u16);
        self.bytes(&data[..len]);
    }

    /// A UINT32 count, for the TPML lists (Part 2 §10.9).
    pub fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_big_endian_and_bounded() {
        let mut r = Reader::new(&[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde]);
        assert_eq!(r.u16(), Ok(0x1234));
        assert_eq!(r.u32(), Ok(0x5678_9abc));
        assert_eq!(r.u32(), Err(rc::INSUFFICIENT), "3 octets left, not 4");
        // A failed read consumes nothing.
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u8(), Ok(0xde));
        assert_eq!(r.u8(), Err(rc::INSUFFICIENT));
        assert!(r.is_empty());
    }

    #[test]
    fn tpm2b_checks_the_bound_before_the_data() {
        assert_eq!(
            Reader::new(&[0, 2, 0xaa, 0xbb]).tpm2b(2),
            Ok(&[0xaa, 0xbb][..])
        );
        assert_eq!(Reader::new(&[0, 3, 0xaa]).tpm2b(2), Err(rc::SIZE));
        assert_eq!(Reader::new(&[0, 2, 0xaa]).tpm2b(2), Err(rc::INSUFFICIENT));
        assert_eq!(Reader::new(&[0xff, 0xff]).tpm2b(48), Err(rc::SIZE));
        assert_eq!(Reader::new(&[0]).tpm2b(48), Err(rc::INSUFFICIENT));
        assert_eq!(Reader::new(&[0, 0]).tpm2b(0), Ok(&[][..]));
    }

    #[test]
    fn writer_round_trips() {
        let mut w = Writer::new();
        w.u8(1);
        w.u16(0x0203);
        w.u32(0x0405_0607);
        w.u64(0x0809_0a0b_0c0d_0e0f);
        w.tpm2b(&[0xee]);
        w.count(2);
        assert_eq!(
            w.as_slice(),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 0xee, 0, 0, 0, 2]
        );
        let mut r = Reader::new(w.as_slice());
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x0203));
        assert_eq!(r.u32(), Ok(0x0405_0607));
        assert_eq!(r.u64(), Ok(0x0809_0a0b_0c0d_0e0f));
        assert_eq!(r.tpm2b(1), Ok(&[0xee][..]));
        assert_eq!(r.u32(), Ok(2));
    }
}

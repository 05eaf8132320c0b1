//! An in-memory ring of recent log text, for diagnostics to read after the fact.
//!
//! Bytes go in as written; when full, the oldest bytes are overwritten and the reader skips
//! to the next whole line, so what it returns always starts at a line boundary.

pub struct LogRing<const N: usize> {
    bytes: [u8; N],
    /// Total bytes ever written; the ring holds the last `min(written, N)`.
    written: u64,
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogRing<N> {
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            written: 0,
        }
    }

    pub fn write(&mut self, data: &[u8]) {
        // Only the last N bytes of a long write can survive.
        let skipped = data.len().saturating_sub(N);
        self.written += skipped as u64;
        let data = &data[skipped..];
        let start = (self.written % N as u64) as usize;
        let first = data.len().min(N - start);
        self.bytes[start..start + first].copy_from_slice(&data[..first]);
        self.bytes[..data.len() - first].copy_from_slice(&data[first..]);
        self.written += data.len() as u64;
    }

    /// Total bytes ever written (including overwritten ones).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Calls `out` with the retained text, oldest first, in at most two slices.
    pub fn read(&self, mut out: impl FnMut(&[u8])) {
        let held = (self.written as usize).min(N);
        let start = ((self.written - held as u64) % N as u64) as usize;
        let (a, b) = if start + held <= N {
            (&self.bytes[start..start + held], &[][..])
        } else {
            (&self.bytes[start..], &self.bytes[..held - (N - start)])
        };
        // After a wrap the first line is partial: skip to just after its newline.
        let skip = if self.written as usize > N {
            a.iter()
                .chain(b)
                .position(|&c| c == b'\n')
                .map_or(held, |p| p + 1)
        } else {
            0
        };
        let (a, b) = if skip <= a.len() {
            (&a[skip..], b)
        } else {
            (&[][..], &b[skip - a.len()..])
        };
        if !a.is_empty() {
            out(a);
        }
        if !b.is_empty() {
            out(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents<const N: usize>(r: &LogRing<N>) -> String {
        let mut s = Vec::new();
        r.read(|b| s.extend_from_slice(b));
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn holds_everything_until_full() {
        let mut r = LogRing::<64>::new();
        r.write(b"one\n");
        r.write(b"two\n");
        assert_eq!(contents(&r), "one\ntwo\n");
    }

    #[test]
    fn wrapping_drops_oldest_lines_whole() {
        let mut r = LogRing::<16>::new();
        r.write(b"first line\n");
        r.write(b"second\n");
        r.write(b"third\n");
        // 24 bytes into 16: the ring holds "ne\nsecond\nthird\n"; the partial line goes.
        assert_eq!(contents(&r), "second\nthird\n");
        assert_eq!(r.written(), 24);
    }

    #[test]
    fn a_write_longer_than_the_ring_keeps_its_tail() {
        let mut r = LogRing::<8>::new();
        r.write(b"abcdefghij\nxyz\n");
        assert_eq!(contents(&r), "xyz\n");
    }
}

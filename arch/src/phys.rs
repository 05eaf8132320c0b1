//! Reading boot structures that the loader left in physical memory.

/// Read access to physical memory, used to parse structures the loader placed there
/// (PVH start info, ACPI tables, the device tree). Host tests back it with a buffer.
pub trait PhysRead {
    /// Copies `buf.len()` bytes from physical address `pa`, or returns `None` if any byte of
    /// the range is not readable.
    fn read(&self, pa: u64, buf: &mut [u8]) -> Option<()>;

    fn read_u8(&self, pa: u64) -> Option<u8> {
        let mut b = [0; 1];
        self.read(pa, &mut b)?;
        Some(b[0])
    }

    fn read_u16(&self, pa: u64) -> Option<u16> {
        let mut b = [0; 2];
        self.read(pa, &mut b)?;
        Some(u16::from_le_bytes(b))
    }

    fn read_u32(&self, pa: u64) -> Option<u32> {
        let mut b = [0; 4];
        self.read(pa, &mut b)?;
        Some(u32::from_le_bytes(b))
    }

    fn read_u64(&self, pa: u64) -> Option<u64> {
        let mut b = [0; 8];
        self.read(pa, &mut b)?;
        Some(u64::from_le_bytes(b))
    }
}

/// Reads limited to ranges the memory map lists (RAM or reserved), so a hostile pointer in
/// a firmware table cannot make Parapet read device registers, whose reads have side effects.
pub struct ListedOnly<'a, R> {
    pub map: &'a crate::memory_map::MemoryMap,
    pub inner: R,
}

impl<R: PhysRead> PhysRead for ListedOnly<'_, R> {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Option<()> {
        let end = pa.checked_add(buf.len() as u64)?;
        if !self
            .map
            .regions()
            .iter()
            .any(|r| r.start <= pa && end <= r.end)
        {
            return None;
        }
        self.inner.read(pa, buf)
    }
}

/// Physical memory reached through the identity map the firmware runs on.
#[cfg(target_os = "none")]
pub struct IdentityMapped {
    /// Highest physical address (exclusive) that the boot page tables map.
    pub limit: u64,
}

#[cfg(target_os = "none")]
impl PhysRead for IdentityMapped {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Option<()> {
        let end = pa.checked_add(buf.len() as u64)?;
        if pa == 0 || end > self.limit {
            return None;
        }
        // SAFETY: [pa, end) lies below `limit`, which the boot tables identity-map as readable
        // memory, and `buf` is a distinct Rust buffer. The copy is volatile-free on purpose:
        // these structures are read once into our own copies.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::test_phys::Buffer;
    use super::*;
    use crate::memory_map::{MemoryMap, RegionKind};

    #[test]
    fn listed_only_refuses_reads_outside_the_map_and_across_its_edges() {
        let mut map = MemoryMap::new();
        map.push(0x1000, 0x1000, RegionKind::Ram);
        map.push(0x3000, 0x1000, RegionKind::Reserved);
        let mem = ListedOnly {
            map: &map,
            inner: Buffer::new(0, 0x10000),
        };
        assert!(mem.read_u64(0x1000).is_some());
        assert!(
            mem.read_u64(0x3ff8).is_some(),
            "reserved regions are readable"
        );
        assert!(
            mem.read_u64(0x1ffc).is_none(),
            "straddles the end of a region"
        );
        assert!(
            mem.read_u64(0x2000).is_none(),
            "a hole: maybe device registers"
        );
        assert!(mem.read_u64(u64::MAX - 3).is_none());
    }
}

#[cfg(test)]
pub(crate) mod test_phys {
    use super::PhysRead;

    /// A window of fake physical memory starting at `base`.
    pub struct Buffer {
        pub base: u64,
        pub bytes: Vec<u8>,
    }

    impl Buffer {
        pub fn new(base: u64, size: usize) -> Self {
            Self {
                base,
                bytes: vec![0; size],
            }
        }

        pub fn put(&mut self, pa: u64, data: &[u8]) {
            let at = (pa - self.base) as usize;
            self.bytes[at..at + data.len()].copy_from_slice(data);
        }
    }

    impl PhysRead for Buffer {
        fn read(&self, pa: u64, buf: &mut [u8]) -> Option<()> {
            let at = usize::try_from(pa.checked_sub(self.base)?).ok()?;
            let src = self.bytes.get(at..at.checked_add(buf.len())?)?;
            buf.copy_from_slice(src);
            Some(())
        }
    }
}

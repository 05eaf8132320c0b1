//! Guest RAM: one anonymous mapping, reached only through bounds-checked copies.

use crate::error::VmmError;

pub struct GuestMemory {
    base: *mut u8,
    size: u64,
}

// SAFETY: the mapping is plain memory owned by this struct; concurrent guest access through
// KVM is the nature of guest RAM, and our own accesses are byte copies.
unsafe impl Send for GuestMemory {}
// SAFETY: as above; `write`/`read` take no references into the mapping that outlive the call.
unsafe impl Sync for GuestMemory {}

impl GuestMemory {
    /// Maps `size` bytes of zeroed anonymous memory.
    pub fn new(size: u64) -> Result<Self, VmmError> {
        let len = usize::try_from(size).map_err(|_| {
            VmmError::Mmap(size, std::io::Error::from(std::io::ErrorKind::InvalidInput))
        })?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(VmmError::Mmap(size, std::io::Error::last_os_error()));
        }
        Ok(Self {
            base: base.cast(),
            size,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Host address of the mapping, for KVM's memory slot.
    pub fn host_address(&self) -> u64 {
        self.base as u64
    }

    fn check(&self, gpa: u64, len: usize) -> Result<usize, VmmError> {
        let end = gpa
            .checked_add(len as u64)
            .ok_or(VmmError::OutsideRam { gpa })?;
        if end > self.size {
            return Err(VmmError::OutsideRam { gpa });
        }
        Ok(gpa as usize)
    }

    pub fn write(&self, gpa: u64, bytes: &[u8]) -> Result<(), VmmError> {
        let at = self.check(gpa, bytes.len())?;
        // SAFETY: [at, at + len) lies inside the mapping (checked); the source is a distinct
        // host buffer.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(at), bytes.len()) };
        Ok(())
    }

    pub fn read(&self, gpa: u64, bytes: &mut [u8]) -> Result<(), VmmError> {
        let at = self.check(gpa, bytes.len())?;
        // SAFETY: as in `write`, in the other direction.
        unsafe {
            core::ptr::copy_nonoverlapping(self.base.add(at), bytes.as_mut_ptr(), bytes.len())
        };
        Ok(())
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; no references into it remain.
        unsafe { libc::munmap(self.base.cast(), self.size as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_bounds_checked() {
        let m = GuestMemory::new(0x4000).unwrap();
        m.write(0x3ff8, &[1; 8]).unwrap();
        let mut back = [0u8; 8];
        m.read(0x3ff8, &mut back).unwrap();
        assert_eq!(back, [1; 8]);
        assert!(matches!(
            m.write(0x3ff9, &[1; 8]),
            Err(VmmError::OutsideRam { gpa: 0x3ff9 })
        ));
        assert!(m.write(u64::MAX, &[1]).is_err());
    }
}

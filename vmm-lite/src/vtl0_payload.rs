//! The VTL0 guest given with `--vtl0 FILE` (an ELF, or a Linux guest bundle): staged at the top of guest RAM, where the
//! paravisor finds it through its command line (`parapet.vtl0=ADDRESS,SIZE`), copies it out
//! and loads it. vmm-lite does not interpret the file: what VTL0 runs is the paravisor's call.

use crate::error::VmmError;
use crate::guest_memory::GuestMemory;

/// A bound that keeps a mistaken file from being read whole: a Linux guest bundle (kernel
/// and initrd, which the paravisor reads in place) fits easily. The paravisor sets its own,
/// lower bound for ELF payloads, which it copies into its heap.
pub const MAX_PAYLOAD: u64 = 1 << 30;
const PAGE: u64 = 4096;

pub struct Payload {
    bytes: Vec<u8>,
    address: u64,
}

impl Payload {
    /// Reads `path` and places it, page-aligned, at the top of `ram` bytes of RAM.
    pub fn read(path: &str, ram: u64) -> Result<Self, VmmError> {
        let bad = |reason: String| VmmError::BadPayload {
            path: path.into(),
            reason,
        };
        let error = |source| VmmError::ReadFile {
            path: path.into(),
            source,
        };
        let len = std::fs::metadata(path).map_err(error)?.len();
        if len == 0 || len > MAX_PAYLOAD {
            return Err(bad(format!(
                "it is {len} bytes; a VTL0 payload is 1 to {MAX_PAYLOAD} bytes"
            )));
        }
        let bytes = std::fs::read(path).map_err(error)?;
        let address = ram
            .checked_sub(bytes.len() as u64)
            .map(|a| a & !(PAGE - 1))
            .ok_or_else(|| bad("it does not fit in guest RAM".into()))?;
        Ok(Self { bytes, address })
    }

    /// The paravisor's option naming the staged payload.
    pub fn option(&self) -> String {
        format!("parapet.vtl0={:#x},{:#x}", self.address, self.bytes.len())
    }

    /// Copies the payload into RAM, unless that would cover part of `reserved` (start, size)
    /// — the paravisor's own memory.
    pub fn stage(&self, memory: &GuestMemory, reserved: &[(u64, u64)]) -> Result<(), VmmError> {
        let end = self.address + self.bytes.len() as u64;
        if let Some(&(start, size)) = reserved
            .iter()
            .find(|&&(start, size)| start < end && self.address < start.saturating_add(size))
        {
            return Err(VmmError::BadPayload {
                path: format!("the payload at {:#x}", self.address),
                reason: format!(
                    "it would cover the paravisor's memory at {start:#x}..{:#x}; give more --mem",
                    start.saturating_add(size)
                ),
            });
        }
        memory.write(self.address, &self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: usize) -> (tempdir::Dir, String) {
        let dir = tempdir::Dir::new();
        let path = dir.path.join("guest.elf");
        std::fs::write(&path, vec![0x5a; len]).unwrap();
        let path = path.display().to_string();
        (dir, path)
    }

    /// A directory removed when dropped.
    mod tempdir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Self {
                static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path = std::env::temp_dir()
                    .join(format!("vmm-lite-payload-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&path).unwrap();
                Self { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[test]
    fn payloads_go_page_aligned_to_the_top_of_ram_and_are_named_on_the_command_line() {
        let (_dir, path) = file(5000);
        let memory = GuestMemory::new(1 << 20).unwrap();
        let p = Payload::read(&path, memory.size()).unwrap();
        assert_eq!(p.option(), "parapet.vtl0=0xfe000,0x1388");
        p.stage(&memory, &[(0x1000, 0x1000)]).unwrap();
        let mut staged = [0u8; 4];
        memory.read(0xfe000, &mut staged).unwrap();
        assert_eq!(staged, [0x5a; 4]);
        assert!(
            p.stage(&memory, &[(0xff000, 0x1000)]).is_err(),
            "covers the paravisor"
        );
    }

    #[test]
    fn empty_huge_and_missing_files_are_refused() {
        let (_dir, empty) = file(0);
        assert!(Payload::read(&empty, 1 << 20).is_err());
        // Sparse: the size is refused before anything is read.
        let (_dir2, big) = file(0);
        std::fs::File::options()
            .write(true)
            .open(&big)
            .and_then(|f| f.set_len(MAX_PAYLOAD + 1))
            .unwrap();
        assert!(Payload::read(&big, 4 << 30).is_err());
        assert!(Payload::read("/nonexistent/guest.elf", 1 << 20).is_err());
        let (_dir3, small) = file(100);
        assert!(Payload::read(&small, 10).is_err(), "larger than RAM");
    }
}

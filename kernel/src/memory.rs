//! The kernel's physical memory: the frame allocator and the heap built on it.

use spin::Mutex;

use crate::frame_alloc::FrameAllocator;
#[cfg(target_os = "none")]
use crate::frame_alloc::FRAME_SIZE;

/// Frames of the paravisor's own region.
pub static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::new());

#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfFrames {
    pub wanted: u64,
}

impl core::fmt::Display for OutOfFrames {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "no {} KiB run of free frames left", self.wanted / 1024)
    }
}

/// Takes `size` bytes of frames for the heap and makes it the global allocator's arena.
///
/// # Safety
/// Call once. Frames are reached through the identity map, which must cover them.
#[cfg(target_os = "none")]
pub unsafe fn init_heap(size: u64) -> Result<(), OutOfFrames> {
    let base = FRAMES
        .lock()
        .allocate(size, FRAME_SIZE)
        .ok_or(OutOfFrames { wanted: size })?;
    // SAFETY: the frames were just taken from the allocator, so nothing else uses them, and the
    // identity map makes `base` their address; the caller guarantees this runs once.
    unsafe { HEAP.lock().init(base as *mut u8, size as usize) };
    Ok(())
}

/// Heap bytes (in use, total).
pub fn heap_usage() -> (usize, usize) {
    #[cfg(target_os = "none")]
    {
        let heap = HEAP.lock();
        (heap.used(), heap.size())
    }
    #[cfg(not(target_os = "none"))]
    {
        (0, 0)
    }
}

/// Frame bytes (in use, managed).
pub fn frame_usage() -> (u64, u64) {
    let frames = FRAMES.lock();
    (
        frames.total_bytes() - frames.free_bytes(),
        frames.total_bytes(),
    )
}

/// Allocates one zeroed frame.
#[cfg(target_os = "none")]
pub fn allocate_zeroed_frame() -> Result<u64, OutOfFrames> {
    allocate_filled_frames(1, 0)
}

/// Allocates `count` physically contiguous frames with every byte `fill` (the hardware's
/// multi-page structures: SVM's I/O and MSR permission maps).
#[cfg(target_os = "none")]
pub fn allocate_filled_frames(count: u64, fill: u8) -> Result<u64, OutOfFrames> {
    let size = count * FRAME_SIZE;
    let pa = FRAMES
        .lock()
        .allocate(size, FRAME_SIZE)
        .ok_or(OutOfFrames { wanted: size })?;
    // SAFETY: the frames are ours alone and identity-mapped.
    unsafe { core::ptr::write_bytes(pa as *mut u8, fill, size as usize) };
    Ok(pa)
}

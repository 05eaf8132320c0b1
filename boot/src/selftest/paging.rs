//! Page tables on the live address space: map, unmap, protect, and the faults they must cause.

use alloc::boxed::Box;

use arch::paging::{MapFlags, PageSize, PAGE_2M, PAGE_4K};
use kernel::address_space::AddressSpace;
use kernel::ensure;
use kernel::executor::on_cpu;
use kernel::memory::FRAMES;
use kernel::selftest::{TestFuture, TestResult};

use crate::machine::probe;
use crate::KERNEL_SPACE;

/// Far from anything the identity map covers.
const TEST_VA: u64 = 0x0000_7000_0000_0000;

/// Runs `body` with a fresh frame mapped at `TEST_VA` with `flags`, then unmaps and frees it.
fn with_test_page(
    flags: MapFlags,
    body: impl FnOnce(&mut AddressSpace, u64) -> TestResult,
) -> TestResult {
    let frame = kernel::memory::allocate_zeroed_frame().map_err(|e| alloc::format!("{e}"))?;
    let mut space = KERNEL_SPACE.lock();
    let space = space.as_mut().ok_or("no kernel address space")?;
    space
        .map(TEST_VA, frame, PAGE_4K, PageSize::Size4K, flags)
        .map_err(|e| alloc::format!("map: {e}"))?;
    let result = body(space, frame);
    let unmapped = space.unmap(TEST_VA, PAGE_4K);
    FRAMES.lock().free(frame, PAGE_4K);
    result?;
    unmapped.map_err(|e| alloc::format!("unmap: {e}"))
}

pub fn mapped_page_is_readable_and_writable() -> TestFuture {
    Box::pin(async {
        with_test_page(MapFlags::WRITE, |_, frame| {
            // SAFETY: TEST_VA maps a frame owned by this test only.
            unsafe { probe::write(TEST_VA + 8, 0xfeed_f00d) }
                .map_err(|f| alloc::format!("write faulted: {f:?}"))?;
            // SAFETY: the identity map reaches the same frame; nothing else uses it.
            let through_identity = unsafe { core::ptr::read_volatile((frame + 8) as *const u64) };
            ensure!(
                through_identity == 0xfeed_f00d,
                "the mapping does not reach frame {frame:#x}"
            );
            // SAFETY: as above.
            let back = unsafe { probe::read(TEST_VA + 8) }
                .map_err(|f| alloc::format!("read faulted: {f:?}"))?;
            ensure!(back == 0xfeed_f00d, "read back {back:#x}");
            Ok(())
        })
    })
}

pub fn write_to_read_only_page_faults() -> TestFuture {
    Box::pin(async {
        with_test_page(MapFlags::WRITE, |space, _| {
            space
                .protect(TEST_VA, PAGE_4K, MapFlags::empty())
                .map_err(|e| alloc::format!("protect: {e}"))?;
            // SAFETY: the page is ours; the write is expected to fault.
            match unsafe { probe::write(TEST_VA, 1) } {
                Ok(()) => Err("write to a read-only page succeeded".into()),
                Err(f) if f.is_page_fault && f.address == TEST_VA => {
                    // SAFETY: reading our own page.
                    let read = unsafe { probe::read(TEST_VA) };
                    ensure!(read == Ok(0), "read-only page not readable: {read:?}");
                    Ok(())
                }
                Err(f) => Err(alloc::format!("wrong fault: {f:?}")),
            }
        })
    })
}

pub fn access_to_unmapped_page_faults() -> TestFuture {
    Box::pin(async {
        with_test_page(MapFlags::WRITE, |_, _| Ok(()))?;
        // SAFETY: TEST_VA is unmapped now; the read is expected to fault.
        match unsafe { probe::read(TEST_VA) } {
            Ok(v) => Err(alloc::format!("read of an unmapped page returned {v:#x}")),
            Err(f) if f.is_page_fault && f.address == TEST_VA => Ok(()),
            Err(f) => Err(alloc::format!("wrong fault: {f:?}")),
        }
    })
}

pub fn two_mib_mapping_translates_and_splits_on_protect() -> TestFuture {
    Box::pin(async {
        let run = FRAMES
            .lock()
            .allocate(PAGE_2M, PAGE_2M)
            .ok_or("no 2 MiB run free")?;
        let mut guard = KERNEL_SPACE.lock();
        let space = guard.as_mut().ok_or("no kernel address space")?;
        let va = TEST_VA + PAGE_2M;
        let result = (|| {
            space
                .map(va, run, PAGE_2M, PageSize::Size2M, MapFlags::WRITE)
                .map_err(|e| alloc::format!("map: {e}"))?;
            let t = space
                .translate(va + 0x1_2345)
                .ok_or("2 MiB mapping does not translate")?;
            ensure!(
                t.pa == run + 0x1_2345 && t.size == PageSize::Size2M,
                "translation {t:?}"
            );
            // SAFETY: the run is ours; both ends are written through the 2 MiB mapping.
            unsafe {
                probe::write(va, 7).map_err(|f| alloc::format!("{f:?}"))?;
                probe::write(va + PAGE_2M - 8, 9).map_err(|f| alloc::format!("{f:?}"))?;
            }
            space
                .protect(va + PAGE_4K, PAGE_4K, MapFlags::empty())
                .map_err(|e| alloc::format!("protect: {e}"))?;
            // SAFETY: as above; the second page must now refuse writes, its neighbours not.
            unsafe {
                ensure!(
                    probe::write(va + PAGE_4K, 1).is_err(),
                    "protected 4 KiB page inside the block is writable"
                );
                probe::write(va + 2 * PAGE_4K, 3)
                    .map_err(|f| alloc::format!("neighbour: {f:?}"))?;
                ensure!(probe::read(va) == Ok(7), "split lost the first page's data");
            }
            Ok(())
        })();
        let unmapped = space.unmap(va, PAGE_2M);
        drop(guard);
        if unmapped.is_ok() {
            FRAMES.lock().free(run, PAGE_2M);
        }
        result?;
        unmapped.map_err(|e| alloc::format!("unmap: {e}"))
    })
}

pub fn kernel_text_is_not_writable() -> TestFuture {
    Box::pin(async {
        let text = kernel_text_is_not_writable as fn() -> TestFuture as usize as u64;
        // SAFETY: the write must fault; if it did not, it rewrote the same value, harmlessly.
        let original =
            unsafe { probe::read(text) }.map_err(|f| alloc::format!("text unreadable: {f:?}"))?;
        // SAFETY: as above.
        match unsafe { probe::write(text, original) } {
            Ok(()) => Err("kernel text is writable".into()),
            Err(f) if f.is_page_fault => Ok(()),
            Err(f) => Err(alloc::format!("wrong fault: {f:?}")),
        }
    })
}

pub fn exception_is_delivered_and_returns() -> TestFuture {
    Box::pin(async {
        for round in 0..3 {
            match probe::raise_exception() {
                Err(f) if f.name == probe::RAISED => {}
                other => {
                    return Err(alloc::format!(
                        "round {round}: expected {}, got {other:?}",
                        probe::RAISED
                    ))
                }
            }
        }
        Ok(())
    })
}

/// A probe write to the test's own page (which may be mapped read-only or not at all).
fn write_own_page(va: u64, value: u64) -> Result<(), probe::ProbeFault> {
    // SAFETY: `va` maps only a frame this test owns, so a successful write corrupts nothing.
    unsafe { probe::write(va, value) }
}

pub fn protection_changes_reach_every_cpu() -> TestFuture {
    Box::pin(async {
        let cpus = super::online_cpus();
        ensure!(cpus >= 2, "needs at least 2 CPUs online, have {cpus}");
        let va = TEST_VA + 4 * PAGE_2M;
        let frame = kernel::memory::allocate_zeroed_frame().map_err(|e| alloc::format!("{e}"))?;
        let space = || KERNEL_SPACE.lock();
        space()
            .as_mut()
            .ok_or("no kernel address space")?
            .map(va, frame, PAGE_4K, PageSize::Size4K, MapFlags::WRITE)
            .map_err(|e| alloc::format!("map: {e}"))?;
        let mut outcome = Ok(());
        for cpu in 1..cpus {
            let other = on_cpu(cpu).ok_or("a CPU has no executor")?;
            // The other CPU caches the writable translation by writing through it.
            let first = other
                .spawn(async move { write_own_page(va, cpu as u64) })
                .await;
            if let Err(f) = first {
                outcome = Err(alloc::format!(
                    "cpu{cpu}: write to a writable page faulted: {f:?}"
                ));
                break;
            }
            space()
                .as_mut()
                .ok_or("no kernel address space")?
                .protect(va, PAGE_4K, MapFlags::empty())
                .map_err(|e| alloc::format!("protect: {e}"))?;
            let second = other.spawn(async move { write_own_page(va, 0xbad) }).await;
            if !matches!(second, Err(f) if f.is_page_fault) {
                outcome = Err(alloc::format!(
                    "cpu{cpu} still wrote after the page became read-only: {second:?}"
                ));
                break;
            }
            space()
                .as_mut()
                .ok_or("no kernel address space")?
                .protect(va, PAGE_4K, MapFlags::WRITE)
                .map_err(|e| alloc::format!("protect: {e}"))?;
        }
        space()
            .as_mut()
            .ok_or("no kernel address space")?
            .unmap(va, PAGE_4K)
            .map_err(|e| alloc::format!("unmap: {e}"))?;
        if outcome.is_ok() {
            let other = on_cpu(1).ok_or("cpu1 has no executor")?;
            // SAFETY: the page is unmapped now; the read is expected to fault.
            let read = other.spawn(async move { unsafe { probe::read(va) } }).await;
            if !matches!(read, Err(f) if f.is_page_fault) {
                outcome = Err(alloc::format!(
                    "cpu1 still read the page after unmap: {read:?}"
                ));
            }
        }
        FRAMES.lock().free(frame, PAGE_4K);
        outcome
    })
}

//! Frame allocator and heap on real memory.

use alloc::boxed::Box;
use alloc::vec::Vec;

use kernel::ensure;
use kernel::executor::yield_now;
use kernel::frame_alloc::FRAME_SIZE;
use kernel::memory::FRAMES;
use kernel::selftest::TestFuture;

pub fn frame_allocator_hands_out_distinct_usable_frames() -> TestFuture {
    Box::pin(async {
        let before = FRAMES.lock().free_bytes();
        let frames: Vec<u64> = (0..64)
            .filter_map(|_| FRAMES.lock().allocate(FRAME_SIZE, FRAME_SIZE))
            .collect();
        ensure!(frames.len() == 64, "got {} of 64 frames", frames.len());
        for &f in &frames {
            // SAFETY: the frame was just allocated to this test alone and is identity-mapped.
            unsafe { core::ptr::write_bytes(f as *mut u8, (f >> 12) as u8, FRAME_SIZE as usize) };
        }
        for &f in &frames {
            // SAFETY: as above; the whole frame was initialised.
            let bytes = unsafe { core::slice::from_raw_parts(f as *const u8, FRAME_SIZE as usize) };
            ensure!(
                bytes.iter().all(|&b| b == (f >> 12) as u8),
                "frame {f:#x} was overwritten: frames overlap"
            );
        }
        let mut sorted = frames.clone();
        sorted.sort_unstable();
        sorted.dedup();
        ensure!(sorted.len() == 64, "a frame was handed out twice");
        for f in frames {
            FRAMES.lock().free(f, FRAME_SIZE);
        }
        let after = FRAMES.lock().free_bytes();
        ensure!(after == before, "free bytes {before} before, {after} after");
        Ok(())
    })
}

pub fn frame_allocator_gives_aligned_2mib_runs() -> TestFuture {
    Box::pin(async {
        const SIZE: u64 = 2 << 20;
        let run = FRAMES
            .lock()
            .allocate(SIZE, SIZE)
            .ok_or("no 2 MiB run free")?;
        ensure!(run % SIZE == 0, "{run:#x} is not 2 MiB aligned");
        // SAFETY: the run is ours and identity-mapped.
        unsafe {
            core::ptr::write_volatile(run as *mut u64, 0x1111);
            core::ptr::write_volatile((run + SIZE - 8) as *mut u64, 0x2222);
            ensure!(
                core::ptr::read_volatile(run as *const u64) == 0x1111,
                "first word lost"
            );
            ensure!(
                core::ptr::read_volatile((run + SIZE - 8) as *const u64) == 0x2222,
                "last word lost"
            );
        }
        FRAMES.lock().free(run, SIZE);
        Ok(())
    })
}

pub fn heap_round_trips_small_and_large_blocks() -> TestFuture {
    Box::pin(async {
        let (used_before, _) = kernel::memory::heap_usage();
        {
            let big = alloc::vec![0xa5u8; 1 << 20];
            ensure!(big.iter().all(|&b| b == 0xa5), "1 MiB block corrupted");
            let small: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
            ensure!(
                small.iter().enumerate().all(|(i, b)| **b == i as u64),
                "small blocks corrupted"
            );
        }
        let (used_after, _) = kernel::memory::heap_usage();
        ensure!(
            used_after == used_before,
            "heap use {used_before} before, {used_after} after: a leak"
        );
        Ok(())
    })
}

pub fn heap_survives_concurrent_use_from_all_cpus() -> TestFuture {
    Box::pin(async {
        let outcomes = super::on_every_cpu(|cpu| async move {
            // Each block holds its own tag (CPU, round) in every word: a block handed to two
            // CPUs at once, or written after it was freed, shows as a foreign word.
            let tag_of = |round: u64| (cpu as u64) << 32 | round;
            let check =
                |round: u64, block: &[u64]| match block.iter().find(|&&x| x != tag_of(round)) {
                    Some(x) => Err(alloc::format!(
                        "cpu{cpu}: block of round {round} holds {x:#x}, not its tag {:#x}",
                        tag_of(round)
                    )),
                    None => Ok(()),
                };
            let mut live: Vec<(u64, Vec<u64>)> = Vec::new();
            for round in 0..2000u64 {
                let len = ((round * 7919 + cpu as u64 * 31) % 200 + 1) as usize;
                live.push((round, alloc::vec![tag_of(round); len]));
                if live.len() > 16 {
                    let (r, block) = live.swap_remove((round % 16) as usize);
                    check(r, &block)?;
                }
                if round % 64 == 0 {
                    yield_now().await;
                }
            }
            for (round, block) in &live {
                check(*round, block)?;
            }
            Ok(())
        })
        .await?;
        outcomes.into_iter().collect()
    })
}

//! In-firmware tests, built into the image by the `selftest` feature and run after
//! `parapet: ready` on real (virtual) hardware: memory, paging, exceptions, timers, SMP.

#[cfg(target_arch = "x86_64")]
mod hv;
mod memory;
mod paging;
mod sched;

use alloc::string::String;
use alloc::vec::Vec;

use arch::ExitStatus;
use kernel::selftest::{run_all, TestCase};

/// The suite, in run order.
const TESTS: &[TestCase] = &[
    TestCase {
        name: "frame_allocator_hands_out_distinct_usable_frames",
        run: memory::frame_allocator_hands_out_distinct_usable_frames,
    },
    TestCase {
        name: "frame_allocator_gives_aligned_2mib_runs",
        run: memory::frame_allocator_gives_aligned_2mib_runs,
    },
    TestCase {
        name: "heap_round_trips_small_and_large_blocks",
        run: memory::heap_round_trips_small_and_large_blocks,
    },
    TestCase {
        name: "mapped_page_is_readable_and_writable",
        run: paging::mapped_page_is_readable_and_writable,
    },
    TestCase {
        name: "write_to_read_only_page_faults",
        run: paging::write_to_read_only_page_faults,
    },
    TestCase {
        name: "access_to_unmapped_page_faults",
        run: paging::access_to_unmapped_page_faults,
    },
    TestCase {
        name: "two_mib_mapping_translates_and_splits_on_protect",
        run: paging::two_mib_mapping_translates_and_splits_on_protect,
    },
    TestCase {
        name: "kernel_text_is_not_writable",
        run: paging::kernel_text_is_not_writable,
    },
    TestCase {
        name: "exception_is_delivered_and_returns",
        run: paging::exception_is_delivered_and_returns,
    },
    TestCase {
        name: "protection_changes_reach_every_cpu",
        run: paging::protection_changes_reach_every_cpu,
    },
    TestCase {
        name: "timer_ticks_advance_on_every_cpu",
        run: sched::timer_ticks_advance_on_every_cpu,
    },
    TestCase {
        name: "sleep_waits_at_least_its_duration",
        run: sched::sleep_waits_at_least_its_duration,
    },
    TestCase {
        name: "timeout_ends_a_stuck_future",
        run: sched::timeout_ends_a_stuck_future,
    },
    TestCase {
        name: "executor_runs_tasks_on_every_cpu",
        run: sched::executor_runs_tasks_on_every_cpu,
    },
    TestCase {
        name: "heap_survives_concurrent_use_from_all_cpus",
        run: memory::heap_survives_concurrent_use_from_all_cpus,
    },
];

/// CPUs online, for the SMP tests.
static ONLINE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(1);

pub fn online_cpus() -> usize {
    ONLINE.load(core::sync::atomic::Ordering::Relaxed)
}

/// Spawns `task(cpu)` on every online CPU's executor and returns each one's output, checking
/// that it ran on the CPU it was sent to.
pub async fn on_every_cpu<T, F>(task: impl Fn(usize) -> F) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: core::future::Future<Output = T> + Send + 'static,
{
    let cpus = online_cpus();
    kernel::ensure!(cpus >= 2, "needs at least 2 CPUs online, have {cpus}");
    let mut handles = Vec::new();
    for cpu in 0..cpus {
        let executor = kernel::executor::on_cpu(cpu).ok_or("a CPU has no executor")?;
        let body = task(cpu);
        handles.push(executor.spawn(async move { (body.await, kernel::platform::cpu_index()) }));
    }
    let mut outputs = Vec::new();
    for (cpu, handle) in handles.into_iter().enumerate() {
        let (output, ran_on) = handle.await;
        kernel::ensure!(ran_on == cpu, "task for cpu{cpu} ran on cpu{ran_on}");
        outputs.push(output);
    }
    Ok(outputs)
}

/// Tests that only make sense on the platform Parapet found itself on.
fn platform_tests() -> &'static [TestCase] {
    #[cfg(target_arch = "x86_64")]
    if crate::platform() == isolation::PlatformKind::HvVtl {
        return hv::TESTS;
    }
    &[]
}

/// Runs the suite (or the deliberate failure `mode` asks for) and exits with its verdict.
pub async fn run(mode: Option<String>, online: usize) {
    ONLINE.store(online, core::sync::atomic::Ordering::Relaxed);
    match mode.as_deref() {
        Some("panic") => deliberate_panic(),
        Some("fault") => deliberate_fault(),
        _ => {}
    }
    let tests: Vec<TestCase> = TESTS.iter().chain(platform_tests()).copied().collect();
    let (_, failed) = run_all(&tests).await;
    let names: Vec<&str> = tests.iter().map(|t| t.name).collect();
    log::debug!("ran {}", names.join(", "));
    kernel::platform::exit(if failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    });
}

/// Reads an address nothing maps, outside any probe: the fatal exception path must report it
/// and stop the machine with a failure status.
#[inline(never)]
pub(crate) fn deliberate_fault() -> ! {
    // SAFETY: not sound to continue past, and it does not: the read faults (nothing maps this
    // address) and the fatal handler stops the machine.
    let value = unsafe { core::ptr::read_volatile(DELIBERATE_FAULT_ADDRESS as *const u64) };
    panic!("read of unmapped {DELIBERATE_FAULT_ADDRESS:#x} returned {value:#x}");
}

/// Mapped by nothing (see `paging::TEST_VA`, far below it).
const DELIBERATE_FAULT_ADDRESS: u64 = 0x0000_6000_dead_0000;

/// `parapet.test=early-fault`: the deliberate fault while the entry path still runs on the
/// loader's tables, before the heap, so the early exception handling is what reports it.
pub(crate) fn early_fault_requested(cmdline: &str) -> bool {
    kernel::cmdline::option(cmdline, "parapet.test") == Some("early-fault")
}

/// The negative test's target: the harness checks that this line's location is reported.
#[inline(never)]
fn deliberate_panic() -> ! {
    panic!("deliberate panic requested by parapet.test=panic");
}

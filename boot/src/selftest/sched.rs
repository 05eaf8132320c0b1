//! Timers and the per-CPU executors.

use alloc::boxed::Box;
use alloc::vec::Vec;

use kernel::ensure;
use kernel::executor::{on_cpu, sleep_ms, timeout_ns, TimedOut};
use kernel::platform::{cpu_index, now_ns};
use kernel::selftest::TestFuture;

use crate::machine;

pub fn timer_ticks_advance_on_every_cpu() -> TestFuture {
    Box::pin(async {
        let cpus = super::online_cpus();
        let before: Vec<u64> = (0..cpus).map(machine::ticks).collect();
        sleep_ms(200).await;
        for (cpu, &b) in before.iter().enumerate() {
            let after = machine::ticks(cpu);
            // 200 ms at 100 Hz is 20 ticks; demand a quarter of that to tolerate a busy host.
            ensure!(after >= b + 5, "cpu{cpu}: ticks went from {b} to {after} in 200 ms");
        }
        Ok(())
    })
}

pub fn sleep_waits_at_least_its_duration() -> TestFuture {
    Box::pin(async {
        let start = now_ns();
        sleep_ms(50).await;
        let slept = now_ns() - start;
        ensure!(slept >= 50_000_000, "sleep(50 ms) returned after {slept} ns");
        Ok(())
    })
}

pub fn timeout_ends_a_stuck_future() -> TestFuture {
    Box::pin(async {
        let r = timeout_ns(30_000_000, core::future::pending::<()>()).await;
        ensure!(r == Err(TimedOut), "a pending future did not time out");
        let r = timeout_ns(30_000_000, async { 3 }).await;
        ensure!(r == Ok(3), "a ready future timed out");
        Ok(())
    })
}

pub fn executor_runs_tasks_on_every_cpu() -> TestFuture {
    Box::pin(async {
        let cpus = super::online_cpus();
        ensure!(cpus >= 2, "needs at least 2 CPUs online, have {cpus}");
        let mut handles = Vec::new();
        for cpu in 0..cpus {
            let ex = on_cpu(cpu).ok_or("a CPU has no executor")?;
            handles.push(ex.spawn(async move {
                // A sleep puts the task on that CPU's timer queue, too.
                sleep_ms(10).await;
                cpu_index()
            }));
        }
        for (cpu, h) in handles.into_iter().enumerate() {
            let ran_on = h.await;
            ensure!(ran_on == cpu, "task for cpu{cpu} ran on cpu{ran_on}");
        }
        Ok(())
    })
}

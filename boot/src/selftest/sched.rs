//! Timers and the per-CPU executors.

use alloc::boxed::Box;
use alloc::vec::Vec;

use kernel::ensure;
use kernel::executor::{sleep_ms, timeout_ns, TimedOut};
use kernel::platform::{cpu_index, now_ns};
use kernel::selftest::TestFuture;

pub fn timer_ticks_advance_on_every_cpu() -> TestFuture {
    Box::pin(async {
        let cpus = super::online_cpus();
        let before: Vec<u64> = (0..cpus).map(crate::cpus::ticks).collect();
        sleep_ms(200).await;
        for (cpu, &b) in before.iter().enumerate() {
            let after = crate::cpus::ticks(cpu);
            // 200 ms at 100 Hz is 20 ticks; demand a quarter of that to tolerate a busy host.
            ensure!(
                after >= b + 5,
                "cpu{cpu}: ticks went from {b} to {after} in 200 ms"
            );
        }
        Ok(())
    })
}

pub fn sleep_waits_at_least_its_duration() -> TestFuture {
    Box::pin(async {
        let start = now_ns();
        sleep_ms(50).await;
        let slept = now_ns() - start;
        ensure!(
            slept >= 50_000_000,
            "sleep(50 ms) returned after {slept} ns"
        );
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
        // A sleep puts each task on its CPU's timer queue, too; on_every_cpu checks placement.
        let woke_on = super::on_every_cpu(|_| async {
            sleep_ms(10).await;
            cpu_index()
        })
        .await?;
        ensure!(
            woke_on.iter().enumerate().all(|(cpu, &w)| w == cpu),
            "a task woke on another CPU: {woke_on:?}"
        );
        Ok(())
    })
}

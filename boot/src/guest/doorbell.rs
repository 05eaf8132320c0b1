//! A doorbell per guest VP (VP n runs on CPU n, on every backend): a VP with nothing to do
//! (its guest waits for an interrupt) parks its task on it, so its CPU halts instead of
//! spinning, and whoever gives the VP something (an IPI, a device interrupt routed to it)
//! rings it. Ringing wakes the parked task through the executor, whose wake-up of a task on
//! another CPU sends that CPU an IPI: the VP runs again at once, not at the next tick.
//!
//! Interrupt handlers ring too (a guest's timer falling due), so the waker's lock is only
//! ever held with interrupts off: a handler cannot find its own CPU holding it.

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

use kernel::executor::MAX_CPUS;
use spin::Mutex;

struct Doorbell {
    rung: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

static DOORBELLS: [Doorbell; MAX_CPUS] = [const {
    Doorbell {
        rung: AtomicBool::new(false),
        waker: Mutex::new(None),
    }
}; MAX_CPUS];

/// Rings VP `vp`'s doorbell: its parked task (if any) runs again.
pub fn ring(vp: usize) {
    let Some(bell) = DOORBELLS.get(vp) else {
        return;
    };
    bell.rung.store(true, Ordering::Release);
    let waker = kernel::platform::without_interrupts(|| bell.waker.lock().take());
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// How long a parked VP sleeps without its doorbell ringing before it looks again at what
/// nobody rings for (typed input, timers Parapet's tick serves): one tick.
const PARK_LIMIT_NS: u64 = 10_000_000;

/// Parks VP `vp`'s task until its doorbell rings or a tick has passed.
pub async fn park(vp: usize) {
    let _ = kernel::executor::timeout_ns(PARK_LIMIT_NS, wait(vp)).await;
}

/// Completes once VP `vp`'s doorbell has rung since the last wait completed (at once if it
/// rang meanwhile).
fn wait(vp: usize) -> impl Future<Output = ()> {
    Wait { vp }
}

struct Wait {
    vp: usize,
}

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(bell) = DOORBELLS.get(self.vp) else {
            return Poll::Ready(());
        };
        if bell.rung.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        kernel::platform::without_interrupts(|| *bell.waker.lock() = Some(waker));
        // A ring between the check and the registration found no waker: look again.
        if bell.rung.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

//! A per-CPU executor of futures with a timer queue.
//!
//! Each CPU runs one [`Executor`]. A round ([`Executor::run_once`]) fires due timers, then
//! polls every task that was ready when the round began exactly once, so no task can starve
//! the others by re-waking itself; a task that needs to run long yields
//! ([`yield_now`]) between steps. Tasks may be spawned onto any CPU; a wake-up from another
//! CPU kicks the owner out of its idle wait.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::task::Wake;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

use spin::{Mutex, Once};

use crate::platform;
use crate::timer_queue::TimerQueue;

/// Most CPUs the kernel tracks.
pub const MAX_CPUS: usize = 64;

type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Task {
    future: TaskFuture,
    waker: Arc<TaskWaker>,
}

struct Shared {
    cpu: usize,
    ready: Mutex<VecDeque<u64>>,
    tasks: Mutex<BTreeMap<u64, Task>>,
    timers: Mutex<TimerQueue>,
    next_id: AtomicU64,
    polls: AtomicU64,
    /// Tasks spawned and not yet finished (including one being polled right now).
    alive: AtomicU64,
}

struct TaskWaker {
    id: u64,
    queued: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.push_ready(self.id);
        self.shared.kick_if_remote();
    }
}

impl Shared {
    /// Queues a task. Interrupts are masked around the lock so that a waker called from an
    /// interrupt handler cannot deadlock against the code it interrupted.
    fn push_ready(&self, id: u64) {
        platform::without_interrupts(|| self.ready.lock().push_back(id));
    }

    fn pop_ready(&self) -> Option<u64> {
        platform::without_interrupts(|| self.ready.lock().pop_front())
    }

    fn ready_len(&self) -> usize {
        platform::without_interrupts(|| self.ready.lock().len())
    }

    fn kick_if_remote(&self) {
        if platform::cpu_index() != self.cpu {
            if let Some(p) = platform::get() {
                (p.kick)(self.cpu);
            }
        }
    }
}

/// What one round did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Round {
    /// Tasks polled.
    pub polled: usize,
    /// Earliest pending timer, if any.
    pub next_deadline: Option<u64>,
}

pub struct Executor {
    shared: Arc<Shared>,
}

#[cfg(not(test))]
static CURRENT: [core::sync::atomic::AtomicPtr<Shared>; MAX_CPUS] =
    [const { core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

#[cfg(test)]
std::thread_local!(static CURRENT: core::cell::Cell<*const Shared> = const { core::cell::Cell::new(core::ptr::null()) });

/// Sets the executor whose task is being polled on this CPU, returning the previous one.
fn set_current(shared: *const Shared) -> *const Shared {
    #[cfg(not(test))]
    {
        CURRENT[platform::cpu_index() % MAX_CPUS].swap(shared as *mut Shared, Ordering::AcqRel)
    }
    #[cfg(test)]
    {
        CURRENT.with(|c| c.replace(shared))
    }
}

/// Runs `f` with the executor currently polling on this CPU.
fn with_current<R>(f: impl FnOnce(&Shared) -> R) -> Option<R> {
    let p = set_current(core::ptr::null());
    set_current(p);
    // SAFETY: CURRENT is only non-null while `run_once` polls a task of that executor on this
    // CPU, and `run_once` holds an `Arc<Shared>` for the whole poll, so the pointer is live.
    unsafe { p.as_ref() }.map(f)
}

impl Executor {
    pub fn new(cpu: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                cpu,
                ready: Mutex::new(VecDeque::new()),
                tasks: Mutex::new(BTreeMap::new()),
                timers: Mutex::new(TimerQueue::new()),
                next_id: AtomicU64::new(0),
                polls: AtomicU64::new(0),
                alive: AtomicU64::new(0),
            }),
        }
    }

    pub fn cpu(&self) -> usize {
        self.shared.cpu
    }

    /// Spawns a task on this executor; its output arrives through the returned handle.
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<T> {
        let state = Arc::new(JoinState {
            output: Mutex::new(None),
            waiter: Mutex::new(None),
        });
        let done = state.clone();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(true),
            shared: self.shared.clone(),
        });
        let future: TaskFuture = Box::pin(async move {
            let value = future.await;
            *done.output.lock() = Some(value);
            if let Some(w) = done.waiter.lock().take() {
                w.wake();
            }
        });
        self.shared.alive.fetch_add(1, Ordering::Relaxed);
        self.shared.tasks.lock().insert(id, Task { future, waker });
        self.shared.push_ready(id);
        self.shared.kick_if_remote();
        JoinHandle { state }
    }

    /// Fires due timers, then polls each task that is ready now, once.
    pub fn run_once(&self, now: u64) -> Round {
        let mut due = alloc::vec::Vec::new();
        platform::without_interrupts(|| self.shared.timers.lock().expire(now, |w| due.push(w)));
        due.into_iter().for_each(Waker::wake);

        let batch = self.shared.ready_len();
        let mut polled = 0;
        for _ in 0..batch {
            let Some(id) = self.shared.pop_ready() else {
                break;
            };
            let Some(mut task) = self.shared.tasks.lock().remove(&id) else {
                continue;
            };
            task.waker.queued.store(false, Ordering::Release);
            let waker = Waker::from(task.waker.clone());
            let mut cx = Context::from_waker(&waker);
            let previous = set_current(Arc::as_ptr(&self.shared));
            let poll = task.future.as_mut().poll(&mut cx);
            set_current(previous);
            polled += 1;
            if poll.is_pending() {
                self.shared.tasks.lock().insert(id, task);
            } else {
                self.shared.alive.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.shared
            .polls
            .fetch_add(polled as u64, Ordering::Relaxed);
        Round {
            polled,
            next_deadline: platform::without_interrupts(|| {
                self.shared.timers.lock().next_deadline()
            }),
        }
    }

    /// Whether a task is waiting to be polled.
    pub fn has_ready(&self) -> bool {
        self.shared.ready_len() > 0
    }

    /// Tasks alive on this executor.
    pub fn task_count(&self) -> usize {
        self.shared.alive.load(Ordering::Relaxed) as usize
    }

    /// Polls done since creation.
    pub fn polls(&self) -> u64 {
        self.shared.polls.load(Ordering::Relaxed)
    }

    /// Runs tasks forever, with interrupts enabled, waiting for an interrupt whenever nothing
    /// is ready.
    pub fn run(&self) -> ! {
        let platform =
            platform::get().expect("the executor runs only after the platform is installed");
        (platform.enable_interrupts)();
        loop {
            self.run_once((platform.now_ns)());
            (platform.idle_unless)(&|| self.has_ready());
        }
    }
}

struct JoinState<T> {
    output: Mutex<Option<T>>,
    waiter: Mutex<Option<Waker>>,
}

/// Completes with a spawned task's output.
pub struct JoinHandle<T> {
    state: Arc<JoinState<T>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        *self.state.waiter.lock() = Some(cx.waker().clone());
        match self.state.output.lock().take() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

static EXECUTORS: [Once<Executor>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];

/// Creates the executor of CPU `cpu` (idempotent) and returns it.
pub fn init_cpu(cpu: usize) -> &'static Executor {
    EXECUTORS[cpu].call_once(|| Executor::new(cpu))
}

/// The executor of CPU `cpu`, once that CPU has one.
pub fn on_cpu(cpu: usize) -> Option<&'static Executor> {
    EXECUTORS.get(cpu)?.get()
}

/// Ready once `deadline` (ns since boot) has passed.
pub struct Sleep {
    deadline: u64,
    /// The waker already in a timer queue, so polling again (e.g. inside a `timeout` whose
    /// inner future keeps waking) does not add an entry each time.
    registered: Option<Waker>,
}

/// Sleeps for `ns` nanoseconds on the current executor's timer queue.
pub fn sleep_ns(ns: u64) -> Sleep {
    Sleep {
        deadline: platform::now_ns().saturating_add(ns),
        registered: None,
    }
}

pub fn sleep_ms(ms: u64) -> Sleep {
    sleep_ns(ms.saturating_mul(1_000_000))
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if platform::now_ns() >= self.deadline {
            return Poll::Ready(());
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let deadline = self.deadline;
        let waker = cx.waker().clone();
        let queued = with_current(|s| {
            platform::without_interrupts(|| s.timers.lock().insert(deadline, waker.clone()))
        });
        if queued.is_some() {
            self.registered = Some(waker);
        } else {
            // Polled outside an executor: nobody would wake us, so ask to be polled again.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

/// Runs `future` for at most `ns` nanoseconds.
pub fn timeout_ns<F: Future>(ns: u64, future: F) -> Timeout<F> {
    Timeout {
        future: Box::pin(future),
        sleep: sleep_ns(ns),
    }
}

pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimedOut>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Gives the other ready tasks a turn.
pub fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    core::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::test_clock;
    use std::sync::Mutex as StdMutex;

    fn run_until_quiet(ex: &Executor) {
        while ex.run_once(test_clock::get()).polled > 0 {}
    }

    #[test]
    fn spawned_tasks_run_and_deliver_their_output() {
        let ex = Executor::new(0);
        let handle = ex.spawn(async { 6 * 7 });
        let result = Arc::new(StdMutex::new(None));
        let r = result.clone();
        ex.spawn(async move { *r.lock().unwrap() = Some(handle.await) });
        run_until_quiet(&ex);
        assert_eq!(*result.lock().unwrap(), Some(42));
        assert_eq!(ex.task_count(), 0);
    }

    #[test]
    fn sleep_wakes_only_after_its_deadline() {
        test_clock::set(1_000);
        let ex = Executor::new(0);
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        ex.spawn(async move {
            sleep_ns(500).await;
            d.store(true, Ordering::SeqCst);
        });
        let round = ex.run_once(test_clock::get());
        assert_eq!(round.next_deadline, Some(1_500));
        test_clock::advance(499);
        run_until_quiet(&ex);
        assert!(!done.load(Ordering::SeqCst));
        test_clock::advance(1);
        run_until_quiet(&ex);
        assert!(done.load(Ordering::SeqCst));
    }

    #[test]
    fn timeout_reports_a_future_that_never_finishes() {
        test_clock::set(0);
        let ex = Executor::new(0);
        let outcome = Arc::new(StdMutex::new(None));
        let (o1, o2) = (outcome.clone(), outcome.clone());
        ex.spawn(async move {
            let slow = timeout_ns(100, core::future::pending::<()>()).await;
            let fast = timeout_ns(100, async { 5 }).await;
            *o1.lock().unwrap() = Some((slow, fast));
        });
        run_until_quiet(&ex);
        test_clock::advance(100);
        run_until_quiet(&ex);
        assert_eq!(*o2.lock().unwrap(), Some((Err(TimedOut), Ok(5))));
    }

    #[test]
    fn a_sleep_polled_many_times_queues_one_timer() {
        test_clock::set(0);
        let ex = Executor::new(0);
        ex.spawn(async {
            // The inner future wakes itself 100 times before the outer timeout's sleep is due.
            let mut spins = 0;
            let busy = core::future::poll_fn(move |cx| {
                spins += 1;
                if spins < 100 {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            });
            let _ = timeout_ns(1_000, busy).await;
        });
        let mut max_timers = 0;
        while ex.run_once(0).polled > 0 {
            max_timers = max_timers.max(ex.shared.timers.lock().len());
        }
        assert_eq!(max_timers, 1);
    }

    #[test]
    fn a_self_waking_task_cannot_starve_others() {
        let ex = Executor::new(0);
        let spins = Arc::new(AtomicU64::new(0));
        let s = spins.clone();
        ex.spawn(async move {
            loop {
                s.fetch_add(1, Ordering::Relaxed);
                yield_now().await;
            }
        });
        let other_ran = Arc::new(AtomicBool::new(false));
        let o = other_ran.clone();
        ex.spawn(async move { o.store(true, Ordering::SeqCst) });
        // One round polls each of the two ready tasks exactly once.
        assert_eq!(ex.run_once(0).polled, 2);
        assert!(other_ran.load(Ordering::SeqCst));
        assert_eq!(spins.load(Ordering::Relaxed), 1);
        assert_eq!(ex.run_once(0).polled, 1);
        assert_eq!(spins.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_wake_from_another_thread_queues_the_task_once() {
        let ex = Executor::new(0);
        let slot: Arc<StdMutex<Option<Waker>>> = Arc::new(StdMutex::new(None));
        let polls = Arc::new(AtomicU64::new(0));
        let (s, p) = (slot.clone(), polls.clone());
        ex.spawn(core::future::poll_fn(move |cx| {
            p.fetch_add(1, Ordering::SeqCst);
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        run_until_quiet(&ex);
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        let waker = slot.lock().unwrap().clone().unwrap();
        std::thread::spawn(move || {
            waker.wake_by_ref();
            waker.wake_by_ref();
        })
        .join()
        .unwrap();
        assert!(ex.has_ready());
        run_until_quiet(&ex);
        assert_eq!(
            polls.load(Ordering::SeqCst),
            2,
            "two wakes before a poll queue one poll"
        );
    }
}

//! Deadlines waiting to wake tasks, earliest first.

use alloc::collections::BinaryHeap;
use core::cmp::{Ordering, Reverse};
use core::task::Waker;

struct Timer {
    deadline: u64,
    /// Insertion order, so equal deadlines fire first-come first-served.
    sequence: u64,
    waker: Waker,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.sequence) == (other.deadline, other.sequence)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.sequence).cmp(&(other.deadline, other.sequence))
    }
}

#[derive(Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<Timer>>,
    sequence: u64,
}

impl TimerQueue {
    pub const fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            sequence: 0,
        }
    }

    /// Wakes `waker` once time reaches `deadline` (ns). A dropped sleeper leaves its entry
    /// behind; it fires as a harmless spurious wake.
    pub fn insert(&mut self, deadline: u64, waker: Waker) {
        self.sequence += 1;
        self.heap.push(Reverse(Timer {
            deadline,
            sequence: self.sequence,
            waker,
        }));
    }

    /// Removes and returns the wakers whose deadline is at or before `now`, in order.
    pub fn expire(&mut self, now: u64, mut fire: impl FnMut(Waker)) {
        while self.heap.peek().is_some_and(|t| t.0.deadline <= now) {
            if let Some(Reverse(t)) = self.heap.pop() {
                fire(t.waker);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|t| t.0.deadline)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use std::sync::Mutex;

    struct Recorder(usize, Arc<Mutex<std::vec::Vec<usize>>>);
    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    #[test]
    fn timers_fire_in_deadline_order_and_only_when_due() {
        let log = Arc::new(Mutex::new(std::vec::Vec::new()));
        let mut q = TimerQueue::new();
        for (id, deadline) in [(1, 300), (2, 100), (3, 200), (4, 100)] {
            q.insert(deadline, Waker::from(Arc::new(Recorder(id, log.clone()))));
        }
        assert_eq!(q.next_deadline(), Some(100));
        q.expire(99, Waker::wake);
        assert!(log.lock().unwrap().is_empty());
        q.expire(200, Waker::wake);
        assert_eq!(*log.lock().unwrap(), [2, 4, 3]);
        assert_eq!(q.next_deadline(), Some(300));
        q.expire(u64::MAX, Waker::wake);
        assert!(q.is_empty());
    }
}

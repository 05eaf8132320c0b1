//! The console: one lock so lines from different CPUs do not interleave, and the log ring.

use core::fmt::{self, Write};

use spin::Mutex;

use crate::log_ring::LogRing;
use crate::platform;

/// Size of the in-memory log ring.
pub const LOG_RING_BYTES: usize = 64 * 1024;

pub struct Console {
    ring: LogRing<LOG_RING_BYTES>,
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    ring: LogRing::new(),
});

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.ring.write(s.as_bytes());
        if let Some(p) = platform::get() {
            (p.console_write)(s);
        }
        #[cfg(test)]
        std::print!("{s}");
        Ok(())
    }
}

/// Writes formatted text atomically with respect to other CPUs.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    platform::without_interrupts(|| {
        let _ = CONSOLE.lock().write_fmt(args);
    });
}

/// Writes straight to the console hardware, bypassing the lock: for panics and fatal
/// exceptions, which may strike while the lock is held.
pub fn emergency_write_fmt(args: fmt::Arguments<'_>) {
    struct Raw;
    impl Write for Raw {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            if let Some(p) = platform::get() {
                (p.console_write_emergency)(s);
            }
            Ok(())
        }
    }
    let _ = Raw.write_fmt(args);
}

/// Spins on a console driver's lock this many times before taking it by force.
const EMERGENCY_SPINS: u32 = 1_000_000;

/// Locks a console driver for an emergency write: if the holder does not release it for a
/// long while (it faulted, or it is this CPU), the lock is taken by force.
pub fn emergency_lock<T>(lock: &Mutex<T>) -> spin::MutexGuard<'_, T> {
    if let Some(guard) = (0..EMERGENCY_SPINS).find_map(|_| lock.try_lock()) {
        return guard;
    }
    // SAFETY: only used on the way to stopping the machine, after the holder failed to release
    // the lock for a long while; interleaved output is the worst that can follow.
    unsafe { lock.force_unlock() };
    lock.lock()
}

/// Calls `out` with the retained log text, oldest first.
pub fn read_ring(out: impl FnMut(&[u8])) {
    platform::without_interrupts(|| CONSOLE.lock().ring.read(out));
}

#[macro_export]
macro_rules! println {
    () => { $crate::console::write_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

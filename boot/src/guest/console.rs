//! What a guest writes to its console UART reaches Parapet's console a line at a time, after
//! a prefix naming the guest (`vtl0| `, `guest| `), with unprintable bytes shown as `.`.
//! What is typed on Parapet's console while it hosts a guest goes to the guest's UART
//! ([`forward_input`], [`take_input`]): the guest owns the console, as on a serial line.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

/// Typed bytes the guest's UART has not taken yet; beyond this many, more are dropped (a
/// UART overruns too).
const INPUT_LIMIT: usize = 4096;
/// How often Parapet's console is polled for input.
const INPUT_POLL_MS: u64 = 10;

static INPUT: Mutex<VecDeque<u8>> = Mutex::new(VecDeque::new());
/// Whether `INPUT` may hold bytes: looked at on every guest entry, without the lock.
static INPUT_WAITING: AtomicBool = AtomicBool::new(false);

/// Guest output lines longer than this are printed in pieces.
const MAX_LINE: usize = 256;

pub struct GuestConsole {
    prefix: &'static str,
    line: Vec<u8>,
}

impl GuestConsole {
    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            line: Vec::new(),
        }
    }

    /// Takes one transmitted byte.
    pub fn push(&mut self, byte: u8) {
        match byte {
            b'\n' => self.flush_line(),
            b'\r' => {}
            b => {
                self.line.push(b);
                if self.line.len() >= MAX_LINE {
                    self.flush_line();
                }
            }
        }
    }

    /// Prints the pending line (also a partial one, at power-off, so nothing is lost).
    pub fn flush_line(&mut self) {
        let text: String = self
            .line
            .drain(..)
            .map(|b| {
                if (0x20..0x7f).contains(&b) {
                    char::from(b)
                } else {
                    '.'
                }
            })
            .collect();
        kernel::println!("{}| {text}", self.prefix);
    }

    pub fn has_partial_line(&self) -> bool {
        !self.line.is_empty()
    }
}

/// Moves what is typed on Parapet's console to the guest's input, for good (the task that
/// replaces the console monitor while a guest is hosted).
pub async fn forward_input(read_byte: fn() -> Option<u8>) {
    loop {
        {
            let mut input = INPUT.lock();
            while let Some(byte) = read_byte() {
                if input.len() < INPUT_LIMIT {
                    input.push_back(byte);
                    INPUT_WAITING.store(true, Ordering::Release);
                }
            }
        }
        kernel::executor::sleep_ms(INPUT_POLL_MS).await;
    }
}

/// Whether typed bytes wait for the guest.
pub fn input_waiting() -> bool {
    INPUT_WAITING.load(Ordering::Acquire)
}

/// Gives `receive` the typed bytes waiting, at most `room` of them.
pub fn take_input(room: usize, receive: impl FnOnce(&[u8])) {
    if room == 0 || !input_waiting() {
        return;
    }
    let mut input = INPUT.lock();
    let n = room.min(input.len());
    let bytes: Vec<u8> = input.drain(..n).collect();
    INPUT_WAITING.store(!input.is_empty(), Ordering::Release);
    drop(input);
    receive(&bytes);
}

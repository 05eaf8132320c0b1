//! What a guest writes to its console UART reaches Parapet's console a line at a time, after
//! a prefix naming the guest (`vtl0| `, `guest| `), with unprintable bytes shown as `.`.

use alloc::string::String;
use alloc::vec::Vec;

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

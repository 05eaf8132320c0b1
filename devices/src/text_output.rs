//! Text output over a byte-at-a-time device, with terminal line endings.

/// A console device that sends one byte at a time.
pub trait TextOutput {
    fn write_byte(&mut self, byte: u8);

    /// Writes text, turning `\n` into `\r\n` for terminals.
    fn write_str(&mut self, s: &str) {
        for &b in s.as_bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
    }
}

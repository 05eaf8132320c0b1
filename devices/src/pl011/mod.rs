//! The Arm PL011 UART: register layout, Parapet's console driver for it, and an emulator of it.

pub mod driver;
pub mod emulator;
pub mod registers;

pub use driver::{Pl011, RegisterAccess32};

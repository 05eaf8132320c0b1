//! The Arm PL011 UART: register layout and Parapet's console driver for it.

pub mod driver;
pub mod registers;

pub use driver::{Pl011, RegisterAccess32};

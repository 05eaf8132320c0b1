//! The 16550A UART: register layout, Parapet's console driver for it, and an emulator of it.

pub mod driver;
pub mod emulator;
pub mod registers;

pub use driver::{RegisterAccess, Uart16550};

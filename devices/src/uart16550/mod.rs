//! The 16550A UART: register layout and Parapet's console driver for it.

pub mod driver;
pub mod registers;

pub use driver::{RegisterAccess, Uart16550};

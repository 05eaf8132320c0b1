//! Parapet's kernel core: memory, scheduling, time, logging and the in-firmware test runner.
//!
//! Arch-neutral: what it needs from the machine comes through [`platform::Platform`].
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_os = "none")]
pub mod address_space;
pub mod cmdline;
pub mod console;
pub mod elf;
pub mod executor;
pub mod frame_alloc;
pub mod log_ring;
pub mod logger;
pub mod memory;
#[cfg(target_os = "none")]
mod panic;
pub mod platform;
pub mod selftest;
pub mod timer_queue;

//! aarch64: descriptor formats and device-tree reading (pure, host-tested) and, on bare metal,
//! the EL2 CPU.

pub mod page_format;

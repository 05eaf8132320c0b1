//! The contract between whoever loads Parapet (the IGVM image builder, vmm-lite, Hyper-V) and
//! the firmware: where things are in guest-physical memory and how parameters are encoded.
//! One definition, used by both sides (`image/` and `vmm-lite/` on the host, `boot/` in the
//! firmware), so the two can never disagree.
#![no_std]

pub mod igvm_layout;
pub mod igvm_memory_map;

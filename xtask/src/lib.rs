//! Building and running Parapet firmware, shared by the `xtask` CLI and the QEMU tests.

pub mod bench;
pub mod build;
pub mod fuzz;
pub mod initramfs;
pub mod kernels;
pub mod linux;
pub mod qemu;
pub mod report;
pub mod setup;
pub mod tpm_bench;
pub mod vmm;

use std::path::PathBuf;

/// The workspace root (the directory holding this crate's parent).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// CPU architectures Parapet boots on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "aarch64")]
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The Rust target the firmware is compiled for. aarch64 uses the soft-float target: a
    /// hypervisor at EL2 must never touch FP/SIMD registers, which belong to its guests
    /// (x86_64-unknown-none is soft-float already).
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-none",
            Arch::Aarch64 => "aarch64-unknown-none-softfloat",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Normal firmware, or the build with the in-firmware test suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Normal,
    SelfTest,
}

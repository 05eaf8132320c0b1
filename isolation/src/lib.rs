//! The isolation platforms Parapet runs on.
//!
//! Each backend (hv_vtl, svm, el2, snp, tdx, cca) owns page visibility, guest entry and exit
//! decoding for its platform. The platform is chosen at boot from what the loader reports,
//! never by a cargo feature, so one image serves several platforms. Today only `native` exists:
//! Parapet runs alone, with no guest and no isolation hardware in use.
#![no_std]

/// The platform Parapet booted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformKind {
    /// No paravisor interface: Parapet owns the whole machine.
    Native,
}

impl PlatformKind {
    /// The name the console banner reports (`platform=<name>`).
    pub fn name(self) -> &'static str {
        match self {
            PlatformKind::Native => "native",
        }
    }

    /// Chooses the platform from what the boot path found.
    pub fn detect() -> Self {
        PlatformKind::Native
    }
}

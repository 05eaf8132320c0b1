//! vmm-lite's errors: each is one sentence naming the thing and what is wrong.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum VmmError {
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid IGVM file: {reason}")]
    BadIgvm { path: String, reason: String },
    #[error("{0} has no {1} platform; vmm-lite runs the native and vbs platforms of IGVM files")]
    UnsupportedPlatform(String, &'static str),
    #[error("the IGVM file has no VP context for VP 0")]
    NoVpContext,
    #[error("the IGVM file has more than one VP context for VP 0")]
    DuplicateVpContext,
    #[error("the IGVM file asks for {0}, which vmm-lite does not support")]
    UnsupportedDirective(String),
    #[error("the image places {filler} at {gpa:#x}, where {earlier} already is")]
    Overlap {
        gpa: u64,
        filler: crate::igvm_load::Filler,
        earlier: crate::igvm_load::Filler,
    },
    #[error("the image needs memory up to {needed:#x}, but --mem gives {available:#x} bytes")]
    TooLittleMemory { needed: u64, available: u64 },
    #[error("the image places data at {gpa:#x}, outside guest RAM")]
    OutsideRam { gpa: u64 },
    #[error("--mem {0}: {1}")]
    BadMemorySize(String, &'static str),
    #[error("--vps {0}: must be between 1 and {1}")]
    BadVpCount(u32, u32),
    #[error("the command line is {0} bytes; the image's command-line area holds {1} with its terminator")]
    CommandLineTooLong(usize, usize),
    #[error("a parameter at offset {offset:#x} does not fit area {area} ({size:#x} bytes)")]
    ParameterOutsideArea { area: u32, offset: u64, size: u64 },
    #[error("--serial {0}: expected `stdio` or `file:PATH`")]
    BadSerial(String),
    #[error("cannot open the serial file {path}: {source}")]
    SerialFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot use {path} for KVM: {reason}")]
    NoKvm { path: String, reason: String },
    #[error("KVM: {0} failed: {1}")]
    Kvm(&'static str, kvm_ioctls::Error),
    #[error("{path} cannot be the VTL0 payload: {reason}")]
    BadPayload { path: String, reason: String },
    #[error("--vtl0 needs --platform vbs: only the paravisor platform has a VTL0")]
    PayloadWithoutVtl0,
    #[error("the benchmark's guest failed: {0}")]
    Benchmark(String),
    #[error("cannot allocate {0} bytes of guest memory: {1}")]
    Mmap(u64, std::io::Error),
}

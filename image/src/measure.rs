//! Launch measurements of an IGVM file, per platform.
//!
//! The VBS boot digest is computed here, independently of the `igvm` crate's own code, from
//! the definition of the VBS measured-boot records (chained SHA-256 over page and register
//! records; Hyper-V VBS boot measurement as the IGVM spec's VSM isolation platform uses it).
//! A test checks it against `igvm::measurement` on the same files.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use igvm::registers::X86Register;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader};
use igvm_defs::{IgvmPageDataType, IgvmPlatformType};
use sha2::{Digest, Sha256};

use crate::ImageError;

const PAGE: usize = 4096;
/// VBS chunk types and page acceptance bits.
const CHUNK_VP_REGISTER: u32 = 0;
const CHUNK_GPA_PAGE: u32 = 2;
const ACCEPT_READ_WRITE: u64 = 0b11;
const DATA_UNMEASURED: u64 = 1 << 2;
const PAGE_RECORD_SIZE: u32 = 32 + PAGE as u32;
/// Most pages a measurement hashes (16 GiB): a file claiming more is refused, not hashed for
/// hours.
pub const MAX_MEASURED_PAGES: u64 = 1 << 22;
const REGISTER_RECORD_SIZE: u32 = 48;

/// Parses an IGVM file. The `igvm` crate can abort on some malformed files instead of
/// returning an error; that is caught and reported as a bad file.
pub fn parse(bytes: &[u8]) -> Result<IgvmFile, ImageError> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(|| IgvmFile::new_from_binary(bytes, None)));
    std::panic::set_hook(previous);
    match result {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(e)) => Err(ImageError::Igvm(e.to_string())),
        Err(_) => Err(ImageError::Igvm(
            "the file is malformed (the IGVM parser gave up on it)".into(),
        )),
    }
}

/// One platform's launch measurement.
#[derive(Debug, PartialEq, Eq)]
pub struct Measurement {
    pub platform: &'static str,
    pub compatibility_mask: u32,
    /// `None` where the platform measures nothing (native).
    pub digest: Option<Vec<u8>>,
}

/// The launch measurement for every platform the file declares.
pub fn measurements(file: &IgvmFile) -> Result<Vec<Measurement>, ImageError> {
    let mut out = Vec::new();
    for IgvmPlatformHeader::SupportedPlatform(p) in file.platforms() {
        let mask = p.compatibility_mask;
        let (platform, digest) = match p.platform_type {
            IgvmPlatformType::NATIVE => ("native", None),
            IgvmPlatformType::VSM_ISOLATION => (
                "vbs",
                Some(vbs_boot_digest(file.directives(), mask)?.to_vec()),
            ),
            IgvmPlatformType::SEV_SNP => ("snp", None),
            IgvmPlatformType::TDX => ("tdx", None),
            _ => ("unknown", None),
        };
        if digest.is_none() && platform != "native" {
            return Err(ImageError::Igvm(format!(
                "measuring the {platform} platform is not supported yet"
            )));
        }
        out.push(Measurement {
            platform,
            compatibility_mask: mask,
            digest,
        });
    }
    Ok(out)
}

struct Chain(Sha256, [u8; 32]);

impl Chain {
    fn new() -> Self {
        Self(Sha256::new(), [0; 32])
    }

    /// digest = SHA-256(digest || record)
    fn extend(&mut self, record: &[u8]) {
        self.0.update(self.1);
        self.0.update(record);
        self.1 = self.0.finalize_reset().into();
    }

    fn page(&mut self, page_number: u64, metadata: u64, contents: Option<&[u8]>) {
        let mut record = Vec::with_capacity(PAGE_RECORD_SIZE as usize);
        record.extend_from_slice(&PAGE_RECORD_SIZE.to_le_bytes());
        record.extend_from_slice(&CHUNK_GPA_PAGE.to_le_bytes());
        record.extend_from_slice(&0u64.to_le_bytes());
        record.extend_from_slice(&metadata.to_le_bytes());
        record.extend_from_slice(&page_number.to_le_bytes());
        let data = contents.unwrap_or(&[]);
        let n = data.len().min(PAGE);
        record.extend_from_slice(&data[..n]);
        record.resize(PAGE_RECORD_SIZE as usize, 0);
        self.extend(&record);
    }

    fn register(&mut self, vtl: u8, name: u32, value: [u8; 16]) {
        let mut record = Vec::with_capacity(REGISTER_RECORD_SIZE as usize);
        record.extend_from_slice(&REGISTER_RECORD_SIZE.to_le_bytes());
        record.extend_from_slice(&CHUNK_VP_REGISTER.to_le_bytes());
        record.extend_from_slice(&[0; 12]);
        record.push(vtl);
        record.extend_from_slice(&[0; 7]);
        record.extend_from_slice(&name.to_le_bytes());
        record.extend_from_slice(&value);
        self.extend(&record);
    }
}

/// Hyper-V register name (TLFS "Virtual Processor Register Names") and the 16-byte value
/// encoding of an initial VTL register: integers in the low 8 bytes; table registers as
/// (pad[3] u16, limit u16, base u64); segments as (base u64, limit u32, selector u16,
/// attributes u16).
fn register_name_and_value(r: &X86Register) -> (u32, [u8; 16]) {
    let int = |name: u32, v: u64| {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&v.to_le_bytes());
        (name, b)
    };
    let table = |name: u32, base: u64, limit: u16| {
        let mut b = [0u8; 16];
        b[6..8].copy_from_slice(&limit.to_le_bytes());
        b[8..16].copy_from_slice(&base.to_le_bytes());
        (name, b)
    };
    let segment = |name: u32, s: &igvm::registers::SegmentRegister| {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&s.base.to_le_bytes());
        b[8..12].copy_from_slice(&s.limit.to_le_bytes());
        b[12..14].copy_from_slice(&s.selector.to_le_bytes());
        b[14..16].copy_from_slice(&s.attributes.to_le_bytes());
        (name, b)
    };
    match r {
        X86Register::Idtr(t) => table(0x7_0000, t.base, t.limit),
        X86Register::Gdtr(t) => table(0x7_0001, t.base, t.limit),
        X86Register::Es(s) => segment(0x6_0000, s),
        X86Register::Cs(s) => segment(0x6_0001, s),
        X86Register::Ss(s) => segment(0x6_0002, s),
        X86Register::Ds(s) => segment(0x6_0003, s),
        X86Register::Fs(s) => segment(0x6_0004, s),
        X86Register::Gs(s) => segment(0x6_0005, s),
        X86Register::Tr(s) => segment(0x6_0007, s),
        X86Register::Cr0(v) => int(0x4_0000, *v),
        X86Register::Cr3(v) => int(0x4_0002, *v),
        X86Register::Cr4(v) => int(0x4_0003, *v),
        X86Register::Efer(v) => int(0x8_0001, *v),
        X86Register::Pat(v) => int(0x8_0004, *v),
        X86Register::Rsp(v) => int(0x2_0004, *v),
        X86Register::Rbp(v) => int(0x2_0005, *v),
        X86Register::Rsi(v) => int(0x2_0006, *v),
        X86Register::R8(v) => int(0x2_0008, *v),
        X86Register::R9(v) => int(0x2_0009, *v),
        X86Register::R10(v) => int(0x2_000a, *v),
        X86Register::R11(v) => int(0x2_000b, *v),
        X86Register::R12(v) => int(0x2_000c, *v),
        X86Register::Rip(v) => int(0x2_0010, *v),
        X86Register::Rflags(v) => int(0x2_0011, *v),
        X86Register::MtrrDefType(v) => int(0x8_000e, *v),
        X86Register::MtrrPhysBase0(v) => int(0x8_0010, *v),
        X86Register::MtrrPhysBase1(v) => int(0x8_0011, *v),
        X86Register::MtrrPhysBase2(v) => int(0x8_0012, *v),
        X86Register::MtrrPhysBase3(v) => int(0x8_0013, *v),
        X86Register::MtrrPhysBase4(v) => int(0x8_0014, *v),
        X86Register::MtrrPhysMask0(v) => int(0x8_0040, *v),
        X86Register::MtrrPhysMask1(v) => int(0x8_0041, *v),
        X86Register::MtrrPhysMask2(v) => int(0x8_0042, *v),
        X86Register::MtrrPhysMask3(v) => int(0x8_0043, *v),
        X86Register::MtrrPhysMask4(v) => int(0x8_0044, *v),
        X86Register::MtrrFix64k00000(v) => int(0x8_0070, *v),
        X86Register::MtrrFix16k80000(v) => int(0x8_0071, *v),
        X86Register::MtrrFix4kE0000(v) => int(0x8_0077, *v),
        X86Register::MtrrFix4kE8000(v) => int(0x8_0078, *v),
        X86Register::MtrrFix4kF0000(v) => int(0x8_0079, *v),
        X86Register::MtrrFix4kF8000(v) => int(0x8_007a, *v),
    }
}

/// The VBS boot digest of the directives that apply to the platform with mask bit `mask`.
pub fn vbs_boot_digest(
    directives: &[IgvmDirectiveHeader],
    mask: u32,
) -> Result<[u8; 32], ImageError> {
    vbs_boot_digest_within(directives, mask, MAX_MEASURED_PAGES)
}

/// As [`vbs_boot_digest`], refusing files that measure more than `max_pages` pages (tests of
/// damaged files use a small bound: a flipped size bit can claim gigabytes).
pub fn vbs_boot_digest_within(
    directives: &[IgvmDirectiveHeader],
    mask: u32,
    max_pages: u64,
) -> Result<[u8; 32], ImageError> {
    let mut chain = Chain::new();
    let mut pages_left = max_pages;
    let mut budget = |pages: u64| {
        pages_left = pages_left.checked_sub(pages).ok_or_else(|| {
            ImageError::Igvm(format!("the file measures more than {max_pages} pages"))
        })?;
        Ok::<(), ImageError>(())
    };
    let mut areas: BTreeMap<u32, u64> = BTreeMap::new();
    let mut contexts = Vec::new();
    for d in directives {
        if d.compatibility_mask().is_some_and(|m| m & mask != mask) {
            continue;
        }
        match d {
            IgvmDirectiveHeader::PageData {
                gpa,
                flags,
                data_type,
                data,
                ..
            } => {
                if flags.shared() {
                    continue;
                }
                if *data_type != IgvmPageDataType::NORMAL {
                    return Err(ImageError::Igvm(
                        "a VBS page must be of the normal data type".into(),
                    ));
                }
                budget(1)?;
                if flags.unmeasured() {
                    chain.page(gpa / PAGE as u64, DATA_UNMEASURED, None);
                } else {
                    chain.page(gpa / PAGE as u64, 0, Some(data));
                }
            }
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes,
                parameter_area_index,
                ..
            } => {
                let previous = areas.insert(*parameter_area_index, *number_of_bytes);
                if previous.is_some() {
                    return Err(ImageError::Igvm(format!(
                        "parameter area {parameter_area_index} declared twice"
                    )));
                }
            }
            IgvmDirectiveHeader::ParameterInsert(insert) => {
                let bytes = areas.get(&insert.parameter_area_index).ok_or_else(|| {
                    ImageError::Igvm(format!(
                        "parameter area {} inserted but never declared",
                        insert.parameter_area_index
                    ))
                })?;
                budget(bytes / PAGE as u64)?;
                for page in 0..bytes / PAGE as u64 {
                    chain.page(insert.gpa / PAGE as u64 + page, DATA_UNMEASURED, None);
                }
            }
            IgvmDirectiveHeader::ErrorRange {
                gpa, size_bytes, ..
            } => {
                budget(u64::from(*size_bytes).div_ceil(PAGE as u64))?;
                for page in 0..u64::from(*size_bytes).div_ceil(PAGE as u64) {
                    chain.page(
                        gpa / PAGE as u64 + page,
                        ACCEPT_READ_WRITE | DATA_UNMEASURED,
                        None,
                    );
                }
            }
            IgvmDirectiveHeader::X64VbsVpContext { vtl, registers, .. } => {
                contexts.push((*vtl as u8, registers))
            }
            _ => {}
        }
    }
    // Registers are measured after every page.
    for (vtl, registers) in contexts {
        for r in registers {
            let (name, value) = register_name_and_value(r);
            chain.register(vtl, name, value);
        }
    }
    Ok(chain.1)
}

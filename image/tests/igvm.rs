//! The IGVM builder and measurement, on a synthetic firmware ELF.

use abi::igvm_layout::*;
use igvm::hv_defs::Vtl;
use igvm::registers::{SegmentRegister, TableRegister, X86Register};
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader, IgvmRevision};
use igvm_defs::{
    IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType, IGVM_VHS_PARAMETER,
    IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM,
};
use parapet_image::igvm_builder::{build, NATIVE_MASK, VBS_MASK};
use parapet_image::measure::{measurements, parse, vbs_boot_digest, vbs_boot_digest_within};
use parapet_image::ImageError;

const ENTRY: u64 = PARAVISOR_BASE + 0x40;

/// A minimal firmware ELF: one RX load segment at 1 MiB (0x1800 bytes of file data, 0x3000 in
/// memory, so the last page is .bss) and a note segment holding the IGVM entry note.
fn firmware(with_entry_note: bool, load_at: u64) -> Vec<u8> {
    let mut note = Vec::new();
    if with_entry_note {
        note.extend_from_slice(&(ENTRY_NOTE_NAME.len() as u32).to_le_bytes());
        note.extend_from_slice(&8u32.to_le_bytes());
        note.extend_from_slice(&ENTRY_NOTE_TYPE.to_le_bytes());
        note.extend_from_slice(ENTRY_NOTE_NAME);
        note.resize(note.len().next_multiple_of(4), 0);
        note.extend_from_slice(&ENTRY.to_le_bytes());
    }
    let code: Vec<u8> = (0..0x1800u32).map(|i| (i * 7 % 251) as u8).collect();
    let phoff = 64u64;
    let data_off = phoff + 2 * 56;
    let note_off = data_off + code.len() as u64;
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little-endian
    elf[6] = 1;
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86_64
    elf[24..32].copy_from_slice(&ENTRY.to_le_bytes());
    elf[32..40].copy_from_slice(&phoff.to_le_bytes());
    elf[52..54].copy_from_slice(&64u16.to_le_bytes());
    elf[54..56].copy_from_slice(&56u16.to_le_bytes());
    elf[56..58].copy_from_slice(&2u16.to_le_bytes());
    let phdr = |kind: u32, flags: u32, offset: u64, addr: u64, filesz: u64, memsz: u64| {
        let mut p = Vec::new();
        p.extend_from_slice(&kind.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        for v in [offset, addr, addr, filesz, memsz, 0x1000] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    };
    elf.extend(phdr(1, 5, data_off, load_at, code.len() as u64, 0x3000));
    elf.extend(phdr(
        4,
        4,
        note_off,
        0,
        note.len() as u64,
        note.len() as u64,
    ));
    elf.extend_from_slice(&code);
    elf.extend_from_slice(&note);
    elf
}

#[test]
fn builds_are_reproducible() {
    let fw = firmware(true, PARAVISOR_BASE);
    assert_eq!(build(&fw).unwrap(), build(&fw).unwrap());
}

#[test]
fn the_file_parses_and_holds_the_promised_layout() {
    let file = parse(&build(&firmware(true, PARAVISOR_BASE)).unwrap()).unwrap();
    let types: Vec<_> = file
        .platforms()
        .iter()
        .map(|IgvmPlatformHeader::SupportedPlatform(p)| {
            (p.platform_type, p.compatibility_mask, p.highest_vtl)
        })
        .collect();
    assert_eq!(
        types,
        [
            (IgvmPlatformType::NATIVE, NATIVE_MASK, 0),
            (IgvmPlatformType::VSM_ISOLATION, VBS_MASK, 2)
        ]
    );

    let page_at = |gpa: u64| {
        file.directives().iter().find_map(|d| match d {
            IgvmDirectiveHeader::PageData {
                gpa: g,
                data,
                compatibility_mask,
                ..
            } if *g == gpa => Some((data.clone(), *compatibility_mask)),
            _ => None,
        })
    };
    // Firmware bytes land at their link address; the .bss page is a zero page.
    let (first, mask) = page_at(PARAVISOR_BASE).expect("the first firmware page");
    assert_eq!(mask, NATIVE_MASK | VBS_MASK);
    assert_eq!(first[7], 49);
    let (second, _) = page_at(PARAVISOR_BASE + 0x1000).unwrap();
    assert_eq!(second[0x7ff], ((0x17ff * 7) % 251) as u8);
    assert!(
        second[0x800..].iter().all(|&b| b == 0),
        "past the file data: zeros"
    );
    assert!(
        page_at(PARAVISOR_BASE + 0x2000).unwrap().0.is_empty(),
        ".bss is a zero page"
    );
    // The PML4 points at the PDPT; the first PD maps 2 MiB pages from 0.
    let (pml4, _) = page_at(BOOT_TABLES).unwrap();
    assert_eq!(
        u64::from_le_bytes(pml4[..8].try_into().unwrap()),
        (BOOT_TABLES + 0x1000) | 3
    );
    let (pd, _) = page_at(BOOT_TABLES + 0x2000).unwrap();
    assert_eq!(
        u64::from_le_bytes(pd[8..16].try_into().unwrap()),
        0x20_0000 | 0x83
    );

    let inserts: Vec<u64> = file
        .directives()
        .iter()
        .filter_map(|d| match d {
            IgvmDirectiveHeader::ParameterInsert(i) => Some(i.gpa),
            _ => None,
        })
        .collect();
    assert_eq!(
        inserts,
        [VP_COUNT_PAGE, MEMORY_MAP_PAGES, COMMAND_LINE_PAGE]
    );
    assert!(file.directives().iter().any(|d| matches!(d,
        IgvmDirectiveHeader::RequiredMemory { gpa, number_of_bytes, vtl2_protectable: true, .. }
            if *gpa == PARAVISOR_BASE && u64::from(*number_of_bytes) == PARAVISOR_SIZE)));
    let native = file.directives().iter().find_map(|d| match d {
        IgvmDirectiveHeader::X64NativeVpContext { context, .. } => Some(context.clone()),
        _ => None,
    });
    let native = native.expect("a native VP context");
    assert_eq!(
        (native.rip, native.rsi, native.cr3),
        (ENTRY, VP_COUNT_PAGE, BOOT_TABLES)
    );
    let vbs = file.directives().iter().find_map(|d| match d {
        IgvmDirectiveHeader::X64VbsVpContext { vtl, registers, .. } => {
            Some((*vtl, registers.clone()))
        }
        _ => None,
    });
    let (vtl, registers) = vbs.expect("a VBS VP context");
    assert_eq!(vtl, Vtl::Vtl2);
    assert!(registers.contains(&X86Register::Rip(ENTRY)));
}

#[test]
fn our_vbs_digest_matches_the_igvm_crate_on_our_file() {
    let file = parse(&build(&firmware(true, PARAVISOR_BASE)).unwrap()).unwrap();
    let ours = vbs_boot_digest(file.directives(), VBS_MASK).unwrap();
    let theirs = igvm::measurement::generate_vbs_measurement(file.directives(), VBS_MASK).unwrap();
    assert_eq!(ours, theirs);
    let m = measurements(&file).unwrap();
    assert_eq!(m[0].digest, None, "native measures nothing");
    assert_eq!(m[1].digest.as_deref(), Some(&ours[..]));
}

#[test]
fn our_vbs_digest_matches_a_known_vector_covering_every_record_kind() {
    // Unmeasured pages, partial pages, parameter areas, error ranges and registers of each
    // encoding; the expected value was computed separately and agrees with the igvm crate.
    let platform = IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: 1,
        highest_vtl: 2,
        platform_type: IgvmPlatformType::VSM_ISOLATION,
        platform_version: 1,
        shared_gpa_boundary: 0,
    });
    let page = |gpa, data: Vec<u8>, unmeasured| IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: 1,
        flags: IgvmPageDataFlags::new().with_unmeasured(unmeasured),
        data_type: IgvmPageDataType::NORMAL,
        data,
    };
    let directives = vec![
        page(0, vec![0xaa; 4096], false),
        page(0x1000, vec![1, 2, 3], false),
        page(0x2000, vec![0x55; 4096], true),
        IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: 0x2000,
            parameter_area_index: 7,
            initial_data: vec![],
        },
        IgvmDirectiveHeader::VpCount(IGVM_VHS_PARAMETER {
            parameter_area_index: 7,
            byte_offset: 0,
        }),
        IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa: 0x10000,
            compatibility_mask: 1,
            parameter_area_index: 7,
        }),
        IgvmDirectiveHeader::ErrorRange {
            gpa: 0x20000,
            compatibility_mask: 1,
            size_bytes: 0x1000,
        },
        IgvmDirectiveHeader::X64VbsVpContext {
            vtl: Vtl::Vtl0,
            registers: vec![
                X86Register::Rip(0x1000),
                X86Register::Gdtr(TableRegister {
                    base: 0x5000,
                    limit: 0x17,
                }),
                X86Register::Cs(SegmentRegister {
                    base: 0,
                    limit: 0xffff_ffff,
                    selector: 8,
                    attributes: 0xa09b,
                }),
            ],
            compatibility_mask: 1,
        },
    ];
    let file = IgvmFile::new(IgvmRevision::V1, vec![platform], vec![], directives).unwrap();
    let ours = vbs_boot_digest(file.directives(), 1).unwrap();
    let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "915b6c126d018387221902b629afa5b709174c8ae70883fada5c75f47ce191bf"
    );
    assert_eq!(
        ours,
        igvm::measurement::generate_vbs_measurement(file.directives(), 1).unwrap()
    );
}

#[test]
fn a_firmware_without_the_entry_note_is_refused() {
    assert_eq!(
        build(&firmware(false, PARAVISOR_BASE)),
        Err(ImageError::NoIgvmEntry)
    );
}

#[test]
fn a_firmware_outside_the_paravisor_image_area_is_refused() {
    let err = build(&firmware(true, 0x8_0000)).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::OutsideRegion {
                start: 0x8_0000,
                ..
            }
        ),
        "{err:?}"
    );
    let err = build(&firmware(true, BOOT_TABLES - 0x1000)).unwrap_err();
    assert!(matches!(err, ImageError::OutsideRegion { .. }), "{err:?}");
}

use abi::igvm_checksum::reseal;

#[test]
fn resealing_an_unchanged_file_keeps_its_checksum() {
    let good = build(&firmware(true, PARAVISOR_BASE)).unwrap();
    let mut resealed = good.clone();
    resealed[20..24].fill(0);
    reseal(&mut resealed);
    assert_eq!(resealed, good);
}

#[test]
fn damaged_files_are_errors_not_crashes() {
    let good = build(&firmware(true, PARAVISOR_BASE)).unwrap();
    assert!(parse(&good[..good.len() - 1]).is_err(), "truncated");
    assert!(parse(&[]).is_err(), "empty");
    assert!(parse(b"IGVM but not really").is_err());
    // Flip every header byte (and a sample of the data) with the checksum made valid again,
    // so each damaged file reaches the parser and, when it parses, the measurement: both
    // must return, never panic. The measurement is bounded to 256 pages (1 MiB), as a
    // flipped size bit can ask for gigabytes.
    let field = |at: usize| u32::from_le_bytes(good[at..at + 4].try_into().unwrap()) as usize;
    let headers = field(8) + field(12);
    let (mut header_mutations_parsed, mut measured) = (0, 0);
    for at in (0..headers).chain((headers..good.len()).step_by(97)) {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= flip;
            reseal(&mut bad);
            match parse(&bad) {
                Ok(file) => {
                    header_mutations_parsed += usize::from(at < headers);
                    let digest = vbs_boot_digest_within(file.directives(), VBS_MASK, 256);
                    measured += usize::from(digest.is_ok());
                }
                Err(ImageError::Igvm(reason)) => {
                    assert!(!reason.contains("checksum"), "byte {at}: {reason}")
                }
                Err(e) => panic!("byte {at}: unexpected {e:?}"),
            }
        }
    }
    // Many header fields (GPAs, masks, sizes, register values) still parse when damaged.
    assert!(
        header_mutations_parsed > headers / 2,
        "only {header_mutations_parsed} damaged headers parsed"
    );
    assert!(measured > 0, "no damaged file was measured");
}

/// A scratch path for one test's file.
fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("parapet-image-{}-{name}", std::process::id()))
}

fn parapet_image(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_parapet-image"))
        .args(args)
        .output()
        .expect("running parapet-image")
}

#[test]
fn the_measure_command_prints_the_igvm_crates_vbs_digest() {
    let bytes = build(&firmware(true, PARAVISOR_BASE)).unwrap();
    let path = scratch("measure.igvm");
    std::fs::write(&path, &bytes).unwrap();
    let out = parapet_image(&["measure".as_ref(), path.as_os_str()]);
    std::fs::remove_file(&path).ok();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let file = parse(&bytes).unwrap();
    let expected = igvm::measurement::generate_vbs_measurement(file.directives(), VBS_MASK)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "native: not measured".to_string(),
            format!("vbs: {expected}")
        ],
        "{stdout}"
    );
}

#[test]
fn the_measure_command_refuses_a_damaged_file_in_one_line() {
    let mut bytes = build(&firmware(true, PARAVISOR_BASE)).unwrap();
    bytes[40] ^= 0xff;
    let path = scratch("damaged.igvm");
    std::fs::write(&path, &bytes).unwrap();
    let out = parapet_image(&["measure".as_ref(), path.as_os_str()]);
    std::fs::remove_file(&path).ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is not a valid IGVM file"), "{stderr}");
}

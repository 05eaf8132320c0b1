//! The images `cargo xtask build` writes pass inspection.

use parapet_image::{inspect, ImageInfo};
use xtask::{build, Arch, Flavor};

#[test]
fn the_x86_64_firmware_has_a_pvh_entry_in_its_text() {
    let path = build::firmware(Arch::X86_64, Flavor::Normal).expect("building the firmware");
    let bytes = std::fs::read(path).unwrap();
    match inspect(&bytes).unwrap() {
        ImageInfo::PvhElf { entry, .. } => assert_eq!(
            entry, 0x10_0000,
            "the linker script puts pvh_start at 1 MiB"
        ),
        other => panic!("expected a PVH ELF, got {other:?}"),
    }
}

#[test]
fn the_aarch64_firmware_is_a_linux_arm64_image() {
    let path = build::firmware(Arch::Aarch64, Flavor::Normal).expect("building the firmware");
    let bytes = std::fs::read(path).unwrap();
    match inspect(&bytes).unwrap() {
        ImageInfo::Arm64 {
            text_offset,
            image_bytes,
            file_bytes,
        } => {
            assert_eq!(text_offset, 0x80000);
            assert!(image_bytes >= file_bytes);
        }
        other => panic!("expected an arm64 image, got {other:?}"),
    }
}

#[test]
fn a_corrupted_elf_is_rejected() {
    let path = build::firmware(Arch::X86_64, Flavor::Normal).expect("building the firmware");
    let mut bytes = std::fs::read(path).unwrap();
    bytes[18] = 0xb7; // e_machine = aarch64
    assert!(inspect(&bytes).is_err());
    bytes.truncate(40);
    assert!(inspect(&bytes).is_err());
}

#[test]
fn the_real_firmware_igvm_is_reproducible_and_measured_alike_by_both_implementations() {
    let elf = build::firmware(Arch::X86_64, Flavor::Normal).expect("building the firmware");
    let bytes = std::fs::read(elf).unwrap();
    let first = parapet_image::igvm_builder::build(&bytes).unwrap();
    let second = parapet_image::igvm_builder::build(&bytes).unwrap();
    assert_eq!(first, second, "two builds from the same firmware differ");
    assert!(
        first.len() <= 1 << 20,
        "the IGVM file is {} bytes, over 1 MiB",
        first.len()
    );
    let file = parapet_image::measure::parse(&first).unwrap();
    let vbs = parapet_image::igvm_builder::VBS_MASK;
    assert_eq!(
        parapet_image::measure::vbs_boot_digest(file.directives(), vbs).unwrap(),
        igvm::measurement::generate_vbs_measurement(file.directives(), vbs).unwrap()
    );
}

/// Host paths the firmware builds must not embed (xtask remaps them): the checkout, and
/// where cargo and rustup keep sources.
fn host_paths() -> Vec<String> {
    let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let mut paths = vec![
        xtask::workspace_root(),
        home.join(".cargo"),
        home.join(".rustup"),
    ];
    paths.extend(
        ["CARGO_HOME", "RUSTUP_HOME"]
            .iter()
            .filter_map(|v| std::env::var_os(v).map(Into::into)),
    );
    paths
        .iter()
        .filter(|p| p.is_absolute())
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn the_firmware_images_name_no_host_path() {
    let images = [
        build::igvm(Flavor::Normal).expect("building the IGVM file"),
        build::firmware(Arch::Aarch64, Flavor::Normal).expect("building the firmware"),
    ];
    for image in images {
        let bytes = std::fs::read(&image).unwrap();
        for path in host_paths() {
            let found = bytes.windows(path.len()).any(|w| w == path.as_bytes());
            assert!(!found, "{} holds the host path {path}", image.display());
        }
    }
}

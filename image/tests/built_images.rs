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

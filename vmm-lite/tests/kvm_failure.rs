//! `vmm-lite run` when KVM cannot go on with the firmware's vCPU: one line on stderr naming
//! it, and exit status 3. The firmware is a few bytes built here, not Parapet.

use std::process::{Command, Stdio};

use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader, IgvmRevision};
use igvm_defs::{
    IgvmNativeVpContextX64, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
    IGVM_VHS_SUPPORTED_PLATFORM,
};
use zerocopy::FromZeros;

const NATIVE: u32 = 1;
const ENTRY: u64 = 0x1000;

/// A native-platform IGVM file entering flat 32-bit protected mode at `ENTRY`, where `code` is.
fn image(code: &[u8]) -> Vec<u8> {
    let mut ctx = IgvmNativeVpContextX64::new_zeroed();
    ctx.rip = ENTRY;
    ctx.rflags = 0x2;
    ctx.cr0 = 0x11; // PE, ET
                    // Present, 4 GiB granular, 32-bit: execute/read code, read/write data (VMX layout).
    (ctx.code_attributes, ctx.code_limit) = (0xc09b, u32::MAX);
    (ctx.data_attributes, ctx.data_limit) = (0xc093, u32::MAX);
    let directives = vec![
        IgvmDirectiveHeader::PageData {
            gpa: ENTRY,
            compatibility_mask: NATIVE,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data: code.to_vec(),
        },
        IgvmDirectiveHeader::X64NativeVpContext {
            compatibility_mask: NATIVE,
            vp_index: 0,
            context: Box::new(ctx),
        },
    ];
    let platform = IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: NATIVE,
        highest_vtl: 0,
        platform_type: IgvmPlatformType::NATIVE,
        platform_version: 1,
        shared_gpa_boundary: 0,
    });
    let file = IgvmFile::new(IgvmRevision::V1, vec![platform], vec![], directives).unwrap();
    let mut out = Vec::new();
    file.serialize(&mut out).unwrap();
    out
}

/// The shape tests hold the line to: `KVM cannot run (VTL0|VTL2) on vCPU \d+: .* at RIP
/// 0x[0-9a-f]+`.
fn has_the_stable_shape(line: &str) -> bool {
    let Some(rest) = line
        .strip_prefix("vmm-lite: KVM cannot run VTL0 on vCPU ")
        .or_else(|| line.strip_prefix("vmm-lite: KVM cannot run VTL2 on vCPU "))
    else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let Some((_, after_rip)) = rest[digits..]
        .strip_prefix(": ")
        .and_then(|r| r.split_once(" at RIP 0x"))
    else {
        return false;
    };
    digits > 0
        && after_rip
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[test]
fn an_instruction_kvm_cannot_emulate_ends_the_run_with_one_line_and_status_3() {
    // fld dword [0x80000000]: past the 16 MiB of RAM, so KVM must emulate the load, and its
    // emulator has no x87 loads. VP 1 waits for INIT-SIPI meanwhile: it must not hold the
    // process.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kvm-failure-fld.igvm");
    std::fs::write(&path, image(&[0xd9, 0x05, 0x00, 0x00, 0x00, 0x80])).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_vmm-lite"))
        .args([
            "run",
            "--mem",
            "16M",
            "--vps",
            "2",
            "--serial",
            "file:/dev/null",
        ])
        .arg("--igvm")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, not:\n{stderr}");
    let line = lines[0];
    assert!(has_the_stable_shape(line), "{line}");
    assert!(
        line.starts_with(
            "vmm-lite: KVM cannot run VTL2 on vCPU 0: emulation failure at RIP 0x1000, instruction bytes d9 05 00 00 00 80"
        ),
        "{line}"
    );
    assert!(line.ends_with(" (exit status 3)"), "{line}");
}

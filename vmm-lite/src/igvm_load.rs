//! Loading an IGVM file's native platform into guest memory (IGVM spec: directives are
//! carried out in file order; parameter areas are filled by the loader and inserted as
//! unmeasured pages).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi::igvm_memory_map::ENTRY_SIZE;
use igvm::hv_defs::Vtl;
use igvm::registers::X86Register;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader};
use igvm_defs::{IgvmNativeVpContextX64, IgvmPlatformType, IGVM_VHS_PARAMETER};
use zerocopy::FromZeros;

use crate::error::VmmError;
use crate::guest_memory::GuestMemory;
use crate::memory_map;

/// What the loader needs besides the file.
pub struct LoadConfig {
    pub vps: u32,
    pub cmdline: String,
}

/// The (start, size) of the `required` regions marked VTL2-protectable: the paravisor's own.
pub fn vtl2_protectable(required: &[(u64, u64, bool)]) -> Vec<(u64, u64)> {
    required
        .iter()
        .filter(|&&(_, _, protectable)| protectable)
        .map(|&(start, size, _)| (start, size))
        .collect()
}

/// What loading leaves for the VMM to start the VPs with.
#[derive(Debug)]
pub struct Loaded {
    pub context: IgvmNativeVpContextX64,
    /// Regions the image required: (start, size, VTL2-protectable).
    pub required: Vec<(u64, u64, bool)>,
    /// Parameters the image asked for that vmm-lite does not provide (left zeroed).
    pub unprovided: Vec<&'static str>,
}

/// Which of the file's platforms to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// No isolation: the firmware owns the machine.
    Native,
    /// VBS: the firmware runs in VTL2 behind the Hyper-V interface vmm-lite emulates.
    Vbs,
}

impl Platform {
    fn igvm_type(self) -> IgvmPlatformType {
        match self {
            Platform::Native => IgvmPlatformType::NATIVE,
            Platform::Vbs => IgvmPlatformType::VSM_ISOLATION,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Native => "native",
            Platform::Vbs => "vbs",
        }
    }
}

/// As [`parse_for`], for the native platform.
pub fn parse(bytes: &[u8], path: &str) -> Result<(IgvmFile, u32), VmmError> {
    parse_for(bytes, path, Platform::Native)
}

/// Parses `bytes` and returns the file with the compatibility mask of `platform`. The `igvm`
/// crate can abort on some malformed input; that is caught and reported.
pub fn parse_for(
    bytes: &[u8],
    path: &str,
    platform: Platform,
) -> Result<(IgvmFile, u32), VmmError> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let parsed = catch_unwind(AssertUnwindSafe(|| IgvmFile::new_from_binary(bytes, None)));
    std::panic::set_hook(previous);
    let bad = |reason: String| VmmError::BadIgvm {
        path: path.into(),
        reason,
    };
    let file = match parsed {
        Ok(Ok(file)) => file,
        Ok(Err(e)) => return Err(bad(e.to_string())),
        Err(_) => return Err(bad("its headers are inconsistent".into())),
    };
    let mask = file
        .platforms()
        .iter()
        .find_map(|IgvmPlatformHeader::SupportedPlatform(p)| {
            (p.platform_type == platform.igvm_type()).then_some(p.compatibility_mask)
        })
        .ok_or_else(|| VmmError::UnsupportedPlatform(path.into(), platform.name()))?;
    Ok((file, mask))
}

fn applies(d: &IgvmDirectiveHeader, mask: u32) -> bool {
    d.compatibility_mask().is_none_or(|m| m & mask != 0)
}

fn area<'a>(
    areas: &'a mut HashMap<u32, Vec<u8>>,
    p: &IGVM_VHS_PARAMETER,
    len: usize,
) -> Result<&'a mut [u8], VmmError> {
    let buffer = areas
        .get_mut(&p.parameter_area_index)
        .ok_or(VmmError::ParameterOutsideArea {
            area: p.parameter_area_index,
            offset: u64::from(p.byte_offset),
            size: 0,
        })?;
    let size = buffer.len() as u64;
    let start = p.byte_offset as usize;
    let end = start.checked_add(len).filter(|&e| e <= buffer.len());
    match end {
        Some(end) => Ok(&mut buffer[start..end]),
        None => Err(VmmError::ParameterOutsideArea {
            area: p.parameter_area_index,
            offset: u64::from(p.byte_offset),
            size,
        }),
    }
}

/// The VTL2 register list of a VBS VP context as one x64 context. Registers a list does not
/// name keep their reset values; MTRRs, PAT and TR (which the firmware loads itself) are not
/// carried over.
fn vbs_context(registers: &[X86Register]) -> IgvmNativeVpContextX64 {
    let mut c = IgvmNativeVpContextX64::new_zeroed();
    c.rflags = 0x2;
    for r in registers {
        match *r {
            X86Register::Gdtr(t) => (c.gdtr_base, c.gdtr_limit) = (t.base, t.limit),
            X86Register::Idtr(t) => (c.idtr_base, c.idtr_limit) = (t.base, t.limit),
            X86Register::Cs(s) => {
                (c.code_base, c.code_limit) = (s.base as u32, s.limit);
                (c.code_selector, c.code_attributes) = (s.selector, s.attributes);
            }
            X86Register::Ds(s) | X86Register::Es(s) | X86Register::Ss(s) | X86Register::Fs(s) => {
                (c.data_base, c.data_limit) = (s.base as u32, s.limit);
                (c.data_selector, c.data_attributes) = (s.selector, s.attributes);
            }
            X86Register::Gs(s) => c.gs_base = s.base,
            X86Register::Cr0(v) => c.cr0 = v,
            X86Register::Cr3(v) => c.cr3 = v,
            X86Register::Cr4(v) => c.cr4 = v,
            X86Register::Efer(v) => c.efer = v,
            X86Register::Rip(v) => c.rip = v,
            X86Register::Rsp(v) => c.rsp = v,
            X86Register::Rbp(v) => c.rbp = v,
            X86Register::Rsi(v) => c.rsi = v,
            X86Register::R8(v) => c.r8 = v,
            X86Register::R9(v) => c.r9 = v,
            X86Register::R10(v) => c.r10 = v,
            X86Register::R11(v) => c.r11 = v,
            X86Register::R12(v) => c.r12 = v,
            X86Register::Rflags(v) => c.rflags = v,
            _ => {}
        }
    }
    c
}

/// Carries out the chosen platform's directives into `memory`.
pub fn load(
    file: &IgvmFile,
    mask: u32,
    memory: &GuestMemory,
    config: &LoadConfig,
) -> Result<Loaded, VmmError> {
    let mut required = Vec::new();
    for d in file.directives().iter().filter(|d| applies(d, mask)) {
        if let IgvmDirectiveHeader::RequiredMemory {
            gpa,
            number_of_bytes,
            vtl2_protectable,
            ..
        } = d
        {
            let end = gpa.saturating_add(u64::from(*number_of_bytes));
            if end > memory.size() {
                return Err(VmmError::TooLittleMemory {
                    needed: end,
                    available: memory.size(),
                });
            }
            required.push((*gpa, u64::from(*number_of_bytes), *vtl2_protectable));
        }
    }
    // Only regions the image marks VTL2-protectable are reported as such; the rest stay
    // ordinary memory that merely has to exist.
    let map = memory_map::build(memory.size(), &vtl2_protectable(&required));

    let mut areas: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut context = None;
    let mut unprovided = Vec::new();
    let zero_page = [0u8; 4096];
    for d in file.directives().iter().filter(|d| applies(d, mask)) {
        match d {
            IgvmDirectiveHeader::PageData { gpa, data, .. } => {
                memory.write(*gpa, if data.is_empty() { &zero_page } else { data })?;
            }
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes,
                parameter_area_index,
                initial_data,
            } => {
                // An area ends up in guest RAM, so one larger than RAM is a bad file, not a
                // reason to allocate without bound.
                let pending: u64 = areas.values().map(|a| a.len() as u64).sum();
                if number_of_bytes.saturating_add(pending) > memory.size() {
                    return Err(VmmError::TooLittleMemory {
                        needed: number_of_bytes.saturating_add(pending),
                        available: memory.size(),
                    });
                }
                let mut buffer = initial_data.clone();
                buffer.resize(*number_of_bytes as usize, 0);
                areas.insert(*parameter_area_index, buffer);
            }
            IgvmDirectiveHeader::VpCount(p) => {
                area(&mut areas, p, 4)?.copy_from_slice(&config.vps.to_le_bytes())
            }
            IgvmDirectiveHeader::MemoryMap(p) => {
                let mut bytes: Vec<u8> = map.iter().flat_map(|e| e.to_bytes()).collect();
                let room = areas
                    .get(&p.parameter_area_index)
                    .map_or(0, |a| a.len().saturating_sub(p.byte_offset as usize));
                if room >= bytes.len() + ENTRY_SIZE {
                    bytes.extend_from_slice(&[0; ENTRY_SIZE]); // terminator, when it fits
                }
                area(&mut areas, p, bytes.len())?.copy_from_slice(&bytes);
            }
            IgvmDirectiveHeader::CommandLine(p) => {
                let mut bytes = config.cmdline.as_bytes().to_vec();
                bytes.push(0);
                let room = areas
                    .get(&p.parameter_area_index)
                    .map(|a| a.len().saturating_sub(p.byte_offset as usize));
                if let Some(room) = room.filter(|&room| bytes.len() > room) {
                    return Err(VmmError::CommandLineTooLong(bytes.len() - 1, room));
                }
                area(&mut areas, p, bytes.len())?.copy_from_slice(&bytes);
            }
            IgvmDirectiveHeader::ParameterInsert(insert) => {
                let buffer = areas.remove(&insert.parameter_area_index).ok_or(
                    VmmError::ParameterOutsideArea {
                        area: insert.parameter_area_index,
                        offset: 0,
                        size: 0,
                    },
                )?;
                memory.write(insert.gpa, &buffer)?;
            }
            IgvmDirectiveHeader::X64NativeVpContext {
                vp_index: 0,
                context: c,
                ..
            } => context = Some(**c),
            IgvmDirectiveHeader::X64VbsVpContext {
                vtl: Vtl::Vtl2,
                registers,
                ..
            } => context = Some(vbs_context(registers)),
            IgvmDirectiveHeader::Madt(_) => unprovided.push("MADT"),
            IgvmDirectiveHeader::Srat(_) => unprovided.push("SRAT"),
            IgvmDirectiveHeader::Slit(_) => unprovided.push("SLIT"),
            IgvmDirectiveHeader::Pptt(_) => unprovided.push("PPTT"),
            IgvmDirectiveHeader::MmioRanges(_) => unprovided.push("MMIO ranges"),
            IgvmDirectiveHeader::DeviceTree(_) => unprovided.push("device tree"),
            _ => {}
        }
    }
    let context = context.ok_or(VmmError::NoVpContext)?;
    Ok(Loaded {
        context,
        required,
        unprovided,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use igvm::IgvmRevision;
    use igvm_defs::{
        IgvmPageDataFlags, IgvmPageDataType, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM,
    };
    use zerocopy::FromZeros;

    const NATIVE: u32 = 1;
    const VBS: u32 = 2;

    fn platform(mask: u32, kind: IgvmPlatformType, vtl: u8) -> IgvmPlatformHeader {
        IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: mask,
            highest_vtl: vtl,
            platform_type: kind,
            platform_version: 1,
            shared_gpa_boundary: 0,
        })
    }

    fn page(gpa: u64, mask: u32, data: Vec<u8>) -> IgvmDirectiveHeader {
        IgvmDirectiveHeader::PageData {
            gpa,
            compatibility_mask: mask,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data,
        }
    }

    fn params(
        index: u32,
        gpa: u64,
        p: fn(IGVM_VHS_PARAMETER) -> IgvmDirectiveHeader,
    ) -> [IgvmDirectiveHeader; 3] {
        [
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes: 4096,
                parameter_area_index: index,
                initial_data: vec![],
            },
            p(IGVM_VHS_PARAMETER {
                parameter_area_index: index,
                byte_offset: 0,
            }),
            IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
                gpa,
                compatibility_mask: NATIVE | VBS,
                parameter_area_index: index,
            }),
        ]
    }

    /// A file like the image builder's: native + VBS platforms, pages for both and for VBS
    /// only, parameter areas, required memory, and a native context.
    fn image(required_end: u64) -> Vec<u8> {
        let mut ctx = IgvmNativeVpContextX64::new_zeroed();
        ctx.rip = 0x10_0000;
        let mut d = vec![
            page(0x10_0000, NATIVE | VBS, vec![0xc3; 16]),
            page(0x10_1000, VBS, vec![0xee; 16]),
            page(0x10_2000, NATIVE, vec![]),
        ];
        d.extend(params(0, 0x20_0000, IgvmDirectiveHeader::VpCount));
        d.extend(params(1, 0x20_1000, IgvmDirectiveHeader::MemoryMap));
        d.extend(params(2, 0x20_2000, IgvmDirectiveHeader::CommandLine));
        d.push(IgvmDirectiveHeader::RequiredMemory {
            gpa: 0x10_0000,
            compatibility_mask: NATIVE | VBS,
            number_of_bytes: (required_end - 0x10_0000) as u32,
            vtl2_protectable: true,
        });
        d.push(IgvmDirectiveHeader::X64NativeVpContext {
            compatibility_mask: NATIVE,
            vp_index: 0,
            context: Box::new(ctx),
        });
        let file = IgvmFile::new(
            IgvmRevision::V1,
            vec![
                platform(NATIVE, IgvmPlatformType::NATIVE, 0),
                platform(VBS, IgvmPlatformType::VSM_ISOLATION, 2),
            ],
            vec![],
            d,
        )
        .unwrap();
        let mut out = Vec::new();
        file.serialize(&mut out).unwrap();
        out
    }

    /// A native-only file: `directives`, then a VP context entering at 0x1000.
    fn native_file(mut directives: Vec<IgvmDirectiveHeader>) -> IgvmFile {
        let mut ctx = IgvmNativeVpContextX64::new_zeroed();
        ctx.rip = 0x1000;
        directives.push(IgvmDirectiveHeader::X64NativeVpContext {
            compatibility_mask: NATIVE,
            vp_index: 0,
            context: Box::new(ctx),
        });
        IgvmFile::new(
            IgvmRevision::V1,
            vec![platform(NATIVE, IgvmPlatformType::NATIVE, 0)],
            vec![],
            directives,
        )
        .unwrap()
    }

    /// Loads `file` into `ram` bytes with one VP and no command line.
    fn load_into(file: &IgvmFile, ram: u64) -> Result<Loaded, VmmError> {
        load_with_cmdline(file, ram, "")
    }

    fn load_with_cmdline(file: &IgvmFile, ram: u64, cmdline: &str) -> Result<Loaded, VmmError> {
        let memory = GuestMemory::new(ram).unwrap();
        load(
            file,
            NATIVE,
            &memory,
            &LoadConfig {
                vps: 1,
                cmdline: cmdline.into(),
            },
        )
    }

    fn read_u64(m: &GuestMemory, gpa: u64) -> u64 {
        let mut b = [0u8; 8];
        m.read(gpa, &mut b).unwrap();
        u64::from_le_bytes(b)
    }

    #[test]
    fn loads_native_pages_and_fills_parameters() {
        let (file, mask) = parse(&image(0x40_0000), "test.igvm").unwrap();
        let memory = GuestMemory::new(16 << 20).unwrap();
        memory.write(0x10_2000, &[0x77; 8]).unwrap();
        let loaded = load(
            &file,
            mask,
            &memory,
            &LoadConfig {
                vps: 3,
                cmdline: "parapet.log=debug".into(),
            },
        )
        .unwrap();
        assert_eq!(loaded.context.rip, 0x10_0000);
        assert_eq!(loaded.required, [(0x10_0000, 0x30_0000, true)]);
        assert_eq!(read_u64(&memory, 0x10_0000) & 0xff, 0xc3);
        assert_eq!(
            read_u64(&memory, 0x10_1000),
            0,
            "a VBS-only page is not loaded for native"
        );
        assert_eq!(
            read_u64(&memory, 0x10_2000),
            0,
            "a zero page clears what was there"
        );
        assert_eq!(read_u64(&memory, 0x20_0000) as u32, 3);
        let mut cmdline = [0u8; 18];
        memory.read(0x20_2000, &mut cmdline).unwrap();
        assert_eq!(&cmdline, b"parapet.log=debug\0");
        let mut map = [0u8; 4096];
        memory.read(0x20_1000, &mut map).unwrap();
        let entries: Vec<_> = abi::igvm_memory_map::entries(&map).collect();
        assert_eq!(
            entries,
            memory_map::build(16 << 20, &[(0x10_0000, 0x30_0000)])
        );
    }

    #[test]
    fn too_little_memory_is_refused() {
        let (file, _) = parse(&image(0x80_0000), "test.igvm").unwrap();
        let err = load_into(&file, 4 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                VmmError::TooLittleMemory {
                    needed: 0x80_0000,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn data_placed_outside_ram_is_refused() {
        let file = native_file(vec![
            page(0x1000, NATIVE, vec![1]),
            page(0x100_0000, NATIVE, vec![2]),
        ]);
        let err = load_into(&file, 0x80_0000).unwrap_err();
        assert!(
            matches!(err, VmmError::OutsideRam { gpa: 0x100_0000 }),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_a_vp_context_is_refused() {
        let file = IgvmFile::new(
            IgvmRevision::V1,
            vec![platform(NATIVE, IgvmPlatformType::NATIVE, 0)],
            vec![],
            vec![page(0x1000, NATIVE, vec![1])],
        )
        .unwrap();
        let err = load_into(&file, 0x80_0000).unwrap_err();
        assert!(matches!(err, VmmError::NoVpContext), "{err}");
    }

    #[test]
    fn a_parameter_area_larger_than_ram_is_refused_without_allocating_it() {
        let file = native_file(vec![
            page(0x1000, NATIVE, vec![1]),
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes: 1 << 50,
                parameter_area_index: 0,
                initial_data: vec![],
            },
        ]);
        let err = load_into(&file, 0x80_0000).unwrap_err();
        assert!(matches!(err, VmmError::TooLittleMemory { .. }), "{err}");
    }

    #[test]
    fn required_memory_at_the_top_of_the_address_space_is_refused() {
        let file = native_file(vec![
            page(0x1000, NATIVE, vec![1]),
            IgvmDirectiveHeader::RequiredMemory {
                gpa: !0xfff,
                compatibility_mask: NATIVE,
                number_of_bytes: 0x10_0000,
                vtl2_protectable: false,
            },
        ]);
        let err = load_into(&file, 0x80_0000).unwrap_err();
        assert!(matches!(err, VmmError::TooLittleMemory { .. }), "{err}");
    }

    #[test]
    fn an_overlong_command_line_is_refused() {
        let (file, _) = parse(&image(0x40_0000), "test.igvm").unwrap();
        let err = load_with_cmdline(&file, 16 << 20, &"x".repeat(5000)).unwrap_err();
        assert!(
            matches!(err, VmmError::CommandLineTooLong(5000, 4096)),
            "{err}"
        );
    }

    #[test]
    fn damaged_and_non_native_files_are_clear_errors() {
        let good = image(0x40_0000);
        assert!(matches!(
            parse(&good[..100], "t"),
            Err(VmmError::BadIgvm { .. })
        ));
        assert!(matches!(
            parse(b"not igvm", "t"),
            Err(VmmError::BadIgvm { .. })
        ));
        for at in (0..good.len().min(1500)).step_by(5) {
            let mut bad = good.clone();
            bad[at] ^= 0xa5;
            let _ = parse(&bad, "t");
        }
        let vbs_only = IgvmFile::new(
            IgvmRevision::V1,
            vec![platform(VBS, IgvmPlatformType::VSM_ISOLATION, 2)],
            vec![],
            vec![page(0x1000, VBS, vec![1])],
        )
        .unwrap();
        let mut bytes = Vec::new();
        vbs_only.serialize(&mut bytes).unwrap();
        assert!(matches!(
            parse(&bytes, "vbs.igvm"),
            Err(VmmError::UnsupportedPlatform(..))
        ));
    }
}

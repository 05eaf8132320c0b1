//! Loading an IGVM file's native platform into guest memory (IGVM spec: directives are
//! carried out in file order; parameter areas are filled by the loader and inserted as
//! unmeasured pages).

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi::igvm_layout::PAGE_SIZE;
use abi::igvm_memory_map::ENTRY_SIZE;
use igvm::hv_defs::Vtl;
use igvm::registers::X86Register;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader};
use igvm_defs::{
    IgvmEnvironmentInfo, IgvmNativeVpContextX64, IgvmPageDataFlags, IgvmPageDataType,
    IgvmPlatformType, IGVM_VHS_PARAMETER,
};
use zerocopy::{FromZeros, IntoBytes};

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

/// Who filled a guest page, for overlap errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filler {
    PageData,
    ParameterArea(u32),
}

impl std::fmt::Display for Filler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filler::PageData => f.write_str("page data"),
            Filler::ParameterArea(index) => write!(f, "parameter area {index}"),
        }
    }
}

/// The guest ranges page data and parameter inserts have filled, start -> (end, filler). Two
/// directives filling the same page would make the guest's memory depend on directive order,
/// so each page may be filled once. (Required memory is not filling: it names the region
/// that page data lands in.)
#[derive(Default)]
struct Filled(BTreeMap<u64, (u64, Filler)>);

impl Filled {
    /// Records `[start, start + len)` as `by`'s, unless part of it is filled already. The
    /// stored ranges are disjoint, so only the last one starting below the new end can
    /// overlap it.
    fn claim(&mut self, start: u64, len: u64, by: Filler) -> Result<(), VmmError> {
        if len == 0 {
            return Ok(());
        }
        let end = start.saturating_add(len);
        if let Some((&other_start, &(other_end, earlier))) = self.0.range(..end).next_back() {
            if other_end > start {
                return Err(VmmError::Overlap {
                    gpa: other_start.max(start),
                    filler: by,
                    earlier,
                });
            }
        }
        self.0.insert(start, (end, by));
        Ok(())
    }
}

fn unsupported(what: impl Into<String>) -> VmmError {
    VmmError::UnsupportedDirective(what.into())
}

/// Writes one page of page data (IGVM spec, IGVM_VHS_PAGE_DATA: the bytes the file holds,
/// zeros for the rest of the page) after checking it is a kind this loader can give.
fn load_page(
    memory: &GuestMemory,
    filled: &mut Filled,
    gpa: u64,
    flags: IgvmPageDataFlags,
    data_type: IgvmPageDataType,
    data: &[u8],
) -> Result<(), VmmError> {
    // `unmeasured` only matters to a measurement and `shared` to an isolated VM's host
    // visibility; on these platforms every page is host-visible anyway.
    if flags.is_2mb_page() {
        return Err(unsupported(format!("a 2 MiB page at {gpa:#x}")));
    }
    match data_type {
        IgvmPageDataType::NORMAL => {}
        // Pages SEV-SNP's launch gives a meaning (SEV-SNP Firmware ABI spec, SNP_LAUNCH_UPDATE
        // page types SECRETS and CPUID): the AMD secure processor fills or checks them, and
        // without SNP nothing can.
        IgvmPageDataType::SECRETS => {
            return Err(unsupported(format!("an SEV-SNP secrets page at {gpa:#x}")))
        }
        IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => {
            return Err(unsupported(format!("an SEV-SNP CPUID page at {gpa:#x}")))
        }
        other => return Err(unsupported(format!("page data of type {other:?}"))),
    }
    filled.claim(gpa, PAGE_SIZE, Filler::PageData)?;
    let mut page = [0u8; PAGE_SIZE as usize];
    let len = data.len().min(page.len());
    page[..len].copy_from_slice(&data[..len]);
    memory.write(gpa, &page)
}

/// The VTL2 register list of a VBS VP context as one x64 context. Registers a list does not
/// name keep their reset values. Registers the native context cannot carry (TR, PAT, MTRRs),
/// or data segments that differ (vmm-lite loads one into DS, ES, FS, GS and SS, GS with its
/// own base), would leave the firmware in a state other than the file's, so they are refused.
fn vbs_context(registers: &[X86Register]) -> Result<IgvmNativeVpContextX64, VmmError> {
    let mut c = IgvmNativeVpContextX64::new_zeroed();
    c.rflags = 0x2;
    // (selector, attributes, limit) of the data segments, and the base of all but GS.
    let mut data_shape = None;
    let mut data_base = None;
    for r in registers {
        match *r {
            X86Register::Gdtr(t) => (c.gdtr_base, c.gdtr_limit) = (t.base, t.limit),
            X86Register::Idtr(t) => (c.idtr_base, c.idtr_limit) = (t.base, t.limit),
            X86Register::Cs(s) => {
                c.code_base = u32::try_from(s.base)
                    .map_err(|_| unsupported("a CS base above 4 GiB in the VBS VP context"))?;
                (c.code_limit, c.code_selector, c.code_attributes) =
                    (s.limit, s.selector, s.attributes);
            }
            X86Register::Ds(s) | X86Register::Es(s) | X86Register::Ss(s) | X86Register::Fs(s) => {
                agree(&mut data_shape, (s.selector, s.attributes, s.limit))?;
                agree(&mut data_base, s.base)?;
                c.data_base = u32::try_from(s.base).map_err(|_| {
                    unsupported("a data segment base above 4 GiB in the VBS VP context")
                })?;
                (c.data_limit, c.data_selector, c.data_attributes) =
                    (s.limit, s.selector, s.attributes);
            }
            X86Register::Gs(s) => {
                agree(&mut data_shape, (s.selector, s.attributes, s.limit))?;
                c.gs_base = s.base;
                (c.data_limit, c.data_selector, c.data_attributes) =
                    (s.limit, s.selector, s.attributes);
            }
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
            X86Register::Tr(_) => return Err(unsupported("TR in the VBS VP context")),
            X86Register::Pat(_) => return Err(unsupported("PAT in the VBS VP context")),
            X86Register::MtrrDefType(_)
            | X86Register::MtrrPhysBase0(_)
            | X86Register::MtrrPhysMask0(_)
            | X86Register::MtrrPhysBase1(_)
            | X86Register::MtrrPhysMask1(_)
            | X86Register::MtrrPhysBase2(_)
            | X86Register::MtrrPhysMask2(_)
            | X86Register::MtrrPhysBase3(_)
            | X86Register::MtrrPhysMask3(_)
            | X86Register::MtrrPhysBase4(_)
            | X86Register::MtrrPhysMask4(_)
            | X86Register::MtrrFix64k00000(_)
            | X86Register::MtrrFix16k80000(_)
            | X86Register::MtrrFix4kE0000(_)
            | X86Register::MtrrFix4kE8000(_)
            | X86Register::MtrrFix4kF0000(_)
            | X86Register::MtrrFix4kF8000(_) => {
                return Err(unsupported("MTRRs in the VBS VP context"))
            }
        }
    }
    Ok(c)
}

/// Records a data segment's `value`, which must match the ones seen before.
fn agree<T: PartialEq + Copy>(seen: &mut Option<T>, value: T) -> Result<(), VmmError> {
    match *seen {
        Some(earlier) if earlier != value => Err(unsupported(
            "data segments (DS, ES, FS, GS, SS) that differ in the VBS VP context",
        )),
        _ => {
            *seen = Some(value);
            Ok(())
        }
    }
}

/// Sets the one VP context vmm-lite starts from (VP 0's); a second is a bad file.
fn set_context(
    slot: &mut Option<IgvmNativeVpContextX64>,
    context: IgvmNativeVpContextX64,
) -> Result<(), VmmError> {
    if slot.replace(context).is_some() {
        return Err(VmmError::DuplicateVpContext);
    }
    Ok(())
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
    let mut filled = Filled::default();
    let mut context = None;
    let mut unprovided = Vec::new();
    for d in file.directives().iter().filter(|d| applies(d, mask)) {
        match d {
            IgvmDirectiveHeader::PageData {
                gpa,
                flags,
                data_type,
                data,
                ..
            } => load_page(memory, &mut filled, *gpa, *flags, *data_type, data)?,
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
            // Memory is the guest's by default, as in any VM that is not hardware-isolated.
            IgvmDirectiveHeader::EnvironmentInfo(p) => area(&mut areas, p, 4)?
                .copy_from_slice(IgvmEnvironmentInfo::new().with_memory_is_shared(false).as_bytes()),
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
            IgvmDirectiveHeader::Madt(p) => unprovided.push(leave_zero(&mut areas, p, "MADT")?),
            IgvmDirectiveHeader::Srat(p) => unprovided.push(leave_zero(&mut areas, p, "SRAT")?),
            IgvmDirectiveHeader::Slit(p) => unprovided.push(leave_zero(&mut areas, p, "SLIT")?),
            IgvmDirectiveHeader::Pptt(p) => unprovided.push(leave_zero(&mut areas, p, "PPTT")?),
            IgvmDirectiveHeader::MmioRanges(p) => {
                unprovided.push(leave_zero(&mut areas, p, "MMIO ranges")?)
            }
            IgvmDirectiveHeader::DeviceTree(p) => {
                unprovided.push(leave_zero(&mut areas, p, "device tree")?)
            }
            IgvmDirectiveHeader::ParameterInsert(insert) => {
                let index = insert.parameter_area_index;
                let buffer = areas.remove(&index).ok_or(VmmError::ParameterOutsideArea {
                    area: index,
                    offset: 0,
                    size: 0,
                })?;
                let by = Filler::ParameterArea(index);
                filled.claim(insert.gpa, buffer.len() as u64, by)?;
                memory.write(insert.gpa, &buffer)?;
            }
            // Read in the first pass.
            IgvmDirectiveHeader::RequiredMemory { .. } => {}
            IgvmDirectiveHeader::X64NativeVpContext {
                vp_index: 0,
                context: c,
                ..
            } => set_context(&mut context, **c)?,
            IgvmDirectiveHeader::X64NativeVpContext { vp_index, .. } => {
                return Err(unsupported(format!(
                    "a VP context for VP {vp_index} (vmm-lite starts VPs other than 0 with INIT and SIPI)"
                )))
            }
            IgvmDirectiveHeader::X64VbsVpContext {
                vtl: Vtl::Vtl2,
                registers,
                ..
            } => set_context(&mut context, vbs_context(registers)?)?,
            IgvmDirectiveHeader::X64VbsVpContext { vtl, .. } => {
                return Err(unsupported(format!(
                    "a VBS VP context for {vtl:?} (vmm-lite enters the paravisor in VTL2)"
                )))
            }
            IgvmDirectiveHeader::SnpVpContext { .. } => {
                return Err(unsupported("an SEV-SNP VP context (VMSA)"))
            }
            IgvmDirectiveHeader::AArch64VbsVpContext { .. }
            | IgvmDirectiveHeader::AArch64CcaVpContext { .. } => {
                return Err(unsupported("an aarch64 VP context"))
            }
            // Informational here: an error range is memory the host may read the guest's
            // error reports from, and on these platforms all guest memory is host-visible.
            IgvmDirectiveHeader::ErrorRange { .. } => {}
            // Launch identities a platform's firmware checks (the SNP ID block by the AMD
            // secure processor, the VBS measurement by Hyper-V); vmm-lite does no attestation,
            // and neither changes what the guest sees.
            IgvmDirectiveHeader::SnpIdBlock { .. } | IgvmDirectiveHeader::VbsMeasurement { .. } => {
            }
        }
    }
    let context = context.ok_or(VmmError::NoVpContext)?;
    Ok(Loaded {
        context,
        required,
        unprovided,
    })
}

/// A parameter vmm-lite does not provide stays zero (the firmware finds its CPUs and memory
/// in the VP count and memory map) and is reported by `name`; it must still name a live area.
fn leave_zero(
    areas: &mut HashMap<u32, Vec<u8>>,
    p: &IGVM_VHS_PARAMETER,
    name: &'static str,
) -> Result<&'static str, VmmError> {
    area(areas, p, 0)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use igvm::registers::{SegmentRegister, TableRegister};
    use igvm::snp_defs::SevVmsa;
    use igvm::IgvmRevision;
    use igvm_defs::{IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM};

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

    /// An area of `pages` pages with a VP count in it, inserted at `gpa`.
    fn area_at(index: u32, gpa: u64, pages: u64) -> [IgvmDirectiveHeader; 3] {
        let [_, count, insert] = params(index, gpa, IgvmDirectiveHeader::VpCount);
        let area = IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: pages * PAGE_SIZE,
            parameter_area_index: index,
            initial_data: vec![],
        };
        [area, count, insert]
    }

    fn overlap(gpa: u64, filler: Filler, earlier: Filler) -> impl Fn(&VmmError) -> bool {
        move |e| {
            matches!(e, VmmError::Overlap { gpa: g, filler: f, earlier: x }
                if *g == gpa && *f == filler && *x == earlier)
        }
    }

    #[test]
    fn page_data_filling_a_page_twice_is_refused() {
        let file = native_file(vec![
            page(0x2000, NATIVE, vec![1]),
            page(0x3000, NATIVE, vec![2]),
            page(0x2000, NATIVE, vec![3]),
        ]);
        let err = load_into(&file, 0x80_0000).unwrap_err();
        let expected = overlap(0x2000, Filler::PageData, Filler::PageData);
        assert!(expected(&err), "{err}");
        assert!(err.to_string().contains("0x2000"), "{err}");
    }

    #[test]
    fn page_data_and_parameter_areas_over_each_other_are_refused() {
        let mut parameters_first = area_at(0, 0x3000, 2).to_vec();
        parameters_first.push(page(0x4000, NATIVE, vec![1]));
        let err = load_into(&native_file(parameters_first), 0x80_0000).unwrap_err();
        let expected = overlap(0x4000, Filler::PageData, Filler::ParameterArea(0));
        assert!(expected(&err), "{err}");

        let mut page_first = vec![page(0x4000, NATIVE, vec![1])];
        page_first.extend(area_at(3, 0x3000, 2));
        let err = load_into(&native_file(page_first), 0x80_0000).unwrap_err();
        let expected = overlap(0x4000, Filler::ParameterArea(3), Filler::PageData);
        assert!(expected(&err), "{err}");

        let mut two_areas = area_at(0, 0x3000, 2).to_vec();
        two_areas.extend(area_at(1, 0x2000, 2));
        let err = load_into(&native_file(two_areas), 0x80_0000).unwrap_err();
        let expected = overlap(0x3000, Filler::ParameterArea(1), Filler::ParameterArea(0));
        assert!(expected(&err), "{err}");

        // Neighbours are not overlaps.
        let mut adjacent = vec![page(0x2000, NATIVE, vec![1]), page(0x5000, NATIVE, vec![2])];
        adjacent.extend(area_at(0, 0x3000, 2));
        load_into(&native_file(adjacent), 0x80_0000).unwrap();
    }

    #[test]
    fn a_parameter_area_inserted_past_the_end_of_ram_is_refused() {
        let file = native_file(area_at(0, 0x7f_f000, 2).to_vec());
        let err = load_into(&file, 0x80_0000).unwrap_err();
        assert!(
            matches!(err, VmmError::OutsideRam { gpa: 0x7f_f000 }),
            "{err}"
        );
        let file = native_file(vec![page(0x80_0000, NATIVE, vec![1])]);
        let err = load_into(&file, 0x80_0000).unwrap_err();
        assert!(
            matches!(err, VmmError::OutsideRam { gpa: 0x80_0000 }),
            "{err}"
        );
    }

    #[test]
    fn a_parameter_past_the_end_of_its_area_is_refused() {
        let [area, _, insert] = params(4, 0x3000, IgvmDirectiveHeader::VpCount);
        let past_the_end = IgvmDirectiveHeader::VpCount(IGVM_VHS_PARAMETER {
            parameter_area_index: 4,
            byte_offset: 4094,
        });
        let file = native_file(vec![area, past_the_end, insert]);
        let err = load_into(&file, 0x80_0000).unwrap_err();
        assert!(
            matches!(
                err,
                VmmError::ParameterOutsideArea {
                    area: 4,
                    offset: 4094,
                    size: 4096
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_parameter_naming_an_undeclared_area_is_refused() {
        // The igvm crate refuses such a file outright, so it never reaches `load`...
        let count = IgvmDirectiveHeader::VpCount(IGVM_VHS_PARAMETER {
            parameter_area_index: 9,
            byte_offset: 0,
        });
        let insert = IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa: 0x3000,
            compatibility_mask: NATIVE,
            parameter_area_index: 9,
        });
        for directive in [count.clone(), insert] {
            let file = IgvmFile::new(
                IgvmRevision::V1,
                vec![platform(NATIVE, IgvmPlatformType::NATIVE, 0)],
                vec![],
                vec![directive],
            );
            assert!(file.is_err(), "the igvm crate accepted an undeclared area");
        }
        // ...and the loader's own lookup refuses it too.
        let IgvmDirectiveHeader::VpCount(p) = count else {
            unreachable!()
        };
        let err = area(&mut HashMap::new(), &p, 4).unwrap_err();
        assert!(
            matches!(err, VmmError::ParameterOutsideArea { area: 9, .. }),
            "{err}"
        );
    }

    #[test]
    fn environment_info_says_memory_is_the_guests() {
        let file = native_file(vec![
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes: 4096,
                parameter_area_index: 0,
                initial_data: vec![0xff; 16],
            },
            IgvmDirectiveHeader::EnvironmentInfo(IGVM_VHS_PARAMETER {
                parameter_area_index: 0,
                byte_offset: 8,
            }),
            IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
                gpa: 0x3000,
                compatibility_mask: NATIVE,
                parameter_area_index: 0,
            }),
        ]);
        let memory = GuestMemory::new(0x80_0000).unwrap();
        let config = LoadConfig {
            vps: 1,
            cmdline: String::new(),
        };
        load(&file, NATIVE, &memory, &config).unwrap();
        let mut area = [0u8; 16];
        memory.read(0x3000, &mut area).unwrap();
        assert_eq!(
            area,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn tables_vmm_lite_does_not_provide_are_reported_and_left_zero() {
        let mut directives = params(0, 0x3000, IgvmDirectiveHeader::Madt).to_vec();
        directives.extend(params(1, 0x4000, IgvmDirectiveHeader::DeviceTree));
        let loaded = load_into(&native_file(directives), 0x80_0000).unwrap();
        assert_eq!(loaded.unprovided, ["MADT", "device tree"]);
    }

    #[test]
    fn informational_directives_are_accepted() {
        let file = native_file(vec![
            IgvmDirectiveHeader::ErrorRange {
                gpa: 0x5000,
                compatibility_mask: NATIVE,
                size_bytes: 0x1000,
            },
            IgvmDirectiveHeader::VbsMeasurement {
                compatibility_mask: NATIVE,
                version: 1,
                product_id: 0,
                module_id: 0,
                security_version: 0,
                policy_flags: 0,
                boot_digest_algo: 0,
                signing_algo: 0,
                boot_measurement_digest: Box::new([0; 64]),
                signature: Box::new([0; 256]),
                public_key: Box::new([0; 512]),
            },
        ]);
        let loaded = load_into(&file, 0x80_0000).unwrap();
        assert_eq!(loaded.context.rip, 0x1000);
    }

    fn unsupported_load(directives: Vec<IgvmDirectiveHeader>) -> String {
        match load_into(&native_file(directives), 0x80_0000) {
            Err(VmmError::UnsupportedDirective(what)) => what,
            other => panic!("expected UnsupportedDirective, got {other:?}"),
        }
    }

    #[test]
    fn directives_that_would_change_what_the_guest_sees_are_refused() {
        let ap_context = IgvmDirectiveHeader::X64NativeVpContext {
            compatibility_mask: NATIVE,
            vp_index: 1,
            context: Box::new(IgvmNativeVpContextX64::new_zeroed()),
        };
        assert!(unsupported_load(vec![ap_context]).contains("VP 1"));
        let vmsa = IgvmDirectiveHeader::SnpVpContext {
            gpa: 0x6000,
            compatibility_mask: NATIVE,
            vp_index: 0,
            vmsa: SevVmsa::new_box_zeroed().unwrap(),
        };
        assert!(unsupported_load(vec![vmsa]).contains("SEV-SNP VP context"));
        let typed = |data_type| IgvmDirectiveHeader::PageData {
            gpa: 0x7000,
            compatibility_mask: NATIVE,
            flags: IgvmPageDataFlags::new(),
            data_type,
            data: vec![],
        };
        let secrets = unsupported_load(vec![typed(IgvmPageDataType::SECRETS)]);
        assert!(secrets.contains("secrets page at 0x7000"), "{secrets}");
        let cpuid = unsupported_load(vec![typed(IgvmPageDataType::CPUID_DATA)]);
        assert!(cpuid.contains("CPUID page at 0x7000"), "{cpuid}");
        let large = IgvmDirectiveHeader::PageData {
            gpa: 0x20_0000,
            compatibility_mask: NATIVE,
            flags: IgvmPageDataFlags::new().with_is_2mb_page(true),
            data_type: IgvmPageDataType::NORMAL,
            data: vec![],
        };
        assert!(unsupported_load(vec![large]).contains("2 MiB page at 0x200000"));
    }

    #[test]
    fn a_second_vp_context_for_vp_0_is_refused() {
        let second = IgvmDirectiveHeader::X64NativeVpContext {
            compatibility_mask: NATIVE,
            vp_index: 0,
            context: Box::new(IgvmNativeVpContextX64::new_zeroed()),
        };
        let err = load_into(&native_file(vec![second]), 0x80_0000).unwrap_err();
        assert!(matches!(err, VmmError::DuplicateVpContext), "{err}");
    }

    fn segment(selector: u16, attributes: u16) -> SegmentRegister {
        SegmentRegister {
            base: 0,
            limit: u32::MAX,
            selector,
            attributes,
        }
    }

    /// Loads a VBS-only file whose VP context for `vtl` holds `registers`.
    fn load_vbs(vtl: Vtl, registers: Vec<X86Register>) -> Result<Loaded, VmmError> {
        let file = IgvmFile::new(
            IgvmRevision::V1,
            vec![platform(VBS, IgvmPlatformType::VSM_ISOLATION, 2)],
            vec![],
            vec![
                page(0x1000, VBS, vec![0xf4]),
                IgvmDirectiveHeader::X64VbsVpContext {
                    vtl,
                    registers,
                    compatibility_mask: VBS,
                },
            ],
        )
        .unwrap();
        let mut bytes = Vec::new();
        file.serialize(&mut bytes).unwrap();
        let (file, mask) = parse_for(&bytes, "vbs.igvm", Platform::Vbs).unwrap();
        let memory = GuestMemory::new(0x80_0000).unwrap();
        let config = LoadConfig {
            vps: 1,
            cmdline: String::new(),
        };
        load(&file, mask, &memory, &config)
    }

    #[test]
    fn the_vtl2_vbs_context_becomes_the_entry_context() {
        let (code, data) = (segment(0x08, 0xa09b), segment(0x10, 0xc093));
        let gs = SegmentRegister {
            base: 0xffff_8000_0000_0000,
            ..data
        };
        let registers = vec![
            X86Register::Gdtr(TableRegister {
                base: 0x4000,
                limit: 0x17,
            }),
            X86Register::Idtr(TableRegister {
                base: 0x5000,
                limit: 0xfff,
            }),
            X86Register::Cs(code),
            X86Register::Ds(data),
            X86Register::Es(data),
            X86Register::Fs(data),
            X86Register::Ss(data),
            X86Register::Gs(gs),
            X86Register::Cr0(0x8001_0033),
            X86Register::Cr3(0x6000),
            X86Register::Cr4(0x20),
            X86Register::Efer(0xd00),
            X86Register::Rip(0x1000),
            X86Register::Rsp(0x2000),
            X86Register::Rbp(0x2100),
            X86Register::Rsi(0x3000),
            X86Register::R8(8),
            X86Register::R9(9),
            X86Register::R10(10),
            X86Register::R11(11),
            X86Register::R12(12),
            X86Register::Rflags(0x202),
        ];
        let c = load_vbs(Vtl::Vtl2, registers).unwrap().context;
        assert_eq!((c.gdtr_base, c.gdtr_limit), (0x4000, 0x17));
        assert_eq!((c.idtr_base, c.idtr_limit), (0x5000, 0xfff));
        assert_eq!((c.code_selector, c.code_attributes), (0x08, 0xa09b));
        assert_eq!((c.code_base, c.code_limit), (0, u32::MAX));
        assert_eq!((c.data_selector, c.data_attributes), (0x10, 0xc093));
        assert_eq!((c.data_base, c.data_limit), (0, u32::MAX));
        assert_eq!(c.gs_base, 0xffff_8000_0000_0000);
        assert_eq!(
            (c.cr0, c.cr3, c.cr4, c.efer),
            (0x8001_0033, 0x6000, 0x20, 0xd00)
        );
        assert_eq!(
            (c.rip, c.rsp, c.rbp, c.rsi),
            (0x1000, 0x2000, 0x2100, 0x3000)
        );
        assert_eq!((c.r8, c.r9, c.r10, c.r11, c.r12), (8, 9, 10, 11, 12));
        assert_eq!(c.rflags, 0x202);

        let unnamed = load_vbs(Vtl::Vtl2, vec![X86Register::Rip(0x1000)]).unwrap();
        assert_eq!(unnamed.context.rflags, 0x2, "RFLAGS keeps its reset value");
    }

    #[test]
    fn vbs_contexts_vmm_lite_cannot_honour_are_refused() {
        let vtl0 = load_vbs(Vtl::Vtl0, vec![X86Register::Rip(0x1000)]).unwrap_err();
        assert!(
            matches!(&vtl0, VmmError::UnsupportedDirective(w) if w.contains("Vtl0")),
            "{vtl0}"
        );
        let data = segment(0x10, 0xc093);
        let refused = [
            vec![X86Register::Tr(segment(0x18, 0x8b))],
            vec![X86Register::Pat(0x0007_0406_0007_0406)],
            vec![X86Register::MtrrDefType(0xc06)],
            vec![
                X86Register::Ds(data),
                X86Register::Fs(segment(0x18, 0xc093)),
            ],
            vec![
                X86Register::Ds(data),
                X86Register::Gs(segment(0x10, 0xc09b)),
            ],
            vec![
                X86Register::Ds(data),
                X86Register::Ss(SegmentRegister {
                    base: 0x1000,
                    ..data
                }),
            ],
            vec![X86Register::Ds(SegmentRegister {
                base: 1 << 32,
                ..data
            })],
        ];
        for registers in refused {
            let err = vbs_context(&registers).unwrap_err();
            assert!(
                matches!(err, VmmError::UnsupportedDirective(_)),
                "{registers:?}: {err}"
            );
        }
    }

    use abi::igvm_checksum::reseal;

    #[test]
    fn resealing_an_unchanged_file_keeps_its_checksum() {
        let good = image(0x40_0000);
        let mut resealed = good.clone();
        resealed[20..24].fill(0);
        reseal(&mut resealed);
        assert_eq!(resealed, good);
    }

    /// Where the variable headers end (IGVM_FIXED_HEADER: offset at 8, size at 12).
    fn headers_end(file: &[u8]) -> usize {
        let field = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        field(8) + field(12)
    }

    /// Every header byte (and a sample of the data) flipped in turn, with the checksum made
    /// valid again: the parser and the loader see each damaged file and must answer with a
    /// result, never a panic.
    #[test]
    fn damaged_files_reach_the_parser_and_loader_without_panicking() {
        let good = image(0x40_0000);
        let headers = headers_end(&good);
        let memory = GuestMemory::new(16 << 20).unwrap();
        let config = LoadConfig {
            vps: 2,
            cmdline: "x".into(),
        };
        let (mut header_mutations_parsed, mut loaded) = (0, 0);
        let offsets = (0..headers).chain((headers..good.len()).step_by(61));
        for at in offsets {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                reseal(&mut bad);
                match parse(&bad, "t") {
                    Ok((file, mask)) => {
                        header_mutations_parsed += usize::from(at < headers);
                        loaded += usize::from(load(&file, mask, &memory, &config).is_ok());
                    }
                    Err(VmmError::BadIgvm { reason, .. }) => {
                        assert!(!reason.contains("checksum"), "byte {at}: {reason}")
                    }
                    Err(_) => {}
                }
            }
        }
        // Many header fields (GPAs, masks, sizes, register values) still parse when damaged.
        assert!(
            header_mutations_parsed > headers / 2,
            "only {header_mutations_parsed} damaged headers parsed"
        );
        assert!(loaded > 0, "no damaged file loaded");
    }
}

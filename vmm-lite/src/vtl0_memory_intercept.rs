//! A VTL0 access to memory its view does not map (the paravisor's region, or past RAM: the
//! devices VTL2 emulates, such as VTL0's I/O APIC), turned into the memory intercept Hyper-V
//! sends: VTL0 stopped before the instruction, whose bytes the message carries, for VTL2 to
//! emulate (TLFS §13.2, HV_X64_MEMORY_INTERCEPT_MESSAGE).
//!
//! KVM stops elsewhere, and vmm-lite finds the instruction with the decoder Parapet emulates
//! these accesses with (`isolation::x86_insn`: MOV, MOVZX, MOVSX between a register or an
//! immediate and memory):
//! - a read stops at the instruction with the load pending: the instruction is at RIP. KVM's
//!   load is finished with all ones and the registers put back, undoing it.
//! - a write stops past the instruction, the data in the exit (KVM's write went nowhere):
//!   the instruction is the one ending at RIP that writes that many bytes of that value. Of
//!   the readings that fit, the shortest wins; all of them store the same bytes.
//! - a string move (MOVS, Linux's `memcpy_fromio`/`memcpy_toio`) from the device stops at
//!   the instruction before its first element, like a read. One to the device stops after an
//!   element, its RSI, RDI and RCX stepped for it: at the instruction while a REP goes on,
//!   past it after the last element. The element is stepped back, so VTL2 moves it again.
//!
//! Where no instruction fits (another string instruction, an encoding the decoder does not know,
//! bytes VTL0 may not read) the access stays as KVM finished it, as an empty bus, and the
//! message is a notice of it after the fact: instruction length and byte count 0, RIP past
//! the access (`MemoryIntercept::is_completed_notice`).

use hvdef::intercept::AccessType;
use hvdef::message::{message_type, HvMessage, MemoryIntercept};
use isolation::x86_insn::{self, Access, CodeMode, Destination, MemoryInstruction, Source};
use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;

use crate::guest_memory::GuestMemory;
use crate::port_io_decode::{CpuMode, MAX_INSTRUCTION_LEN};
use crate::vcpu_state::{
    complete_pending, cpu_mode, data_segment_base, general_registers, LinearMemory,
};
use crate::vtl0_intercept::{header, kvm_err, Intercepted};

/// What KVM reported: the address, the access size, and a write's bytes.
pub struct MemoryExit<'a> {
    pub gpa: u64,
    pub size: usize,
    pub written: Option<&'a [u8]>,
}

/// The instruction behind a memory exit: where it starts, its length, its bytes, and for a
/// string move to the device the element KVM already moved.
struct Found {
    start: u64,
    length: u8,
    bytes: Vec<u8>,
    moved: Option<Element>,
}

/// One element of a string move: `size` bytes, index registers `address_size` bytes wide.
#[derive(Clone, Copy)]
struct Element {
    size: u8,
    address_size: u8,
    rep: bool,
}

/// RFLAGS.DF: string instructions step downwards.
const RFLAGS_DF: u64 = 1 << 10;

impl Element {
    /// Steps RSI and RDI back over the element (and RCX up, under REP), within the address
    /// size: the registers as they were before KVM moved it.
    fn undo(self, regs: &mut kvm_regs) {
        let mask = match self.address_size {
            2 => 0xffff,
            4 => 0xffff_ffff,
            _ => u64::MAX,
        };
        let size = u64::from(self.size);
        let down = regs.rflags & RFLAGS_DF != 0;
        let back = |r: u64| {
            let stepped = if down {
                r.wrapping_add(size)
            } else {
                r.wrapping_sub(size)
            };
            (r & !mask) | (stepped & mask)
        };
        regs.rsi = back(regs.rsi);
        regs.rdi = back(regs.rdi);
        if self.rep {
            regs.rcx = (regs.rcx & !mask) | (regs.rcx.wrapping_add(1) & mask);
        }
    }
}

/// VTL0 stopped on `exit`; `may_read` says which guest-physical pages VTL0 may read (nothing
/// else is read on its behalf), `ram_size` where RAM ends.
pub fn memory(
    vcpu: &mut VcpuFd,
    vp: u32,
    exit: &MemoryExit<'_>,
    memory: &GuestMemory,
    may_read: &dyn Fn(u64) -> bool,
    ram_size: u64,
) -> Result<Intercepted<HvMessage>, String> {
    let at_exit = vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))?;
    let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    complete_pending(vcpu).map_err(kvm_err("completing the exit"))?;
    let finished = vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))?;
    let view = LinearMemory {
        vcpu,
        memory,
        may_read,
    };
    let (found, mut regs) = match exit.written {
        None => (read_at(&view, &sregs, &at_exit, exit.size), at_exit),
        Some(data) => (
            move_at(&view, &sregs, &finished, data)
                .or_else(|| write_ending_at(&view, &sregs, &finished, data)),
            finished,
        ),
    };
    let access = if exit.written.is_some() {
        AccessType::Write
    } else {
        AccessType::Read
    };
    // Inside RAM, only a VTL protection hides it (the paravisor's region); past RAM there is
    // nothing at all.
    let kind = if exit.gpa < ram_size {
        message_type::GPA_INTERCEPT
    } else {
        message_type::UNMAPPED_GPA
    };
    let (length, bytes) = match &found {
        Some(f) => {
            regs.rip = f.start;
            if let Some(element) = f.moved {
                element.undo(&mut regs);
            }
            (f.length, f.bytes.as_slice())
        }
        // The notice: what KVM finished stands.
        None => {
            regs = finished;
            (0, [].as_slice())
        }
    };
    let mut instruction_bytes = [0u8; 16];
    instruction_bytes[..bytes.len()].copy_from_slice(bytes);
    let message = MemoryIntercept {
        header: header(vp, &sregs, &regs, length, access),
        cache_type: 0,
        instruction_byte_count: bytes.len() as u8,
        access_info: 0,
        gva: 0,
        gpa: exit.gpa,
        instruction_bytes,
    };
    Ok(Intercepted {
        message: message.to_message(kind),
        regs,
    })
}

/// The decoder's mode for `sregs`: none for 16-bit code, which it does not decode.
fn code_mode(sregs: &kvm_sregs) -> Option<CodeMode> {
    match cpu_mode(sregs) {
        CpuMode::Long64 => Some(CodeMode::Bits64),
        CpuMode::Protected32 => Some(CodeMode::Bits32),
        CpuMode::Real16 | CpuMode::Protected16 => None,
    }
}

/// The memory instruction at RIP and its bytes.
fn decode_at(
    view: &LinearMemory<'_>,
    sregs: &kvm_sregs,
    regs: &kvm_regs,
) -> Option<(MemoryInstruction, Vec<u8>)> {
    let mode = code_mode(sregs)?;
    let mut ahead = view.read(sregs.cs.base.wrapping_add(regs.rip), MAX_INSTRUCTION_LEN);
    let insn = x86_insn::decode(&ahead, mode)?;
    ahead.truncate(usize::from(insn.length));
    Some((insn, ahead))
}

/// The read of `size` bytes at RIP.
fn read_at(
    view: &LinearMemory<'_>,
    sregs: &kvm_sregs,
    regs: &kvm_regs,
    size: usize,
) -> Option<Found> {
    let (insn, bytes) = decode_at(view, sregs, regs)?;
    let read = match insn.access {
        Access::Read { size, .. } | Access::Move { size, .. } => size,
        Access::Write { .. } => return None,
    };
    (usize::from(read) == size).then_some(Found {
        start: regs.rip,
        length: insn.length,
        bytes,
        moved: None,
    })
}

/// A REP string move at RIP, still going, whose last element was `data`: RSI, stepped back
/// over one element, must point at those bytes.
fn move_at(
    view: &LinearMemory<'_>,
    sregs: &kvm_sregs,
    regs: &kvm_regs,
    data: &[u8],
) -> Option<Found> {
    let (insn, bytes) = decode_at(view, sregs, regs)?;
    let Access::Move {
        size,
        rep: true,
        address_size,
    } = insn.access
    else {
        return None;
    };
    let element = Element {
        size,
        address_size,
        rep: true,
    };
    let found = Found {
        start: regs.rip,
        length: insn.length,
        bytes,
        moved: Some(element),
    };
    source_was(view, sregs, regs, element, data).then_some(found)
}

/// Whether the element just moved came from the bytes `data` (DS:RSI before KVM stepped it).
fn source_was(
    view: &LinearMemory<'_>,
    sregs: &kvm_sregs,
    regs: &kvm_regs,
    element: Element,
    data: &[u8],
) -> bool {
    let mut before = *regs;
    element.undo(&mut before);
    let source = data_segment_base(sregs, &sregs.ds).wrapping_add(before.rsi);
    usize::from(element.size) == data.len() && view.read(source, data.len()) == data
}

/// The write of `data` ending at RIP.
fn write_ending_at(
    view: &LinearMemory<'_>,
    sregs: &kvm_sregs,
    regs: &kvm_regs,
    data: &[u8],
) -> Option<Found> {
    let mode = code_mode(sregs)?;
    let rip_linear = sregs.cs.base.wrapping_add(regs.rip);
    let window = MAX_INSTRUCTION_LEN as u64;
    let mut behind = view.read(rip_linear.wrapping_sub(window), MAX_INSTRUCTION_LEN);
    if behind.len() < MAX_INSTRUCTION_LEN {
        // The page below is not readable: look only within RIP's page.
        let in_page = rip_linear % 4096;
        behind = view.read(rip_linear - in_page, in_page as usize);
    }
    (1..=behind.len()).find_map(|length| {
        let bytes = &behind[behind.len() - length..];
        let insn = x86_insn::decode(bytes, mode)?;
        let moved = match insn.access {
            Access::Write { size, source } => {
                let fits = usize::from(size) == data.len()
                    && stored(source, regs).to_le_bytes().get(..data.len()) == Some(data);
                fits.then_some(None)?
            }
            // The last (or only) element of a string move.
            Access::Move {
                size,
                rep,
                address_size,
            } => {
                let element = Element {
                    size,
                    address_size,
                    rep,
                };
                source_was(view, sregs, regs, element, data).then_some(Some(element))?
            }
            Access::Read { .. } => return None,
        };
        (usize::from(insn.length) == length).then(|| Found {
            start: regs.rip.wrapping_sub(length as u64),
            length: insn.length,
            bytes: bytes.to_vec(),
            moved,
        })
    })
}

/// The value a write from `source` stores, before truncation to its size.
fn stored(source: Source, regs: &kvm_regs) -> u64 {
    let gpr = |n: u8| {
        general_registers(regs)
            .get(usize::from(n))
            .copied()
            .unwrap_or(0)
    };
    match source {
        Source::Immediate(value) => value,
        Source::Register(Destination::Register(n)) => gpr(n),
        Source::Register(Destination::HighByte(n)) => gpr(n) >> 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::test_vm::real_mode_vcpu;
    use kvm_ioctls::VcpuExit;

    /// Does what VTL2 would after an intercept: `change` the registers, advance RIP.
    fn emulate(vcpu: &VcpuFd, length: u8, change: impl FnOnce(&mut kvm_regs)) {
        let mut regs = vcpu.get_regs().unwrap();
        change(&mut regs);
        regs.rip += u64::from(length);
        vcpu.set_regs(&regs).unwrap();
    }

    /// Switches the real-mode vCPU to 32-bit protected mode, flat, paging off: the decoder
    /// does not take 16-bit code.
    fn protected_mode(vcpu: &VcpuFd) {
        let mut sregs = vcpu.get_sregs().unwrap();
        sregs.cr0 |= 1;
        for segment in [&mut sregs.cs, &mut sregs.ds, &mut sregs.es, &mut sregs.ss] {
            (segment.base, segment.limit, segment.g, segment.db) = (0, 0xffff_ffff, 1, 1);
            segment.selector = 0;
        }
        sregs.cs.type_ = 0xb;
        vcpu.set_sregs(&sregs).unwrap();
    }

    /// Runs to the next MMIO exit and turns it into its message.
    fn next(vcpu: &mut VcpuFd, memory: &GuestMemory) -> (Vec<u8>, MemoryIntercept, kvm_regs) {
        let (gpa, size, written) = match vcpu.run().unwrap() {
            VcpuExit::MmioWrite(gpa, data) => (gpa, data.len(), Some(data.to_vec())),
            VcpuExit::MmioRead(gpa, data) => {
                data.fill(0xff);
                (gpa, data.len(), None)
            }
            other => panic!("expected MMIO, got {other:?}"),
        };
        let exit = MemoryExit {
            gpa,
            size,
            written: written.as_deref(),
        };
        let i = super::memory(vcpu, 0, &exit, memory, &|_| true, 1 << 20).unwrap();
        let m = MemoryIntercept::parse(i.message.payload()).unwrap();
        (written.unwrap_or_default(), m, i.regs)
    }

    #[test]
    fn reads_and_writes_arrive_before_their_instruction_with_its_bytes() {
        let memory = GuestMemory::new(1 << 20).unwrap();
        let code: &[u8] = &[
            0xbb, 0x00, 0x00, 0xc0, 0xfe, //       1000: mov ebx, 0xfec00000
            0xb9, 0x34, 0x12, 0x00, 0x00, //       1005: mov ecx, 0x1234
            0x89, 0x0b, //                         100a: mov [ebx], ecx
            0xc7, 0x43, 0x10, 0x05, 0, 0, 0, //   100c: mov dword [ebx+0x10], 5
            0x8b, 0x53, 0x10, //                   1013: mov edx, [ebx+0x10]
            0xf4, //                               1016: hlt
        ];
        memory.write(0x1000, code).unwrap();
        let (_vm, mut vcpu) = real_mode_vcpu(&memory);
        protected_mode(&vcpu);

        let (written, m, regs) = next(&mut vcpu, &memory);
        assert_eq!(
            (written.as_slice(), m.gpa),
            (&[0x34, 0x12, 0, 0][..], 0xfec0_0000)
        );
        assert_eq!((m.header.rip, m.header.instruction_length), (0x100a, 2));
        assert_eq!(&m.instruction_bytes[..2], &[0x89, 0x0b]);
        assert!(!m.is_completed_notice());
        assert_eq!(regs.rip, 0x100a);
        vcpu.set_regs(&regs).unwrap();
        emulate(&vcpu, 2, |_| {});

        let (written, m, regs) = next(&mut vcpu, &memory);
        assert_eq!(
            (written.as_slice(), m.gpa),
            (&[5, 0, 0, 0][..], 0xfec0_0010)
        );
        assert_eq!((m.header.rip, m.header.instruction_length), (0x100c, 7));
        vcpu.set_regs(&regs).unwrap();
        emulate(&vcpu, 7, |_| {});

        let (_, m, regs) = next(&mut vcpu, &memory);
        assert_eq!(
            (m.gpa, m.header.access_type),
            (0xfec0_0010, AccessType::Read)
        );
        assert_eq!((m.header.rip, m.header.instruction_length), (0x1013, 3));
        assert_eq!(regs.rip, 0x1013, "KVM's load is undone");
        assert_ne!(regs.rdx & 0xffff_ffff, 0xffff_ffff, "and EDX is as it was");
        vcpu.set_regs(&regs).unwrap();
        emulate(&vcpu, 3, |r| r.rdx = 7);
        assert!(matches!(vcpu.run().unwrap(), VcpuExit::Hlt));
        assert_eq!(vcpu.get_regs().unwrap().rdx, 7);
    }

    /// `rep movsd` from the device (memcpy_fromio) and to it (memcpy_toio): each arrives
    /// once, before the instruction, with RSI, RDI and RCX as the instruction found them.
    #[test]
    fn string_moves_arrive_before_their_instruction() {
        let memory = GuestMemory::new(1 << 20).unwrap();
        let code: &[u8] = &[
            0xbe, 0x10, 0x00, 0xc0, 0xfe, // 1000: mov esi, 0xfec00010
            0xbf, 0x00, 0x20, 0x00, 0x00, // 1005: mov edi, 0x2000
            0xb9, 0x02, 0x00, 0x00, 0x00, // 100a: mov ecx, 2
            0xf3, 0xa5, //                   100f: rep movsd
            0xbe, 0x00, 0x30, 0x00, 0x00, // 1011: mov esi, 0x3000
            0xbf, 0x20, 0x00, 0xc0, 0xfe, // 1016: mov edi, 0xfec00020
            0xb9, 0x02, 0x00, 0x00, 0x00, // 101b: mov ecx, 2
            0xf3, 0xa5, //                   1020: rep movsd
            0xf4, //                         1022: hlt
        ];
        memory.write(0x1000, code).unwrap();
        memory.write(0x3000, &[1, 0, 0, 0, 2, 0, 0, 0]).unwrap();
        let (_vm, mut vcpu) = real_mode_vcpu(&memory);
        protected_mode(&vcpu);

        let (_, m, regs) = next(&mut vcpu, &memory);
        assert_eq!(
            (m.gpa, m.header.access_type),
            (0xfec0_0010, AccessType::Read)
        );
        assert_eq!((m.header.rip, m.header.instruction_length), (0x100f, 2));
        assert_eq!((regs.rsi, regs.rdi, regs.rcx), (0xfec0_0010, 0x2000, 2));
        vcpu.set_regs(&regs).unwrap();
        memory.write(0x2000, &[7; 8]).unwrap();
        emulate(&vcpu, 2, |r| {
            (r.rsi, r.rdi, r.rcx) = (0xfec0_0018, 0x2008, 0)
        });

        let (written, m, regs) = next(&mut vcpu, &memory);
        assert_eq!(
            (written.as_slice(), m.gpa),
            (&[1, 0, 0, 0][..], 0xfec0_0020)
        );
        assert_eq!((m.header.rip, m.header.instruction_length), (0x1020, 2));
        assert_eq!((regs.rsi, regs.rdi, regs.rcx), (0x3000, 0xfec0_0020, 2));
        vcpu.set_regs(&regs).unwrap();
        emulate(&vcpu, 2, |r| {
            (r.rsi, r.rdi, r.rcx) = (0x3008, 0xfec0_0028, 0)
        });
        assert!(matches!(vcpu.run().unwrap(), VcpuExit::Hlt));
        let mut copied = [0u8; 8];
        memory.read(0x2000, &mut copied).unwrap();
        assert_eq!(copied, [7; 8], "VTL2's copy stands, not KVM's");
    }
}

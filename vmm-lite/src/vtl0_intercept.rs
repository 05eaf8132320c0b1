//! Turning a VTL0 exit KVM reports into the intercept message Hyper-V would send VTL2
//! (TLFS §13.2; layouts in hvdef::message), with VTL0 stopped *before* the instruction.
//!
//! That is the contract VTL2 emulates against: the message names the instruction (RIP,
//! length, bytes) and the registers it reads, and VTL2 carries it out and advances RIP. KVM
//! stops at different points instead (measured here, see `port_io_decode` and the tests):
//! - `in` and `ins`: at the instruction, with the data still to be supplied;
//! - `out`: past the instruction, already done;
//! - `outs`: one exit per element, RSI (and RCX under REP) already stepped for that element;
//! - rdmsr/wrmsr: at the instruction;
//! - memory VTL0 does not map (the paravisor's region, or past RAM): a read at the
//!   instruction, a write past it (`vtl0_memory_intercept`).
//!
//! vmm-lite finds the instruction, lets KVM finish its half-done exit (for `ins` with the
//! bytes the destination already holds, so nothing changes), and puts back the registers the
//! instruction started from.

use hvdef::intercept::AccessType;
use hvdef::message::{InterceptHeader, IoPortIntercept, MsrIntercept};
use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;

use crate::guest_memory::GuestMemory;
use crate::port_io_decode::{
    decode, find_ending_at, IoAccess, PortIoInstruction, MAX_INSTRUCTION_LEN,
};
use crate::vcpu_state::{
    complete_pending, cpu_mode, data_segment_base, execution_state, pending_io_data,
    segment_register, LinearMemory,
};

/// RFLAGS.DF: string instructions step downwards.
const RFLAGS_DF: u64 = 1 << 10;
/// `rdmsr` (0F 32) and `wrmsr` (0F 30) are two bytes.
const MSR_INSTRUCTION_LEN: u8 = 2;

/// An intercept ready for VTL2, and VTL0's registers as the instruction found them.
pub struct Intercepted<M> {
    pub message: M,
    pub regs: kvm_regs,
}

pub(crate) fn kvm_err(what: &str) -> impl Fn(kvm_ioctls::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

pub(crate) fn header(
    vp: u32,
    sregs: &kvm_sregs,
    regs: &kvm_regs,
    length: u8,
    access: AccessType,
) -> InterceptHeader {
    InterceptHeader {
        vp_index: vp,
        instruction_length: length,
        access_type: access,
        execution_state: execution_state(sregs),
        cs: segment_register(&sregs.cs),
        rip: regs.rip,
        rflags: regs.rflags,
    }
}

/// The port I/O instruction behind `access` and where it starts.
fn find_instruction(
    view: &LinearMemory<'_>,
    sregs: &kvm_sregs,
    regs: &kvm_regs,
    access: IoAccess,
    written: &[u8],
) -> Option<(PortIoInstruction, u64)> {
    let mode = cpu_mode(sregs);
    let rip_linear = sregs.cs.base.wrapping_add(regs.rip);
    let ahead = view.read(rip_linear, MAX_INSTRUCTION_LEN);
    let here = decode(&ahead, mode).filter(|i| i.matches(access));
    if !access.is_write {
        return here.map(|i| (i, regs.rip));
    }
    // A plain OUT never exits at itself: an OUT at RIP is the next instruction (two OUTs back
    // to back, `EE EE`), not the one KVM stopped after.
    let here = here.filter(|i| i.is_string);
    let window = MAX_INSTRUCTION_LEN as u64;
    let mut behind = view.read(rip_linear.wrapping_sub(window), MAX_INSTRUCTION_LEN);
    if behind.len() < MAX_INSTRUCTION_LEN {
        // The page below is not readable: look only within RIP's page.
        let in_page = rip_linear % 4096;
        behind = view.read(rip_linear - in_page, in_page as usize);
    }
    // An OUT exits past itself; an OUTS at itself while elements remain, possibly past
    // itself after the last. Several readings can fit the bytes; the registers tell which
    // one KVM stopped on: an OUTS element came from just behind RSI, an OUT's data is
    // AL/AX/EAX.
    let before = find_ending_at(&behind, mode, access)
        .map(|i| (i, regs.rip.wrapping_sub(u64::from(i.length))));
    let taken = written.len() as u64;
    let outs_fits = || {
        // Stepping down, the elements came from RSI + size upwards, in reverse order.
        let (first, reversed) = if regs.rflags & RFLAGS_DF != 0 {
            (regs.rsi.wrapping_add(u64::from(access.size)), true)
        } else {
            (regs.rsi.wrapping_sub(taken), false)
        };
        let base = data_segment_base(sregs, &sregs.ds);
        let source = view.read(base.wrapping_add(first), written.len());
        let size = usize::from(access.size.max(1));
        let mut elements: Vec<&[u8]> = source.chunks(size).collect();
        if reversed {
            elements.reverse();
        }
        elements.concat() == written
    };
    let out_fits = || regs.rax.to_le_bytes().get(..written.len()) == Some(written);
    let fits = |insn: &PortIoInstruction| {
        if insn.is_string {
            outs_fits()
        } else {
            out_fits()
        }
    };
    let candidates = [here.map(|i| (i, regs.rip)), before];
    candidates
        .iter()
        .flatten()
        .find(|(insn, _)| fits(insn))
        .or_else(|| candidates.iter().flatten().next())
        .copied()
}

/// VTL0 stopped on a port access to an intercepted port: `written` holds an OUT's bytes;
/// for an IN it is empty and the exit's data buffer is pending. Returns the message with
/// VTL0's registers set back to the instruction's start.
///
/// `may_read` says which guest-physical pages VTL0 may read: nothing else is read on its
/// behalf, whatever its page tables say. `Ok(None)` when no port I/O instruction is found
/// (bytes VTL0 changed meanwhile, an encoding the decoder does not know): nothing has been
/// changed, and the caller answers the access itself.
pub fn port_io(
    vcpu: &mut VcpuFd,
    vp: u32,
    access: IoAccess,
    written: &[u8],
    memory: &GuestMemory,
    may_read: &dyn Fn(u64) -> bool,
) -> Result<Option<Intercepted<IoPortIntercept>>, String> {
    let regs = vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))?;
    let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    let found = find_instruction(
        &LinearMemory {
            vcpu,
            memory,
            may_read,
        },
        &sregs,
        &regs,
        access,
        written,
    );
    let Some((insn, start)) = found else {
        return Ok(None);
    };
    let mut before = regs;
    before.rip = start;
    let size = u64::from(access.size);
    let down = regs.rflags & RFLAGS_DF != 0;
    if insn.is_string && insn.is_write {
        // Undo the elements KVM already took.
        let elements = written.len() as u64 / size.max(1);
        before.rsi = if down {
            regs.rsi.wrapping_add(elements * size)
        } else {
            regs.rsi.wrapping_sub(elements * size)
        };
        if insn.has_rep {
            before.rcx = regs.rcx.wrapping_add(elements);
        }
    }
    if !access.is_write {
        // Give KVM the bytes its pending load will store, so finishing it changes nothing
        // that VTL2's emulation will not redo.
        let destination = data_segment_base(&sregs, &sregs.es).wrapping_add(regs.rdi);
        let len = pending_io_data(vcpu).len();
        let mut fill = vec![0xffu8; len];
        let view = LinearMemory {
            vcpu,
            memory,
            may_read,
        };
        if insn.is_string {
            for (i, element) in fill.chunks_mut(usize::from(access.size.max(1))).enumerate() {
                let offset = i as u64 * size;
                let at = if down {
                    destination.wrapping_sub(offset)
                } else {
                    destination.wrapping_add(offset)
                };
                let current = view.read(at, element.len());
                if current.len() == element.len() {
                    element.copy_from_slice(&current);
                }
            }
        }
        let data = pending_io_data(vcpu);
        if data.len() == fill.len() {
            data.copy_from_slice(&fill);
        }
    }
    complete_pending(vcpu).map_err(kvm_err("completing the exit"))?;
    vcpu.set_regs(&before).map_err(kvm_err("KVM_SET_REGS"))?;
    let access_type = if access.is_write {
        AccessType::Write
    } else {
        AccessType::Read
    };
    let rip_linear = sregs.cs.base.wrapping_add(start);
    let view = LinearMemory {
        vcpu,
        memory,
        may_read,
    };
    let bytes = view.read(rip_linear, usize::from(insn.length));
    let mut instruction_bytes = [0u8; 16];
    instruction_bytes[..bytes.len()].copy_from_slice(&bytes);
    let message = IoPortIntercept {
        header: header(vp, &sregs, &before, insn.length, access_type),
        port: access.port,
        access_size: access.size,
        string_op: insn.is_string,
        rep_prefix: insn.has_rep,
        instruction_byte_count: if insn.is_string { insn.length } else { 0 },
        rax: before.rax,
        instruction_bytes,
        ds: segment_register(&sregs.ds),
        es: segment_register(&sregs.es),
        rcx: before.rcx,
        rsi: before.rsi,
        rdi: before.rdi,
    };
    Ok(Some(Intercepted {
        message,
        regs: before,
    }))
}

/// VTL0 stopped on rdmsr or wrmsr of `msr` (user-space MSR exit, the answer already set to
/// "no error"); returns the message with VTL0 back at the instruction.
pub fn msr(
    vcpu: &mut VcpuFd,
    vp: u32,
    msr: u32,
    is_write: bool,
) -> Result<Intercepted<MsrIntercept>, String> {
    let regs = vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))?;
    let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    complete_pending(vcpu).map_err(kvm_err("completing the exit"))?;
    vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
    let access = if is_write {
        AccessType::Write
    } else {
        AccessType::Read
    };
    Ok(Intercepted {
        message: MsrIntercept {
            header: header(vp, &sregs, &regs, MSR_INSTRUCTION_LEN, access),
            msr,
            rdx: regs.rdx,
            rax: regs.rax,
        },
        regs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::test_vm::real_mode_vcpu;
    use kvm_ioctls::VcpuExit;

    /// Runs to the next port exit: (port, bytes written, element size).
    fn next_port_exit(vcpu: &mut VcpuFd) -> (u16, Vec<u8>, u8) {
        let (port, written) = match vcpu.run().unwrap() {
            VcpuExit::IoOut(port, data) => (port, data.to_vec()),
            VcpuExit::IoIn(port, _) => (port, Vec::new()),
            other => panic!("expected port I/O, got {other:?}"),
        };
        (port, written, crate::vcpu_state::pending_io_size(vcpu))
    }

    /// Runs to the next port exit and turns it into its intercept message: (bytes written,
    /// message).
    fn next_intercept(vcpu: &mut VcpuFd, memory: &GuestMemory) -> (Vec<u8>, IoPortIntercept) {
        let (port, written, size) = next_port_exit(vcpu);
        let access = IoAccess {
            port,
            size,
            is_write: !written.is_empty(),
        };
        let intercepted = port_io(vcpu, 0, access, &written, memory, &|_| true).unwrap();
        (written, intercepted.expect("an instruction").message)
    }

    /// Does what VTL2 would after an intercept: `change` the registers, advance RIP.
    fn emulate(vcpu: &VcpuFd, length: u8, change: impl FnOnce(&mut kvm_regs)) {
        let mut regs = vcpu.get_regs().unwrap();
        change(&mut regs);
        regs.rip += u64::from(length);
        vcpu.set_regs(&regs).unwrap();
    }

    #[test]
    fn every_port_form_and_msr_arrive_with_vtl0_before_the_instruction() {
        let memory = GuestMemory::new(1 << 20).unwrap();
        let code: &[u8] = &[
            0xba, 0xf8, 0x03, // 1000: mov dx, 0x3f8
            0xec, //             1003: in al, dx
            0xee, //             1004: out dx, al
            0xbe, 0x00, 0x06, // 1005: mov si, 0x600
            0xb9, 0x03, 0x00, // 1008: mov cx, 3
            0xf3, 0x6e, //       100b: rep outsb
            0xbf, 0x00, 0x07, // 100d: mov di, 0x700
            0xb9, 0x03, 0x00, // 1010: mov cx, 3
            0xf3, 0x6c, //       1013: rep insb
            0x66, 0xb9, 0x00, 0x00, 0x00, 0x40, // 1015: mov ecx, 0x40000000
            0x0f, 0x32, //       101b: rdmsr
            0xf4, //             101d: hlt
        ];
        memory.write(0x1000, code).unwrap();
        memory.write(0x600, b"abc").unwrap();
        memory.write(0x700, &[0x11; 3]).unwrap();
        let (_vm, mut vcpu) = real_mode_vcpu(&memory);
        let (_, m) = next_intercept(&mut vcpu, &memory);
        assert_eq!((m.header.rip, m.header.instruction_length), (0x1003, 1));
        assert_eq!((m.port, m.access_size, m.string_op), (0x3f8, 1, false));
        assert_eq!(m.header.access_type, AccessType::Read);
        assert_eq!(vcpu.get_regs().unwrap().rip, 0x1003, "the IN is not done");
        emulate(&vcpu, 1, |r| r.rax = 0x42);

        let (written, i) = next_intercept(&mut vcpu, &memory);
        assert_eq!(written, [0x42]);
        assert_eq!((i.header.rip, i.rax), (0x1004, 0x42));
        assert_eq!(vcpu.get_regs().unwrap().rip, 0x1004, "back before the OUT");
        emulate(&vcpu, 1, |_| {});

        let (written, m) = next_intercept(&mut vcpu, &memory);
        assert_eq!(written, b"a");
        assert_eq!((m.header.rip, m.header.instruction_length), (0x100b, 2));
        assert!(m.string_op && m.rep_prefix);
        assert_eq!((m.rcx, m.rsi), (3, 0x600), "the element KVM took is undone");
        emulate(&vcpu, 2, |r| (r.rcx, r.rsi) = (0, 0x603));

        let (_, m) = next_intercept(&mut vcpu, &memory);
        assert_eq!((m.header.rip, m.rcx, m.rdi), (0x1013, 3, 0x700));
        assert!(m.string_op && m.rep_prefix);
        let mut destination = [0u8; 3];
        memory.read(0x700, &mut destination).unwrap();
        assert_eq!(
            destination, [0x11; 3],
            "finishing KVM's exit wrote nothing new"
        );
        let regs = vcpu.get_regs().unwrap();
        assert_eq!((regs.rip, regs.rcx, regs.rdi), (0x1013, 3, 0x700));
        memory.write(0x700, b"xyz").unwrap();
        emulate(&vcpu, 2, |r| (r.rcx, r.rdi) = (0, 0x703));

        let index = match vcpu.run().unwrap() {
            VcpuExit::X86Rdmsr(exit) => {
                (*exit.data, *exit.error) = (0, 0);
                exit.index
            }
            other => panic!("expected rdmsr, got {other:?}"),
        };
        let i = msr(&mut vcpu, 0, index, false).unwrap();
        assert_eq!((i.message.msr, i.message.header.rip), (0x4000_0000, 0x101b));
        assert_eq!(
            vcpu.get_regs().unwrap().rip,
            0x101b,
            "the rdmsr is not done"
        );
        emulate(&vcpu, 2, |r| (r.rax, r.rdx) = (7, 0));
        assert!(matches!(vcpu.run().unwrap(), VcpuExit::Hlt));
        let regs = vcpu.get_regs().unwrap();
        assert_eq!((regs.rax & 0xff, regs.rsi, regs.rdi), (7, 0x603, 0x703));
    }

    /// Two OUTs back to back (as a PIT's two count bytes go out): after the first, RIP is
    /// at the second, which also fits the exit's data; each must still arrive on its own.
    #[test]
    fn back_to_back_outs_arrive_one_intercept_each() {
        let memory = GuestMemory::new(1 << 20).unwrap();
        let code: &[u8] = &[
            0xba, 0x42, 0x00, // 1000: mov dx, 0x42
            0xb0, 0xff, //       1003: mov al, 0xff
            0xee, //             1005: out dx, al
            0xee, //             1006: out dx, al
            0xf4, //             1007: hlt
        ];
        memory.write(0x1000, code).unwrap();
        let (_vm, mut vcpu) = real_mode_vcpu(&memory);
        for rip in [0x1005, 0x1006] {
            let (written, m) = next_intercept(&mut vcpu, &memory);
            assert_eq!(written, [0xff]);
            assert_eq!((m.header.rip, m.header.instruction_length), (rip, 1));
            emulate(&vcpu, 1, |_| {});
        }
        assert!(matches!(vcpu.run().unwrap(), VcpuExit::Hlt));
    }
}

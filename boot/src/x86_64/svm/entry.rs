//! The state a VP enters the guest in: the loader's boot context for the first VP, and the
//! real-mode state a start-up IPI gives the others (Intel SDM Vol. 3A §9.4.4 and Table 9-1;
//! AMD APM Vol. 2 §14.1.3).

use hvdef::hypercall::InitialVpContext;
use hvdef::registers::{SegmentRegister, TableRegister};

use super::vmcb::{self, save, Vmcb};

/// The PAT's reset value (Intel SDM Vol. 3A §13.12.4), for the guest's G_PAT.
const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// DR6 and DR7 as after reset.
const DR6_RESET: u64 = 0xffff_0ff0;
const DR7_RESET: u64 = 0x400;
/// CR0 after INIT: CD, NW and ET set, protection and paging off.
const CR0_INIT: u64 = 0x6000_0010;
/// Segment attributes in the VMX layout `InitialVpContext` uses (type 3:0, S 4, DPL 6:5,
/// P 7): real-mode code (execute/read, accessed) and data (read/write, accessed), the LDT,
/// and a busy TSS.
const REAL_MODE_CODE: u16 = 0x9b;
const REAL_MODE_DATA: u16 = 0x93;
const LDT: u16 = 0x82;
const BUSY_TSS: u16 = 0x8b;

/// The guest's registers at its entry, from the loader's boot state.
pub fn set_boot_state(vmcb: &mut Vmcb, context: &InitialVpContext) {
    let segments = [
        (save::ES, &context.es),
        (save::CS, &context.cs),
        (save::SS, &context.ss),
        (save::DS, &context.ds),
        (save::FS, &context.fs),
        (save::GS, &context.gs),
        (save::LDTR, &context.ldtr),
        (save::TR, &context.tr),
    ];
    for (offset, segment) in segments {
        vmcb.set_segment(offset, segment);
    }
    vmcb.set_table(save::GDTR, context.gdtr.base, context.gdtr.limit);
    vmcb.set_table(save::IDTR, context.idtr.base, context.idtr.limit);
    vmcb.write_u64(save::EFER, context.efer | vmcb::EFER_SVME);
    vmcb.write_u64(save::CR0, context.cr0);
    vmcb.write_u64(save::CR3, context.cr3);
    vmcb.write_u64(save::CR4, context.cr4);
    vmcb.write_u64(save::DR6, DR6_RESET);
    vmcb.write_u64(save::DR7, DR7_RESET);
    vmcb.write_u64(save::RFLAGS, context.rflags);
    vmcb.write_u64(save::RIP, context.rip);
    vmcb.write_u64(save::RSP, context.rsp);
    vmcb.write_u64(save::G_PAT, PAT_RESET);
}

/// The state a start-up IPI with `vector` gives a VP waiting for one: real mode at
/// `vector << 12` (CS selector `vector << 8`, IP 0), everything else as after INIT.
pub fn start_up_context(vector: u8) -> InitialVpContext {
    let segment = |selector: u16, attributes| SegmentRegister {
        base: u64::from(selector) << 4,
        limit: 0xffff,
        selector,
        attributes,
    };
    let data = segment(0, REAL_MODE_DATA);
    let table = TableRegister {
        base: 0,
        limit: 0xffff,
    };
    InitialVpContext {
        rip: 0,
        rsp: 0,
        rflags: 0x2,
        cs: segment(u16::from(vector) << 8, REAL_MODE_CODE),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        tr: segment(0, BUSY_TSS),
        ldtr: segment(0, LDT),
        idtr: table,
        gdtr: table,
        efer: 0,
        cr0: CR0_INIT,
        cr3: 0,
        cr4: 0,
        pat: PAT_RESET,
    }
}

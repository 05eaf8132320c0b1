//! HvCallGetVpRegisters and HvCallSetVpRegisters (TLFS §7.8; layouts in hvdef::hypercall).
//!
//! A VTL reads and writes its own synthetic registers; VTL2 also reaches VTL0's: the
//! synthetic ones vmm-lite keeps, and the architectural ones held by the VP's VTL0 vCPU
//! (`LowerVtlRegisters`). VTL0's architectural registers are reachable on the calling VP only:
//! another VP's VTL0 vCPU belongs to a thread that may be running it.

use hvdef::hypercall::{self, Control, VpRegistersHeader, PARTITION_SELF, VP_INDEX_SELF};
use hvdef::registers as reg;
use hvdef::status::HvStatus;
use hvdef::vtl::Vtl;

use crate::guest_memory::GuestMemory;
use crate::hyperv::{Caller, HyperV, LowerVtlRegisters};

/// A call in progress: the caller and the raw hypercall registers.
pub(crate) struct Call<'a> {
    pub hv: &'a HyperV,
    pub caller: Caller,
    pub control: Control,
    pub input_gpa: u64,
    pub output_gpa: u64,
    pub memory: &'a GuestMemory,
}

/// A failure with the reps completed before it.
type Failed = (HvStatus, u16);

/// Whose registers a call addresses.
struct Target {
    vp: usize,
    vtl: Vtl,
}

/// Parameters are 8-byte aligned and stay within one page (TLFS §3.6).
fn fits(gpa: u64, len: usize) -> bool {
    gpa.is_multiple_of(8) && (gpa & 0xfff) as usize + len <= 4096
}

impl Call<'_> {
    /// Checks the control word, reads the header and `element_size`-byte elements, and
    /// resolves the target; `output_len` is checked against the output page.
    fn start(&self, element_size: usize, output_len: usize) -> Result<(Target, Vec<u8>), Failed> {
        let start = self.control.rep_start();
        let fail = |s| (s, start);
        self.control.check(true).map_err(fail)?;
        if self.control.fast() {
            return Err(fail(HvStatus::INVALID_HYPERCALL_INPUT)); // no XMM fast path offered
        }
        let count = usize::from(self.control.rep_count());
        let input_len = VpRegistersHeader::SIZE + count * element_size;
        if !fits(self.input_gpa, input_len) || !fits(self.output_gpa, output_len) {
            return Err(fail(HvStatus::INVALID_ALIGNMENT));
        }
        let mut input = vec![0u8; input_len];
        self.hv
            .read_for(self.caller, self.input_gpa, &mut input, self.memory)
            .map_err(fail)?;
        let header = VpRegistersHeader::parse(&input).map_err(fail)?;
        if header.partition_id != PARTITION_SELF {
            return Err(fail(HvStatus::INVALID_PARTITION_ID));
        }
        let vp = match header.vp_index {
            VP_INDEX_SELF => self.caller.vp,
            i if (i as usize) < self.hv.vp_count() => i as usize,
            _ => return Err(fail(HvStatus::INVALID_VP_INDEX)),
        };
        let vtl = header.target_vtl.resolve(self.caller.vtl);
        if vtl > self.caller.vtl {
            return Err(fail(HvStatus::ACCESS_DENIED));
        }
        if vtl == Vtl::Vtl1 {
            return Err(fail(HvStatus::INVALID_PARAMETER)); // not offered
        }
        if vtl < self.caller.vtl && !self.hv.vtl0_enabled(vp) {
            return Err(fail(HvStatus::INVALID_VTL_STATE));
        }
        Ok((Target { vp, vtl }, input))
    }

    /// The lower VTL's architectural registers, when the target is the caller's own VP.
    fn lower<'l>(
        &self,
        target: &Target,
        lower: Option<&'l mut dyn LowerVtlRegisters>,
    ) -> Option<&'l mut dyn LowerVtlRegisters> {
        (target.vtl < self.caller.vtl && target.vp == self.caller.vp)
            .then_some(lower)
            .flatten()
    }

    pub fn get(self, lower: Option<&mut dyn LowerVtlRegisters>) -> Result<u16, Failed> {
        let count = usize::from(self.control.rep_count());
        let (target, input) = self.start(
            VpRegistersHeader::GET_ELEMENT_SIZE,
            count * VpRegistersHeader::VALUE_SIZE,
        )?;
        let mut lower = self.lower(&target, lower);
        for i in usize::from(self.control.rep_start())..count {
            let at = VpRegistersHeader::SIZE + i * VpRegistersHeader::GET_ELEMENT_SIZE;
            let name = le::u32_at(&input, at);
            if name == Some(hvdef::register_page::REGISTER_NAME) && self.caller.vtl != Vtl::Vtl2 {
                // Where Parapet's frame is is VTL2's business.
                return Err((HvStatus::ACCESS_DENIED, i as u16));
            }
            let name = le::u32_at(&input, at).ok_or((HvStatus::INVALID_PARAMETER, i as u16))?;
            let value = match self.hv.synthetic_register(target.vp, target.vtl, name) {
                Some(v) => Some(reg::u64_value(v)),
                None => lower.as_deref_mut().and_then(|l| l.get(name)),
            };
            let value =
                value.ok_or_else(|| (self.missing_status(&target, lower.is_some()), i as u16))?;
            let at = self.output_gpa + (i * VpRegistersHeader::VALUE_SIZE) as u64;
            self.hv
                .write_for(self.caller, at, &value, self.memory)
                .map_err(|s| (s, i as u16))?;
        }
        Ok(count as u16)
    }

    pub fn set(self, lower: Option<&mut dyn LowerVtlRegisters>) -> Result<u16, Failed> {
        let count = usize::from(self.control.rep_count());
        let (target, input) = self.start(VpRegistersHeader::SET_ELEMENT_SIZE, 0)?;
        let mut lower = self.lower(&target, lower);
        for i in usize::from(self.control.rep_start())..count {
            let at = VpRegistersHeader::SIZE + i * VpRegistersHeader::SET_ELEMENT_SIZE;
            let fail = |s| (s, i as u16);
            let (name, value) = input
                .get(at..at + VpRegistersHeader::SET_ELEMENT_SIZE)
                .and_then(hypercall::parse_set_register)
                .ok_or(fail(HvStatus::INVALID_PARAMETER))?;
            if name == hvdef::register_page::REGISTER_NAME && self.caller.vtl != Vtl::Vtl2 {
                // The page receives VTL0's registers from vmm-lite: only VTL2 places it.
                return Err(fail(HvStatus::ACCESS_DENIED));
            }
            if HyperV::is_synthetic_register(name) {
                let value = le::u64_at(&value, 0).unwrap_or_default();
                self.hv
                    .set_synthetic_register(target.vp, target.vtl, name, value, self.memory)
                    .map_err(fail)?;
            } else if let Some(l) = lower.as_deref_mut() {
                l.set(name, &value).map_err(fail)?;
            } else {
                return Err(fail(self.missing_status(&target, false)));
            }
        }
        Ok(count as u16)
    }

    /// Why a register could not be reached: another VP's VTL0 vCPU is out of reach (its
    /// thread may be running it); otherwise the name is not one vmm-lite offers.
    fn missing_status(&self, target: &Target, have_lower: bool) -> HvStatus {
        if target.vtl < self.caller.vtl && !have_lower {
            HvStatus::INVALID_VP_STATE
        } else {
            HvStatus::INVALID_PARAMETER
        }
    }
}

//! MOVS between guest RAM and a device Parapet emulates, as Linux's `memcpy_fromio` and
//! `memcpy_toio` copy (`rep movsl`, then `movsw`/`movsb`): the faulting guest-physical address
//! is one side's element, the other side is the guest's RAM, reached through its page tables.

use isolation::exit::{ExitSite, StringOp};
use isolation::x86_insn::{Access, CodeMode, MemoryInstruction};

use super::exits::step_over;
use super::paging::Paging;
use super::GuestVp;

/// Bytes moved per exit. A REP with more left keeps its RIP with RSI, RDI and RCX advanced,
/// so the guest executes it again for the rest, as a CPU resumes a REP after an interrupt
/// (Intel SDM Vol. 2B "REP/REPE/REPZ/REPNE/REPNZ"): a huge RCX cannot hold Parapet.
const MAX_BYTES_PER_EXIT: u64 = 4096;
const PAGE: u64 = 4096;
/// RFLAGS.DF: string instructions step their index registers down.
const RFLAGS_DF: u64 = 1 << 10;

/// Carries out the MOVS `instruction` at `site`, whose access to `gpa` (a device's) faulted:
/// every element of one exit's share between that device page and RAM, then RSI, RDI and
/// (REP) RCX advanced within the address size, and RIP past it once done (Intel SDM Vol. 2B
/// "MOVS/MOVSB/MOVSW/MOVSD/MOVSQ"). A device element nobody answers reads all ones, and a
/// write to one goes nowhere. `Ok(true)` if a device answered any element, `Ok(false)` for
/// the empty bus; `Err` says why it was not carried out (the guest then stops; hardware
/// would fault, or do what Parapet does not).
pub fn complete(
    vp: &mut impl GuestVp,
    paging: &Paging,
    mode: CodeMode,
    gpa: u64,
    site: &ExitSite,
    instruction: MemoryInstruction,
) -> Result<bool, &'static str> {
    let Access::Move {
        size,
        rep,
        address_size,
    } = instruction.access
    else {
        return Err("is not a string move");
    };
    // In 32-bit code DS and ES may have bases Parapet does not read; in 64-bit code they are
    // 0 (SDM Vol. 3A §3.4.4), and the decoder refuses FS/GS overrides.
    if mode != CodeMode::Bits64 {
        return Err("is outside 64-bit code");
    }
    let element = u64::from(size);
    let mask = match address_size {
        2 | 4 | 8 => u64::MAX >> (64 - 8 * u32::from(address_size)),
        _ => return Err("has an address size the decoder does not give"),
    };
    let gprs = vp.gprs();
    let (rsi, rdi, rcx) = (gprs.rsi, gprs.rdi, gprs.rcx);
    let op = StringOp {
        rep,
        count: rcx & mask,
        address: rsi & mask,
        down: site.rflags & RFLAGS_DF != 0,
        mask,
    };
    let total = op.elements();
    if total == 0 {
        // REP with (R/E)CX 0 moves nothing (on hardware it would not even have faulted).
        step_over(vp, site, instruction.length);
        return Ok(true);
    }
    let user = site.user_mode;
    let (source, destination) = (rsi & mask, rdi & mask);
    // Which side the faulting access was: the one whose first element is on its page.
    let on_device = |linear: u64, write: bool| {
        paging
            .translate(linear, write, user)
            .filter(|at| at / PAGE == gpa / PAGE)
    };
    let (from_device, device, device_gpa, memory) =
        match (on_device(source, false), on_device(destination, true)) {
            (Some(at), None) => (true, source, at, destination),
            (None, Some(at)) => (false, destination, at, source),
            (Some(_), Some(_)) => return Err("has the device page on both sides"),
            (None, None) => return Err("has the device page on neither side"),
        };
    let step = |base: u64, n: u64| {
        let offset = n.wrapping_mul(element);
        let at = if op.down {
            base.wrapping_sub(offset)
        } else {
            base.wrapping_add(offset)
        };
        at & mask
    };
    let now = total.min(MAX_BYTES_PER_EXIT / element);
    let mut answered = false;
    let mut done = 0;
    while done < now {
        let device_at = step(device, done);
        // Only elements wholly on the faulting page: past it may be RAM or another device,
        // which the guest reaches by executing the instruction again.
        if device_at / PAGE != device / PAGE || device_at % PAGE + element > PAGE {
            break;
        }
        let device_at = device_gpa - device_gpa % PAGE + device_at % PAGE;
        let memory_at = step(memory, done);
        let mut bytes = [0u8; 8];
        let bytes = &mut bytes[..usize::from(size)];
        if from_device {
            let value = vp.mmio_read(device_at, size).inspect(|_| answered = true);
            let value = value.unwrap_or(u64::MAX).to_le_bytes();
            bytes.copy_from_slice(&value[..bytes.len()]);
            paging
                .write_linear(memory_at, bytes, user)
                .map_err(|_| "writes memory that is not the guest's mapped, writable RAM")?;
        } else {
            paging
                .read_linear(memory_at, bytes, user)
                .map_err(|_| "reads memory that is not the guest's mapped RAM")?;
            let mut value = [0u8; 8];
            value[..bytes.len()].copy_from_slice(bytes);
            answered |= vp.mmio_write(device_at, size, u64::from_le_bytes(value));
        }
        done += 1;
    }
    if done == 0 {
        return Err("has an element that crosses the end of the device's page");
    }
    // Every attempted element moved: a REP is finished only once (R/E)CX reaches 0.
    let source = op.progress(rsi, rcx, size, done, done);
    let destination = op.progress(rdi, rcx, size, done, done);
    let gprs = vp.gprs();
    (gprs.rsi, gprs.rdi, gprs.rcx) = (source.pointer, destination.pointer, source.rcx);
    if source.finished {
        step_over(vp, site, instruction.length);
    }
    Ok(answered)
}

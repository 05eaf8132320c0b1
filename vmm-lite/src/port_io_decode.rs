//! Finding the port I/O instruction behind a KVM I/O exit.
//!
//! An intercept message to VTL2 carries the intercepted instruction's RIP and length (TLFS
//! HV_X64_INTERCEPT_MESSAGE_HEADER), but a KVM I/O exit gives only port, size and direction.
//! Where RIP points differs too: on this host's KVM a non-string `in` exits with RIP at the
//! instruction, an `out` with RIP already past it (measured: `inb %dx,%al` at 0x10ded6 exits
//! with RIP 0x10ded6, `outl %eax,%dx` at 0x112f17 with RIP 0x112f18). So vmm-lite decodes the
//! guest's bytes: forward from RIP for `in`, backward to RIP for `out`.
//!
//! Encodings: Intel SDM Vol. 2 — IN (E4, E5, EC, ED), OUT (E6, E7, EE, EF), INS (6C, 6D),
//! OUTS (6E, 6F); legacy prefixes (Vol. 2A §2.1.1) and REX (§2.2.1, 64-bit mode only).

/// The largest x86 instruction (Intel SDM Vol. 2A §2.3.11).
pub const MAX_INSTRUCTION_LEN: usize = 15;

/// The processor mode the instruction runs in, which fixes the default operand size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    Real16,
    Protected16,
    Protected32,
    Long64,
}

impl CpuMode {
    /// The operand size without a 0x66 prefix; 64-bit mode keeps 32 for port I/O.
    fn default_operand_bytes(self) -> u8 {
        match self {
            CpuMode::Real16 | CpuMode::Protected16 => 2,
            CpuMode::Protected32 | CpuMode::Long64 => 4,
        }
    }
}

/// What a KVM I/O exit reports about the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    pub port: u16,
    /// 1, 2 or 4.
    pub size: u8,
    pub is_write: bool,
}

/// A decoded port I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortIoInstruction {
    /// Bytes, prefixes included.
    pub length: u8,
    pub size: u8,
    pub is_write: bool,
    /// The port from an imm8 form; `None` means the port is in DX.
    pub immediate_port: Option<u8>,
    /// INS/OUTS.
    pub is_string: bool,
    /// An F3 prefix (REP) on a string form.
    pub has_rep: bool,
}

impl PortIoInstruction {
    /// Whether this instruction could have made `access` (DX can hold any port).
    pub fn matches(&self, access: IoAccess) -> bool {
        self.size == access.size
            && self.is_write == access.is_write
            && self
                .immediate_port
                .is_none_or(|p| u16::from(p) == access.port)
    }
}

/// Decodes the port I/O instruction that starts at `bytes[0]`, or `None` when the bytes are
/// not one (another opcode, too many prefixes, or cut short).
pub fn decode(bytes: &[u8], mode: CpuMode) -> Option<PortIoInstruction> {
    let mut operand_override = false;
    let mut rep = false;
    let mut at = 0;
    // Legacy prefixes in any order; REX only in 64-bit mode and only right before the opcode.
    loop {
        let byte = *bytes.get(at)?;
        match byte {
            0x66 => operand_override = true,
            0xf3 => rep = true,
            0xf2 | 0x67 | 0xf0 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            0x40..=0x4f if mode == CpuMode::Long64 => {
                at += 1;
                break;
            }
            _ => break,
        }
        at += 1;
        if at >= MAX_INSTRUCTION_LEN {
            return None;
        }
    }
    let opcode = *bytes.get(at)?;
    at += 1;
    let wide = match mode.default_operand_bytes() {
        4 if operand_override => 2,
        2 if operand_override => 4,
        n => n,
    };
    let size = if opcode & 1 == 0 { 1 } else { wide };
    let (is_write, immediate_port, is_string) = match opcode {
        0xe4 | 0xe5 => (false, Some(*bytes.get(at)?), false),
        0xe6 | 0xe7 => (true, Some(*bytes.get(at)?), false),
        0xec | 0xed => (false, None, false),
        0xee | 0xef => (true, None, false),
        0x6c | 0x6d => (false, None, true),
        0x6e | 0x6f => (true, None, true),
        _ => return None,
    };
    if immediate_port.is_some() {
        at += 1;
    }
    if at > MAX_INSTRUCTION_LEN {
        return None;
    }
    Some(PortIoInstruction {
        length: at as u8,
        size,
        is_write,
        immediate_port,
        is_string,
        has_rep: rep && is_string,
    })
}

/// The instruction that ends exactly at the end of `before` (the bytes just below RIP) and
/// could have made `access`, with its length.
///
/// The shortest such instruction wins. Two readings can both fit (`E6 EE` is `out 0xee, al`
/// and its last byte alone is `out dx, al`); they end at the same RIP and do the same access,
/// so emulation is unaffected, only the start reported in an intercept message may differ.
pub fn find_ending_at(before: &[u8], mode: CpuMode, access: IoAccess) -> Option<PortIoInstruction> {
    let available = before.len().min(MAX_INSTRUCTION_LEN);
    (1..=available).find_map(|length| {
        let start = before.len() - length;
        decode(&before[start..], mode)
            .filter(|insn| usize::from(insn.length) == length && insn.matches(access))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT_DX: IoAccess = IoAccess {
        port: 0xf4,
        size: 4,
        is_write: true,
    };

    #[test]
    fn decodes_every_non_string_form() {
        let cases: [(&[u8], u8, bool, Option<u8>); 8] = [
            (&[0xe4, 0x60], 1, false, Some(0x60)),
            (&[0xe5, 0x60], 4, false, Some(0x60)),
            (&[0xe6, 0xe4], 1, true, Some(0xe4)),
            (&[0xe7, 0x80], 4, true, Some(0x80)),
            (&[0xec], 1, false, None),
            (&[0xed], 4, false, None),
            (&[0xee], 1, true, None),
            (&[0xef], 4, true, None),
        ];
        for (bytes, size, is_write, port) in cases {
            let insn = decode(bytes, CpuMode::Long64).unwrap();
            assert_eq!(usize::from(insn.length), bytes.len(), "{bytes:x?}");
            assert_eq!(
                (insn.size, insn.is_write, insn.immediate_port),
                (size, is_write, port)
            );
            assert!(!insn.is_string);
        }
    }

    #[test]
    fn operand_size_prefix_depends_on_the_mode() {
        assert_eq!(decode(&[0x66, 0xef], CpuMode::Long64).unwrap().size, 2);
        assert_eq!(decode(&[0x66, 0xef], CpuMode::Protected32).unwrap().size, 2);
        assert_eq!(decode(&[0xef], CpuMode::Real16).unwrap().size, 2);
        assert_eq!(decode(&[0x66, 0xef], CpuMode::Real16).unwrap().size, 4);
        // A byte-sized form ignores the prefix.
        assert_eq!(decode(&[0x66, 0xee], CpuMode::Long64).unwrap().size, 1);
    }

    #[test]
    fn string_forms_carry_rep() {
        let insn = decode(&[0xf3, 0x6e], CpuMode::Long64).unwrap();
        assert_eq!(
            (insn.length, insn.is_string, insn.has_rep, insn.is_write),
            (2, true, true, true)
        );
        let insn = decode(&[0x66, 0xf3, 0x48, 0x6d], CpuMode::Long64).unwrap();
        assert_eq!((insn.length, insn.size, insn.is_write), (4, 2, false));
    }

    #[test]
    fn rex_is_only_a_prefix_in_long_mode() {
        assert_eq!(decode(&[0x48, 0xef], CpuMode::Long64).unwrap().length, 2);
        // In 32-bit mode 0x48 is `dec eax`, not part of the I/O instruction.
        assert_eq!(decode(&[0x48, 0xef], CpuMode::Protected32), None);
    }

    #[test]
    fn rejects_other_opcodes_and_cut_bytes() {
        assert_eq!(decode(&[0x90], CpuMode::Long64), None);
        assert_eq!(decode(&[], CpuMode::Long64), None);
        assert_eq!(decode(&[0x66], CpuMode::Long64), None);
        assert_eq!(decode(&[0xe6], CpuMode::Long64), None); // imm8 missing
        assert_eq!(decode(&[0x66; 20], CpuMode::Long64), None);
        let mut long = vec![0x66; 14];
        long.extend([0xe6, 0x80]); // 16 bytes: over the architectural limit
        assert_eq!(decode(&long, CpuMode::Long64), None);
    }

    #[test]
    fn finds_the_out_that_ends_at_rip() {
        // The firmware's exit: lea eax,[rdi+0x10]; mov dx,0xf4; out dx,eax
        let before = [0x8d, 0x47, 0x10, 0x66, 0xba, 0xf4, 0x00, 0xef];
        let insn = find_ending_at(&before, CpuMode::Long64, OUT_DX).unwrap();
        assert_eq!(insn.length, 1);
        // The hypercall page: out 0xe4, al
        let access = IoAccess {
            port: 0xe4,
            size: 1,
            is_write: true,
        };
        let insn = find_ending_at(&[0xc3, 0xe6, 0xe4], CpuMode::Long64, access).unwrap();
        assert_eq!((insn.length, insn.immediate_port), (2, Some(0xe4)));
    }

    #[test]
    fn the_access_must_match() {
        let wrong_port = IoAccess {
            port: 0x60,
            ..OUT_DX
        };
        assert_eq!(
            find_ending_at(&[0xe7, 0xf4], CpuMode::Long64, wrong_port),
            None
        );
        let read = IoAccess {
            is_write: false,
            ..OUT_DX
        };
        assert_eq!(find_ending_at(&[0xef], CpuMode::Long64, read), None);
        let word = IoAccess { size: 2, ..OUT_DX };
        // `out dx, ax` needs its 0x66 prefix: the shortest fit is two bytes.
        assert_eq!(
            find_ending_at(&[0x66, 0xef], CpuMode::Long64, word)
                .unwrap()
                .length,
            2
        );
        assert_eq!(find_ending_at(&[0x90, 0x90], CpuMode::Long64, OUT_DX), None);
        assert_eq!(find_ending_at(&[], CpuMode::Long64, OUT_DX), None);
    }
}

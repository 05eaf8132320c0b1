//! Decoding the x86 instructions a guest uses to touch memory-mapped devices (the MOV family),
//! so a backend whose platform only reports "this access faulted at this guest-physical
//! address" (SVM's nested page faults) can complete it: how long it is, whether it reads or
//! writes, how wide, and which register a read lands in (Intel SDM Vol. 2, ch. 2 for the
//! encoding; the opcodes from the MOV, MOVZX, MOVSX and MOVS pages).
//!
//! Only 32- and 64-bit code is decoded, and only 32- and 64-bit ModRM addressing (MOVS, which
//! has no ModRM, also takes 0x67's 16-bit addressing in 32-bit code); 16-bit code, and
//! anything else, is `None`: the caller then stops rather than guess.

/// The code's default sizes: CS.L (64-bit) or CS.D (32-bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CodeMode {
    #[default]
    Bits64,
    Bits32,
    Bits16,
}

/// Where a read's value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// General-purpose register 0-15 (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15).
    Register(u8),
    /// AH, CH, DH or BH: bits 15:8 of register 0-3 (a byte register without REX).
    HighByte(u8),
}

/// How a read's value fills the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension {
    /// MOV: 8/16-bit results keep the register's other bits, 32-bit ones clear bits 63:32.
    Merge,
    /// MOVZX to `to` bytes.
    Zero { to: u8 },
    /// MOVSX to `to` bytes.
    Sign { to: u8 },
}

/// What the instruction does with memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read {
        size: u8,
        destination: Destination,
        extension: Extension,
    },
    /// A write of `size` bytes of `source`.
    Write { size: u8, source: Source },
    /// MOVS (Intel SDM Vol. 2B "MOVS/MOVSB/MOVSW/MOVSD/MOVSQ"): `size`-byte elements from
    /// DS:(R/E)SI to ES:(R/E)DI, both index registers stepping by `size` (down when
    /// RFLAGS.DF is set); with `rep` (F3, or F2, which MOVS takes as REP: Vol. 2B "REP/REPE/
    /// REPZ/REPNE/REPNZ") (R/E)CX elements, counting RCX down. `address_size` (2, 4 or 8
    /// bytes) is the width of RSI, RDI and RCX as the instruction uses them. The source's
    /// segment is DS or an ES/CS/SS/DS override (FS and GS overrides are not decoded).
    Move {
        size: u8,
        rep: bool,
        address_size: u8,
    },
}

/// Where a write's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A register (its low `size` bytes, or AH-BH).
    Register(Destination),
    /// An immediate, already sign-extended to 64 bits where the encoding says so.
    Immediate(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryInstruction {
    pub length: u8,
    pub access: Access,
}

const MAX_LENGTH: usize = 15;

/// Decodes the instruction at the start of `bytes` (as many as could be fetched).
pub fn decode(bytes: &[u8], mode: CodeMode) -> Option<MemoryInstruction> {
    if mode == CodeMode::Bits16 {
        return None;
    }
    let bytes = &bytes[..bytes.len().min(MAX_LENGTH)];
    let mut at = 0;
    let mut operand16 = false;
    let mut address_override = false;
    let mut rep = false;
    let mut fs_or_gs = false;
    let mut rex = 0u8;
    loop {
        match *bytes.get(at)? {
            0x66 => operand16 = true,
            // In 64-bit code 0x67 selects 32-bit addressing; in 32-bit code it selects 16-bit
            // addressing, whose ModRM forms this decoder does not take (MOVS only).
            0x67 => address_override = true,
            // LOCK on a MOV or MOVS is #UD on hardware: not something to complete.
            0xf0 => return None,
            // REP (and REPNE, which MOVS takes as REP); no effect on a MOV.
            0xf2 | 0xf3 => rep = true,
            0x64 | 0x65 => fs_or_gs = true,
            // Other segment overrides: no effect on length or direction here.
            0x26 | 0x2e | 0x36 | 0x3e => {}
            b @ 0x40..=0x4f if mode == CodeMode::Bits64 => {
                rex = b;
                at += 1;
                // REX counts only right before the opcode.
                if matches!(bytes.get(at)?, 0x40..=0x4f) {
                    continue;
                }
                break;
            }
            _ => break,
        }
        at += 1;
        rex = 0;
    }
    let address32 = mode == CodeMode::Bits32 || address_override;
    let wide = rex & 0x08 != 0;
    let full_size = if wide {
        8
    } else if operand16 {
        2
    } else {
        4
    };
    let register = |modrm: u8| ((modrm >> 3) & 7) | if rex & 0x04 != 0 { 8 } else { 0 };
    let byte_register = |number: u8| {
        if rex == 0 && (4..8).contains(&number) {
            Destination::HighByte(number - 4)
        } else {
            Destination::Register(number)
        }
    };
    let opcode = *bytes.get(at)?;
    at += 1;
    if matches!(opcode, 0xa4 | 0xa5) {
        // MOVS has no operands beyond its opcode. An FS/GS override would add a segment base
        // the caller does not know.
        if fs_or_gs {
            return None;
        }
        let address_size = match (mode, address_override) {
            (CodeMode::Bits64, false) => 8,
            (CodeMode::Bits64, true) | (_, false) => 4,
            (_, true) => 2,
        };
        let size = if opcode == 0xa4 { 1 } else { full_size };
        return Some(MemoryInstruction {
            length: at as u8,
            access: Access::Move {
                size,
                rep,
                address_size,
            },
        });
    }
    if mode == CodeMode::Bits32 && address_override {
        return None;
    }
    let (access, immediate) = match opcode {
        0x88 => {
            let modrm = *bytes.get(at)?;
            let source = Source::Register(byte_register(register(modrm)));
            (Access::Write { size: 1, source }, 0)
        }
        0x89 => {
            let modrm = *bytes.get(at)?;
            let source = Source::Register(Destination::Register(register(modrm)));
            let write = Access::Write {
                size: full_size,
                source,
            };
            (write, 0)
        }
        0x8a | 0x8b => {
            let modrm = *bytes.get(at)?;
            let size = if opcode == 0x8a { 1 } else { full_size };
            let destination = if size == 1 {
                byte_register(register(modrm))
            } else {
                Destination::Register(register(modrm))
            };
            let read = Access::Read {
                size,
                destination,
                extension: Extension::Merge,
            };
            (read, 0)
        }
        // The immediate is read once the operand's length is known (below).
        0xc6 => (
            Access::Write {
                size: 1,
                source: Source::Immediate(0),
            },
            1,
        ),
        0xc7 => (
            Access::Write {
                size: full_size,
                source: Source::Immediate(0),
            },
            // A 64-bit MOV takes a sign-extended 32-bit immediate.
            if full_size == 2 { 2 } else { 4 },
        ),
        0xa0..=0xa3 => {
            // MOV to/from the accumulator at an absolute offset of the address size.
            let offset = if mode == CodeMode::Bits64 && !address32 {
                8
            } else {
                4
            };
            let size = if opcode & 1 == 0 { 1 } else { full_size };
            let access = if opcode < 0xa2 {
                Access::Read {
                    size,
                    destination: Destination::Register(0),
                    extension: Extension::Merge,
                }
            } else {
                Access::Write {
                    size,
                    source: Source::Register(Destination::Register(0)),
                }
            };
            let length = at + offset;
            return (length <= bytes.len()).then_some(MemoryInstruction {
                length: length as u8,
                access,
            });
        }
        0x0f => {
            let second = *bytes.get(at)?;
            at += 1;
            let modrm = *bytes.get(at)?;
            let size = match second {
                0xb6 | 0xbe => 1,
                0xb7 | 0xbf => 2,
                _ => return None,
            };
            let to = full_size;
            let extension = if second & 0x08 == 0 {
                Extension::Zero { to }
            } else {
                Extension::Sign { to }
            };
            let read = Access::Read {
                size,
                destination: Destination::Register(register(modrm)),
                extension,
            };
            (read, 0)
        }
        _ => return None,
    };
    let modrm = *bytes.get(at)?;
    at += 1;
    if matches!(opcode, 0xc6 | 0xc7) && (modrm >> 3) & 7 != 0 {
        return None;
    }
    at += memory_operand_length(bytes.get(at..)?, modrm)?;
    let access = match access {
        Access::Write {
            size,
            source: Source::Immediate(_),
        } => {
            let field = bytes.get(at..at + immediate)?;
            let mut raw = [0u8; 8];
            raw[..immediate].copy_from_slice(field);
            let value = u64::from_le_bytes(raw);
            // imm32 into a 64-bit operand is sign-extended (SDM Vol. 2, MOV C7 /0).
            let value = if size == 8 {
                value as u32 as i32 as i64 as u64
            } else {
                value
            };
            Access::Write {
                size,
                source: Source::Immediate(value),
            }
        }
        other => other,
    };
    at += immediate;
    (at <= bytes.len()).then_some(MemoryInstruction {
        length: at as u8,
        access,
    })
}

/// The segment override among the legacy prefixes at the start of `bytes` (the SDM's
/// numbering: 0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS), and whether 0x67 is among them.
pub fn prefixes(bytes: &[u8]) -> (Option<u8>, bool) {
    let (mut segment, mut address_size) = (None, false);
    for &b in bytes.iter().take(MAX_LENGTH) {
        match b {
            0x26 => segment = Some(0),
            0x2e => segment = Some(1),
            0x36 => segment = Some(2),
            0x3e => segment = Some(3),
            0x64 => segment = Some(4),
            0x65 => segment = Some(5),
            0x67 => address_size = true,
            0x66 | 0xf0 | 0xf2 | 0xf3 => {}
            _ => break,
        }
    }
    (segment, address_size)
}

/// The length of an instruction whose opcode is known to be `opcode_length` bytes with no
/// operands (CPUID, RDMSR, WRMSR: 2; HLT, INVD's 0F 08: 1 or 2): its legacy and REX prefixes
/// plus the opcode. `None` if `bytes` ends first or holds more than an instruction can.
pub fn length_with_prefixes(bytes: &[u8], opcode_length: usize, mode: CodeMode) -> Option<u8> {
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        let prefix = matches!(
            b,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3
        ) || (mode == CodeMode::Bits64 && (0x40..=0x4f).contains(&b));
        if !prefix {
            break;
        }
        at += 1;
    }
    let length = at + opcode_length;
    (length <= bytes.len() && length <= MAX_LENGTH).then_some(length as u8)
}

/// Bytes after ModRM for its memory operand (SIB and displacement) with 32/64-bit
/// addressing; `None` for a register operand (no memory access to complete).
fn memory_operand_length(rest: &[u8], modrm: u8) -> Option<usize> {
    let (mode, rm) = (modrm >> 6, modrm & 7);
    if mode == 3 {
        return None;
    }
    let sib = rm == 4;
    let base_is_displacement = sib && mode == 0 && rest.first()? & 7 == 5;
    let displacement = match mode {
        0 if rm == 5 || base_is_displacement => 4,
        0 => 0,
        1 => 1,
        _ => 4,
    };
    Some(usize::from(sib) + displacement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(size: u8, register: u8) -> Access {
        Access::Read {
            size,
            destination: Destination::Register(register),
            extension: Extension::Merge,
        }
    }

    #[test]
    fn moves_to_and_from_memory() {
        let d = |bytes: &[u8]| decode(bytes, CodeMode::Bits64);
        // mov rax, [rcx]
        assert_eq!(
            d(&[0x48, 0x8b, 0x01]),
            Some(MemoryInstruction {
                length: 3,
                access: read(8, 0)
            })
        );
        // mov [rcx], rdx
        assert_eq!(
            d(&[0x48, 0x89, 0x11]).unwrap().access,
            Access::Write {
                size: 8,
                source: Source::Register(Destination::Register(2))
            }
        );
        // mov r9d, [rsp + 0x10]: REX.R, SIB, disp8
        assert_eq!(
            d(&[0x44, 0x8b, 0x4c, 0x24, 0x10]),
            Some(MemoryInstruction {
                length: 5,
                access: read(4, 9)
            })
        );
        // mov eax, [rip + disp32]
        assert_eq!(d(&[0x8b, 0x05, 1, 2, 3, 4]).unwrap().length, 6);
        // mov ax, [rbx + rsi*4 + disp32] with 0x66
        assert_eq!(
            d(&[0x66, 0x8b, 0x84, 0xb3, 0, 0, 0, 1]),
            Some(MemoryInstruction {
                length: 8,
                access: read(2, 0)
            })
        );
        // mov byte [rdi], 0x5a; mov dword [rdi + 8], imm32; mov qword [rax], imm32
        assert_eq!(d(&[0xc6, 0x07, 0x5a]).unwrap().length, 3);
        assert_eq!(d(&[0xc7, 0x47, 0x08, 1, 2, 3, 4]).unwrap().length, 7);
        assert_eq!(
            d(&[0x48, 0xc7, 0x00, 1, 2, 3, 4]),
            Some(MemoryInstruction {
                length: 7,
                access: Access::Write {
                    size: 8,
                    source: Source::Immediate(0x0403_0201)
                }
            })
        );
        // mov qword [rax], -1 (imm32 sign-extended); mov byte [rdi], 0x5a; mov [rbx], ah.
        assert_eq!(
            d(&[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff])
                .unwrap()
                .access,
            Access::Write {
                size: 8,
                source: Source::Immediate(u64::MAX)
            }
        );
        assert_eq!(
            d(&[0xc6, 0x07, 0x5a]).unwrap().access,
            Access::Write {
                size: 1,
                source: Source::Immediate(0x5a)
            }
        );
        assert_eq!(
            d(&[0x88, 0x23]).unwrap().access,
            Access::Write {
                size: 1,
                source: Source::Register(Destination::HighByte(0))
            }
        );
        // mov word [rax], imm16
        assert_eq!(d(&[0x66, 0xc7, 0x00, 1, 2]).unwrap().length, 5);
    }

    #[test]
    fn byte_registers_and_extensions() {
        let d = |bytes: &[u8]| decode(bytes, CodeMode::Bits64).unwrap().access;
        // mov ah, [rbx] (no REX: register 4 is AH); with REX it is SPL.
        assert_eq!(
            d(&[0x8a, 0x23]),
            Access::Read {
                size: 1,
                destination: Destination::HighByte(0),
                extension: Extension::Merge
            }
        );
        assert_eq!(
            d(&[0x40, 0x8a, 0x23]),
            Access::Read {
                size: 1,
                destination: Destination::Register(4),
                extension: Extension::Merge
            }
        );
        // movzx eax, byte [rcx]; movsx rdx, word [rcx]
        assert_eq!(
            d(&[0x0f, 0xb6, 0x01]),
            Access::Read {
                size: 1,
                destination: Destination::Register(0),
                extension: Extension::Zero { to: 4 }
            }
        );
        assert_eq!(
            d(&[0x48, 0x0f, 0xbf, 0x11]),
            Access::Read {
                size: 2,
                destination: Destination::Register(2),
                extension: Extension::Sign { to: 8 }
            }
        );
    }

    #[test]
    fn absolute_offsets_follow_the_address_size() {
        // mov eax, [moffs64]; with 0x67 the offset is 32 bits; in 32-bit code too.
        let mut moffs = [0xa1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(&moffs, CodeMode::Bits64).unwrap().length, 9);
        assert_eq!(
            decode(&[0x67, 0xa1, 0, 0, 0, 0], CodeMode::Bits64)
                .unwrap()
                .length,
            6
        );
        assert_eq!(decode(&moffs[..5], CodeMode::Bits32).unwrap().length, 5);
        moffs[0] = 0xa2;
        assert_eq!(
            decode(&moffs, CodeMode::Bits64).unwrap().access,
            Access::Write {
                size: 1,
                source: Source::Register(Destination::Register(0))
            }
        );
    }

    #[test]
    fn prefixes_and_plain_lengths() {
        assert_eq!(prefixes(&[0x64, 0x67, 0xf3, 0x6e]), (Some(4), true));
        assert_eq!(prefixes(&[0x6e]), (None, false));
        // cpuid with an operand-size prefix; hlt with CS override; a REX only counts in
        // 64-bit code; too few bytes.
        assert_eq!(
            length_with_prefixes(&[0x66, 0x0f, 0xa2], 2, CodeMode::Bits64),
            Some(3)
        );
        assert_eq!(
            length_with_prefixes(&[0x2e, 0xf4], 1, CodeMode::Bits32),
            Some(2)
        );
        assert_eq!(
            length_with_prefixes(&[0x48, 0x0f, 0x32], 2, CodeMode::Bits64),
            Some(3)
        );
        assert_eq!(length_with_prefixes(&[0x0f], 2, CodeMode::Bits64), None);
        assert_eq!(length_with_prefixes(&[0x66; 15], 2, CodeMode::Bits64), None);
    }

    #[test]
    fn string_moves() {
        let moves = |size, rep, address_size| Access::Move {
            size,
            rep,
            address_size,
        };
        let d = |bytes: &[u8]| decode(bytes, CodeMode::Bits64);
        let one = |bytes: &[u8], access| {
            assert_eq!(
                d(bytes),
                Some(MemoryInstruction {
                    length: bytes.len() as u8,
                    access
                }),
                "{bytes:02x?}"
            )
        };
        // movsb; movsd; movsw; movsq; rep movsd; rep movsq; rep movsb with 32-bit addressing.
        one(&[0xa4], moves(1, false, 8));
        one(&[0xa5], moves(4, false, 8));
        one(&[0x66, 0xa5], moves(2, false, 8));
        one(&[0x48, 0xa5], moves(8, false, 8));
        one(&[0xf3, 0xa5], moves(4, true, 8));
        one(&[0xf3, 0x48, 0xa5], moves(8, true, 8));
        one(&[0x67, 0xf3, 0xa4], moves(1, true, 4));
        // REPNE is REP for MOVS; REX.W outranks 0x66; ES/CS/SS/DS overrides (base 0 in
        // 64-bit code) are taken.
        one(&[0xf2, 0xa5], moves(4, true, 8));
        one(&[0x66, 0x48, 0xa5], moves(8, false, 8));
        one(&[0x3e, 0xa4], moves(1, false, 8));
        one(&[0x26, 0xf3, 0xa5], moves(4, true, 8));
        // In 32-bit code: 32-bit addressing, 0x67 makes it 16-bit; 0x48 is DEC EAX there.
        assert_eq!(
            decode(&[0xf3, 0xa5], CodeMode::Bits32).unwrap().access,
            moves(4, true, 4)
        );
        assert_eq!(
            decode(&[0x67, 0xa5], CodeMode::Bits32).unwrap().access,
            moves(4, false, 2)
        );
        assert_eq!(decode(&[0x48, 0xa5], CodeMode::Bits32), None);
        // Trailing bytes are the next instruction's.
        assert_eq!(d(&[0xa4, 0x90, 0x90]).unwrap().length, 1);
    }

    #[test]
    fn string_moves_it_refuses() {
        let d = |bytes: &[u8]| decode(bytes, CodeMode::Bits64);
        // FS/GS overrides (a base Parapet does not know), LOCK (#UD), truncation, 16-bit
        // code, prefixes that fill the 15 bytes.
        assert_eq!(d(&[0x64, 0xa4]), None);
        assert_eq!(d(&[0x65, 0xf3, 0x48, 0xa5]), None);
        assert_eq!(d(&[0xf0, 0xa5]), None);
        assert_eq!(d(&[0xf3]), None);
        assert_eq!(d(&[0xf3, 0x48]), None);
        assert_eq!(decode(&[0xa4], CodeMode::Bits16), None);
        let mut long = [0xf3; 16];
        long[15] = 0xa5;
        assert_eq!(d(&long), None);
        // CMPS, STOS, LODS, SCAS are not moves between memory and a device.
        for opcode in [0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf] {
            assert_eq!(d(&[0xf3, opcode]), None);
        }
    }

    #[test]
    fn what_it_cannot_complete_is_none() {
        // Register operands, other opcodes, truncated bytes, 16-bit code, C7 /1.
        assert_eq!(decode(&[0x89, 0xc8], CodeMode::Bits64), None);
        assert_eq!(decode(&[0x01, 0x01], CodeMode::Bits64), None);
        assert_eq!(decode(&[0x8b, 0x05, 1, 2], CodeMode::Bits64), None);
        assert_eq!(decode(&[0x8b, 0x07], CodeMode::Bits16), None);
        assert_eq!(decode(&[0xc7, 0x08, 1, 2, 3, 4], CodeMode::Bits64), None);
        assert_eq!(decode(&[], CodeMode::Bits64), None);
        assert_eq!(decode(&[0x66; 20], CodeMode::Bits64), None);
        // 0x67 in 32-bit code means 16-bit addressing; LOCK MOV is #UD.
        assert_eq!(
            decode(&[0x67, 0x8b, 0x06, 0x00, 0x10], CodeMode::Bits32),
            None
        );
        assert_eq!(decode(&[0x67, 0xa1, 0x00, 0x10], CodeMode::Bits32), None);
        assert_eq!(decode(&[0xf0, 0x89, 0x01], CodeMode::Bits64), None);
        // No panic on any two-byte or three-byte prefix of junk.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = decode(&[a, b, 0x24], CodeMode::Bits64);
                let _ = decode(&[0x48, a, b], CodeMode::Bits32);
            }
        }
    }
}

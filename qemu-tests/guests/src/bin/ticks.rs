//! The ticks guest (x86_64): takes timer interrupts from the local APIC Parapet emulates, as
//! an OS does, in both of its modes: first as it comes out of reset (xAPIC, registers in the
//! MMIO page at 0xFEE00000), then switched to x2APIC through IA32_APIC_BASE (registers as
//! MSRs). Each time: the APIC software-enabled through the spurious-vector register, the LVT
//! timer periodic at vector 0x20, an IDT whose handler counts and writes EOI the mode's way,
//! halting until five more have arrived. Then the I/O APIC: its version register read by a
//! plain MOV and by string moves (`rep movsd`, `movsb`, as Linux's `memcpy_fromio` copies),
//! and COM1's interrupts through it. A guest-visible #GP or a lost interrupt ends it badly (a
//! triple fault, or a hang the test's timeout catches).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ticks is a test guest; `cargo xtask build` builds it for x86_64");
    std::process::exit(2);
}

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
#[no_mangle]
extern "C" fn guest_main() -> ! {
    use parapet_test_guests::{exit, println, serial, EXIT_FAILURE};

    serial::init();
    println!("ticks: x86_64 only");
    exit(EXIT_FAILURE)
}

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod x86 {
    use core::arch::{asm, global_asm};
    use core::sync::atomic::{AtomicU32, Ordering};

    use parapet_test_guests::{exit, hypercall::rdmsr, port, println, serial, EXIT_SUCCESS};

    /// MSRs (Intel SDM Vol. 3A §11.4.4, §11.12.1.2).
    const IA32_APIC_BASE: u32 = 0x1b;
    const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
    const X2APIC_ENABLE: u64 = 1 << 10;
    const X2APIC_SVR: u32 = 0x80f;
    const X2APIC_LVT_TIMER: u32 = 0x832;
    const X2APIC_INITIAL_COUNT: u32 = 0x838;
    const X2APIC_DIVIDE: u32 = 0x83e;
    /// The same registers in the xAPIC page (SDM Vol. 3A Table 11-1): the MSR's low byte
    /// times 16.
    const XAPIC_PAGE: u64 = 0xfee0_0000;
    const XAPIC_SVR: u64 = 0xf0;
    const XAPIC_LVT_TIMER: u64 = 0x320;
    const XAPIC_INITIAL_COUNT: u64 = 0x380;
    const XAPIC_DIVIDE: u64 = 0x3e0;
    const XAPIC_CURRENT_COUNT: u64 = 0x390;
    /// LVT mask bit.
    const LVT_MASKED: u32 = 1 << 16;
    /// 8254 PIT (Intel 8254 datasheet): channel 2's data port, the mode/command port, and port
    /// 0x61 with GATE2 (bit 0) and OUT2 (bit 5), as Linux's PIT calibration drives them.
    const PIT_CHANNEL2: u16 = 0x42;
    const PIT_COMMAND: u16 = 0x43;
    const PORT_61: u16 = 0x61;
    /// Channel 2, both bytes, mode 0 (interrupt on terminal count), binary.
    const PIT_CHANNEL2_MODE0: u8 = 0b1011_0000;
    const TIMER_VECTOR: u8 = 0x20;
    const SPURIOUS_VECTOR: u8 = 0xff;
    const LVT_PERIODIC: u64 = 1 << 17;
    const DIVIDE_BY_1: u64 = 0b1011;
    /// Interrupts wanted in each mode.
    const WANTED: u32 = 5;

    /// Incremented by the timer handler.
    #[no_mangle]
    static TICKS_SEEN: AtomicU32 = AtomicU32::new(0);
    /// Non-zero once in x2APIC mode: how the handler ends an interrupt.
    #[no_mangle]
    static TICKS_X2APIC: AtomicU32 = AtomicU32::new(0);
    /// Incremented by COM1's handler.
    #[no_mangle]
    static TICKS_COM1: AtomicU32 = AtomicU32::new(0);
    /// COM1's interrupt: ISA IRQ 4 on the I/O APIC's pin 4, at this vector.
    const COM1_VECTOR: u8 = 0x24;
    const COM1: u16 = 0x3f8;
    /// 16550 registers and bits (PC16550D datasheet): IER's THR-empty enable, MCR's OUT2
    /// (which gates the interrupt line on PCs), MCR's DTR and RTS.
    const IER: u16 = 1;
    const MCR: u16 = 4;
    const IER_THR_EMPTY: u8 = 1 << 1;
    const MCR_DTR_RTS_OUT2: u8 = 0x0b;
    /// The I/O APIC (82093AA §3.2): IOREGSEL and IOWIN, and redirection entry 4's two halves.
    const IOAPIC: u64 = 0xfec0_0000;
    const IOREGSEL: u64 = 0x00;
    const IOWIN: u64 = 0x10;
    /// The version register's index (82093AA §3.2.2).
    const IOAPIC_VERSION: u32 = 0x01;
    const REDIRECTION_4_LOW: u32 = 0x10 + 2 * 4;
    const REDIRECTION_4_HIGH: u32 = REDIRECTION_4_LOW + 1;

    #[repr(C, packed)]
    #[derive(Clone, Copy)]
    struct Gate {
        offset_low: u16,
        selector: u16,
        ist: u8,
        attributes: u8,
        offset_mid: u16,
        offset_high: u32,
        reserved: u32,
    }

    static mut IDT: [Gate; 256] = [Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    }; 256];

    // The timer handler counts and ends the interrupt: xAPIC EOI is a write to offset 0xb0 of
    // the page, x2APIC EOI wrmsr 0x80b, 0. The spurious one just returns (no EOI for spurious
    // interrupts, SDM §11.9).
    global_asm!(
        ".section .text.ticks, \"ax\"",
        ".global ticks_timer_entry",
        "ticks_timer_entry:",
        "push rax",
        "push rcx",
        "push rdx",
        "lock inc dword ptr [rip + TICKS_SEEN]",
        // End the interrupt the mode's way, restore, return (COM1's handler ends here too).
        "ticks_eoi:",
        "cmp dword ptr [rip + TICKS_X2APIC], 0",
        "jne 2f",
        "mov eax, 0xfee000b0",
        "mov dword ptr [rax], 0",
        "jmp 3f",
        "2:",
        "mov ecx, 0x80b",
        "xor eax, eax",
        "xor edx, edx",
        "wrmsr",
        "3:",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "iretq",
        ".global ticks_spurious_entry",
        "ticks_spurious_entry:",
        "iretq",
        // COM1's: reading IIR acknowledges the THR-empty interrupt (the datasheet's
        // interrupt reset), then count and EOI as the timer's does.
        ".global ticks_com1_entry",
        "ticks_com1_entry:",
        "push rax",
        "push rcx",
        "push rdx",
        "mov dx, 0x3fa",
        "in al, dx",
        "lock inc dword ptr [rip + TICKS_COM1]",
        "jmp ticks_eoi",
    );

    extern "C" {
        fn ticks_timer_entry();
        fn ticks_spurious_entry();
        fn ticks_com1_entry();
    }

    /// An interrupt gate in the loader's 64-bit code segment (0x08).
    fn gate(handler: unsafe extern "C" fn()) -> Gate {
        let address = handler as usize as u64;
        Gate {
            offset_low: address as u16,
            selector: 0x08,
            ist: 0,
            attributes: 0x8e,
            offset_mid: (address >> 16) as u16,
            offset_high: (address >> 32) as u32,
            reserved: 0,
        }
    }

    /// # Safety
    /// `msr` must be writable with `value`.
    unsafe fn wrmsr(msr: u32, value: u64) {
        // SAFETY: the caller vouches for the MSR and value.
        unsafe {
            asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
        };
    }

    #[no_mangle]
    extern "C" fn guest_main() -> ! {
        serial::init();
        println!("ticks: start");
        // SAFETY: only this code touches the IDT, before interrupts are enabled.
        unsafe {
            let idt = (&raw mut IDT).cast::<Gate>();
            idt.add(usize::from(TIMER_VECTOR))
                .write(gate(ticks_timer_entry));
            idt.add(usize::from(SPURIOUS_VECTOR))
                .write(gate(ticks_spurious_entry));
            idt.add(usize::from(COM1_VECTOR))
                .write(gate(ticks_com1_entry));
            #[repr(C, packed)]
            struct Pointer {
                limit: u16,
                base: u64,
            }
            let pointer = Pointer {
                limit: (size_of::<[Gate; 256]>() - 1) as u16,
                base: idt as u64,
            };
            asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack));
        }
        // xAPIC mode, as after reset: the registers are the MMIO page's.
        let xapic = |offset: u64, value: u32| {
            // SAFETY: the APIC page, which the paravisor emulates; identity-mapped by the
            // loader's tables.
            unsafe { ((XAPIC_PAGE + offset) as *mut u32).write_volatile(value) }
        };
        let xapic_read = |offset: u64| {
            // SAFETY: as above.
            unsafe { ((XAPIC_PAGE + offset) as *const u32).read_volatile() }
        };
        // Calibrate, as Linux does: PIT channel 2 counting 0xffff in mode 0 (54.9 ms), timed
        // by the APIC timer counting down from all ones with its interrupt masked.
        xapic(XAPIC_DIVIDE, DIVIDE_BY_1 as u32);
        xapic(XAPIC_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
        xapic(XAPIC_INITIAL_COUNT, u32::MAX);
        // SAFETY: the PIT ports, which the paravisor emulates.
        let apic_ticks = unsafe {
            port::outb(PORT_61, (port::inb(PORT_61) & !0b10) | 0b1);
            port::outb(PIT_COMMAND, PIT_CHANNEL2_MODE0);
            port::outb(PIT_CHANNEL2, 0xff);
            port::outb(PIT_CHANNEL2, 0xff);
            let start = xapic_read(XAPIC_CURRENT_COUNT);
            while port::inb(PORT_61) & 0x20 == 0 {}
            start - xapic_read(XAPIC_CURRENT_COUNT)
        };
        xapic(XAPIC_INITIAL_COUNT, 0);
        println!("ticks: PIT channel 2 counted 0xffff in {apic_ticks} APIC timer ticks");
        xapic(XAPIC_SVR, (1 << 8) | u32::from(SPURIOUS_VECTOR));
        xapic(XAPIC_DIVIDE, DIVIDE_BY_1 as u32);
        xapic(
            XAPIC_LVT_TIMER,
            (LVT_PERIODIC as u32) | u32::from(TIMER_VECTOR),
        );
        xapic(XAPIC_INITIAL_COUNT, 1_000_000);
        wait_for(WANTED);
        xapic(XAPIC_INITIAL_COUNT, 0);
        let in_xapic = TICKS_SEEN.load(Ordering::Relaxed);
        // x2APIC mode: IA32_APIC_BASE.EXTD, then the registers are MSRs.
        // SAFETY: the architectural APIC MSRs; the paravisor emulates them (a #GP would show
        // as a triple fault, which the test reports).
        unsafe {
            let base = rdmsr(IA32_APIC_BASE);
            wrmsr(IA32_APIC_BASE, base | APIC_GLOBAL_ENABLE | X2APIC_ENABLE);
            TICKS_X2APIC.store(1, Ordering::Relaxed);
            wrmsr(X2APIC_SVR, (1 << 8) | u64::from(SPURIOUS_VECTOR));
            wrmsr(X2APIC_DIVIDE, DIVIDE_BY_1);
            wrmsr(X2APIC_LVT_TIMER, LVT_PERIODIC | u64::from(TIMER_VECTOR));
            wrmsr(X2APIC_INITIAL_COUNT, 1_000_000);
        }
        wait_for(in_xapic + WANTED);
        // SAFETY: as above; stop the timer before leaving.
        unsafe { wrmsr(X2APIC_INITIAL_COUNT, 0) };
        let in_x2apic = TICKS_SEEN.load(Ordering::Relaxed) - in_xapic;
        println!(
            "ticks: {in_xapic} timer interrupts through the xAPIC, {in_x2apic} through the x2APIC"
        );
        // COM1 interrupt-driven, as a tty driver runs it: the I/O APIC routes pin 4 (edge,
        // active high, fixed) to this CPU's vector; the UART raises THR-empty once a byte has
        // gone, and the handler acknowledges it by reading IIR.
        let ioapic = |register: u32, value: u32| {
            // SAFETY: the I/O APIC's window, which the paravisor emulates; identity-mapped.
            unsafe {
                ((IOAPIC + IOREGSEL) as *mut u32).write_volatile(register);
                ((IOAPIC + IOWIN) as *mut u32).write_volatile(value);
            }
        };
        let (by_mov, by_movs, by_movsb) = ioapic_version();
        println!(
            "ticks: I/O APIC version by movs {by_movs:#x}, by mov {by_mov:#x}; IOREGSEL by movsb {by_movsb:#x}"
        );
        ioapic(REDIRECTION_4_HIGH, 0);
        ioapic(REDIRECTION_4_LOW, u32::from(COM1_VECTOR));
        // SAFETY: COM1, the paravisor's emulated UART.
        unsafe {
            port::outb(COM1 + MCR, MCR_DTR_RTS_OUT2);
            port::outb(COM1 + IER, IER_THR_EMPTY);
        }
        // Enabling THR-empty with nothing to send raises it at once; then one per byte.
        for _ in 0..WANTED {
            let before = TICKS_COM1.load(Ordering::Relaxed);
            // SAFETY: as above; `sti; hlt` waits for the interrupt.
            unsafe { port::outb(COM1, b'*') };
            while TICKS_COM1.load(Ordering::Relaxed) == before {
                // SAFETY: the IDT handles COM1's vector.
                unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
            }
        }
        // SAFETY: as above.
        unsafe { port::outb(COM1 + IER, 0) };
        println!();
        println!(
            "ticks: {} COM1 transmit interrupts through the I/O APIC",
            TICKS_COM1.load(Ordering::Relaxed)
        );
        exit(EXIT_SUCCESS)
    }

    /// The I/O APIC's version register read through IOWIN by a plain MOV and by `rep movsd`
    /// with RCX = 1 into RAM (Intel SDM Vol. 2B MOVS), and IOREGSEL (which takes byte
    /// accesses; IOWIN takes only dwords, 82093AA §3.1) read back by `movsb` into RAM.
    fn ioapic_version() -> (u32, u32, u8) {
        let select = (IOAPIC + IOREGSEL) as *mut u32;
        let window = (IOAPIC + IOWIN) as *const u32;
        let (mut by_movs, mut by_movsb) = (0u32, 0u8);
        // SAFETY: the I/O APIC's registers, which the paravisor emulates (identity-mapped);
        // each string move copies one element from it into the local it is given. DF is
        // clear on entry to `asm!` (Rust's inline assembly rules) and the moves leave it so.
        let by_mov = unsafe {
            select.write_volatile(IOAPIC_VERSION);
            let by_mov = window.read_volatile();
            asm!(
                "rep movsd",
                inout("rcx") 1u64 => _,
                inout("rsi") window => _,
                inout("rdi") &raw mut by_movs => _,
                options(nostack, preserves_flags)
            );
            asm!(
                "movsb",
                inout("rsi") select => _,
                inout("rdi") &raw mut by_movsb => _,
                options(nostack, preserves_flags)
            );
            by_mov
        };
        (by_mov, by_movs, by_movsb)
    }

    /// Halts until `count` timer interrupts have arrived in all.
    fn wait_for(count: u32) {
        while TICKS_SEEN.load(Ordering::Relaxed) < count {
            // SAFETY: the IDT handles the timer; `sti; hlt` waits for it without a window
            // where it could arrive unnoticed.
            unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
        }
    }
}

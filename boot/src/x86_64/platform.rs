//! The x86_64 [`Platform`](kernel::platform::Platform) and interrupt handling.

use core::sync::atomic::Ordering;

use arch::x86_64::{apic, instructions, power, trap};
use arch::ExitStatus;
use kernel::platform::Platform;

use super::{percpu, serial, time};

pub const TIMER_VECTOR: u8 = 0x20;
pub const KICK_VECTOR: u8 = 0xf0;
pub const SPURIOUS_VECTOR: u8 = 0xff;

fn kick(index: usize) {
    if let Some(cpu) = percpu::PER_CPU.get(index) {
        if cpu.online.load(Ordering::Acquire) {
            // SAFETY: every online CPU's IDT handles KICK_VECTOR.
            unsafe { apic::send_ipi(cpu.apic_id.load(Ordering::Relaxed), KICK_VECTOR) };
        }
    }
}

fn wait_for_interrupt() {
    // SAFETY: the IDT is loaded on every CPU before its executor runs; interrupts are masked
    // again before returning, as the executor expects.
    unsafe { instructions::enable_interrupts_and_halt() };
    instructions::disable_interrupts();
}

fn without_interrupts(f: &mut dyn FnMut()) {
    instructions::without_interrupts(f)
}

/// Above this many pages a full flush is cheaper than page-by-page INVLPG.
const INVLPG_LIMIT: u64 = 64;

fn flush_tlb(va: u64, size: u64) {
    let pages = size.div_ceil(4096);
    if pages > INVLPG_LIMIT {
        // SAFETY: reloading CR3 with its own value only flushes non-global translations.
        unsafe { instructions::write_cr3(instructions::read_cr3()) };
    } else {
        for page in 0..pages {
            // SAFETY: INVLPG only drops a cached translation.
            unsafe { instructions::invlpg(va + page * 4096) };
        }
    }
}

pub static PLATFORM: Platform = Platform {
    console_write: serial::write_str,
    now_ns: time::now_ns,
    cpu_index: percpu::cpu_index,
    kick,
    wait_for_interrupt,
    without_interrupts,
    flush_tlb,
    exit: power::exit,
};

fn interrupt(vector: u8) {
    match vector {
        TIMER_VECTOR => {
            percpu::current().ticks.fetch_add(1, Ordering::Relaxed);
            apic::end_of_interrupt();
        }
        KICK_VECTOR => apic::end_of_interrupt(),
        SPURIOUS_VECTOR => {}
        other => {
            log::warn!("unexpected interrupt vector {other:#x}");
            apic::end_of_interrupt();
        }
    }
}

fn fatal(frame: &trap::TrapFrame) -> ! {
    let cr2 = if frame.vector == u64::from(trap::PAGE_FAULT) { instructions::read_cr2() } else { 0 };
    kernel::console::emergency_write_fmt(format_args!(
        "\nparapet: fatal exception {} (vector {}) error={:#x} rip={:#x} rsp={:#x} cr2={:#x} on cpu{}\n",
        trap::exception_name(frame.vector),
        frame.vector,
        frame.error_code,
        frame.rip,
        frame.rsp,
        cr2,
        percpu::cpu_index(),
    ));
    power::exit(ExitStatus::Failure)
}

pub static TRAP_HANDLERS: trap::TrapHandlers = trap::TrapHandlers { interrupt, fatal };

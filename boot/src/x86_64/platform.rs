//! The x86_64 [`Platform`](kernel::platform::Platform) and interrupt handling.

use core::sync::atomic::Ordering;

use arch::x86_64::{apic, instructions, power, trap};
use arch::ExitStatus;
use kernel::platform::Platform;

use super::{percpu, serial, time};

pub const TIMER_VECTOR: u8 = 0x20;
pub const KICK_VECTOR: u8 = 0xf0;
pub const SHOOTDOWN_VECTOR: u8 = 0xf1;
pub const SPURIOUS_VECTOR: u8 = 0xff;

fn kick(index: usize) {
    if let Some(cpu) = percpu::PER_CPU.get(index) {
        if crate::cpus::is_online(index) {
            // SAFETY: every online CPU's IDT handles KICK_VECTOR.
            unsafe { apic::send_ipi(cpu.apic_id.load(Ordering::Relaxed), KICK_VECTOR) };
        }
    }
}

fn idle_unless(has_work: &dyn Fn() -> bool) {
    instructions::disable_interrupts();
    // SAFETY: the IDT is loaded on every CPU before its executor runs. STI's shadow covers
    // HLT, so an interrupt that arrived after the question still ends the halt.
    unsafe {
        if has_work() {
            instructions::enable_interrupts();
        } else {
            instructions::enable_interrupts_and_halt();
        }
    }
}

fn enable_interrupts() {
    // SAFETY: only called by the executor, after the CPU's IDT and APIC are set up.
    unsafe { instructions::enable_interrupts() };
}

fn without_interrupts(f: &mut dyn FnMut()) {
    instructions::without_interrupts(f)
}

/// Above this many pages a full flush is cheaper than page-by-page INVLPG.
const INVLPG_LIMIT: u64 = 64;

fn flush_local(va: u64, size: u64) {
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

/// Flushes this CPU's TLB for the range, then every other online CPU's (x86 has no broadcast
/// invalidation: SDM Vol. 3A §4.10.5 "Propagation of Paging-Structure Changes to Multiple
/// Processors"). Returns once every CPU has flushed, so freed frames can be reused safely.
fn flush_tlb(va: u64, size: u64) {
    flush_local(va, size);
    shootdown::run(percpu::cpu_index());
}

/// TLB shootdown by IPI: one at a time, each target flushes its whole TLB and acknowledges.
mod shootdown {
    use core::sync::atomic::{AtomicUsize, Ordering};

    use arch::x86_64::{apic, instructions};
    use spin::Mutex;

    use super::{percpu, SHOOTDOWN_VECTOR};

    static IN_PROGRESS: Mutex<()> = Mutex::new(());
    static PENDING: AtomicUsize = AtomicUsize::new(0);

    pub fn run(me: usize) {
        // One snapshot of who is online: a CPU coming online later loads the tables fresh.
        let targets: u64 = percpu::PER_CPU
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me && crate::cpus::is_online(*i))
            .fold(0, |mask, (i, _)| mask | 1 << i);
        if targets == 0 {
            return;
        }
        // Waiting here and below with interrupts enabled lets this CPU answer another CPU's
        // shootdown meanwhile; the executor runs tasks with interrupts enabled. With them
        // masked, two CPUs shooting down at once would wait for each other forever.
        assert!(
            instructions::interrupts_enabled(),
            "TLB shootdown with interrupts masked would deadlock"
        );
        let _one_at_a_time = IN_PROGRESS.lock();
        PENDING.store(targets.count_ones() as usize, Ordering::Release);
        for (_, cpu) in percpu::PER_CPU
            .iter()
            .enumerate()
            .filter(|(i, _)| targets & (1 << i) != 0)
        {
            // SAFETY: every online CPU handles SHOOTDOWN_VECTOR.
            unsafe { apic::send_ipi(cpu.apic_id.load(Ordering::Relaxed), SHOOTDOWN_VECTOR) };
        }
        while PENDING.load(Ordering::Acquire) != 0 {
            instructions::pause();
        }
    }

    /// The IPI handler's half.
    pub fn answer() {
        // SAFETY: reloading CR3 with its own value only flushes non-global translations.
        unsafe { instructions::write_cr3(instructions::read_cr3()) };
        PENDING.fetch_sub(1, Ordering::AcqRel);
    }
}

pub static PLATFORM: Platform = Platform {
    console_write: serial::write_str,
    console_write_emergency: serial::emergency_write_str,
    now_ns: time::now_ns,
    cpu_index: percpu::cpu_index,
    kick,
    idle_unless,
    enable_interrupts,
    without_interrupts,
    flush_tlb,
    exit: power::exit,
};

fn interrupt(vector: u8) {
    match vector {
        TIMER_VECTOR => {
            let fired = time::on_timer_interrupt();
            if fired.tick {
                crate::cpus::tick(percpu::cpu_index());
            }
            if fired.alarm {
                // A hosted guest's timer is due: its VP goes back to it.
                crate::guest::doorbell::ring(percpu::cpu_index());
            }
            apic::end_of_interrupt();
        }
        KICK_VECTOR => apic::end_of_interrupt(),
        SHOOTDOWN_VECTOR => {
            shootdown::answer();
            apic::end_of_interrupt();
        }
        SPURIOUS_VECTOR => {}
        other => {
            log::warn!("unexpected interrupt vector {other:#x}");
            apic::end_of_interrupt();
        }
    }
}

fn fatal(frame: &trap::TrapFrame) -> ! {
    let cr2 = if frame.vector == u64::from(trap::PAGE_FAULT) {
        instructions::read_cr2()
    } else {
        0
    };
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

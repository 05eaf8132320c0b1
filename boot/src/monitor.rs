//! The console monitor: a few commands typed on the firmware console, for diagnostics.

use alloc::string::String;

use kernel::executor::{self, sleep_ms, MAX_CPUS};
use kernel::{console, println};

use crate::machine;

/// How often the console is polled for input.
const POLL_MS: u64 = 20;
const MAX_LINE: usize = 128;

pub async fn run(online: usize, cpus: usize) {
    println!("parapet: monitor ready ({online} of {cpus} CPUs online); type `help`");
    let mut line = String::new();
    loop {
        while let Some(byte) = machine::serial::read_byte() {
            match byte {
                b'\r' | b'\n' => {
                    println!();
                    execute(line.trim());
                    line.clear();
                }
                0x08 | 0x7f if !line.is_empty() => {
                    line.pop();
                    console::write_fmt(format_args!("\x08 \x08"));
                }
                b if (0x20..0x7f).contains(&b) && line.len() < MAX_LINE => {
                    line.push(char::from(b));
                    console::write_fmt(format_args!("{}", char::from(b)));
                }
                _ => {}
            }
        }
        sleep_ms(POLL_MS).await;
    }
}

fn execute(command: &str) {
    match command {
        "" => {}
        "help" => println!("commands: cpus  mem  log  uptime  poweroff"),
        "cpus" => {
            for cpu in 0..MAX_CPUS {
                if let Some(ex) = executor::on_cpu(cpu) {
                    println!(
                        "cpu{cpu}: ticks={} tasks={} polls={}",
                        crate::cpus::ticks(cpu),
                        ex.task_count(),
                        ex.polls()
                    );
                }
            }
        }
        "mem" => {
            let (frames_used, frames_total) = kernel::memory::frame_usage();
            let (heap_used, heap_total) = kernel::memory::heap_usage();
            println!(
                "frames: {} KiB used of {} KiB",
                frames_used / 1024,
                frames_total / 1024
            );
            println!(
                "heap:   {} KiB used of {} KiB",
                heap_used / 1024,
                heap_total / 1024
            );
        }
        "log" => {
            let mut text = alloc::vec::Vec::new();
            console::read_ring(|chunk| text.extend_from_slice(chunk));
            println!("--- log ring ({} bytes) ---", text.len());
            println!("{}", String::from_utf8_lossy(&text));
        }
        "uptime" => {
            let ns = kernel::platform::now_ns();
            println!("{}.{:03} s", ns / 1_000_000_000, (ns / 1_000_000) % 1000);
        }
        "poweroff" => {
            println!("parapet: powering off");
            kernel::platform::exit(arch::ExitStatus::Success);
        }
        other => println!("unknown command `{other}`; try `help`"),
    }
}

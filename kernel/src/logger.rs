//! The `log` backend: `[seconds.micros] cpuN LEVEL target: message` to the console and ring.

use log::{LevelFilter, Log, Metadata, Record};

use crate::platform;

struct Logger;

static LOGGER: Logger = Logger;

impl Log for Logger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let ns = platform::now_ns();
        crate::console::write_fmt(format_args!(
            "[{:>5}.{:06}] cpu{} {:<5} {}: {}\n",
            ns / 1_000_000_000,
            (ns / 1_000) % 1_000_000,
            platform::cpu_index(),
            record.level(),
            record.target(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

/// Routes `log` records to the console; `level` comes from the command line.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

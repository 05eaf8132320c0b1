//! The firmware command line: space-separated `key=value` or bare `key` options.
//! Parapet's own options start with `parapet.`; everything else is ignored.

/// The value of option `key` (`Some("")` for a bare flag), the last occurrence winning.
pub fn option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|word| match word.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if word == key => Some(""),
            _ => None,
        })
        .next_back()
}

/// The log level named by `parapet.log=`, defaulting to Info; unknown names also give Info.
pub fn log_level(cmdline: &str) -> log::LevelFilter {
    match option(cmdline, "parapet.log") {
        Some("off") => log::LevelFilter::Off,
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("debug") => log::LevelFilter::Debug,
        Some("trace") => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_flags_and_the_last_occurrence() {
        let line = "console=ttyS0 parapet.log=debug parapet.test=panic quiet parapet.log=warn";
        assert_eq!(option(line, "parapet.test"), Some("panic"));
        assert_eq!(option(line, "quiet"), Some(""));
        assert_eq!(option(line, "parapet.log"), Some("warn"));
        assert_eq!(option(line, "parapet"), None);
        assert_eq!(log_level(line), log::LevelFilter::Warn);
        assert_eq!(log_level("parapet.log=nonsense"), log::LevelFilter::Info);
    }
}

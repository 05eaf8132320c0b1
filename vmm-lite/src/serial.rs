//! COM1 (I/O ports 0x3f8-0x3ff) for the firmware, backed by this process's stdio or a file.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use devices::uart16550::emulator::Uart16550Emulator;

use crate::error::VmmError;

pub const COM1_BASE: u16 = 0x3f8;
pub const COM1_PORTS: std::ops::Range<u16> = 0x3f8..0x400;

/// Where COM1's output goes (and, for stdio, where its input comes from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialBackend {
    Stdio,
    File(String),
}

impl std::str::FromStr for SerialBackend {
    type Err = VmmError;
    fn from_str(s: &str) -> Result<Self, VmmError> {
        match s {
            "stdio" => Ok(SerialBackend::Stdio),
            _ => match s.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(SerialBackend::File(path.into())),
                _ => Err(VmmError::BadSerial(s.into())),
            },
        }
    }
}

/// The UART and the sink its output drains into.
pub struct Com1 {
    uart: Mutex<Uart16550Emulator>,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Com1 {
    pub fn open(backend: &SerialBackend) -> Result<Arc<Self>, VmmError> {
        let sink: Box<dyn Write + Send> = match backend {
            SerialBackend::Stdio => Box::new(std::io::stdout()),
            SerialBackend::File(path) => {
                Box::new(File::create(path).map_err(|source| VmmError::SerialFile {
                    path: path.clone(),
                    source,
                })?)
            }
        };
        let com1 = Arc::new(Self {
            uart: Mutex::new(Uart16550Emulator::new()),
            sink: Mutex::new(sink),
        });
        if *backend == SerialBackend::Stdio {
            let input = Arc::clone(&com1);
            std::thread::spawn(move || input.pump_stdin());
        }
        Ok(com1)
    }

    fn pump_stdin(&self) {
        let mut stdin = std::io::stdin();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdin.read(&mut byte) {
            // Hold input back while the receive FIFO is full, as a flow-controlled line would.
            loop {
                let mut uart = self.uart.lock().unwrap_or_else(|e| e.into_inner());
                if uart.receive_room() > 0 {
                    uart.receive(&byte);
                    break;
                }
                drop(uart);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    pub fn read(&self, port: u16) -> u8 {
        self.uart
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read((port - COM1_BASE) as u8)
    }

    pub fn write(&self, port: u16, value: u8) {
        let mut uart = self.uart.lock().unwrap_or_else(|e| e.into_inner());
        uart.write((port - COM1_BASE) as u8, value);
        let out: Vec<u8> = uart.drain_transmitted().collect();
        if !out.is_empty() {
            // Still holding the UART: bytes from different VPs reach the sink in the order
            // the UART sent them.
            let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
            // A closed stdout must not kill the VM; the bytes are lost, as on a cut line.
            let _ = sink.write_all(&out).and_then(|()| sink.flush());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse() {
        assert_eq!(
            "stdio".parse::<SerialBackend>().unwrap(),
            SerialBackend::Stdio
        );
        assert_eq!(
            "file:/tmp/x".parse::<SerialBackend>().unwrap(),
            SerialBackend::File("/tmp/x".into())
        );
        assert!("file:".parse::<SerialBackend>().is_err());
        assert!("tcp:1".parse::<SerialBackend>().is_err());
    }
}

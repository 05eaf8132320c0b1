//! The in-firmware test runner: one line per test, then `N passed, N failed`.

use alloc::boxed::Box;
use alloc::string::String;
use core::future::Future;
use core::pin::Pin;

use crate::executor::timeout_ns;
use crate::println;

pub type TestResult = Result<(), String>;
pub type TestFuture = Pin<Box<dyn Future<Output = TestResult> + Send>>;

#[derive(Clone, Copy)]
pub struct TestCase {
    pub name: &'static str,
    pub run: fn() -> TestFuture,
}

/// A test that takes longer than this has hung.
const TEST_TIMEOUT_NS: u64 = 20_000_000_000;

/// Runs `tests` one after another; returns (passed, failed).
pub async fn run_all(tests: &[TestCase]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    println!("running {} in-firmware tests", tests.len());
    for test in tests {
        let outcome = match timeout_ns(TEST_TIMEOUT_NS, (test.run)()).await {
            Ok(r) => r,
            Err(_) => Err(String::from("timed out")),
        };
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("test {} ... ok", test.name);
            }
            Err(why) => {
                failed += 1;
                println!("test {} ... FAILED: {}", test.name, why);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    (passed, failed)
}

/// Fails the test with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(alloc::format!($($arg)*));
        }
    };
}

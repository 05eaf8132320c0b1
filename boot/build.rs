//! Links the firmware with its per-architecture linker script.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let script = match target.as_str() {
        "x86_64-unknown-none" => "src/x86_64/link.ld",
        t if t.starts_with("aarch64-unknown-none") => "src/aarch64/link.ld",
        _ => return,
    };
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rustc-link-arg-bins=-T{dir}/{script}");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    println!("cargo:rustc-link-arg-bins=-znostart-stop-gc");
}

//! Links the guests at their load address (see link.ld and link-aarch64.ld).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=link-aarch64.ld");
    match target.as_str() {
        "x86_64-unknown-none" => {
            println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
            println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        }
        "aarch64-unknown-none" | "aarch64-unknown-none-softfloat" => {
            println!("cargo:rustc-link-arg-bins=-T{dir}/link-aarch64.ld");
            // 4 KiB segment alignment, not lld's 64 KiB default for aarch64: smaller files.
            println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
        }
        _ => {}
    }
}

// The binary has no C runtime start files: `_start` in main.rs is the entry
// point. Link arguments go here rather than in rustflags so build scripts of
// dependencies still link normally.
fn main() {
    println!("cargo:rustc-link-arg-bins=-nostartfiles");
    println!("cargo:rustc-link-arg-bins=-static");
}

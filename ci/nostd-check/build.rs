// The binary has no C runtime start files: `_start` in main.rs is the entry
// point. Link arguments go here rather than in rustflags so build scripts of
// dependencies still link normally.
fn main() {
    println!("cargo:rustc-link-arg-bins=-nostartfiles");
    println!("cargo:rustc-link-arg-bins=-static");
    // defmt's interned strings go in a `.defmt` section laid out by its
    // script (defmt's build script puts defmt.x on the search path). The
    // script replaces the linker's default one (rust-lld takes no INSERT
    // after it), so code stays in one output section per function:
    // ci/footprint.sh adds up every `.text*` section.
    if std::env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
}

//! The `vrlb` command.
fn main() {
    eprintln!("vrlb: the Linux daemon is not built yet");
    std::process::exit(2);
}

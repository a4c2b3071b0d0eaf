//! The `vrlb-sim` command.
fn main() {
    eprintln!("vrlb-sim: the simulator is not built yet");
    std::process::exit(2);
}

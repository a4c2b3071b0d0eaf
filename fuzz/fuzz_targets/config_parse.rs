//! Arbitrary text as a keepalived.conf: the parser and the node builder
//! never panic and never hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vrlb_core::config::{self, NoIncludes, Options, Sink};

struct Ignore;
impl Sink for Ignore {}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = config::parse(
        "fuzz.conf",
        &text,
        &Options::default(),
        &mut Ignore,
        &mut NoIncludes,
    );
    let _ = vrlb_core::node::build::count("fuzz.conf", &text, &Options::default(), &mut NoIncludes);
});

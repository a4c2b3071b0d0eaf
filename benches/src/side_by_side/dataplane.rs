//! Measurements 3 and 4 (data-plane rate and latency against the
//! kernel's forwarding; new connections per second through the DR path)
//! need vrlb's userspace DR data plane, which this build of `vrlb run`
//! does not have yet. This module states that, so the report lists both
//! as "not measured" with the reason instead of leaving them out; when
//! the data plane is in the daemon, the measurements go here (trafgen as
//! the generator, per DESIGN.md, vrlb and kernel forwarding alternating on
//! one veth topology) and [`AVAILABLE`] becomes true.

/// Whether this build has the DR data plane to measure.
pub const AVAILABLE: bool = false;

/// Why 3 and 4 are not measured.
pub const REASON: &str = "not measured: needs the DR data plane (`vrlb run` forwards nothing yet; \
the data plane is on the `dataplane` branch, not merged)";

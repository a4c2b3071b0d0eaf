//! Shared pieces of vrlb's benchmarks, and the side-by-side harness
//! (`vrlb-bench`) that measures the daemon against keepalived.

pub mod side_by_side;

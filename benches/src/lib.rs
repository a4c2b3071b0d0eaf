//! Shared pieces of vrlb's benchmarks.

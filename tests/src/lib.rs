//! Helpers shared by vrlb's integration tests.

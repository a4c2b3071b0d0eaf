//! Helpers shared by vrlb's integration tests.

pub mod netns;

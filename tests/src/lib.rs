//! Helpers shared by vrlb's integration tests.

pub mod frr;
pub mod netns;
pub mod vrrp_lab;

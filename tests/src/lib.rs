//! Helpers shared by vrlb's integration tests.

pub mod frr;
pub mod netns;
pub mod seed_lab;
pub mod vrrp_lab;

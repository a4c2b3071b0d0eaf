//! A seeded discrete-event simulator in which vrlb-core runs unchanged.

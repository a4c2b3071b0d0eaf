//! vrlb-core: every decision vrlb makes, as pure event-in/action-out state
//! machines.
//!
//! The core reads no clock, opens no socket and allocates nothing. Drivers
//! feed it events with the current [`time::Instant`] and carry out the
//! actions it emits. Every state machine has the same face:
//!
//! ```text
//! handle(&mut self, now, input)   one mutation
//! handle_timeout(&mut self, now)  idempotent
//! poll_output(&mut self)          drain after every mutation
//! poll_timeout(&self)             when to call handle_timeout
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(missing_docs))]

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("features `log` and `defmt` are mutually exclusive: pick one logging back end");

// Nothing under src/ declares the standard library or the allocation
// crate, not even for tests, so no code here can name them: the compiler
// enforces the no_std, allocation-free core, and ci/nostd-check links it
// into a freestanding binary. Inline unit tests use core and heapless
// only. Unit tests that need the standard library (collections,
// formatting, HashMap models) and private items live in core/unit-tests/,
// at the path of the module they test, included by `#[cfg(test)] #[path]`
// module declarations; each links the standard library itself. Tests of
// the public API alone are in core/tests/.

#[macro_use]
mod fmt;

pub mod mutation;
pub mod rand;
#[cfg(any(feature = "lb", feature = "config"))]
pub mod scheduler;
pub mod time;
pub mod track_file;
pub mod wire;

#[cfg(feature = "vrrp")]
pub mod vrrp;

#[cfg(feature = "lb")]
pub mod lb;

#[cfg(feature = "sync")]
pub mod sync;

#[cfg(feature = "check")]
pub mod check;

#[cfg(feature = "config")]
pub mod config;

#[cfg(feature = "vrrp")]
pub mod node;

pub use time::{Duration, Instant};

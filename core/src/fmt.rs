//! The one logging layer of the core: `trace!` .. `error!` map to `log`, to
//! `defmt`, or to nothing, by feature. Nothing else in the core names a
//! logging crate.
//!
//! Format strings must be plain literals with positional `{}`/`{:?}`
//! arguments (no inline captures) so the same call compiles for `log` and
//! `defmt`; every argument is still evaluated when logging is off, so a
//! call never hides a side effect or an unused-variable warning.
#![allow(unused_macros)]

#[cfg(feature = "log")]
macro_rules! vrlb_log {
    (trace, $($arg:tt)+) => { ::log::trace!(target: "vrlb", $($arg)+) };
    (debug, $($arg:tt)+) => { ::log::debug!(target: "vrlb", $($arg)+) };
    (info, $($arg:tt)+) => { ::log::info!(target: "vrlb", $($arg)+) };
    (warn, $($arg:tt)+) => { ::log::warn!(target: "vrlb", $($arg)+) };
    (error, $($arg:tt)+) => { ::log::error!(target: "vrlb", $($arg)+) };
}

#[cfg(feature = "defmt")]
macro_rules! vrlb_log {
    (trace, $($arg:tt)+) => { ::defmt::trace!($($arg)+) };
    (debug, $($arg:tt)+) => { ::defmt::debug!($($arg)+) };
    (info, $($arg:tt)+) => { ::defmt::info!($($arg)+) };
    (warn, $($arg:tt)+) => { ::defmt::warn!($($arg)+) };
    (error, $($arg:tt)+) => { ::defmt::error!($($arg)+) };
}

#[cfg(not(any(feature = "log", feature = "defmt")))]
macro_rules! vrlb_log {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}

macro_rules! trace { ($($arg:tt)+) => { vrlb_log!(trace, $($arg)+) }; }
macro_rules! debug { ($($arg:tt)+) => { vrlb_log!(debug, $($arg)+) }; }
macro_rules! info { ($($arg:tt)+) => { vrlb_log!(info, $($arg)+) }; }
macro_rules! warn { ($($arg:tt)+) => { vrlb_log!(warn, $($arg)+) }; }
macro_rules! error { ($($arg:tt)+) => { vrlb_log!(error, $($arg)+) }; }

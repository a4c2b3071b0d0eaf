//! The keepalived.conf parser: `no_std`, allocation-free, zero-copy.
//!
//! [`parse`] reads one file and hands each finished block to a [`Sink`]:
//! global defs, scripts, VRRP instances, sync groups, virtual server
//! groups, virtual servers and then each of their real servers. Counts are
//! unbounded because nothing is collected; small lists inside a block have
//! fixed capacities (see [`model`]). Warnings go to the sink as they are
//! found; the first error stops the parse and is returned. `include` is
//! resolved through an [`Includer`] the driver supplies (files and glob
//! patterns are its business). The parser never resolves names, never
//! checks that an interface or script exists: that is the driver's job at
//! run time.
//!
//! ```
//! use vrlb_core::config::{self, Sink, VrrpInstance, NoIncludes, Options};
//!
//! struct Count(u32);
//! impl Sink for Count {
//!     fn vrrp_instance(&mut self, i: &VrrpInstance<'_>) -> Result<(), config::Kind> {
//!         assert_eq!((i.name, i.vrid, i.priority), ("VI_1", 51, 100));
//!         self.0 += 1;
//!         Ok(())
//!     }
//! }
//! let text = "vrrp_instance VI_1 {\n  virtual_router_id 51\n  virtual_ipaddress {\n    192.0.2.240\n  }\n}\n";
//! let mut sink = Count(0);
//! config::parse("keepalived.conf", text, &Options::default(), &mut sink, &mut NoIncludes).unwrap();
//! assert_eq!(sink.0, 1);
//! ```

mod checker;
mod diag;
mod garp;
mod global;
mod hex;
mod keywords;
mod lexer;
mod lvs;
pub mod model;
mod parser;
mod process;
mod repeat;
mod route;
mod subst;
mod track_file;
pub mod value;
mod vrrp;

pub use diag::{Diagnostic, Kind, Severity, Snippet};
pub use keywords::{Block, suggest};
pub use model::*;

use parser::Parser;
use subst::{Scratch, Source};

/// Receives what the parser reads. Every method has a default that accepts
/// and ignores. A sink may refuse an item (a duplicate name, say) by
/// returning the error's [`Kind`]; the parser adds the file and position.
#[allow(unused_variables)]
pub trait Sink {
    /// A `global_defs` block.
    fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// A `vrrp_script` block.
    fn vrrp_script(&mut self, s: &VrrpScript<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// A `vrrp_track_process` block.
    fn vrrp_track_process(&mut self, p: &TrackProcessConf<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// A `track_file` (or `vrrp_track_file`) block.
    fn track_file(&mut self, f: &TrackFileConf<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// A `vrrp_instance` block.
    fn vrrp_instance(&mut self, i: &VrrpInstance<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// A `vrrp_sync_group` block.
    fn vrrp_sync_group(&mut self, g: &SyncGroupConf<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// A `virtual_server_group` block.
    fn virtual_server_group(&mut self, g: &VirtualServerGroup<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// A `virtual_server` block's own settings; its real servers follow.
    fn virtual_server(&mut self, vs: &VirtualServer<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// One `real_server` of `vs`.
    fn real_server(&mut self, vs: &VirtualServer<'_>, rs: &RealServer<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// A top-level `static_routes` block: routes held whatever the VRRP
    /// state, from start to stop.
    fn static_routes(&mut self, routes: &[RouteConf<'_>]) -> Result<(), Kind> {
        Ok(())
    }
    /// A `garp_group` block.
    fn garp_group(&mut self, g: &GarpGroupConf<'_>) -> Result<(), Kind> {
        Ok(())
    }
    /// A warning.
    fn diagnostic(&mut self, d: &Diagnostic) {}
}

/// Called by an [`Includer`] once per included file with the includer
/// itself (for nested includes), the file's name and its text.
pub type EachFile<'a> = dyn FnMut(&mut dyn Includer, &str, &str) -> Result<(), Diagnostic> + 'a;

/// Why an include failed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // rare, and no allocation to box it in
pub enum IncludeError {
    /// An included file did not parse.
    Parse(Diagnostic),
    /// The includer could not read what the pattern names.
    Failed(&'static str),
}

/// Supplies the text of included files.
pub trait Includer {
    /// Calls `each(includer, file_name, text)` for every file `pattern`
    /// names, in order, and stops at the first error. keepalived accepts a
    /// pattern matching nothing.
    fn include(&mut self, pattern: &str, each: &mut EachFile<'_>) -> Result<(), IncludeError>;
}

/// An includer for places with no files: every `include` is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIncludes;

impl Includer for NoIncludes {
    fn include(&mut self, _pattern: &str, _each: &mut EachFile<'_>) -> Result<(), IncludeError> {
        Err(IncludeError::Failed("includes are not available here"))
    }
}

/// Parse options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// keepalived's `-i` config id: selects `@id` conditional lines.
    pub config_id: Option<&'a str>,
    /// Seeds `${_RANDOM}`: parses with the same seed draw the same
    /// numbers, so a driver that reads one file several times for one load
    /// (counting, then building) keeps one seed for all of them.
    pub random_seed: u64,
    /// What `${_ENV NAME}` reads: (name, value) pairs.
    pub env: &'a [(&'a str, &'a str)],
}

/// What a successful parse read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files read (the main one and every include).
    pub files: u32,
    /// Items handed to the sink.
    pub items: u32,
    /// Warnings handed to the sink.
    pub warnings: u32,
}

/// Parses `text`, read from `file`, into `sink`.
pub fn parse(
    file: &str,
    text: &str,
    options: &Options<'_>,
    sink: &mut dyn Sink,
    includer: &mut dyn Includer,
) -> Result<Summary, Diagnostic> {
    let mut summary = Summary {
        files: 1,
        ..Summary::default()
    };
    // Substituted words and files included inside blocks live here.
    let mut scratch = [0u8; subst::SCRATCH_BYTES];
    let mut parser = Parser {
        file,
        lx: Source::new(file, text, options.config_id, Scratch::new(&mut scratch))
            .with_builtins(options.random_seed, options.env),
        sink,
        includer,
        options,
        summary: &mut summary,
        depth: 0,
    };
    let result = parser.top();
    drop(parser);
    result.map(|()| summary)
}

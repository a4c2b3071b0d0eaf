//! `include` at the top level and inside blocks (keepalived reads it
//! anywhere), with parameters, and diagnostics naming the included file.

mod common;

use std::collections::HashMap;

use common::Recorder;
use vrlb_core::config::{self, Diagnostic, EachFile, IncludeError, Includer, Options};

/// Files by name; a pattern ending in `*` takes every name it prefixes,
/// in order.
struct Files(HashMap<&'static str, &'static str>);

impl Includer for Files {
    fn include(&mut self, pattern: &str, each: &mut EachFile<'_>) -> Result<(), IncludeError> {
        let mut names: Vec<&str> = match pattern.strip_suffix('*') {
            Some(prefix) => self
                .0
                .keys()
                .copied()
                .filter(|n| n.starts_with(prefix))
                .collect(),
            None => self.0.keys().copied().filter(|n| *n == pattern).collect(),
        };
        names.sort();
        for name in names {
            let text = self.0[name];
            each(self, name, text).map_err(IncludeError::Parse)?;
        }
        Ok(())
    }
}

fn parse(
    text: &str,
    files: &[(&'static str, &'static str)],
) -> (Recorder, Result<config::Summary, Diagnostic>) {
    let mut rec = Recorder::default();
    let mut inc = Files(files.iter().copied().collect());
    let result = config::parse("main.conf", text, &Options::default(), &mut rec, &mut inc);
    (rec, result)
}

#[test]
fn an_include_inside_a_block_is_read_in_place() {
    let text = "vrrp_instance V {\n  virtual_router_id 51\n  include inst.d/*\n  state MASTER\n}\n";
    let (rec, result) = parse(
        text,
        &[
            ("inst.d/1.conf", "priority 150\npriorty 1\n"),
            (
                "inst.d/2.conf",
                "virtual_ipaddress {\n  192.0.2.1\n  include vips.conf\n}\n",
            ),
            ("vips.conf", "192.0.2.2\n"),
        ],
    );
    let summary = result.unwrap();
    assert_eq!(summary.files, 4);
    assert_eq!(
        rec.items,
        [
            "vrrp_instance V vrid=51 prio=150 int_cs=100 state=Master if=None auth=None vips=192.0.2.1,192.0.2.2,"
        ]
    );
    // A warning in an included file names that file and its own line.
    assert_eq!(
        rec.warnings,
        [
            "inst.d/1.conf:2:1: warning: unknown keyword 'priorty' in vrrp_instance, skipped (did you mean 'priority'?)"
        ]
    );
}

#[test]
fn an_error_inside_a_block_include_points_into_the_included_file() {
    let text = "vrrp_instance V {\n  virtual_router_id 51\n  include bad.conf\n}\n";
    let (_, result) = parse(text, &[("bad.conf", "\n\n  priority 999\n")]);
    assert_eq!(
        result.unwrap_err().to_string(),
        "bad.conf:3:12: error: 'priority' value '999' is out of range: expected 1..255"
    );
}

#[test]
fn top_level_includes_see_the_parameters_defined_before_them() {
    let text = "$VRID=51\n$PRIO=120\ninclude inst.conf\n";
    let (rec, result) = parse(
        text,
        &[(
            "inst.conf",
            "vrrp_instance VI_$VRID {\n  virtual_router_id $VRID\n  priority ${PRIO}\n}\n",
        )],
    );
    result.unwrap();
    assert_eq!(
        rec.items,
        ["vrrp_instance VI_51 vrid=51 prio=120 int_cs=100 state=Backup if=None auth=None vips="]
    );
}

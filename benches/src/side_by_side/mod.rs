//! The side-by-side harness of issue 8 (`vrlb-bench`): vrlb measured
//! against keepalived and the kernel on the same machine in the same run.
//! Each measurement is a [`Section`]; the binary runs the chosen ones and
//! `report` prints and records what they found. A section that could not
//! be measured says why, and the run fails rather than print a partial
//! table as if it were complete.

pub mod capture;
pub mod conf;
pub mod core_figures;
pub mod daemon;
pub mod dataplane;
pub mod failover;
pub mod footprint;
pub mod probe;
pub mod procfs;
pub mod report;
pub mod signals;
pub mod stats;
pub mod topology;

/// One measurement of issue 8, numbered as there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// 1: failover time against the RFC's bound.
    Failover,
    /// 2: memory and CPU at rest.
    Footprint,
    /// 3: packets per second and added latency through the DR path.
    Dataplane,
    /// 4: new connections per second with 4096 real servers.
    Conns,
    /// 5: the core's criterion figures and the simulator's speed.
    Core,
}

impl Section {
    /// Every section, in issue order.
    pub const ALL: [Section; 5] = [
        Section::Failover,
        Section::Footprint,
        Section::Dataplane,
        Section::Conns,
        Section::Core,
    ];

    /// The name `--only` takes.
    pub fn key(self) -> &'static str {
        match self {
            Section::Failover => "failover",
            Section::Footprint => "footprint",
            Section::Dataplane => "dataplane",
            Section::Conns => "conns",
            Section::Core => "core",
        }
    }

    /// The section by its `--only` name.
    pub fn from_key(key: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.key() == key)
    }

    /// Its heading.
    pub fn title(self) -> &'static str {
        match self {
            Section::Failover => "1. Failover",
            Section::Footprint => "2. Footprint at rest",
            Section::Dataplane => "3. Data plane: packets per second and added latency",
            Section::Conns => "4. New connections per second, 4096 real servers",
            Section::Core => "5. Core figures (criterion) and simulator speed",
        }
    }
}

/// How a section ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every figure was taken.
    Measured,
    /// Attempted; these figures could not be taken.
    Failed(Vec<String>),
}

//! Dependency resolution (issue 12) with PubGrub over the synced index: which version of every
//! package an install needs, or why there is none, in words.
//!
//! The root of the problem is the user's request: it depends on each requested package (in the
//! range the request names) and on each installed package that stays (any version, the
//! installed one preferred: no needless churn). A package's dependencies are its `depends`.
//! Versions are chosen highest first, except that an installed version in range is kept, and
//! pre-releases only for packages whose request names one (or that have one installed). A
//! version the [`Policy`] withholds (yanked, or phased and not yet for this machine) is chosen
//! only when it is requested exactly or installed.
//!
//! A resolution is bounded (issue 25, finding 6): the solver works on ranks (`set.rs`), so what
//! it learns stays small however many versions it tries; it stops at `resolve_timeout`, after
//! [`MAX_STEPS`] steps or when the user interrupts (`provider.rs`, checked before each step);
//! and an explanation is cut to a readable size (`report.rs`).

mod graph;
mod provider;
mod ranges;
mod report;
mod set;
mod shadow;

pub use graph::{closure, dependents_first, index_graph, recorded_graph};
pub use ranges::req_ranges;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::time::Duration;

use pubgrub::PubGrubError;
use semver::Version;

use super::config::RESOLVE_TIMEOUT_SECS;
use super::interrupt::Interrupted;
use super::request::Request;
use super::rollout::Policy;
use super::sources::{Candidate, Sources};
use crate::format::ids::PackageName;
use crate::index::record::PackageRecord;
use provider::{Provider, Stop, ROOT};
use report::{HELD_LABEL, INSTALLED_LABEL, ROOT_LABEL};

/// A node of the resolution: the user's request (the root) or a package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    Request,
    /// What is installed and stays: the request depends on it, it on each installed package.
    Installed,
    /// The held packages: the request depends on it, it on each at its installed version.
    Held,
    Pkg(PackageName),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Request => f.write_str(ROOT_LABEL),
            Node::Installed => f.write_str(INSTALLED_LABEL),
            Node::Held => f.write_str(HELD_LABEL),
            Node::Pkg(n) => write!(f, "{n}"),
        }
    }
}

/// Why a package is in the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Because {
    Requested,
    /// Needed by this package of the result.
    Dependency(PackageName),
    /// Installed already and staying.
    Installed,
}

/// The versions an install needs, dependencies before their dependents.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub packages: Vec<Chosen>,
}

/// A package version of a resolution, why it is there and which repository it is taken from
/// (an index into [`Sources`]).
#[derive(Debug, Clone)]
pub struct Chosen {
    pub record: PackageRecord,
    pub because: Because,
    pub source: usize,
}

/// The resolution failed: no set of versions works (`NoSolution`, with why in words), the index
/// could not be read, the user interrupted, or the solver gave up within its [`Limits`].
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve the request:\n{0}")]
    NoSolution(String),
    #[error("{0}")]
    Index(String),
    /// One name asked for twice on the command line (`install a a@2`): a usage error.
    #[error("`{0}` is requested twice: name each package once")]
    RequestedTwice(PackageName),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    #[error("{0}")]
    GaveUp(GaveUp),
}

/// The solver stopped at a limit without an answer either way: which limit, and the packages
/// most involved (the most conflicting first, else the requested ones).
#[derive(Debug)]
pub struct GaveUp {
    pub limit: Limit,
    pub packages: String,
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up resolving the request after {} without finding a set of versions or proving there is none; the packages most in conflict: {}; {}",
            self.limit,
            self.packages,
            match self.limit {
                Limit::Time(_) => "asking for some of them at exact versions narrows the search (or raise `resolve_timeout` in client.yaml)",
                Limit::Steps(_) => "asking for some of them at exact versions narrows the search",
            }
        )
    }
}

/// A bound of the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Its time (`resolve_timeout`).
    Time(Duration),
    /// Its steps: decisions and the propagation before each.
    Steps(u64),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Time(t) => write!(f, "{} s (resolve_timeout)", t.as_secs_f64()),
            Limit::Steps(n) => write!(f, "{n} steps"),
        }
    }
}

/// What one resolution may spend before it gives up ([`ResolveError::GaveUp`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_steps: u64,
}

/// Steps of the solver before it gives up, whatever the time: what keeps its memory bounded on
/// a fast machine with a long timeout. A resolution of a few thousand packages takes a few
/// thousand steps.
pub const MAX_STEPS: u64 = 100_000;

impl Limits {
    pub fn with_timeout(timeout: Duration) -> Limits {
        Limits {
            timeout,
            max_steps: MAX_STEPS,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::with_timeout(Duration::from_secs(RESOLVE_TIMEOUT_SECS))
    }
}

/// What is on the machine, for a resolution.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Installed packages and their versions: they stay (in some version), the installed one
    /// preferred.
    pub versions: BTreeMap<PackageName, Version>,
    /// Held packages: they keep their installed versions.
    pub held: BTreeSet<PackageName>,
    /// Packages to move to the newest version allowed (`upgrade`): their installed version is
    /// not preferred.
    pub refresh: BTreeSet<PackageName>,
    /// Which versions may be taken without being asked for exactly (the machine's rollouts).
    pub policy: Policy,
}

impl Installed {
    /// A machine with nothing installed or held, whose resolution follows `policy`.
    pub fn nothing(policy: Policy) -> Installed {
        Installed {
            versions: BTreeMap::new(),
            held: BTreeSet::new(),
            refresh: BTreeSet::new(),
            policy,
        }
    }
}

/// Resolves `requests` against the index, keeping what is installed where it can stay, within
/// `limits`.
pub fn resolve(
    sources: &Sources,
    requests: &[Request],
    on_machine: &Installed,
    limits: &Limits,
) -> Result<Resolution, ResolveError> {
    let provider = Provider::new(sources, requests, on_machine, limits)?;
    let solution = match pubgrub::resolve(&provider, Node::Request, ROOT) {
        Ok(s) => s,
        Err(PubGrubError::NoSolution(tree)) => {
            return Err(ResolveError::NoSolution(report::explain(
                &provider, &tree, on_machine,
            )))
        }
        Err(PubGrubError::ErrorInShouldCancel(stop))
        | Err(PubGrubError::ErrorRetrievingDependencies { source: stop, .. })
        | Err(PubGrubError::ErrorChoosingVersion { source: stop, .. }) => {
            return Err(stopped(&provider, requests, stop))
        }
    };
    let mut chosen: BTreeMap<PackageName, Candidate> = BTreeMap::new();
    for (node, rank) in solution {
        if let Node::Pkg(name) = node {
            let vs = provider
                .versions(&name)
                .map_err(|e| ResolveError::Index(e.to_string()))?;
            let c = vs
                .get(rank)
                .cloned()
                .ok_or_else(|| ResolveError::Index(format!("{name} {rank} vanished")))?;
            chosen.insert(name, c);
        }
    }
    let asked: Vec<PackageName> = requests.iter().map(|r| r.name.clone()).collect();
    Ok(Resolution {
        packages: order(&chosen, &asked, &provider.requested, &on_machine.versions),
    })
}

/// Why the solver stopped, as the caller's error: a limit names the packages most involved.
fn stopped(provider: &Provider<'_>, requests: &[Request], stop: Stop) -> ResolveError {
    match stop {
        Stop::Index(e) => ResolveError::Index(e),
        Stop::Interrupted(i) => ResolveError::Interrupted(i),
        Stop::Limit(limit) => {
            let mut packages = provider.most_conflicting(&BTreeSet::new(), report::MAX_NAMED);
            if packages.is_empty() {
                let asked: BTreeSet<PackageName> =
                    requests.iter().map(|r| r.name.clone()).collect();
                packages = provider.most_conflicting(&asked, report::MAX_NAMED);
            }
            ResolveError::GaveUp(GaveUp { limit, packages })
        }
    }
}

/// Dependencies first (depth first over `depends`), the requests in the order asked, then the
/// rest by name; each with why it is there.
fn order(
    chosen: &BTreeMap<PackageName, Candidate>,
    asked: &[PackageName],
    requested: &HashSet<PackageName>,
    installed: &BTreeMap<PackageName, Version>,
) -> Vec<Chosen> {
    fn visit(
        name: &PackageName,
        chosen: &BTreeMap<PackageName, Candidate>,
        seen: &mut BTreeSet<PackageName>,
        out: &mut Vec<PackageName>,
    ) {
        if !seen.insert(name.clone()) {
            return;
        }
        if let Some(c) = chosen.get(name) {
            for dep in c.record.relations.depends.keys() {
                visit(dep, chosen, seen, out);
            }
            out.push(name.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut names = Vec::new();
    for n in asked.iter().chain(chosen.keys()) {
        visit(n, chosen, &mut seen, &mut names);
    }
    names
        .into_iter()
        .map(|n| {
            let because = if requested.contains(&n) {
                Because::Requested
            } else if let Some(by) = chosen
                .values()
                .find(|c| c.record.relations.depends.contains_key(&n))
            {
                Because::Dependency(by.record.name.clone())
            } else if installed.contains_key(&n) {
                Because::Installed
            } else {
                Because::Requested
            };
            let c = &chosen[&n];
            Chosen {
                record: c.record.clone(),
                because,
                source: c.source,
            }
        })
        .collect()
}

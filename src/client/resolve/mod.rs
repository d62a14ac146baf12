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

mod graph;
mod ranges;
mod shadow;

pub use graph::{closure, dependents_first, index_graph, recorded_graph};
pub use ranges::req_ranges;

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyProvider, PackageResolutionStatistics,
    PubGrubError, Ranges, Reporter,
};
use semver::Version;

use super::request::{Request, Spec};
use super::rollout::Policy;
use super::sources::{Candidate, Sources};
use crate::format::ids::PackageName;
use crate::repo::index::PackageRecord;

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

const ROOT_LABEL: &str = "your request";
const INSTALLED_LABEL: &str = "what is installed";
const HELD_LABEL: &str = "what is held";

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

/// The resolution failed: `explanation` says why, in words.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve the request:\n{0}")]
    NoSolution(String),
    #[error("{0}")]
    Index(String),
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

/// Resolves `requests` against the index, keeping what is installed where it can stay.
pub fn resolve(
    sources: &Sources,
    requests: &[Request],
    on_machine: &Installed,
) -> Result<Resolution, ResolveError> {
    let installed = &on_machine.versions;
    let provider = Provider::new(sources, requests, on_machine)?;
    let solution = match pubgrub::resolve(&provider, Node::Request, root_version()) {
        Ok(s) => s,
        Err(PubGrubError::NoSolution(tree)) => {
            let mut text = drop_single_version_noise(&DefaultStringReporter::report(&tree));
            for label in [ROOT_LABEL, INSTALLED_LABEL, HELD_LABEL] {
                text = text
                    .replace(&format!("{label} {}", root_version()), label)
                    .replace(&format!("{label} *"), label);
            }
            for label in [INSTALLED_LABEL, HELD_LABEL] {
                text = text.replace(
                    &format!(", {label} are incompatible"),
                    &format!(" and {label} are incompatible"),
                );
            }
            // Say which holds are in the way, and how to lift them.
            if text.contains(HELD_LABEL) {
                for name in &on_machine.held {
                    if let Some(v) = installed.get(name) {
                        if text.contains(&format!("{name} ")) {
                            text.push_str(&format!(
                                "\n{name} is held at {v}: `dist unhold {name}` lets it move."
                            ));
                        }
                    }
                }
            }
            let text = text
                .replace(
                    &format!("{ROOT_LABEL} is forbidden"),
                    "no set of versions satisfies it",
                )
                .replace(
                    &format!("{INSTALLED_LABEL} is forbidden"),
                    "what is installed cannot stay as it is",
                )
                .replace(
                    &format!("{HELD_LABEL} is forbidden"),
                    "the held packages cannot keep their versions",
                );
            let notes = provider.withheld_notes(&text) + &provider.shadowed_notes(&text);
            return Err(ResolveError::NoSolution(text + &notes));
        }
        Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
        | Err(PubGrubError::ErrorChoosingVersion { source, .. }) => {
            return Err(ResolveError::Index(source.0))
        }
        Err(e) => return Err(ResolveError::Index(e.to_string())),
    };
    let mut chosen: BTreeMap<PackageName, Candidate> = BTreeMap::new();
    for (node, version) in solution {
        if let Node::Pkg(name) = node {
            let c = provider
                .record(&name, &version)
                .map_err(|e| ResolveError::Index(e.0))?
                .ok_or_else(|| ResolveError::Index(format!("{name} {version} vanished")))?;
            chosen.insert(name, c);
        }
    }
    let asked: Vec<PackageName> = requests.iter().map(|r| r.name.clone()).collect();
    Ok(Resolution {
        packages: order(&chosen, &asked, &provider.requested, installed),
    })
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

/// PubGrub says "there is no version of X in <1.0.0 | >1.0.0" for every package that has one
/// version only: true, and noise in an explanation. Those clauses go (`Because A and B, C`
/// keeps its shape with the other cause alone).
fn drop_single_version_noise(text: &str) -> String {
    let noise = |clause: &str| {
        clause
            .strip_prefix("there is no version of ")
            .and_then(|rest| rest.split_once(" in <"))
            .and_then(|(_, range)| range.split_once(" | >"))
            .is_some_and(|(lo, hi)| lo == hi)
    };
    text.lines()
        .map(|line| {
            // `Because P and Q, R.` / `And because P and Q, R.`
            let (head, rest) = if let Some(r) = line.strip_prefix("Because ") {
                ("Because ", r)
            } else if let Some(r) = line.strip_prefix("And because ") {
                ("And because ", r)
            } else {
                return line.to_string();
            };
            let Some((causes, conclusion)) = rest.split_once(", ") else {
                return line.to_string();
            };
            let kept: Vec<&str> = causes.split(" and ").filter(|c| !noise(c)).collect();
            if kept.is_empty() || kept.len() == causes.split(" and ").count() {
                return line.to_string();
            }
            format!("{head}{}, {conclusion}", kept.join(" and "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn root_version() -> Version {
    Version::new(0, 0, 0)
}

/// A failure to read the index while resolving.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IndexError(String);

struct Provider<'a> {
    sources: &'a Sources,
    /// `REPO/NAME` requests: NAME's versions come from that repository only.
    only: HashMap<PackageName, usize>,
    roots: Vec<(Node, Ranges<Version>)>,
    /// The installed packages that stay (the `Installed` node's dependencies).
    staying: Vec<(Node, Ranges<Version>)>,
    /// The held packages at their versions (the `Held` node's dependencies).
    held: Vec<(Node, Ranges<Version>)>,
    requested: HashSet<PackageName>,
    /// Installed versions, preferred when in range.
    prefer: HashMap<PackageName, Version>,
    /// Packages whose pre-releases may be chosen.
    pre_ok: HashSet<PackageName>,
    policy: Policy,
    /// Versions the policy does not withhold: installed ones, and exact requests.
    exempt: HashSet<(PackageName, Version)>,
    cache: RefCell<HashMap<PackageName, Rc<Vec<Candidate>>>>,
}

impl<'a> Provider<'a> {
    fn new(
        sources: &'a Sources,
        requests: &[Request],
        on_machine: &Installed,
    ) -> Result<Provider<'a>, ResolveError> {
        let installed = &on_machine.versions;
        let mut only = HashMap::new();
        for r in requests {
            if let Some(o) = r
                .only(sources)
                .map_err(|e| ResolveError::Index(format!("{e:#}")))?
            {
                only.insert(r.name.clone(), o);
            }
        }
        shadow::keep_installed_where_found(sources, installed, &mut only)?;
        let mut p = Provider {
            sources,
            only,
            roots: Vec::new(),
            staying: Vec::new(),
            held: Vec::new(),
            requested: HashSet::new(),
            prefer: installed
                .iter()
                .filter(|(n, _)| !on_machine.refresh.contains(*n))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
            pre_ok: HashSet::new(),
            policy: on_machine.policy.clone(),
            exempt: HashSet::new(),
            cache: RefCell::new(HashMap::new()),
        };
        for r in requests {
            if !p.requested.insert(r.name.clone()) {
                return Err(ResolveError::Index(format!(
                    "`{}` is requested twice",
                    r.name
                )));
            }
            let range = p.request_range(r)?;
            p.roots.push((Node::Pkg(r.name.clone()), range));
        }
        for (name, v) in installed {
            p.exempt.insert((name.clone(), v.clone()));
            if !v.pre.is_empty() {
                p.pre_ok.insert(name.clone());
            }
            if on_machine.held.contains(name) {
                p.held
                    .push((Node::Pkg(name.clone()), Ranges::singleton(v.clone())));
                continue;
            }
            if p.requested.contains(name) {
                continue;
            }
            // An installed package the index no longer has stays as it is, outside resolution.
            let known = !p
                .versions(name)
                .map_err(|e| ResolveError::Index(e.0))?
                .is_empty();
            if known {
                p.staying.push((Node::Pkg(name.clone()), Ranges::full()));
            }
        }
        if !p.staying.is_empty() {
            p.roots
                .push((Node::Installed, Ranges::singleton(root_version())));
        }
        if !p.held.is_empty() {
            p.roots
                .push((Node::Held, Ranges::singleton(root_version())));
        }
        Ok(p)
    }

    /// The versions a request admits; an exact one is exempt from the policy.
    fn request_range(&mut self, r: &Request) -> Result<Ranges<Version>, ResolveError> {
        Ok(match &r.spec {
            Spec::Latest => Ranges::full(),
            Spec::Exact(v) => {
                if !v.pre.is_empty() {
                    self.pre_ok.insert(r.name.clone());
                }
                // Build metadata is not part of a version's identity.
                let exact = self
                    .versions(&r.name)
                    .map_err(|e| ResolveError::Index(e.0))?
                    .iter()
                    .find(|x| x.record.version.cmp_precedence(v).is_eq())
                    .map(|x| x.record.version.clone())
                    .unwrap_or_else(|| v.clone());
                self.exempt.insert((r.name.clone(), exact.clone()));
                Ranges::singleton(exact)
            }
            Spec::Req(req) => {
                if req.comparators.iter().any(|c| !c.pre.is_empty()) {
                    self.pre_ok.insert(r.name.clone());
                }
                req_ranges(req)
            }
        })
    }

    /// Every version of `name` in the indexes, lowest first (each from the highest-priority
    /// repository that has it, or from the one a `REPO/NAME` request names).
    fn versions(&self, name: &PackageName) -> Result<Rc<Vec<Candidate>>, IndexError> {
        if let Some(v) = self.cache.borrow().get(name) {
            return Ok(v.clone());
        }
        let v = Rc::new(
            self.sources
                .versions(name, self.only.get(name).copied())
                .map_err(|e| IndexError(format!("{e:#}")))?,
        );
        self.cache.borrow_mut().insert(name.clone(), v.clone());
        Ok(v)
    }

    fn record(&self, name: &PackageName, v: &Version) -> Result<Option<Candidate>, IndexError> {
        Ok(self
            .versions(name)?
            .iter()
            .find(|c| c.record.version == *v)
            .cloned())
    }

    fn allowed(&self, name: &PackageName, v: &Version) -> bool {
        (v.pre.is_empty() || self.pre_ok.contains(name) || self.prefer.get(name) == Some(v))
            && !self.withheld(name, v)
    }

    /// The policy withholds this version, and it is neither installed nor asked for exactly.
    fn withheld(&self, name: &PackageName, v: &Version) -> bool {
        if self.exempt.contains(&(name.clone(), v.clone())) {
            return false;
        }
        self.versions(name).is_ok_and(|vs| {
            vs.iter()
                .find(|c| c.record.version == *v)
                .is_some_and(|c| self.policy.withheld(&c.record).is_some())
        })
    }

    /// For an explanation: the versions withheld of the packages it names, each with why
    /// (`hello 2.0.0 is yanked: …`), so "there is no version" is not the whole story.
    fn withheld_notes(&self, text: &str) -> String {
        let mut notes = String::new();
        let cache = self.cache.borrow();
        let mut names: Vec<&PackageName> = cache.keys().collect();
        names.sort();
        for name in names {
            if !text.contains(&format!("{name} ")) {
                continue;
            }
            for c in cache[name].iter() {
                if self.withheld(name, &c.record.version) {
                    if let Some(why) = self.policy.withheld(&c.record) {
                        notes.push_str(&format!(
                            "\n{name} {} is {why} (not chosen unless asked for exactly: {name}@={})",
                            c.record.version, c.record.version
                        ));
                    }
                }
            }
        }
        notes
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Node;
    type V = Version;
    type VS = Ranges<Version>;
    type M = String;
    type Err = IndexError;
    type Priority = (u8, u32, Reverse<usize>);

    fn prioritize(
        &self,
        package: &Node,
        range: &Ranges<Version>,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        match package {
            Node::Request | Node::Installed | Node::Held => (1, 0, Reverse(0)),
            Node::Pkg(name) => {
                let n = self.versions(name).map_or(0, |vs| {
                    vs.iter()
                        .filter(|c| {
                            range.contains(&c.record.version)
                                && self.allowed(name, &c.record.version)
                        })
                        .count()
                });
                // The most conflicting first, then the fewest choices.
                (0, stats.conflict_count(), Reverse(n))
            }
        }
    }

    fn choose_version(
        &self,
        package: &Node,
        range: &Ranges<Version>,
    ) -> Result<Option<Version>, IndexError> {
        let Node::Pkg(name) = package else {
            return Ok(Some(root_version()));
        };

        let versions = self.versions(name)?;
        if let Some(p) = self.prefer.get(name) {
            if range.contains(p) && versions.iter().any(|c| c.record.version == *p) {
                return Ok(Some(p.clone()));
            }
        }
        // The highest-priority repository with a version in range (the lowest source index),
        // then its newest.
        Ok(versions
            .iter()
            .filter(|c| range.contains(&c.record.version) && self.allowed(name, &c.record.version))
            .max_by(|a, b| {
                b.source
                    .cmp(&a.source)
                    .then_with(|| a.record.version.cmp(&b.record.version))
            })
            .map(|c| c.record.version.clone()))
    }

    fn get_dependencies(
        &self,
        package: &Node,
        version: &Version,
    ) -> Result<Dependencies<Node, Ranges<Version>, String>, IndexError> {
        let name = match package {
            Node::Request => {
                return Ok(Dependencies::Available(
                    self.roots.iter().cloned().collect(),
                ))
            }
            Node::Installed => {
                return Ok(Dependencies::Available(
                    self.staying.iter().cloned().collect(),
                ))
            }
            Node::Held => return Ok(Dependencies::Available(self.held.iter().cloned().collect())),
            Node::Pkg(name) => name,
        };
        let Some(Candidate { record: rec, .. }) = self.record(name, version)? else {
            return Ok(Dependencies::Unavailable(format!(
                "{name} {version} is not in the index"
            )));
        };
        Ok(Dependencies::Available(
            rec.relations
                .depends
                .iter()
                .map(|(dep, req)| (Node::Pkg(dep.clone()), req_ranges(req)))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_version_noise_leaves_explanations() {
        let t = "Because there is no version of libfoo in >=3.0.0, <4.0.0 and bad 1.0.0 depends on libfoo >=3.0.0, <4.0.0, bad 1.0.0 is forbidden.\nAnd because there is no version of bad in <1.0.0 | >1.0.0 and your request depends on bad, your request is forbidden.";
        assert_eq!(
            drop_single_version_noise(t),
            "Because there is no version of libfoo in >=3.0.0, <4.0.0 and bad 1.0.0 depends on libfoo >=3.0.0, <4.0.0, bad 1.0.0 is forbidden.\nAnd because your request depends on bad, your request is forbidden."
        );
    }
}

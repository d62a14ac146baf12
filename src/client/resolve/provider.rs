//! The PubGrub side of resolution: the [`Provider`] answers the solver's questions (versions,
//! dependencies, priorities) from the synced indexes, and stops it when its [`Budget`] runs out
//! or the user interrupts.
//!
//! The solver's versions are *ranks*: a package's versions in the index, lowest first, numbered
//! from 0. A SemVer requirement becomes the set of ranks whose versions it admits, so ranks next
//! to each other merge into one interval whatever lies between the versions they stand for. An
//! `app` whose 4,000 versions each need another exact `lib` version, tried one after another,
//! leaves one interval of `lib` behind it, where SemVer intervals left one segment per version
//! tried in every derived incompatibility: memory and explanations grew with the square of the
//! versions (issue 25, finding 6: 3 GiB for 4,000).

use std::cell::{Cell, OnceCell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::rc::Rc;
use std::time::{Duration, Instant};

use pubgrub::{Dependencies, DependencyProvider, PackageResolutionStatistics, Ranges, VersionSet};
use semver::Version;

use super::ranges::req_ranges;
pub use super::set::{Rank, Set, ROOT};
use super::{Installed, Limit, Limits, Node, ResolveError};
use crate::client::interrupt::{self, Interrupted};
use crate::client::request::{Request, Spec};
use crate::client::rollout::Policy;
use crate::client::sources::{Candidate, Sources};
use crate::format::ids::PackageName;

/// Every version of one package, lowest first (rank i is `list[i]`).
pub struct Versions {
    pub list: Vec<Candidate>,
    /// How many versions below each rank may be chosen on their own (`len + 1` prefix counts),
    /// computed on first use, once the provider knows what is exempt from its policy.
    takeable: OnceCell<Vec<u32>>,
}

impl Versions {
    fn new(mut list: Vec<Candidate>) -> Versions {
        // `Ord` (precedence, then build metadata) is the order `Ranges<Version>` compares by.
        list.sort_by(|a, b| a.record.version.cmp(&b.record.version));
        Versions {
            list,
            takeable: OnceCell::new(),
        }
    }

    pub fn len(&self) -> u32 {
        self.list.len() as u32
    }

    pub fn get(&self, r: Rank) -> Option<&Candidate> {
        self.list.get(r.0 as usize)
    }

    pub fn version(&self, r: u32) -> &Version {
        &self.list[r as usize].record.version
    }

    pub fn rank_of(&self, v: &Version) -> Option<Rank> {
        self.list
            .binary_search_by(|c| c.record.version.cmp(v))
            .ok()
            .map(|i| Rank(i as u32))
    }

    /// The ranks whose versions `r` admits.
    pub fn ranks(&self, r: &Ranges<Version>) -> Set {
        let mut out = Set::empty();
        for (lo, hi) in r.iter() {
            let start = self.list.partition_point(|c| match lo {
                Bound::Included(l) => c.record.version < *l,
                Bound::Excluded(l) => c.record.version <= *l,
                Bound::Unbounded => false,
            });
            let end = self.list.partition_point(|c| match hi {
                Bound::Included(h) => c.record.version <= *h,
                Bound::Excluded(h) => c.record.version < *h,
                Bound::Unbounded => true,
            });
            if start < end {
                out = out.union(&Set::between(start as u32, end as u32));
            }
        }
        out
    }

    /// The ranks of `set` that stand for a version, as runs `[lo, hi)`.
    pub fn runs(&self, set: &Set) -> Vec<(u32, u32)> {
        set.runs(self.len())
    }
}

/// Why the solver was stopped, or could not read what it asked for.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error("{0}")]
    Index(String),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    #[error("{0}")]
    Limit(Limit),
}

/// What a resolution may spend: checked by the solver before each of its steps.
pub struct Budget {
    started: Instant,
    timeout: Duration,
    steps: Cell<u64>,
    max_steps: u64,
}

impl Budget {
    pub fn new(limits: &Limits) -> Budget {
        Budget {
            started: Instant::now(),
            timeout: limits.timeout,
            steps: Cell::new(0),
            max_steps: limits.max_steps,
        }
    }

    /// One more step, unless the user interrupted or the budget is spent.
    fn step(&self) -> Result<(), Stop> {
        interrupt::check()?;
        let n = self.steps.get() + 1;
        self.steps.set(n);
        if n > self.max_steps {
            return Err(Stop::Limit(Limit::Steps(self.max_steps)));
        }
        if self.started.elapsed() > self.timeout {
            return Err(Stop::Limit(Limit::Time(self.timeout)));
        }
        Ok(())
    }
}

pub struct Provider<'a> {
    pub sources: &'a Sources,
    /// `REPO/NAME` requests: NAME's versions come from that repository only.
    pub only: HashMap<PackageName, usize>,
    pub roots: Vec<(Node, Set)>,
    /// What each request asked for, as typed (`*` for a bare name), for explanations.
    pub asked: HashMap<PackageName, String>,
    /// The installed packages that stay (the `Installed` node's dependencies).
    pub staying: Vec<(Node, Set)>,
    /// The held packages at their versions (the `Held` node's dependencies).
    pub held: Vec<(Node, Set)>,
    pub requested: HashSet<PackageName>,
    /// Installed versions, preferred when in range.
    pub prefer: HashMap<PackageName, Version>,
    /// Packages whose pre-releases may be chosen.
    pub pre_ok: HashSet<PackageName>,
    pub policy: Policy,
    /// Versions the policy does not withhold: installed ones, and exact requests.
    pub exempt: HashSet<(PackageName, Version)>,
    pub cache: RefCell<HashMap<PackageName, Rc<Versions>>>,
    pub budget: Budget,
    /// The conflicts each package took part in, as the solver last counted them.
    pub conflicts: RefCell<HashMap<PackageName, u32>>,
}

impl Provider<'_> {
    /// Every version of `name` in the indexes (from the one repository that provides the name,
    /// or from the one a `REPO/NAME` request names).
    pub fn versions(&self, name: &PackageName) -> Result<Rc<Versions>, Stop> {
        if let Some(v) = self.cache.borrow().get(name) {
            return Ok(v.clone());
        }
        let list = self
            .sources
            .versions(name, self.only.get(name).copied())
            .map_err(|e| Stop::Index(format!("{e:#}")))?;
        let v = Rc::new(Versions::new(list));
        self.cache.borrow_mut().insert(name.clone(), v.clone());
        Ok(v)
    }

    /// Whether resolution may take this version on its own: a pre-release only where allowed,
    /// nothing the policy withholds.
    fn allowed(&self, c: &Candidate) -> bool {
        let (name, v) = (&c.record.name, &c.record.version);
        (v.pre.is_empty() || self.pre_ok.contains(name) || self.prefer.get(name) == Some(v))
            && !self.withheld(c)
    }

    /// The policy withholds this version, and it is neither installed nor asked for exactly.
    pub fn withheld(&self, c: &Candidate) -> bool {
        !self
            .exempt
            .contains(&(c.record.name.clone(), c.record.version.clone()))
            && self.policy.withheld(&c.record).is_some()
    }

    /// Up to `max` of `among` (all the packages the solver met when empty), the most
    /// conflicting first, as a list for a message.
    pub fn most_conflicting(&self, among: &BTreeSet<PackageName>, max: usize) -> String {
        let conflicts = self.conflicts.borrow();
        let mut names: Vec<(&PackageName, u32)> = if among.is_empty() {
            conflicts.iter().map(|(n, c)| (n, *c)).collect()
        } else {
            among
                .iter()
                .map(|n| (n, conflicts.get(n).copied().unwrap_or(0)))
                .collect()
        };
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let more = names.len().saturating_sub(max);
        let mut list: Vec<String> = names.iter().take(max).map(|(n, _)| n.to_string()).collect();
        if more > 0 {
            list.push(format!("and {more} more"));
        }
        list.join(", ")
    }

    fn takeable<'v>(&self, vs: &'v Versions) -> &'v [u32] {
        vs.takeable.get_or_init(|| {
            let mut counts = Vec::with_capacity(vs.list.len() + 1);
            let mut n = 0;
            counts.push(0);
            for c in &vs.list {
                n += u32::from(self.allowed(c));
                counts.push(n);
            }
            counts
        })
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Node;
    type V = Rank;
    type VS = Set;
    type M = String;
    type Err = Stop;
    type Priority = (u8, u32, Reverse<u32>);

    fn prioritize(
        &self,
        package: &Node,
        range: &Set,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        let Node::Pkg(name) = package else {
            return (1, 0, Reverse(0));
        };
        let conflicts = stats.conflict_count();
        if conflicts > 0 {
            self.conflicts.borrow_mut().insert(name.clone(), conflicts);
        }
        let choices = self.versions(name).map_or(0, |vs| {
            let counts = self.takeable(&vs);
            vs.runs(range)
                .iter()
                .map(|&(lo, hi)| counts[hi as usize] - counts[lo as usize])
                .sum()
        });
        // The most conflicting first, then the fewest choices.
        (0, conflicts, Reverse(choices))
    }

    fn choose_version(&self, package: &Node, range: &Set) -> Result<Option<Rank>, Stop> {
        let Node::Pkg(name) = package else {
            return Ok(Some(ROOT));
        };
        let vs = self.versions(name)?;
        if let Some(r) = self.prefer.get(name).and_then(|p| vs.rank_of(p)) {
            if range.contains(&r) {
                return Ok(Some(r));
            }
        }
        let counts = self.takeable(&vs);
        for (lo, hi) in vs.runs(range).into_iter().rev() {
            if counts[hi as usize] == counts[lo as usize] {
                continue;
            }
            if let Some(r) = (lo..hi)
                .rev()
                .find(|&r| counts[r as usize + 1] > counts[r as usize])
            {
                return Ok(Some(Rank(r)));
            }
        }
        Ok(None)
    }

    fn get_dependencies(
        &self,
        package: &Node,
        version: &Rank,
    ) -> Result<Dependencies<Node, Set, String>, Stop> {
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
        let vs = self.versions(name)?;
        let Some(c) = vs.get(*version) else {
            return Ok(Dependencies::Unavailable(format!(
                "{name} has no version {version} in the index"
            )));
        };
        let mut deps = Vec::with_capacity(c.record.relations.depends.len());
        for (dep, req) in &c.record.relations.depends {
            let set = self.versions(dep)?.ranks(&req_ranges(req));
            deps.push((Node::Pkg(dep.clone()), set));
        }
        Ok(Dependencies::Available(deps.into_iter().collect()))
    }

    fn should_cancel(&self) -> Result<(), Stop> {
        self.budget.step()
    }
}

impl<'a> Provider<'a> {
    /// The problem: the request's packages, what is installed and stays, what is held.
    pub fn new(
        sources: &'a Sources,
        requests: &[Request],
        on_machine: &Installed,
        limits: &Limits,
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
        keep_installed_where_found(sources, installed, &mut only)?;
        let mut p = Provider {
            sources,
            only,
            roots: Vec::new(),
            asked: HashMap::new(),
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
            budget: Budget::new(limits),
            conflicts: RefCell::new(HashMap::new()),
        };
        for r in requests {
            if !p.requested.insert(r.name.clone()) {
                return Err(ResolveError::RequestedTwice(r.name.clone()));
            }
            let range = p.request_range(r)?;
            p.roots.push((Node::Pkg(r.name.clone()), range));
        }
        p.add_installed(on_machine)?;
        if !p.staying.is_empty() {
            p.roots.push((Node::Installed, Set::singleton(ROOT)));
        }
        if !p.held.is_empty() {
            p.roots.push((Node::Held, Set::singleton(ROOT)));
        }
        Ok(p)
    }

    /// What is installed stays (any version), what is held keeps its version.
    fn add_installed(&mut self, on_machine: &Installed) -> Result<(), ResolveError> {
        for (name, v) in &on_machine.versions {
            self.exempt.insert((name.clone(), v.clone()));
            if !v.pre.is_empty() {
                self.pre_ok.insert(name.clone());
            }
            let vs = self.versions(name).map_err(index)?;
            if on_machine.held.contains(name) {
                // A held version the index no longer has: nothing can be resolved around it.
                let set = vs.rank_of(v).map_or_else(Set::empty, Set::singleton);
                self.held.push((Node::Pkg(name.clone()), set));
                continue;
            }
            // An installed package the index no longer has stays as it is, outside resolution.
            if !self.requested.contains(name) && vs.len() > 0 {
                self.staying.push((Node::Pkg(name.clone()), Set::full()));
            }
        }
        Ok(())
    }

    /// The versions a request admits; an exact one is exempt from the policy.
    fn request_range(&mut self, r: &Request) -> Result<Set, ResolveError> {
        let vs = self.versions(&r.name).map_err(index)?;
        let (set, asked) = match &r.spec {
            Spec::Latest => (Set::full(), "*".to_string()),
            Spec::Exact(v) => {
                if !v.pre.is_empty() {
                    self.pre_ok.insert(r.name.clone());
                }
                // Build metadata is not part of a version's identity.
                let found = vs
                    .list
                    .iter()
                    .position(|x| x.record.version.cmp_precedence(v).is_eq());
                let set = match found {
                    Some(i) => {
                        let exact = vs.list[i].record.version.clone();
                        self.exempt.insert((r.name.clone(), exact));
                        Set::singleton(Rank(i as u32))
                    }
                    None => Set::empty(),
                };
                (set, format!("={v}"))
            }
            Spec::Req(req) => {
                if req.comparators.iter().any(|c| !c.pre.is_empty()) {
                    self.pre_ok.insert(r.name.clone());
                }
                (vs.ranks(&req_ranges(req)), req.to_string())
            }
        };
        self.asked.insert(r.name.clone(), asked);
        Ok(set)
    }
}

fn index(e: Stop) -> ResolveError {
    ResolveError::Index(e.to_string())
}

/// An installed version its name's owner does not have (it was asked for as `REPO/NAME`) keeps
/// coming from the repository that has it, so it can stay installed.
fn keep_installed_where_found(
    sources: &Sources,
    installed: &BTreeMap<PackageName, Version>,
    only: &mut HashMap<PackageName, usize>,
) -> Result<(), ResolveError> {
    let index = |e: anyhow::Error| ResolveError::Index(format!("{e:#}"));
    for (name, version) in installed {
        if only.contains_key(name) {
            continue;
        }
        if let Some(source) = sources.keeping(name, version).map_err(index)? {
            only.insert(name.clone(), source);
        }
    }
    Ok(())
}

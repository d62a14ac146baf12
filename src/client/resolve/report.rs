//! A failed resolution in words: PubGrub's derivation tree through our own [`ReportFormatter`]
//! (the solver's ranks become the versions they stand for, a dependency is said as its manifest
//! wrote it, the request, what is installed and what is held by name), cut to a readable size,
//! then notes on what the explanation names (holds, withheld versions, other repositories).

use std::collections::{BTreeSet, HashSet};

use pubgrub::{
    DefaultStringReporter, DerivationTree, Derived, External, Map, ReportFormatter, Reporter, Term,
    VersionSet,
};

use super::provider::{Provider, Set};
use super::{Installed, Node};
use crate::format::ids::PackageName;

/// An explanation longer than this many lines keeps its first [`HEAD`] and last [`TAIL`].
const MAX_LINES: usize = 40;
const HEAD: usize = 25;
const TAIL: usize = 10;
/// A derivation of more steps is not put into words at all (the red team's unsatisfiable
/// 145-row index made one of 90 MB): the packages it involves are named instead.
const MAX_STEPS: usize = 5_000;
/// At most this many runs of versions are listed for one package in one clause.
const MAX_RUNS: usize = 6;
/// At most this many packages are named where a list of them stands for an explanation.
pub const MAX_NAMED: usize = 12;

pub const ROOT_LABEL: &str = "your request";
pub const INSTALLED_LABEL: &str = "what is installed";
pub const HELD_LABEL: &str = "what is held";

/// The explanation of `tree`, cut to size, with its notes.
pub fn explain(
    p: &Provider<'_>,
    tree: &DerivationTree<Node, Set, String>,
    on_machine: &Installed,
) -> String {
    let (steps, nodes) = walk(tree);
    let involved: BTreeSet<PackageName> = nodes
        .iter()
        .filter_map(|n| match n {
            Node::Pkg(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let mut text = if steps > MAX_STEPS {
        format!(
            "its explanation takes more than {MAX_STEPS} steps, too many to print; the packages involved, the most conflicting first: {}",
            p.most_conflicting(&involved, MAX_NAMED)
        )
    } else {
        cut(&DefaultStringReporter::report_with_formatter(
            tree,
            &Words { p },
        ))
    };
    // Say which holds are in the way, and how to lift them.
    if nodes.contains(&Node::Held) {
        for name in involved.iter().filter(|n| on_machine.held.contains(*n)) {
            if let Some(v) = on_machine.versions.get(name) {
                text.push_str(&format!(
                    "\n{name} is held at {v}: `dist unhold {name}` lets it move"
                ));
            }
        }
    }
    text + &withheld_notes(p, &involved) + &p.shadowed_notes(&involved)
}

/// How many steps (nodes, a shared one once) `tree` has, and the nodes its clauses name.
/// (`DerivationTree::packages` walks a shared step again each time it is referred to: in a
/// proof like the pigeonhole's, exponentially often.)
fn walk(tree: &DerivationTree<Node, Set, String>) -> (usize, HashSet<&Node>) {
    let mut seen = BTreeSet::new();
    let mut nodes = HashSet::new();
    let mut todo = vec![tree];
    let mut n = 0;
    while let Some(t) = todo.pop() {
        n += 1;
        match t {
            DerivationTree::Derived(d) => {
                if d.shared_id.is_some_and(|id| !seen.insert(id)) {
                    continue;
                }
                nodes.extend(d.terms.keys());
                todo.push(&d.cause1);
                todo.push(&d.cause2);
            }
            DerivationTree::External(e) => match e {
                External::FromDependencyOf(p, _, d, _) => nodes.extend([p, d]),
                External::NotRoot(p, _) | External::NoVersions(p, _) | External::Custom(p, ..) => {
                    nodes.insert(p);
                }
            },
        }
    }
    (n, nodes)
}

/// The first [`HEAD`] and last [`TAIL`] lines of a long explanation.
fn cut(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= MAX_LINES {
        return text.to_string();
    }
    let left_out = lines.len() - HEAD - TAIL;
    let mut out = lines[..HEAD].join("\n");
    out.push_str(&format!("\n… ({left_out} more lines) …\n"));
    out.push_str(&lines[lines.len() - TAIL..].join("\n"));
    out
}

/// For an explanation: the withheld versions of the packages it names, each with why
/// (`hello 2.0.0 is yanked: …`), so "cannot be chosen" is not the whole story.
fn withheld_notes(p: &Provider<'_>, involved: &BTreeSet<PackageName>) -> String {
    let mut notes = String::new();
    for name in involved {
        let Ok(vs) = p.versions(name) else { continue };
        for c in vs.list.iter().filter(|c| p.withheld(c)) {
            if let Some(why) = p.policy.withheld(&c.record) {
                let v = &c.record.version;
                notes.push_str(&format!(
                    "\n{name} {v} is {why} (not chosen unless asked for exactly: {name}@={v})"
                ));
            }
        }
    }
    notes
}

/// The formatter: ranks back to versions.
struct Words<'p, 'a> {
    p: &'p Provider<'a>,
}

impl Words<'_, '_> {
    /// ` 1.0.0 | >=2.0.0`: the versions of `set` (empty when it is every version).
    fn versions(&self, name: &PackageName, set: &Set) -> String {
        let Ok(vs) = self.p.versions(name) else {
            return String::new();
        };
        let n = vs.len();
        let runs = vs.runs(set);
        if n == 0 || runs == [(0, n)] {
            return String::new();
        }
        if runs.is_empty() {
            return format!(" newer than {}", vs.version(n - 1));
        }
        let mut shown: Vec<String> = runs
            .iter()
            .take(MAX_RUNS)
            .map(|&(lo, hi)| {
                let (a, b) = (vs.version(lo), vs.version(hi - 1));
                match (hi - lo, lo, hi) {
                    (1, _, _) => a.to_string(),
                    (_, _, h) if h == n => format!(">={a}"),
                    (_, 0, _) => format!("<={b}"),
                    _ => format!(">={a}, <={b}"),
                }
            })
            .collect();
        if runs.len() > MAX_RUNS {
            shown.push(format!("… ({} more)", runs.len() - MAX_RUNS));
        }
        format!(" {}", shown.join(" | "))
    }

    fn node(&self, node: &Node, set: &Set) -> String {
        match node {
            Node::Request => ROOT_LABEL.to_string(),
            Node::Installed => INSTALLED_LABEL.to_string(),
            Node::Held => HELD_LABEL.to_string(),
            Node::Pkg(name) => format!("{name}{}", self.versions(name, set)),
        }
    }

    /// What `node`'s versions in `set` require of `dep`, as written, when they all say the same.
    fn requirement(&self, node: &Node, set: &Set, dep: &PackageName) -> Option<String> {
        let name = match node {
            Node::Request => return self.p.asked.get(dep).cloned(),
            Node::Installed | Node::Held => return None,
            Node::Pkg(name) => name,
        };
        let vs = self.p.versions(name).ok()?;
        let mut said: Option<String> = None;
        for (lo, hi) in vs.runs(set) {
            for c in &vs.list[lo as usize..hi as usize] {
                let req = c.record.relations.depends.get(dep)?.to_string();
                match &said {
                    Some(s) if *s != req => return None,
                    Some(_) => {}
                    None => said = Some(req),
                }
            }
        }
        said
    }

    fn dependency(&self, p: &Node, vp: &Set, dep: &Node, vd: &Set) -> String {
        let who = self.node(p, vp);
        let Node::Pkg(d) = dep else {
            return format!("{who} depends on {dep}");
        };
        let what = match self.requirement(p, vp, d).as_deref() {
            Some("*") => d.to_string(),
            Some(req) => format!("{d} {req}"),
            None => self.node(dep, vd),
        };
        match self.p.versions(d) {
            Ok(vs) if vs.len() == 0 => format!("{who} depends on {what} (no index has {d})"),
            Ok(vs) if vs.runs(vd).is_empty() => {
                format!("{who} depends on {what} (no version of {d} matches)")
            }
            _ => format!("{who} depends on {what}"),
        }
    }

    /// A clause that only says there is no version beyond the newest: true, and noise.
    fn noise(&self, e: &External<Node, Set, String>) -> bool {
        let External::NoVersions(Node::Pkg(name), set) = e else {
            return false;
        };
        self.p
            .versions(name)
            .is_ok_and(|vs| vs.len() > 0 && vs.runs(set).is_empty())
    }

    /// An external cause in words, unless it is noise.
    fn cause(&self, e: &External<Node, Set, String>) -> Option<String> {
        (!self.noise(e)).then(|| self.format_external(e))
    }

    /// `Because A and B, C.` (`And because …` when `and`), from the causes that are not noise.
    fn sentence(&self, and: bool, causes: Vec<Option<String>>, then: &str) -> String {
        let causes: Vec<String> = causes.into_iter().flatten().collect();
        match (causes.is_empty(), and) {
            (true, false) => format!("So {then}."),
            (true, true) => format!("And so {then}."),
            // A cause left alone by noise: its consequence follows.
            (false, false) if causes.len() == 1 => format!("{}, so {then}.", causes[0]),
            (false, false) => format!("Because {}, {then}.", causes.join(" and ")),
            (false, true) => format!("And because {}, {then}.", causes.join(" and ")),
        }
    }
}

impl ReportFormatter<Node, Set, String> for Words<'_, '_> {
    type Output = String;

    fn format_external(&self, e: &External<Node, Set, String>) -> String {
        match e {
            External::NotRoot(p, _) => format!("we are solving the dependencies of {p}"),
            External::NoVersions(Node::Pkg(name), set) => match self.p.versions(name) {
                Ok(vs) if vs.len() == 0 => format!("no index has {name}"),
                Ok(vs) if vs.runs(set).is_empty() => {
                    format!("there is no version of {name}{}", self.versions(name, set))
                }
                _ => format!(
                    "{name}{} may not be chosen on its own",
                    self.versions(name, set)
                ),
            },
            External::NoVersions(p, _) => format!("{p} has no version"),
            External::FromDependencyOf(p, vp, d, vd) => self.dependency(p, vp, d, vd),
            External::Custom(_, _, why) => why.clone(),
        }
    }

    fn format_terms(&self, terms: &Map<Node, Term<Set>>) -> String {
        let list: Vec<(&Node, &Term<Set>)> = terms.iter().collect();
        match list.as_slice() {
            [] => "version solving failed".into(),
            [(Node::Request, Term::Positive(_))] => "no set of versions satisfies it".into(),
            [(Node::Installed, Term::Positive(_))] => {
                format!("{INSTALLED_LABEL} cannot stay as it is")
            }
            [(Node::Held, Term::Positive(_))] => {
                "the held packages cannot keep their versions".into()
            }
            [(p, Term::Positive(s))] => format!("{} is forbidden", self.node(p, s)),
            [(p, Term::Negative(s))] => format!("{} is mandatory", self.node(p, &s.complement())),
            [(p1, Term::Positive(r1)), (p2, Term::Negative(r2))]
            | [(p2, Term::Negative(r2)), (p1, Term::Positive(r1))] => {
                format!("{} depends on {}", self.node(p1, r1), self.node(p2, r2))
            }
            many => {
                let mut said: Vec<String> = many
                    .iter()
                    .map(|(p, t)| match t {
                        Term::Positive(s) => self.node(p, s),
                        Term::Negative(s) => format!("not {}", self.node(p, s)),
                    })
                    .collect();
                let last = said.pop().unwrap_or_default();
                format!("{} and {last} are incompatible", said.join(", "))
            }
        }
    }

    fn explain_both_external(
        &self,
        a: &External<Node, Set, String>,
        b: &External<Node, Set, String>,
        terms: &Map<Node, Term<Set>>,
    ) -> String {
        let then = self.format_terms(terms);
        self.sentence(false, vec![self.cause(a), self.cause(b)], &then)
    }

    fn explain_both_ref(
        &self,
        id1: usize,
        d1: &Derived<Node, Set, String>,
        id2: usize,
        d2: &Derived<Node, Set, String>,
        terms: &Map<Node, Term<Set>>,
    ) -> String {
        let causes = vec![
            Some(format!("{} ({id1})", self.format_terms(&d1.terms))),
            Some(format!("{} ({id2})", self.format_terms(&d2.terms))),
        ];
        self.sentence(false, causes, &self.format_terms(terms))
    }

    fn explain_ref_and_external(
        &self,
        id: usize,
        d: &Derived<Node, Set, String>,
        e: &External<Node, Set, String>,
        terms: &Map<Node, Term<Set>>,
    ) -> String {
        let derived = Some(format!("{} ({id})", self.format_terms(&d.terms)));
        self.sentence(
            false,
            vec![derived, self.cause(e)],
            &self.format_terms(terms),
        )
    }

    fn and_explain_external(
        &self,
        e: &External<Node, Set, String>,
        terms: &Map<Node, Term<Set>>,
    ) -> String {
        self.sentence(true, vec![self.cause(e)], &self.format_terms(terms))
    }

    fn and_explain_ref(
        &self,
        id: usize,
        d: &Derived<Node, Set, String>,
        terms: &Map<Node, Term<Set>>,
    ) -> String {
        let derived = Some(format!("{} ({id})", self.format_terms(&d.terms)));
        self.sentence(true, vec![derived], &self.format_terms(terms))
    }

    fn and_explain_prior_and_external(
        &self,
        prior: &External<Node, Set, String>,
        e: &External<Node, Set, String>,
        terms: &Map<Node, Term<Set>>,
    ) -> String {
        let causes = vec![self.cause(prior), self.cause(e)];
        self.sentence(true, causes, &self.format_terms(terms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_explanation_keeps_its_head_and_tail() {
        let text: Vec<String> = (1..=100).map(|i| format!("line {i}")).collect();
        let cut = cut(&text.join("\n"));
        let lines: Vec<&str> = cut.lines().collect();
        assert_eq!(lines.len(), HEAD + 1 + TAIL);
        assert_eq!(lines[0], "line 1");
        assert_eq!(lines[HEAD], "… (65 more lines) …");
        assert_eq!(lines[HEAD + TAIL], "line 100");
        let short = "Because a, b.\nAnd because c, d.";
        assert_eq!(super::cut(short), short);
    }
}

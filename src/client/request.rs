//! What a user asks to install, parsed from the command line once: `NAME`, `NAME@1.2.3` or
//! `NAME@=1.2.3` (exactly that version: also a yanked one, or one whose phased rollout has not
//! reached this machine) or `NAME@<SemVer requirement>`, each optionally `REPO/` first (from
//! that repository only), and resolved against the synced indexes.

use anyhow::{Context, Result};

use super::config::RepoName;
use super::rollout::{Policy, Withheld};
use super::sources::{Candidate, Sources};
use crate::format::ids::PackageName;

/// A name no index has: what `--json` reports as kind `not_found`, with the closest names.
#[derive(Debug, thiserror::Error)]
#[error(
    "no package `{name}` in {place}{}; try `dist search`",
    super::suggest::hint(similar)
)]
pub struct UnknownPackage {
    pub name: String,
    pub place: String,
    pub similar: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub name: PackageName,
    pub spec: Spec,
    /// `REPO/NAME`: only this repository's versions.
    pub repo: Option<RepoName>,
}

#[derive(Debug, Clone)]
pub enum Spec {
    /// The highest version that is not a pre-release.
    Latest,
    /// `@1.2.3` or `@=1.2.3`.
    Exact(semver::Version),
    Req(semver::VersionReq),
}

impl Request {
    pub fn parse(s: &str) -> Result<Request> {
        let whole = s;
        let (repo, s) = match s.split_once('/') {
            Some((r, rest)) => {
                let r = super::config::RepoName::parse(r)
                    .with_context(|| format!("`{whole}`: before `/` comes a repository"))?;
                (Some(r), rest)
            }
            None => (None, s),
        };
        let (name, spec) = match s.split_once('@') {
            None => (s, Spec::Latest),
            Some((n, v)) => {
                // `=1.2.3` names one version exactly, as `1.2.3` does.
                let exact = v.strip_prefix('=').unwrap_or(v);
                let spec = match semver::Version::parse(exact.trim_start()) {
                    Ok(v) => Spec::Exact(v),
                    Err(_) => Spec::Req(semver::VersionReq::parse(v).with_context(|| {
                        format!("`{whole}`: `{v}` is neither a version nor a SemVer requirement")
                    })?),
                };
                (n, spec)
            }
        };
        // (A name in the wrong case parses; the did-you-mean of an unknown name has it.)
        let name = PackageName::parse(name).map_err(|e| anyhow::anyhow!("`{whole}`: {e}"))?;
        Ok(Request { name, spec, repo })
    }

    /// The repository this request is restricted to, if any (an error if it is not synced).
    pub fn only(&self, sources: &Sources) -> Result<Option<usize>> {
        self.repo
            .as_ref()
            .map(|r| sources.find(r.as_str()))
            .transpose()
    }

    /// The version this request selects on its own (dependencies aside): the plain message
    /// when there is none (no such package, no such version, only pre-releases, only versions
    /// `policy` withholds). `installed` is the version on the machine, which is never withheld.
    pub fn resolve(
        &self,
        sources: &Sources,
        policy: &Policy,
        installed: Option<&semver::Version>,
    ) -> Result<Candidate> {
        let only = self.only(sources)?;
        let versions = sources.versions(&self.name, only)?;
        if versions.is_empty() {
            let place = match &self.repo {
                Some(r) => format!("repository `{r}`"),
                None => format!("the index ({})", sources.describe()),
            };
            return Err(UnknownPackage {
                name: self.name.to_string(),
                place,
                similar: sources.similar(self.name.as_str(), only),
            }
            .into());
        }
        let matching = versions.iter().rev().filter(|c| match &self.spec {
            Spec::Latest => c.record.version.pre.is_empty(),
            Spec::Exact(v) => c.record.version.cmp_precedence(v).is_eq(),
            Spec::Req(req) => req.matches(&c.record.version),
        });
        let taken = |c: &&Candidate| {
            matches!(self.spec, Spec::Exact(_))
                || installed.is_some_and(|i| i.cmp_precedence(&c.record.version).is_eq())
                || policy.withheld(&c.record).is_none()
        };
        let mut matching = matching.peekable();
        let first = matching.peek().copied();
        let pick = matching.find(taken);
        if let (None, Some(c)) = (pick, first) {
            let why = policy.withheld(&c.record).expect("withheld");
            let or = match why {
                Withheld::Deferred(_) => " or pass --no-phasing",
                Withheld::Yanked(_) => "",
            };
            anyhow::bail!(
                "{} is {why}, and no other version of `{}` matches; ask for it exactly (`{}@={}`){or}",
                c.record.id(),
                self.name,
                self.name,
                c.record.version
            );
        }
        let all: Vec<String> = versions
            .iter()
            .map(|c| c.record.version.to_string())
            .collect();
        pick.cloned().with_context(|| match &self.spec {
            Spec::Latest => format!(
                "`{}` has only pre-releases ({}); ask for one with NAME@VERSION",
                self.name,
                all.join(", ")
            ),
            Spec::Exact(v) => format!(
                "`{}` has no version {v} (available: {})",
                self.name,
                all.join(", ")
            ),
            Spec::Req(r) => format!(
                "no version of `{}` matches `{r}` (available: {})",
                self.name,
                all.join(", ")
            ),
        })
    }
}

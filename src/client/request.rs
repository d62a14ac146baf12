//! What a user asks to install, parsed from the command line once: `NAME`, `NAME@1.2.3`
//! (exactly that version) or `NAME@<SemVer requirement>`, each optionally `REPO/` first (from
//! that repository only), and resolved against the synced indexes.

use anyhow::{Context, Result};

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
    pub repo: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Spec {
    /// The highest version that is not a pre-release.
    Latest,
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
                (Some(r.to_string()), rest)
            }
            None => (None, s),
        };
        let (name, spec) = match s.split_once('@') {
            None => (s, Spec::Latest),
            Some((n, v)) => {
                let spec = match semver::Version::parse(v) {
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
        self.repo.as_deref().map(|r| sources.find(r)).transpose()
    }

    /// The version this request selects on its own (dependencies aside): the plain message
    /// when there is none (no such package, no such version, only pre-releases).
    pub fn resolve(&self, sources: &Sources) -> Result<Candidate> {
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
        let pick = match &self.spec {
            Spec::Latest => versions
                .iter()
                .rev()
                .find(|c| c.record.version.pre.is_empty()),
            Spec::Exact(v) => versions
                .iter()
                .rev()
                .find(|c| c.record.version.cmp_precedence(v).is_eq()),
            Spec::Req(req) => versions
                .iter()
                .rev()
                .find(|c| req.matches(&c.record.version)),
        };
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

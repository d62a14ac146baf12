//! What a user asks to install, parsed from the command line once: `NAME`, `NAME@1.2.3`
//! (exactly that version) or `NAME@<SemVer requirement>`, and resolved against the synced index.

use anyhow::{bail, Context, Result};

use crate::format::ids::PackageName;
use crate::repo::index::{PackageRecord, Snapshot};

#[derive(Debug, Clone)]
pub struct Request {
    pub name: PackageName,
    pub spec: Spec,
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
        let (name, spec) = match s.split_once('@') {
            None => (s, Spec::Latest),
            Some((n, v)) => {
                let spec = match semver::Version::parse(v) {
                    Ok(v) => Spec::Exact(v),
                    Err(_) => Spec::Req(semver::VersionReq::parse(v).with_context(|| {
                        format!("`{s}`: `{v}` is neither a version nor a SemVer requirement")
                    })?),
                };
                (n, spec)
            }
        };
        let name = PackageName::parse(name).map_err(|e| anyhow::anyhow!("`{s}`: {e}"))?;
        Ok(Request { name, spec })
    }

    /// The version of the index this request selects.
    pub fn resolve(&self, snap: &Snapshot) -> Result<PackageRecord> {
        let versions = snap.versions(&self.name)?;
        if versions.is_empty() {
            bail!(
                "no package `{}` in the index (serial {}); try `dist search`",
                self.name,
                snap.serial
            );
        }
        let pick = match &self.spec {
            Spec::Latest => versions.iter().rev().find(|r| r.version.pre.is_empty()),
            Spec::Exact(v) => versions
                .iter()
                .rev()
                .find(|r| r.version.cmp_precedence(v).is_eq()),
            Spec::Req(req) => versions.iter().rev().find(|r| req.matches(&r.version)),
        };
        let all: Vec<String> = versions.iter().map(|r| r.version.to_string()).collect();
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

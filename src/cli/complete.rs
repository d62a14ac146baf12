//! What the shell completes from the state on disk: the scripts `dist completions` prints ask
//! `dist` itself at every TAB (clap_complete's dynamic completion), and these say what fits an
//! argument: package names of the synced index and of the installed set, versions after
//! `NAME@`, generation numbers, a repository's `NAME@VERSION`s. They only read, take no lock,
//! and complete nothing when something cannot be read. The root is the command line's
//! `--root`, else `DIST_ROOT`, else the default, as for the command itself.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap_complete::engine::{
    ArgValueCandidates, ArgValueCompleter, CompletionCandidate, PathCompleter, ValueCompleter,
};
use dist::client::config::{config_path, ClientConfig};
use dist::client::generation::Installed;
use dist::client::sources::Sources;
use dist::client::Layout;
use dist::format::ids::PackageName;

/// The root the command line being completed names.
fn root() -> Option<PathBuf> {
    let args: Vec<OsString> = std::env::args_os().collect();
    for (i, a) in args.iter().enumerate() {
        if a == "--root" {
            return args.get(i + 1).map(PathBuf::from);
        }
        if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--root=")) {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("DIST_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| crate::cli::default_root().ok())
}

fn layout() -> Option<Layout> {
    root().map(|r| Layout::new(&r))
}

fn installed() -> BTreeMap<PackageName, Installed> {
    layout()
        .and_then(|l| l.current().ok().flatten())
        .map(|g| g.packages)
        .unwrap_or_default()
}

fn sources(l: &Layout) -> Option<Sources> {
    let settings = ClientConfig::load(&l.root)
        .and_then(|c| c.resolve(&config_path(&l.root)))
        .ok()?;
    Sources::open(l, &settings).ok()
}

/// Installed packages, each with its version as help.
pub fn installed_names() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        installed()
            .into_values()
            .map(|p| {
                CompletionCandidate::new(p.name.as_str()).help(Some(p.version.to_string().into()))
            })
            .collect::<Vec<_>>()
    })
}

/// Package names of the synced index and the installed set; after `NAME@`, the index's
/// versions of NAME; a path (`./x.tar`, `/…`, `~…`) completes as a file.
pub fn packages() -> ArgValueCompleter {
    ArgValueCompleter::new(Packages)
}

struct Packages;

impl ValueCompleter for Packages {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        let Some(text) = current.to_str() else {
            return Vec::new();
        };
        if text.starts_with(['.', '/', '~']) {
            return PathCompleter::any().complete(current);
        }
        let Some(l) = layout() else {
            return Vec::new();
        };
        let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
        if let Some((name, _)) = text.split_once('@') {
            let versions = PackageName::parse(name)
                .ok()
                .zip(sources(&l))
                .and_then(|(n, s)| s.versions(&n, None).ok())
                .unwrap_or_default();
            for c in versions {
                out.insert(format!("{name}@{}", c.record.version), None);
            }
        } else {
            if let Some(s) = sources(&l) {
                let names = s.each(|snap| snap.names()).unwrap_or_default();
                for (n, _) in names {
                    out.insert(n, None);
                }
            }
            for p in installed().into_values() {
                out.insert(p.name.to_string(), Some(format!("installed {}", p.version)));
            }
        }
        out.into_iter()
            .filter(|(v, _)| v.starts_with(text))
            .map(|(v, help)| CompletionCandidate::new(v).help(help.map(Into::into)))
            .collect()
    }
}

/// Generation numbers, each with its packages as help.
pub fn generations() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let gens = layout()
            .and_then(|l| l.generations().ok())
            .unwrap_or_default();
        gens.into_iter()
            .rev()
            .map(|g| {
                CompletionCandidate::new(g.number.to_string())
                    .help(Some(g.labels().join(" ").into()))
            })
            .collect::<Vec<_>>()
    })
}

/// `NAME@VERSION` of every version in the repository at the root (for `yank`, `phase`).
pub fn repo_versions() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let records = root()
            .and_then(|r| dist::repo::Repo::new(&r).records().ok())
            .unwrap_or_default();
        records
            .iter()
            .map(|r| CompletionCandidate::new(r.id().to_string()))
            .collect::<Vec<_>>()
    })
}

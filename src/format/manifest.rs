//! The package manifest (`manifest.yaml`): parsing, the name rule and SemVer validation.
//! Every error names the file and the field (and the YAML line where the parser gives one).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::format::ids::{IdError, PackageName};
use crate::format::relations::{RelationError, Relations};

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: PackageName,
    /// The version string exactly as written in the manifest.
    pub version_str: String,
    pub version: semver::Version,
    pub description: Option<String>,
    /// `depends` and `conflicts` (both optional).
    pub relations: Relations,
    /// `config`: configuration files, as paths under `assets/` (`/`-separated, relative, no
    /// `.` or `..` component), copied to `ROOT/etc/<name>/<path>` on first install and the
    /// user's from then on (store-format.md §1).
    pub config: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: missing (a package needs manifest.yaml, assets/, scripts/install.sh and scripts/uninstall.sh)")]
    Missing { path: PathBuf },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}: field `name`: {reason}")]
    Name { path: PathBuf, reason: String },
    #[error("{path}: field `version`: `{value}` is not a SemVer 2.0 version: {reason}")]
    Version {
        path: PathBuf,
        value: String,
        reason: String,
    },
    #[error("{path}: field `description`: {reason}")]
    Description { path: PathBuf, reason: String },
    #[error("{path}: {error}")]
    Relation { path: PathBuf, error: RelationError },
    #[error("{path}: field `config`: {reason}")]
    Config { path: PathBuf, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    #[serde(default)]
    description: Option<String>,
    /// A mapping of package name to SemVer requirement.
    #[serde(default)]
    depends: Option<serde_yaml::Value>,
    /// A list of package names.
    #[serde(default)]
    conflicts: Option<serde_yaml::Value>,
    /// A list of paths under `assets/`.
    #[serde(default)]
    config: Option<Vec<String>>,
}

/// Why `path` (an entry of `config`) is not a relative path under `assets/`, or `None`.
pub fn config_path_problem(path: &str) -> Option<String> {
    let shown = path.escape_default();
    if path.is_empty() {
        return Some("an empty path".into());
    }
    if path.starts_with('/') {
        return Some(format!(
            "`{shown}` is absolute; give a path under assets/, e.g. `etc/app.conf`"
        ));
    }
    if path.len() > 1024 || path.chars().any(|c| c.is_control() || c == '\\') {
        return Some(format!(
            "`{shown}` is too long or contains control characters or `\\`"
        ));
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some(format!(
            "`{shown}` has an empty, `.` or `..` component; give a plain path under assets/"
        ));
    }
    None
}

/// The raw `depends` and `conflicts` entries, or what is wrong with their shape.
#[allow(clippy::type_complexity)]
fn raw_relations(
    depends: Option<&serde_yaml::Value>,
    conflicts: Option<&serde_yaml::Value>,
) -> Result<(Vec<(String, String)>, Vec<String>), RelationError> {
    use serde_yaml::Value;
    let shape = |field: &'static str, reason: &str| RelationError {
        field,
        entry: "the value".into(),
        reason: reason.into(),
    };
    let mut deps = Vec::new();
    match depends {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let (Value::String(k), Value::String(v)) = (k, v) else {
                    return Err(RelationError {
                        field: "depends",
                        entry: format!("`{}`", yaml_text(k)),
                        reason: format!(
                            "the requirement `{}` must be a quoted string, e.g. `{}: \"^1.2\"`",
                            yaml_text(v),
                            yaml_text(k)
                        ),
                    });
                };
                deps.push((k.clone(), v.clone()));
            }
        }
        Some(_) => {
            return Err(shape(
                "depends",
                "must be a mapping of package name to SemVer requirement, e.g. `depends: {libfoo: \"^1.2\"}`",
            ))
        }
    }
    let mut confl = Vec::new();
    match conflicts {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(s)) => {
            for v in s {
                let Value::String(n) = v else {
                    return Err(RelationError {
                        field: "conflicts",
                        entry: format!("`{}`", yaml_text(v)),
                        reason: "a package name must be a string".into(),
                    });
                };
                confl.push(n.clone());
            }
        }
        Some(_) => {
            return Err(shape(
                "conflicts",
                "must be a list of package names, e.g. `conflicts: [old-tool]`",
            ))
        }
    }
    Ok((deps, confl))
}

/// A YAML value as a short text for messages.
fn yaml_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.escape_default().to_string(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .escape_default()
            .to_string(),
    }
}

impl Manifest {
    /// Reads and validates `dir/manifest.yaml`.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join("manifest.yaml");
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ManifestError::Missing { path: path.clone() }
            } else {
                ManifestError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        Manifest::parse(&path, &text)
    }

    /// Parses manifest text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = serde_yaml::from_str(text).map_err(|e| ManifestError::Yaml {
            path: path.to_path_buf(),
            message: describe_yaml_error(&e),
        })?;
        let name = PackageName::parse(&raw.name).map_err(|e| ManifestError::Name {
            path: path.to_path_buf(),
            reason: match e {
                IdError::Name(reason) => reason,
                other => other.to_string(),
            },
        })?;
        let version = semver::Version::parse(&raw.version).map_err(|e| ManifestError::Version {
            path: path.to_path_buf(),
            value: raw.version.clone(),
            reason: e.to_string(),
        })?;
        if let Some(d) = &raw.description {
            if d.len() > 4096 {
                return Err(ManifestError::Description {
                    path: path.to_path_buf(),
                    reason: "longer than 4096 bytes".into(),
                });
            }
            // ESC, BEL and friends would reach every terminal that lists the package.
            if let Some(c) = d.chars().find(|c| c.is_control()) {
                return Err(ManifestError::Description {
                    path: path.to_path_buf(),
                    reason: format!(
                        "contains the control character U+{:04X}; a description is one line of printable text",
                        c as u32
                    ),
                });
            }
        }
        let relation = |error| ManifestError::Relation {
            path: path.to_path_buf(),
            error,
        };
        let (depends, conflicts) =
            raw_relations(raw.depends.as_ref(), raw.conflicts.as_ref()).map_err(relation)?;
        let relations = Relations::parse(&name, &depends, &conflicts).map_err(relation)?;
        let config = raw.config.unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for c in &config {
            let reason = config_path_problem(c).or_else(|| {
                (!seen.insert(c.as_str()))
                    .then(|| format!("`{}` is named twice", c.escape_default()))
            });
            if let Some(reason) = reason {
                return Err(ManifestError::Config {
                    path: path.to_path_buf(),
                    reason,
                });
            }
        }
        Ok(Manifest {
            config,
            name,
            version_str: raw.version,
            version,
            description: raw.description,
            relations,
        })
    }

    /// `name-version`, the stem of the torrent's file name.
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.version_str)
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version_str)
    }
}

fn describe_yaml_error(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    // serde's messages say "missing field `x`" / "unknown field `x`" / "invalid type ..."; they
    // already carry "at line L column C" when the parser knows it.
    if msg.contains("missing field") || msg.contains("unknown field") {
        msg
    } else {
        format!("invalid manifest: {msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("pkg/manifest.yaml"), text)
    }

    #[test]
    fn seed_example_is_valid() {
        let m = parse("name: The-Package-Name\nversion: 1.2.3\n").unwrap();
        assert_eq!(m.name, "The-Package-Name");
        assert_eq!(m.version, semver::Version::new(1, 2, 3));
    }

    #[test]
    fn prerelease_and_build_metadata_are_kept_verbatim() {
        let m = parse("name: a\nversion: 2.0.0-rc.1+build.5\ndescription: x\n").unwrap();
        assert_eq!(m.version_str, "2.0.0-rc.1+build.5");
        assert_eq!(m.description.as_deref(), Some("x"));
    }

    #[test]
    fn depends_and_conflicts_are_parsed() {
        let m = parse(
            "name: app\nversion: 1.0.0\ndepends:\n  libfoo: \"^1.2\"\n  tool: \">=2, <4\"\nconflicts: [old-app]\n",
        )
        .unwrap();
        assert_eq!(m.relations.depends.len(), 2);
        assert_eq!(
            m.relations.depends_text().unwrap(),
            r#"{"libfoo":"^1.2","tool":">=2, <4"}"#
        );
        assert_eq!(m.relations.conflicts_text().unwrap(), r#"["old-app"]"#);
        assert!(parse("name: a\nversion: 1.0.0\n")
            .unwrap()
            .relations
            .is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("version: 1.0.0\n", "missing field `name`"),
            (
                "name: a\nversion: 1.0.0\nlicense: x\n",
                "unknown field `license`",
            ),
            ("name: a\nversion: '1.2'\n", "field `version`"),
            ("name: a/b\nversion: 1.0.0\n", "field `name`"),
            ("name: bin\nversion: 1.0.0\n", "reserved"),
            ("name: -a\nversion: 1.0.0\n", "must start"),
            ("name: a@b\nversion: 1.0.0\n", "`@`"),
            ("name: 'a b'\nversion: 1.0.0\n", "whitespace"),
            ("name: [a]\nversion: 1.0.0\n", "line 1"),
            (
                "name: a\nversion: 1.0.0\ndepends: {b: '^x'}\n",
                "field `depends`: `b: ^x`: not a SemVer requirement",
            ),
            (
                "name: a\nversion: 1.0.0\ndepends: {b: 1}\n",
                "must be a quoted string",
            ),
            (
                "name: a\nversion: 1.0.0\ndepends: [b]\n",
                "must be a mapping",
            ),
            ("name: a\nversion: 1.0.0\nconflicts: b\n", "must be a list"),
            (
                "name: a\nversion: 1.0.0\nconfig: [/etc/x]\n",
                "field `config`: `/etc/x` is absolute",
            ),
            (
                "name: a\nversion: 1.0.0\nconfig: [../x]\n",
                "field `config`: `../x`",
            ),
            ("name: a\nversion: 1.0.0\nconfig: [a, a]\n", "named twice"),
            ("name: a\nversion: 1.0.0\nconfig: a\n", "config"),
            (
                "name: a\nversion: 1.0.0\nconflicts: [a]\n",
                "conflict with itself",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.starts_with("pkg/manifest.yaml"), "{err}");
        }
        let long = format!("name: {}\nversion: 1.0.0\n", "a".repeat(65));
        assert!(parse(&long)
            .unwrap_err()
            .to_string()
            .contains("longer than"));
    }
}

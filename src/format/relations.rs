//! A package's relations to others (issue 12): `depends` (name → SemVer requirement) and
//! `conflicts` (names it cannot be installed with). Parsed once, from the manifest or from an
//! index row, into typed values; written into the index as canonical JSON text.

use std::collections::{BTreeMap, BTreeSet};

use crate::format::ids::PackageName;

/// What a package needs from others and what it cannot be installed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relations {
    pub depends: BTreeMap<PackageName, semver::VersionReq>,
    pub conflicts: BTreeSet<PackageName>,
}

/// Why a relation is malformed: the entry (`key`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationError {
    pub field: &'static str,
    pub entry: String,
    pub reason: String,
}

impl std::fmt::Display for RelationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "field `{}`: {}: {}", self.field, self.entry, self.reason)
    }
}

impl Relations {
    pub fn is_empty(&self) -> bool {
        self.depends.is_empty() && self.conflicts.is_empty()
    }

    /// From the manifest's (or a row's) raw entries; `owner` is the package itself, which can
    /// neither depend on nor conflict with itself.
    pub fn parse(
        owner: &PackageName,
        depends: &[(String, String)],
        conflicts: &[String],
    ) -> Result<Relations, RelationError> {
        let mut out = Relations::default();
        for (name, req) in depends {
            let err = |reason: String| RelationError {
                field: "depends",
                entry: format!("`{}: {}`", name.escape_default(), req.escape_default()),
                reason,
            };
            let n = PackageName::parse(name).map_err(|e| err(e.to_string()))?;
            if n == *owner {
                return Err(err("a package cannot depend on itself".into()));
            }
            let r = semver::VersionReq::parse(req).map_err(|e| {
                err(format!(
                    "not a SemVer requirement ({e}); e.g. \"^1.2\", \">=2, <4\", \"=1.0.0\" or \"*\""
                ))
            })?;
            if out.depends.insert(n, r).is_some() {
                return Err(err("named twice".into()));
            }
        }
        for name in conflicts {
            let err = |reason: String| RelationError {
                field: "conflicts",
                entry: format!("`{}`", name.escape_default()),
                reason,
            };
            let n = PackageName::parse(name).map_err(|e| err(e.to_string()))?;
            if n == *owner {
                return Err(err("a package cannot conflict with itself".into()));
            }
            if out.depends.contains_key(&n) {
                return Err(err("it is also in `depends`".into()));
            }
            if !out.conflicts.insert(n) {
                return Err(err("named twice".into()));
            }
        }
        Ok(out)
    }

    /// `depends` as the index stores it: a JSON object, keys sorted; `None` when empty.
    pub fn depends_text(&self) -> Option<String> {
        (!self.depends.is_empty()).then(|| {
            let m: serde_json::Map<String, serde_json::Value> = self
                .depends
                .iter()
                .map(|(n, r)| (n.to_string(), serde_json::Value::String(r.to_string())))
                .collect();
            serde_json::Value::Object(m).to_string()
        })
    }

    /// `conflicts` as the index stores it: a JSON array, sorted; `None` when empty.
    pub fn conflicts_text(&self) -> Option<String> {
        (!self.conflicts.is_empty()).then(|| {
            serde_json::Value::Array(
                self.conflicts
                    .iter()
                    .map(|n| serde_json::Value::String(n.to_string()))
                    .collect(),
            )
            .to_string()
        })
    }

    /// Back from the index's text (a signed index can still be hostile: every entry is
    /// checked as a manifest's is).
    pub fn from_text(
        owner: &PackageName,
        depends: Option<&str>,
        conflicts: Option<&str>,
    ) -> Result<Relations, RelationError> {
        let bad = |field: &'static str, reason: &str| RelationError {
            field,
            entry: "the column".into(),
            reason: reason.into(),
        };
        let depends: Vec<(String, String)> = match depends {
            None => Vec::new(),
            Some(t) => match serde_json::from_str::<serde_json::Value>(t) {
                Ok(serde_json::Value::Object(m)) => m
                    .into_iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => Ok((k, s)),
                        _ => Err(bad("depends", "a requirement is not a string")),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(bad("depends", "not a JSON object")),
            },
        };
        let conflicts: Vec<String> = match conflicts {
            None => Vec::new(),
            Some(t) => match serde_json::from_str::<serde_json::Value>(t) {
                Ok(serde_json::Value::Array(a)) => a
                    .into_iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => Ok(s),
                        _ => Err(bad("conflicts", "a name is not a string")),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(bad("conflicts", "not a JSON array")),
            },
        };
        Relations::parse(owner, &depends, &conflicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> PackageName {
        PackageName::parse(s).unwrap()
    }

    fn deps(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn relations_round_trip_through_the_index_text() {
        let r = Relations::parse(
            &name("app"),
            &deps(&[("libfoo", "^1.2"), ("tool", ">=2, <4")]),
            &["old-app".into()],
        )
        .unwrap();
        let d = r.depends_text().unwrap();
        assert_eq!(d, r#"{"libfoo":"^1.2","tool":">=2, <4"}"#);
        let c = r.conflicts_text().unwrap();
        assert_eq!(c, r#"["old-app"]"#);
        let back = Relations::from_text(&name("app"), Some(&d), Some(&c)).unwrap();
        assert_eq!(back, r);
        let none = Relations::parse(&name("app"), &[], &[]).unwrap();
        assert_eq!((none.depends_text(), none.conflicts_text()), (None, None));
    }

    #[test]
    fn malformed_relations_name_the_field_and_entry() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
        let cases: [Case; 6] = [
            (
                &[("libfoo", "^x")],
                &[],
                "field `depends`: `libfoo: ^x`: not a SemVer",
            ),
            (&[("a/b", "^1")], &[], "field `depends`: `a/b: ^1`"),
            (&[("app", "^1")], &[], "cannot depend on itself"),
            (&[], &["app"], "cannot conflict with itself"),
            (&[("x", "^1")], &["x"], "also in `depends`"),
            (&[], &["y", "y"], "named twice"),
        ];
        for (d, c, want) in cases {
            let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            let e = Relations::parse(&name("app"), &deps(d), &c)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{d:?} {c:?}: {e}");
        }
        for (d, c) in [
            (Some("[1]"), None),
            (Some(r#"{"a": 1}"#), None),
            (None, Some("{}")),
            (None, Some("[1]")),
        ] {
            assert!(
                Relations::from_text(&name("app"), d, c).is_err(),
                "{d:?} {c:?}"
            );
        }
    }
}

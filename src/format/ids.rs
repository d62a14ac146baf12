//! Identifiers, parsed once where they enter (a manifest, a snapshot row, a `.torrent`, the
//! command line) and typed from then on, so no code slices a `String` or joins an unchecked field
//! into a path: [`ObjectId`] (BLAKE3 of an archive), [`InfoHash`] (SHA-1 of a torrent's info
//! dict), [`PackageName`] and [`PackageId`] (`name@version`).
//!
//! Digests print as lowercase hex, names as written: exactly what the index, the JSON output and
//! the store paths have always held.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not an identifier of the kind asked for; the caller adds which package and
/// field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("`{value}` is not {what} ({digits} hex digits expected)")]
    Hex {
        what: &'static str,
        digits: usize,
        value: String,
    },
    #[error("invalid package name: {0}")]
    Name(String),
    #[error("`{value}` is not a SemVer 2.0 version: {reason}")]
    Version { value: String, reason: String },
}

fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], IdError> {
    let err = || IdError::Hex {
        what,
        digits: 2 * N,
        value: shorten(s),
    };
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err());
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
    Ok(out)
}

/// A hostile value can be long or hold control characters: show a bounded, escaped prefix.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_default).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

macro_rules! digest_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            pub fn from_bytes(bytes: [u8; $len]) -> $name {
                $name(bytes)
            }
            /// Parses hex digits (either case); anything else is an error naming the value.
            pub fn parse(s: &str) -> Result<$name, IdError> {
                parse_hex::<$len>($what, s).map($name)
            }
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
            /// Lowercase hex, as stored and printed.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<$name, IdError> {
                $name::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_id!(
    /// The BLAKE3 digest of an object (a canonical archive): its name in `objects/`.
    ObjectId,
    32,
    "a BLAKE3 digest"
);

digest_id!(
    /// The BLAKE3 digest of anything else the signed index names: a published file (snapshot,
    /// delta) or the index's canonical content (store-format.md §5.2). One type, parsed once
    /// where a manifest is read, compared as bytes.
    Digest,
    32,
    "a BLAKE3 digest"
);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }
}

impl From<blake3::Hash> for Digest {
    fn from(h: blake3::Hash) -> Digest {
        Digest(*h.as_bytes())
    }
}

digest_id!(
    /// The SHA-1 of a torrent's bencoded info dict (BitTorrent v1).
    InfoHash,
    20,
    "an infohash"
);

impl ObjectId {
    /// Where the object lives below an `objects/` directory: `ab/cdef…` (store-format.md §4).
    pub fn rel_path(&self) -> String {
        let hex = self.to_hex();
        format!("{}/{}", &hex[..2], &hex[2..])
    }

    /// The first `n` hex digits (n ≤ 64), for store path names and temporaries.
    pub fn prefix(&self, n: usize) -> String {
        let mut hex = self.to_hex();
        hex.truncate(n);
        hex
    }
}

/// A package name that passed the name rule (store-format.md, "Package names"): safe as one
/// path component and in a magnet's `dn`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageName(String);

impl PackageName {
    pub fn parse(s: &str) -> Result<PackageName, IdError> {
        match name_problem(s) {
            Some(p) => Err(IdError::Name(p)),
            None => Ok(PackageName(s.to_string())),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::ops::Deref for PackageName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PackageName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A valid name is one safe path component.
impl AsRef<std::path::Path> for PackageName {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

impl AsRef<std::ffi::OsStr> for PackageName {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl std::borrow::Borrow<str> for PackageName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for PackageName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for PackageName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl FromStr for PackageName {
    type Err = IdError;
    fn from_str(s: &str) -> Result<PackageName, IdError> {
        PackageName::parse(s)
    }
}

impl Serialize for PackageName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PackageName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PackageName, D::Error> {
        let s = String::deserialize(d)?;
        PackageName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses a SemVer 2.0 version, naming the value on failure.
pub fn parse_version(s: &str) -> Result<semver::Version, IdError> {
    semver::Version::parse(s).map_err(|e| IdError::Version {
        value: shorten(s),
        reason: e.to_string(),
    })
}

/// One version of one package, printed `name@version` everywhere a message names it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PackageId {
    pub name: PackageName,
    pub version: semver::Version,
}

impl PackageId {
    pub fn new(name: PackageName, version: semver::Version) -> PackageId {
        PackageId { name, version }
    }
}

impl fmt::Display for PackageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl fmt::Debug for PackageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Longest package name accepted (store-format.md, "Package names").
pub const MAX_NAME_LEN: usize = 64;

/// Why `name` is not a valid package name, or `None` when it is.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!("`{name}` is longer than {MAX_NAME_LEN} bytes"));
    }
    if name == "bin" {
        return Some("`bin` is reserved for the profile's executables directory".into());
    }
    let first = name.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return Some(format!(
            "`{name}` must start with an ASCII letter or digit (not `.`, `-`, `_` or `+`)"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+')))
    {
        let what = match c {
            '/' => "`/`".to_string(),
            '@' => "`@` (it separates name and version on the command line)".to_string(),
            c if c.is_whitespace() => "whitespace".to_string(),
            c => format!("`{}`", c.escape_default()),
        };
        return Some(format!(
            "`{}` contains {what}; allowed are ASCII letters, digits, `.`, `-`, `_` and `+`",
            name.escape_default()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const B3: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    #[test]
    fn object_ids_round_trip_as_lowercase_hex() {
        let id = ObjectId::parse(&B3.to_ascii_uppercase()).unwrap();
        assert_eq!(id.to_string(), B3);
        assert_eq!(id.rel_path(), format!("af/{}", &B3[2..]));
        assert_eq!(id.prefix(32), &B3[..32]);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{B3}\""));
        let back: ObjectId = serde_json::from_str(&format!("\"{B3}\"")).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn malformed_digests_are_errors_naming_the_value() {
        for bad in [
            "",
            "abc",
            &B3[..63],
            &format!("{B3}0"),
            "/etc/passwd",
            "../../x",
        ] {
            let e = ObjectId::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("BLAKE3 digest") && e.contains("64 hex digits"),
                "{e}"
            );
        }
        let e = InfoHash::parse(&"g".repeat(40)).unwrap_err().to_string();
        assert!(e.contains("infohash") && e.contains("40 hex digits"), "{e}");
        assert!(InfoHash::parse(&"A".repeat(40)).is_ok());
        // A multi-byte character must not split a slice anywhere.
        assert!(InfoHash::parse(&"é".repeat(20)).is_err());
        assert!(serde_json::from_str::<InfoHash>("\"../x\"").is_err());
    }

    #[test]
    fn hostile_values_are_shown_bounded_and_escaped() {
        let long = format!("\n{}", "a".repeat(500));
        let e = ObjectId::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 200 && e.contains("\\n") && e.contains('…'), "{e}");
    }

    #[test]
    fn names_follow_the_name_rule_and_ids_print_name_at_version() {
        assert!(PackageName::parse("../x").is_err());
        assert!(PackageName::parse("").is_err());
        let id = PackageId::new(
            PackageName::parse("hello").unwrap(),
            parse_version("1.2.3-rc.1+b").unwrap(),
        );
        assert_eq!(id.to_string(), "hello@1.2.3-rc.1+b");
        assert!(parse_version("1.0")
            .unwrap_err()
            .to_string()
            .contains("`1.0`"));
    }
}

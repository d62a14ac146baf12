//! The release status of a published version (index format 5, issue 22): withdrawn (`yanked`,
//! with the publisher's reason; the object stays) and rolled out in phases (`phase`, the
//! percentage of machines that take it). Both are columns of the version's row, changed by
//! `dist yank`, `unyank` and `phase` (and set by `add --phase`); each change is a new signed
//! serial whose delta carries the row. The values are parsed once, here: from the command line
//! (the publisher's stricter rule) or from an index row, which may be hostile.

use std::fmt;

/// The longest reason a yank may give, in bytes.
pub const MAX_REASON: usize = 1024;

/// Why a version was withdrawn: 1 to [`MAX_REASON`] bytes of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YankReason(String);

impl YankReason {
    /// A reason given on the command line: not blank, at most [`MAX_REASON`] bytes, no
    /// control character (a reason is one line of text, shown in terminals and pages).
    pub fn parse(s: &str) -> Result<YankReason, String> {
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(format!(
                "a yank reason is one line of text without control characters (it has {})",
                c.escape_default()
            ));
        }
        if s.trim().is_empty() {
            return Err("a yank reason cannot be empty: say why the version is withdrawn".into());
        }
        YankReason::from_index(s)
    }

    /// A reason as an index row holds it: 1 to [`MAX_REASON`] bytes. Control characters a
    /// hostile index may hold are kept here and escaped wherever the text is shown.
    pub fn from_index(s: &str) -> Result<YankReason, String> {
        if s.is_empty() {
            return Err("an empty reason (NULL means not yanked)".into());
        }
        if s.len() > MAX_REASON {
            return Err(format!(
                "a reason of {} bytes (at most {MAX_REASON})",
                s.len()
            ));
        }
        Ok(YankReason(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The share of machines a phased version reaches: 0 to 100 percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Phase(u8);

impl Phase {
    pub fn new(percent: i64) -> Result<Phase, String> {
        match u8::try_from(percent) {
            Ok(p) if p <= 100 => Ok(Phase(p)),
            _ => Err(format!("{percent} is not a percentage from 0 to 100")),
        }
    }

    /// `20` or `20%`.
    pub fn parse(s: &str) -> Result<Phase, String> {
        let digits = s.trim().trim_end_matches('%').trim_end();
        match digits.parse::<i64>() {
            Ok(n) if !digits.starts_with(['+', '-']) => Phase::new(n),
            _ => Err(format!(
                "`{}` is not a percentage from 0 to 100",
                s.escape_default()
            )),
        }
    }

    pub fn percent(self) -> u8 {
        self.0
    }

    /// Whether a machine whose bucket (0 to 99) for the version is `bucket` takes it.
    pub fn admits(self, bucket: u8) -> bool {
        bucket < self.0
    }
}

/// `20 %`, as `upgrade` says "deferred by phased rollout (20 %)".
impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_bounded_line_and_phases_percentages() {
        assert_eq!(
            YankReason::parse("CVE-2025-1").unwrap().as_str(),
            "CVE-2025-1"
        );
        for bad in ["", "  ", "a\nb", "esc\x1b[2J", &"x".repeat(MAX_REASON + 1)] {
            assert!(YankReason::parse(bad).is_err(), "{bad:?}");
        }
        // An index may hold control characters (escaped when shown), never too much.
        assert!(YankReason::from_index("a\x1bb").is_ok());
        assert!(YankReason::from_index("").is_err());
        assert!(YankReason::from_index(&"x".repeat(MAX_REASON + 1)).is_err());
        assert_eq!(Phase::parse("20").unwrap().percent(), 20);
        assert_eq!(Phase::parse("5%").unwrap().percent(), 5);
        assert_eq!(Phase::parse("100").unwrap().to_string(), "100 %");
        for bad in ["101", "-1", "+5", "x", "", "2.5", "1e2"] {
            assert!(Phase::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Phase::new(-1).is_err() && Phase::new(256).is_err());
        let p = Phase::new(20).unwrap();
        assert!(p.admits(19) && !p.admits(20));
        assert!(!Phase::new(0).unwrap().admits(0));
        assert!(Phase::new(100).unwrap().admits(99));
    }
}

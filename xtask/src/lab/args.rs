//! The command line of a bench or campaign: flags that take a value (`--runs N`), switches
//! (`--check`) and positionals (`N`), as its [`Usage`] declares them, then read back typed
//! (`value_or("--runs", 3)`). Every error names the flag or argument and ends with the usage
//! line; a flag given twice takes its last value.

use std::fmt::Display;
use std::str::FromStr;

use anyhow::{anyhow, Error, Result};

/// What one command accepts, and its usage line as README documents it.
pub(crate) struct Usage {
    /// `usage: cargo xtask ...`.
    pub line: &'static str,
    /// Flags followed by a value.
    pub values: &'static [&'static str],
    /// Flags that stand alone.
    pub switches: &'static [&'static str],
    /// How many positionals at most.
    pub positionals: usize,
}

/// The arguments of one command, checked against its [`Usage`].
pub(crate) struct Args<'a> {
    line: &'static str,
    values: Vec<(&'static str, &'a str)>,
    switches: Vec<&'static str>,
    positionals: Vec<&'a str>,
}

impl Usage {
    pub fn parse<'a>(&self, args: &[&'a str]) -> Result<Args<'a>> {
        let mut out = Args {
            line: self.line,
            values: Vec::new(),
            switches: Vec::new(),
            positionals: Vec::new(),
        };
        let mut it = args.iter().copied();
        while let Some(arg) = it.next() {
            if let Some(flag) = self.values.iter().copied().find(|f| *f == arg) {
                let value = it
                    .next()
                    .ok_or_else(|| self.error(format!("{flag} needs a value")))?;
                out.values.push((flag, value));
            } else if let Some(flag) = self.switches.iter().copied().find(|f| *f == arg) {
                out.switches.push(flag);
            } else if arg.starts_with("--") {
                return Err(self.error(format!("unknown option `{arg}`")));
            } else if out.positionals.len() < self.positionals {
                out.positionals.push(arg);
            } else {
                return Err(self.error(format!("unexpected argument `{arg}`")));
            }
        }
        Ok(out)
    }

    /// `what`, then the usage line.
    pub fn error(&self, what: impl Display) -> Error {
        anyhow!("{what}\n{}", self.line)
    }
}

impl<'a> Args<'a> {
    /// The value of `flag`, parsed; `None` when it was not given.
    pub fn value<T: FromStr>(&self, flag: &str) -> Result<Option<T>>
    where
        T::Err: Display,
    {
        self.value_with(flag, str::parse::<T>)
    }

    /// The value of `flag`, parsed, or `default`.
    pub fn value_or<T: FromStr>(&self, flag: &str, default: T) -> Result<T>
    where
        T::Err: Display,
    {
        Ok(self.value(flag)?.unwrap_or(default))
    }

    /// The value of `flag` read by `parse` (a list, a unit); `None` when it was not given.
    pub fn value_with<T, E: Display>(
        &self,
        flag: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>> {
        let Some((_, v)) = self.values.iter().rev().find(|(f, _)| *f == flag) else {
            return Ok(None);
        };
        parse(v)
            .map(Some)
            .map_err(|e| self.error(format!("{flag} `{v}`: {e}")))
    }

    pub fn switch(&self, flag: &str) -> bool {
        self.switches.contains(&flag)
    }

    /// Positional `i` (called `name` in errors), parsed; `None` when it was not given.
    pub fn positional<T: FromStr>(&self, i: usize, name: &str) -> Result<Option<T>>
    where
        T::Err: Display,
    {
        let Some(v) = self.positionals.get(i) else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|e| self.error(format!("{name} `{v}`: {e}")))
    }

    pub fn positionals(&self) -> &[&'a str] {
        &self.positionals
    }

    /// `what`, then the usage line: for what a command checks after parsing.
    pub fn error(&self, what: impl Display) -> Error {
        anyhow!("{what}\n{}", self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USAGE: Usage = Usage {
        line: "usage: cargo xtask bench x [N] [--runs R] [--check]",
        values: &["--runs"],
        switches: &["--check"],
        positionals: 1,
    };

    #[test]
    fn flags_switches_and_positionals_typed() {
        let a = USAGE
            .parse(&["7", "--runs", "3", "--check", "--runs", "4"])
            .unwrap();
        assert_eq!(a.positional::<usize>(0, "N").unwrap(), Some(7));
        assert_eq!(a.value_or("--runs", 9usize).unwrap(), 4);
        assert!(a.switch("--check"));
        let none = USAGE.parse(&[]).unwrap();
        assert_eq!(none.value_or("--runs", 9usize).unwrap(), 9);
        assert!(!none.switch("--check"));
    }

    #[test]
    fn errors_name_the_flag_and_end_with_the_usage_line() {
        let err = |args: &[&str]| -> String {
            match USAGE.parse(args) {
                Ok(a) => format!("{:#}", a.value::<usize>("--runs").unwrap_err()),
                Err(e) => format!("{e:#}"),
            }
        };
        for (args, first) in [
            (
                &["--runs", "x"][..],
                "--runs `x`: invalid digit found in string",
            ),
            (&["--runs"][..], "--runs needs a value"),
            (&["--fast"][..], "unknown option `--fast`"),
            (&["1", "2"][..], "unexpected argument `2`"),
        ] {
            assert_eq!(err(args), format!("{first}\n{}", USAGE.line));
        }
    }
}

//! Editing `ROOT/client.yaml` in place (`dist config set|unset`, `dist init --force`): the
//! top-level keys named change, every other line (comments, blank lines, the other keys and
//! their order) stays as the user wrote it. The result is checked the way every command reads
//! the file before it replaces the old one, and it must parse to exactly the old configuration
//! with those keys changed (a layout the line editor does not understand is refused, never
//! rewritten differently).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_yaml::{Mapping, Value};

use super::config::{config_path, ClientConfig, ConfigError};
use super::suggest;
use crate::store::fsx;

/// One change to a top-level key: a value (YAML), or its removal.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    Set(String, Value),
    Unset(String),
}

/// What [`apply`] did to the file.
#[derive(Debug, Clone)]
pub struct Edited {
    pub path: PathBuf,
    /// The file's text differs from before (false: every key already had that value, or a
    /// removed key was absent).
    pub changed: bool,
}

/// Every key client.yaml takes, in the order of [`ClientConfig`].
pub fn keys() -> Vec<String> {
    match serde_json::to_value(ClientConfig::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// `key`, if client.yaml takes it; else a configuration error naming the close ones.
pub fn check_key(key: &str) -> Result<()> {
    let known = keys();
    if known.iter().any(|k| k == key) {
        return Ok(());
    }
    let similar = suggest::similar(key, known.iter().map(String::as_str));
    Err(ConfigError(format!(
        "`{key}` is not a client.yaml key{} (keys: {})",
        suggest::hint(&similar),
        known.join(", ")
    ))
    .into())
}

/// The value `text` stands for as `key`'s: YAML first (`false`, `12500`, `[a, b]`), else the
/// text itself as a string (`10.0` for an address, a URL); the one that `key` accepts.
pub fn parse_value(key: &str, text: &str) -> Result<Value> {
    check_key(key)?;
    let as_yaml: Option<Value> = serde_yaml::from_str(text).ok();
    let mut first_error = None;
    for v in as_yaml
        .into_iter()
        .chain(std::iter::once(Value::String(text.into())))
    {
        let mut m = Mapping::new();
        m.insert(Value::String(key.into()), v.clone());
        match serde_yaml::from_value::<ClientConfig>(Value::Mapping(m)) {
            Ok(_) if !v.is_null() => return Ok(v),
            Ok(_) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let why = first_error.map_or_else(|| "no value".to_string(), |e| e.to_string());
    Err(ConfigError(format!("`{key}`: `{text}` is not a value it takes: {why}")).into())
}

/// Applies `edits` to the client.yaml of `root` (made when absent), checks the result as
/// every command reads it, and replaces the file atomically.
pub fn apply(root: &Path, edits: &[Edit]) -> Result<Edited> {
    let path = config_path(root);
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let before = mapping(&old, &path)?;
    let (mut text, mut want) = (old.clone(), before);
    for e in edits {
        match e {
            Edit::Set(k, v) => {
                check_key(k)?;
                text = set_line(&text, k, v)?;
                want.insert(Value::String(k.clone()), v.clone());
            }
            Edit::Unset(k) => {
                check_key(k)?;
                text = unset_line(&text, k);
                want.remove(Value::String(k.clone()));
            }
        }
    }
    if mapping(&text, &path)? != want {
        return Err(ConfigError(format!(
            "cannot edit {} in place (a key it holds is not written one per line at the start of a line): edit it by hand",
            path.display()
        ))
        .into());
    }
    let parsed: ClientConfig =
        serde_yaml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    parsed.resolve(&path).map_err(ConfigError::wrap)?;
    let changed = text != old;
    if changed {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        fsx::write_atomic(&path, text.as_bytes(), 0o644)?;
    }
    Ok(Edited { path, changed })
}

/// The top-level mapping `text` holds (empty for an empty file).
fn mapping(text: &str, path: &Path) -> Result<Mapping> {
    match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err(ConfigError(format!("{}: not a mapping of keys", path.display())).into()),
        Err(e) => Err(ConfigError(format!(
            "{}: invalid client configuration: {e}",
            path.display()
        ))
        .into()),
    }
}

/// `key`'s lines: `key: value` as YAML writes it, a list or mapping indented under `key:`.
fn render(key: &str, v: &Value) -> Result<String> {
    let body = serde_yaml::to_string(v).context("cannot write the value as YAML")?;
    let body = body.trim_end_matches('\n');
    Ok(match v {
        Value::Sequence(s) if !s.is_empty() => indented(key, body),
        Value::Mapping(m) if !m.is_empty() => indented(key, body),
        _ => format!("{key}: {body}\n"),
    })
}

fn indented(key: &str, body: &str) -> String {
    let mut out = format!("{key}:\n");
    for l in body.lines() {
        out.push_str(&format!("  {l}\n"));
    }
    out
}

/// Where `key`'s block is among `lines`: its first line (`key:` at the start of a line) and
/// the line after its last (its value's indented or `- ` lines; blank lines only between them).
fn block(lines: &[&str], key: &str) -> Option<(usize, usize)> {
    let starts = |l: &str| {
        l.strip_prefix(key)
            .is_some_and(|r| r.trim_start_matches([' ', '\t']).starts_with(':'))
    };
    let first = lines.iter().position(|l| starts(l))?;
    let continues = |l: &str| l.starts_with([' ', '\t']) || l == "-" || l.starts_with("- ");
    let mut end = first + 1;
    let mut i = first + 1;
    while i < lines.len() {
        if continues(lines[i]) {
            i += 1;
            end = i;
        } else if lines[i].trim().is_empty() {
            i += 1;
        } else {
            break;
        }
    }
    Some((first, end))
}

fn split(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn join(lines: &[&str]) -> String {
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// `text` with `key` set to `v`: its block replaced where it is, else appended.
fn set_line(text: &str, key: &str, v: &Value) -> Result<String> {
    let new = render(key, v)?;
    let lines = split(text);
    let Some((first, end)) = block(&lines, key) else {
        let mut out = join(&lines);
        out.push_str(&new);
        return Ok(out);
    };
    // A comment after the value on the key's own line stays with it.
    let comment = match v {
        Value::Sequence(_) | Value::Mapping(_) => None,
        _ => trailing_comment(lines[first]),
    };
    let mut out = join(&lines[..first]);
    match comment {
        Some(c) => out.push_str(&format!("{}  {c}\n", new.trim_end_matches('\n'))),
        None => out.push_str(&new),
    }
    out.push_str(&join(&lines[end..]));
    Ok(out)
}

/// `text` without `key`'s block.
fn unset_line(text: &str, key: &str) -> String {
    let lines = split(text);
    match block(&lines, key) {
        Some((first, end)) => {
            let mut out = join(&lines[..first]);
            out.push_str(&join(&lines[end..]));
            out
        }
        None => text.to_string(),
    }
}

/// `# …` after a value on a `key: value` line (a `#` after a blank, outside quotes).
fn trailing_comment(line: &str) -> Option<&str> {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && (prev == ' ' || prev == '\t') => {
                return Some(&line[i..]);
            }
            _ => {}
        }
        prev = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# the metered laptop\nserver_url: http://10.0.0.1:7380\npublic_key: RWQro0Sb9hddJtl+T7zFRXtTj8zW8blOOFnJIEjzWci6XHN4duHmCPat\nseed: false   # metered\nserver_urls:\n- http://10.0.0.2:7380\n\n- http://10.0.0.3:7380\nupload_limit: 100\n";

    fn set(text: &str, k: &str, v: &str) -> String {
        set_line(text, k, &parse_value(k, v).unwrap()).unwrap()
    }

    #[test]
    fn a_set_keeps_comments_and_other_keys() {
        let t = set(FILE, "seed", "true");
        assert!(t.contains("seed: true  # metered\n"), "{t}");
        assert!(t.starts_with("# the metered laptop\nserver_url:"), "{t}");
        assert!(t.ends_with("upload_limit: 100\n"), "{t}");
        let t = set(FILE, "bind_address", "10.0.0.9");
        assert!(
            t.ends_with("upload_limit: 100\nbind_address: 10.0.0.9\n"),
            "{t}"
        );
    }

    #[test]
    fn a_list_is_replaced_whole_and_unset_removes_its_lines() {
        let t = set(FILE, "server_urls", "[http://10.0.0.4:7380]");
        assert!(
            t.contains("server_urls:\n  - http://10.0.0.4:7380\nupload_limit"),
            "{t}"
        );
        assert!(!t.contains("10.0.0.2"), "{t}");
        let t = unset_line(FILE, "server_urls");
        assert!(
            t.contains("seed: false   # metered\nupload_limit: 100\n"),
            "{t}"
        );
        assert_eq!(unset_line(FILE, "rpc_url"), FILE);
    }

    #[test]
    fn values_are_typed_by_their_key() {
        assert_eq!(parse_value("seed", "false").unwrap(), Value::Bool(false));
        assert_eq!(
            parse_value("bind_address", "10.0").unwrap(),
            Value::String("10.0".into())
        );
        assert_eq!(
            parse_value("upload_limit", "0").unwrap(),
            Value::Number(0.into())
        );
        assert!(parse_value("upload_limit", "fast").is_err());
        assert!(parse_value("transport", "bt").is_err());
        let e = check_key("seeed").unwrap_err().to_string();
        assert!(e.contains("did you mean `seed`"), "{e}");
    }

    #[test]
    fn a_key_that_only_starts_alike_is_another_key() {
        let t = "server_urls: [http://a:1]\nserver_url: http://b:2\n";
        let lines = split(t);
        assert_eq!(block(&lines, "server_url"), Some((1, 2)));
        assert_eq!(trailing_comment("public_key: 'a#b' # c"), Some("# c"));
    }
}

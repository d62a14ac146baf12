//! The HTTP agents of what dist fetches from servers (index, `.torrent` files, objects, tracker
//! scrapes, a mirror's upstream): through the proxy the environment names, the way curl reads
//! it (issue 23, finding 11). `http_proxy`/`HTTP_PROXY` for `http://` URLs,
//! `https_proxy`/`HTTPS_PROXY` for `https://` (tunnelled with CONNECT), `all_proxy`/`ALL_PROXY`
//! for either when the scheme's own is unset; `no_proxy`/`NO_PROXY` lists the hosts reached
//! directly (`*`, a host and its subdomains, `.domain`, `host:port`, an IPv4 address or
//! `a.b.c.d/n`). ureq reads one proxy for every scheme and no `NO_PROXY`, hence this.
//!
//! Also the reading of an answer every fetch shares: a busy server's `Retry-After`, a transport
//! failure's cause.
//!
//! Loopback RPC to the client's own transmission-daemon and the server's probes of its own
//! tracker never use a proxy: they do not come here.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A server's base URL as the client and a mirror use it: `http://` or `https://` and a host,
/// parsed as a WHATWG URL (the `url` crate, which `ureq` uses too), without a trailing `/`.
/// Parsed once where configuration is read; everything after holds this type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// `field` names the setting or flag in errors. A URL without a scheme is the common slip:
    /// the error says what to write.
    pub fn parse(field: &str, url: &str) -> Result<ServerUrl> {
        let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        else {
            if !url.contains("://") {
                bail!("`{field}`: `{url}` has no scheme: write `http://{url}`")
            }
            bail!("`{field}`: `{url}` is not an http:// or https:// URL")
        };
        if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
            bail!("`{field}`: `{url}` has no host (write http://HOST:PORT)")
        }
        match url::Url::parse(url) {
            Ok(u) if u.host().is_some() => Ok(ServerUrl(url.trim_end_matches('/').to_string())),
            Ok(_) => bail!("`{field}`: `{url}` has no host (write http://HOST:PORT)"),
            Err(e) => bail!("`{field}`: `{url}` is not a valid URL: {e}"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for ServerUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// An agent for `url`: a whole request may take `timeout`; through the environment's proxy
/// for its scheme unless `NO_PROXY` exempts its host.
pub fn agent(url: &str, timeout: Duration) -> Result<ureq::Agent> {
    with_proxy(ureq::AgentBuilder::new().timeout(timeout), url)
}

/// `builder`'s agent, through the environment's proxy for `url` as [`agent`].
pub fn with_proxy(builder: ureq::AgentBuilder, url: &str) -> Result<ureq::Agent> {
    Ok(match proxy_for(url, &|k| std::env::var(k).ok())? {
        Some(p) => builder.proxy(p),
        None => builder,
    }
    .build())
}

/// An agent whose connections and reads may each stall `stall` at most (no bound on the
/// whole request: a large download), proxied as [`agent`].
pub fn streaming_agent(url: &str, stall: Duration) -> Result<ureq::Agent> {
    let builder = ureq::AgentBuilder::new()
        .timeout_connect(stall)
        .timeout_read(stall);
    Ok(match proxy_for(url, &|k| std::env::var(k).ok())? {
        Some(p) => builder.proxy(p),
        None => builder,
    }
    .build())
}

/// What a `503`'s `Retry-After` asks for, when it says a number of seconds (the HTTP-date form
/// is not read): the one reading of a busy server's answer, for the index, clients and mirrors.
/// Each caller bounds it and decides what an answer without one means.
pub fn retry_after(resp: &ureq::Response) -> Option<Duration> {
    resp.header("Retry-After")
        .and_then(|s| s.trim().parse().ok())
        .map(Duration::from_secs)
}

/// The innermost cause of a transport failure (else ureq's message, else its kind).
pub fn transport_cause(t: &ureq::Transport) -> String {
    let mut inner = None;
    let mut src = std::error::Error::source(t);
    while let Some(s) = src {
        inner = Some(s.to_string());
        src = s.source();
    }
    inner
        .or_else(|| t.message().map(str::to_string))
        .unwrap_or_else(|| t.kind().to_string())
}

/// The first of `names` set to something, with the name.
fn first_set(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|n| {
        env(n)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (n.to_string(), v.trim().to_string()))
    })
}

/// The proxy for `url` given the environment `env`; `None` for a direct connection.
fn proxy_for(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<ureq::Proxy>> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(None);
    };
    let own: &[&str] = match scheme {
        "http" => &["http_proxy", "HTTP_PROXY"],
        "https" => &["https_proxy", "HTTPS_PROXY"],
        _ => return Ok(None),
    };
    let Some((name, value)) =
        first_set(env, own).or_else(|| first_set(env, &["all_proxy", "ALL_PROXY"]))
    else {
        return Ok(None);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = split_host_port(authority, if scheme == "https" { 443 } else { 80 });
    if let Some((_, list)) = first_set(env, &["no_proxy", "NO_PROXY"]) {
        if exempt(&list, &host, port) {
            return Ok(None);
        }
    }
    ureq::Proxy::new(&value)
        .map(Some)
        .with_context(|| format!("`{name}`: `{value}` is not a proxy URL (http://HOST:PORT)"))
}

/// `host` (lowercase, without brackets) and port of an authority, the default port when none.
fn split_host_port(authority: &str, default: u16) -> (String, u16) {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').unwrap_or((v6, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (host.to_ascii_lowercase(), port.unwrap_or(default));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => {
            (h.to_ascii_lowercase(), p.parse().unwrap_or(default))
        }
        _ => (authority.to_ascii_lowercase(), default),
    }
}

/// Whether `NO_PROXY`'s comma-separated `list` names `host:port`.
fn exempt(list: &str, host: &str, port: u16) -> bool {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let (name, want_port) = match entry.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => {
                    (h, p.parse::<u16>().ok())
                }
                _ => (entry, None),
            };
            if want_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name.trim_start_matches('.').to_ascii_lowercase();
            if let Some((net, bits)) = name.split_once('/') {
                return in_net(host, net, bits);
            }
            host == name || host.ends_with(&format!(".{name}"))
        })
}

/// Whether the IPv4 address `host` is in `net/bits`.
fn in_net(host: &str, net: &str, bits: &str) -> bool {
    let (Ok(h), Ok(n), Ok(b)) = (
        host.parse::<Ipv4Addr>(),
        net.parse::<Ipv4Addr>(),
        bits.parse::<u32>(),
    ) else {
        return false;
    };
    if b > 32 {
        return false;
    }
    let mask = u32::MAX.checked_shl(32 - b).unwrap_or(0);
    u32::from(h) & mask == u32::from(n) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn via(url: &str, vars: &[(&str, &str)]) -> Option<String> {
        proxy_for(url, &env(vars))
            .unwrap()
            .map(|p| format!("{p:?}"))
    }

    #[test]
    fn each_scheme_takes_its_own_proxy_then_all_proxy() {
        let vars = [
            ("HTTP_PROXY", "http://p1:3128"),
            ("https_proxy", "http://p2:3129"),
        ];
        assert!(via("http://repo:7380/index.json", &vars)
            .unwrap()
            .contains("p1"));
        assert!(via("https://repo/index.json", &vars)
            .unwrap()
            .contains("p2"));
        assert!(via("https://repo/", &[("ALL_PROXY", "http://p3:1")])
            .unwrap()
            .contains("p3"));
        assert!(via("http://repo/", &[("HTTPS_PROXY", "http://p2:1")]).is_none());
        assert!(via("http://repo/", &[("HTTP_PROXY", " ")]).is_none());
        assert!(via("udp://tracker:6969", &vars).is_none());
    }

    #[test]
    fn no_proxy_exempts_hosts_domains_ports_and_networks() {
        let p = ("HTTP_PROXY", "http://p:3128");
        let none = |url: &str, list: &str| via(url, &[p, ("NO_PROXY", list)]).is_none();
        assert!(none("http://repo.example.com/", "example.com"));
        assert!(none("http://repo.example.com/", ".example.com"));
        assert!(none("http://example.com/", "example.com"));
        assert!(!none("http://badexample.com/", "example.com"));
        assert!(none("http://10.1.2.3:7380/", "localhost, 10.0.0.0/8"));
        assert!(!none("http://11.1.2.3:7380/", "10.0.0.0/8"));
        assert!(none("http://repo:7380/", "repo:7380"));
        assert!(!none("http://repo:7381/", "repo:7380"));
        assert!(none("http://user:pw@repo/", "*"));
        assert!(none("http://[::1]:80/", "::1"));
    }

    #[test]
    fn a_malformed_proxy_is_named() {
        let e = proxy_for("http://r/", &env(&[("http_proxy", "ftp://x:1")])).unwrap_err();
        assert!(format!("{e:#}").contains("`http_proxy`"), "{e:#}");
    }
}

//! The catalog's pages as HTML strings: the package list with its search box and pager, one
//! package's versions and live swarm, and the 404 page. Everything that comes from the index or
//! the request goes through [`escape`] (text and attribute values alike) or, inside a URL,
//! through `percent_encode` first; nothing else is interpolated.

use std::fmt::Write;

use super::chart::{self, Series};
use super::escape::escape;
use super::live::{Live, Sample};
use crate::format::ids::PackageName;
use crate::format::torrent::percent_encode;
use crate::index::record::PackageRecord;
use crate::repo::browse::Page;

const STYLE: &str = r#"
:root { --fg:#1d232b; --muted:#5d6875; --line:#d9dee4; --bg:#f6f7f9; --accent:#0b63b6; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header { background:#16202c; color:#fff; padding:.7rem 1.5rem; display:flex; gap:1rem; align-items:baseline; }
header a { color:#fff; text-decoration:none; font-weight:700; font-size:1.15rem; }
header span { color:#aab6c3; font-size:.9rem; }
main { max-width:1100px; margin:0 auto; padding:1.2rem 1.5rem 3rem; }
a { color:var(--accent); }
form.search { display:flex; gap:.5rem; margin:.3rem 0 1rem; }
form.search input { flex:1; font:inherit; padding:.45rem .6rem; border:1px solid var(--line); border-radius:6px; }
form.search button { font:inherit; padding:.45rem 1rem; border:0; border-radius:6px; background:var(--accent); color:#fff; cursor:pointer; }
table { width:100%; border-collapse:collapse; background:#fff; border:1px solid var(--line); border-radius:6px; }
th, td { text-align:left; padding:.45rem .7rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:.8rem; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); background:#fafbfc; }
td.num, th.num { text-align:right; white-space:nowrap; }
.muted { color:var(--muted); }
.pager { display:flex; gap:1rem; align-items:center; margin:1rem 0; }
code, .hash { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size:.85rem; }
.hash { word-break:break-all; }
pre.install { background:#16202c; color:#e8eef5; padding:.6rem .8rem; border-radius:6px; overflow-x:auto; margin:.4rem 0; }
section.version { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.8rem 1rem; margin:.8rem 0; }
section.version h3 { margin:0 0 .4rem; }
dl { display:grid; grid-template-columns: 9rem 1fr; gap:.25rem .8rem; margin:0; }
dt { color:var(--muted); }
dd { margin:0; }
.stats { display:flex; flex-wrap:wrap; gap:.6rem; margin:.6rem 0 1rem; }
.stat { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.5rem .9rem; min-width:8.5rem; }
.stat b { display:block; font-size:1.35rem; }
.stat span { color:var(--muted); font-size:.8rem; }
.charts { display:flex; flex-wrap:wrap; gap:1rem; }
figure.chart { flex:1 1 420px; background:#fff; border:1px solid var(--line); border-radius:6px; margin:0; padding:.6rem .8rem; }
figure.chart figcaption { font-weight:600; margin-bottom:.3rem; }
figure.chart svg { width:100%; height:auto; display:block; }
svg .frame { fill:#fafbfc; stroke:var(--line); }
svg .axis { font-size:10px; fill:var(--muted); }
svg polyline { fill:none; stroke-width:2; }
.s1 { stroke:#0b63b6; background:#0b63b6; } .s2 { stroke:#d9480f; background:#d9480f; } .s3 { stroke:#2b8a3e; background:#2b8a3e; }
ul.legend { list-style:none; display:flex; flex-wrap:wrap; gap:.3rem 1rem; white-space:nowrap; padding:0; margin:.3rem 0 0; font-size:.85rem; }
.key { display:inline-block; width:.8rem; height:.8rem; border-radius:2px; margin-right:.3rem; vertical-align:-1px; }
.warn { color:#a61e1e; }
.setup { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.4rem 1rem; margin-bottom:1rem; }
.setup h2 { font-size:1.05rem; margin:.4rem 0; }
.setup pre { background:#f1f3f5; padding:.5rem .7rem; border-radius:4px; overflow-x:auto; user-select:all; }
"#;

/// The page around `body`.
fn layout(title: &str, serial: Option<u64>, body: &str) -> String {
    let serial = match serial {
        Some(s) => format!("index serial {s}"),
        None => "nothing published yet".into(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}{}</style></head><body>\
         <header><a href=\"/\">dist</a><span>package catalog · {}</span></header>\
         <main>{body}</main></body></html>\n",
        escape(title),
        super::status::STYLE,
        escape(&serial)
    )
}

/// `/packages/NAME`.
fn package_href(name: &PackageName) -> String {
    format!("/packages/{}", percent_encode(name.as_str()))
}

/// `/?q=TERM&page=N` (without what is empty or the first page).
fn list_href(term: &str, page: u64) -> String {
    let mut params = Vec::new();
    if !term.is_empty() {
        params.push(format!("q={}", percent_encode(term)));
    }
    if page > 1 {
        params.push(format!("page={page}"));
    }
    if params.is_empty() {
        "/".into()
    } else {
        format!("/?{}", params.join("&"))
    }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// What the package list shows.
pub struct ListView<'a> {
    pub serial: Option<u64>,
    /// The search term (empty: every package).
    pub term: &'a str,
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
    pub result: &'a Page,
    /// How to use this repository (`super::setup`), already HTML.
    pub setup: &'a str,
}

/// `GET /` and `GET /?q=TERM&page=N`.
pub fn list(v: &ListView) -> String {
    let pages = v.result.total.div_ceil(v.per_page).max(1);
    let mut b = String::from(v.setup);
    let _ = write!(
        b,
        "<form class=\"search\" method=\"get\" action=\"/\" role=\"search\">\
         <input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"Search names and descriptions\" \
         aria-label=\"Search packages\" autofocus>\
         <button type=\"submit\">Search</button></form>",
        escape(v.term)
    );
    let count = match (v.term.is_empty(), v.result.total) {
        (true, 1) => "1 package".to_string(),
        (true, n) => format!("{n} packages"),
        (false, 1) => format!("1 package matches “{}”", v.term),
        (false, n) => format!("{n} packages match “{}”", v.term),
    };
    let _ = write!(
        b,
        "<p class=\"muted\"><span id=\"count\">{}</span>",
        escape(&count)
    );
    if !v.term.is_empty() {
        b.push_str(" · <a href=\"/\">all packages</a>");
    }
    b.push_str("</p>");
    if v.result.packages.is_empty() {
        let none = if v.page > 1 {
            format!("There is no page {} (the last is {pages}).", v.page)
        } else if v.term.is_empty() {
            "The repository has no packages yet: `dist add` publishes some.".to_string()
        } else {
            "No package name or description contains this.".to_string()
        };
        let _ = write!(b, "<p>{}</p>", escape(&none));
    } else {
        b.push_str(
            "<table id=\"packages\"><thead><tr><th>Package</th><th>Newest</th>\
             <th>Description</th><th class=\"num\">Versions</th><th class=\"num\">Size</th>\
             </tr></thead><tbody>",
        );
        for l in &v.result.packages {
            let r = &l.newest;
            let description = match &r.description {
                Some(d) => escape(d),
                None => "<span class=\"muted\">—</span>".into(),
            };
            let _ = write!(
                b,
                "<tr><td><a href=\"{}\">{}</a></td><td>{}{}</td><td>{description}</td>\
                 <td class=\"num\">{}</td><td class=\"num\" title=\"all versions: {}\">{}</td></tr>",
                escape(&package_href(&r.name)),
                escape(r.name.as_str()),
                escape(&r.version.to_string()),
                super::status::badges(r),
                l.versions,
                escape(&bytes(l.size)),
                escape(&bytes(r.size)),
            );
        }
        b.push_str("</tbody></table>");
    }
    pager(&mut b, v, pages);
    let title = if v.term.is_empty() {
        "dist catalog".to_string()
    } else {
        format!("{} · dist catalog", v.term)
    };
    layout(&title, v.serial, &b)
}

/// The previous and next links of a list of `pages` pages.
fn pager(b: &mut String, v: &ListView, pages: u64) {
    if pages <= 1 {
        return;
    }
    b.push_str("<nav class=\"pager\">");
    if v.page > 1 {
        let _ = write!(
            b,
            "<a rel=\"prev\" href=\"{}\">← previous</a>",
            escape(&list_href(v.term, (v.page - 1).min(pages)))
        );
    }
    let _ = write!(b, "<span>page {} of {pages}</span>", v.page);
    if v.page < pages {
        let _ = write!(
            b,
            "<a rel=\"next\" href=\"{}\">next →</a>",
            escape(&list_href(v.term, v.page + 1))
        );
    }
    b.push_str("</nav>");
}

/// What a package page shows.
pub struct PackageView<'a> {
    pub serial: Option<u64>,
    pub name: &'a PackageName,
    /// Every version, newest first.
    pub versions: &'a [PackageRecord],
    /// The live numbers of the first `live.versions.len()` of them.
    pub live: &'a Live,
    /// The package's samples, oldest first.
    pub history: &'a [Sample],
}

/// `GET /packages/NAME`.
pub fn package(v: &PackageView) -> String {
    let mut b = String::new();
    let newest = &v.versions[0];
    let _ = write!(b, "<h1 id=\"name\">{}</h1>", escape(v.name.as_str()));
    if let Some(d) = &newest.description {
        let _ = write!(b, "<p id=\"description\">{}</p>", escape(d));
    }
    let _ = write!(
        b,
        "<pre class=\"install\" id=\"install\">dist install {}</pre>",
        escape(&newest.id().to_string())
    );

    b.push_str("<h2>Swarm</h2>");
    let now = v.history.last().copied().unwrap_or_default();
    let shown = v.live.versions.len();
    let stat = |b: &mut String, id: &str, value: String, what: &str| {
        let _ = write!(
            b,
            "<div class=\"stat\" id=\"{id}\"><b>{}</b><span>{}</span></div>",
            escape(&value),
            escape(what)
        );
    };
    b.push_str("<div class=\"stats\">");
    stat(&mut b, "seeders", now.seeders.to_string(), "seeders");
    stat(&mut b, "leechers", now.leechers.to_string(), "leechers");
    stat(
        &mut b,
        "downloaded",
        now.downloaded.to_string(),
        "completed downloads",
    );
    stat(&mut b, "webseed", bytes(now.webseed), "sent by web seed");
    stat(
        &mut b,
        "direct",
        bytes(now.direct),
        "sent as whole downloads",
    );
    stat(&mut b, "seeder", bytes(now.seeder), "sent by the seeder");
    b.push_str("</div>");
    let mut notes = Vec::new();
    if let Some(e) = &v.live.tracker_error {
        notes.push(format!("the tracker did not answer: {e}"));
    }
    if let Some(e) = &v.live.seeder_error {
        notes.push(format!("the seeder did not answer: {e}"));
    }
    for n in notes {
        let _ = write!(b, "<p class=\"warn\">{}</p>", escape(&n));
    }
    let scope = if shown < v.versions.len() {
        format!(
            "Totals of the {shown} newest versions, from the tracker (a scrape) and this server (since it started); sampled every few seconds while the page is watched."
        )
    } else {
        "Totals of every version, from the tracker (a scrape) and this server (since it started); sampled every few seconds while the page is watched.".to_string()
    };
    let _ = write!(b, "<p class=\"muted\">{}</p>", escape(&scope));
    let at: Vec<u64> = v.history.iter().map(|s| s.at).collect();
    let series = |f: fn(&Sample) -> u64| v.history.iter().map(f).collect::<Vec<u64>>();
    b.push_str("<div class=\"charts\">");
    b.push_str(&chart::render(
        "Peers",
        &at,
        &[
            Series {
                label: "seeders",
                class: "s1",
                values: series(|s| s.seeders),
            },
            Series {
                label: "leechers",
                class: "s2",
                values: series(|s| s.leechers),
            },
        ],
        |n| n.to_string(),
    ));
    b.push_str(&chart::render(
        "Bytes sent by the origin",
        &at,
        &[
            Series {
                label: "web seed",
                class: "s1",
                values: series(|s| s.webseed),
            },
            Series {
                label: "whole downloads",
                class: "s2",
                values: series(|s| s.direct),
            },
            Series {
                label: "seeder",
                class: "s3",
                values: series(|s| s.seeder),
            },
        ],
        bytes,
    ));
    b.push_str("</div>");

    let _ = write!(b, "<h2>Versions ({})</h2>", v.versions.len());
    for (i, r) in v.versions.iter().enumerate() {
        let live = v.live.versions.get(i);
        version(&mut b, r, live);
    }
    layout(&format!("{} · dist catalog", v.name), v.serial, &b)
}

/// One version's section of a package page.
fn version(b: &mut String, r: &PackageRecord, live: Option<&super::live::VersionLive>) {
    let id = r.id().to_string();
    let _ = write!(
        b,
        "<section class=\"version\" id=\"v-{}\"><h3>{}{}</h3><dl>",
        escape(&percent_encode(&r.version.to_string())),
        escape(&r.version.to_string()),
        super::status::badges(r)
    );
    let row = |b: &mut String, key: &str, html: String| {
        let _ = write!(b, "<dt>{}</dt><dd>{html}</dd>", escape(key));
    };
    row(
        b,
        "install",
        format!(
            "<code class=\"install\">dist install {}</code>",
            escape(&id)
        ),
    );
    for (key, html) in super::status::rows(r) {
        row(b, key, html);
    }
    if let Some(d) = &r.description {
        row(b, "description", escape(d));
    }
    row(
        b,
        "size",
        format!("{} ({} bytes)", escape(&bytes(r.size)), r.size),
    );
    row(b, "added", escape(&date(r.added_at)));
    row(
        b,
        "BLAKE3",
        format!(
            "<a class=\"hash blake3\" href=\"/objects/{}\">{}</a>",
            escape(&r.blake3.rel_path()),
            escape(&r.blake3.to_hex())
        ),
    );
    row(
        b,
        "infohash",
        format!(
            "<span class=\"hash infohash\">{}</span>",
            escape(&r.infohash.to_hex())
        ),
    );
    row(
        b,
        "download",
        format!(
            "<a class=\"magnet\" href=\"{}\">magnet link</a> · \
             <a class=\"torrent\" href=\"/torrents/{}.torrent\">.torrent</a> · \
             <a href=\"/objects/{}\">object</a>",
            escape(&r.magnet),
            escape(&r.infohash.to_hex()),
            escape(&r.blake3.rel_path())
        ),
    );
    if let Some(names) = r.executables.as_ref().filter(|n| !n.is_empty()) {
        let names: Vec<String> = names
            .iter()
            .map(|n| format!("<code>{}</code>", escape(n)))
            .collect();
        row(b, "commands", names.join(" "));
    }
    if !r.relations.depends.is_empty() {
        let deps: Vec<String> = r
            .relations
            .depends
            .iter()
            .map(|(n, req)| {
                format!(
                    "<a href=\"{}\">{}</a> <code>{}</code>",
                    escape(&package_href(n)),
                    escape(n.as_str()),
                    escape(&req.to_string())
                )
            })
            .collect();
        row(b, "depends", deps.join(", "));
    }
    if !r.relations.conflicts.is_empty() {
        let conflicts: Vec<String> = r
            .relations
            .conflicts
            .iter()
            .map(|n| {
                format!(
                    "<a href=\"{}\">{}</a>",
                    escape(&package_href(n)),
                    escape(n.as_str())
                )
            })
            .collect();
        row(b, "conflicts", conflicts.join(", "));
    }
    match live {
        Some(l) => {
            let swarm = match l.swarm {
                Some(s) => format!(
                    "{} seeders, {} leechers, {} completed",
                    s.complete, s.incomplete, s.downloaded
                ),
                None => "unknown (the tracker did not answer)".into(),
            };
            row(
                b,
                "swarm",
                format!("<span class=\"swarm\">{}</span>", escape(&swarm)),
            );
            let seeder = match l.seeder {
                Some(n) => format!("{} by the seeder", bytes(n)),
                None => "not held by the seeder now".into(),
            };
            row(
                b,
                "origin sent",
                escape(&format!(
                    "{} by web seed, {} as whole downloads, {seeder}",
                    bytes(l.sent.webseed),
                    bytes(l.sent.direct)
                )),
            );
        }
        None => row(
            b,
            "swarm",
            "<span class=\"muted\">not asked (older than the versions shown live)</span>".into(),
        ),
    }
    b.push_str("</dl></section>");
}

/// The 404 page of a package name the index does not have (or that is no valid name).
pub fn not_found(serial: Option<u64>, name: &str) -> String {
    let body = format!(
        "<h1>No package “{}”</h1><p>The index has no package of this name. \
         <a href=\"{}\">Search for it</a> or see <a href=\"/\">all packages</a>.</p>",
        escape(name),
        escape(&list_href(name, 1))
    );
    layout("not found · dist catalog", serial, &body)
}

/// A page saying the catalog cannot read the index now (status 500 or 503).
pub fn failure(serial: Option<u64>, what: &str) -> String {
    let body = format!(
        "<h1>The catalog cannot answer</h1><p class=\"warn\">{}</p>",
        escape(what)
    );
    layout("error · dist catalog", serial, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_percent_encode_before_they_escape() {
        assert_eq!(list_href("", 1), "/");
        assert_eq!(list_href("a b&c\"<", 3), "/?q=a%20b%26c%22%3C&page=3");
        assert_eq!(
            package_href(&PackageName::parse("c++_x").unwrap()),
            "/packages/c%2B%2B_x"
        );
    }

    #[test]
    fn sizes_and_dates_read_like_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(951_827_696), "2000-02-29 12:34 UTC");
        assert_eq!(date(1_735_689_599), "2024-12-31 23:59 UTC");
    }

    #[test]
    fn the_not_found_page_escapes_the_name_it_was_asked_for() {
        let page = not_found(Some(3), "<b>x</b>");
        assert!(page.contains("No package “&lt;b&gt;x&lt;/b&gt;”"));
        assert!(page.contains("href=\"/?q=%3Cb%3Ex%3C%2Fb%3E\""));
        assert!(!page.contains("<b>x"));
    }
}

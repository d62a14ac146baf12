//! The catalog's pages: the package list with its search box and pager, one package's
//! versions and live swarm, and the 404 page. `maud` templates, compiled with the crate: every
//! value spliced into one is escaped (text and attribute values alike; inside a URL it is
//! `percent_encode`d first), and only the constant style sheet is spliced unescaped. Each
//! page is one [`layout`], which also keeps control characters out of it.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::chart::{self, Series};
use super::live::{Live, Sample, VersionLive};
use super::status;
use crate::format::ids::PackageName;
use crate::format::torrent::percent_encode;
use crate::index::record::PackageRecord;
use crate::repo::browse::{Listed, Page};
use crate::text::{date, size as bytes};

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

/// The page around `body`, as the text of a response.
fn layout(title: &str, serial: Option<u64>, body: Markup) -> String {
    let serial = match serial {
        Some(s) => format!("index serial {s}"),
        None => "nothing published yet".into(),
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                // Unescaped, and safe so: constants of this file and status.rs, no value from
                // the index or the request (and `<style>` is raw text: entities would stay).
                style { (PreEscaped(STYLE)) (PreEscaped(status::STYLE)) }
            }
            body {
                header { a href="/" { "dist" } span { "package catalog · " (serial) } }
                main { (body) }
            }
        }
    };
    without_controls(page.into_string())
}

/// `page` with every control character other than tab, newline and carriage return (which
/// HTML refuses, and which a hostile index may hold in any text) as U+FFFD: once per page.
fn without_controls(page: String) -> String {
    let refused = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    if !page.contains(refused) {
        return page;
    }
    page.chars()
        .map(|c| if refused(c) { '\u{FFFD}' } else { c })
        .collect()
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

/// What the package list shows.
pub struct ListView<'a> {
    pub serial: Option<u64>,
    /// The search term (empty: every package).
    pub term: &'a str,
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
    pub result: &'a Page,
    /// How to use this repository (`super::setup`).
    pub setup: &'a Markup,
}

/// `GET /` and `GET /?q=TERM&page=N`.
pub fn list(v: &ListView) -> String {
    let pages = v.result.total.div_ceil(v.per_page).max(1);
    let body = html! {
        (v.setup)
        (search_form(v.term))
        p class="muted" {
            span id="count" { (count(v.term, v.result.total)) }
            @if !v.term.is_empty() { " · " a href="/" { "all packages" } }
        }
        @if v.result.packages.is_empty() {
            p { (nothing_listed(v, pages)) }
        } @else {
            (package_table(&v.result.packages))
        }
        (pager(v, pages))
    };
    let title = if v.term.is_empty() {
        "dist catalog".to_string()
    } else {
        format!("{} · dist catalog", v.term)
    };
    layout(&title, v.serial, body)
}

/// The search box, holding `term`.
fn search_form(term: &str) -> Markup {
    html! {
        form class="search" method="get" action="/" role="search" {
            input type="search" name="q" value=(term) placeholder="Search names and descriptions"
                aria-label="Search packages" autofocus;
            button type="submit" { "Search" }
        }
    }
}

/// `3 packages`, `1 package matches “TERM”`.
fn count(term: &str, total: u64) -> String {
    match (term.is_empty(), total) {
        (true, 1) => "1 package".to_string(),
        (true, n) => format!("{n} packages"),
        (false, 1) => format!("1 package matches “{term}”"),
        (false, n) => format!("{n} packages match “{term}”"),
    }
}

/// Why a page of the list is empty.
fn nothing_listed(v: &ListView, pages: u64) -> String {
    if v.page > 1 {
        format!("There is no page {} (the last is {pages}).", v.page)
    } else if v.term.is_empty() {
        "The repository has no packages yet: `dist add` publishes some.".to_string()
    } else {
        "No package name or description contains this.".to_string()
    }
}

/// The list's table: one row per package, its newest version.
fn package_table(packages: &[Listed]) -> Markup {
    html! {
        table id="packages" {
            thead {
                tr {
                    th { "Package" } th { "Newest" } th { "Description" }
                    th class="num" { "Versions" } th class="num" { "Size" }
                }
            }
            tbody { @for l in packages { (package_row(l)) } }
        }
    }
}

fn package_row(l: &Listed) -> Markup {
    let r = &l.newest;
    html! {
        tr {
            td { (package_link(&r.name)) }
            td { (r.version) (status::badges(r)) }
            td {
                @match &r.description {
                    Some(d) => { (d) }
                    None => { span class="muted" { "—" } }
                }
            }
            td class="num" { (l.versions) }
            td class="num" title={ "all versions: " (bytes(l.size)) } { (bytes(r.size)) }
        }
    }
}

/// `<a href="/packages/NAME">NAME</a>`.
fn package_link(name: &PackageName) -> Markup {
    html! { a href=(package_href(name)) { (name) } }
}

/// The previous and next links of a list of `pages` pages.
fn pager(v: &ListView, pages: u64) -> Markup {
    html! {
        @if pages > 1 {
            nav class="pager" {
                @if v.page > 1 {
                    a rel="prev" href=(list_href(v.term, (v.page - 1).min(pages))) { "← previous" }
                }
                span { "page " (v.page) " of " (pages) }
                @if v.page < pages {
                    a rel="next" href=(list_href(v.term, v.page + 1)) { "next →" }
                }
            }
        }
    }
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
    let newest = &v.versions[0];
    let body = html! {
        h1 id="name" { (v.name) }
        @if let Some(d) = &newest.description { p id="description" { (d) } }
        pre class="install" id="install" { "dist install " (newest.id()) }
        h2 { "Swarm" }
        (stats(v.history.last().copied().unwrap_or_default()))
        (live_notes(v.live))
        p class="muted" { (scope(v.live.versions.len(), v.versions.len())) }
        (charts(v.history))
        h2 { "Versions (" (v.versions.len()) ")" }
        @for (i, r) in v.versions.iter().enumerate() {
            (version(r, v.live.versions.get(i)))
        }
    };
    layout(&format!("{} · dist catalog", v.name), v.serial, body)
}

/// The package's totals now, one box each.
fn stats(now: Sample) -> Markup {
    let stats = [
        ("seeders", now.seeders.to_string(), "seeders"),
        ("leechers", now.leechers.to_string(), "leechers"),
        (
            "downloaded",
            now.downloaded.to_string(),
            "completed downloads",
        ),
        ("webseed", bytes(now.webseed), "sent by web seed"),
        ("direct", bytes(now.direct), "sent as whole downloads"),
        ("seeder", bytes(now.seeder), "sent by the seeder"),
    ];
    html! {
        div class="stats" {
            @for (id, value, what) in stats {
                div class="stat" id=(id) { b { (value) } span { (what) } }
            }
        }
    }
}

/// Which daemon did not answer, and what went wrong.
fn live_notes(live: &Live) -> Markup {
    html! {
        @if let Some(e) = &live.tracker_error {
            p class="warn" { "the tracker did not answer: " (e) }
        }
        @if let Some(e) = &live.seeder_error {
            p class="warn" { "the seeder did not answer: " (e) }
        }
    }
}

/// What the totals count: `shown` of the package's `versions`.
fn scope(shown: usize, versions: usize) -> String {
    let which = if shown < versions {
        format!("the {shown} newest versions")
    } else {
        "every version".to_string()
    };
    format!(
        "Totals of {which}, from the tracker (a scrape) and this server (since it started); \
         sampled every few seconds while the page is watched."
    )
}

/// The peers chart and the origin's bytes chart, over the package's samples.
fn charts(history: &[Sample]) -> Markup {
    let at: Vec<u64> = history.iter().map(|s| s.at).collect();
    let peers = [
        series(history, "seeders", "s1", |s| s.seeders),
        series(history, "leechers", "s2", |s| s.leechers),
    ];
    let origin = [
        series(history, "web seed", "s1", |s| s.webseed),
        series(history, "whole downloads", "s2", |s| s.direct),
        series(history, "seeder", "s3", |s| s.seeder),
    ];
    html! {
        div class="charts" {
            (chart::render("Peers", &at, &peers, |n| n.to_string()))
            (chart::render("Bytes sent by the origin", &at, &origin, bytes))
        }
    }
}

fn series<'a>(
    history: &[Sample],
    label: &'a str,
    class: &'a str,
    value: fn(&Sample) -> u64,
) -> Series<'a> {
    let values = history.iter().map(value).collect();
    Series {
        label,
        class,
        values,
    }
}

/// One version's section of a package page.
fn version(r: &PackageRecord, live: Option<&VersionLive>) -> Markup {
    html! {
        section class="version" id={ "v-" (percent_encode(&r.version.to_string())) } {
            h3 { (r.version) (status::badges(r)) }
            dl {
                (row("install", html! { code class="install" { "dist install " (r.id()) } }))
                @for (key, value) in status::rows(r) { (row(key, value)) }
                @if let Some(d) = &r.description { (row("description", html! { (d) })) }
                (row("size", html! { (bytes(r.size)) " (" (r.size) " bytes)" }))
                (row("added", html! { (date(r.added_at)) }))
                (object_rows(r))
                (relation_rows(r))
                (live_rows(live))
            }
        }
    }
}

/// One `dt`/`dd` pair of a version's section.
fn row(key: &str, value: Markup) -> Markup {
    html! { dt { (key) } dd { (value) } }
}

/// The object's hashes and the links to download it.
fn object_rows(r: &PackageRecord) -> Markup {
    let object = format!("/objects/{}", r.blake3.rel_path());
    let infohash = r.infohash.to_hex();
    let download = html! {
        @if let Some(magnet) = magnet_href(&r.magnet) {
            a class="magnet" href=(magnet) { "magnet link" } " · "
        }
        a class="torrent" href={ "/torrents/" (infohash) ".torrent" } { ".torrent" }
        " · " a href=(object) { "object" }
    };
    html! {
        (row("BLAKE3", html! { a class="hash blake3" href=(object) { (r.blake3.to_hex()) } }))
        (row("infohash", html! { span class="hash infohash" { (infohash) } }))
        (row("download", download))
    }
}

/// A record's magnet link as a link target, if it is one: escaping keeps a value inside its
/// attribute, not a `javascript:` URL from being followed (a format-1 row holds the text).
fn magnet_href(magnet: &str) -> Option<&str> {
    magnet.starts_with("magnet:?").then_some(magnet)
}

/// The commands it installs, what it depends on and what it conflicts with.
fn relation_rows(r: &PackageRecord) -> Markup {
    let (depends, conflicts) = (&r.relations.depends, &r.relations.conflicts);
    let commands = r.executables.as_deref().unwrap_or_default();
    html! {
        @if !commands.is_empty() {
            (row("commands", html! {
                @for (i, n) in commands.iter().enumerate() { @if i > 0 { " " } code { (n) } }
            }))
        }
        @if !depends.is_empty() {
            (row("depends", html! {
                @for (i, (n, req)) in depends.iter().enumerate() {
                    @if i > 0 { ", " }
                    (package_link(n)) " " code { (req) }
                }
            }))
        }
        @if !conflicts.is_empty() {
            (row("conflicts", html! {
                @for (i, n) in conflicts.iter().enumerate() { @if i > 0 { ", " } (package_link(n)) }
            }))
        }
    }
}

/// A version's live rows: its swarm and what the origin sent of it.
fn live_rows(live: Option<&VersionLive>) -> Markup {
    let Some(l) = live else {
        let why = "not asked (older than the versions shown live)";
        return row("swarm", html! { span class="muted" { (why) } });
    };
    let swarm = match l.swarm {
        Some(s) => format!(
            "{} seeders, {} leechers, {} completed",
            s.complete, s.incomplete, s.downloaded
        ),
        None => "unknown (the tracker did not answer)".into(),
    };
    let seeder = match l.seeder {
        Some(n) => format!("{} by the seeder", bytes(n)),
        None => "not held by the seeder now".into(),
    };
    let (webseed, direct) = (bytes(l.sent.webseed), bytes(l.sent.direct));
    html! {
        (row("swarm", html! { span class="swarm" { (swarm) } }))
        (row("origin sent", html! {
            (webseed) " by web seed, " (direct) " as whole downloads, " (seeder)
        }))
    }
}

/// The 404 page of a package name the index does not have (or that is no valid name).
pub fn not_found(serial: Option<u64>, name: &str) -> String {
    let body = html! {
        h1 { "No package “" (name) "”" }
        p {
            "The index has no package of this name. "
            a href=(list_href(name, 1)) { "Search for it" }
            " or see " a href="/" { "all packages" } "."
        }
    };
    layout("not found · dist catalog", serial, body)
}

/// A page saying the catalog cannot read the index now (status 500 or 503).
pub fn failure(serial: Option<u64>, what: &str) -> String {
    let body = html! {
        h1 { "The catalog cannot answer" }
        p class="warn" { (what) }
    };
    layout("error · dist catalog", serial, body)
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
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(date(951_827_696), "2000-02-29 12:34 UTC");
    }

    #[test]
    fn the_not_found_page_escapes_the_name_it_was_asked_for() {
        let page = not_found(Some(3), "<b>x</b>");
        assert!(page.contains("No package “&lt;b&gt;x&lt;/b&gt;”"));
        assert!(page.contains("href=\"/?q=%3Cb%3Ex%3C%2Fb%3E\""));
        assert!(!page.contains("<b>x"));
    }

    /// Text an index may hold: markup, both quotes, an ampersand, a control character.
    const HOSTILE: &str = "<script>alert('x')</script> \"q\" & co\x1b";
    /// How a page shows it: `<`, `>`, `"` and `&` as entities (`'` needs none: the templates
    /// quote every attribute with `"`), the control character as U+FFFD.
    const SHOWN: &str = "&lt;script&gt;alert('x')&lt;/script&gt; &quot;q&quot; &amp; co\u{FFFD}";

    /// A version whose every text field is [`HOSTILE`] (names and requirements are typed:
    /// `dep` and `>=1, <2` are what a row can hold there).
    fn hostile_record() -> PackageRecord {
        let mut r = crate::server::catalog::tests::record("evil", "1.0.0", 0, 1);
        r.description = Some(HOSTILE.into());
        r.yanked = Some(crate::index::record::YankReason::from_index(HOSTILE).unwrap());
        r.executables = Some(vec![HOSTILE.into()]);
        let dep = PackageName::parse("dep").unwrap();
        let req = semver::VersionReq::parse(">=1, <2").unwrap();
        r.relations.depends.insert(dep, req);
        r.magnet = format!("javascript:alert(1)//{HOSTILE}");
        r
    }

    #[test]
    fn text_from_the_index_reaches_a_page_only_escaped_issue_24() {
        let r = hostile_record();
        let live = Live {
            versions: vec![VersionLive::default()],
            tracker_error: Some(HOSTILE.into()),
            seeder_error: None,
        };
        let page = package(&PackageView {
            serial: Some(1),
            name: &r.name,
            versions: std::slice::from_ref(&r),
            live: &live,
            history: &[],
        });
        // The description (twice), the yank reason (badge and row), the command, the error.
        assert_eq!(page.matches(SHOWN).count(), 6, "{page}");
        assert!(
            page.contains(&format!("title=\"{SHOWN}\">yanked</span>")),
            "{page}"
        );
        assert!(page.contains("<a href=\"/packages/dep\">dep</a> <code>&gt;=1, &lt;2</code>"));
        assert!(!page.contains("javascript:"), "{page}");

        let listed = Page {
            packages: vec![Listed {
                newest: r.clone(),
                versions: 1,
                size: 10,
            }],
            total: 1,
        };
        let list_page = list(&ListView {
            serial: Some(1),
            term: HOSTILE,
            page: 1,
            per_page: 50,
            result: &listed,
            setup: &html! {},
        });
        for part in [
            format!("<title>{SHOWN} · dist catalog</title>"),
            format!("name=\"q\" value=\"{SHOWN}\" placeholder="),
            format!("1 package matches “{SHOWN}”"),
            format!("<td>{SHOWN}</td>"),
        ] {
            assert!(list_page.contains(&part), "{part} in {list_page}");
        }
        for p in [&page, &list_page] {
            assert!(!p.contains("<script") && !p.contains('\x1b'), "{p}");
            assert!(!p.contains(&HOSTILE[..HOSTILE.len() - 1]), "{p}");
        }
    }
}

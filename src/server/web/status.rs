//! What the catalog shows of a version's status (issue 22): a yank with the publisher's reason
//! and a phased rollout's percentage, as badges beside a version and rows of its section.
//! Templates of `maud`, which escapes every value from the index.

use maud::{html, Markup};

use crate::index::record::PackageRecord;

/// ` <span class="badge yanked" title="REASON">yanked</span>`, ` <span class="badge phase">20 %</span>`.
pub fn badges(r: &PackageRecord) -> Markup {
    html! {
        @if let Some(reason) = &r.yanked {
            " " span class="badge yanked" title=(reason.as_str()) { "yanked" }
        }
        @if let Some(p) = r.phase {
            " " span class="badge phase" title="phased rollout" { (p) }
        }
    }
}

/// The rows a version's section adds: `yanked` with the reason, `rollout` with the percentage.
pub fn rows(r: &PackageRecord) -> Vec<(&'static str, Markup)> {
    let mut out = Vec::new();
    if let Some(reason) = &r.yanked {
        out.push((
            "yanked",
            html! {
                span class="yanked" { (reason.as_str()) }
                " " span class="muted" { "(not installed unless asked for exactly)" }
            },
        ));
    }
    if let Some(p) = r.phase {
        out.push((
            "rollout",
            html! { span class="phase" { (p) } " of machines" },
        ));
    }
    out
}

/// The style of the badges, appended to the page's.
pub const STYLE: &str =
    ".badge { font-size:.75rem; border-radius:4px; padding:0 .35rem; margin-left:.3rem; }
.badge.yanked, span.yanked { color:#a61e1e; } .badge.yanked { border:1px solid #a61e1e; }
.badge.phase { color:#7a5200; border:1px solid #c99a2e; }";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::record::{Phase, YankReason};

    #[test]
    fn a_hostile_reason_is_text_and_the_phase_a_number_issue_22() {
        let mut r = crate::server::catalog::tests::record("hello", "1.0.0", 0, 1);
        assert!(badges(&r).into_string().is_empty() && rows(&r).is_empty());
        r.yanked = Some(YankReason::from_index("<script>alert(1)</script>\"").unwrap());
        r.phase = Some(Phase::new(20).unwrap());
        let mut html = badges(&r).into_string();
        for (_, row) in rows(&r) {
            html.push_str(&row.into_string());
        }
        assert!(
            !html.contains("<script>")
                && html.contains("title=\"&lt;script&gt;alert(1)&lt;/script&gt;&quot;\""),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"phase\">20 %</span> of machines"),
            "{html}"
        );
    }
}

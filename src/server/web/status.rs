//! What the catalog shows of a version's status (issue 22): a yank with the publisher's reason
//! and a phased rollout's percentage, as badges beside a version and rows of its section. Every
//! value from the index goes through [`escape`].

use super::escape::escape;
use crate::index::record::PackageRecord;

/// ` <span class="badge yanked" title="REASON">yanked</span>`, ` <span class="badge phase">20 %</span>`.
pub fn badges(r: &PackageRecord) -> String {
    let mut out = String::new();
    if let Some(reason) = &r.yanked {
        out.push_str(&format!(
            " <span class=\"badge yanked\" title=\"{}\">yanked</span>",
            escape(reason.as_str())
        ));
    }
    if let Some(p) = r.phase {
        out.push_str(&format!(
            " <span class=\"badge phase\" title=\"phased rollout\">{}</span>",
            escape(&p.to_string())
        ));
    }
    out
}

/// The rows a version's section adds: `yanked` with the reason, `rollout` with the percentage.
pub fn rows(r: &PackageRecord) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(reason) = &r.yanked {
        out.push((
            "yanked",
            format!(
                "<span class=\"yanked\">{}</span> <span class=\"muted\">(not installed unless asked for exactly)</span>",
                escape(reason.as_str())
            ),
        ));
    }
    if let Some(p) = r.phase {
        out.push((
            "rollout",
            format!(
                "<span class=\"phase\">{}</span> of machines",
                escape(&p.to_string())
            ),
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
        assert!(badges(&r).is_empty() && rows(&r).is_empty());
        r.yanked = Some(YankReason::from_index("<script>alert(1)</script>\x1b").unwrap());
        r.phase = Some(Phase::new(20).unwrap());
        let html = format!("{}{:?}", badges(&r), rows(&r));
        assert!(
            !html.contains("<script>") && html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(html.contains("20 %") && !html.contains('\x1b'), "{html}");
    }
}

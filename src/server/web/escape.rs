//! Escaping for the catalog's HTML: every string from the index or the request passes through
//! [`escape`] before it meets markup (html.rs, status.rs, chart.rs).

/// `s` as HTML text or as a quoted attribute value: the five characters with a meaning in
/// markup become entities, and C0 control characters other than tab, newline and carriage
/// return (which HTML refuses) become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup_from_hostile_strings() {
        let hostile = [
            (
                "<script>alert('x')</script>",
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
            ),
            (
                "\"><img src=x onerror=alert(1)>",
                "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;",
            ),
            ("a & b &amp; c", "a &amp; b &amp;amp; c"),
            ("' onmouseover='x", "&#39; onmouseover=&#39;x"),
            ("<!-- -->", "&lt;!-- --&gt;"),
            ("]]><![CDATA[", "]]&gt;&lt;![CDATA["),
            (
                "nul\0bell\x07esc\x1b del\x7f",
                "nul\u{FFFD}bell\u{FFFD}esc\u{FFFD} del\u{FFFD}",
            ),
            ("tab\tline\nfeed\r", "tab\tline\nfeed\r"),
            ("ünïcödé ✓ “quotes”", "ünïcödé ✓ “quotes”"),
            ("", ""),
        ];
        for (input, want) in hostile {
            let got = escape(input);
            assert_eq!(got, want, "escape({input:?})");
            assert!(!got.contains(['<', '>', '"', '\'']), "{got:?}");
        }
    }
}

//! "Did you mean …?": the known names closest to one that is not known, by edit distance and
//! ignoring case, for messages about unknown packages.

/// Up to three of `known` that `wanted` was probably meant to be: the same ignoring case, or at
/// most a third of its length of edits away (at least one), closest first.
pub fn similar<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let lower = wanted.to_lowercase();
    let limit = (wanted.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, &str)> = known
        .into_iter()
        .filter(|k| *k != wanted)
        .filter_map(|k| {
            if k.to_lowercase() == lower {
                return Some((0, k));
            }
            let d = strsim::levenshtein(&lower, k);
            (d <= limit).then_some((d, k))
        })
        .collect();
    scored.sort();
    scored.dedup();
    scored
        .into_iter()
        .take(3)
        .map(|(_, k)| k.to_string())
        .collect()
}

/// ` (did you mean `a` or `b`?)`, or nothing.
pub fn hint(similar: &[String]) -> String {
    match similar {
        [] => String::new(),
        [one] => format!(" (did you mean `{one}`?)"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|s| format!("`{s}`")).collect();
            format!(" (did you mean {} or `{last}`?)", init.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_case_are_suggested_closest_first() {
        let known = ["hello", "help", "world", "the-package-name", "hello-world"];
        assert_eq!(similar("helo", known), ["hello", "help"]);
        assert_eq!(similar("The-Package-Name", known), ["the-package-name"]);
        assert_eq!(similar("zzz", known), Vec::<String>::new());
        assert_eq!(
            hint(&similar("helo", known)),
            " (did you mean `hello` or `help`?)"
        );
        assert_eq!(hint(&[]), "");
    }
}

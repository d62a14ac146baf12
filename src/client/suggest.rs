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
            let d = distance(&lower, k);
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

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
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
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}

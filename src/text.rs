//! Numbers in words, the one way dist writes them in messages and output: sizes (`8.5 KiB`),
//! rates, and counts with their plural (`1 peer`, `2 peers`). The CLI's output helpers
//! (`commands/out.rs`) re-export these; the library's own explanations use them too.

/// A size in bytes the one way dist prints sizes: `512 B`, `8.5 KiB`, `73.6 MiB`, `1.2 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    // 1023.96 KiB would print as 1024.0 KiB: move on when the rounding reaches the next unit.
    while v >= 1023.95 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A transfer rate: [`size`] a second.
pub fn rate(bytes_per_sec: u64) -> String {
    format!("{}/s", size(bytes_per_sec))
}

/// `n` things, with the plural English makes of the singular `one`: `1 peer`, `2 peers`,
/// `3 store paths`, `2 dependencies`, `0 processes`.
pub fn count(n: u64, one: &str) -> String {
    if n == 1 {
        return format!("1 {one}");
    }
    let consonant_y = one.strip_suffix('y').is_some_and(|stem| {
        stem.chars()
            .last()
            .is_some_and(|c| !"aeiou".contains(c.to_ascii_lowercase()))
    });
    let plural = if consonant_y {
        format!("{}ies", &one[..one.len() - 1])
    } else if ["s", "sh", "ch", "x", "z"].iter().any(|e| one.ends_with(e)) {
        format!("{one}es")
    } else {
        format!("{one}s")
    };
    format!("{n} {plural}")
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days to a civil date (the proleptic Gregorian calendar's 400-year eras).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts_read_one_way() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(8704), "8.5 KiB");
        assert_eq!(size(73_673), "71.9 KiB");
        assert_eq!(size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(size(5 << 30), "5.0 GiB");
        assert_eq!(rate(2048), "2.0 KiB/s");
        assert_eq!(count(1, "peer"), "1 peer");
        assert_eq!(count(0, "peer"), "0 peers");
        assert_eq!(count(3, "store path"), "3 store paths");
        assert_eq!(count(2, "dependency"), "2 dependencies");
        assert_eq!(count(2, "key"), "2 keys");
        assert_eq!(count(2, "process"), "2 processes");
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(951_827_696), "2000-02-29 12:34 UTC");
        assert_eq!(date(1_735_689_599), "2024-12-31 23:59 UTC");
        assert_eq!(date(1_746_361_845), "2025-05-04 12:30 UTC");
    }
}

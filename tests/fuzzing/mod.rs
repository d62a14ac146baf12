//! The fuzzing harness of `tests/fuzz.rs` (issue 9), on stable Rust without a fuzzing crate: a
//! xorshift generator seeded per iteration (so every input is rebuilt from its seed alone), a
//! byte-level mutator, the campaign loop (budget from the environment, panics caught, the
//! slowest iteration timed, outcomes counted by kind) and the replay of kept regression inputs.
//!
//! Each target (`tar`, `torrent`, `manifest`, `snapshot`, `wire`) mutates valid seed inputs with
//! mutations that know its format, then checks its properties; a violated property or a panic
//! stops the campaign with the seed and a copy of the input.

pub mod manifest;
pub mod snapshot;
pub mod tar;
pub mod torrent;
pub mod wire;

use std::collections::BTreeMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One fuzzing target: it builds an input from a seeded generator and checks it.
pub trait Target {
    /// The name used in reports and under `fixtures/fuzz/`.
    const NAME: &'static str;
    /// The valid inputs it mutates (also the seed corpora of the coverage-guided targets).
    fn seeds(&self) -> &[Vec<u8>];
    /// A new input, a function of `rng` only.
    fn generate(&mut self, rng: &mut Rng) -> Vec<u8>;
    /// Runs the code under test on `input`: the kind of outcome (`ok` or the kind of error),
    /// or a description of the property it violated.
    fn execute(&mut self, input: &[u8]) -> Result<String, String>;
}

/// xorshift64*, seeded through splitmix64 so that neighbouring seeds give unrelated streams.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(z.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes the byte-level mutator likes to write: boundaries, digits and the separators of the
/// formats under test.
const INTERESTING: &[u8] = b"\x00\xff\x7f\x80\x01 \n\t/.+-:=0178eidl\\\"'";

/// Applies one random byte-level mutation to `data`, using `tokens` (format words) for the
/// insertions and overwrites.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, tokens: &[&[u8]]) {
    let len = data.len();
    let at = rng.below(len + 1);
    match rng.below(11) {
        0 if len > 0 => data[at.min(len - 1)] ^= 1 << rng.below(8),
        1 if len > 0 => data[at.min(len - 1)] = rng.next() as u8,
        2 if len > 0 => data[at.min(len - 1)] = *rng.pick(INTERESTING),
        3 => {
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            data.splice(at..at, bytes);
        }
        4 if len > 0 => {
            let max = if rng.chance(10) { len } else { 64.min(len) };
            let n = 1 + rng.below(max);
            let start = rng.below(len - n + 1);
            data.drain(start..start + n);
        }
        5 if len > 0 => {
            let n = 1 + rng.below(64.min(len));
            let start = rng.below(len - n + 1);
            let chunk = data[start..start + n].to_vec();
            data.splice(at..at, chunk);
        }
        6 if !tokens.is_empty() => {
            let t = rng.pick(tokens);
            let end = (at + t.len()).min(len);
            data.splice(at.min(len)..end, t.iter().copied());
        }
        7 if !tokens.is_empty() => {
            let t = rng.pick(tokens);
            data.splice(at..at, t.iter().copied());
        }
        8 if !tokens.is_empty() => {
            let t = rng.pick(tokens);
            // At most ~100 KB, so that one input never dominates the time.
            let n = (*rng.pick(&[2, 3, 16, 100, 1000, 10_000])).min(100_000 / t.len().max(1));
            data.splice(at..at, t.repeat(n));
        }
        9 => data.truncate(at),
        _ => replace_number(rng, data),
    }
}

/// Replaces a run of ASCII digits with a nearby or extreme number.
fn replace_number(rng: &mut Rng, data: &mut Vec<u8>) {
    let starts: Vec<usize> = (0..data.len())
        .filter(|&i| data[i].is_ascii_digit() && (i == 0 || !data[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let start = *rng.pick(&starts);
    let end = start
        + data[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
    let old: i128 = std::str::from_utf8(&data[start..end])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let new = match rng.below(6) {
        0 => old + 1,
        1 => old - 1,
        2 => old + *rng.pick(&[2, 8, 20, 511, 512, 513, 4096]),
        3 => 0,
        4 => *rng.pick(&[i64::MAX as i128, u64::MAX as i128, 1 << 64, 1 << 33]),
        _ => rng.below(1 << 20) as i128,
    };
    data.splice(start..end, new.to_string().into_bytes());
}

/// How long and from which seed a campaign runs, from the environment: `DIST_FUZZ_SECS` (time
/// budget per target), `DIST_FUZZ_SEED` (first seed, default 0) and `DIST_FUZZ_ITERS` (an
/// iteration count, e.g. 1 to replay one seed).
pub struct Budget {
    pub start: u64,
    pub iters: Option<u64>,
    pub secs: Option<f64>,
}

impl Budget {
    pub fn from_env(default_iters: u64) -> Budget {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let num = |k: &str| {
            var(k).map(|v| {
                v.parse::<f64>()
                    .unwrap_or_else(|_| panic!("{k}={v} is not a number"))
            })
        };
        let start = var("DIST_FUZZ_SEED").map_or(0, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("DIST_FUZZ_SEED={v} is not a u64"))
        });
        let secs = num("DIST_FUZZ_SECS");
        let iters = num("DIST_FUZZ_ITERS").map(|n| n as u64);
        Budget {
            start,
            iters: iters.or(if secs.is_none() {
                Some(default_iters)
            } else {
                None
            }),
            secs,
        }
    }

    fn done(&self, ran: u64, elapsed: Duration) -> bool {
        self.iters.is_some_and(|n| ran >= n)
            || self.secs.is_some_and(|s| elapsed.as_secs_f64() >= s)
    }
}

/// Runs `target` from the seeds of `budget`, printing the figures at the end; panics with the
/// seed, the property and where the input was saved at the first failure.
pub fn campaign<T: Target>(target: &mut T, budget: &Budget) {
    let started = Instant::now();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut slowest = (Duration::ZERO, budget.start);
    let mut ran = 0u64;
    while !budget.done(ran, started.elapsed()) {
        let seed = budget.start.wrapping_add(ran);
        let input = target.generate(&mut Rng::new(seed));
        let t = Instant::now();
        let result = run_one(target, &input);
        let took = t.elapsed();
        if took > slowest.0 {
            slowest = (took, seed);
        }
        match result {
            Ok(kind) => *outcomes.entry(kind).or_default() += 1,
            Err(violation) => fail(T::NAME, seed, &input, &violation),
        }
        ran += 1;
    }
    report(
        T::NAME,
        budget.start,
        ran,
        started.elapsed(),
        slowest,
        &outcomes,
    );
}

fn run_one<T: Target>(target: &mut T, input: &[u8]) -> Result<String, String> {
    match catch_unwind(AssertUnwindSafe(|| target.execute(input))) {
        Ok(r) => r,
        Err(payload) => Err(format!("panic: {}", panic_message(payload.as_ref()))),
    }
}

pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".into())
}

/// Keeps the failing input in a temp dir that outlives the test, and stops the campaign.
fn fail(name: &str, seed: u64, input: &[u8], violation: &str) -> ! {
    let kept = tempfile::Builder::new()
        .prefix(&format!("dist-fuzz-{name}-{seed}-"))
        .tempdir()
        .map(|d| d.keep());
    let saved = match kept {
        Ok(dir) => {
            let p = dir.join("input");
            fs::write(&p, input)
                .map_or_else(|e| format!("(not saved: {e})"), |_| p.display().to_string())
        }
        Err(e) => format!("(not saved: {e})"),
    };
    panic!(
        "fuzz {name}: seed {seed}: {violation}\n  input ({} bytes) saved to {saved}\n  replay: DIST_FUZZ_SEED={seed} DIST_FUZZ_ITERS=1 cargo test --test fuzz {name}",
        input.len()
    );
}

fn report(
    name: &str,
    start: u64,
    ran: u64,
    elapsed: Duration,
    slowest: (Duration, u64),
    outcomes: &BTreeMap<String, u64>,
) {
    let secs = elapsed.as_secs_f64();
    let mut by_count: Vec<(&String, &u64)> = outcomes.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut out = format!(
        "fuzz: {name}: {ran} iterations in {secs:.1} s ({:.0}/s), seeds {start}..={}, slowest {:.1} ms (seed {}), {} distinct outcomes, 0 failures\n",
        ran as f64 / secs.max(1e-9),
        start.wrapping_add(ran.saturating_sub(1)),
        slowest.0.as_secs_f64() * 1e3,
        slowest.1,
        outcomes.len(),
    );
    const SHOWN: usize = 400;
    for (kind, n) in by_count.iter().take(SHOWN) {
        out.push_str(&format!("  {name} {n:>8}  {kind}\n"));
    }
    if by_count.len() > SHOWN {
        out.push_str(&format!(
            "  {name} ... and {} more kinds\n",
            by_count.len() - SHOWN
        ));
    }
    eprint!("{out}");
}

/// Replays every kept input of `fixtures/fuzz/<target>/` and returns how many there were.
pub fn replay<T: Target>(target: &mut T) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/fuzz")
        .join(T::NAME);
    let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => return 0,
    };
    files.sort();
    for f in &files {
        let input = fs::read(f).unwrap();
        if let Err(violation) = run_one(target, &input) {
            panic!("fuzz regression {}: {violation}", f.display());
        }
    }
    files.len()
}

/// Writes the seeds of `target` and its kept regression inputs (`fixtures/fuzz/<target>/`)
/// into `out/<name>/` for each of `names` (the coverage-guided targets of `fuzz/` that read
/// the same format), and returns how many inputs each directory got.
pub fn write_seeds<T: Target>(target: &T, out: &Path, names: &[&str]) -> usize {
    let kept = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/fuzz")
        .join(T::NAME);
    let mut inputs: Vec<(String, Vec<u8>)> = target
        .seeds()
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("seed-{}-{i}", T::NAME), s.clone()))
        .collect();
    if let Ok(rd) = fs::read_dir(&kept) {
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            inputs.push((name, fs::read(e.path()).unwrap()));
        }
    }
    for name in names {
        let dir = out.join(name);
        fs::create_dir_all(&dir).unwrap();
        for (file, bytes) in &inputs {
            fs::write(dir.join(file), bytes).unwrap();
        }
    }
    inputs.len()
}

/// The kind of an error message, for counting distinct outcomes: `subject` (a path the target
/// knows) removed, quoted and backticked words, hex digests and numbers blanked.
pub fn kind_of(msg: &str, subject: &str) -> String {
    let msg = if subject.is_empty() {
        msg.to_string()
    } else {
        msg.replace(subject, "<input>")
    };
    let blanked = blank_values(&quoted_char_blanked(&msg));
    let words: Vec<&str> = blanked
        .split(' ')
        .map(|w| {
            let hex = w.chars().all(|c| c.is_ascii_hexdigit() || c == 'N');
            if w.len() >= 16 && hex {
                "<hex>"
            } else {
                w
            }
        })
        .collect();
    let mut kind = words.join(" ");
    if kind.len() > 160 {
        let cut = (0..=160).rev().find(|&i| kind.is_char_boundary(i));
        kind.truncate(cut.unwrap_or(0));
        kind.push('…');
    }
    kind
}

/// A quoted character (`unexpected character 'x'`) blanked, but not an apostrophe.
fn quoted_char_blanked(msg: &str) -> String {
    let chars: Vec<char> = msg.chars().collect();
    match (0..chars.len().saturating_sub(2)).find(|&i| chars[i] == '\'' && chars[i + 2] == '\'') {
        Some(i) => chars[..i]
            .iter()
            .chain(&['\'', '…', '\''])
            .chain(&chars[i + 3..])
            .collect(),
        None => msg.to_string(),
    }
}

/// Backticked and double-quoted text blanked, numbers shown as `N` (but digits that are part of
/// a word, as in `BLAKE3`, `UTF-8`, `v1` or `§5`, kept), control characters escaped.
fn blank_values(msg: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    // Inside a run of digits already shown as `N`.
    let mut blanked = false;
    for c in msg.chars() {
        let was_blanked = std::mem::replace(&mut blanked, false);
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                out.push(c);
                quote = Some(c);
            }
            None if c.is_ascii_digit() => {
                let in_word = out
                    .chars()
                    .last()
                    .is_some_and(|p| p.is_ascii_alphanumeric() || p == '-' || p == '§');
                if was_blanked {
                    blanked = true;
                } else if in_word {
                    out.push(c);
                } else {
                    out.push('N');
                    blanked = true;
                }
            }
            None if c.is_control() => out.extend(c.escape_default()),
            None => out.push(c),
        }
    }
    out
}

/// Lists `root` recursively without following links, as sorted "kind path" lines; `skip` (a
/// directory below `root`) is listed but not entered.
pub fn listing(root: &Path, skip: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let ft = fs::symlink_metadata(&p).unwrap().file_type();
            let kind = if ft.is_dir() {
                "d"
            } else if ft.is_symlink() {
                "l"
            } else if ft.is_file() {
                "f"
            } else {
                "?"
            };
            out.push(format!(
                "{kind} {}",
                p.strip_prefix(root).unwrap().display()
            ));
            if ft.is_dir() && Some(p.as_path()) != skip {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The valid fixture package directories (`fixtures/valid/*`), in name order.
pub fn valid_fixtures() -> Vec<PathBuf> {
    let valid = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/valid");
    let mut dirs: Vec<PathBuf> = fs::read_dir(valid)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

/// A repository that published the valid fixtures twice, the seeds of the index targets:
/// serial 1 holds the first package, serial 2 all of them (so serial 2 has a delta). It lives
/// as long as the returned temp dir.
pub fn published_twice() -> (tempfile::TempDir, dist::repo::Repo) {
    let dirs = valid_fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let repo = dist::repo::Repo::new(&tmp.path().join("repo"));
    repo.init().unwrap();
    repo.add(&dirs[..1]).unwrap();
    repo.add(&dirs).unwrap();
    (tmp, repo)
}

//! Writing to standard output and standard error without panicking: `std`'s `println!` panics
//! when the reader went away (`dist list | head -1`: "failed printing to stdout: Broken pipe",
//! exit 101). The `println!`, `print!` and `eprintln!` that every command module uses are the
//! macros of `commands/mod.rs`, which come here: a closed output ends the printing quietly (the
//! command still finishes what it does, a mutation included, and exits as it would have), and
//! any other write error on standard output is reported once at the end by `main`.

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Standard output was closed by its reader: later lines are not even formatted.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error on standard output other than a closed pipe.
static FAILED: Mutex<Option<String>> = Mutex::new(None);

/// What `println!`/`print!` do: write `args` (and a newline) to standard output.
pub fn stdout(args: fmt::Arguments<'_>, newline: bool) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => CLOSED.store(true, Ordering::Relaxed),
        Err(e) => {
            CLOSED.store(true, Ordering::Relaxed);
            let mut failed = FAILED.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// What `eprintln!` does: write a line to standard error; if that fails there is nowhere left
/// to say so.
pub fn stderr(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// The write error standard output met, if any (a closed pipe is none: the reader chose to
/// stop reading).
pub fn failure() -> Option<String> {
    let _ = std::io::stdout().flush();
    FAILED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

// Colour: decided once, at start-up, for each stream (`--color`, `NO_COLOR`, a terminal).

/// Whether standard output / standard error get colour.
static COLOR_OUT: AtomicBool = AtomicBool::new(false);
static COLOR_ERR: AtomicBool = AtomicBool::new(false);

/// `--color`: `auto` colours a stream that is a terminal unless `NO_COLOR` is set to anything
/// but the empty string (no-color.org); `always` and `never` decide regardless of both.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Decides colour for both streams; `main` calls it before any output.
pub fn set_color(choice: ColorChoice) {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let on = |terminal: bool| match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && !no_color,
    };
    COLOR_OUT.store(on(std::io::stdout().is_terminal()), Ordering::Relaxed);
    COLOR_ERR.store(on(std::io::stderr().is_terminal()), Ordering::Relaxed);
}

/// The few styles dist uses: what was done (green), what needs a look (yellow), what failed
/// (red), a notice (cyan), headings (bold), what matters less (dim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Bold,
    Green,
    Yellow,
    Red,
    Cyan,
    Dim,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Red => "1;31",
            Style::Cyan => "36",
            Style::Dim => "2",
        }
    }
}

fn paint_if(on: bool, style: Style, text: &str) -> String {
    if on && !text.is_empty() {
        format!("\x1b[{}m{text}\x1b[0m", style.code())
    } else {
        text.to_string()
    }
}

/// `text` in `style` for standard output (plain when it gets no colour).
pub fn paint(style: Style, text: &str) -> String {
    paint_if(COLOR_OUT.load(Ordering::Relaxed), style, text)
}

/// `text` in `style` for standard error.
pub fn epaint(style: Style, text: &str) -> String {
    paint_if(COLOR_ERR.load(Ordering::Relaxed), style, text)
}

/// `error: ` / `warning: ` / `note: `, coloured for standard error.
pub fn error_prefix() -> String {
    epaint(Style::Red, "error:")
}
pub fn warning_prefix() -> String {
    epaint(Style::Yellow, "warning:")
}
pub fn note_prefix() -> String {
    epaint(Style::Cyan, "note:")
}

// Numbers as every command prints them: the definitions live in the library (`dist::text`),
// whose own explanations use them too.
pub use dist::text::{count, rate, size};

/// Seconds since the epoch as a date and time in UTC: `2025-05-04 12:30 UTC`.
pub fn date(unix: u64) -> String {
    dist::text::date(i64::try_from(unix).unwrap_or(i64::MAX))
}

/// A duration as people read it: `0.4 s`, `12 s`, `3 min 5 s`.
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

// Columns.

/// One cell of a [`Table`]: its text and, on a terminal, its style.
pub struct Cell {
    text: String,
    style: Option<Style>,
}

impl Cell {
    pub fn styled(text: impl Into<String>, style: Style) -> Cell {
        Cell {
            text: text.into(),
            style: Some(style),
        }
    }
}

impl<T: Into<String>> From<T> for Cell {
    fn from(text: T) -> Cell {
        Cell {
            text: text.into(),
            style: None,
        }
    }
}

/// Rows printed in aligned columns, two spaces apart (every column as wide as its widest cell,
/// the last one not padded), so a listing reads down its columns whatever the names' lengths.
#[derive(Default)]
pub struct Table {
    rows: Vec<Vec<Cell>>,
    /// Columns aligned to the right (numbers).
    right: Vec<usize>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// The columns (0-based) whose cells are aligned to the right.
    pub fn right_aligned(mut self, columns: &[usize]) -> Table {
        self.right = columns.to_vec();
        self
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// The lines, for standard output (`indent` before each).
    pub fn lines(&self, indent: &str) -> Vec<String> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                let cells = self.rows.iter().filter_map(|r| r.get(c));
                cells
                    .map(|cell| cell.text.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            let mut line = indent.to_string();
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c] - cell.text.chars().count();
                let last = c + 1 == row.len();
                let text = match cell.style {
                    Some(s) => paint(s, &cell.text),
                    None => cell.text.clone(),
                };
                if self.right.contains(&c) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(&text);
                } else {
                    line.push_str(&text);
                    if !last {
                        line.push_str(&" ".repeat(pad));
                    }
                }
                if !last {
                    line.push_str("  ");
                }
            }
            out.push(line.trim_end().to_string());
        }
        out
    }

    /// Prints the lines on standard output.
    pub fn print(&self, indent: &str) {
        for l in self.lines(indent) {
            stdout(format_args!("{l}"), true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations_read_one_way() {
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(date(1_746_361_845), "2025-05-04 12:30 UTC");
        assert_eq!(duration(std::time::Duration::from_millis(420)), "0.4 s");
        assert_eq!(duration(std::time::Duration::from_secs(185)), "3 min 5 s");
    }

    #[test]
    fn a_table_aligns_its_columns() {
        let mut t = Table::new().right_aligned(&[2]);
        t.row(vec![
            "hello".into(),
            "1.0.0".into(),
            "8.5 KiB".into(),
            "x".into(),
        ]);
        t.row(vec![
            "a".into(),
            "10.20.3".into(),
            "512 B".into(),
            "".into(),
        ]);
        assert_eq!(
            t.lines(""),
            ["hello  1.0.0    8.5 KiB  x", "a      10.20.3    512 B"]
        );
    }
}

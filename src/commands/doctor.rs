//! `dist doctor [--json]`: the checks of `dist::client::doctor`, one line each (or
//! `{"checks": [{"name", "ok", "detail"}]}`), exit 1 when any fails.

use anyhow::Result;
use dist::client::{doctor, Layout};

use super::out::{Cell, Style, Table};
use super::settings::config;
use super::{json, printable, Global};
use crate::cli::ClientFlags;

pub fn run(g: &Global, f: &ClientFlags, json_out: bool) -> Result<i32> {
    let layout = Layout::new(&g.root);
    let settings = config(g, f).map_err(|e| format!("{e:#}"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let line = super::notices::env_line(g);
    let checks = doctor::run(
        &layout,
        settings.as_ref().map_err(Clone::clone),
        &path,
        &line,
    );
    let failed = checks.iter().filter(|c| !c.ok).count();
    if json_out {
        json::print(&json::Doctor {
            checks: checks.iter().map(Into::into).collect(),
        })?;
    } else {
        let mut t = Table::new();
        for c in &checks {
            t.row(vec![
                match c.ok {
                    true => Cell::styled("ok", Style::Green),
                    false => Cell::styled("FAIL", Style::Red),
                },
                Cell::styled(c.name, Style::Bold),
                printable(&c.detail).into_owned().into(),
            ]);
        }
        t.print("");
        match failed {
            0 => println!("everything dist needs is in order"),
            n => println!(
                "{} of {} failed",
                n,
                super::out::count(checks.len() as u64, "check")
            ),
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

//! `dist rollback`: `current` back to an earlier generation (by default the one before it),
//! through the same [`Transition`] as every other switch: what leaves runs its `uninstall.sh`,
//! what enters its `install.sh`, each told which way it goes.

use anyhow::{bail, Context, Result};

use super::config::Settings;
use super::transition::{Cause, Target, Transition};
use super::{Layout, Reporter};

/// Switches to generation `to` (default: the one before current). Returns (from, to).
pub fn rollback(
    layout: &Layout,
    settings: &Settings,
    to: Option<u64>,
    report: &dyn Reporter,
) -> Result<(u64, u64)> {
    let gens = layout.generations()?;
    let cur = layout
        .current_number()?
        .context("nothing to roll back: no generation is current")?;
    let target = match to {
        Some(n) => gens.iter().find(|g| g.number == n).with_context(|| {
            format!(
                "there is no generation {n} (have: {})",
                gens.iter()
                    .map(|g| g.number.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => gens
            .iter()
            .rev()
            .find(|g| g.number < cur)
            .with_context(|| format!("generation {cur} is the oldest; nothing to roll back to"))?,
    };
    let current = gens
        .iter()
        .find(|g| g.number == cur)
        .context("the current generation is missing")?;
    let transition = Transition::new(
        &current.packages,
        target.packages.clone(),
        &Default::default(),
        Target::Existing(target.number),
        Cause::Rollback,
    );
    let entering = transition.steps().iter().filter_map(|s| s.new.as_ref());
    if let Some(p) = entering.clone().find(|p| !p.store_path.exists()) {
        bail!(
            "generation {} needs {}, whose store path was collected",
            target.number,
            p.id()
        );
    }
    transition.apply(layout, settings.script_timeout, report)?;
    Ok((cur, target.number))
}

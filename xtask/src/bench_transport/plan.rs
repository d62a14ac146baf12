//! The matrix of `bench transport` and which of its cells a run takes: origin links × clients ×
//! sizes × scenarios, each cell's estimated cost, and the cells kept within the run's budget.
//!
//! The estimate is a rough model of this machine (2 cores, release build, field notes), made to
//! err long: a cell costs a fixed set-up and tear-down plus its transfer, which is N × size over
//! the slower of the link and what the host's clients take in for HTTP, and for a swarm
//! transmission's ~11 s start plus the larger of the origin's share over the link, the host's
//! swarm rate and one client's torrent rate. The client's own choice (`default`) is counted as
//! the longer of both. Groups (one link, N and size: every scenario, so `default` always has its
//! `http` beside it) are kept by priority, then cheapest first, while the total stays within
//! 90 % of the budget (the rest is for the other load on this machine and the model's error).

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::lab::args::Usage;
use crate::lab::secs1;

/// An origin link: the HTB class of the origin's address at this rate.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Link {
    pub name: &'static str,
    /// `None`: not capped (the class is set to 100 gbit/s, far above what loopback moves here,
    /// so that its counter still counts the origin's bytes).
    pub mbit: Option<u32>,
}

pub(super) const LINKS: [Link; 3] = [
    Link {
        name: "64mbit",
        mbit: Some(64),
    },
    Link {
        name: "1gbit",
        mbit: Some(1000),
    },
    Link {
        name: "uncapped",
        mbit: None,
    },
];

impl Link {
    /// The rate for `tc class change … htb rate R ceil R`.
    pub fn tc_rate(&self) -> String {
        match self.mbit {
            Some(m) => format!("{m}mbit"),
            None => "100gbit".into(),
        }
    }

    /// MiB/s (infinite when not capped).
    fn mib_s(&self) -> f64 {
        self.mbit
            .map_or(f64::INFINITY, |m| f64::from(m) * 1e6 / 8.0 / MIB)
    }
}

pub(super) const CLIENTS: [usize; 3] = [1, 8, 24];
pub(super) const SIZES_MIB: [usize; 4] = [1, 16, 128, 512];
/// The largest size runs only up to this many clients.
const MAX_CLIENTS_AT_512: usize = 8;

/// How a scenario fetches, as far as the estimate is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fetch {
    Http,
    Swarm,
    /// Whatever the client decides: either.
    Client,
}

/// One way of installing that the matrix compares. To add one (another engine, a client
/// setting), add a row to `SCENARIOS`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Scenario {
    pub name: &'static str,
    /// The extra `install` arguments.
    pub install_args: &'static [&'static str],
    /// Lines appended to every client.yaml.
    pub config: &'static str,
    pub fetch: Fetch,
}

pub(super) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "default",
        install_args: &[],
        config: "",
        fetch: Fetch::Client,
    },
    Scenario {
        name: "http",
        install_args: &["--transport", "http"],
        config: "",
        fetch: Fetch::Http,
    },
    Scenario {
        name: "transmission",
        install_args: &["--transport", "torrent"],
        config: "engine: transmission\n",
        fetch: Fetch::Swarm,
    },
    Scenario {
        name: "libtorrent",
        install_args: &["--transport", "torrent"],
        config: "engine: libtorrent\n",
        fetch: Fetch::Swarm,
    },
];

const MIB: f64 = 1024.0 * 1024.0;
/// What the clients of a cell take in, verify and unpack together over HTTP when the link is
/// not the limit (8 × 128 MiB at 1 gbit/s: 9.5 s; 256 MiB alone uncapped: 1.8 s).
const HOST_MIB_S: f64 = 120.0;
/// transmission's first peer byte (its 10 s rechoke and interest timers).
const SWARM_START_S: f64 = 11.0;
/// What a swarm's clients take in together when the link is not the limit.
const SWARM_HOST_MIB_S: f64 = 100.0;
/// One torrent client, not capped (256 MiB in 25.7 s with its start).
const SWARM_CLIENT_MIB_S: f64 = 17.0;
/// The origin's bytes / (N × size) in a swarm of 2 or more (0.20–0.67 measured).
const SWARM_ORIGIN_SHARE: f64 = 0.35;
/// Roots, syncs, the release, `dist daemon stop`, deleting the roots.
const CELL_FIXED_S: f64 = 3.0;
const CELL_PER_CLIENT_S: f64 = 0.2;
/// The namespace, `dist serve` healthy, and publishing at this rate (generating the content,
/// `dist add`'s hashing, the seeder's check).
const SETUP_S: f64 = 15.0;
const PUBLISH_MIB_S: f64 = 50.0;
/// Of a budget, what the planned cells may take.
const PLAN_SHARE: f64 = 0.9;
const FULL_BUDGET: Duration = Duration::from_secs(30 * 60);
const QUICK_BUDGET: Duration = Duration::from_secs(5 * 60);
/// `--quick`: the single client not capped, the 8 × 16 MiB at 64 mbit/s of the last line, and
/// a 1 MiB cell (8 clients at 1 gbit/s), each with every scenario.
const QUICK: [(&str, usize, usize); 3] = [("uncapped", 1, 16), ("64mbit", 8, 16), ("1gbit", 8, 1)];
/// `--cells` is hidden: it checks a few cells.
const USAGE: Usage = Usage {
    line: "usage: cargo xtask bench transport [--quick]",
    values: &["--cells"],
    switches: &["--quick"],
    positionals: 0,
};

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cell {
    pub link: &'static Link,
    pub clients: usize,
    pub mib: usize,
    pub scenario: &'static Scenario,
}

impl Cell {
    /// What the cell should take (module doc).
    pub fn estimate(&self) -> Duration {
        let bytes = (self.clients * self.mib) as f64;
        let link = self.link.mib_s();
        let http = bytes / link.min(HOST_MIB_S);
        let share = if self.clients > 1 {
            SWARM_ORIGIN_SHARE
        } else {
            1.0
        };
        let swarm = SWARM_START_S
            + (bytes * share / link)
                .max(bytes / SWARM_HOST_MIB_S)
                .max(self.mib as f64 / SWARM_CLIENT_MIB_S);
        let transfer = match self.scenario.fetch {
            Fetch::Http => http,
            Fetch::Swarm => swarm,
            Fetch::Client => http.max(swarm),
        };
        Duration::from_secs_f64(transfer + CELL_FIXED_S + CELL_PER_CLIENT_S * self.clients as f64)
    }

    /// `64mbit N=8 16 MiB`.
    pub fn group_label(&self) -> String {
        format!("{} N={} {} MiB", self.link.name, self.clients, self.mib)
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.group_label(), self.scenario.name)
    }

    /// Whether it is `scenario` of the group (`link`, `clients`, `mib`).
    pub fn is(&self, link: &str, clients: usize, mib: usize, scenario: &str) -> bool {
        self.same_group(link, clients, mib) && self.scenario.name == scenario
    }

    fn same_group(&self, link: &str, clients: usize, mib: usize) -> bool {
        self.link.name == link && self.clients == clients && self.mib == mib
    }

    /// Run order: by link (the class changes twice per run), clients, size, scenario.
    fn order(&self) -> (usize, usize, usize, usize) {
        let pos = |l: &Link| LINKS.iter().position(|x| x == l).unwrap_or(usize::MAX);
        let scen = SCENARIOS
            .iter()
            .position(|s| s == self.scenario)
            .unwrap_or(usize::MAX);
        (pos(self.link), self.clients, self.mib, scen)
    }
}

/// The cells of a run, in run order, and what was left out.
pub(super) struct Plan {
    /// `full`, `quick` or `--cells`.
    pub what: &'static str,
    pub budget: Option<Duration>,
    pub cells: Vec<Cell>,
    /// Groups left out, each with why.
    pub skipped: Vec<(Vec<Cell>, String)>,
}

/// The plan the arguments ask for: `[--quick]`, or the hidden `--cells LINK:N:MIB[:SCENARIO],…`
/// (exactly those, whatever the budget: to check a few cells).
pub(super) fn from_args(args: &[&str]) -> Result<Plan> {
    let a = USAGE.parse(args)?;
    match (a.switch("--quick"), a.value::<String>("--cells")?) {
        (false, None) => Ok(full()),
        (true, None) => Ok(quick()),
        (false, Some(spec)) => only(&spec),
        (true, Some(_)) => Err(a.error("--quick or --cells, not both")),
    }
}

/// Every cell of one group, in scenario order.
fn group(link: &'static Link, clients: usize, mib: usize) -> Vec<Cell> {
    SCENARIOS
        .iter()
        .map(|scenario| Cell {
            link,
            clients,
            mib,
            scenario,
        })
        .collect()
}

/// Which groups the full matrix takes first: 0 those of the last line (64 mbit/s: 8 × 16,
/// 8 × 128 and 24 × 16 MiB), 1 the single client not capped (where a swarm's fixed start costs
/// the most) and 8 clients at 1 gbit/s, 2 the rest.
fn priority(g: &[Cell]) -> u8 {
    let c = g[0];
    let last_line = [(8, 16), (8, 128), (24, 16)];
    if c.link.name == "64mbit" && last_line.contains(&(c.clients, c.mib)) {
        0
    } else if (c.link.mbit.is_none() && c.clients == 1)
        || (c.link.name == "1gbit" && c.clients == 8)
    {
        1
    } else {
        2
    }
}

fn full() -> Plan {
    let mut groups = Vec::new();
    for link in &LINKS {
        for clients in CLIENTS {
            for mib in SIZES_MIB {
                if mib != 512 || clients <= MAX_CLIENTS_AT_512 {
                    groups.push(group(link, clients, mib));
                }
            }
        }
    }
    groups.sort_by_key(|g| (priority(g), total(g)));
    within("full", groups, FULL_BUDGET)
}

fn quick() -> Plan {
    let groups = QUICK
        .iter()
        .map(|(name, clients, mib)| {
            let link = LINKS.iter().find(|l| l.name == *name).expect("a link");
            group(link, *clients, *mib)
        })
        .collect();
    within("quick", groups, QUICK_BUDGET)
}

/// Takes `groups` in the given order while the estimate (set-up included) stays within
/// `PLAN_SHARE` of `budget`; the others are skipped, saying so.
fn within(what: &'static str, groups: Vec<Vec<Cell>>, budget: Duration) -> Plan {
    let cap = budget.mul_f64(PLAN_SHARE);
    let mut plan = Plan {
        what,
        budget: Some(budget),
        cells: Vec::new(),
        skipped: Vec::new(),
    };
    for g in groups {
        let mut with = plan.cells.clone();
        with.extend(g.iter().copied());
        let cost = total(&g);
        let after = setup_estimate(&with) + total(&with);
        if after <= cap {
            plan.cells = with;
        } else {
            let why = format!(
                "~{}: would take the run to ~{:.1} min, over {:.1} min ({:.0} % of the {:.0} min budget)",
                secs1(cost),
                after.as_secs_f64() / 60.0,
                cap.as_secs_f64() / 60.0,
                PLAN_SHARE * 100.0,
                budget.as_secs_f64() / 60.0
            );
            plan.skipped.push((g, why));
        }
    }
    plan.cells.sort_by_key(Cell::order);
    plan
}

/// `--cells 64mbit:8:16:default,uncapped:1:1` (no scenario: all of them).
fn only(spec: &str) -> Result<Plan> {
    let mut cells: Vec<Cell> = Vec::new();
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let bad = || format!("--cells: `{item}` is not LINK:N:MIB[:SCENARIO]");
        let parts: Vec<&str> = item.split(':').collect();
        if !(3..=4).contains(&parts.len()) {
            bail!(bad());
        }
        let link = LINKS
            .iter()
            .find(|l| l.name == parts[0])
            .with_context(|| format!("{}: links are 64mbit, 1gbit, uncapped", bad()))?;
        let clients: usize = parts[1].parse().with_context(bad)?;
        let mib: usize = parts[2].parse().with_context(bad)?;
        if clients == 0 || mib == 0 {
            bail!(bad());
        }
        let picked: Vec<Cell> = group(link, clients, mib)
            .into_iter()
            .filter(|c| parts.get(3).is_none_or(|s| *s == c.scenario.name))
            .collect();
        if picked.is_empty() {
            bail!("{}: no scenario `{}`", bad(), parts[3]);
        }
        for c in picked {
            if !cells.contains(&c) {
                cells.push(c);
            }
        }
    }
    if cells.is_empty() {
        bail!("--cells: no cell given");
    }
    cells.sort_by_key(Cell::order);
    Ok(Plan {
        what: "--cells",
        budget: None,
        cells,
        skipped: Vec::new(),
    })
}

fn total(cells: &[Cell]) -> Duration {
    cells.iter().map(Cell::estimate).sum()
}

/// The package sizes the cells need (one package per size, shared by its cells).
pub(super) fn sizes(cells: &[Cell]) -> Vec<usize> {
    let mut v: Vec<usize> = cells.iter().map(|c| c.mib).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The namespace, the server and publishing what the cells need.
fn setup_estimate(cells: &[Cell]) -> Duration {
    let mib: usize = sizes(cells).iter().sum();
    Duration::from_secs_f64(SETUP_S + mib as f64 / PUBLISH_MIB_S)
}

impl Plan {
    /// Set-up and cells.
    pub fn estimate(&self) -> Duration {
        setup_estimate(&self.cells) + total(&self.cells)
    }

    /// One line per group with each scenario's estimate, then the skipped groups.
    pub fn print(&self) {
        let budget = self.budget.map_or("none (cells given)".into(), |b| {
            format!("{:.0} min", b.as_secs_f64() / 60.0)
        });
        println!(
            "transport: plan `{}`, {} cells, estimate ~{:.1} min, budget {budget}",
            self.what,
            self.cells.len(),
            self.estimate().as_secs_f64() / 60.0
        );
        println!(
            "  estimate per cell: {CELL_FIXED_S} s + {CELL_PER_CLIENT_S} s per client; http N × size / min(link, {HOST_MIB_S} MiB/s); a swarm {SWARM_START_S} s + max({SWARM_ORIGIN_SHARE} × N × size / link (1 client: all of it), N × size / {SWARM_HOST_MIB_S} MiB/s, size / {SWARM_CLIENT_MIB_S} MiB/s); default the longer of both"
        );
        println!(
            "  set-up (namespace, serve, publishing {:?} MiB): ~{}",
            sizes(&self.cells),
            secs1(setup_estimate(&self.cells))
        );
        let mut k = 0;
        while k < self.cells.len() {
            let c = self.cells[k];
            let g: Vec<Cell> = self.cells[k..]
                .iter()
                .take_while(|x| x.same_group(c.link.name, c.clients, c.mib))
                .copied()
                .collect();
            let each: Vec<String> = g
                .iter()
                .map(|x| format!("{} ~{:.0} s", x.scenario.name, x.estimate().as_secs_f64()))
                .collect();
            println!("  {}: {}", c.group_label(), each.join(", "));
            k += g.len();
        }
        for (g, why) in &self.skipped {
            println!("  skipped {} (all scenarios): {why}", g[0].group_label());
        }
    }
}

//! Every process of a script, also those that left its process group (`setsid`) or lost their
//! parent (a double fork): while a script runs, dist is a child subreaper
//! (`prctl(PR_SET_CHILD_SUBREAPER)`), so an orphan of the script's tree is re-parented to dist
//! rather than to init and stays findable through the parent links of `/proc`. Killing a
//! script kills that whole tree: the script, the children of dist that started after it (the
//! orphans it left: dist starts nothing else while a script runs), and all their descendants,
//! until none is left; those re-parented to dist are reaped. Nothing is read from `/proc`
//! unless a script must be killed. Unprivileged, unlike a cgroup of its own (which needs a
//! delegated hierarchy). Issue 25, finding 9: a `setsid` child of a timed-out script kept
//! running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rustix::process::{Pid, WaitOptions};

use crate::process::{self, Signal};

/// How long killing a tree may take (SIGKILL is not refused; a process in uninterruptible
/// sleep can delay its end).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Makes dist the subreaper of what it starts until dropped.
pub struct Reaper {
    me: u32,
    /// Whether dist was a subreaper already (then it stays one).
    was: bool,
}

impl Reaper {
    /// Called before the script starts. Without the subreaper (an old kernel), a detached
    /// orphan goes to init as before; everything else still works.
    pub fn start() -> Reaper {
        let me = std::process::id();
        let was = rustix::process::child_subreaper().is_ok_and(|p| p.is_some());
        if !was {
            let _ = rustix::process::set_child_subreaper(Pid::from_raw(me as i32));
        }
        Reaper { me, was }
    }

    /// Kills the script `script` and every process it started, however detached, and reaps
    /// those that became dist's; `script` itself is left for its `Child` to reap.
    pub fn kill_all(&self, script: u32) {
        // Read before the kill: the script's entry stays until its `Child` reaps it.
        let started = table().get(&script).map(|p| p.start);
        let _ = process::signal_group(script, Signal::Kill);
        let Some(started) = started else { return };
        let begin = Instant::now();
        loop {
            let table = table();
            let live = self.tree(&table, script, started);
            if live.is_empty() || begin.elapsed() > KILL_WAIT {
                break;
            }
            for pid in live {
                let _ = process::signal(pid, Signal::Kill);
            }
            self.reap(&table, script, started);
            std::thread::sleep(Duration::from_millis(5));
        }
        self.reap(&table(), script, started);
    }

    /// dist's children that started with the script or after it, the script aside: the
    /// orphans of its tree. (Clock ticks: a child dist started in the same tick just before the
    /// script counts too; dist starts none while scripts run, and an earlier script's service
    /// leaves with the transition that a killed script undoes.)
    fn adopted(&self, table: &BTreeMap<u32, Proc>, script: u32, started: u64) -> Vec<u32> {
        children(table, self.me)
            .into_iter()
            .filter(|p| *p != script && table[p].start >= started)
            .collect()
    }

    /// The live processes of the script's tree.
    fn tree(&self, table: &BTreeMap<u32, Proc>, script: u32, started: u64) -> Vec<u32> {
        let mut todo = self.adopted(table, script, started);
        todo.push(script);
        let mut seen = BTreeSet::new();
        while let Some(pid) = todo.pop() {
            if seen.insert(pid) {
                todo.extend(children(table, pid));
            }
        }
        seen.into_iter()
            .filter(|p| table.get(p).is_some_and(|x| x.live))
            .collect()
    }

    /// Reaps the adopted processes that have ended (never the script's own `Child`).
    fn reap(&self, table: &BTreeMap<u32, Proc>, script: u32, started: u64) {
        for pid in self.adopted(table, script, started) {
            if let Some(p) = Pid::from_raw(pid as i32) {
                let _ = rustix::process::waitpid(Some(p), WaitOptions::NOHANG);
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if !self.was {
            let _ = rustix::process::set_child_subreaper(None);
        }
    }
}

/// One process as `/proc/PID/stat` describes it.
struct Proc {
    parent: u32,
    /// Not a zombie.
    live: bool,
    /// When it started, in clock ticks since boot.
    start: u64,
}

/// Every process of the system, by pid.
fn table() -> BTreeMap<u32, Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`: the name may hold spaces and parentheses.
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let (state, parent, start) = (fields.first()?, fields.get(1)?, fields.get(19)?);
            let proc = Proc {
                parent: parent.parse().ok()?,
                live: *state != "Z" && *state != "X",
                start: start.parse().ok()?,
            };
            Some((pid, proc))
        })
        .collect()
}

fn children(table: &BTreeMap<u32, Proc>, of: u32) -> BTreeSet<u32> {
    table
        .iter()
        .filter(|(_, p)| p.parent == of)
        .map(|(pid, _)| *pid)
        .collect()
}

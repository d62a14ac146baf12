//! Which published versions resolution may take on its own (issue 22): a yanked version never,
//! a phased one only on the machines its rollout has reached. A machine's place in a rollout is
//! its bucket for the version: a stable hash of the root's machine id (`ROOT/machine-id`, made
//! once), the name and the version, modulo 100; the machine takes the version when its bucket is
//! below the percentage (store-format.md §6.1). What the user asks for exactly, and what is
//! installed already, is exempt: resolution decides that (`resolve`), not this module.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Layout;
use crate::format::ids::PackageName;
use crate::index::record::{version_key, PackageRecord, Phase, YankReason};
use crate::store::fsx;

/// The longest machine id read, in bytes.
const MAX_MACHINE_ID: usize = 256;

/// What places this root in every rollout: one line of text from `ROOT/machine-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineId(String);

impl MachineId {
    /// One line of 1 to 256 bytes without control characters (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<MachineId, String> {
        let t = text.trim();
        if t.is_empty() || t.len() > MAX_MACHINE_ID || t.chars().any(char::is_control) {
            return Err(format!(
                "a machine id is one line of 1 to {MAX_MACHINE_ID} bytes without control characters"
            ));
        }
        Ok(MachineId(t.to_string()))
    }

    /// 32 random hex digits (from the kernel's random source).
    fn random() -> Result<MachineId> {
        use std::io::Read;
        let mut bytes = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .context("cannot read /dev/urandom for a machine id")?;
        Ok(MachineId(hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Layout {
    /// `ROOT/machine-id`: this root's place in phased rollouts.
    pub fn machine_id_path(&self) -> PathBuf {
        self.root.join("machine-id")
    }

    /// The root's machine id; the first call makes it (32 random hex digits), and two commands
    /// making it at once agree on the first one written.
    pub fn machine_id(&self) -> Result<MachineId> {
        let path = self.machine_id_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return MachineId::parse(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("{} is not a machine id", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        let id = MachineId::random()?;
        if fsx::write_new(&path, format!("{}\n", id.0).as_bytes(), 0o644)? {
            return Ok(id);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        MachineId::parse(&text)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{} is not a machine id", path.display()))
    }
}

/// The machine's bucket for `name@version`, 0 to 99: the first 8 bytes of
/// BLAKE3(`<machine id>\n<name>\n<version without build metadata>`), little-endian, modulo 100.
pub fn bucket(machine: &MachineId, name: &PackageName, version: &semver::Version) -> u8 {
    let text = format!("{}\n{name}\n{}", machine.0, version_key(version));
    let hash = blake3::hash(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % 100) as u8
}

/// Whether phased rollouts apply to this machine (`--no-phasing` ignores them).
#[derive(Debug, Clone)]
pub enum Phasing {
    Machine(MachineId),
    /// The root has no machine id and this user cannot make one (a read-only command on a
    /// root another user owns): no rollout below 100 % has reached it yet.
    Unplaced,
    Ignored,
}

/// Why resolution does not take a version on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withheld<'a> {
    Yanked(&'a YankReason),
    /// This machine's bucket is not below the rollout's percentage yet.
    Deferred(Phase),
}

/// `yanked: REASON` (control characters escaped), `deferred by phased rollout (20 %)`.
impl fmt::Display for Withheld<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Withheld::Yanked(r) => {
                f.write_str("yanked: ")?;
                for c in r.as_str().chars() {
                    if c.is_control() {
                        write!(f, "{}", c.escape_default())?;
                    } else {
                        write!(f, "{c}")?;
                    }
                }
                Ok(())
            }
            Withheld::Deferred(p) => write!(f, "deferred by phased rollout ({p})"),
        }
    }
}

/// Which versions resolution takes on its own, decided once per command.
#[derive(Debug, Clone)]
pub struct Policy {
    phasing: Phasing,
}

impl Policy {
    /// This root's policy: phased rollouts by its machine id (made on first use), unless
    /// `ignore_phasing` (`--no-phasing`).
    pub fn for_root(layout: &Layout, ignore_phasing: bool) -> Result<Policy> {
        if ignore_phasing {
            return Ok(Policy::new(Phasing::Ignored));
        }
        match layout.machine_id() {
            Ok(id) => Ok(Policy::new(Phasing::Machine(id))),
            Err(e) if not_writable(&e) && !layout.machine_id_path().exists() => {
                Ok(Policy::new(Phasing::Unplaced))
            }
            Err(e) => Err(e),
        }
    }

    pub fn new(phasing: Phasing) -> Policy {
        Policy { phasing }
    }

    /// Why `rec` is not taken unless asked for exactly or installed: yanked, or a rollout that
    /// has not reached this machine. `None`: it may be taken.
    pub fn withheld<'a>(&self, rec: &'a PackageRecord) -> Option<Withheld<'a>> {
        if let Some(reason) = &rec.yanked {
            return Some(Withheld::Yanked(reason));
        }
        let phase = rec.phase?;
        match &self.phasing {
            Phasing::Ignored => None,
            Phasing::Unplaced => (phase.percent() < 100).then_some(Withheld::Deferred(phase)),
            Phasing::Machine(m) => (!phase.admits(bucket(m, &rec.name, &rec.version)))
                .then_some(Withheld::Deferred(phase)),
        }
    }
}

/// The error says the root cannot be written by this user (not that something is wrong).
fn not_writable(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 200 simulated machines (ids fixed, so the test is deterministic): the share that takes a
    /// version phased to p % is p within 5 points, for several versions and percentages.
    #[test]
    fn a_rollout_reaches_its_share_of_200_machines_issue_22() {
        let machines: Vec<MachineId> = (0..200)
            .map(|i| {
                MachineId(
                    blake3::hash(format!("machine {i}").as_bytes()).to_hex()[..32].to_string(),
                )
            })
            .collect();
        let name = PackageName::parse("hello").unwrap();
        for version in ["1.0.0", "2.0.0", "2.1.0-rc.1"] {
            let v = semver::Version::parse(version).unwrap();
            for p in [0u8, 5, 20, 50, 80, 100] {
                let phase = Phase::new(p as i64).unwrap();
                let took = machines
                    .iter()
                    .filter(|m| phase.admits(bucket(m, &name, &v)))
                    .count();
                let share = took as f64 * 100.0 / 200.0;
                assert!(
                    (share - p as f64).abs() <= 5.0,
                    "{version} at {p} %: {took} of 200 machines ({share} %)"
                );
            }
        }
        // Stable: the same machine, name and version give the same bucket; build metadata is
        // not part of the version's identity.
        let m = &machines[0];
        let a = semver::Version::parse("1.0.0+a").unwrap();
        let b = semver::Version::parse("1.0.0+b").unwrap();
        assert_eq!(bucket(m, &name, &a), bucket(m, &name, &b));
    }

    #[test]
    fn the_bucket_is_the_documented_hash() {
        let m = MachineId::parse("0123456789abcdef0123456789abcdef\n").unwrap();
        let name = PackageName::parse("hello").unwrap();
        let v = semver::Version::parse("2.0.0").unwrap();
        let h = blake3::hash(b"0123456789abcdef0123456789abcdef\nhello\n2.0.0");
        let want = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) % 100;
        assert_eq!(bucket(&m, &name, &v) as u64, want);
        for bad in ["", "  \n", "a\nb", "x\x1by", &"a".repeat(257)] {
            assert!(MachineId::parse(bad).is_err(), "{bad:?}");
        }
    }
}

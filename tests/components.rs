//! The components against the real daemons: opentracker's whitelist, transmission's RPC on
//! loopback, and a tracker + seeder + leecher swarm inside a network namespace.

mod common;
#[path = "common/netns.rs"]
mod netns;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use dist::daemons::tracker::{start_tracker, Swarm, TrackerConfig};
use dist::daemons::transmission::{
    start_daemon, stop_daemon_by_pid, DaemonConfig, Rpc, TorrentStatus,
};
use dist::format::ids::InfoHash;
use dist::format::torrent::Info;
use netns::{free_loopback_port, Netns};

/// Set (to the namespace's name) when this binary runs again inside a namespace.
const INSIDE_NETNS: &str = "DIST_TEST_INSIDE_NETNS";

/// An object `dist pack` made: the tarball, its plain torrent and its digests.
struct Object {
    tar: PathBuf,
    torrent: Vec<u8>,
    size: u64,
    blake3: String,
    infohash: InfoHash,
}

fn pack(fixture_name: &str, dir: &Path) -> Object {
    fs::create_dir_all(dir).unwrap();
    let tar = dir.join(format!("{fixture_name}.tar"));
    let v = stdout_json(&run_ok(
        dist()
            .arg("pack")
            .arg(fixture(fixture_name))
            .arg("-o")
            .arg(&tar)
            .arg("--json"),
    ));
    let torrent_path = dir.join(format!("{fixture_name}.tar.torrent"));
    Object {
        torrent: fs::read(&torrent_path).unwrap(),
        tar,
        size: v["size"].as_u64().unwrap(),
        blake3: v["blake3"].as_str().unwrap().to_string(),
        infohash: InfoHash::parse(v["infohash"].as_str().unwrap()).unwrap(),
    }
}

fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn status_of(rpc: &Rpc, hash: &InfoHash) -> Result<TorrentStatus, String> {
    let all = rpc.get(&[*hash]).map_err(|e| format!("{e:#}"))?;
    all.into_iter()
        .next()
        .ok_or_else(|| format!("the daemon has no torrent {hash}"))
}

#[test]
fn opentracker_serves_its_whitelist_and_reloads_it() {
    require_tool("opentracker");
    let tmp = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_loopback_port()));
    let (h1, h2) = (
        InfoHash::from_bytes([0x1a; 20]),
        InfoHash::from_bytes([0x2b; 20]),
    );
    let cfg = TrackerConfig::new(tmp.path().join("tracker"), listen);
    let t = start_tracker(&cfg, std::slice::from_ref(&h1)).unwrap();
    assert_eq!(t.announce_url(), format!("http://{listen}/announce"));

    assert!(t.authorizes(&h1).unwrap());
    assert!(!t.authorizes(&h2).unwrap());
    t.set_whitelist(&[h1, h2]).unwrap();
    assert!(t.authorizes(&h2).unwrap());
    t.set_whitelist(std::slice::from_ref(&h2)).unwrap();
    assert!(!t.authorizes(&h1).unwrap());
    assert!(t.authorizes(&h2).unwrap());
    // The probes withdrew their peer again.
    assert_eq!(t.swarm(&h1).unwrap(), Swarm::default());
    assert_eq!(t.swarm(&h2).unwrap(), Swarm::default());

    // opentracker binds with SO_REUSEPORT, so a second one would start and share the port.
    let other = TrackerConfig::new(tmp.path().join("other"), listen);
    let e = start_tracker(&other, &[]).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        format!("tracker port {listen} is already in use (tcp)")
    );

    let pid = t.pid();
    t.stop().unwrap();
    assert!(gone(pid), "opentracker {pid} still runs");
}

#[test]
fn rpc_seeds_a_packed_object_on_loopback() {
    require_tool("transmission-daemon");
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let objects = tmp.path().join("objects");
    let obj = pack("hello-1.0.0", &objects);
    let cfg = DaemonConfig::new(
        tmp.path().join("daemon"),
        tmp.path().join("downloads"),
        free_loopback_port(),
        free_loopback_port(),
    );
    let d = start_daemon(&cfg).unwrap();
    eprintln!("rpc: daemon answered after {:?}", started.elapsed());

    let hash = d.rpc.add_torrent(&obj.torrent, &objects, true).unwrap();
    assert_eq!(hash, obj.infohash);
    assert_eq!(
        d.rpc.add_torrent(&obj.torrent, &objects, true).unwrap(),
        hash,
        "a duplicate add answers with the same infohash"
    );
    d.rpc.verify(std::slice::from_ref(&hash)).unwrap();
    wait_until(
        "the paused torrent to verify",
        Duration::from_secs(20),
        || {
            let t = status_of(&d.rpc, &hash)?;
            if t.have_valid == obj.size
                && t.state() == dist::daemons::transmission::TorrentState::Stopped
            {
                Ok(())
            } else {
                Err(format!("{t:?}"))
            }
        },
    );
    d.rpc.start(std::slice::from_ref(&hash)).unwrap();
    let t = wait_until("the torrent to seed", Duration::from_secs(20), || {
        let t = status_of(&d.rpc, &hash)?;
        if t.is_seeding() {
            Ok(t)
        } else {
            Err(format!("{t:?}"))
        }
    });
    eprintln!("rpc: seeding after {:?}", started.elapsed());
    assert_eq!(t.hash_string, obj.infohash);
    assert_eq!(t.name, "hello-1.0.0.tar");
    assert_eq!(t.size_when_done, obj.size);
    assert_eq!(t.have_valid, obj.size);
    assert_eq!(t.percent_done, 1.0);
    assert_eq!(t.corrupt_ever, 0);
    assert_eq!((t.error, t.error_string.as_str()), (0, ""));
    assert_eq!(Path::new(&t.download_dir), objects);
    assert_eq!(d.rpc.all().unwrap(), vec![t]);
    assert!(d.rpc.get(&[]).unwrap().is_empty());

    d.rpc.remove(std::slice::from_ref(&hash), false).unwrap();
    assert!(d.rpc.all().unwrap().is_empty());
    assert!(obj.tar.is_file(), "remove without delete keeps the data");

    let pid = d.pid;
    d.stop().unwrap();
    assert!(gone(pid), "transmission-daemon {pid} still runs");
    eprintln!("rpc: done after {:?}", started.elapsed());
}

#[test]
fn a_detached_daemon_stops_by_pid() {
    require_tool("transmission-daemon");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = DaemonConfig::new(
        tmp.path().join("daemon"),
        tmp.path().join("downloads"),
        free_loopback_port(),
        free_loopback_port(),
    );
    let pid = start_daemon(&cfg).unwrap().detach();
    let rpc = Rpc::new(&cfg.rpc_url());
    assert!(rpc.ping(), "the detached daemon answers");
    // The port belongs to a running daemon now: a second start must not share it.
    let again = DaemonConfig {
        config_dir: tmp.path().join("again"),
        ..cfg.clone()
    };
    let e = start_daemon(&again).err().unwrap();
    assert_eq!(
        format!("{e:#}"),
        format!(
            "transmission rpc port 127.0.0.1:{} is already in use (tcp)",
            cfg.rpc_port
        )
    );
    stop_daemon_by_pid(pid, &rpc).unwrap();
    assert!(!rpc.ping());
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z "),
        "transmission-daemon {pid} still runs: {state}"
    );
    stop_daemon_by_pid(pid, &rpc).unwrap();
}

/// Both flavours of the namespace helper: addresses on `lo`, commands inside, and on drop no
/// process and no namespace left.
#[test]
fn netns_helper_isolates_and_cleans_up() {
    let mut flavours = vec![("unprivileged", Netns::unprivileged as fn(&[&str]) -> _)];
    if fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    {
        flavours.push(("named", Netns::named));
    }
    for (flavour, make) in flavours {
        let ns = make(&["10.77.0.2", "10.77.0.3"]).unwrap();
        let addrs = ns.run(&["ip", "-br", "addr", "show", "dev", "lo"]).unwrap();
        for want in ["UNKNOWN", "127.0.0.1/8", "10.77.0.2/32", "10.77.0.3/32"] {
            assert!(addrs.contains(want), "{flavour}: {want} missing in {addrs}");
        }
        let host = Command::new("ip").args(["-br", "addr"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&host.stdout).contains("10.77.0.2/32"));

        let mut sleeper = ns.command("sleep").arg("600").spawn().unwrap();
        let pid = sleeper.id();
        wait_until("the sleeper to enter", Duration::from_secs(5), || {
            let pids = ns.pids();
            pids.contains(&pid).then_some(()).ok_or(format!("{pids:?}"))
        });
        let name = ns.name().to_string();
        drop(ns);
        // Killed by the drop; reaping is the parent's job.
        sleeper.wait().unwrap();
        assert!(gone(pid), "{flavour}: sleeper {pid} survived the drop");
        assert!(
            !Path::new("/run/netns").join(&name).exists(),
            "{flavour}: namespace {name} left behind"
        );
    }
}

/// Runs `swarm_inside_namespace` again, inside a fresh namespace with 10.77.0.1-3 on its `lo`,
/// so that the library starts tracker and daemons exactly as `dist serve` does when it already
/// runs in one (no wrappers, RPC on the namespace's own loopback).
#[test]
fn swarm_in_a_namespace() {
    for tool in [
        "opentracker",
        "transmission-daemon",
        "transmission-remote",
        "b3sum",
    ] {
        require_tool(tool);
    }
    let ns = Netns::new(&["10.77.0.1", "10.77.0.2", "10.77.0.3"])
        .expect("cannot make a network namespace");
    let tmp = tempfile::tempdir().unwrap();
    let log_path = tmp.path().join("inside.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut child = ns
        .command(std::env::current_exe().unwrap())
        .args([
            "swarm_inside_namespace",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE_NETNS, ns.name())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(150);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("timed out after {limit:?}:\n{output}"));
    assert!(
        status.success() && output.contains("1 passed"),
        "the swarm test inside {} failed ({status}):\n{output}",
        ns.name()
    );
    eprintln!("{output}");
    let left = ns.pids();
    assert!(left.is_empty(), "processes left in the namespace: {left:?}");
}

#[test]
#[ignore = "swarm_in_a_namespace runs this inside the namespace it makes"]
fn swarm_inside_namespace() {
    if std::env::var_os(INSIDE_NETNS).is_none() {
        eprintln!("not inside a test namespace: run swarm_in_a_namespace instead");
        return;
    }
    let started = Instant::now();
    let lap = |what: &str| eprintln!("swarm: {what} after {:?}", started.elapsed());
    let tmp = tempfile::tempdir().unwrap();
    let objects = tmp.path().join("objects");
    let obj = pack("hello-1.0.0", &objects);

    // A fresh namespace: every port is free, and the tracker may stay on 127.0.0.1.
    let tracker = start_tracker(
        &TrackerConfig::new(
            tmp.path().join("tracker"),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 6969)),
        ),
        std::slice::from_ref(&obj.infohash),
    )
    .unwrap();
    let info = Info::parse_torrent(&obj.torrent).unwrap();
    let torrent = info.render(&[tracker.announce_url()], &[]);
    let torrent_path = tmp.path().join("hello-1.0.0.tar.torrent");
    fs::write(&torrent_path, &torrent).unwrap();
    lap("tracker up");

    // Seeder on 10.77.0.2: verify while paused, then start, so its first announce is a seed's.
    let mut seed_cfg = DaemonConfig::new(tmp.path().join("seeder"), &objects, 51413, 9091);
    seed_cfg.bind_ipv4 = Some(Ipv4Addr::new(10, 77, 0, 2));
    let seeder = start_daemon(&seed_cfg).unwrap();
    let hash = seeder.rpc.add_torrent(&torrent, &objects, true).unwrap();
    assert_eq!(hash, obj.infohash);
    seeder.rpc.verify(std::slice::from_ref(&hash)).unwrap();
    wait_until("the seeder to verify", Duration::from_secs(20), || {
        let t = status_of(&seeder.rpc, &hash)?;
        (t.have_valid == obj.size
            && t.state() == dist::daemons::transmission::TorrentState::Stopped)
            .then_some(())
            .ok_or(format!("{t:?}"))
    });
    seeder.rpc.start(std::slice::from_ref(&hash)).unwrap();
    wait_until("the seeder to seed", Duration::from_secs(20), || {
        let t = status_of(&seeder.rpc, &hash)?;
        t.is_seeding().then_some(()).ok_or(format!("{t:?}"))
    });
    lap("seeder seeding");
    // A leecher that announces before the seeder would wait out the tracker's min interval.
    wait_until(
        "the tracker to list the seeder",
        Duration::from_secs(20),
        || {
            let s = tracker.swarm(&hash).map_err(|e| format!("{e:#}"))?;
            (s.complete == 1).then_some(()).ok_or(format!("{s:?}"))
        },
    );
    lap("seeder announced");

    // Leecher on 10.77.0.3, driven by an independent client: transmission-remote.
    let leech_dir = tmp.path().join("leech");
    let mut leech_cfg = DaemonConfig::new(tmp.path().join("leecher"), &leech_dir, 51414, 9092);
    leech_cfg.bind_ipv4 = Some(Ipv4Addr::new(10, 77, 0, 3));
    let leecher = start_daemon(&leech_cfg).unwrap();
    let remote = || {
        let mut c = Command::new("transmission-remote");
        c.arg(format!("127.0.0.1:{}", leech_cfg.rpc_port));
        c
    };
    run_ok(
        remote()
            .arg("-a")
            .arg(&torrent_path)
            .arg("-w")
            .arg(&leech_dir),
    );
    lap("leecher added the torrent");
    wait_until("the leecher to finish", Duration::from_secs(90), || {
        let out = remote()
            .args(["-t", &hash.to_hex(), "-i"])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let done = text.lines().any(|l| l.trim() == "Percent Done: 100%");
        let state = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("State: "))
            .unwrap_or("?");
        (done && matches!(state, "Seeding" | "Idle" | "Finished"))
            .then_some(())
            .ok_or(text)
    });
    lap("leecher done");

    let file = leech_dir.join("hello-1.0.0.tar");
    let b3 = run_ok(Command::new("b3sum").arg("--no-names").arg(&file));
    assert_eq!(String::from_utf8_lossy(&b3.stdout).trim(), obj.blake3);
    assert_eq!(fs::read(&file).unwrap(), fs::read(&obj.tar).unwrap());
    let seed = status_of(&seeder.rpc, &hash).unwrap();
    assert!(
        seed.uploaded_ever >= obj.size,
        "the bytes came from the seeder: {seed:?}"
    );

    // Graceful stops tell the tracker: no stale peers stay behind.
    let pids = [leecher.pid, seeder.pid, tracker.pid()];
    leecher.stop().unwrap();
    lap("leecher stopped");
    seeder.stop().unwrap();
    lap("seeder stopped");
    let s = tracker.swarm(&hash).unwrap();
    assert_eq!((s.complete, s.incomplete, s.downloaded), (0, 0, 1), "{s:?}");
    tracker.stop().unwrap();
    for pid in pids {
        assert!(gone(pid), "{pid} still runs");
    }
    lap("all stopped");
}

//! `dist pack`: golden digests, determinism, agreement with independent tools, invalid input.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// Packs `dir` into `out/pkg.tar` and returns the JSON it printed.
fn pack_json(dir: &Path, out: &Path) -> serde_json::Value {
    let o = run_ok(dist().arg("pack").arg(dir).arg("-o").arg(out).arg("--json"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "stdout must be the JSON object only:\n{text}"
    );
    stdout_json(&o)
}

fn golden() -> Vec<(String, BTreeMap<String, String>)> {
    let text = fs::read_to_string(fixtures().join("golden.tsv")).unwrap();
    let mut rows = Vec::new();
    let mut header: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<String> = line.split('\t').map(str::to_string).collect();
        if header.is_empty() {
            header = cols;
            continue;
        }
        let map = header.iter().cloned().zip(cols.iter().cloned()).collect();
        rows.push((cols[0].clone(), map));
    }
    rows
}

#[test]
fn golden_digests_of_valid_fixtures() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs: Vec<String> = fs::read_dir(fixtures().join("valid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    let mut actual = String::from("fixture\tname\tversion\tsize\tblake3\tinfohash\n");
    for d in &dirs {
        let v = pack_json(&fixture(d), &tmp.path().join(format!("{d}.tar")));
        actual.push_str(&format!(
            "{d}\t{}\t{}\t{}\t{}\t{}\n",
            v["name"].as_str().unwrap(),
            v["version"].as_str().unwrap(),
            v["size"],
            v["blake3"].as_str().unwrap(),
            v["infohash"].as_str().unwrap()
        ));
    }
    let path = fixtures().join("golden.tsv");
    if std::env::var_os("DIST_BLESS").is_some() {
        fs::write(&path, &actual).unwrap();
    }
    let expected = fs::read_to_string(&path).unwrap();
    assert_eq!(
        expected, actual,
        "format drift: the canonical objects no longer match fixtures/golden.tsv \
         (if the change is intended, bump the format version in store-format.md and re-bless with DIST_BLESS=1)"
    );
    assert_eq!(golden().len(), dirs.len());
}

#[test]
fn json_output_has_the_contract_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("h.tar");
    let o = run_ok(
        dist()
            .arg("pack")
            .arg(fixture("hello-1.0.0"))
            .arg("-o")
            .arg(&out)
            .arg("--json"),
    );
    let v = stdout_json(&o);
    assert_eq!(v["name"], "hello");
    assert_eq!(v["version"], "1.0.0");
    let b3 = v["blake3"].as_str().unwrap();
    let ih = v["infohash"].as_str().unwrap();
    assert_eq!(b3.len(), 64);
    assert_eq!(ih.len(), 40);
    assert!(b3
        .chars()
        .chain(ih.chars())
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_eq!(
        v["size"].as_u64().unwrap(),
        fs::metadata(&out).unwrap().len()
    );
    let magnet = v["magnet"].as_str().unwrap();
    assert!(magnet.starts_with(&format!("magnet:?xt=urn:btih:{ih}&dn=hello-1.0.0.tar&xl=")));
    assert!(tmp.path().join("h.tar.torrent").is_file());
    // The version string is the manifest's, unchanged (build metadata included).
    let v = pack_json(&fixture("nested-0.3.0+build.7"), &tmp.path().join("n.tar"));
    assert_eq!(v["version"], "0.3.0+build.7");
}

#[test]
fn b3sum_transmission_show_and_gnu_tar_agree() {
    require_tool("b3sum");
    require_tool("transmission-show");
    let tmp = tempfile::tempdir().unwrap();
    for d in [
        "hello-1.0.0",
        "nested-0.3.0+build.7",
        "The-Package-Name-1.2.3",
    ] {
        let out = tmp.path().join(format!("{d}.tar"));
        let v = pack_json(&fixture(d), &out);
        let b3 = run_ok(Command::new("b3sum").arg("--no-names").arg(&out));
        assert_eq!(
            String::from_utf8_lossy(&b3.stdout).trim(),
            v["blake3"].as_str().unwrap()
        );
        let show = run_ok(Command::new("transmission-show").arg(out.with_extension("tar.torrent")));
        let show = String::from_utf8_lossy(&show.stdout);
        assert!(
            show.contains(&format!("Hash: {}", v["infohash"].as_str().unwrap())),
            "transmission-show disagrees:\n{show}"
        );
        let x = tmp.path().join(format!("x-{d}"));
        fs::create_dir(&x).unwrap();
        run_ok(Command::new("tar").arg("-xf").arg(&out).arg("-C").arg(&x));
        assert_same_tree(&fixture(d), &x);
    }
}

/// Copies `from` to `to` creating entries in reverse order, under another umask-like mode mix.
fn copy_reversed(from: &Path, to: &Path, scramble: bool) {
    fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = fs::read_dir(from).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
    for e in entries {
        let ft = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_reversed(&e.path(), &dest, scramble);
            if scramble {
                fs::set_permissions(&dest, fs::Permissions::from_mode(0o700)).unwrap();
            }
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else {
            fs::copy(e.path(), &dest).unwrap();
            if scramble {
                let exec = fs::metadata(e.path()).unwrap().permissions().mode() & 0o100;
                fs::set_permissions(&dest, fs::Permissions::from_mode(0o600 | exec | 0o060))
                    .unwrap();
            }
        }
    }
}

#[test]
fn same_content_same_bytes_whatever_mtimes_modes_order_owner_and_path() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("nested-0.3.0+build.7");
    let a = tmp.path().join("a").join("nested");
    let b = tmp.path().join("some/other/deeper/place/pkg");
    common::copy_tree(&src, &a);
    copy_reversed(&src, &b, true);
    // Different mtimes everywhere (not following links), and another owner when we can.
    run_ok(Command::new("find").arg(&b).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "@1234567890",
        "{}",
        "+",
    ]));
    run_ok(
        Command::new("find")
            .arg(&a)
            .args(["-exec", "touch", "-h", "-d", "@1", "{}", "+"]),
    );
    if unsafe_is_root() {
        run_ok(
            Command::new("chown")
                .args(["-R", "-h", "4321:8765"])
                .arg(&b),
        );
    }
    // Even a package made under a restrictive umask packs the same.
    let c = tmp.path().join("umask");
    run_ok(Command::new("sh").arg("-c").arg(format!(
        "umask 077 && cp -R {} {}",
        shell_quote(&src),
        shell_quote(&c)
    )));
    let outs: Vec<_> = [&a, &b, &c]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let out = tmp.path().join(format!("o{i}.tar"));
            let v = pack_json(d, &out);
            (
                v,
                fs::read(&out).unwrap(),
                fs::read(tmp.path().join(format!("o{i}.tar.torrent"))).unwrap(),
            )
        })
        .collect();
    for (v, tar, torrent) in &outs[1..] {
        assert_eq!(v["blake3"], outs[0].0["blake3"]);
        assert_eq!(v["infohash"], outs[0].0["infohash"]);
        assert!(tar == &outs[0].1, "tarball bytes differ");
        assert!(torrent == &outs[0].2, ".torrent bytes differ");
    }
    let torrent = String::from_utf8_lossy(&outs[0].2);
    assert!(!torrent.contains("creation date") && !torrent.contains("created by"));
}

fn unsafe_is_root() -> bool {
    let o = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim() == "0"
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn every_invalid_fixture_gets_its_error_and_writes_nothing() {
    let text = fs::read_to_string(fixtures().join("invalid/expected-errors.txt")).unwrap();
    let mut checked = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (dir, want) = line.split_once('\t').unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out.tar");
        let pkg = fixtures().join("invalid").join(dir);
        let err = run_err(dist().arg("pack").arg(&pkg).arg("-o").arg(&out));
        assert!(err.contains(want), "{dir}: expected `{want}` in:\n{err}");
        assert!(
            err.contains(&format!("invalid/{dir}")),
            "{dir}: the error does not name the package path:\n{err}"
        );
        let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{dir}: pack left files behind: {left:?}");
        checked += 1;
    }
    let dirs = fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(
        checked, dirs,
        "every invalid fixture needs a line in expected-errors.txt"
    );
}

#[test]
fn special_files_are_refused_and_hard_links_become_regular_files() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    common::copy_tree(&fixture("hello-1.0.0"), &base);

    // FIFO
    let fifo = tmp.path().join("fifo");
    common::copy_tree(&base, &fifo);
    run_ok(Command::new("mkfifo").arg(fifo.join("assets/pipe")));
    let err = run_err(
        dist()
            .arg("pack")
            .arg(&fifo)
            .arg("-o")
            .arg(tmp.path().join("f.tar")),
    );
    assert!(
        err.contains("assets/pipe: a FIFO cannot be packaged"),
        "{err}"
    );

    // Socket
    let sock = tmp.path().join("sock");
    common::copy_tree(&base, &sock);
    let _listener = std::os::unix::net::UnixListener::bind(sock.join("assets/sock")).unwrap();
    let err = run_err(
        dist()
            .arg("pack")
            .arg(&sock)
            .arg("-o")
            .arg(tmp.path().join("s.tar")),
    );
    assert!(
        err.contains("assets/sock: a socket cannot be packaged"),
        "{err}"
    );

    // Device (needs root to make)
    if unsafe_is_root() {
        let dev = tmp.path().join("dev");
        common::copy_tree(&base, &dev);
        run_ok(
            Command::new("mknod")
                .arg(dev.join("assets/null"))
                .args(["c", "1", "3"]),
        );
        let err = run_err(
            dist()
                .arg("pack")
                .arg(&dev)
                .arg("-o")
                .arg(tmp.path().join("d.tar")),
        );
        assert!(
            err.contains("assets/null: a character device cannot be packaged"),
            "{err}"
        );
    }

    // A symlink whose target goes through another in-package link to leave the package.
    let sneaky = tmp.path().join("sneaky");
    common::copy_tree(&base, &sneaky);
    std::os::unix::fs::symlink(".", sneaky.join("assets/here")).unwrap();
    std::os::unix::fs::symlink("here/../../..", sneaky.join("assets/out")).unwrap();
    let err = run_err(
        dist()
            .arg("pack")
            .arg(&sneaky)
            .arg("-o")
            .arg(tmp.path().join("x.tar")),
    );
    assert!(
        err.contains("assets/out: symlink to `here/../../..` points outside"),
        "{err}"
    );

    // Hard links are stored as two independent regular files: same bytes as a plain copy.
    let hard = tmp.path().join("hard");
    let copy = tmp.path().join("copy");
    common::copy_tree(&base, &hard);
    common::copy_tree(&base, &copy);
    fs::hard_link(hard.join("assets/README"), hard.join("assets/README2")).unwrap();
    fs::copy(copy.join("assets/README"), copy.join("assets/README2")).unwrap();
    let h = pack_json(&hard, &tmp.path().join("h.tar"));
    let c = pack_json(&copy, &tmp.path().join("c.tar"));
    assert_eq!(h["blake3"], c["blake3"]);
    let listing = run_ok(
        Command::new("tar")
            .arg("-tvf")
            .arg(tmp.path().join("h.tar")),
    );
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        !listing.contains(" link to "),
        "hard link entry in archive:\n{listing}"
    );

    // Nothing was left behind by the failures.
    for f in ["f.tar", "s.tar", "d.tar", "x.tar"] {
        assert!(!tmp.path().join(f).exists() && !tmp.path().join(format!("{f}.torrent")).exists());
    }
}

#[test]
fn output_into_missing_directory_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let err = run_err(
        dist()
            .arg("pack")
            .arg(fixture("hello-1.0.0"))
            .arg("-o")
            .arg(tmp.path().join("no/such/dir/x.tar")),
    );
    assert!(err.contains("no/such/dir"), "{err}");
}

#[test]
fn a_description_with_control_characters_is_refused_issue_9() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = tmp.path().join("pkg");
    copy_tree(&fixture("hello-1.0.0"), &pkg);
    fs::write(
        pkg.join("manifest.yaml"),
        "name: hello\nversion: 1.0.0\ndescription: \"red \\e[31m bell \\a\"\n",
    )
    .unwrap();
    let out = tmp.path().join("out.tar");
    let err = run_err(dist().args(["pack", "-o"]).arg(&out).arg(&pkg));
    assert!(
        err.contains("field `description`") && err.contains("control character U+001B"),
        "{err}"
    );
    assert!(!out.exists());
}

//! Verified objects and unpacking: every valid fixture round-trips through `dist pack`,
//! `verify_file` and `unpack`; digests are checked; hostile archives are refused before a byte is
//! written; tree records find what changed.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use dist::format::ids::ObjectId;
use dist::object::{self, ObjectError, UnpackSummary};
use dist::store::tree::{self, TreeKind};

/// Packs `dir` into `out` with the real binary and returns the BLAKE3 it printed.
fn pack(dir: &Path, out: &Path) -> String {
    let o = run_ok(dist().arg("pack").arg(dir).arg("-o").arg(out).arg("--json"));
    stdout_json(&o)["blake3"].as_str().unwrap().to_string()
}

fn valid_fixtures() -> Vec<String> {
    let mut dirs: Vec<String> = fs::read_dir(fixtures().join("valid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    dirs
}

fn id(hex: &str) -> ObjectId {
    ObjectId::parse(hex).unwrap()
}

fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn every_valid_fixture_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    for d in valid_fixtures() {
        let src = fixture(&d);
        let archive = tmp.path().join(format!("{d}.tar"));
        let digest = pack(&src, &archive);
        let obj = object::verify_file(&archive, &id(&digest)).unwrap();
        assert_eq!(obj.id().to_hex(), digest);
        assert_eq!(obj.size(), fs::metadata(&archive).unwrap().len());
        let dest = tmp.path().join(format!("x-{d}"));
        fs::create_dir(&dest).unwrap();
        let summary = object::unpack(&obj, &dest).unwrap();

        assert_same_tree(&src, &dest);
        let want = tree::tree_record(&src).unwrap();
        let got = tree::tree_record(&dest).unwrap();
        assert_eq!(want, got, "{d}: tree records differ");
        assert!(tree::diff_tree(&want, &got).is_empty());

        // The summary counts what the record lists; modes are exactly 0755/0644.
        let mut count = UnpackSummary::default();
        for e in &got {
            let mode = fs::symlink_metadata(dest.join(&e.path))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777;
            match &e.kind {
                TreeKind::Dir => {
                    count.dirs += 1;
                    assert_eq!(mode, 0o755, "{d}: {}", e.path);
                }
                TreeKind::File {
                    size, executable, ..
                } => {
                    count.files += 1;
                    count.bytes += size;
                    let want = if *executable { 0o755 } else { 0o644 };
                    assert_eq!(mode, want, "{d}: {}", e.path);
                }
                TreeKind::Symlink { .. } => count.symlinks += 1,
                TreeKind::Other { file_type } => panic!("{d}: {}: a {file_type}", e.path),
            }
        }
        assert_eq!(summary, count, "{d}");
    }
}

#[test]
fn wrong_digest_and_corrupted_byte_fail_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("hello.tar");
    let digest = pack(&fixture("hello-1.0.0"), &archive);

    let zeros = "0".repeat(64);
    let err = object::verify_file(&archive, &id(&zeros)).unwrap_err();
    assert!(matches!(err, ObjectError::Mismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&zeros) && msg.contains(&digest) && msg.contains("hello.tar"),
        "{msg}"
    );

    let err = ObjectId::parse("not-a-digest").unwrap_err();
    assert!(err
        .to_string()
        .contains("`not-a-digest` is not a BLAKE3 digest"));

    let mut bytes = fs::read(&archive).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::write(&archive, &bytes).unwrap();
    let msg = object::verify_file(&archive, &id(&digest))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("expected {digest}, found {}", b3(&bytes))),
        "{msg}"
    );

    let err = object::verify_file(&tmp.path().join("missing.tar"), &id(&digest)).unwrap_err();
    assert!(err.to_string().contains("missing.tar"), "{err}");
}

#[test]
fn rewritten_after_verification_is_caught_and_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("n.tar");
    let digest = pack(&fixture("nested-0.3.0+build.7"), &archive);
    let obj = object::verify_file(&archive, &id(&digest)).unwrap();
    // Same length, one byte of file data changed in place: the headers still pass the first
    // pass, the re-hash during the second catches it.
    let bytes = fs::read(&archive).unwrap();
    let at = find_header(&bytes, "assets/lib/libnested.so.1") + 512;
    let mut changed = bytes.clone();
    changed[at] ^= 0x20;
    fs::write(&archive, &changed).unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let msg = object::unpack(&obj, &dest).unwrap_err().to_string();
    assert!(
        msg.contains("changed on disk since it was verified")
            && msg.contains(&format!("blake3 expected {digest}, now {}", b3(&changed))),
        "{msg}"
    );
    assert!(
        names_in(&dest).is_empty(),
        "left behind: {:?}",
        names_in(&dest)
    );

    // Replacing the path does not matter: the verified object keeps the file it hashed.
    fs::write(&archive, &bytes).unwrap();
    let obj = object::verify_file(&archive, &id(&digest)).unwrap();
    fs::rename(&archive, tmp.path().join("moved.tar")).unwrap();
    fs::write(&archive, b"something else entirely").unwrap();
    object::unpack(&obj, &dest).unwrap();
    assert_same_tree(&fixture("nested-0.3.0+build.7"), &dest);
}

#[test]
fn destination_must_be_an_existing_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("h.tar");
    let digest = pack(&fixture("hello-1.0.0"), &archive);
    let obj = object::verify_file(&archive, &id(&digest)).unwrap();
    let full = tmp.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("x"), b"x").unwrap();
    let link = tmp.path().join("link");
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    std::os::unix::fs::symlink(&empty, &link).unwrap();
    for dest in [full, link, tmp.path().join("missing"), archive.clone()] {
        let err = object::unpack(&obj, &dest).unwrap_err();
        assert!(matches!(err, ObjectError::Dest(_)), "{err:?}");
        assert!(
            err.to_string().contains(&dest.display().to_string()),
            "{err}"
        );
    }
    assert!(names_in(&empty).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Hostile archives, built byte by byte.

/// One 512-byte ustar header with a correct checksum (format v1 layout, store-format.md §2).
fn header(name: &[u8], typeflag: u8, mode: u32, size: u64, link: &[u8]) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..name.len()].copy_from_slice(name);
    b[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    b[136..148].copy_from_slice(b"00000000000\0");
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..265].copy_from_slice(b"ustar\x0000");
    b[329..337].copy_from_slice(b"0000000\0");
    b[337..345].copy_from_slice(b"0000000\0");
    set_checksum(&mut b);
    b
}

fn set_checksum(b: &mut [u8]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b[..512].iter().map(|&x| x as u32).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// An archive under construction.
#[derive(Clone, Default)]
struct Tar(Vec<u8>);

impl Tar {
    /// A complete, valid package: every hostile case adds to it.
    fn package() -> Tar {
        let mut t = Tar::default();
        t.file("manifest.yaml", b"name: evil\nversion: 1.0.0\n")
            .dir("assets")
            .dir("scripts")
            .file("scripts/install.sh", b"true\n")
            .file("scripts/uninstall.sh", b"true\n");
        t
    }

    fn raw(&mut self, header: [u8; 512], data: &[u8]) -> &mut Tar {
        self.0.extend_from_slice(&header);
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Tar {
        self.raw(
            header(name.as_bytes(), b'0', 0o644, data.len() as u64, b""),
            data,
        )
    }

    fn dir(&mut self, name: &str) -> &mut Tar {
        self.raw(
            header(format!("{name}/").as_bytes(), b'5', 0o755, 0, b""),
            b"",
        )
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.raw(
            header(name.as_bytes(), b'2', 0o777, 0, target.as_bytes()),
            b"",
        )
    }

    fn special(&mut self, name: &str, typeflag: u8, link: &str) -> &mut Tar {
        self.raw(
            header(name.as_bytes(), typeflag, 0o644, 0, link.as_bytes()),
            b"",
        )
    }

    /// A PAX extended header with these records (the length prefix computed here).
    fn pax(&mut self, records: &[(&str, &str)]) -> &mut Tar {
        let mut data = String::new();
        for (k, v) in records {
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.push_str(&format!("{len} {k}={v}\n"));
        }
        self.raw(
            header(b"././@PaxHeader", b'x', 0o644, data.len() as u64, b""),
            data.as_bytes(),
        )
    }

    /// The archive with its two end blocks.
    fn end(&self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.resize(v.len() + 1024, 0);
        v
    }
}

/// Offset of the header of `path` in a canonical archive.
fn find_header(bytes: &[u8], path: &str) -> usize {
    let mut name = path.as_bytes().to_vec();
    name.push(0);
    (0..bytes.len())
        .step_by(512)
        .find(|&at| bytes[at..].starts_with(&name))
        .unwrap_or_else(|| panic!("no header for {path}"))
}

/// Writes `bytes` as an object, verifies it (the digest is right: verification says the bytes
/// are the published ones, not that they are safe), unpacks it into an empty `work/dest` and
/// expects a refusal containing every `want`, with nothing written anywhere.
fn refused(case: &str, bytes: &[u8], want: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("obj.tar");
    fs::write(&archive, bytes).unwrap();
    let work = tmp.path().join("work");
    let dest = work.join("dest");
    fs::create_dir_all(&dest).unwrap();
    let obj = object::verify_file(&archive, &id(&b3(bytes)))
        .unwrap_or_else(|e| panic!("{case}: verification failed: {e}"));
    let err = match object::unpack(&obj, &dest) {
        Ok(s) => panic!("{case}: unpacked ({s:?}) but should have been refused"),
        Err(e) => e,
    };
    let msg = err.to_string();
    for w in want {
        assert!(msg.contains(w), "{case}: expected `{w}` in: {msg}");
    }
    assert!(
        msg.contains("obj.tar"),
        "{case}: the error does not name the archive: {msg}"
    );
    assert!(
        names_in(&dest).is_empty(),
        "{case}: wrote into the destination: {:?}",
        names_in(&dest)
    );
    assert_eq!(
        names_in(&work),
        ["dest"],
        "{case}: wrote next to the destination"
    );
    assert_eq!(
        names_in(tmp.path()),
        ["obj.tar", "work"],
        "{case}: wrote outside"
    );
    msg
}

#[test]
fn hostile_archives_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let abs = tmp.path().join("abs-evil");
    let abs = abs.to_str().unwrap();
    let long = format!("assets/{}", "l".repeat(120));
    let abs_entry = format!("entry `{abs}`");

    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "parent-dir entry",
            Tar::package().file("../evil", b"x").end(),
            vec!["entry `../evil`", "`..` component"],
        ),
        (
            "parent-dir inside the path",
            Tar::package().file("assets/../../evil", b"x").end(),
            vec!["entry `assets/../../evil`", "`..` component"],
        ),
        (
            "absolute path",
            Tar::package().file(abs, b"x").end(),
            vec![&abs_entry, "absolute path"],
        ),
        (
            "escaping symlink",
            Tar::package().symlink("assets/l", "../../etc").end(),
            vec![
                "entry `assets/l`",
                "symlink to `../../etc` points outside the package",
            ],
        ),
        (
            "write through an escaping symlink",
            Tar::package()
                .symlink("assets/l", "../../etc")
                .file("assets/l/passwd", b"root::0:0::/:/bin/sh\n")
                .end(),
            vec![
                "entry `assets/l/passwd`",
                "its parent `assets/l` is a symlink, not a directory",
            ],
        ),
        (
            "write through an inside symlink",
            Tar::package()
                .dir("assets/d")
                .symlink("assets/l", "d")
                .file("assets/l/f", b"x")
                .end(),
            vec!["entry `assets/l/f`", "its parent `assets/l` is a symlink"],
        ),
        (
            "absolute symlink",
            Tar::package().symlink("assets/abs", "/etc/passwd").end(),
            vec!["entry `assets/abs`", "absolute symlink to `/etc/passwd`"],
        ),
        (
            "symlink leaving through another link",
            Tar::package()
                .symlink("assets/here", ".")
                .symlink("assets/out", "here/../../..")
                .end(),
            vec!["entry `assets/out`", "points outside the package"],
        ),
        (
            "hard link",
            Tar::package()
                .special("assets/hard", b'1', "manifest.yaml")
                .end(),
            vec![
                "entry `assets/hard`",
                "a hard link (to `manifest.yaml`) is refused",
            ],
        ),
        (
            "character device",
            Tar::package().special("assets/null", b'3', "").end(),
            vec!["entry `assets/null`", "a character device is refused"],
        ),
        (
            "block device",
            Tar::package().special("assets/sda", b'4', "").end(),
            vec!["entry `assets/sda`", "a block device is refused"],
        ),
        (
            "FIFO",
            Tar::package().special("assets/pipe", b'6', "").end(),
            vec!["entry `assets/pipe`", "a FIFO is refused"],
        ),
        (
            "duplicate path",
            Tar::package()
                .file("assets/dup", b"first")
                .file("assets/dup", b"second")
                .end(),
            vec!["entry `assets/dup`", "duplicate entry"],
        ),
        (
            "a file replacing a directory",
            Tar::package().file("assets", b"x").end(),
            vec![
                "entry `assets`",
                "duplicate entry (an earlier entry is a directory",
            ],
        ),
        (
            "missing parent directory entry",
            Tar::package().file("assets/nodir/file", b"x").end(),
            vec![
                "entry `assets/nodir/file`",
                "its parent directory `assets/nodir` has no earlier entry",
            ],
        ),
        (
            "parent directory after its child",
            Tar::package()
                .file("assets/late/file", b"x")
                .dir("assets/late")
                .end(),
            vec!["entry `assets/late/file`", "has no earlier entry"],
        ),
        (
            "GNU long name",
            {
                let mut name = long.clone().into_bytes();
                name.push(0);
                Tar::package()
                    .raw(
                        header(b"././@LongLink", b'L', 0o644, name.len() as u64, b""),
                        &name,
                    )
                    .file(&long[..100], b"x")
                    .end()
            },
            vec!["entry `././@LongLink`", "a GNU long name header is refused"],
        ),
        (
            "global PAX header",
            Tar::package()
                .raw(header(b"pax_global_header", b'g', 0o644, 0, b""), b"")
                .end(),
            vec![
                "entry `pax_global_header`",
                "a global PAX header is refused",
            ],
        ),
        (
            "PAX with an unknown key",
            Tar::package()
                .pax(&[("path", "assets/p"), ("mtime", "1234567890")])
                .file("assets/p", b"x")
                .end(),
            vec!["entry `assets/p`", "the PAX header carries the key `mtime`"],
        ),
        (
            "PAX path overriding an innocent name",
            Tar::package()
                .pax(&[("path", "assets/../../evil")])
                .file("assets/innocent", b"x")
                .end(),
            vec!["entry `assets/../../evil`", "`..` component"],
        ),
        (
            "PAX linkpath escaping",
            Tar::package()
                .pax(&[("linkpath", "../../../etc/shadow")])
                .symlink("assets/l", "ok")
                .end(),
            vec![
                "entry `assets/l`",
                "symlink to `../../../etc/shadow` points outside",
            ],
        ),
        (
            "PAX at the end",
            Tar::package().pax(&[("path", "assets/p")]).end(),
            vec!["a PAX header is followed by the end of the archive"],
        ),
        (
            "stray top-level entry",
            Tar::package().file("evil.sh", b"x").end(),
            vec![
                "entry `evil.sh`",
                "unexpected entry at the package's top level",
            ],
        ),
        (
            "control character in a path",
            Tar::package().file("assets/a\x1b[2Jb", b"x").end(),
            vec!["entry `assets/a\\u{1b}[2Jb`", "a control character"],
        ),
        (
            "dot component",
            Tar::package().file("assets/./x", b"x").end(),
            vec!["entry `assets/./x`", "`.` component"],
        ),
        (
            "missing install script",
            {
                let mut t = Tar::default();
                t.file("manifest.yaml", b"x").dir("assets").dir("scripts");
                t.end()
            },
            vec!["entry `scripts/install.sh`", "missing"],
        ),
        (
            "GNU magic",
            {
                let mut t = Tar::package();
                let mut h = header(b"assets/gnu", b'0', 0o644, 0, b"");
                h[257..265].copy_from_slice(b"ustar  \0");
                set_checksum(&mut h);
                t.raw(h, b"");
                t.end()
            },
            vec!["entry `assets/gnu`", "not a POSIX ustar header"],
        ),
        (
            "ustar prefix field",
            {
                let mut t = Tar::package();
                let mut h = header(b"evil", b'0', 0o644, 0, b"");
                h[345..347].copy_from_slice(b"..");
                set_checksum(&mut h);
                t.raw(h, b"");
                t.end()
            },
            vec!["entry `evil`", "prefix field"],
        ),
        (
            "a lone zero block before more entries",
            {
                let mut t = Tar::package();
                t.0.resize(t.0.len() + 512, 0);
                t.file("assets/hidden", b"x");
                t.end()
            },
            vec!["a lone zero block at byte 4096 after entry `scripts/uninstall.sh`"],
        ),
        (
            "trailing data after the end",
            {
                let mut v = Tar::package().end();
                v.extend_from_slice(b"surprise");
                v
            },
            vec!["8 bytes follow the end-of-archive blocks"],
        ),
    ];

    let mut report = Vec::new();
    for (case, bytes, want) in &cases {
        let msg = refused(case, bytes, want);
        report.push(format!("{case}: {msg}"));
    }
    assert!(!abs_exists(abs), "the absolute path was created");
    // With --nocapture this prints what each case returned.
    println!("{}", report.join("\n"));
}

fn abs_exists(p: &str) -> bool {
    fs::symlink_metadata(p).is_ok()
}

#[test]
fn truncated_and_bad_checksum_archives_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("n.tar");
    pack(&fixture("nested-0.3.0+build.7"), &archive);
    let good = fs::read(&archive).unwrap();
    let n = good.len();
    // Layout of the tail: [uninstall.sh header][its 47 bytes + padding][two end blocks].
    assert_eq!(find_header(&good, "scripts/uninstall.sh"), n - 2048);

    let mut report = Vec::new();
    let cut_in_data = &good[..n - 1536 + 12];
    report.push(refused(
        "truncated inside file data",
        cut_in_data,
        &[
            "entry `scripts/uninstall.sh`",
            "truncated: the entry announces 47 bytes of data, 12 bytes are left",
        ],
    ));
    report.push(refused(
        "truncated before the end blocks",
        &good[..n - 1024],
        &[
            "truncated",
            "after entry `scripts/uninstall.sh`, without its two end-of-archive blocks",
        ],
    ));
    report.push(refused(
        "truncated inside a header",
        &good[..n - 2048 + 100],
        &["truncated", "after entry `scripts/install.sh`"],
    ));
    report.push(refused(
        "one end block only",
        &good[..n - 512],
        &["truncated", "after entry `scripts/uninstall.sh`"],
    ));

    // A header whose bytes no longer match its checksum (the mtime was edited).
    let at = find_header(&good, "assets/lib/libnested.so.1");
    let mut bad = good.clone();
    bad[at + 140] = b'7';
    report.push(refused(
        "bad checksum",
        &bad,
        &[
            "entry `assets/lib/libnested.so.1`",
            &format!("header checksum mismatch at byte {at}"),
        ],
    ));
    // A checksum field that is not a number at all.
    let mut bad = good.clone();
    bad[at + 148..at + 156].copy_from_slice(b"garbage!");
    report.push(refused(
        "unreadable checksum",
        &bad,
        &[
            "entry `assets/lib/libnested.so.1`",
            "the header says nothing readable",
        ],
    ));
    // A size that runs past the end, with a correct checksum.
    let mut bad = good.clone();
    bad[at + 124..at + 136].copy_from_slice(b"77777777777\0");
    set_checksum(&mut bad[at..at + 512]);
    report.push(refused(
        "size past the end",
        &bad,
        &[
            "entry `assets/lib/libnested.so.1`",
            "the archive is truncated",
        ],
    ));
    println!("{}", report.join("\n"));
}

#[test]
fn long_paths_in_pax_headers_unpack() {
    // A hand-built archive with a PAX path on a directory and a PAX path and linkpath on a
    // symlink: accepted, and written where the PAX records say.
    let deep = format!("assets/{}", "d".repeat(150));
    let link_path = format!("{deep}/link");
    let long_target = format!("{}../../manifest.yaml", "./".repeat(60));
    let mut t = Tar::package();
    t.pax(&[("path", &format!("{deep}/"))])
        .dir(&deep[..99])
        .pax(&[("path", &link_path), ("linkpath", &long_target)])
        .symlink("assets/x", "y");
    let bytes = t.end();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("pax.tar");
    fs::write(&archive, &bytes).unwrap();
    let obj = object::verify_file(&archive, &id(&b3(&bytes))).unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let s = object::unpack(&obj, &dest).unwrap();
    assert_eq!((s.dirs, s.files, s.symlinks), (3, 3, 1));
    assert_eq!(
        fs::read_link(dest.join(&link_path)).unwrap(),
        PathBuf::from(&long_target)
    );
    assert_eq!(
        fs::read(dest.join(&link_path)).unwrap(),
        b"name: evil\nversion: 1.0.0\n"
    );

    // A link target on anything but a symlink is refused, even an empty PAX one.
    let bytes = Tar::package()
        .pax(&[("linkpath", "")])
        .file("assets/f", b"x")
        .end();
    refused(
        "linkpath on a file",
        &bytes,
        &["entry `assets/f`", "a regular file carries a link target"],
    );
}

#[test]
fn diff_tree_finds_every_kind_of_change() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("n.tar");
    let digest = pack(&fixture("nested-0.3.0+build.7"), &archive);
    let obj = object::verify_file(&archive, &id(&digest)).unwrap();
    let root = tmp.path().join("tree");
    fs::create_dir(&root).unwrap();
    object::unpack(&obj, &root).unwrap();
    let recorded = tree::tree_record(&root).unwrap();

    // The record survives a JSON round trip (it is stored next to the tree).
    let json = serde_json::to_string(&recorded).unwrap();
    let back: Vec<tree::TreeEntry> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, recorded);

    let old_hash = b3(&fs::read(root.join("scripts/install.sh")).unwrap());
    fs::write(root.join("scripts/install.sh"), "echo tampered\n").unwrap();
    let new_hash = b3(b"echo tampered\n");
    fs::remove_file(root.join("assets/empty-dir/.keep")).unwrap();
    fs::write(root.join("assets/extra"), "x").unwrap();
    fs::set_permissions(
        root.join("assets/lib/libnested.so.1"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::remove_file(root.join("assets/lib/libnested.so")).unwrap();
    std::os::unix::fs::symlink("../share", root.join("assets/lib/libnested.so")).unwrap();
    fs::remove_dir(root.join("assets/empty-dir")).unwrap();
    fs::write(root.join("assets/empty-dir"), "now a file").unwrap();

    let actual = tree::tree_record(&root).unwrap();
    let diff = tree::diff_tree(&recorded, &actual);
    assert_eq!(
        diff,
        [
            "assets/empty-dir: was a directory, now a regular file".to_string(),
            "assets/empty-dir/.keep: missing".into(),
            "assets/extra: unexpected".into(),
            "assets/lib/libnested.so: link target changed (`libnested.so.1`, now `../share`)"
                .into(),
            "assets/lib/libnested.so.1: mode changed (was not executable, now executable)".into(),
            format!("scripts/install.sh: content changed (blake3 {old_hash}, now {new_hash})"),
        ]
    );
    assert!(tree::diff_tree(&actual, &actual).is_empty());
}

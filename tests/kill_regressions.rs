//! What the kill campaign (`cargo xtask campaign kill`, issue 25) found, rebuilt without the
//! kill: the state a SIGKILL left on disk is made by hand, then the next command must finish
//! the operation.

mod common;

use common::*;
use dist::index::keys::{KeyLog, PublicKey, SignedStatement, Statement, KEYS_FORMAT};
use dist::index::sign::{self, key_paths, SigningKey};
use dist::repo::Repo;

/// `dist key rotate` killed after the new key became current (`keys/secret.key` replaced by
/// the pending key, the rotation statement published) but before its serial was committed: the
/// newest serial is still signed by the old key. Running it again finishes that rotation (one
/// statement, the next serial signed by the new key) instead of rotating to a third key; so
/// does a kill after that serial was committed, before `LATEST` named it.
#[test]
fn key_rotate_killed_after_the_switch_finishes_it_issue_25_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = write_package(
        &tmp.path().join("pkg"),
        "hello",
        "1.0.0",
        "",
        ("a.txt", b"a"),
        "",
    );
    let repo = Repo::new(&tmp.path().join("repo"));
    repo.init().unwrap();
    repo.add(&[pkg]).unwrap();
    let (sk, pk) = key_paths(&tmp.path().join("repo"));
    let old = SigningKey::read(&sk).unwrap();
    let new = SigningKey::generate().unwrap();
    let (old_pk, new_pk) = (
        PublicKey::parse(&old.public_base64()).unwrap(),
        PublicKey::parse(&new.public_base64()).unwrap(),
    );
    // What `rotate_key` wrote before the kill: the statement, the retired old key, the new
    // key current; serial 1 (signed by the old key) is still the newest.
    let statement = Statement::Rotation {
        old: old_pk.base64().to_string(),
        new: new_pk.base64().to_string(),
        created: 1,
    };
    let log = KeyLog {
        format: KEYS_FORMAT,
        statements: vec![SignedStatement::sign(&statement, &[&old, &new]).unwrap()],
    };
    std::fs::write(repo.keys_path(), log.encode().unwrap()).unwrap();
    let retired = sk.parent().unwrap().join("retired");
    std::fs::create_dir_all(&retired).unwrap();
    old.write_secret(&retired.join(format!("{}.key", old_pk.id())))
        .unwrap();
    new.write_public(&pk).unwrap();
    std::fs::remove_file(&sk).unwrap();
    new.write_secret(&sk).unwrap();

    let r = repo.rotate_key().unwrap();
    assert_eq!(
        (r.old, r.new.clone(), r.serial),
        (old_pk, new_pk.clone(), 2)
    );
    assert_eq!(repo.key_log().unwrap().statements.len(), 1, "rotated again");
    let manifest = std::fs::read(repo.manifest_path(2)).unwrap();
    let sig = std::fs::read_to_string(repo.manifest_sig_path(2)).unwrap();
    sign::verify(new_pk.base64(), &manifest, &sig).expect("serial 2 signed by the new key");
    // Killed later, after its serial was committed but before `LATEST` named it: running it
    // again only points `LATEST` at that serial.
    std::fs::write(repo.published_dir().join("LATEST"), "1\n").unwrap();
    let r = repo.rotate_key().unwrap();
    assert_eq!((r.new.clone(), r.serial), (new_pk.clone(), 2));
    assert_eq!(repo.key_log().unwrap().statements.len(), 1, "rotated again");
    // A rotation after that one is an ordinary one again.
    let again = repo.rotate_key().unwrap();
    assert_eq!((again.old, again.serial), (new_pk, 3));
    assert_eq!(repo.key_log().unwrap().statements.len(), 2);
}

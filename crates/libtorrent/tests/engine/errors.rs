//! Errors come back typed, with libtorrent's message: bad .torrent bytes, unknown and duplicate
//! torrents, bad or foreign resume data, a port already taken.

use dist_libtorrent::{AddOptions, Config, Error, Session};

use crate::common::{self, LOOPBACK, MIB};

#[test]
fn a_bad_torrent_is_a_typed_error() {
    let s = common::session(false);
    let dir = tempfile::tempdir().unwrap();
    let good = common::torrent("object.bin", &common::content(MIB, 8), None);
    let bad: [&[u8]; 5] = [
        b"",
        b"this is not bencode",
        b"de",
        b"d4:infod4:name1:xee",
        &good[..good.len() / 2],
    ];
    for bytes in bad {
        match s.add(bytes, dir.path(), &AddOptions::default()) {
            Err(Error::InvalidTorrent(msg)) => {
                eprintln!(
                    "{:?}: {msg}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(20)])
                );
                assert!(!msg.is_empty());
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }
    // The session is still usable.
    s.add(&good, dir.path(), &AddOptions::default()).unwrap();
}

#[test]
fn unknown_duplicate_and_foreign_resume() {
    let s = common::session(false);
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(s.status(&[7; 20]), Err(Error::UnknownTorrent(_))));
    assert!(matches!(
        s.remove(&[7; 20], false),
        Err(Error::UnknownTorrent(_))
    ));
    let one = common::torrent("one.bin", &common::content(MIB, 9), None);
    let two = common::torrent("two.bin", &common::content(MIB, 10), None);
    let paused = AddOptions {
        paused: true,
        ..AddOptions::default()
    };
    let ih = s.add(&one, dir.path(), &paused).unwrap();
    assert!(matches!(
        s.add(&one, dir.path(), &paused),
        Err(Error::Duplicate(_))
    ));
    let resume = s.resume_data(&ih).unwrap();
    let garbage = AddOptions {
        resume: Some(b"garbage".to_vec()),
        ..AddOptions::default()
    };
    assert!(matches!(
        s.add(&two, dir.path(), &garbage),
        Err(Error::InvalidResume(_))
    ));
    let foreign = AddOptions {
        resume: Some(resume),
        ..AddOptions::default()
    };
    assert!(matches!(
        s.add(&two, dir.path(), &foreign),
        Err(Error::InvalidResume(_))
    ));
}

#[test]
fn a_busy_port_is_an_error() {
    let taken = std::net::TcpListener::bind((LOOPBACK, 0)).unwrap();
    let cfg = Config {
        bind: LOOPBACK,
        port: taken.local_addr().unwrap().port(),
        ..Config::default()
    };
    match Session::new(&cfg) {
        Err(Error::Libtorrent(msg)) => {
            eprintln!("busy port: {msg}");
            assert!(msg.contains("listen"), "{msg}");
        }
        Ok(s) => panic!("listens on port {} instead", s.listen_port()),
        other => panic!("{other:?}"),
    }
}

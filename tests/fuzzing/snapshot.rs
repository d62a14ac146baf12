//! Target `snapshot`: the published snapshot reader (`index::record::Snapshot::open`, then the
//! content digest and every row, as `sync` reads them) on mutated bytes of real snapshots,
//! published by `Repo::add` of the valid fixtures (decompressed).
//!
//! Mutations know the SQLite file layout: header fields (page size, versions, page count,
//! freelist, schema cookie, text encoding) set to edge values, b-tree page headers and cell
//! pointers altered, pages zeroed, copied or swapped, truncation at and between page
//! boundaries, the schema's SQL text and row text altered in place, plus byte-level noise.
//!
//! Properties: no panic, and every open returns within `LIMIT` (the slowest is reported); a
//! read-only open leaves nothing beside the file (no `-journal`, `-wal` or `-shm`).

use std::fs;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use dist::index::record::Snapshot;
use tempfile::TempDir;

use super::{kind_of, listing, mutate_bytes, Rng, Target};

/// An open that takes longer than this is a failure (a hang, in practice).
const LIMIT: Duration = Duration::from_secs(10);

const TOKENS: &[&[u8]] = &[
    b"CREATE TABLE",
    b"CREATE VIEW",
    b"CREATE TRIGGER",
    b"TEXT",
    b"INTEGER",
    b"BLOB",
    b"meta",
    b"packages",
    b"format",
    b"serial",
    b"created",
    b"PRIMARY KEY",
    b"NOT NULL",
    b"\0\0\0\0",
    b"\xff\xff\xff\xff",
    b"magnet:?",
    b"0123456789abcdef",
    b"SQLite format 3\0",
];

pub struct Snapshots {
    seeds: Vec<Vec<u8>>,
    _tmp: TempDir,
    dir: PathBuf,
    path: PathBuf,
}

impl Snapshots {
    pub fn new() -> Snapshots {
        let (tmp, repo) = super::published_twice();
        let seeds = (1..=2)
            .map(|s| {
                let zst = fs::read(repo.snapshot_path(s)).unwrap();
                dist::index::wire::decompress(&zst, 1 << 30).unwrap()
            })
            .collect();
        let dir = tmp.path().join("client");
        fs::create_dir(&dir).unwrap();
        Snapshots {
            seeds,
            path: dir.join("index.db"),
            dir,
            _tmp: tmp,
        }
    }
}

fn page_size(data: &[u8]) -> usize {
    match data.get(16..18).map(|b| u16::from_be_bytes([b[0], b[1]])) {
        Some(1) => 65536,
        Some(n) if n >= 512 && n.is_power_of_two() => n as usize,
        _ => 4096,
    }
}

impl Target for Snapshots {
    const NAME: &'static str = "snapshot";

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut data = rng.pick(&self.seeds).clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(10) {
                0 | 1 => header_field(rng, &mut data),
                2 | 3 => page_op(rng, &mut data),
                4 => btree_header(rng, &mut data),
                5 => text_in_place(rng, &mut data),
                6 => {
                    let ps = page_size(&data);
                    let cut = if rng.chance(50) {
                        rng.below(data.len() / ps + 1) * ps
                    } else {
                        rng.below(data.len() + 1)
                    };
                    data.truncate(cut);
                }
                _ => mutate_bytes(rng, &mut data, TOKENS),
            }
        }
        data
    }

    fn execute(&mut self, input: &[u8]) -> Result<String, String> {
        for e in fs::read_dir(&self.dir).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
        fs::write(&self.path, input).unwrap();
        let (tx, rx) = mpsc::channel();
        let path = self.path.clone();
        std::thread::spawn(move || {
            // What `sync` does with a snapshot: open it, digest its content, parse every row.
            let r = Snapshot::open(&path).and_then(|s| {
                if s.format == dist::index::record::INDEX_FORMAT {
                    s.content_digest()?;
                }
                s.all().map(|all| all.len())
            });
            let _ = tx.send(r.map_err(|e| format!("{e:#}")));
        });
        let kind = match rx.recv_timeout(LIMIT) {
            Ok(Ok(n)) => format!("ok ({n} packages)"),
            Ok(Err(e)) => kind_of(&schema_name_blanked(&e), &self.path.display().to_string()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!("Snapshot::open did not return within {LIMIT:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("Snapshot::open panicked (see the message above)".into())
            }
        };
        let left = listing(&self.dir, None);
        if left != ["f index.db"] {
            return Err(format!("a read-only open left {left:?}"));
        }
        Ok(kind)
    }
}

/// Sets one field of the 100-byte database header to an edge value.
fn header_field(rng: &mut Rng, data: &mut [u8]) {
    // (offset, width) of: page size, write/read version, reserved bytes, payload fractions,
    // change counter, page count, freelist trunk and count, schema cookie and format, cache
    // size, largest root page, text encoding, user version, incremental vacuum, version-valid.
    const FIELDS: &[(usize, usize)] = &[
        (16, 2),
        (18, 1),
        (19, 1),
        (20, 1),
        (21, 1),
        (22, 1),
        (23, 1),
        (24, 4),
        (28, 4),
        (32, 4),
        (36, 4),
        (40, 4),
        (44, 4),
        (48, 4),
        (52, 4),
        (56, 4),
        (60, 4),
        (64, 4),
        (92, 4),
        (96, 4),
    ];
    let (at, width) = *rng.pick(FIELDS);
    if data.len() < at + width {
        return;
    }
    let pages = (data.len() / page_size(data)) as u64;
    let value: u64 = *rng.pick(&[
        0,
        1,
        2,
        3,
        4,
        0x7f,
        0xff,
        512,
        1024,
        65535,
        0x8000_0000,
        0xffff_ffff,
        pages,
        pages + 1,
        pages.saturating_sub(1),
        1_000_000,
    ]);
    let bytes = value.to_be_bytes();
    data[at..at + width].copy_from_slice(&bytes[8 - width..]);
}

/// Zeroes, copies or swaps whole pages, or appends one.
fn page_op(rng: &mut Rng, data: &mut Vec<u8>) {
    let ps = page_size(data);
    let pages = data.len() / ps;
    if pages == 0 {
        return;
    }
    let (i, j) = (rng.below(pages), rng.below(pages));
    let page_i = data[i * ps..(i + 1) * ps].to_vec();
    match rng.below(4) {
        0 => data[i * ps..(i + 1) * ps].fill(0),
        1 => data.copy_within(j * ps..(j + 1) * ps, i * ps),
        2 => {
            data.copy_within(j * ps..(j + 1) * ps, i * ps);
            data[j * ps..(j + 1) * ps].copy_from_slice(&page_i);
        }
        _ => data.extend(page_i),
    }
}

/// Alters a b-tree page header (type, freeblock, cell count, content start, right child) or one
/// of its cell pointers.
fn btree_header(rng: &mut Rng, data: &mut [u8]) {
    let ps = page_size(data);
    let pages = data.len() / ps;
    if pages == 0 {
        return;
    }
    let page = rng.below(pages);
    let base = page * ps + if page == 0 { 100 } else { 0 };
    let at = base
        + if rng.chance(50) {
            rng.below(12)
        } else {
            12 + rng.below(32)
        };
    if at + 2 > data.len() {
        return;
    }
    let value: u16 = *rng.pick(&[0, 1, 2, 5, 10, 13, 0xff, 0x100, ps as u16, 0xffff]);
    if rng.chance(50) {
        data[at] = value as u8;
    } else {
        data[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

/// Changes one byte inside the schema's SQL text or a row's text, keeping lengths: the records
/// stay well formed, so SQLite reads them and the checks of `Snapshot::open` decide.
fn text_in_place(rng: &mut Rng, data: &mut [u8]) {
    let marks: &[&[u8]] = &[b"CREATE TABLE", b"magnet:?", b"hello", b"nested", b"serial"];
    let mark = rng.pick(marks);
    let hits: Vec<usize> = data
        .windows(mark.len())
        .enumerate()
        .filter(|(_, w)| w == mark)
        .map(|(i, _)| i)
        .collect();
    if hits.is_empty() {
        return;
    }
    let at = (*rng.pick(&hits) + rng.below(120)).min(data.len() - 1);
    data[at] = *rng.pick(b"\x00 ;(),'\"xXG9-_@/\n\x1b\xc3");
}

/// SQLite's "malformed database schema (NAME)" with NAME (whatever the mutation made of it)
/// blanked, so that such errors count as one kind.
fn schema_name_blanked(msg: &str) -> String {
    const AT: &str = "malformed database schema (";
    let Some(start) = msg.find(AT).map(|i| i + AT.len()) else {
        return msg.to_string();
    };
    let end = [") - ", "): "]
        .iter()
        .filter_map(|m| msg[start..].find(m))
        .min()
        .map_or(msg.len(), |i| start + i);
    format!("{}…{}", &msg[..start], &msg[end..])
}

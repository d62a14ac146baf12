//! The typed shapes of transmission's `torrent-get` replies, each with the explicit field list
//! that asks for exactly what it decodes (transmission 3.00 rejects the 4.x-only fields, and a
//! field asked for but not decoded, or decoded but not asked for, is a drift the tests catch).

use serde::Deserialize;

use crate::format::ids::InfoHash;

/// The fields `torrent-get` asks for; transmission 3.00 rejects the 4.x-only ones, so the
/// request always names exactly what [`TorrentStatus`] decodes.
pub const TORRENT_FIELDS: &[&str] = &[
    "hashString",
    "name",
    "status",
    "percentDone",
    "metadataPercentComplete",
    "haveValid",
    "sizeWhenDone",
    "leftUntilDone",
    "rateDownload",
    "rateUpload",
    "peersConnected",
    "peersSendingToUs",
    "peersGettingFromUs",
    "webseedsSendingToUs",
    "uploadedEver",
    "downloadedEver",
    "corruptEver",
    "error",
    "errorString",
    "downloadDir",
    "peers",
];

/// What transmission's `status` number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorrentState {
    Stopped,
    CheckWait,
    Verifying,
    DownloadWait,
    Downloading,
    SeedWait,
    Seeding,
    Unknown(i64),
}

impl TorrentState {
    /// The state's name, as `daemon status` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            TorrentState::Stopped => "stopped",
            TorrentState::CheckWait => "check_wait",
            TorrentState::Verifying => "verifying",
            TorrentState::DownloadWait => "download_wait",
            TorrentState::Downloading => "downloading",
            TorrentState::SeedWait => "seed_wait",
            TorrentState::Seeding => "seeding",
            TorrentState::Unknown(_) => "unknown",
        }
    }
}

impl From<i64> for TorrentState {
    fn from(n: i64) -> TorrentState {
        match n {
            0 => TorrentState::Stopped,
            1 => TorrentState::CheckWait,
            2 => TorrentState::Verifying,
            3 => TorrentState::DownloadWait,
            4 => TorrentState::Downloading,
            5 => TorrentState::SeedWait,
            6 => TorrentState::Seeding,
            n => TorrentState::Unknown(n),
        }
    }
}

/// One torrent as `torrent-get` reports it (the fields of [`TORRENT_FIELDS`]). Rates are in
/// bytes per second, sizes in bytes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TorrentStatus {
    pub hash_string: InfoHash,
    pub name: String,
    /// 0 stopped, 1 check-wait, 2 verifying, 3 download-wait, 4 downloading, 5 seed-wait,
    /// 6 seeding; see [`TorrentStatus::state`].
    pub status: i64,
    /// Can read 1.0 before the metadata of a magnet arrived: see [`TorrentStatus::is_complete`].
    pub percent_done: f64,
    pub metadata_percent_complete: f64,
    pub have_valid: u64,
    pub size_when_done: u64,
    pub left_until_done: u64,
    pub rate_download: u64,
    pub rate_upload: u64,
    pub peers_connected: u64,
    pub peers_sending_to_us: u64,
    pub peers_getting_from_us: u64,
    pub webseeds_sending_to_us: u64,
    pub uploaded_ever: u64,
    pub downloaded_ever: u64,
    pub corrupt_ever: u64,
    /// 0 none, 1 tracker warning, 2 tracker error, 3 local error.
    pub error: i64,
    pub error_string: String,
    pub download_dir: String,
    pub peers: Vec<Peer>,
}

/// A connected peer of a torrent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    pub address: String,
    pub port: u16,
    pub client_name: String,
    /// Bytes per second from this peer to us.
    pub rate_to_client: u64,
    /// Bytes per second from us to this peer.
    pub rate_to_peer: u64,
    /// How much of the torrent the peer has, 0.0 to 1.0.
    pub progress: f64,
}

impl TorrentStatus {
    pub fn state(&self) -> TorrentState {
        TorrentState::from(self.status)
    }

    /// Every byte is here and checked: metadata complete, 100 %, nothing left. ("Transmission
    /// says 100 %" is not verification of the content; the caller still re-hashes it.)
    pub fn is_complete(&self) -> bool {
        // While a verification is pending or running, the numbers are those from before it.
        let checking = matches!(
            self.state(),
            TorrentState::CheckWait | TorrentState::Verifying
        );
        self.metadata_percent_complete >= 1.0
            && self.percent_done >= 1.0
            && self.left_until_done == 0
            && !checking
    }

    /// Complete and offering the data to peers.
    pub fn is_seeding(&self) -> bool {
        self.is_complete() && self.state() == TorrentState::Seeding
    }
}

/// The fields `torrent-get` asks for to learn how a torrent's announces went: exactly what
/// [`TorrentTrackers`] decodes. (`trackerStats` cannot be narrowed: the daemon sends every key of
/// each tracker, and [`TrackerStat`] reads the ones of [`TRACKER_STAT_FIELDS`].)
pub(super) const TRACKER_FIELDS: &[&str] = &["hashString", "status", "trackerStats"];

/// The fields of the seeder's one `torrent-get` per tick: exactly what [`SeederTorrent`]
/// decodes, the least that tells "seeding and announced" (transmission builds and sends the
/// whole reply for every torrent, so each field costs once per torrent per tick).
pub const SEEDER_FIELDS: &[&str] = &[
    "hashString",
    "status",
    "percentDone",
    "leftUntilDone",
    "trackerStats",
    "peersConnected",
];

/// One torrent of a seeder, as `torrent-get` with [`SEEDER_FIELDS`] reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeederTorrent {
    pub hash_string: InfoHash,
    /// As in [`TorrentStatus::status`].
    pub status: i64,
    pub percent_done: f64,
    pub left_until_done: u64,
    pub tracker_stats: Vec<TrackerStat>,
    /// Peers connected now (the rechoke kick runs while there are any).
    pub peers_connected: i64,
}

impl SeederTorrent {
    pub fn state(&self) -> TorrentState {
        TorrentState::from(self.status)
    }

    /// Has every byte (a seeder adds complete data; this is transmission's word after its
    /// verification, not ours) and offers it to peers.
    pub fn is_seeding(&self) -> bool {
        self.state() == TorrentState::Seeding && self.left_until_done == 0
    }

    /// The announce URLs it has, in tracker order.
    pub fn announce_urls(&self) -> Vec<&str> {
        self.tracker_stats
            .iter()
            .map(|s| s.announce.as_str())
            .collect()
    }

    /// Its last announce to `url` succeeded.
    pub fn announced_to(&self, url: &str) -> bool {
        self.tracker_stats
            .iter()
            .any(|s| s.announce == url && s.last_announce_succeeded)
    }
}

/// The fields of [`Uploaded`]: what the web catalog shows of the seeder's work.
pub const UPLOADED_FIELDS: &[&str] = &["hashString", "uploadedEver"];

/// How many bytes a torrent sent to peers since it was added, as `torrent-get` with
/// [`UPLOADED_FIELDS`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Uploaded {
    pub hash_string: InfoHash,
    pub uploaded_ever: u64,
}

/// One torrent's announce state, as `torrent-get` with [`TRACKER_FIELDS`] reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TorrentTrackers {
    pub hash_string: InfoHash,
    /// As in [`TorrentStatus::status`].
    pub status: i64,
    pub tracker_stats: Vec<TrackerStat>,
}

impl TorrentTrackers {
    pub fn state(&self) -> TorrentState {
        TorrentState::from(self.status)
    }
}

/// The keys of a `trackerStats` entry that [`TrackerStat`] decodes.
#[cfg(test)]
const TRACKER_STAT_FIELDS: &[&str] = &[
    "announce",
    "id",
    "announceState",
    "hasAnnounced",
    "lastAnnounceStartTime",
    "lastAnnounceTime",
    "lastAnnounceSucceeded",
];

/// `announceState`: an event waits for the announcer's next tick.
const ANNOUNCE_QUEUED: i64 = 2;
/// `announceState`: an announce is in flight.
const ANNOUNCE_ACTIVE: i64 = 3;

/// One tracker of a torrent. Times are whole unix seconds (transmission 3.00 keeps no finer
/// ones), 0 when it never happened.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackerStat {
    /// The announce URL.
    pub announce: String,
    /// The tracker's id within its torrent.
    pub id: i64,
    /// 0 inactive, 1 waiting, 2 queued, 3 active (in flight).
    pub announce_state: i64,
    pub has_announced: bool,
    pub last_announce_start_time: i64,
    pub last_announce_time: i64,
    pub last_announce_succeeded: bool,
}

impl TrackerStat {
    /// An announce is queued for the announcer's next tick or in flight.
    pub fn is_busy(&self) -> bool {
        matches!(self.announce_state, ANNOUNCE_QUEUED | ANNOUNCE_ACTIVE)
    }

    /// An announce is in flight.
    pub fn is_announcing(&self) -> bool {
        self.announce_state == ANNOUNCE_ACTIVE
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{json, Map, Value};

    use super::*;

    /// A reply of transmission 3.00 to `torrent-get` with `TORRENT_FIELDS`.
    const SAMPLE: &str = r#"{"arguments":{"torrents":[
        {"corruptEver":0,
        "downloadDir":"/tmp/leech","downloadedEver":10240,"error":0,"errorString":"",
        "hashString":"0b5d8ef0e8d5b3c8ea1b33e1c3cbb7b1f1a3a5b2","haveValid":10240,
        "leftUntilDone":0,"metadataPercentComplete":1,"name":"hello-1.0.0.tar",
        "peers":[{"address":"10.77.0.2","clientIsChoked":false,"clientIsInterested":false,
        "clientName":"Transmission 3.00","flagStr":"TE","isDownloadingFrom":false,
        "isEncrypted":true,"isIncoming":false,"isUTP":true,"isUploadingTo":false,
        "peerIsChoked":true,"peerIsInterested":false,"port":51413,"progress":1,
        "rateToClient":0,"rateToPeer":0}],
        "peersConnected":1,"peersGettingFromUs":0,"peersSendingToUs":0,"percentDone":1,
        "rateDownload":0,"rateUpload":0,"sizeWhenDone":10240,"status":6,"uploadedEver":0,
        "webseedsSendingToUs":0}]},"result":"success"}"#;

    /// A reply of transmission 3.00 to `torrent-get` with `TRACKER_FIELDS` (captured here): one
    /// seeding torrent that announced to its opentracker.
    const TRACKER_SAMPLE: &str = r#"{"torrents":[{"hashString":
        "991e95c7025833b34453f208fee6046672a883a4","status":6,"trackerStats":[
        {"announce":"http://127.0.0.1:16969/announce","announceState":1,"downloadCount":0,
        "hasAnnounced":true,"hasScraped":true,"host":"http://127.0.0.1:16969","id":0,
        "isBackup":false,"lastAnnouncePeerCount":1,"lastAnnounceResult":"Success",
        "lastAnnounceStartTime":1795917923,"lastAnnounceSucceeded":true,
        "lastAnnounceTime":1795917923,"lastAnnounceTimedOut":false,"lastScrapeResult":"",
        "lastScrapeStartTime":0,"lastScrapeSucceeded":true,"lastScrapeTime":1795917923,
        "lastScrapeTimedOut":false,"leecherCount":0,"nextAnnounceTime":1795919563,
        "nextScrapeTime":1795919730,"scrape":"http://127.0.0.1:16969/scrape","scrapeState":1,
        "seederCount":1,"tier":0}]}]}"#;

    /// Every listed field present (with the neutral value `neutral` gives) must decode, and each
    /// one missing must not, so a field list and its struct cannot drift apart.
    fn list_equals_struct<T: DeserializeOwned>(fields: &[&str], neutral: fn(&str) -> Value) {
        let obj: Map<String, Value> = fields.iter().map(|f| (f.to_string(), neutral(f))).collect();
        serde_json::from_value::<T>(Value::Object(obj.clone())).unwrap();
        for f in fields {
            let mut fewer = obj.clone();
            fewer.remove(*f);
            assert!(
                serde_json::from_value::<T>(Value::Object(fewer)).is_err(),
                "{f} is requested but not decoded"
            );
        }
    }

    #[test]
    fn status_decodes_from_a_real_reply() {
        let reply: Value = serde_json::from_str(SAMPLE).unwrap();
        let ts: Vec<TorrentStatus> =
            serde_json::from_value(reply["arguments"]["torrents"].clone()).unwrap();
        let t = &ts[0];
        assert_eq!(t.name, "hello-1.0.0.tar");
        assert_eq!(t.state(), TorrentState::Seeding);
        assert!(t.is_complete() && t.is_seeding());
        assert_eq!(t.size_when_done, 10240);
        assert_eq!(t.peers[0].address, "10.77.0.2");
        assert_eq!(t.peers[0].client_name, "Transmission 3.00");
        assert_eq!(t.peers[0].port, 51413);
    }

    #[test]
    fn percent_done_alone_is_not_complete() {
        let reply: Value = serde_json::from_str(SAMPLE).unwrap();
        let mut t: Vec<TorrentStatus> =
            serde_json::from_value(reply["arguments"]["torrents"].clone()).unwrap();
        t[0].metadata_percent_complete = 0.0;
        t[0].status = 4;
        assert!(!t[0].is_complete() && !t[0].is_seeding());
    }

    #[test]
    fn the_field_list_is_exactly_what_the_status_decodes() {
        list_equals_struct::<TorrentStatus>(TORRENT_FIELDS, |f| match f {
            "hashString" => json!("ab".repeat(20)),
            "name" | "errorString" | "downloadDir" => json!(""),
            "peers" => json!([]),
            _ => json!(0),
        });
    }

    #[test]
    fn the_tracker_field_lists_are_exactly_what_the_stats_decode() {
        list_equals_struct::<TorrentTrackers>(TRACKER_FIELDS, |f| match f {
            "hashString" => json!("ab".repeat(20)),
            "trackerStats" => json!([]),
            _ => json!(0),
        });
        list_equals_struct::<TrackerStat>(TRACKER_STAT_FIELDS, |f| match f {
            "hasAnnounced" | "lastAnnounceSucceeded" => json!(false),
            "announce" => json!(""),
            _ => json!(0),
        });
    }

    #[test]
    fn the_uploaded_field_list_is_exactly_what_uploaded_decodes() {
        list_equals_struct::<Uploaded>(UPLOADED_FIELDS, |f| match f {
            "hashString" => json!("ab".repeat(20)),
            _ => json!(0),
        });
    }

    #[test]
    fn the_seeder_field_list_is_exactly_what_the_seeder_decodes() {
        list_equals_struct::<SeederTorrent>(SEEDER_FIELDS, |f| match f {
            "hashString" => json!("ab".repeat(20)),
            "trackerStats" => json!([]),
            _ => json!(0),
        });
        let reply: Value = serde_json::from_str(TRACKER_SAMPLE).unwrap();
        let mut t = reply["torrents"][0].clone();
        t["percentDone"] = json!(1);
        t["leftUntilDone"] = json!(0);
        t["peersConnected"] = json!(0);
        let t: SeederTorrent = serde_json::from_value(t).unwrap();
        assert!(t.is_seeding());
        assert_eq!(t.announce_urls(), ["http://127.0.0.1:16969/announce"]);
        assert!(t.announced_to("http://127.0.0.1:16969/announce"));
        assert!(!t.announced_to("http://127.0.0.1:6969/announce"));
    }

    #[test]
    fn tracker_stats_decode_from_a_real_reply() {
        let reply: Value = serde_json::from_str(TRACKER_SAMPLE).unwrap();
        let ts: Vec<TorrentTrackers> = serde_json::from_value(reply["torrents"].clone()).unwrap();
        assert_eq!(ts[0].state(), TorrentState::Seeding);
        let s = &ts[0].tracker_stats[0];
        assert!(s.has_announced && s.last_announce_succeeded);
        assert_eq!((s.id, s.last_announce_start_time), (0, 1795917923));
        assert_eq!(s.last_announce_time, 1795917923);
        assert!(!s.is_busy() && !s.is_announcing());
        let queued = TrackerStat {
            announce_state: 2,
            ..s.clone()
        };
        assert!(queued.is_busy() && !queued.is_announcing());
        let active = TrackerStat {
            announce_state: 3,
            ..s.clone()
        };
        assert!(active.is_busy() && active.is_announcing());
    }
}

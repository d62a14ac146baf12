// Per-torrent count of payload bytes downloaded from BitTorrent peers and from web seeds.
//
// libtorrent counts payload per connection (peer_info::total_download) and knows each
// connection's kind (peer_info::connection_type), but forgets both when the connection closes,
// and it closes every web seed and seed connection when the torrent completes. So a small
// torrent plugin gives every connection a peer plugin whose on_disconnect (network thread, still
// before the peer leaves the torrent's list) adds the connection's final total to `closed`.
// A reading adds `closed` (read first) to the live connections' totals from get_peer_info, and
// reads again when a connection closed meanwhile (the generation changed), so that no connection
// is missed; none can be counted twice, since one is either still listed or already closed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include <libtorrent/extensions.hpp>
#include <libtorrent/torrent_handle.hpp>

namespace distlt {

struct Tally {
  std::mutex mu;
  std::int64_t closed_peers = 0;
  std::int64_t closed_web = 0;
  std::uint64_t generation = 0;
};

struct TallyReading {
  std::int64_t from_peers = 0;
  std::int64_t from_web_seeds = 0;
};

// The factory that goes in add_torrent_params::extensions.
std::function<std::shared_ptr<lt::torrent_plugin>(const lt::torrent_handle&, lt::client_data_t)>
tally_plugin(std::shared_ptr<Tally> tally);

// Closed connections' totals plus the live ones', taken consistently (see above).
TallyReading read_tally(Tally& tally, const lt::torrent_handle& handle);

}  // namespace distlt

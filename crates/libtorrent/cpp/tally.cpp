// Counts payload bytes per source (BitTorrent peers, web seeds) for one torrent: see tally.h.
#include "dist-libtorrent/cpp/tally.h"

#include <vector>

#include <libtorrent/peer_connection_handle.hpp>
#include <libtorrent/peer_info.hpp>

namespace distlt {
namespace {

bool is_web(const lt::peer_info& info) {
  return info.connection_type == lt::peer_info::web_seed ||
         info.connection_type == lt::peer_info::http_seed;
}

// Attached to one connection: adds its final payload total to the tally when it closes.
class TallyPeer final : public lt::peer_plugin {
 public:
  TallyPeer(std::shared_ptr<Tally> tally, lt::peer_connection_handle connection)
      : tally_(std::move(tally)), connection_(std::move(connection)) {}

  void on_disconnect(const lt::error_code&) override {
    lt::peer_info info;
    connection_.get_peer_info(info);
    std::lock_guard<std::mutex> lock(tally_->mu);
    (is_web(info) ? tally_->closed_web : tally_->closed_peers) += info.total_download;
    ++tally_->generation;
  }

 private:
  std::shared_ptr<Tally> tally_;
  lt::peer_connection_handle connection_;
};

class TallyTorrent final : public lt::torrent_plugin {
 public:
  explicit TallyTorrent(std::shared_ptr<Tally> tally) : tally_(std::move(tally)) {}

  std::shared_ptr<lt::peer_plugin> new_connection(
      const lt::peer_connection_handle& connection) override {
    return std::make_shared<TallyPeer>(tally_, connection);
  }

 private:
  std::shared_ptr<Tally> tally_;
};

}  // namespace

std::function<std::shared_ptr<lt::torrent_plugin>(const lt::torrent_handle&, lt::client_data_t)>
tally_plugin(std::shared_ptr<Tally> tally) {
  return [tally](const lt::torrent_handle&, lt::client_data_t) {
    return std::make_shared<TallyTorrent>(tally);
  };
}

TallyReading read_tally(Tally& tally, const lt::torrent_handle& handle) {
  for (int attempt = 0;; ++attempt) {
    TallyReading reading;
    std::uint64_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(tally.mu);
      reading.from_peers = tally.closed_peers;
      reading.from_web_seeds = tally.closed_web;
      generation = tally.generation;
    }
    std::vector<lt::peer_info> peers;
    handle.get_peer_info(peers);
    bool settled = false;
    {
      std::lock_guard<std::mutex> lock(tally.mu);
      settled = tally.generation == generation;
    }
    // A connection that closed after the first reading and before get_peer_info is in neither
    // `closed` as read nor `peers`: read again. After a few tries (a torrent losing connections
    // that fast), take the last reading.
    if (!settled && attempt < 8) continue;
    for (const lt::peer_info& info : peers) {
      (is_web(info) ? reading.from_web_seeds : reading.from_peers) += info.total_download;
    }
    return reading;
  }
}

}  // namespace distlt

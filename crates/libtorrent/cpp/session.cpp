// The shim's operations (shim.h): a table of lt::session objects named by id, the settings they
// get, and one function per operation, each catching libtorrent's errors and re-throwing them as
// "kind\x1fmessage" (src/error.rs maps the kinds to dist_libtorrent::Error).
//
// Locking: libtorrent's session and torrent_handle calls are thread safe by themselves; each
// Entry's mutex serialises what the shim adds: popping alerts (only one caller may see each
// alert, and waiters for resume data or removal must not lose theirs) and the per-torrent
// bookkeeping. The network thread never takes it (the tally plugin has its own mutex), so holding
// it across libtorrent's synchronous calls cannot deadlock.
#include "dist-libtorrent/cpp/shim.h"

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <libtorrent/add_torrent_params.hpp>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/error_code.hpp>
#include <libtorrent/ip_filter.hpp>
#include <libtorrent/read_resume_data.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/session_params.hpp>
#include <libtorrent/settings_pack.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/torrent_status.hpp>
#include <libtorrent/write_resume_data.hpp>

#include "dist-libtorrent/cpp/tally.h"
#include "dist-libtorrent/src/bridge.rs.h"

namespace distlt {
namespace {

using Clock = std::chrono::steady_clock;

// The error kinds src/error.rs knows.
constexpr const char* kInvalidTorrent = "invalid-torrent";
constexpr const char* kInvalidResume = "invalid-resume";
constexpr const char* kUnknownTorrent = "unknown-torrent";
constexpr const char* kDuplicate = "duplicate";
constexpr const char* kInvalidArgument = "invalid-argument";
constexpr const char* kTimeout = "timeout";
constexpr const char* kLibtorrent = "libtorrent";

[[noreturn]] void fail(const char* kind, const std::string& message) {
  throw std::runtime_error(std::string(kind) + '\x1f' + message);
}

// Runs `body`, turning any exception that is not already tagged into a "libtorrent" one.
template <class F>
auto guarded(F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::runtime_error& e) {
    if (std::strchr(e.what(), '\x1f') != nullptr) throw;
    fail(kLibtorrent, e.what());
  } catch (const std::exception& e) {
    fail(kLibtorrent, e.what());
  }
}

// What the shim remembers about one torrent, keyed by its 20-byte info hash.
struct Book {
  std::shared_ptr<Tally> tally = std::make_shared<Tally>();
  std::vector<std::uint8_t> states;  // state_changed_alert: first prev_state, then each state
};

// A finished asynchronous operation (resume data, removal, deletion): its result or error.
struct Outcome {
  bool ok = false;
  std::vector<char> data;
  std::string error;
};

struct Entry {
  explicit Entry(lt::session_params params) : ses(std::move(params)) {}
  lt::session ses;
  std::mutex mu;
  std::map<lt::sha1_hash, Book> books;
  std::map<lt::sha1_hash, Outcome> resumed;
  std::map<lt::sha1_hash, Outcome> removed;
  std::map<lt::sha1_hash, Outcome> deleted;
  std::string listen_error;
};

std::mutex g_mu;
std::map<std::uint64_t, std::shared_ptr<Entry>> g_sessions;
std::uint64_t g_next_id = 1;

std::shared_ptr<Entry> entry(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_sessions.find(id);
  if (it == g_sessions.end()) fail(kLibtorrent, "no session " + std::to_string(id));
  return it->second;
}

// The 20-byte name the Rust side uses: the v1 info hash, or the truncated v2 one.
lt::sha1_hash key_of(const lt::info_hash_t& hashes) {
  return hashes.has_v1() ? hashes.v1 : hashes.get_best();
}

std::string hex(const lt::sha1_hash& h) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (std::ptrdiff_t i = 0; i < h.size(); ++i) {
    const auto b = static_cast<unsigned char>(h.data()[i]);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

lt::sha1_hash to_hash(rust::Slice<const std::uint8_t> ih) {
  if (ih.size() != 20) fail(kInvalidArgument, "an info hash is 20 bytes");
  return lt::sha1_hash(reinterpret_cast<const char*>(ih.data()));
}

rust::Vec<std::uint8_t> to_vec(const char* data, std::size_t size) {
  rust::Vec<std::uint8_t> out;
  out.reserve(size);
  for (std::size_t i = 0; i < size; ++i) out.push_back(static_cast<std::uint8_t>(data[i]));
  return out;
}

lt::torrent_handle find(Entry& e, const lt::sha1_hash& key) {
  lt::torrent_handle h = e.ses.find_torrent(key);
  if (!h.is_valid()) fail(kUnknownTorrent, hex(key));
  return h;
}

void note_state(Entry& e, const lt::state_changed_alert& a) {
  auto it = e.books.find(key_of(a.handle.info_hashes()));
  if (it == e.books.end()) return;
  std::vector<std::uint8_t>& states = it->second.states;
  if (states.size() >= 64) return;  // bounded: the first transitions are the interesting ones
  if (states.empty()) states.push_back(static_cast<std::uint8_t>(a.prev_state));
  states.push_back(static_cast<std::uint8_t>(a.state));
}

// Pops every pending alert and files what the shim waits for. Call with e.mu held.
void drain(Entry& e) {
  std::vector<lt::alert*> alerts;
  e.ses.pop_alerts(&alerts);
  for (lt::alert* a : alerts) {
    if (auto* s = lt::alert_cast<lt::state_changed_alert>(a)) {
      note_state(e, *s);
    } else if (auto* r = lt::alert_cast<lt::save_resume_data_alert>(a)) {
      e.resumed[key_of(r->params.info_hashes)] = {true, lt::write_resume_data_buf(r->params), {}};
    } else if (auto* f = lt::alert_cast<lt::save_resume_data_failed_alert>(a)) {
      e.resumed[key_of(f->handle.info_hashes())] = {false, {}, f->error.message()};
    } else if (auto* m = lt::alert_cast<lt::torrent_removed_alert>(a)) {
      e.removed[key_of(m->info_hashes)] = {true, {}, {}};
    } else if (auto* d = lt::alert_cast<lt::torrent_deleted_alert>(a)) {
      e.deleted[key_of(d->info_hashes)] = {true, {}, {}};
    } else if (auto* df = lt::alert_cast<lt::torrent_delete_failed_alert>(a)) {
      e.deleted[key_of(df->info_hashes)] = {false, {}, df->error.message()};
    } else if (auto* l = lt::alert_cast<lt::listen_failed_alert>(a)) {
      e.listen_error = l->message();
    }
  }
}

// Drains alerts until `box` holds an outcome for `key`, for at most `timeout_ms`; takes it out.
Outcome await(Entry& e, std::map<lt::sha1_hash, Outcome>& box, const lt::sha1_hash& key,
              std::uint32_t timeout_ms, const char* what) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    drain(e);
    auto it = box.find(key);
    if (it != box.end()) {
      Outcome out = std::move(it->second);
      box.erase(it);
      return out;
    }
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      fail(kTimeout, std::string(what) + " of " + hex(key) + " not done within " +
                         std::to_string(timeout_ms) + " ms");
    }
    e.ses.wait_for_alert(std::chrono::duration_cast<lt::time_duration>(left));
  }
}

lt::settings_pack settings_of(const SessionConfig& c) {
  using sp = lt::settings_pack;
  sp p;
  p.set_str(sp::listen_interfaces, std::string(c.listen_interfaces));
  p.set_str(sp::outgoing_interfaces, std::string(c.outgoing_interfaces));
  p.set_bool(sp::listen_system_port_fallback, false);
  p.set_int(sp::max_retry_port_bind, 0);
  p.set_bool(sp::enable_dht, false);
  p.set_bool(sp::enable_lsd, false);
  p.set_bool(sp::enable_upnp, false);
  p.set_bool(sp::enable_natpmp, false);
  p.set_bool(sp::enable_outgoing_utp, c.utp);
  p.set_bool(sp::enable_incoming_utp, c.utp);
  p.set_bool(sp::enable_outgoing_tcp, true);
  p.set_bool(sp::enable_incoming_tcp, true);
  p.set_bool(sp::allow_multiple_connections_per_ip, true);
  p.set_int(sp::unchoke_slots_limit, c.unchoke_slots_limit);
  p.set_int(sp::upload_rate_limit, c.upload_limit);
  p.set_int(sp::download_rate_limit, c.download_limit);
  p.set_int(sp::max_web_seed_connections, c.max_web_seed_connections);
  p.set_int(sp::urlseed_max_request_bytes, c.urlseed_max_request_bytes);
  p.set_int(sp::alert_mask, static_cast<int>(static_cast<std::uint32_t>(
                                lt::alert_category::status | lt::alert_category::storage |
                                lt::alert_category::error)));
  return p;
}

// Every address in the global peer class, so that the rate limits apply to all peers: by
// default libtorrent puts loopback and private networks in a local class without limits.
lt::ip_filter all_peers_global() {
  const std::uint32_t global = 1u << static_cast<std::uint32_t>(lt::session::global_peer_class_id);
  lt::ip_filter f;
  f.add_rule(lt::make_address("0.0.0.0"), lt::make_address("255.255.255.255"), global);
  f.add_rule(lt::make_address("::"),
             lt::make_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), global);
  return f;
}

std::vector<lt::download_priority_t> stripe(int pieces, std::uint32_t k, std::uint32_t n) {
  if (n == 0 || k >= n) {
    fail(kInvalidArgument, "stripe (" + std::to_string(k) + ", " + std::to_string(n) +
                               ") needs k < n");
  }
  std::vector<lt::download_priority_t> out(static_cast<std::size_t>(pieces),
                                           lt::default_priority);
  for (std::size_t i = k; i < out.size(); i += n) out[i] = lt::top_priority;
  return out;
}

lt::add_torrent_params params_of(rust::Slice<const std::uint8_t> torrent, const AddParams& p) {
  lt::error_code ec;
  auto ti = std::make_shared<lt::torrent_info>(
      lt::span<const char>(reinterpret_cast<const char*>(torrent.data()),
                           static_cast<std::ptrdiff_t>(torrent.size())),
      ec, lt::from_span);
  if (ec) fail(kInvalidTorrent, ec.message());
  lt::add_torrent_params atp;
  if (p.has_resume) {
    atp = lt::read_resume_data(
        lt::span<const char>(reinterpret_cast<const char*>(p.resume.data()),
                             static_cast<std::ptrdiff_t>(p.resume.size())),
        ec);
    if (ec) fail(kInvalidResume, ec.message());
    if ((atp.info_hashes.has_v1() && atp.info_hashes.v1 != ti->info_hashes().v1) ||
        (atp.info_hashes.has_v2() && atp.info_hashes.v2 != ti->info_hashes().v2)) {
      fail(kInvalidResume, "the resume data is for another torrent");
    }
  }
  if (!p.web_seeds) {
    atp.url_seeds.clear();
    atp.http_seeds.clear();
  }
  if (p.stripe_n != 0) atp.piece_priorities = stripe(ti->num_pieces(), p.stripe_k, p.stripe_n);
  atp.ti = std::move(ti);
  atp.save_path = std::string(p.save_path);
  // The options decide, not flags saved in the resume data; not auto-managed: dist decides
  // what runs, libtorrent's queue (a few active torrents) must not pause the others.
  atp.flags &= ~(lt::torrent_flags::paused | lt::torrent_flags::auto_managed |
                 lt::torrent_flags::seed_mode | lt::torrent_flags::override_web_seeds);
  atp.flags |= lt::torrent_flags::duplicate_is_error;
  if (p.paused) atp.flags |= lt::torrent_flags::paused;
  if (p.seed_mode) atp.flags |= lt::torrent_flags::seed_mode;
  if (!p.web_seeds) atp.flags |= lt::torrent_flags::override_web_seeds;
  return atp;
}

}  // namespace

std::uint64_t session_new(const SessionConfig& cfg) {
  return guarded([&] {
    lt::session_params params(settings_of(cfg));
    auto e = std::make_shared<Entry>(std::move(params));
    e->ses.set_peer_class_filter(all_peers_global());
    if (e->ses.listen_port() == 0) {
      std::lock_guard<std::mutex> lock(e->mu);
      drain(*e);
      fail(kLibtorrent, "cannot listen on " + std::string(cfg.listen_interfaces) +
                            (e->listen_error.empty() ? "" : ": " + e->listen_error));
    }
    std::lock_guard<std::mutex> lock(g_mu);
    const std::uint64_t id = g_next_id++;
    g_sessions.emplace(id, std::move(e));
    return id;
  });
}

void session_free(std::uint64_t id) noexcept {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_sessions.find(id);
    if (it == g_sessions.end()) return;
    e = std::move(it->second);
    g_sessions.erase(it);
  }
  // ~session blocks until libtorrent has shut down; outside g_mu, so other sessions go on.
  e.reset();
}

std::uint16_t listen_port(std::uint64_t id) noexcept {
  try {
    return entry(id)->ses.listen_port();
  } catch (...) {
    return 0;
  }
}

void set_limits(std::uint64_t id, std::int32_t upload, std::int32_t download) noexcept {
  try {
    lt::settings_pack p;
    p.set_int(lt::settings_pack::upload_rate_limit, upload);
    p.set_int(lt::settings_pack::download_rate_limit, download);
    entry(id)->ses.apply_settings(std::move(p));
  } catch (...) {
    // Only an unknown id can get here, and the Rust side never holds one.
  }
}

rust::Vec<std::uint8_t> add_torrent(std::uint64_t id, rust::Slice<const std::uint8_t> torrent,
                                    const AddParams& params) {
  return guarded([&] {
    auto e = entry(id);
    lt::add_torrent_params atp = params_of(torrent, params);
    const lt::sha1_hash key = key_of(atp.ti->info_hashes());
    Book book;
    atp.extensions.push_back(tally_plugin(book.tally));
    std::lock_guard<std::mutex> lock(e->mu);
    drain(*e);
    if (e->ses.find_torrent(key).is_valid()) fail(kDuplicate, hex(key) + " is already added");
    e->books[key] = std::move(book);  // before adding: its first state change must find it
    lt::error_code ec;
    e->ses.add_torrent(std::move(atp), ec);
    if (ec) {
      e->books.erase(key);
      fail(ec == lt::errors::duplicate_torrent ? kDuplicate : kLibtorrent, ec.message());
    }
    return to_vec(reinterpret_cast<const char*>(key.data()), 20);
  });
}

TorrentStatus torrent_status(std::uint64_t id, rust::Slice<const std::uint8_t> ih) {
  return guarded([&] {
    auto e = entry(id);
    const lt::sha1_hash key = to_hash(ih);
    std::lock_guard<std::mutex> lock(e->mu);
    drain(*e);
    lt::torrent_handle h = find(*e, key);
    const lt::torrent_status st = h.status();
    TallyReading bytes;
    auto book = e->books.find(key);
    if (book != e->books.end()) bytes = read_tally(*book->second.tally, h);
    TorrentStatus out;
    out.state = static_cast<std::uint8_t>(st.state);
    out.progress = st.progress;
    out.total_wanted = st.total_wanted;
    out.total_wanted_done = st.total_wanted_done;
    out.total_done = st.total_done;
    out.num_peers = st.num_peers;
    out.num_seeds = st.num_seeds;
    out.payload_download = st.total_payload_download;
    out.from_peers = bytes.from_peers;
    out.from_web_seeds = bytes.from_web_seeds;
    out.payload_upload = st.total_payload_upload;
    out.is_seeding = st.is_seeding;
    out.is_finished = st.is_finished;
    out.paused = static_cast<bool>(st.flags & lt::torrent_flags::paused);
    if (st.errc) out.error = rust::String(st.errc.message());
    return out;
  });
}

void remove_torrent(std::uint64_t id, rust::Slice<const std::uint8_t> ih, bool delete_files,
                    std::uint32_t timeout_ms) {
  guarded([&] {
    auto e = entry(id);
    const lt::sha1_hash key = to_hash(ih);
    std::lock_guard<std::mutex> lock(e->mu);
    drain(*e);
    lt::torrent_handle h = find(*e, key);
    e->removed.erase(key);
    e->deleted.erase(key);
    e->ses.remove_torrent(h, delete_files ? lt::session::delete_files : lt::remove_flags_t{});
    e->books.erase(key);
    await(*e, e->removed, key, timeout_ms, "removal");
    if (delete_files) {
      Outcome out = await(*e, e->deleted, key, timeout_ms, "deleting the files");
      if (!out.ok) fail(kLibtorrent, "deleting the files: " + out.error);
    }
  });
}

rust::Vec<std::uint8_t> resume_data(std::uint64_t id, rust::Slice<const std::uint8_t> ih,
                                    std::uint32_t timeout_ms) {
  return guarded([&] {
    auto e = entry(id);
    const lt::sha1_hash key = to_hash(ih);
    std::lock_guard<std::mutex> lock(e->mu);
    drain(*e);
    lt::torrent_handle h = find(*e, key);
    e->resumed.erase(key);
    h.save_resume_data(lt::torrent_handle::flush_disk_cache);
    Outcome out = await(*e, e->resumed, key, timeout_ms, "saving resume data");
    if (!out.ok) fail(kLibtorrent, "saving resume data: " + out.error);
    return to_vec(out.data.data(), out.data.size());
  });
}

void remove_web_seeds(std::uint64_t id, rust::Slice<const std::uint8_t> ih) {
  guarded([&] {
    auto e = entry(id);
    lt::torrent_handle h = find(*e, to_hash(ih));
    for (const std::string& url : h.url_seeds()) h.remove_url_seed(url);
    for (const std::string& url : h.http_seeds()) h.remove_http_seed(url);
  });
}

void prioritize_stripe(std::uint64_t id, rust::Slice<const std::uint8_t> ih, std::uint32_t k,
                       std::uint32_t n) {
  guarded([&] {
    auto e = entry(id);
    lt::torrent_handle h = find(*e, to_hash(ih));
    std::shared_ptr<const lt::torrent_info> ti = h.torrent_file();
    if (!ti) fail(kLibtorrent, "no metadata yet");
    h.prioritize_pieces(stripe(ti->num_pieces(), k, n));
  });
}

rust::Vec<std::uint8_t> piece_priorities(std::uint64_t id, rust::Slice<const std::uint8_t> ih) {
  return guarded([&] {
    auto e = entry(id);
    lt::torrent_handle h = find(*e, to_hash(ih));
    rust::Vec<std::uint8_t> out;
    for (lt::download_priority_t p : h.get_piece_priorities()) {
      out.push_back(static_cast<std::uint8_t>(p));
    }
    return out;
  });
}

void set_paused(std::uint64_t id, rust::Slice<const std::uint8_t> ih, bool paused) {
  guarded([&] {
    auto e = entry(id);
    lt::torrent_handle h = find(*e, to_hash(ih));
    if (paused) {
      h.pause();
    } else {
      h.resume();
    }
  });
}

void connect_peer(std::uint64_t id, rust::Slice<const std::uint8_t> ih, rust::Str ip,
                  std::uint16_t port) {
  guarded([&] {
    auto e = entry(id);
    lt::torrent_handle h = find(*e, to_hash(ih));
    lt::error_code ec;
    const lt::address addr = lt::make_address(std::string(ip), ec);
    if (ec) fail(kInvalidArgument, "address " + std::string(ip) + ": " + ec.message());
    h.connect_peer(lt::tcp::endpoint(addr, port));
  });
}

rust::Vec<std::uint8_t> state_history(std::uint64_t id, rust::Slice<const std::uint8_t> ih) {
  return guarded([&] {
    auto e = entry(id);
    const lt::sha1_hash key = to_hash(ih);
    std::lock_guard<std::mutex> lock(e->mu);
    drain(*e);
    find(*e, key);
    rust::Vec<std::uint8_t> out;
    for (std::uint8_t s : e->books[key].states) out.push_back(s);
    return out;
  });
}

}  // namespace distlt

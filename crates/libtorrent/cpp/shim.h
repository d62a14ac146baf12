// The C++ side of the cxx bridge in src/bridge.rs: one function per operation on a session
// named by its id in a table (session.cpp). Every function that can fail throws
// std::runtime_error with the text "kind\x1fmessage", which cxx hands to Rust as cxx::Exception
// (see src/error.rs).
#pragma once

#include <cstdint>

#include "rust/cxx.h"

namespace distlt {

struct SessionConfig;
struct AddParams;
struct TorrentStatus;

std::uint64_t session_new(const SessionConfig& cfg);
void session_free(std::uint64_t id) noexcept;
std::uint16_t listen_port(std::uint64_t id) noexcept;
void set_limits(std::uint64_t id, std::int32_t upload, std::int32_t download) noexcept;
rust::Vec<std::uint8_t> add_torrent(std::uint64_t id, rust::Slice<const std::uint8_t> torrent,
                                    const AddParams& params);
TorrentStatus torrent_status(std::uint64_t id, rust::Slice<const std::uint8_t> ih);
void remove_torrent(std::uint64_t id, rust::Slice<const std::uint8_t> ih, bool delete_files,
                    std::uint32_t timeout_ms);
rust::Vec<std::uint8_t> resume_data(std::uint64_t id, rust::Slice<const std::uint8_t> ih,
                                    std::uint32_t timeout_ms);
void remove_web_seeds(std::uint64_t id, rust::Slice<const std::uint8_t> ih);
void prioritize_stripe(std::uint64_t id, rust::Slice<const std::uint8_t> ih, std::uint32_t k,
                       std::uint32_t n);
rust::Vec<std::uint8_t> piece_priorities(std::uint64_t id, rust::Slice<const std::uint8_t> ih);
void set_paused(std::uint64_t id, rust::Slice<const std::uint8_t> ih, bool paused);
void connect_peer(std::uint64_t id, rust::Slice<const std::uint8_t> ih, rust::Str ip,
                  std::uint16_t port);
rust::Vec<std::uint8_t> state_history(std::uint64_t id, rust::Slice<const std::uint8_t> ih);

}  // namespace distlt

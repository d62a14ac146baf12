//! Build script: finds libtorrent-rasterbar (>= 2.0) through pkg-config, which also tells cargo
//! to link it, and compiles the cxx bridge (`src/bridge.rs`) with the C++ shim in `cpp/`. The
//! shim is compiled with libtorrent's own include paths and preprocessor defines from its `.pc`
//! file: some of them (`TORRENT_USE_OPENSSL`, `TORRENT_SSL_PEERS`, ...) change the layout of its
//! classes, so they must match the ones the shared library was built with.

fn main() {
    let lt = pkg_config::Config::new()
        .atleast_version("2.0")
        .probe("libtorrent-rasterbar")
        .unwrap_or_else(|e| {
            panic!(
                "libtorrent-rasterbar >= 2.0 not found by pkg-config ({e}); \
                 on Debian: apt-get install libtorrent-rasterbar-dev"
            )
        });
    let mut build = cxx_build::bridge("src/bridge.rs");
    build
        .files(["cpp/session.cpp", "cpp/tally.cpp"])
        .std("c++17")
        .includes(&lt.include_paths);
    for (name, value) in &lt.defines {
        build.define(name, value.as_deref());
    }
    build.compile("dist_libtorrent_shim");
    for path in [
        "src/bridge.rs",
        "cpp/shim.h",
        "cpp/tally.h",
        "cpp/session.cpp",
        "cpp/tally.cpp",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}

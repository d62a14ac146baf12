//! The web catalog of `dist serve` (issue 13, part 6) in a real browser: a real `dist serve`
//! (opentracker and transmission-daemon included) on loopback, and Debian's headless Chromium
//! driven over the DevTools protocol (`--remote-debugging-pipe`: JSON messages ending in NUL,
//! commands on its fd 3, replies on its fd 4) to load the list, type into the search box and
//! press Enter, click through to a package page, page through the list and read what the DOM
//! shows: names, versions, BLAKE3, the install line, the live swarm and its chart, and a
//! hostile description shown as text, never as markup.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A port nobody listens on now, on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `dist serve` on loopback, stopped with SIGTERM (by pid) on drop.
struct Serve {
    child: Option<Child>,
    log: PathBuf,
    base: String,
}

impl Serve {
    fn start(root: &Path, log: PathBuf) -> Serve {
        let http = format!("127.0.0.1:{}", free_port());
        let tracker = format!("127.0.0.1:{}", free_port());
        let child = dist()
            .arg("--root")
            .arg(root)
            .args(["serve", "--http", &http, "--tracker", &tracker])
            .args(["--bind", "127.0.0.1", "--hot-set", "100"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start dist serve");
        let s = Serve {
            child: Some(child),
            log,
            base: format!("http://{http}"),
        };
        wait_until(
            "GET /health = 200",
            Duration::from_secs(60),
            || match ureq::get(&format!("{}/health", s.base)).call() {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("{e}\nserve log:\n{}", s.log())),
            },
        );
        s
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Headless Chromium over the DevTools pipe, one page attached (flat session).
struct Browser {
    child: Child,
    to: ChildStdin,
    from: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Events seen while waiting for replies, until someone waits for them.
    events: Vec<Value>,
    log: PathBuf,
}

/// How long one DevTools command or page load may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(30);

impl Browser {
    fn start(dir: &Path) -> Browser {
        let chromium = require_tool("chromium");
        let log = dir.join("chromium.log");
        // The shell gives Chromium our pipes as its fd 3 (commands) and fd 4 (replies).
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 </dev/null >/dev/null")
            .arg(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1200,900",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start chromium");
        let to = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice(&msg[..msg.len() - 1]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            to,
            from,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            log,
        };
        let target = b.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = b.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Page.enable", json!({}));
        b
    }

    /// Sends a command (to the page once attached) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        self.to.flush().unwrap();
        let deadline = Instant::now() + BROWSER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.from.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "chromium did not answer {method} within {BROWSER_TIMEOUT:?}; its log:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                )
            });
            if v["id"] == json!(id) {
                assert!(
                    v.get("error").is_none(),
                    "chromium refused {method} {msg}: {}",
                    v["error"]
                );
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    /// Waits for the page's next `load` event (forgetting those seen before).
    fn wait_load(&mut self, what: &str) {
        let deadline = Instant::now() + BROWSER_TIMEOUT;
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|e| e["method"] == "Page.loadEventFired")
            {
                self.events.drain(..=i);
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(v) => self.events.push(v),
                Err(_) => panic!(
                    "no page load after {what} within {BROWSER_TIMEOUT:?}; events: {:?}",
                    self.events
                ),
            }
        }
    }

    fn navigate(&mut self, url: &str) {
        self.events.clear();
        let r = self.call("Page.navigate", json!({ "url": url }));
        assert!(r.get("errorText").is_none(), "cannot load {url}: {r}");
        self.wait_load(url);
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expression} threw: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    fn text(&mut self, selector: &str) -> String {
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.textContent : null; }})()",
            json!(selector)
        ));
        v.as_str()
            .unwrap_or_else(|| panic!("no element {selector} on {}", self.location()))
            .to_string()
    }

    fn location(&mut self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Types `text` into the element `selector` and presses Enter, as a person would.
    fn type_and_enter(&mut self, selector: &str, text: &str) {
        self.eval(&format!(
            "document.querySelector({}).focus()",
            json!(selector)
        ));
        self.events.clear();
        self.call("Input.insertText", json!({ "text": text }));
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": "Enter", "code": "Enter",
                        "windowsVirtualKeyCode": 13, "text": "\r" }),
            );
        }
        self.wait_load(&format!("typing {text:?} into {selector}"));
    }

    /// Clicks the middle of the element `selector` with the mouse and waits for the next page.
    fn click(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null; \
             e.scrollIntoView(); const r = e.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            json!(selector)
        ));
        let (x, y) = match at.as_array() {
            Some(xy) => (xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap()),
            None => panic!("nothing to click at {selector} on {}", self.location()),
        };
        self.events.clear();
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
        self.wait_load(&format!("clicking {selector}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The description of a package whose text is markup: it must show as text.
const HOSTILE: &str = r#"Searches <b id="bold">fast</b> & "safely" <script>document.title="pwned"</script> <img src=x onerror="document.title='pwned'">"#;

fn added(root: &Path, dirs: &[PathBuf]) -> Vec<Value> {
    let out = run_ok(
        dist()
            .arg("--root")
            .arg(root)
            .args(["add", "--create", "--json"])
            .args(dirs),
    );
    stdout_json(&out).as_array().unwrap().clone()
}

fn record<'a>(added: &'a [Value], id: &str) -> &'a Value {
    added
        .iter()
        .find(|a| {
            format!(
                "{}@{}",
                a["name"].as_str().unwrap(),
                a["version"].as_str().unwrap()
            ) == id
        })
        .unwrap_or_else(|| panic!("{id} not in {added:?}"))
}

fn get(url: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = ureq::get(url);
    if let Some(r) = range {
        req = req.set("Range", r);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let ctype = resp.header("content-type").unwrap_or("").to_string();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, ctype, body)
}

#[test]
fn web_catalog_in_chromium_issue_13() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let root = tmp.path().join("repo");
    let yaml = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut dirs = vec![
        write_package(
            &src.join("hello-1.0.0"),
            "hello",
            "1.0.0",
            "description: Says hello\n",
            ("hello.txt", b"hello 1"),
            "#!/bin/sh\nexit 0\n",
        ),
        write_package(
            &src.join("hello-1.1.0"),
            "hello",
            "1.1.0",
            "description: Says hello, politely\n",
            ("hello.txt", b"hello 1.1"),
            "#!/bin/sh\nexit 0\n",
        ),
        write_package(
            &src.join("libfoo"),
            "libfoo",
            "0.9.0",
            "",
            ("lib.bin", &noise(7, 20_000)),
            "#!/bin/sh\nexit 0\n",
        ),
        write_package(
            &src.join("ripgrep-lite"),
            "ripgrep-lite",
            "2.0.0-rc.1",
            &format!(
                "description: {}\ndepends:\n  libfoo: '>=0.9'\n",
                yaml(HOSTILE)
            ),
            ("rg.bin", &noise(9, 50_000)),
            "#!/bin/sh\nexit 0\n",
        ),
    ];
    // Enough packages for a second page (50 a page).
    for i in 0..50 {
        let name = format!("zz-filler-{i:02}");
        dirs.push(write_package(
            &src.join(&name),
            &name,
            "1.0.0",
            "",
            ("f.txt", name.as_bytes()),
            "#!/bin/sh\nexit 0\n",
        ));
    }
    // hello 1.1.0 provides a command.
    let bin = src.join("hello-1.1.0/assets/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join("hello"), "#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(
        bin.join("hello"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let added = step("add 54 versions of 53 packages", || added(&root, &dirs));
    let hello = record(&added, "hello@1.1.0").clone();
    let hello_old = record(&added, "hello@1.0.0").clone();
    let rg = record(&added, "ripgrep-lite@2.0.0-rc.1").clone();

    let started = Instant::now();
    let server = step("start dist serve", || {
        Serve::start(&root, tmp.path().join("serve.log"))
    });

    step(
        "plain HTTP: content type, 404 with escaping, web-seed bytes",
        || {
            let (status, ctype, body) = get(&server.url("/"), None);
            assert_eq!((status, ctype.as_str()), (200, "text/html; charset=utf-8"));
            let body = String::from_utf8(body).unwrap();
            assert!(body.contains("53 packages"), "{body}");
            let (status, ctype, body) = get(&server.url("/packages/%3Cscript%3Ex"), None);
            assert_eq!((status, ctype.as_str()), (404, "text/html; charset=utf-8"));
            let body = String::from_utf8(body).unwrap();
            assert!(body.contains("No package “&lt;script&gt;x”"), "{body}");
            assert!(!body.contains("<script>"), "{body}");
            let (status, _, _) = get(&server.url("/packages/nosuchpackage"), None);
            assert_eq!(status, 404);
            // A name with a `/` is no package either, and the page says so, escaped.
            let (status, ctype, body) = get(&server.url("/packages/a/%3Cb%3E"), None);
            assert_eq!((status, ctype.as_str()), (404, "text/html; charset=utf-8"));
            let body = String::from_utf8(body).unwrap();
            assert!(body.contains("No package “a/&lt;b&gt;”"), "{body}");
            // A web seed's range request, then a whole download: both are counted.
            let object = format!(
                "/objects/{}/{}",
                &rg["blake3"].as_str().unwrap()[..2],
                &rg["blake3"].as_str().unwrap()[2..]
            );
            let (status, _, part) = get(&server.url(&object), Some("bytes=100-1099"));
            assert_eq!((status, part.len()), (206, 1000));
            let (status, _, whole) = get(&server.url(&object), None);
            assert_eq!(
                (status, whole.len() as u64),
                (200, rg["size"].as_u64().unwrap())
            );
        },
    );

    let mut browser = step("start chromium", || Browser::start(tmp.path()));

    step("the list", || {
        browser.navigate(&server.url("/"));
        assert_eq!(browser.text("#count"), "53 packages");
        let rows = browser.eval(
            "[...document.querySelectorAll('#packages tbody tr')].map(r => \
             [...r.cells].map(c => c.textContent))",
        );
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 50, "{rows:?}");
        assert_eq!(rows[0][0], "hello");
        assert_eq!(rows[0][1], "1.1.0", "the newest version");
        assert_eq!(rows[0][2], "Says hello, politely");
        assert_eq!(rows[0][3], "2");
        assert_eq!(rows[1][0], "libfoo");
        assert_eq!(rows[1][2], "—", "no description");
        assert_eq!(rows[2][0], "ripgrep-lite");
        // The hostile description is text: no element, no script ran.
        assert_eq!(rows[2][2], HOSTILE);
        assert_eq!(
            browser.eval(
                "document.querySelectorAll('#packages b, #packages script, #packages img').length"
            ),
            json!(0)
        );
        assert_eq!(browser.eval("document.title"), json!("dist catalog"));
        assert_eq!(browser.text(".pager span"), "page 1 of 2");
    });

    step("the next page, by clicking", || {
        browser.click("a[rel=next]");
        assert!(
            browser.location().ends_with("/?page=2"),
            "{}",
            browser.location()
        );
        let names = browser.eval(
            "[...document.querySelectorAll('#packages tbody tr td:first-child')].map(c => c.textContent)",
        );
        assert_eq!(
            names,
            json!(["zz-filler-47", "zz-filler-48", "zz-filler-49"])
        );
        assert_eq!(browser.text(".pager span"), "page 2 of 2");
    });

    step("search by typing into the box", || {
        browser.navigate(&server.url("/"));
        browser.type_and_enter("input[name=q]", "POLITELY");
        assert!(
            browser.location().ends_with("/?q=POLITELY"),
            "{}",
            browser.location()
        );
        assert_eq!(browser.text("#count"), "1 package matches “POLITELY”");
        assert_eq!(
            browser.eval("document.querySelector('input[name=q]').value"),
            json!("POLITELY")
        );
        let names = browser.eval(
            "[...document.querySelectorAll('#packages tbody tr td:first-child')].map(c => c.textContent)",
        );
        assert_eq!(names, json!(["hello"]));
        // Markup in the term is a term: `<b` is in one description.
        browser.navigate(&server.url("/?q=%3Cb%20id"));
        assert_eq!(browser.text("#count"), "1 package matches “<b id”");
        browser.navigate(&server.url("/?q=nothing-has-this"));
        assert_eq!(
            browser.text("#count"),
            "0 packages match “nothing-has-this”"
        );
    });

    step("a package page, by clicking its name", || {
        browser.navigate(&server.url("/?q=hello"));
        browser.click("#packages a[href='/packages/hello']");
        assert!(
            browser.location().ends_with("/packages/hello"),
            "{}",
            browser.location()
        );
        assert_eq!(browser.text("#name"), "hello");
        assert_eq!(browser.text("#install"), "dist install hello@1.1.0");
        let versions = browser.eval(
            "[...document.querySelectorAll('section.version')].map(s => ({ \
               version: s.querySelector('h3').textContent, \
               install: s.querySelector('code.install').textContent, \
               blake3: s.querySelector('.blake3').textContent, \
               infohash: s.querySelector('.infohash').textContent, \
               magnet: s.querySelector('a.magnet').getAttribute('href'), \
               torrent: s.querySelector('a.torrent').getAttribute('href'), \
               swarm: s.querySelector('.swarm').textContent }))",
        );
        let versions = versions.as_array().unwrap();
        assert_eq!(versions.len(), 2, "{versions:?}");
        for (v, rec) in versions.iter().zip([&hello, &hello_old]) {
            assert_eq!(v["version"], rec["version"]);
            assert_eq!(
                v["install"],
                json!(format!(
                    "dist install hello@{}",
                    rec["version"].as_str().unwrap()
                ))
            );
            assert_eq!(v["blake3"], rec["blake3"]);
            assert_eq!(v["infohash"], rec["infohash"]);
            let infohash = rec["infohash"].as_str().unwrap();
            assert!(v["magnet"]
                .as_str()
                .unwrap()
                .starts_with(&format!("magnet:?xt=urn:btih:{infohash}&dn=")));
            assert_eq!(v["torrent"], json!(format!("/torrents/{infohash}.torrent")));
        }
        // The seeder holds the newest version of each package (the hot set's baseline) and
        // has announced it (/health said so); nobody asked for the older one.
        assert_eq!(
            versions[0]["swarm"],
            json!("1 seeders, 0 leechers, 0 completed")
        );
        assert_eq!(
            versions[1]["swarm"],
            json!("0 seeders, 0 leechers, 0 completed")
        );
        let commands = browser.eval(
            "[...document.querySelectorAll('section.version')].map(s => \
             [...s.querySelectorAll('dt')].filter(d => d.textContent == 'commands')\
             .map(d => d.nextElementSibling.textContent))",
        );
        assert_eq!(commands, json!([["hello"], []]));
        assert_eq!(browser.text("#seeders b"), "1");
        assert_eq!(browser.text("#leechers b"), "0");
        assert_eq!(browser.text("#downloaded b"), "0");
        assert_eq!(browser.text("#seeder b"), "0 B");
        // The `.torrent` link works and is the indexed infohash's.
        let (status, ctype, _) = get(
            &server.url(&format!(
                "/torrents/{}.torrent",
                hello["infohash"].as_str().unwrap()
            )),
            None,
        );
        assert_eq!((status, ctype.as_str()), (200, "application/x-bittorrent"));
    });

    step(
        "the hostile package's page, its dependency and its origin bytes",
        || {
            browser.navigate(&server.url("/packages/ripgrep-lite"));
            assert_eq!(browser.text("#description"), HOSTILE);
            assert_eq!(
                browser.eval("document.title"),
                json!("ripgrep-lite · dist catalog")
            );
            assert_eq!(
                browser
                    .eval("document.querySelectorAll('main b#bold, main script, main img').length"),
                json!(0)
            );
            assert_eq!(
                browser.text("#install"),
                "dist install ripgrep-lite@2.0.0-rc.1"
            );
            assert_eq!(browser.text("#webseed b"), "1000 B");
            assert_eq!(
                browser.text("#direct b"),
                dist::text::size(rg["size"].as_u64().unwrap())
            );
            assert_eq!(browser.text("#seeders b"), "1");
            let depends = browser.eval(
                "[...document.querySelectorAll('dt')].find(d => d.textContent == 'depends')\
             .nextElementSibling.textContent",
            );
            assert_eq!(depends, json!("libfoo >=0.9"));
            browser.click("dd a[href='/packages/libfoo']");
            assert_eq!(browser.text("#name"), "libfoo");
        },
    );

    step("the chart fills in while the page is watched", || {
        wait_until("a line in the swarm chart", Duration::from_secs(30), || {
            browser.navigate(&server.url("/packages/ripgrep-lite"));
            let lines = browser.eval("document.querySelectorAll('figure.chart polyline').length");
            if lines == json!(5) {
                Ok(())
            } else {
                Err(format!("{lines} lines: {}", browser.text(".charts")))
            }
        });
        let caption = browser.eval(
            "[...document.querySelectorAll('figure.chart figcaption')].map(f => f.textContent)",
        );
        assert_eq!(caption, json!(["Peers", "Bytes sent by the origin"]));
    });

    step("a screenshot renders", || {
        let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
        let data = shot["data"].as_str().unwrap();
        assert!(
            data.len() > 10_000,
            "a screenshot of {} bytes of base64",
            data.len()
        );
    });
    drop(browser);
    eprintln!("browser steps took {:?}", started.elapsed());
    drop(server);
}

//! A bounded load test of `videogpt serve` on the loopback: 64 clients for throughput; then
//! stalled clients (a partial head, then nothing) and slowloris clients (a byte every 500 ms)
//! while a probe asks for the page every 100 ms; then the abuse requests. It passes when the server
//! stays up, ≥ 99 % of probes succeed, and its threads, file handles and memory stay under caps.
//!
//! Each phase runs `VIDEOGPT_LOAD_SECONDS` (default 3 in CI; docs/reliability.md reports a run
//! with 30). Linux only (it reads /proc for the server's threads, handles and memory).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const STALLED: usize = 150;
const SLOW: usize = 50;
/// The server's 256 workers, the accept loop and main thread, and a margin.
const MAX_THREADS: u64 = 256 + 8;
const MAX_FDS: u64 = 256 + 256 + 64;
const MAX_RSS_KIB: u64 = 256 * 1024;

/// The server process, killed when the test ends however it ends (a failed assertion too).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn serve() -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_videogpt"))
        .args(["serve", "--port", "0", "--root", env!("CARGO_MANIFEST_DIR")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split("http://").nth(1).unwrap().trim().trim_end_matches(['/', ')']).split('/').next().unwrap().to_string();
    (Server(child), url)
}

/// Threads, open file handles and resident KiB of a process.
fn usage(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| status.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    (field("Threads:"), fds, field("VmRSS:"))
}

/// One GET on a fresh connection; the status code, or None.
fn get(addr: &str, path: &str, timeout: Duration) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    std::str::from_utf8(out.get(9..12)?).ok()?.parse().ok()
}

/// Read one keep-alive response (head and Content-Length body); its status.
fn read_response(r: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status = line.get(9..12)?.parse().ok()?;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some(status)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
}

#[test]
#[cfg(target_os = "linux")]
fn serve_survives_load_stalls_and_abuse() {
    let seconds: f64 = std::env::var("VIDEOGPT_LOAD_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3.0);
    let phase = Duration::from_secs_f64(seconds);
    let (mut server, addr) = serve();
    let pid = server.0.id();
    let peak = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let u = usage(pid);
                let mut p = peak.lock().unwrap();
                *p = (p.0.max(u.0), p.1.max(u.1), p.2.max(u.2));
                drop(p);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // 1. throughput: 64 keep-alive clients asking for the page as fast as it comes
    let served = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, served, latencies) = (addr.clone(), served.clone(), latencies.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                while start.elapsed() < phase {
                    let Ok(s) = TcpStream::connect(&addr) else { continue };
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    while start.elapsed() < phase {
                        let t = Instant::now();
                        if w.write_all(format!("GET /index.html HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).is_err() {
                            break;
                        }
                        match read_response(&mut r) {
                            Some(200) => {
                                served.fetch_add(1, Ordering::Relaxed);
                                mine.push(t.elapsed().as_secs_f64() * 1e3);
                            }
                            _ => break,
                        }
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let rps = served.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let p99 = percentile(&mut latencies.lock().unwrap(), 0.99);

    // 2. stalled and slowloris clients, and a probe every 100 ms
    let stop = Arc::new(AtomicBool::new(false));
    let mut holders = Vec::new();
    for i in 0..STALLED + SLOW {
        let (addr, stop) = (addr.clone(), stop.clone());
        holders.push(std::thread::spawn(move || {
            let Ok(mut s) = TcpStream::connect(&addr) else { return };
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: ");
            while !stop.load(Ordering::Relaxed) {
                if i >= STALLED && s.write_all(b"a").is_err() {
                    // the server dropped this slowloris client: open another
                    match TcpStream::connect(&addr) {
                        Ok(n) => s = n,
                        Err(_) => return,
                    }
                }
                std::thread::sleep(Duration::from_millis(if i >= STALLED { 500 } else { 100 }));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (mut probes, mut ok, mut probe_ms) = (0u32, 0u32, Vec::new());
    let start = Instant::now();
    while start.elapsed() < phase.max(Duration::from_secs(6)) {
        // past HEAD_DEADLINE (5 s), so the server has dropped and replaced stalled clients meanwhile
        let t = Instant::now();
        probes += 1;
        if get(&addr, "/", Duration::from_secs(2)) == Some(200) {
            ok += 1;
            probe_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(t.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    for h in holders {
        h.join().unwrap();
    }
    let availability = ok as f64 / probes as f64;
    let probe_p99 = percentile(&mut probe_ms, 0.99);

    // 3. the abuse requests, then the page once more
    let abuse: [&[u8]; 5] = [
        b"POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 35184372088832\r\n\r\n",
        b"GET /.git/config HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        b"GET /www/..%2f..%2fetc/passwd HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ];
    for a in abuse {
        let req = String::from_utf8_lossy(a).replace("HOST", &addr);
        if let Ok(mut s) = TcpStream::connect(&addr) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(req.as_bytes());
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            assert!(!out.starts_with(b"HTTP/1.1 200"), "abuse answered with 200: {req:?}");
        }
    }
    let after = get(&addr, "/", Duration::from_secs(5));
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let alive = server.0.try_wait().unwrap().is_none();
    let (threads, fds, rss) = *peak.lock().unwrap();
    eprintln!(
        "serve load ({seconds} s phases): {rps:.0} requests/s with {CLIENTS} clients, p99 {p99:.1} ms; under {STALLED} stalled and {SLOW} slowloris clients \
         {ok}/{probes} probes ok ({:.2} %), probe p99 {probe_p99:.1} ms; peak {threads} threads, {fds} file handles, {:.1} MiB resident",
        availability * 100.0,
        rss as f64 / 1024.0
    );
    assert!(alive && after == Some(200), "the server did not survive (alive {alive}, last probe {after:?})");
    assert!(rps > 100.0, "{rps:.0} requests/s");
    assert!(availability >= 0.99, "{ok} of {probes} probes succeeded under stalled and slow clients");
    assert!(threads <= MAX_THREADS && fds <= MAX_FDS && rss <= MAX_RSS_KIB, "peak {threads} threads, {fds} handles, {rss} KiB");
}

/// The path resolver, fuzzed through the server: request targets built from segments that trick
/// path handling on some OS. The oracle is independent of the server's code: a 200 must be a file
/// under the root, reached by plain segments (no dot-segment or dot-file, no `%`, `\`, `:` or NUL),
/// with the bytes of that file; anything else must not be a 200.
#[test]
fn serve_path_resolver_fuzzed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut server, addr) = serve();
    let segments = [
        "",
        ".",
        "..",
        "...",
        ".git",
        "config",
        ".hidden",
        "www",
        "models",
        "index.html",
        "README.md",
        "Cargo.toml",
        "%2e%2e",
        "%2f",
        "..%5c",
        "\\..",
        "C:",
        "c:\\windows",
        "a\u{0}b",
        "~",
        "www/..",
        "node_modules",
        "x.html",
        "..;",
        "%00",
        "//",
        "index.html?x=1",
        "#frag",
        "etc",
        "passwd",
        " ",
    ];
    let mut rng = 0x7365_7276u64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let n: usize = std::env::var("VIDEOGPT_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let (mut served, mut refused) = (0, 0);
    for _ in 0..n {
        let parts: Vec<&str> = (0..1 + next(5)).map(|_| segments[next(segments.len())]).collect();
        let target = format!("/{}", parts.join("/"));
        let Ok(mut s) = TcpStream::connect(&addr) else { panic!("the server stopped answering") };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes());
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        if !out.starts_with(b"HTTP/1.1 200") {
            refused += 1;
            continue;
        }
        served += 1;
        let path = target.split(['?', '#']).next().unwrap();
        let plain = !path.contains(['%', '\\', ':', '\0']) && path.split('/').all(|p| !p.starts_with('.'));
        let mut file = root.join(path.trim_start_matches('/'));
        if file.is_dir() {
            file.push("index.html");
        }
        let canonical = file.canonicalize().ok();
        assert!(
            plain && canonical.as_ref().is_some_and(|c| c.starts_with(root.canonicalize().unwrap()) && c.is_file()),
            "{target:?} was served but is not a plain file under the root"
        );
        let body = out.windows(4).position(|w| w == b"\r\n\r\n").map(|i| &out[i + 4..]).unwrap();
        assert_eq!(body, std::fs::read(canonical.unwrap()).unwrap(), "{target:?}: not the file's bytes");
    }
    assert!(server.0.try_wait().unwrap().is_none(), "the server died");
    eprintln!("fuzz serve paths: {n} requests, {served} served (each a plain file under the root), {refused} refused, 0 crashes");
    assert!(served > 0 && refused > 0);
}

//! `videogpt serve`: a static file server for the web demo, on 127.0.0.1 only. It sends the
//! `.wasm` MIME type (needed for streaming compilation); with `--isolate` the COOP/COEP headers
//! (cross-origin isolation, for SharedArrayBuffer and precise timers in the page); with `--cors`
//! `Access-Control-Allow-Origin: *`, as an asset host for pages on other origins must.
//!
//! It is written to survive a hostile client on the same machine (a web page can make the
//! browser send anything to 127.0.0.1): a fixed pool of worker threads and a bounded queue of
//! connections (past it, new connections get a 503), request heads of at most 16 KiB that must
//! arrive within 5 s however slowly they trickle, a write timeout, only GET and HEAD without a body, a Host allowlist (so a DNS-rebinding page
//! cannot read the served tree), no dot-files and no path that leaves the root.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use videogpt::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Folder to serve (the repository root, which holds index.html).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Send Access-Control-Allow-Origin: * (serve the engine and models to pages on other origins).
    #[arg(long)]
    cors: bool,
    /// Send Cross-Origin-Opener-Policy and -Embedder-Policy (cross-origin isolation).
    #[arg(long)]
    isolate: bool,
    /// Another name the server may be reached by (a Host header it answers), besides 127.0.0.1,
    /// localhost and [::1]; repeatable.
    #[arg(long = "host")]
    hosts: Vec<String>,
}

/// Worker threads: each serves one connection at a time, so this many stalled or slow clients
/// can be held at once while others are still served (tests/serve_load.rs measures it). Each
/// has a small stack: it only copies files.
pub const WORKERS: usize = 256;
const WORKER_STACK: usize = 128 * 1024;
/// Connections accepted but not yet picked up by a worker; past this a new one gets a 503.
pub const QUEUE: usize = 256;
/// The request line and headers, at most.
pub const MAX_HEAD: usize = 16 * 1024;
/// A request head (and the wait for it on a kept-alive connection) must arrive within this, however
/// slowly it trickles in: a slowloris client holds a worker for at most this long.
const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// A client that reads nothing for this long is dropped (a stalled download).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests served on one keep-alive connection.
const MAX_REQUESTS_PER_CONNECTION: usize = 1000;

struct Config {
    root: PathBuf,
    cors: bool,
    isolate: bool,
    /// Host header values answered (lower case, with the port).
    hosts: Vec<String>,
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "wgsl" | "md" | "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Map a URL path onto a file under `root`, refusing anything that climbs out of it, any
/// dot-file or dot-folder (`.git/`), and anything that is not plain text on every OS (backslashes,
/// drive letters, NULs, percent-escapes).
pub fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    if !path.starts_with('/') || path.contains(['\\', '%', '\0', ':']) {
        return None;
    }
    let mut out = root.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part.starts_with('.') {
            return None; // `..`, `.git`, `.env`, …
        }
        match Path::new(part).components().next() {
            Some(Component::Normal(p)) if Path::new(part).components().count() == 1 => out.push(p),
            _ => return None,
        }
    }
    if out.is_dir() {
        out.push("index.html");
    } else if path.ends_with('/') {
        return None; // `/README.md/`: a file is not a folder (relative links under it would break)
    }
    Some(out)
}

pub fn run(args: Args) -> Result<()> {
    let index = args.root.join("index.html");
    if !index.is_file() {
        return Err(Error::Io(format!("{} not found: run `videogpt serve` from the repository root or pass --root", index.display())));
    }
    let addr = format!("127.0.0.1:{}", args.port);
    let listener = TcpListener::bind(&addr).map_err(|e| {
        Error::Io(format!(
            "cannot listen on {addr}: {e}{}",
            if e.kind() == std::io::ErrorKind::AddrInUse { " (another server has it: pass --port N)" } else { "" }
        ))
    })?;
    // with --port 0 the OS picks a free port: report the one actually bound
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
    let mut hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")];
    for h in &args.hosts {
        let h = h.to_ascii_lowercase();
        hosts.push(if h.contains(':') && !h.ends_with(']') { h } else { format!("{h}:{port}") });
    }
    if port == 80 {
        hosts.extend(["127.0.0.1".into(), "localhost".into(), "[::1]".into()]);
    }
    println!("serving {} on http://127.0.0.1:{port}/ (Ctrl-C to stop)", args.root.display());
    let _ = std::io::stdout().flush();
    let config = Arc::new(Config { root: args.root, cors: args.cors, isolate: args.isolate, hosts });

    let (queue, jobs) = sync_channel::<TcpStream>(QUEUE);
    let jobs = Arc::new(Mutex::new(jobs));
    for i in 0..WORKERS {
        let (jobs, config) = (jobs.clone(), config.clone());
        std::thread::Builder::new()
            .name(format!("serve-{i}"))
            .stack_size(WORKER_STACK)
            .spawn(move || worker(&jobs, &config))
            .map_err(|e| Error::Io(format!("cannot start the server's worker threads: {e}")))?;
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue }; // e.g. out of file handles for a moment
        match queue.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(mut stream)) => {
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = stream.write_all(&head(503, "Service Unavailable", "text/plain", 5, &[("Connection", "close"), ("Retry-After", "1")]));
                let _ = stream.write_all(b"busy\n");
            }
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
    Ok(())
}

fn worker(jobs: &Mutex<Receiver<TcpStream>>, config: &Config) {
    loop {
        let next = jobs.lock().map(|rx| rx.recv());
        match next {
            Ok(Ok(stream)) => {
                // whatever a client does, it ends its own connection, never the worker
                let _ = connection(stream, config);
            }
            _ => return,
        }
    }
}

fn head(status: u16, reason: &str, content_type: &str, length: u64, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n");
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// One request's head: method, target, and the headers that matter here.
struct Request {
    method: String,
    target: String,
    host: Option<String>,
    has_body: bool,
    close: bool,
}

/// A connection's reading side with a deadline for the whole of the next request head: each
/// read waits at most until the deadline, so trickling one byte at a time does not extend it.
struct DeadlineReader {
    stream: TcpStream,
    deadline: std::time::Instant,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// Read a request head (up to [`MAX_HEAD`] bytes); `Ok(None)` when the client closed cleanly.
fn read_head(r: &mut BufReader<DeadlineReader>) -> std::result::Result<Option<Request>, u16> {
    r.get_mut().deadline = std::time::Instant::now() + HEAD_DEADLINE;
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = r.by_ref().take((MAX_HEAD + 1 - raw.len()) as u64).read_until(b'\n', &mut raw).map_err(|_| 408u16)?;
        if n == 0 {
            return if raw.is_empty() { Ok(None) } else { Err(400) };
        }
        if raw.len() > MAX_HEAD {
            return Err(431);
        }
        let line = &raw[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                raw.clear(); // a stray blank line between requests
                continue;
            }
            break;
        }
    }
    let text = std::str::from_utf8(&raw).map_err(|_| 400u16)?;
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target, version) = (first.next().unwrap_or(""), first.next().unwrap_or(""), first.next().unwrap_or(""));
    if method.is_empty() || target.is_empty() || !version.starts_with("HTTP/1.") {
        return Err(400);
    }
    let mut req = Request { method: method.into(), target: target.into(), host: None, has_body: false, close: version == "HTTP/1.0" };
    for line in lines {
        let Some((k, v)) = line.split_once(':') else { continue };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "host" => req.host = Some(v.to_ascii_lowercase()),
            "content-length" => req.has_body |= v != "0",
            "transfer-encoding" => req.has_body = true,
            "connection" => req.close |= v.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    Ok(Some(req))
}

fn connection(stream: TcpStream, config: &Config) -> std::io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(DeadlineReader { stream, deadline: std::time::Instant::now() + HEAD_DEADLINE });
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let req = match read_head(&mut reader) {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(status) => return error(&mut out, status),
        };
        if !config.hosts.iter().any(|h| Some(h) == req.host.as_ref()) {
            return error(&mut out, 421); // another name: a DNS-rebinding page, or a proxy
        }
        if req.method != "GET" && req.method != "HEAD" {
            return error(&mut out, 405);
        }
        if req.has_body {
            return error(&mut out, 413); // never read: a GET has no body here
        }
        respond(&mut out, config, &req)?;
        if req.close {
            return Ok(());
        }
    }
    Ok(())
}

fn error(out: &mut TcpStream, status: u16) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let body = format!("{status} {reason}\n");
    let mut extra = vec![("Connection", "close")];
    if status == 405 {
        extra.push(("Allow", "GET, HEAD"));
    }
    out.write_all(&head(status, reason, "text/plain", body.len() as u64, &extra))?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

/// Answer one GET or HEAD: the file streamed from disk (never read whole), or a 404.
fn respond(out: &mut TcpStream, config: &Config, req: &Request) -> std::io::Result<()> {
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if config.isolate {
        extra.push(("Cross-Origin-Opener-Policy", "same-origin"));
        extra.push(("Cross-Origin-Embedder-Policy", "require-corp"));
    }
    if config.cors {
        extra.push(("Access-Control-Allow-Origin", "*"));
    }
    if req.close {
        extra.push(("Connection", "close"));
    }
    let file = resolve(&config.root, &req.target).filter(|p| p.is_file()).and_then(|p| std::fs::File::open(&p).ok().map(|f| (p, f)));
    let Some((path, mut file)) = file else {
        out.write_all(&head(404, "Not Found", "text/plain", 10, &extra))?;
        if req.method == "GET" {
            out.write_all(b"not found\n")?;
        }
        return out.flush();
    };
    // Content-Length rather than chunks, whatever the size: model downloads show progress by it
    let length = file.metadata()?.len();
    out.write_all(&head(200, "OK", mime(&path), length, &extra))?;
    if req.method == "GET" {
        std::io::copy(&mut Read::by_ref(&mut file).take(length), out)?;
    }
    out.flush()
}

//! `videogpt serve`: a static file server for the web demo, on 127.0.0.1 only. It sends the
//! `.wasm` MIME type (needed for streaming compilation); with `--isolate` the COOP/COEP headers
//! (cross-origin isolation, for SharedArrayBuffer and precise timers in the page); with `--cors`
//! `Access-Control-Allow-Origin: *`, as an asset host for pages on other origins must.

use std::path::{Component, Path, PathBuf};

use tiny_http::{Header, Response, Server};
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
}

#[derive(Clone, Copy)]
struct Headers {
    cors: bool,
    isolate: bool,
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

/// Map a URL path onto a file under `root`, refusing anything that climbs out of it.
fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    let mut out = root.to_path_buf();
    for part in Path::new(path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    Some(out)
}

pub fn run(args: Args) -> Result<()> {
    let index = args.root.join("index.html");
    if !index.is_file() {
        return Err(Error::Io(format!("{} not found: run `videogpt serve` from the repository root or pass --root", index.display())));
    }
    let addr = format!("127.0.0.1:{}", args.port);
    let server = Server::http(&addr).map_err(|e| Error::Io(format!("cannot listen on {addr}: {e}")))?;
    // with --port 0 the OS picks a free port: report the one actually bound
    let bound = server.server_addr().to_ip().map_or(addr.clone(), |a| a.to_string());
    println!("serving {} on http://{bound}/ (Ctrl-C to stop)", args.root.display());
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // one thread per request: a client that stops reading a large response (a paused <video>,
    // a cancelled fetch) blocks only its own thread, never the page's other requests
    let root = std::sync::Arc::new(args.root);
    let headers = Headers { cors: args.cors, isolate: args.isolate };
    for request in server.incoming_requests() {
        let root = root.clone();
        std::thread::spawn(move || respond(&root, request, headers));
    }
    Ok(())
}

/// Answer one request: the file streamed from disk (never read whole), or a 404.
fn respond(root: &Path, request: tiny_http::Request, headers: Headers) {
    let header = |k: &str, v: &str| Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header");
    let file = resolve(root, request.url()).filter(|p| p.is_file());
    let response = match file.and_then(|p| std::fs::File::open(&p).ok().map(|f| (p, f))) {
        Some((path, f)) => Response::from_file(f).with_status_code(200).with_header(header("Content-Type", mime(&path))).boxed(),
        None => Response::from_data(b"not found".to_vec()).with_status_code(404).with_header(header("Content-Type", "text/plain")).boxed(),
    };
    let mut response = response.with_header(header("Cache-Control", "no-cache"));
    if headers.isolate {
        response.add_header(header("Cross-Origin-Opener-Policy", "same-origin"));
        response.add_header(header("Cross-Origin-Embedder-Policy", "require-corp"));
    }
    if headers.cors {
        response.add_header(header("Access-Control-Allow-Origin", "*"));
    }
    let response = response
        // Content-Length rather than chunks, whatever the size: model downloads show progress by it
        .with_chunked_threshold(usize::MAX);
    // the client may have gone away; nothing to tell it
    let _ = request.respond(response);
}

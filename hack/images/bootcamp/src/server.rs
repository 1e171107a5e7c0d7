//! The bootcamp HTTP server: one thread per connection, keep-alive, the same answer for every
//! request, and the real app's log lines on stdout.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::sys;

/// How long an idle keep-alive connection is kept open (Node's default keepAliveTimeout).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

struct App {
    host: String,
    body: String,
    started: Instant,
    requests: AtomicU64,
}

pub fn main() -> i32 {
    sys::exit_on_term_signals();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let version = std::env::var("BOOTCAMP_VERSION").unwrap_or_else(|_| "1".into());
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bootcamp: cannot listen on 0.0.0.0:{port}: {e}");
            return 1;
        }
    };
    let host = sys::hostname();
    let app = Arc::new(App {
        body: format!("Hello Kubernetes bootcamp! | Running on: {host} | v={version}\n"),
        host,
        started: Instant::now(),
        requests: AtomicU64::new(0),
    });
    log(&format!(
        "Kubernetes Bootcamp App Started At: {} | Running On: {}",
        sys::iso8601(SystemTime::now()),
        app.host
    ));
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let app = Arc::clone(&app);
                std::thread::spawn(move || {
                    // A client going away mid-request is not worth a log line.
                    let _ = serve(&app, stream);
                });
            }
            // E.g. EMFILE: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    0
}

fn log(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Serves the requests of one connection until the client closes it, asks to, or idles out.
fn serve(app: &App, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let Some(req) = read_request(&mut reader)? else {
            return Ok(());
        };
        // Consume a request body so the next request on this connection starts where it should.
        // Chunked request bodies are not parsed: answer, then close.
        let mut keep_alive = req.keep_alive && !req.chunked;
        if req.content_length > 0 {
            let n = io::copy(&mut (&mut reader).take(req.content_length), &mut io::sink())?;
            keep_alive &= n == req.content_length;
        }

        let n = app.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            app.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        let mut response = head.into_bytes();
        if req.method != "HEAD" {
            response.extend_from_slice(app.body.as_bytes());
        }
        writer.write_all(&response)?;
        log(&format!(
            "Running On: {} | Total Requests: {} | App Uptime: {:.3} seconds | Log Time: {}",
            app.host,
            n,
            app.started.elapsed().as_secs_f64(),
            sys::iso8601(SystemTime::now())
        ));
        if !keep_alive {
            return Ok(());
        }
    }
}

struct Request {
    method: String,
    keep_alive: bool,
    chunked: bool,
    content_length: u64,
}

/// Reads one request head; `None` when the connection ends (or idles out) before one starts.
fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    let mut total = 0;
    // Skip blank lines before the request line (RFC 9112 §2.2 allows them).
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(None),
            Ok(n) => total += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_string();
    let version = parts.nth(1).unwrap_or("HTTP/1.0").to_string();
    let mut req = Request {
        method,
        keep_alive: version == "HTTP/1.1",
        chunked: false,
        content_length: 0,
    };
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        total += n;
        if n == 0 || total > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad request head",
            ));
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(Some(req));
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => req.content_length = value.parse().unwrap_or(0),
            "transfer-encoding" => req.chunked = value.contains("chunked"),
            "connection" if value.contains("close") => req.keep_alive = false,
            "connection" if value.contains("keep-alive") => req.keep_alive = true,
            _ => {}
        }
    }
}

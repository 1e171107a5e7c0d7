//! A small curl for plain HTTP/1.1, enough for pods that probe each other:
//! `curl [-s] [-S] [-i] [-I] [-v] [-f] [-L] [-o FILE] [-m SECS] [--connect-timeout SECS]
//! [-H 'Name: value']... [-X METHOD] [-d DATA] URL`.
//!
//! Exit codes and error wording follow curl's: 1 unsupported protocol, 2 bad usage, 3 bad URL,
//! 6 host not resolved, 7 connection failed, 18 short body, 22 HTTP error with `-f`, 23 write
//! error, 28 timeout, 52 empty reply, 56 receive failure.
//!
//! Names resolve through /etc/hosts, then the libc resolver, then a built-in DNS client reading
//! /etc/resolv.conf: a static glibc binary cannot load NSS modules in a rootfs without glibc, so
//! `getaddrinfo` only handles numeric addresses there. `localhost` always resolves.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// An error that ends the program: curl's exit code and message.
struct Fail {
    code: i32,
    msg: String,
}

fn fail<T>(code: i32, msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        code,
        msg: msg.into(),
    })
}

#[derive(Default)]
struct Opts {
    silent: bool,
    show_error: bool,
    include: bool,
    head: bool,
    verbose: bool,
    fail_http: bool,
    follow: bool,
    output: Option<String>,
    max_time: Option<Duration>,
    connect_timeout: Option<Duration>,
    headers: Vec<String>,
    method: Option<String>,
    data: Option<String>,
    url: Option<String>,
}

pub fn main(args: Vec<String>) -> i32 {
    let opts = match parse_args(args) {
        Ok(o) => o,
        Err(f) => {
            eprintln!("curl: {}", f.msg);
            eprintln!("curl: try 'curl --help' for more information");
            return f.code;
        }
    };
    match run(&opts) {
        Ok(()) => 0,
        Err(f) => {
            if !opts.silent || opts.show_error {
                eprintln!("curl: ({}) {}", f.code, f.msg);
            }
            f.code
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Opts, Fail> {
    let mut o = Opts::default();
    let mut args = args.into_iter();
    let secs = |flag: &str, v: String| -> Result<Duration, Fail> {
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .map_or_else(
                || {
                    fail(
                        2,
                        format!("option {flag}: expected a proper numerical parameter"),
                    )
                },
                Ok,
            )
    };
    while let Some(arg) = args.next() {
        // Long options, with the value in the next argument or after '='.
        if let Some(long) = arg.strip_prefix("--") {
            if long.is_empty() {
                o.url = args.next().or(o.url);
                continue;
            }
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let value = |args: &mut std::vec::IntoIter<String>| {
                inline.clone().or_else(|| args.next()).map_or_else(
                    || fail(2, format!("option --{name}: requires parameter")),
                    Ok,
                )
            };
            match name {
                "silent" => o.silent = true,
                "show-error" => o.show_error = true,
                "include" => o.include = true,
                "head" => o.head = true,
                "verbose" => o.verbose = true,
                "fail" => o.fail_http = true,
                "location" => o.follow = true,
                "output" => o.output = Some(value(&mut args)?),
                "max-time" => o.max_time = Some(secs("--max-time", value(&mut args)?)?),
                "connect-timeout" => {
                    o.connect_timeout = Some(secs("--connect-timeout", value(&mut args)?)?)
                }
                "header" => o.headers.push(value(&mut args)?),
                "request" => o.method = Some(value(&mut args)?),
                "data" => o.data = Some(value(&mut args)?),
                "url" => o.url = Some(value(&mut args)?),
                _ => return fail(2, format!("option --{name}: is unknown")),
            }
            continue;
        }
        // Short options, combinable (`-sSfL`); a value follows in place (`-m5`) or next.
        if let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) {
            let chars = flags.char_indices();
            for (i, c) in chars {
                let rest = &flags[i + c.len_utf8()..];
                let mut value = || {
                    if rest.is_empty() {
                        args.next()
                            .map_or_else(|| fail(2, format!("option -{c}: requires parameter")), Ok)
                    } else {
                        Ok(rest.to_string())
                    }
                };
                match c {
                    's' => o.silent = true,
                    'S' => o.show_error = true,
                    'i' => o.include = true,
                    'I' => o.head = true,
                    'v' => o.verbose = true,
                    'f' => o.fail_http = true,
                    'L' => o.follow = true,
                    'o' => o.output = Some(value()?),
                    'm' => o.max_time = Some(secs("-m", value()?)?),
                    'H' => o.headers.push(value()?),
                    'X' => o.method = Some(value()?),
                    'd' => o.data = Some(value()?),
                    _ => return fail(2, format!("option -{c}: is unknown")),
                }
                if "omHXd".contains(c) {
                    break; // the value consumed the rest of this argument
                }
            }
            continue;
        }
        o.url = Some(arg);
    }
    if o.url.is_none() {
        return fail(2, "no URL specified!");
    }
    Ok(o)
}

struct Url {
    host: String,
    port: u16,
    /// Path and query, always starting with '/'.
    path: String,
}

impl Url {
    fn parse(s: &str) -> Result<Url, Fail> {
        let bad = || fail(3, "URL using bad/illegal format or missing URL");
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return fail(
                    1,
                    format!("Protocol \"{scheme}\" not supported or disabled in libcurl"),
                )
            }
            None => s,
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return bad();
            };
            (host, after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None | Some("") => 80,
            Some(p) => match p.parse() {
                Ok(p) => p,
                Err(_) => return bad(),
            },
        };
        if host.is_empty() {
            return bad();
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The Host header's value.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves a Location header against this URL.
    fn join(&self, location: &str) -> Result<Url, Fail> {
        if location.contains("://") {
            Url::parse(location)
        } else if location.starts_with("//") {
            Url::parse(&format!("http:{location}"))
        } else if location.starts_with('/') {
            Url::parse(&format!("http://{}{location}", self.authority()))
        } else {
            let dir = &self.path[..self.path.rfind('/').map_or(0, |i| i + 1)];
            Url::parse(&format!("http://{}{dir}{location}", self.authority()))
        }
    }
}

/// Time left before the `-m` deadline; a timeout error once it has passed.
fn remaining(
    deadline: Option<Instant>,
    what: impl FnOnce() -> String,
) -> Result<Option<Duration>, Fail> {
    match deadline {
        None => Ok(None),
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => fail(28, what()),
        },
    }
}

fn run(o: &Opts) -> Result<(), Fail> {
    let start = Instant::now();
    let deadline = o.max_time.map(|t| start + t);
    let mut url = Url::parse(o.url.as_deref().unwrap_or_default())?;
    let mut method = o.method.clone().unwrap_or_else(|| {
        if o.head {
            "HEAD".into()
        } else if o.data.is_some() {
            "POST".into()
        } else {
            "GET".into()
        }
    });
    let mut data = o.data.clone();
    let mut out: Box<dyn Write> = match o.output.as_deref() {
        None | Some("-") => Box::new(io::stdout().lock()),
        Some(path) => match File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                return fail(
                    23,
                    format!("Failed to open the file {path}: {}", os_text(&e)),
                )
            }
        },
    };
    for _ in 0..50 {
        let stream = connect(&url, o, start, deadline)?;
        let mut req = format!("{method} {} HTTP/1.1\r\n", url.path);
        for h in request_headers(&url, o, data.as_deref()) {
            req.push_str(&h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        if o.verbose {
            for line in req.lines().filter(|l| !l.is_empty()) {
                eprintln!("> {line}");
            }
            eprintln!(">");
        }
        if let Some(d) = &data {
            req.push_str(d);
        }
        let mut conn = Conn {
            stream,
            deadline,
            start,
            received: 0,
        };
        if let Err(e) = conn.stream.write_all(req.as_bytes()) {
            return fail(
                55,
                format!("Failed sending data to the peer: {}", os_text(&e)),
            );
        }
        let mut reader = BufReader::new(conn);
        let resp = read_head(&mut reader, o)?;
        if o.follow && (300..400).contains(&resp.status) {
            if let Some(loc) = resp.header("location") {
                url = url.join(loc)?;
                if resp.status == 303
                    || (method == "POST" && resp.status != 307 && resp.status != 308)
                {
                    method = "GET".into();
                    data = None;
                }
                if o.include || o.head {
                    write_out(&mut out, resp.raw.as_bytes())?;
                }
                continue;
            }
        }
        if o.fail_http && resp.status >= 400 {
            return fail(
                22,
                format!("The requested URL returned error: {}", resp.status),
            );
        }
        if o.include || o.head {
            write_out(&mut out, resp.raw.as_bytes())?;
        }
        let no_body = method == "HEAD" || resp.status == 204 || resp.status == 304;
        if !no_body {
            read_body(&mut reader, &resp, &mut out)?;
        }
        return out
            .flush()
            .or_else(|_| fail(23, "Failure writing output to destination"));
    }
    fail(47, "Maximum (50) redirects followed")
}

/// curl's default request headers, with `-H` replacing (or, as `Name:`, removing) them.
fn request_headers(url: &Url, o: &Opts, data: Option<&str>) -> Vec<String> {
    let mut headers = vec![
        format!("Host: {}", url.authority()),
        "User-Agent: curl/7.88.1".to_string(),
        "Accept: */*".to_string(),
    ];
    if let Some(d) = data {
        headers.push(format!("Content-Length: {}", d.len()));
        headers.push("Content-Type: application/x-www-form-urlencoded".into());
    }
    for custom in &o.headers {
        let Some((name, value)) = custom.split_once(':') else {
            continue;
        };
        let same = |h: &String| {
            h.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        };
        headers.retain(|h| !same(h));
        if !value.trim().is_empty() {
            headers.push(format!("{}: {}", name.trim(), value.trim()));
        }
    }
    headers
}

fn connect(
    url: &Url,
    o: &Opts,
    start: Instant,
    deadline: Option<Instant>,
) -> Result<TcpStream, Fail> {
    let addrs = match resolve(&url.host, url.port) {
        Some(a) if !a.is_empty() => a,
        _ => return fail(6, format!("Could not resolve host: {}", url.host)),
    };
    let mut last = None;
    for addr in addrs {
        let timed_out = || {
            format!(
                "Connection timed out after {} milliseconds",
                start.elapsed().as_millis()
            )
        };
        // curl's default connect timeout is 300 s.
        let mut limit = o.connect_timeout.unwrap_or(Duration::from_secs(300));
        if let Some(left) = remaining(deadline, timed_out)? {
            limit = limit.min(left);
        }
        if o.verbose {
            eprintln!("*   Trying {addr}...");
        }
        match TcpStream::connect_timeout(&addr, limit) {
            Ok(s) => {
                if o.verbose {
                    eprintln!(
                        "* Connected to {} ({}) port {}",
                        url.host,
                        addr.ip(),
                        url.port
                    );
                }
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return fail(28, timed_out()),
            Err(e) => last = Some(e),
        }
    }
    let why = last.map(|e| os_text(&e)).unwrap_or_default();
    fail(
        7,
        format!("Failed to connect to {} port {}: {why}", url.host, url.port),
    )
}

/// An OS error's text without std's " (os error N)" suffix.
fn os_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The connection, with the `-m` deadline applied to every read.
struct Conn {
    stream: TcpStream,
    deadline: Option<Instant>,
    start: Instant,
    received: u64,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        let n = self.stream.read(buf)?;
        self.received += n as u64;
        Ok(n)
    }
}

/// Maps a read error to curl's: a timeout (28) or a receive failure (56).
fn recv_fail<T>(r: &BufReader<Conn>, e: io::Error) -> Result<T, Fail> {
    let conn = r.get_ref();
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        fail(
            28,
            format!(
                "Operation timed out after {} milliseconds with {} bytes received",
                conn.start.elapsed().as_millis(),
                conn.received
            ),
        )
    } else {
        fail(56, format!("Recv failure: {}", os_text(&e)))
    }
}

struct Response {
    status: u16,
    /// The status line and headers as received, for `-i`.
    raw: String,
    headers: Vec<(String, String)>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_line(r: &mut BufReader<Conn>, line: &mut String) -> Result<usize, Fail> {
    line.clear();
    match r.read_line(line) {
        Ok(n) => Ok(n),
        Err(e) => recv_fail(r, e),
    }
}

/// Reads the response head, skipping interim (1xx) responses.
fn read_head(r: &mut BufReader<Conn>, o: &Opts) -> Result<Response, Fail> {
    let mut line = String::new();
    loop {
        if read_line(r, &mut line)? == 0 {
            return fail(52, "Empty reply from server");
        }
        let status = line
            .strip_prefix("HTTP/")
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u16>().ok());
        let Some(status) = status else {
            return fail(1, "Received HTTP/0.9 when not allowed");
        };
        let mut resp = Response {
            status,
            raw: line.clone(),
            headers: Vec::new(),
        };
        if o.verbose {
            eprintln!("< {}", line.trim_end());
        }
        loop {
            if read_line(r, &mut line)? == 0 {
                return fail(56, "Recv failure: Connection reset by peer");
            }
            resp.raw.push_str(&line);
            if o.verbose {
                eprintln!("< {}", line.trim_end());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((n, v)) = header.split_once(':') {
                resp.headers
                    .push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        if !(100..200).contains(&status) {
            return Ok(resp);
        }
    }
}

fn write_out(out: &mut dyn Write, bytes: &[u8]) -> Result<(), Fail> {
    out.write_all(bytes)
        .or_else(|_| fail(23, "Failure writing output to destination"))
}

/// Copies exactly `n` bytes of body to `out`; curl's error 18 if the connection ends first.
fn copy_exact(r: &mut BufReader<Conn>, mut n: u64, out: &mut dyn Write) -> Result<(), Fail> {
    let mut buf = [0u8; 16 * 1024];
    while n > 0 {
        let want = buf.len().min(n as usize);
        let got = match r.read(&mut buf[..want]) {
            Ok(0) => {
                return fail(
                    18,
                    format!("transfer closed with {n} bytes remaining to read"),
                )
            }
            Ok(got) => got,
            Err(e) => return recv_fail(r, e),
        };
        write_out(out, &buf[..got])?;
        n -= got as u64;
    }
    Ok(())
}

fn read_body(r: &mut BufReader<Conn>, resp: &Response, out: &mut dyn Write) -> Result<(), Fail> {
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut line = String::new();
        loop {
            read_line(r, &mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let Ok(size) = u64::from_str_radix(size.trim(), 16) else {
                return fail(
                    56,
                    "Illegal or missing hexadecimal sequence in chunked-encoding",
                );
            };
            if size == 0 {
                // Trailers, then the final empty line.
                while read_line(r, &mut line)? > 0 && !line.trim().is_empty() {}
                return Ok(());
            }
            copy_exact(r, size, out)?;
            read_line(r, &mut line)?; // the CRLF after the chunk
        }
    }
    if let Some(len) = resp
        .header("content-length")
        .and_then(|l| l.parse::<u64>().ok())
    {
        return copy_exact(r, len, out);
    }
    // Close-delimited.
    let mut buf = [0u8; 16 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => write_out(out, &buf[..n])?,
            Err(e) => return recv_fail(r, e),
        }
    }
}

/// Resolves a host: a literal address, /etc/hosts, the libc resolver, DNS, then `localhost`.
fn resolve(host: &str, port: u16) -> Option<Vec<SocketAddr>> {
    let with_port = |ips: Vec<IpAddr>| {
        ips.into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect()
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(vec![SocketAddr::new(ip, port)]);
    }
    if let Some(ips) = hosts_file(host) {
        return Some(with_port(ips));
    }
    if let Ok(addrs) = (host, port).to_socket_addrs() {
        let addrs: Vec<_> = addrs.collect();
        if !addrs.is_empty() {
            return Some(addrs);
        }
    }
    if let Some(ips) = dns::lookup(host) {
        return Some(with_port(ips));
    }
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Some(with_port(vec![
            Ipv4Addr::LOCALHOST.into(),
            Ipv6Addr::LOCALHOST.into(),
        ]));
    }
    None
}

fn hosts_file(host: &str) -> Option<Vec<IpAddr>> {
    let text = std::fs::read_to_string("/etc/hosts").ok()?;
    let ips: Vec<IpAddr> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let ip = fields.next()?.parse::<IpAddr>().ok()?;
            fields
                .any(|name| name.eq_ignore_ascii_case(host))
                .then_some(ip)
        })
        .collect();
    (!ips.is_empty()).then_some(ips)
}

/// A minimal stub resolver: A records over UDP, with resolv.conf's nameservers, search list and
/// ndots, as a pod's /etc/resolv.conf expects.
mod dns {
    use super::*;

    struct ResolvConf {
        nameservers: Vec<IpAddr>,
        search: Vec<String>,
        ndots: usize,
    }

    fn resolv_conf() -> Option<ResolvConf> {
        let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
        };
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => {
                    if let Some(ip) = fields.next().and_then(|f| f.parse().ok()) {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search") | Some("domain") => {
                    conf.search = fields
                        .map(|d| d.trim_end_matches('.').to_string())
                        .collect()
                }
                Some("options") => {
                    for opt in fields {
                        if let Some(n) = opt.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                            conf.ndots = n;
                        }
                    }
                }
                _ => {}
            }
        }
        conf.nameservers.truncate(3);
        (!conf.nameservers.is_empty()).then_some(conf)
    }

    pub fn lookup(host: &str) -> Option<Vec<IpAddr>> {
        let conf = resolv_conf()?;
        let mut names = Vec::new();
        if let Some(fqdn) = host.strip_suffix('.') {
            names.push(fqdn.to_string());
        } else {
            let searched = conf.search.iter().map(|d| format!("{host}.{d}"));
            if host.matches('.').count() >= conf.ndots {
                names.push(host.to_string());
                names.extend(searched);
            } else {
                names.extend(searched);
                names.push(host.to_string());
            }
        }
        for name in names {
            for ns in &conf.nameservers {
                match query(*ns, &name) {
                    Some(Answer::Found(ips)) => return Some(ips),
                    Some(Answer::NoSuchName) => break, // authoritative: try the next name
                    None => continue,                  // no answer: try the next server
                }
            }
        }
        None
    }

    enum Answer {
        Found(Vec<IpAddr>),
        NoSuchName,
    }

    fn query(server: IpAddr, name: &str) -> Option<Answer> {
        let id = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos()
            & 0xffff) as u16;
        // Header: id, flags (recursion desired), 1 question; then the question for A/IN.
        let mut q = Vec::with_capacity(64);
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            let label = label.as_bytes();
            if label.len() > 63 {
                return Some(Answer::NoSuchName);
            }
            q.push(label.len() as u8);
            q.extend_from_slice(label);
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);

        let bind: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(bind).ok()?;
        sock.connect((server, 53)).ok()?;
        sock.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut buf = [0u8; 1500];
        for _attempt in 0..2 {
            sock.send(&q).ok()?;
            let Ok(n) = sock.recv(&mut buf) else { continue };
            if let Some(answer) = parse(&buf[..n], id) {
                return Some(answer);
            }
        }
        None
    }

    fn parse(msg: &[u8], id: u16) -> Option<Answer> {
        if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id {
            return None;
        }
        match msg[3] & 0x0f {
            0 => {}
            3 => return Some(Answer::NoSuchName),
            _ => return None,
        }
        let qd = u16::from_be_bytes([msg[4], msg[5]]);
        let an = u16::from_be_bytes([msg[6], msg[7]]);
        let mut at = 12;
        for _ in 0..qd {
            at = skip_name(msg, at)? + 4;
        }
        let mut ips = Vec::new();
        for _ in 0..an {
            at = skip_name(msg, at)?;
            let rr = msg.get(at..at + 10)?;
            let (rtype, len) = (
                u16::from_be_bytes([rr[0], rr[1]]),
                u16::from_be_bytes([rr[8], rr[9]]),
            );
            let data = msg.get(at + 10..at + 10 + len as usize)?;
            if rtype == 1 && data.len() == 4 {
                ips.push(IpAddr::from([data[0], data[1], data[2], data[3]]));
            }
            at += 10 + len as usize;
        }
        // No A record (e.g. only AAAA): treat as no such name, as for our purposes it is.
        Some(if ips.is_empty() {
            Answer::NoSuchName
        } else {
            Answer::Found(ips)
        })
    }

    /// The offset just past a (possibly compressed) name.
    fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let len = *msg.get(at)?;
            match len {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => return Some(at + 2),
                l => at += 1 + l as usize,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("http://example.com:8080/a/b?c=1#frag")
            .ok()
            .unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("example.com", 8080, "/a/b?c=1")
        );
        let u = Url::parse("localhost:9000").ok().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("localhost", 9000, "/")
        );
        let u = Url::parse("http://[::1]:81?x").ok().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 81, "/?x")
        );
        assert_eq!(u.authority(), "[::1]:81");
        assert_eq!(Url::parse("https://x").err().map(|f| f.code), Some(1));
        assert_eq!(Url::parse("http://x:port/").err().map(|f| f.code), Some(3));
        let j = Url::parse("http://h/a/b")
            .ok()
            .unwrap()
            .join("c")
            .ok()
            .unwrap();
        assert_eq!(j.path, "/a/c");
    }

    #[test]
    fn parses_combined_flags() {
        let o = parse_args(
            ["-sSfm2.5", "-o", "f", "-HX: y", "u"]
                .map(String::from)
                .to_vec(),
        )
        .ok()
        .unwrap();
        assert!(o.silent && o.show_error && o.fail_http);
        assert_eq!(o.max_time, Some(Duration::from_millis(2500)));
        assert_eq!(o.output.as_deref(), Some("f"));
        assert_eq!(o.headers, vec!["X: y".to_string()]);
        assert_eq!(o.url.as_deref(), Some("u"));
    }

    #[test]
    fn resolves_localhost_and_literals() {
        assert!(resolve("127.0.0.1", 1).is_some_and(|a| a[0].ip() == Ipv4Addr::LOCALHOST));
        assert!(resolve("localhost", 1).is_some_and(|a| a.iter().any(|a| a.ip().is_loopback())));
    }
}

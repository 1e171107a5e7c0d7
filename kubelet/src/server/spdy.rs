//! SPDY/3.1 as Kubernetes' streaming clients speak it (moby/spdystream in client-go): the
//! upgrade handshake, the framing, and exec's streams on top (port-forward's are in
//! [`super::portforward`]).
//!
//! No maintained Rust crate speaks SPDY (the protocol was superseded by HTTP/2), so the
//! framing is written here, to the SPDY/3 draft, with what spdystream actually does:
//! - control frames carry version 3; header blocks are zlib-compressed with the SPDY/3
//!   dictionary, one zlib stream per direction for the whole session, each block ending
//!   with a sync flush;
//! - no flow control: spdystream never sends WINDOW_UPDATE and ignores windows, so windows
//!   are not enforced here either (TCP is the only back-pressure);
//! - the client opens every stream (odd IDs); each must get its SYN_REPLY before DATA, or
//!   spdystream drops the data; a FIN closes one direction, RST_STREAM both;
//! - PINGs from the client are echoed; GOAWAY ends the session;
//! - unknown control frames are never sent (spdystream kills the session on them).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::exec::{outcome_status, Input, Options, Outcome, Output};
use super::{full, Body, Refused};

/// The remote command protocols exec speaks over SPDY, preferred first (v5 means v4 here:
/// its only addition, the close channel, is a WebSocket thing).
pub const EXEC_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// Port-forward's protocol.
pub const PORTFORWARD_PROTOCOL: &str = "portforward.k8s.io";

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: the stream is not wanted.
pub const CANCEL: u32 = 5;
pub const PROTOCOL_ERROR: u32 = 1;
/// The largest DATA payload sent.
const MAX_DATA: usize = 64 * 1024;
/// How long a client has to open the streams of a request.
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1):
/// length-prefixed header names and values, then common value fragments. 1423 bytes.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct",
            " Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0."
        );
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// Answers a SPDY/3.1 upgrade, choosing the first offered protocol we speak.
pub fn accept(
    req: &Request<Incoming>,
    supported: &[&str],
) -> Result<(Response<Body>, String), Refused> {
    let offered = super::ws::offered_in(req, "x-stream-protocol-version");
    if offered.is_empty() {
        return Err(Refused::new(
            400,
            "BadRequest",
            "unable to upgrade: X-Stream-Protocol-Version is required",
        ));
    }
    let Some(protocol) = super::ws::pick(&offered, supported) else {
        return Err(Refused::new(
            403,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {supported:?}"
            ),
        ));
    };
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_str(&protocol).expect("a protocol we named"),
    );
    Ok((r, protocol))
}

/// The header block codec of one direction: a zlib stream primed with the dictionary.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Self(Decompress::new(true))
    }
}

impl Inflater {
    /// Decompresses one header block (the sender ended it with a sync flush).
    pub fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(block.len() * 4 + 256);
        let mut used = 0usize;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(4096);
            }
            let before = self.0.total_in();
            let r = self
                .0
                .decompress_vec(&block[used..], &mut out, FlushDecompress::Sync);
            used += (self.0.total_in() - before) as usize;
            match r {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(dictionary())
                        .map_err(|e| format!("header dictionary: {e}"))?;
                    continue;
                }
                Err(e) => return Err(format!("header block: {e}")),
            }
            if used >= block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if self.0.total_in() == before && out.len() < out.capacity() {
                return Err("header block: no progress".into());
            }
        }
    }
}

pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        let mut c = Compress::new(Compression::best(), true);
        c.set_dictionary(dictionary())
            .expect("a dictionary on a fresh stream");
        Self(c)
    }
}

impl Deflater {
    pub fn deflate(&mut self, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let start = self.0.total_in();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(1024);
            }
            let used = (self.0.total_in() - start) as usize;
            if self
                .0
                .compress_vec(&block[used..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                return out;
            }
            let used = (self.0.total_in() - start) as usize;
            if used >= block.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// A header block: `count, (len, name, len, value)*`, names lowercase.
pub fn encode_headers(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        b.extend_from_slice(&(k.len() as u32).to_be_bytes());
        b.extend_from_slice(k.to_ascii_lowercase().as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

pub fn decode_headers(b: &[u8]) -> Result<BTreeMap<String, String>, String> {
    /// Takes `n` bytes off the front of `rest`.
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if rest.len() < n {
            return Err("header block too short".into());
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    fn len(rest: &mut &[u8]) -> Result<usize, String> {
        Ok(u32_of(take(rest, 4)?) as usize)
    }
    let mut rest = b;
    let n = len(&mut rest)?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let l = len(&mut rest)?;
        let name = take(&mut rest, l)?;
        let l = len(&mut rest)?;
        let value = take(&mut rest, l)?;
        out.insert(
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            // Several values are NUL-separated: the first one is what Kubernetes reads.
            String::from_utf8_lossy(value.split(|c| *c == 0).next().unwrap_or(b"")).into_owned(),
        );
    }
    Ok(out)
}

/// A frame as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Data {
        id: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        id: u32,
        fin: bool,
        block: Bytes,
    },
    Headers {
        block: Bytes,
    },
    Rst {
        id: u32,
    },
    Ping {
        id: u32,
    },
    GoAway,
    /// SETTINGS, WINDOW_UPDATE, SYN_REPLY and anything unknown: ignored.
    Other,
}

fn u32_of(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads one frame; None at a clean end of the stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut body = BytesMut::zeroed(len);
    r.read_exact(&mut body).await?;
    let body = body.freeze();
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    if head[0] & 0x80 == 0 {
        return Ok(Some(Frame::Data {
            id: u32_of(&head) & 0x7fff_ffff,
            fin: flags & FLAG_FIN != 0,
            data: body,
        }));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    Ok(Some(match kind {
        SYN_STREAM => {
            if body.len() < 10 {
                return Err(bad("short SYN_STREAM"));
            }
            Frame::SynStream {
                id: u32_of(&body) & 0x7fff_ffff,
                fin: flags & FLAG_FIN != 0,
                block: body.slice(10..),
            }
        }
        HEADERS => {
            if body.len() < 4 {
                return Err(bad("short HEADERS"));
            }
            Frame::Headers {
                block: body.slice(4..),
            }
        }
        RST_STREAM if body.len() >= 8 => Frame::Rst {
            id: u32_of(&body) & 0x7fff_ffff,
        },
        PING if body.len() >= 4 => Frame::Ping { id: u32_of(&body) },
        GOAWAY => Frame::GoAway,
        _ => Frame::Other,
    }))
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + body.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(body);
    f
}

/// What the session writes.
#[derive(Debug)]
enum Out {
    Reply(u32),
    Data(u32, Bytes, bool),
    Rst(u32, u32),
    Ping(u32),
    GoAway(u32),
}

/// Sends frames of one session (cheap to clone).
#[derive(Clone)]
pub struct Writer(mpsc::Sender<Out>);

impl Writer {
    pub async fn reply(&self, id: u32) {
        let _ = self.0.send(Out::Reply(id)).await;
    }
    /// Sends `data` on stream `id` (in frames of at most 64 KiB); false once the session is gone.
    pub async fn data(&self, id: u32, data: Bytes) -> bool {
        let mut rest = data;
        while !rest.is_empty() {
            let chunk = rest.split_to(rest.len().min(MAX_DATA));
            if self.0.send(Out::Data(id, chunk, false)).await.is_err() {
                return false;
            }
        }
        true
    }
    /// Closes our side of stream `id`.
    pub async fn fin(&self, id: u32) {
        let _ = self.0.send(Out::Data(id, Bytes::new(), true)).await;
    }
    pub async fn reset(&self, id: u32, status: u32) {
        let _ = self.0.send(Out::Rst(id, status)).await;
    }
    /// Ends the session (after everything queued before it).
    pub async fn goaway(&self, last: u32) {
        let _ = self.0.send(Out::GoAway(last)).await;
    }
}

/// A stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: BTreeMap<String, String>,
    /// Its data; ends at the client's FIN or RST_STREAM.
    pub data: mpsc::Receiver<Bytes>,
}

impl Stream {
    pub fn kind(&self) -> &str {
        self.headers
            .get("streamtype")
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Runs a SPDY session over `io`: returns the writer and the streams the client opens (the
/// receiver ends when the client goes away).
pub fn start<IO>(io: IO) -> (Writer, mpsc::Receiver<Stream>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel::<Out>(64);
    let (streams_tx, streams_rx) = mpsc::channel::<Stream>(16);
    tokio::spawn(write_loop(wr, out_rx));
    let writer = Writer(out_tx);
    let w = writer.clone();
    tokio::spawn(async move {
        let mut inflater = Inflater::default();
        let mut open: BTreeMap<u32, mpsc::Sender<Bytes>> = BTreeMap::new();
        while let Ok(Some(frame)) = read_frame(&mut rd).await {
            match frame {
                Frame::SynStream { id, fin, block } => {
                    let Ok(headers) = inflater.inflate(&block).and_then(|b| decode_headers(&b))
                    else {
                        break; // the compression state is lost: the session is over
                    };
                    let (tx, rx) = mpsc::channel(64);
                    if !fin {
                        open.insert(id, tx);
                    }
                    let _ = streams_tx
                        .send(Stream {
                            id,
                            headers,
                            data: rx,
                        })
                        .await;
                }
                Frame::Headers { block } => {
                    if inflater.inflate(&block).is_err() {
                        break;
                    }
                }
                Frame::Data { id, fin, data } => {
                    if let Some(tx) = open.get(&id) {
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            // Nobody reads it any more: drop what comes.
                            open.remove(&id);
                        }
                    }
                    if fin {
                        open.remove(&id);
                    }
                }
                Frame::Rst { id } => {
                    open.remove(&id);
                }
                // The client's pings (odd IDs) are echoed.
                Frame::Ping { id } if id % 2 == 1 => w.0.send(Out::Ping(id)).await.unwrap_or(()),
                Frame::GoAway => break,
                Frame::Ping { .. } | Frame::Other => {}
            }
        }
        // Readers of every stream see its end.
        drop(open);
    });
    (writer, streams_rx)
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Out>) {
    let mut deflater = Deflater::default();
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_DATA + 64);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut done = false;
        // Batch what is queued into one write.
        while let Some(o) = next.take() {
            match o {
                Out::Reply(id) => {
                    let mut body = id.to_be_bytes().to_vec();
                    body.extend(deflater.deflate(&encode_headers(&[])));
                    buf.extend(control(SYN_REPLY, 0, &body));
                }
                Out::Data(id, data, fin) => {
                    buf.put_u32(id & 0x7fff_ffff);
                    buf.push(if fin { FLAG_FIN } else { 0 });
                    buf.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                    buf.extend_from_slice(&data);
                }
                Out::Rst(id, status) => {
                    let mut body = id.to_be_bytes().to_vec();
                    body.extend_from_slice(&status.to_be_bytes());
                    buf.extend(control(RST_STREAM, 0, &body));
                }
                Out::Ping(id) => buf.extend(control(PING, 0, &id.to_be_bytes())),
                Out::GoAway(last) => {
                    let mut body = last.to_be_bytes().to_vec();
                    body.extend_from_slice(&0u32.to_be_bytes());
                    buf.extend(control(GOAWAY, 0, &body));
                    done = true;
                }
            }
            if buf.len() < MAX_DATA && !done {
                next = rx.try_recv().ok();
            }
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        buf.clear();
        if done {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// Collects the streams a request needs: replies to each as it comes (clients wait for the
/// reply before writing), until `want` says all are there or the time is up.
pub async fn collect_streams(
    writer: &Writer,
    streams: &mut mpsc::Receiver<Stream>,
    mut complete: impl FnMut(&[Stream]) -> bool,
) -> Result<Vec<Stream>, String> {
    let mut got = Vec::new();
    let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
    tokio::pin!(deadline);
    while !complete(&got) {
        tokio::select! {
            s = streams.recv() => match s {
                Some(s) => {
                    writer.reply(s.id).await;
                    got.push(s);
                }
                None => return Err("the client went away".into()),
            },
            _ = &mut deadline => return Err("timed out waiting for client to create streams".into()),
        }
    }
    Ok(got)
}

/// Runs an exec over a SPDY session (remote command protocol v4: streams `error`, `stdin`,
/// `stdout`, `stderr`, `resize` opened by the client; the Status on `error` at the end).
pub async fn exec_session<IO, F, Fut>(io: IO, _protocol: &str, opts: Options, run: F)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    F: FnOnce(mpsc::Receiver<Input>, mpsc::Sender<Output>) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let (writer, mut incoming) = start(io);
    let want = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(opts.tty);
    let streams = match collect_streams(&writer, &mut incoming, |s| s.len() >= want).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "exec over SPDY");
            writer.goaway(0).await;
            return;
        }
    };
    let last = streams.iter().map(|s| s.id).max().unwrap_or(0);
    let id_of = |kind: &str| streams.iter().find(|s| s.kind() == kind).map(|s| s.id);
    let (error_id, stdout_id, stderr_id) = (id_of("error"), id_of("stdout"), id_of("stderr"));
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, mut out_rx) = mpsc::channel::<Output>(64);
    for s in streams {
        let tx = in_tx.clone();
        let kind = s.kind().to_string();
        let mut data = s.data;
        match kind.as_str() {
            "stdin" => {
                tokio::spawn(async move {
                    while let Some(b) = data.recv().await {
                        if tx.send(Input::Stdin(b)).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(Input::StdinEof).await;
                });
            }
            "resize" => {
                tokio::spawn(async move {
                    let mut pending = Vec::new();
                    while let Some(b) = data.recv().await {
                        pending.extend_from_slice(&b);
                        // A JSON stream: objects, each usually on its own line.
                        let mut de = serde_json::Deserializer::from_slice(&pending)
                            .into_iter::<super::ws::TerminalSize>();
                        let mut used = 0;
                        while let Some(Ok(size)) = de.next() {
                            used = de.byte_offset();
                            let _ = tx
                                .send(Input::Resize {
                                    width: size.width,
                                    height: size.height,
                                })
                                .await;
                        }
                        pending.drain(..used);
                    }
                });
            }
            _ => {}
        }
    }
    // The input ends when the connection does (stdin's own end is `StdinEof`).
    tokio::spawn(async move {
        while incoming.recv().await.is_some() {}
        drop(in_tx);
    });
    let exec = run(in_rx, out_tx);
    tokio::pin!(exec);
    let forward = |o: Output| {
        let writer = writer.clone();
        async move {
            match o {
                Output::Stdout(b) => match stdout_id {
                    Some(id) => writer.data(id, b).await,
                    None => true,
                },
                Output::Stderr(b) => match stderr_id {
                    Some(id) => writer.data(id, b).await,
                    None => true,
                },
            }
        }
    };
    let outcome = loop {
        tokio::select! {
            biased;
            Some(o) = out_rx.recv() => {
                // An attached client that left ends its session; an exec runs on.
                if !forward(o).await && opts.attach {
                    break Ok(0);
                }
            }
            r = &mut exec => break r,
        }
    };
    while let Ok(o) = out_rx.try_recv() {
        forward(o).await;
    }
    for id in [stdout_id, stderr_id].into_iter().flatten() {
        writer.fin(id).await;
    }
    if let Some(id) = error_id {
        let st = outcome_status(&outcome, &opts.command);
        writer
            .data(id, Bytes::from(serde_json::to_vec(&st).unwrap_or_default()))
            .await;
        writer.fin(id).await;
    }
    // The client reads to the end of every stream, then goes; a moment for that, then
    // the session closes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    writer.goaway(last).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        use sha2::Digest;
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(
            hex::encode(sha2::Sha256::digest(d)),
            "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
        );
    }

    #[test]
    fn header_blocks_round_trip_through_one_zlib_stream_per_direction() {
        let (mut d, mut i) = (Deflater::default(), Inflater::default());
        for n in 0..3 {
            let port = format!("80{n}");
            let block = encode_headers(&[("streamType", "data"), ("port", &port)]);
            let z = d.deflate(&block);
            if n == 0 {
                // zlib header with FDICT, then the dictionary's Adler-32.
                assert_eq!(&z[..6], &[0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);
            }
            assert_eq!(&z[z.len() - 4..], &[0, 0, 0xff, 0xff], "sync flush");
            let h = decode_headers(&i.inflate(&z).unwrap()).unwrap();
            assert_eq!(h["streamtype"], "data");
            assert_eq!(h["port"], port);
        }
    }

    #[tokio::test]
    async fn frames_are_read_as_written() {
        let mut d = Deflater::default();
        let mut syn = 5u32.to_be_bytes().to_vec();
        syn.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        syn.extend(d.deflate(&encode_headers(&[("streamtype", "error")])));
        let mut wire = control(SYN_STREAM, FLAG_FIN, &syn);
        wire.extend_from_slice(&[0, 0, 0, 5, 1, 0, 0, 2, b'h', b'i']);
        wire.extend(control(PING, 0, &7u32.to_be_bytes()));
        let mut r = &wire[..];
        let Some(Frame::SynStream {
            id: 5,
            fin: true,
            block,
        }) = read_frame(&mut r).await.unwrap()
        else {
            panic!("not a SYN_STREAM");
        };
        let h = decode_headers(&Inflater::default().inflate(&block).unwrap()).unwrap();
        assert_eq!(h["streamtype"], "error");
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Some(Frame::Data {
                id: 5,
                fin: true,
                data: Bytes::from_static(b"hi")
            })
        );
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Some(Frame::Ping { id: 7 })
        );
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
    }
}

//! Attach: a running container's own stdin, stdout and stderr lent to clients, as
//! containerd's shim lends them for CRI `Attach`.
//!
//! The shim owns the container's stdio for its whole life (the output goes to the CRI log,
//! the stdin pipe or terminal master stays with it). It listens on `attach.sock` in the
//! container instance's directory; the kubelet's attach handler connects there and the two
//! exchange frames `[kind: u8][len: u32 BE][payload]`:
//!
//! - kubelet → shim: `HELLO` (payload: 1 if the client sends stdin), `STDIN` data,
//!   `STDIN_EOF`, `RESIZE` (width, height as u16 BE);
//! - shim → kubelet: `STDOUT` and `STDERR` data as the container writes it, then `EXIT`
//!   (the exit code, i32 BE) once the container ended and its output is drained.
//!
//! Kubernetes' rules for the container's stdin hold here: with `stdin: true` it is a pipe
//! that stays open (empty) until a client writes; with `stdinOnce: true` it is closed when
//! the first client that attached with stdin closes its stdin or leaves. A container made
//! for one interactive session (`stdin` and `stdinOnce`, what `kubectl run -i` makes) keeps
//! its output from the start for that first client, and its shim waits a little for the
//! client after a quick exit, so `kubectl run -i --rm … -- echo hi` always shows `hi` — see
//! docs/streaming.md.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const RESIZE: u8 = 4;
pub const HELLO: u8 = 5;
pub const STDIN_EOF: u8 = 6;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;
/// Output kept for the first client of a one-session container.
const REPLAY_LIMIT: usize = 1 << 20;
/// Output queued for a client that does not read before it is dropped.
const CLIENT_BACKLOG: usize = 4 << 20;
/// Stdin queued for a container that does not read before clients are no longer read.
const STDIN_BACKLOG: usize = 256 << 10;
/// How long a one-session container's shim waits, after a quick exit, for its first client.
pub const FIRST_CLIENT_GRACE: Duration = Duration::from_secs(5);

/// The socket's name in the instance directory.
pub const SOCKET: &str = "attach.sock";

/// One frame.
pub fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + data.len());
    f.push(kind);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// Splits a byte stream into frames.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, `Ok(None)` until one is there, an error for an oversized one.
    pub fn next_frame(&mut self) -> io::Result<Option<(u8, Vec<u8>)>> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("attach frame of {len} bytes"),
            ));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let data = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, data)))
    }
}

/// A short path to `name` in `dir` for binding or connecting a Unix socket (whose path is
/// limited to 107 bytes; instance directories can be longer): through `/proc/self/fd` of
/// the opened directory (the returned fd must stay open while the path is used).
pub fn short_path(dir: &Path, name: &str) -> io::Result<(OwnedFd, PathBuf)> {
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(io::Error::from)?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let path = PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd()));
    Ok((fd, path))
}

/// How the container's stdin is held.
pub enum Stdin {
    /// `stdin: false`: /dev/null.
    None,
    /// The write end of the container's stdin pipe.
    Pipe(OwnedFd),
    /// The terminal's master (a duplicate of the one output is read from).
    Terminal(OwnedFd),
}

struct Client {
    stream: UnixStream,
    decoder: Decoder,
    out: Vec<u8>,
    hello: bool,
    stdin: bool,
    gone: bool,
}

/// The shim's side: the listening socket, its clients and the container's stdin.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    stdin: Stdin,
    stdin_once: bool,
    pending: Vec<u8>,
    close_stdin: bool,
    replay: Option<Vec<u8>>,
    replay_full: bool,
    attached: bool,
}

fn nonblocking(fd: &impl AsRawFd) {
    if let Ok(flags) = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL) {
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        let _ = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags));
    }
}

impl Server {
    /// Listens on [`SOCKET`] in `dir` (the instance directory).
    pub fn listen(dir: &Path, stdin: Stdin, stdin_once: bool) -> io::Result<Server> {
        let _ = std::fs::remove_file(dir.join(SOCKET));
        let (_dir, path) = short_path(dir, SOCKET)?;
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        match &stdin {
            Stdin::Pipe(fd) | Stdin::Terminal(fd) => nonblocking(fd),
            Stdin::None => {}
        }
        let one_session = stdin_once && !matches!(stdin, Stdin::None);
        Ok(Server {
            listener,
            path: dir.join(SOCKET),
            clients: Vec::new(),
            stdin,
            stdin_once,
            pending: Vec::new(),
            close_stdin: false,
            replay: one_session.then(Vec::new),
            replay_full: false,
            attached: false,
        })
    }

    /// Whether a client attached at some point.
    pub fn attached(&self) -> bool {
        self.attached
    }

    /// Whether the container is meant for one session whose client has not come yet.
    pub fn awaiting_first_client(&self) -> bool {
        self.replay.is_some() && !self.attached
    }

    /// What to poll for.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        let read_clients = self.pending.len() < STDIN_BACKLOG;
        for c in &self.clients {
            let mut flags = PollFlags::empty();
            if read_clients {
                flags |= PollFlags::POLLIN;
            }
            if !c.out.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            // A client neither read (stdin is backed up) nor written to is left out: poll
            // reports a hang-up whatever is asked, and one nobody acts on would spin the
            // loop. It is seen once reading resumes (or a write to it fails).
            if !flags.is_empty() {
                fds.push(PollFd::new(c.stream.as_fd(), flags));
            }
        }
        if !self.pending.is_empty() {
            if let Stdin::Pipe(fd) | Stdin::Terminal(fd) = &self.stdin {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
            }
        }
        fds
    }

    /// Accepts, reads and writes whatever is ready (everything is non-blocking).
    pub fn service(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                self.clients.push(Client {
                    stream,
                    decoder: Decoder::default(),
                    out: Vec::new(),
                    hello: false,
                    stdin: false,
                    gone: false,
                });
            }
        }
        let mut buf = [0u8; 32 * 1024];
        for i in 0..self.clients.len() {
            while self.pending.len() < STDIN_BACKLOG && !self.clients[i].gone {
                match self.clients[i].stream.read(&mut buf) {
                    Ok(0) => self.clients[i].gone = true,
                    Ok(n) => {
                        self.clients[i].decoder.push(&buf[..n]);
                        loop {
                            match self.clients[i].decoder.next_frame() {
                                Ok(Some((kind, data))) => self.on_frame(i, kind, data),
                                Ok(None) => break,
                                Err(_) => {
                                    self.clients[i].gone = true;
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => self.clients[i].gone = true,
                }
            }
        }
        for c in &mut self.clients {
            flush(c);
        }
        let mut stdin_client_left = false;
        self.clients.retain(|c| {
            if c.gone && c.stdin {
                stdin_client_left = true;
            }
            !c.gone
        });
        if stdin_client_left && self.stdin_once {
            self.close_stdin = true;
        }
        self.write_stdin();
    }

    fn on_frame(&mut self, i: usize, kind: u8, data: Vec<u8>) {
        let c = &mut self.clients[i];
        match kind {
            HELLO => {
                c.hello = true;
                c.stdin = data.first() == Some(&1);
                if !self.attached {
                    self.attached = true;
                    if let Some(r) = self.replay.take() {
                        c.out.extend_from_slice(&r);
                    }
                }
            }
            STDIN if c.stdin && !self.close_stdin => self.pending.extend_from_slice(&data),
            STDIN_EOF if c.stdin => {
                c.stdin = false;
                if self.stdin_once {
                    self.close_stdin = true;
                }
            }
            RESIZE if data.len() == 4 => {
                if let Stdin::Terminal(fd) = &self.stdin {
                    let width = u16::from_be_bytes([data[0], data[1]]);
                    let height = u16::from_be_bytes([data[2], data[3]]);
                    resize(fd, width, height);
                }
            }
            _ => {}
        }
    }

    fn write_stdin(&mut self) {
        let fd = match &self.stdin {
            Stdin::Pipe(fd) | Stdin::Terminal(fd) => fd,
            Stdin::None => {
                self.pending.clear();
                return;
            }
        };
        while !self.pending.is_empty() {
            match nix::unistd::write(fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    // The container closed its stdin.
                    self.pending.clear();
                    self.stdin = Stdin::None;
                    return;
                }
            }
        }
        if self.close_stdin {
            // A terminal stays (it carries the output); it only stops taking input.
            self.stdin = Stdin::None;
        }
    }

    /// The container wrote `data` on `kind` (STDOUT or STDERR).
    pub fn output(&mut self, kind: u8, data: &[u8]) {
        let f = frame(kind, data);
        if let Some(r) = self.replay.as_mut() {
            // Once full, nothing more is kept: the first client gets the start, whole.
            if !self.replay_full && r.len() + f.len() <= REPLAY_LIMIT {
                r.extend_from_slice(&f);
            } else {
                self.replay_full = true;
            }
        }
        for c in &mut self.clients {
            if c.hello {
                c.out.extend_from_slice(&f);
                if c.out.len() > CLIENT_BACKLOG {
                    c.gone = true;
                }
            }
        }
        for c in &mut self.clients {
            flush(c);
        }
    }

    /// The container ended: clients get the exit and whatever output they have not read yet
    /// (for at most a second), and the socket goes.
    pub fn finish(mut self, exit_code: i32) {
        let _ = std::fs::remove_file(&self.path);
        let deadline = Instant::now() + Duration::from_secs(1);
        for c in &mut self.clients {
            if c.hello {
                c.out
                    .extend_from_slice(&frame(EXIT, &exit_code.to_be_bytes()));
            }
            let _ = c.stream.set_nonblocking(false);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = c.stream.set_write_timeout(Some(left));
            let _ = c.stream.write_all(&c.out);
        }
    }
}

fn flush(c: &mut Client) {
    while !c.out.is_empty() && !c.gone {
        match c.stream.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => c.gone = true,
        }
    }
}

/// Receives the descriptor sent over `stream` (SCM_RIGHTS): the terminal's master that
/// libcontainer sends to a console socket, as runc's protocol has it. Blocking.
pub fn receive_fd(stream: &UnixStream) -> Result<OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receiving the terminal: {e}"))?;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: SCM_RIGHTS gave us a new descriptor that nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err("the console socket carried no terminal".into())
}

/// Sets a terminal's size.
pub fn resize(fd: &impl AsRawFd, width: u16, height: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which outlives the call.
    unsafe {
        libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere() {
        let mut bytes = frame(STDOUT, b"hello");
        bytes.extend(frame(EXIT, &7i32.to_be_bytes()));
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for b in bytes {
            d.push(&[b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            [
                (STDOUT, b"hello".to_vec()),
                (EXIT, 7i32.to_be_bytes().to_vec())
            ]
        );
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut d = Decoder::default();
        d.push(&[STDIN, 0xff, 0xff, 0xff, 0xff]);
        assert!(d.next_frame().is_err());
    }

    fn client(dir: &Path) -> UnixStream {
        let (_fd, path) = short_path(dir, SOCKET).unwrap();
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn read_frames(s: &mut UnixStream) -> Vec<(u8, Vec<u8>)> {
        let mut d = Decoder::default();
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return out,
                Ok(n) => {
                    d.push(&buf[..n]);
                    while let Some(f) = d.next_frame().unwrap() {
                        let exit = f.0 == EXIT;
                        out.push(f);
                        if exit {
                            return out;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_one_session_container_replays_to_its_first_client_and_closes_stdin_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut server = Server::listen(dir.path(), Stdin::Pipe(w), true).unwrap();
        assert!(server.awaiting_first_client());
        server.output(STDOUT, b"before\n");
        let mut c = client(dir.path());
        c.write_all(&frame(HELLO, &[1])).unwrap();
        c.write_all(&frame(STDIN, b"typed\n")).unwrap();
        c.write_all(&frame(STDIN_EOF, &[])).unwrap();
        // The server sees the client, its hello, its stdin and its EOF, then closes stdin.
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(server.stdin, Stdin::Pipe(_)) && Instant::now() < deadline {
            server.service();
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut got = Vec::new();
        std::fs::File::from(r).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"typed\n", "stdin reached the container, then closed");
        assert!(server.attached() && !server.awaiting_first_client());
        server.output(STDERR, b"after\n");
        server.finish(3);
        let frames = read_frames(&mut c);
        assert_eq!(
            frames,
            [
                (STDOUT, b"before\n".to_vec()),
                (STDERR, b"after\n".to_vec()),
                (EXIT, 3i32.to_be_bytes().to_vec())
            ]
        );
        assert!(!dir.path().join(SOCKET).exists(), "the socket is removed");
    }

    #[test]
    fn a_long_lived_container_keeps_stdin_open_across_clients() {
        let dir = tempfile::tempdir().unwrap();
        let (_r, w) = nix::unistd::pipe().unwrap();
        let mut server = Server::listen(dir.path(), Stdin::Pipe(w), false).unwrap();
        assert!(!server.awaiting_first_client());
        server.output(STDOUT, b"nobody sees this\n");
        let mut c = client(dir.path());
        c.write_all(&frame(HELLO, &[1])).unwrap();
        c.write_all(&frame(STDIN_EOF, &[])).unwrap();
        drop(c);
        for _ in 0..50 {
            server.service();
            if server.attached() && server.clients.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(server.attached() && server.clients.is_empty());
        assert!(matches!(server.stdin, Stdin::Pipe(_)), "stdin stays open");
        let mut c = client(dir.path());
        c.write_all(&frame(HELLO, &[0])).unwrap();
        for _ in 0..50 {
            server.service();
            if server.clients.iter().any(|c| c.hello) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        server.output(STDOUT, b"live\n");
        server.finish(0);
        assert_eq!(
            read_frames(&mut c),
            [
                (STDOUT, b"live\n".to_vec()),
                (EXIT, 0i32.to_be_bytes().to_vec())
            ]
        );
    }
}

//! The per-container shim: `tinykube-kubelet shim …`, a single-threaded process (no tokio)
//! that owns one container for its whole life, as containerd-shim does.
//!
//! It creates and starts the container with libcontainer (whose init becomes the shim's
//! child), reports `{"pid": N}` (or `{"error": "…"}`) as one line on stdout, then copies the
//! container's stdout/stderr into the CRI log file until the container exits, records the
//! exit in `exit.json` and deletes the container (its cgroup and state). Because it is its
//! own session, the container keeps running when the kubelet dies.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitStatus};
use serde::{Deserialize, Serialize};

use super::attach;
use super::crilog::{now_rfc3339_nano, CriLog, Stream};

/// What the shim is told (its command-line flags).
#[derive(Clone, Debug, clap::Args)]
pub struct ShimArgs {
    /// Container ID (libcontainer's; also the name of its state dir).
    #[arg(long)]
    pub id: String,
    /// The OCI bundle: config.json (whose root.path names the prepared rootfs).
    #[arg(long)]
    pub bundle: PathBuf,
    /// libcontainer's state root.
    #[arg(long)]
    pub state_root: PathBuf,
    /// The CRI log file.
    #[arg(long)]
    pub log: PathBuf,
    /// Where the exit is recorded.
    #[arg(long)]
    pub exit_file: PathBuf,
    #[arg(long, default_value_t = 10 << 20)]
    pub log_max_size: u64,
    #[arg(long, default_value_t = 5)]
    pub log_max_files: usize,
    /// The container's cgroup is a systemd scope (its cgroupsPath is `slice:prefix:name`).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// The container's stdin is a pipe the shim holds for attach (`stdin: true`).
    #[arg(long)]
    pub stdin: bool,
    /// Stdin closes when its first attached client closes it (`stdinOnce: true`).
    #[arg(long)]
    pub stdin_once: bool,
    /// The container has a terminal (`tty: true`; the spec's `process.terminal`).
    #[arg(long)]
    pub tty: bool,
}

/// The first line a shim prints.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// How a container ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    pub exit_code: i32,
    /// The signal that killed it, if one did (then exit_code is 128 + signal).
    #[serde(default)]
    pub signal: Option<i32>,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default)]
    pub oom_killed: bool,
}

fn report(r: &Report) {
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string(r).expect("report serialises")
    );
    let _ = out.flush();
}

/// Runs the shim; returns the process exit code.
pub fn run(args: ShimArgs) -> i32 {
    // Nothing of libcontainer's may reach the container's log or the kubelet: the shim has no
    // tracing subscriber, and once started it lets go of the kubelet's stdout and stderr.
    let _ = nix::unistd::setsid();
    unsafe {
        // SAFETY: setting a signal disposition to SIG_IGN in a single-threaded process.
        let _ = nix::sys::signal::signal(
            nix::sys::signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        );
        let _ = nix::sys::signal::signal(
            nix::sys::signal::SIGHUP,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    match start(&args) {
        Ok(mut running) => {
            // Listening before the report, so the container can be attached to as soon as
            // the kubelet knows it runs. Without its socket it still runs, unattachable.
            let stdin = std::mem::replace(&mut running.stdin, attach::Stdin::None);
            let server = attach::Server::listen(&args.bundle, stdin, args.stdin_once).ok();
            report(&Report {
                pid: Some(running.pid.as_raw()),
                error: None,
                started_at: Some(running.started_at.clone()),
            });
            detach_stdio();
            supervise(&args, running, server)
        }
        Err(e) => {
            report(&Report {
                pid: None,
                error: Some(e),
                started_at: None,
            });
            1
        }
    }
}

struct Running {
    container: libcontainer::container::Container,
    pid: nix::unistd::Pid,
    /// Standard output (or the terminal's master), standard error (none with a terminal).
    out: OwnedFd,
    err: Option<OwnedFd>,
    stdin: attach::Stdin,
    started_at: String,
    oom: OomWatch,
}

/// The container's stdio as the shim holds it: what the builder gets, what the shim keeps.
struct Stdio {
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    stdin: attach::Stdin,
    console: Option<(std::os::unix::net::UnixListener, PathBuf)>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn start(args: &ShimArgs) -> Result<Running, String> {
    let null = || File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"));
    // Containers inherit the shim's open-file limit: containerd's 1048576 (libcontainer
    // fails with EPERM when the spec asks to raise rlimits itself).
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        1 << 20,
        1 << 20,
    );
    // A crashed earlier create leaves its state dir behind and blocks the ID.
    let stale = args.state_root.join(&args.id);
    if stale.exists() {
        if let Ok(mut c) = libcontainer::container::Container::load(stale.clone()) {
            let _ = c.delete(true);
        }
        let _ = std::fs::remove_dir_all(&stale);
    }
    let mut builder = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(&args.state_root)
        .map_err(|e| format!("state root {}: {e}", args.state_root.display()))?;
    let mut io = Stdio {
        out: None,
        err: None,
        stdin: attach::Stdin::None,
        console: None,
    };
    if args.tty {
        // libcontainer sends the terminal's master to a console socket, as runc does.
        const CONSOLE: &str = "console.sock";
        let _ = std::fs::remove_file(args.bundle.join(CONSOLE));
        let listener = attach::short_path(&args.bundle, CONSOLE)
            .and_then(|(_dir, path)| std::os::unix::net::UnixListener::bind(path))
            .map_err(|e| format!("console socket: {e}"))?;
        builder = builder.with_console_socket(Some(args.bundle.join(CONSOLE)));
        io.console = Some((listener, args.bundle.join(CONSOLE)));
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        io.out = Some(out_r);
        io.err = Some(err_r);
        builder = builder.with_stdout(out_w).with_stderr(err_w);
        if args.stdin {
            let (in_r, in_w) = pipe()?;
            io.stdin = attach::Stdin::Pipe(in_w);
            builder = builder.with_stdin(in_r);
        } else {
            builder = builder.with_stdin(OwnedFd::from(null()?));
        }
    }
    let built = builder
        .as_init(&args.bundle)
        .with_systemd(args.systemd_cgroup)
        .with_detach(true)
        .build()
        .map_err(|e| format!("creating container {}: {e}", args.id));
    if let Some((listener, path)) = io.console.take() {
        let master = built.as_ref().ok().map(|_| receive_master(&listener));
        let _ = std::fs::remove_file(path);
        if let Some(master) = master {
            match master {
                Ok(m) => {
                    if args.stdin {
                        let dup = m.try_clone().map_err(|e| format!("dup: {e}"))?;
                        io.stdin = attach::Stdin::Terminal(dup);
                    }
                    io.out = Some(m);
                }
                Err(e) => {
                    if let Ok(mut c) = built {
                        let _ = c.delete(true);
                    }
                    return Err(e);
                }
            }
        }
    }
    let mut container = built?;
    let started_at = now_rfc3339_nano();
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(format!("starting container {}: {e}", args.id));
    }
    let pid = container
        .pid()
        .ok_or_else(|| format!("container {} has no pid", args.id))?;
    let oom = OomWatch::new(pid.as_raw());
    Ok(Running {
        container,
        pid,
        out: io.out.ok_or("the container has no output")?,
        err: io.err,
        stdin: io.stdin,
        started_at,
        oom,
    })
}

/// Receives the terminal's master that libcontainer's init sent to the console socket (it
/// connected during create, so the connection is waiting).
fn receive_master(listener: &std::os::unix::net::UnixListener) -> Result<OwnedFd, String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("console socket: {e}"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return Err("timed out waiting for the container's terminal".into());
                }
                let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            Err(e) => return Err(format!("console socket: {e}")),
        }
    };
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    attach::receive_fd(&stream)
}

/// Points stdin/stdout/stderr at /dev/null, so the kubelet's pipes close.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..=2 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
}

fn supervise(args: &ShimArgs, mut running: Running, mut server: Option<attach::Server>) -> i32 {
    let mut log = CriLog::open(&args.log, args.log_max_size, args.log_max_files).ok();
    for fd in std::iter::once(&running.out).chain(running.err.as_ref()) {
        let flags = nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK);
        let _ = nix::fcntl::fcntl(fd.as_raw_fd(), flags);
    }
    let mut open = [true, running.err.is_some()];
    let mut buf = vec![0u8; 64 * 1024];
    // The init is our child: SIGCHLD would do, but a pidfd fits poll() directly.
    let pidfd = pidfd_open(running.pid.as_raw());
    let mut status = None;
    loop {
        let streams = [
            (Some(&running.out), Stream::Stdout, attach::STDOUT),
            (running.err.as_ref(), Stream::Stderr, attach::STDERR),
        ];
        // After the exit, give lingering writers (none, normally) a moment, then stop.
        let timeout = if status.is_some() || pidfd.is_none() {
            200u16
        } else {
            u16::MAX
        };
        {
            let mut fds = Vec::with_capacity(4);
            for (i, (fd, _, _)) in streams.iter().enumerate() {
                if let (true, Some(fd)) = (open[i], fd) {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                }
            }
            if status.is_none() {
                if let Some(p) = &pidfd {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                }
            }
            if fds.is_empty() {
                break;
            }
            if let Some(s) = &server {
                fds.extend(s.poll_fds());
            }
            let _ = poll(&mut fds, PollTimeout::from(timeout));
        }
        if let Some(s) = server.as_mut() {
            s.service();
        }
        let mut progressed = false;
        for (i, (fd, stream, kind)) in streams.iter().enumerate() {
            let (true, Some(fd)) = (open[i], fd) else {
                continue;
            };
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) => open[i] = false,
                Ok(n) => {
                    progressed = true;
                    if let Some(l) = log.as_mut() {
                        let _ = l.write(*stream, &buf[..n]);
                    }
                    if let Some(s) = server.as_mut() {
                        s.output(*kind, &buf[..n]);
                    }
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
                // EIO from a terminal's master: its last user is gone.
                Err(_) => open[i] = false,
            }
        }
        if status.is_none() {
            match waitpid(running.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(s) => status = Some(s),
                Err(_) => status = Some(WaitStatus::Exited(running.pid, 255)),
            }
        } else if !progressed {
            break;
        }
    }
    // A container made for one session (`kubectl run -i`) that ended before its client
    // came: its output waits a little for that client (the kubelet still reports it
    // running meanwhile).
    if let Some(s) = server.as_mut() {
        let deadline = std::time::Instant::now() + attach::FIRST_CLIENT_GRACE;
        while s.awaiting_first_client() && std::time::Instant::now() < deadline {
            {
                let mut fds = s.poll_fds();
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            s.service();
        }
    }
    if let Some(l) = log.as_mut() {
        let _ = l.finish();
    }
    let (exit_code, signal) = match status {
        Some(WaitStatus::Exited(_, c)) => (c, None),
        Some(WaitStatus::Signaled(_, s, _)) => (128 + s as i32, Some(s as i32)),
        _ => (255, None),
    };
    let oom_killed = signal == Some(libc::SIGKILL) && running.oom.killed();
    if let Some(s) = server {
        s.finish(exit_code);
    }
    let _ = running.container.delete(true);
    if args.systemd_cgroup {
        // An OOM-killed scope stays loaded as failed until reset.
        let scope =
            super::cgroups::Layout::new(super::cgroups::Driver::Systemd, "").scope(&args.id);
        super::cgroups::reset_failed(&scope.into_iter().collect::<Vec<_>>());
    }
    let record = ExitRecord {
        exit_code,
        signal,
        started_at: running.started_at.clone(),
        finished_at: now_rfc3339_nano(),
        oom_killed,
    };
    let tmp = args.exit_file.with_extension("tmp");
    let written = std::fs::write(&tmp, serde_json::to_vec(&record).expect("serialises"))
        .and_then(|_| std::fs::rename(&tmp, &args.exit_file));
    if written.is_err() {
        return 1;
    }
    0
}

/// What tells whether the kernel's OOM killer ended the container: its memory cgroup (found
/// from its init's `/proc/PID/cgroup`, so both drivers and both layouts), and on v2 the
/// parent's (the pod's) hierarchical `oom_kill` count at the start. A systemd scope's cgroup
/// may be gone by the time the exit is seen (systemd removes an empty scope at once); the pod's
/// count then still shows the kill.
struct OomWatch {
    cgroup: Option<(PathBuf, bool)>,
    parent_kills: Option<u64>,
}

impl OomWatch {
    fn new(pid: i32) -> Self {
        let cgroup = super::cgroups::memory_cgroup_of(pid);
        let parent_kills = match &cgroup {
            Some((rel, true)) => rel.parent().and_then(super::cgroups::oom_kills_v2),
            _ => None,
        };
        Self {
            cgroup,
            parent_kills,
        }
    }

    fn killed(&self) -> bool {
        match &self.cgroup {
            Some((rel, true)) => match super::cgroups::oom_kills_v2(rel) {
                Some(n) => n > 0,
                None => rel
                    .parent()
                    .and_then(super::cgroups::oom_kills_v2)
                    .zip(self.parent_kills)
                    .is_some_and(|(now, then)| now > then),
            },
            Some((rel, false)) => super::cgroups::oom_kills_v1(rel).is_some_and(|n| n > 0),
            None => false,
        }
    }
}

/// A pidfd for `pid` (readable once the process exits).
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new descriptor or -1; we own the descriptor it returns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    use std::os::fd::FromRawFd;
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The kubelet side: starts a shim for a prepared bundle and returns its report and the
/// shim process (to wait on). `exe` is the kubelet binary.
pub fn spawn(exe: &std::path::Path, args: &ShimArgs) -> io::Result<(Report, std::process::Child)> {
    let mut child = std::process::Command::new(exe)
        .arg("shim")
        .arg("--id")
        .arg(&args.id)
        .arg("--bundle")
        .arg(&args.bundle)
        .arg("--state-root")
        .arg(&args.state_root)
        .arg("--log")
        .arg(&args.log)
        .arg("--exit-file")
        .arg(&args.exit_file)
        .arg("--log-max-size")
        .arg(args.log_max_size.to_string())
        .arg("--log-max-files")
        .arg(args.log_max_files.to_string())
        .args(args.systemd_cgroup.then_some("--systemd-cgroup"))
        .args(args.stdin.then_some("--stdin"))
        .args(args.stdin_once.then_some("--stdin-once"))
        .args(args.tty.then_some("--tty"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .spawn()?;
    let mut line = Vec::new();
    let mut out = child.stdout.take().expect("piped");
    let mut byte = [0u8; 1];
    while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let r: Report = serde_json::from_slice(&line).map_err(|e| {
        io::Error::other(format!(
            "shim for {} said {:?}: {e}",
            args.id,
            String::from_utf8_lossy(&line)
        ))
    })?;
    Ok((r, child))
}

/// The recorded exit of a container, once its shim wrote it.
pub fn read_exit(path: &std::path::Path) -> Option<ExitRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

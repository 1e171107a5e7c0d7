//! `exec` (and `attach`): a command run in a running container by the exec helper
//! ([`crate::runtime::exec`]), its stdio carried over WebSocket (`v5`/`v4.channel.k8s.io`)
//! or SPDY/3.1 streams, as the kubelet's CRI streaming server does.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::{find_pod, query_pairs, running_instance, status, Body, State};
use crate::runtime::exec::ExecReport;

/// What the client sends.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Stdin(Bytes),
    /// The client closed its stdin.
    StdinEof,
    Resize {
        width: u16,
        height: u16,
    },
}

/// What the process writes.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// What the client asked for (the query of `pods/exec`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// An attach (to the container's own stdio), not an exec.
    pub attach: bool,
}

impl Options {
    pub fn parse(query: Option<&str>) -> Result<Options, String> {
        let mut o = Options::default();
        let flag = |v: &str| matches!(v, "" | "true" | "1" | "True");
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "command" => o.command.push(v),
                "stdin" | "input" => o.stdin = flag(&v),
                "stdout" | "output" => o.stdout = flag(&v),
                "stderr" | "error" => o.stderr = flag(&v),
                "tty" => o.tty = flag(&v),
                _ => {}
            }
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        // A terminal has one output stream.
        if o.tty {
            o.stderr = false;
        }
        Ok(o)
    }
}

/// How an exec ended: the command's exit code, or why it could not run.
pub type Outcome = Result<i32, String>;

/// The Status written on the error/status stream at the end (v4 and later).
pub fn outcome_status(outcome: &Outcome, command: &[String]) -> Value {
    match outcome {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: command '{}' exited with {code}",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {e}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": e}]},
            "code": 500,
        }),
    }
}

pub async fn handle(
    state: Arc<State>,
    ns: &str,
    pod_name: &str,
    container: &str,
    attach: bool,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let mut opts = match Options::parse(req.uri().query()) {
        Ok(o) => o,
        Err(e) => return status(400, "BadRequest", e),
    };
    opts.attach = attach;
    if attach {
        opts.command.clear();
    } else if opts.command.is_empty() {
        return status(
            400,
            "BadRequest",
            "you must specify at least one command for the container",
        );
    }
    let pod = match find_pod(&state, ns, pod_name) {
        Ok(p) => p,
        Err(r) => return r.response(),
    };
    let instance = match running_instance(&state, &pod, container) {
        Ok(i) => i,
        Err(r) => return r.response(),
    };
    let id = instance.record.id.clone();
    let instance_dir = state.rt.instance_dir(
        pod.metadata.uid.as_deref().unwrap_or(""),
        container,
        instance.record.attempt,
    );
    let session = {
        let state = state.clone();
        let opts = opts.clone();
        move |input, output| async move {
            if opts.attach {
                attach_to(&instance_dir, &opts, input, output).await
            } else {
                run(&state, &id, &opts, input, output).await
            }
        }
    };
    if is_upgrade(&req, "websocket") {
        return match super::ws::accept(&req, super::ws::CHANNEL_PROTOCOLS) {
            Ok((response, protocol)) => {
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(io) => super::ws::exec_session(io, &protocol, opts, session).await,
                        Err(e) => tracing::debug!(error = %e, "exec: upgrade failed"),
                    }
                });
                response
            }
            Err(r) => r.response(),
        };
    }
    if is_upgrade(&req, "SPDY/3.1") {
        return match super::spdy::accept(&req, super::spdy::EXEC_PROTOCOLS) {
            Ok((response, protocol)) => {
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(io) => {
                            super::spdy::exec_session(
                                hyper_util::rt::TokioIo::new(io),
                                &protocol,
                                opts,
                                session,
                            )
                            .await
                        }
                        Err(e) => tracing::debug!(error = %e, "exec: upgrade failed"),
                    }
                });
                response
            }
            Err(r) => r.response(),
        };
    }
    status(400, "BadRequest", "Upgrade request required")
}

/// Whether the request asks to upgrade to `protocol`.
pub fn is_upgrade(req: &Request<Incoming>, protocol: &str) -> bool {
    super::ws::offered_in(req, header::UPGRADE)
        .iter()
        .any(|p| p.eq_ignore_ascii_case(protocol))
}

/// Runs `opts.command` in container `id`, carrying stdio between the channels and the
/// process until it exits and its output is drained.
pub async fn run(
    state: &State,
    id: &str,
    opts: &Options,
    input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Outcome {
    let helper = Helper {
        exe: &state.exe,
        state_root: &state.rt.state_root(),
        run_dir: &state.run_dir,
    };
    run_with(&helper, id, opts, input, output).await
}

/// Where the exec helper is and what it needs.
pub struct Helper<'a> {
    /// The kubelet binary.
    pub exe: &'a std::path::Path,
    /// libcontainer's state root.
    pub state_root: &'a std::path::Path,
    /// Where console sockets are made (for a TTY).
    pub run_dir: &'a std::path::Path,
}

/// [`run`] with the helper given (exec probes use it too).
pub async fn run_with(
    helper: &Helper<'_>,
    id: &str,
    opts: &Options,
    input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Outcome {
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let mut cmd = tokio::process::Command::new(helper.exe);
    cmd.arg("exec-helper")
        .arg("--id")
        .arg(id)
        .arg("--state-root")
        .arg(helper.state_root);
    let console = if opts.tty {
        let _ = std::fs::create_dir_all(helper.run_dir);
        let path = helper
            .run_dir
            .join(format!("exec-{:016x}.sock", rand::random::<u64>()));
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| format!("console socket {}: {e}", path.display()))?;
        cmd.arg("--tty").arg("--console-socket").arg(&path);
        Some((listener, path))
    } else {
        None
    };
    cmd.arg("--").args(&opts.command);
    let piped = |on: bool| {
        if on && !opts.tty {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    cmd.stdin(piped(opts.stdin))
        .stdout(piped(opts.stdout))
        .stderr(piped(opts.stderr))
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    let w = report_w.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if w == crate::runtime::exec::REPORT_FD {
                if libc::fcntl(w, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(w, crate::runtime::exec::REPORT_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::setsid();
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    drop(report_w);
    let mut child = spawned.map_err(|e| format!("starting the exec helper: {e}"))?;
    let result = supervise(&mut child, report_r, console, input, output).await;
    // The helper exits right after the command; reap it without holding the client.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    result
}

/// The exec'd process, killed if its session is dropped before it ended (an exec probe or
/// hook past its timeout), so nothing is left running in the container.
struct KillOnDrop {
    pid: Option<(i32, Option<u64>)>,
}

impl KillOnDrop {
    fn of(pid: Option<i32>) -> Self {
        KillOnDrop {
            pid: pid.map(|p| (p, crate::runtime::pods::process_start(p))),
        }
    }

    fn disarm(&mut self) {
        self.pid = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Some((pid, start)) = self.pid else { return };
        // The very process (a reused pid has another start time).
        if start.is_some() && crate::runtime::pods::process_start(pid) == start {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
}

async fn supervise(
    child: &mut tokio::process::Child,
    report_r: OwnedFd,
    console: Option<(tokio::net::UnixListener, std::path::PathBuf)>,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Outcome {
    let reports = tokio::net::unix::pipe::Receiver::from_owned_fd(report_r)
        .map_err(|e| format!("report pipe: {e}"))?;
    let mut reports = BufReader::new(reports).lines();
    let mut next_report = async || -> Result<ExecReport, String> {
        let line = reports
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the exec helper ended without a word")?;
        let r: ExecReport = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        match r.error {
            Some(e) => Err(e),
            None => Ok(r),
        }
    };
    if let Some((listener, path)) = console {
        let master = tokio::select! {
            m = receive_master(&listener) => m,
            r = next_report() => Err(r.err().unwrap_or_else(|| "no terminal".into())),
            _ = tokio::time::sleep(Duration::from_secs(20)) => Err("timed out waiting for the terminal".into()),
        };
        let _ = std::fs::remove_file(&path);
        let master = master?;
        let mut guard = KillOnDrop::of(next_report().await?.pid);
        let exited = async {
            let code = next_report().await?.exit_code.unwrap_or(255);
            Ok::<i32, String>(code)
        };
        let code = pty_session(master, exited, input, output).await;
        guard.disarm();
        return code;
    }
    let mut guard = KillOnDrop::of(next_report().await?.pid);
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let pump = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>, err: bool| {
        let output = output.clone();
        async move {
            let Some(mut r) = r else { return };
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                let o = if err {
                    Output::Stderr(chunk)
                } else {
                    Output::Stdout(chunk)
                };
                if output.send(o).await.is_err() {
                    break;
                }
            }
        }
    };
    let out_done = pump(stdout.map(|s| Box::new(s) as _), false);
    let err_done = pump(stderr.map(|s| Box::new(s) as _), true);
    let drained = async { tokio::join!(out_done, err_done) };
    tokio::pin!(drained);
    let feed = async {
        while let Some(i) = input.recv().await {
            match i {
                Input::Stdin(b) => {
                    if let Some(s) = stdin.as_mut() {
                        if s.write_all(&b).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Input::StdinEof => stdin = None,
                Input::Resize { .. } => {}
            }
        }
        // The client is gone: close stdin, as the process would see.
        drop(stdin.take());
        std::future::pending::<()>().await
    };
    tokio::pin!(feed);
    let mut output_done = false;
    let code = loop {
        tokio::select! {
            r = next_report() => {
                guard.disarm();
                break r?.exit_code.unwrap_or(255);
            }
            _ = &mut drained, if !output_done => output_done = true,
            _ = &mut feed => unreachable!("feeding never ends"),
        }
    };
    // Output written just before the exit is still in the pipes; something the command
    // left running may hold them open, so the wait is bounded.
    if !output_done {
        tokio::select! {
            _ = &mut drained => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    Ok(code)
}

/// Attaches to the container whose instance directory is `dir`, through its shim
/// ([`crate::runtime::attach`]), until the container ends or the client leaves.
pub async fn attach_to(
    dir: &std::path::Path,
    opts: &Options,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Outcome {
    use crate::runtime::attach as a;
    let (_dir, path) = a::short_path(dir, a::SOCKET).map_err(|e| e.to_string())?;
    let stream = tokio::net::UnixStream::connect(&path)
        .await
        .map_err(|e| format!("the container is not running: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(&a::frame(a::HELLO, &[u8::from(opts.stdin)]))
        .await
        .map_err(|e| e.to_string())?;
    let reader = async {
        let mut frames = a::Decoder::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = rd.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the container's shim went away".to_string());
            }
            frames.push(&buf[..n]);
            while let Some((kind, data)) = frames.next_frame().map_err(|e| e.to_string())? {
                let o = match kind {
                    a::STDOUT if opts.stdout => Output::Stdout(data.into()),
                    // A terminal has one output: stderr, if any, goes with stdout.
                    a::STDERR if opts.stderr || (opts.tty && opts.stdout) => {
                        if opts.tty {
                            Output::Stdout(data.into())
                        } else {
                            Output::Stderr(data.into())
                        }
                    }
                    a::EXIT => return Ok(0),
                    _ => continue,
                };
                if output.send(o).await.is_err() {
                    return Ok(0);
                }
            }
        }
    };
    // The writer ends only when the client leaves. A shim that stops taking input has
    // exited (or is exiting): what it still has to say (a one-session container's whole
    // output, then EXIT) is read to the end, so a failed write never cuts that short.
    let writer = async {
        let mut shim_open = true;
        while let Some(i) = input.recv().await {
            let f = match i {
                Input::Stdin(b) if opts.stdin => a::frame(a::STDIN, &b),
                Input::Stdin(_) => continue,
                Input::StdinEof => a::frame(a::STDIN_EOF, &[]),
                Input::Resize { width, height } => {
                    let mut size = width.to_be_bytes().to_vec();
                    size.extend(height.to_be_bytes());
                    a::frame(a::RESIZE, &size)
                }
            };
            if shim_open && wr.write_all(&f).await.is_err() {
                shim_open = false;
            }
        }
    };
    tokio::select! {
        r = reader => r,
        // The client left (its connection closed): the session ends; the container runs on
        // (and a one-session container's stdin closes, as the shim sees this client go).
        _ = writer => Ok(0),
    }
}

/// Receives the pty master libcontainer sends to the console socket.
async fn receive_master(listener: &tokio::net::UnixListener) -> Result<OwnedFd, String> {
    let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
    let stream = stream.into_std().map_err(|e| e.to_string())?;
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || crate::runtime::attach::receive_fd(&stream))
        .await
        .map_err(|e| e.to_string())?
}

async fn pty_session(
    master: OwnedFd,
    exited: impl std::future::Future<Output = Result<i32, String>>,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Outcome {
    let flags = nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|e| e.to_string())?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))
        .map_err(|e| e.to_string())?;
    // SAFETY: the master is ours alone and stays registered until the AsyncFd drops it.
    let master = Arc::new(unsafe { AsyncFd::register(master) }.map_err(|e| e.to_string())?);
    let reader = {
        let master = master.clone();
        async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let Ok(mut guard) = master.readable().await else {
                    break;
                };
                match guard.try_io(|fd| {
                    nix::unistd::read(fd.as_raw_fd(), &mut buf).map_err(io::Error::from)
                }) {
                    Ok(Ok(0)) | Ok(Err(_)) => break, // EIO: the terminal's last user left
                    Ok(Ok(n)) => {
                        let chunk = Bytes::copy_from_slice(&buf[..n]);
                        if output.send(Output::Stdout(chunk)).await.is_err() {
                            break;
                        }
                    }
                    Err(_would_block) => continue,
                }
            }
        }
    };
    let writer = {
        let master = master.clone();
        async move {
            while let Some(i) = input.recv().await {
                match i {
                    Input::Stdin(b) => {
                        let mut rest = &b[..];
                        while !rest.is_empty() {
                            let Ok(mut guard) = master.writable().await else {
                                return;
                            };
                            match guard.try_io(|fd| {
                                nix::unistd::write(fd.get_ref(), rest).map_err(io::Error::from)
                            }) {
                                Ok(Ok(n)) => rest = &rest[n..],
                                Ok(Err(_)) => return,
                                Err(_would_block) => continue,
                            }
                        }
                    }
                    Input::Resize { width, height } => {
                        crate::runtime::attach::resize(master.get_ref(), width, height)
                    }
                    Input::StdinEof => {}
                }
            }
        }
    };
    tokio::pin!(reader, writer, exited);
    let mut output_done = false;
    let code = loop {
        tokio::select! {
            c = &mut exited => break c?,
            _ = &mut reader, if !output_done => output_done = true,
            // The client is gone: the terminal goes with it (closing the master hangs up
            // the command's session, as closing a terminal window does).
            _ = &mut writer => return Err("the client went away".into()),
        }
    };
    if !output_done {
        tokio::select! {
            _ = &mut reader => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = Options::parse(Some(
            "command=sh&command=-c&command=echo+hi%3B+exit+3&container=c&stdin=true&stdout=true&stderr=true",
        ))
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo hi; exit 3"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let t = Options::parse(Some("command=sh&stdout=true&stderr=true&tty=true")).unwrap();
        assert!(t.tty && !t.stderr, "a terminal has one output");
        assert!(Options::parse(Some("command=sh")).is_err());
    }

    /// A one-session container that exited before its client came: its shim answers the
    /// hello with the kept output and EXIT and hangs up at once, so the client's stdin EOF
    /// meets a closed socket. The output still reaches the client.
    #[tokio::test]
    async fn an_attach_gets_the_output_of_a_shim_that_already_hung_up() {
        use crate::runtime::attach as a;
        use tokio::io::AsyncWriteExt;
        for _ in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let (_fd, path) = a::short_path(dir.path(), a::SOCKET).unwrap();
            let listener = tokio::net::UnixListener::bind(&path).unwrap();
            let shim = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut hello = [0u8; 6];
                s.read_exact(&mut hello).await.unwrap();
                let mut said = a::frame(a::STDOUT, b"hi\n");
                said.extend(a::frame(a::EXIT, &0i32.to_be_bytes()));
                s.write_all(&said).await.unwrap();
            });
            let (in_tx, in_rx) = mpsc::channel(4);
            let (out_tx, mut out_rx) = mpsc::channel(4);
            let opts = Options {
                stdin: true,
                stdout: true,
                stderr: true,
                attach: true,
                ..Options::default()
            };
            // The client's stdin ends once the shim hung up; the client stays until the
            // session ends.
            let client = tokio::spawn(async move {
                shim.await.unwrap();
                in_tx.send(Input::StdinEof).await.unwrap();
                std::future::pending::<()>().await
            });
            assert_eq!(attach_to(dir.path(), &opts, in_rx, out_tx).await, Ok(0));
            client.abort();
            match out_rx.recv().await {
                Some(Output::Stdout(b)) => assert_eq!(&b[..], b"hi\n"),
                other => panic!("the output was lost: {other:?}"),
            }
        }
    }

    #[test]
    fn status_of_an_exit() {
        let cmd = ["sh".to_string(), "-c".into(), "exit 3".into()];
        assert_eq!(outcome_status(&Ok(0), &cmd)["status"], "Success");
        let s = outcome_status(&Ok(3), &cmd);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let e = outcome_status(&Err("container not found".into()), &cmd);
        assert_eq!(e["reason"], "InternalError");
    }
}

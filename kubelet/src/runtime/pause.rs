//! The process that holds a pod's shared PID namespace (`shareProcessNamespace: true`), as
//! Kubernetes' pause container does: PID 1 of the namespace, reaping whatever is orphaned to
//! it, for the pod's life. (UTS and IPC namespaces are held by bind mounts; a PID
//! namespace cannot be: it dies with its first process.)
//!
//! The kubelet starts `tinykube-kubelet pause` in a new session with `unshare(CLONE_NEWPID)`
//! done before the exec, so the command's *children* are in the new namespace: it forks the
//! holder (PID 1 there), prints the holder's PID (as the node sees it) and exits. The holder
//! is nobody's child but init's, so it outlives kubelet restarts; the kubelet records it in
//! the sandbox (`pause.json`, with its start time) and kills it when the pod goes.

use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The `pause` subcommand: forks the holder and says its PID.
pub fn run() -> i32 {
    // SAFETY: single-threaded here (the subcommand runs before any runtime starts); the
    // child only makes async-signal-safe calls before it loops.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => hold(),
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            println!("{child}");
            0
        }
        Err(e) => {
            eprintln!("pause: fork: {e}");
            1
        }
    }
}

extern "C" fn on_child(_: libc::c_int) {}

/// PID 1 of the pod's namespace: reaps orphans until killed.
fn hold() -> ! {
    // SAFETY: plain libc calls on this process's own signal state and descriptors.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..=2 {
                libc::dup2(null, fd);
            }
        }
        libc::chdir(c"/".as_ptr());
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_child as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut());
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &chld, std::ptr::null_mut());
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        loop {
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            // SIGCHLD stays blocked but between the reaping and here: none is missed.
            libc::sigsuspend(&none);
        }
    }
}

/// Starts a holder of a new PID namespace with the kubelet binary `exe`: its PID.
pub fn start(exe: &Path) -> io::Result<i32> {
    let mut cmd = Command::new(exe);
    cmd.arg("pause")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            if libc::unshare(libc::CLONE_NEWPID) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let _ = child.wait();
    line.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("pause said {line:?}")))
}

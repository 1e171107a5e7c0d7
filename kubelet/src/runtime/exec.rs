//! `tinykube-kubelet exec-helper …`: runs one command inside a running container, as
//! `runc exec` does, in a single-threaded process of its own (libcontainer forks with a raw
//! clone and must never run inside the tokio daemon).
//!
//! The process is the container's own process spec (user, capabilities, no_new_privs,
//! environment, working dir) with the command as its args. libcontainer rebuilds the
//! `linux` section of a tenant's spec without the seccomp profile, so the helper installs
//! the container's profile itself, in the new process right before `execve` (an executor
//! wrapping the default one): an exec'd process is filtered exactly like the container.
//!
//! Without a TTY the helper's stdin/stdout/stderr become the process's. With `--tty` the
//! process gets a pty whose master libcontainer sends to `--console-socket` (the kubelet
//! listens there). The helper reports on fd 3, one JSON line each: `{"pid":N}` once the
//! process runs (or `{"error":"…"}`), then `{"exitCode":N}`.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::oci_spec::runtime::{LinuxSeccomp, Spec};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};
use nix::sys::wait::{waitpid, WaitStatus};
use serde::{Deserialize, Serialize};

/// The helper's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ExecArgs {
    /// The container (libcontainer's ID).
    #[arg(long)]
    pub id: String,
    /// libcontainer's state root.
    #[arg(long)]
    pub state_root: PathBuf,
    /// Give the process a terminal; its master goes to --console-socket.
    #[arg(long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// One line the helper writes on fd 3.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExecReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// The fd the helper reports on.
pub const REPORT_FD: i32 = 3;

/// The default executor, after installing the container's seccomp profile.
#[derive(Clone)]
struct Filtered {
    seccomp: Option<LinuxSeccomp>,
}

impl Executor for Filtered {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(profile) = &self.seccomp {
            libcontainer::seccomp::initialize_seccomp(profile)
                .map_err(|e| ExecutorError::Other(format!("installing seccomp: {e}")))?;
        }
        libcontainer::workload::default::get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }

    fn setup_envs(
        &self,
        envs: std::collections::HashMap<String, String>,
    ) -> Result<(), ExecutorSetEnvsError> {
        libcontainer::workload::default::get_executor().setup_envs(envs)
    }
}

fn report(out: &mut File, r: &ExecReport) {
    let _ = writeln!(out, "{}", serde_json::to_string(r).expect("serialises"));
    let _ = out.flush();
}

/// Runs the helper; returns its exit code (the command's is in the report).
pub fn run(args: ExecArgs) -> i32 {
    // SAFETY: fd 3 is the report pipe the kubelet set up for us; nothing else owns it.
    let mut out = unsafe { File::from_raw_fd(REPORT_FD) };
    let pid = match start(&args) {
        Ok(pid) => pid,
        Err(e) => {
            report(
                &mut out,
                &ExecReport {
                    error: Some(e),
                    ..Default::default()
                },
            );
            return 1;
        }
    };
    // Our copies of the process's stdio go, so the kubelet sees EOF when the process (and
    // whatever it left running with them) closes its own.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..=2 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    report(
        &mut out,
        &ExecReport {
            pid: Some(pid.as_raw()),
            ..Default::default()
        },
    );
    let code = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break 255,
        }
    };
    report(
        &mut out,
        &ExecReport {
            exit_code: Some(code),
            ..Default::default()
        },
    );
    0
}

fn dup(fd: i32) -> Result<OwnedFd, String> {
    // SAFETY: fds 0-2 are open in this process (the kubelet set them up).
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    borrowed
        .try_clone_to_owned()
        .map_err(|e| format!("dup {fd}: {e}"))
}

fn start(args: &ExecArgs) -> Result<nix::unistd::Pid, String> {
    let dir = args.state_root.join(&args.id);
    let container = Container::load(dir.clone()).map_err(|_| "container not found".to_string())?;
    if container.status() != ContainerStatus::Running {
        return Err(format!(
            "container {} is not running ({:?})",
            args.id,
            container.status()
        ));
    }
    let spec = Spec::load(container.bundle().join("config.json"))
        .map_err(|e| format!("reading the container's spec: {e}"))?;
    let mut process = spec
        .process()
        .clone()
        .ok_or("the container's spec has no process")?;
    process
        .set_args(Some(args.command.clone()))
        .set_terminal(Some(args.tty))
        .set_console_size(None);
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    // Same limits as the shim gave the container (libcontainer may not raise them).
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        1 << 20,
        1 << 20,
    );
    let process_file =
        args.state_root
            .join(format!(".exec-{}-{}.json", args.id, std::process::id()));
    std::fs::write(
        &process_file,
        serde_json::to_vec(&process).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("writing {}: {e}", process_file.display()))?;
    let mut builder = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(&args.state_root)
        .map_err(|e| format!("state root {}: {e}", args.state_root.display()))?
        .with_executor(Filtered { seccomp });
    if args.tty {
        builder = builder.with_console_socket(args.console_socket.clone());
    } else {
        builder = builder
            .with_stdin(dup(0)?)
            .with_stdout(dup(1)?)
            .with_stderr(dup(2)?);
    }
    let pid = builder
        .as_tenant()
        .with_process(Some(&process_file))
        .with_detach(args.tty)
        .build();
    let _ = std::fs::remove_file(&process_file);
    pid.map_err(|e| format!("error executing command in container: {e}"))
}

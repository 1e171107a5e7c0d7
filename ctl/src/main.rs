//! tkctl: the small kubectl of tinykube. Talks only to the apiserver, through kube-rs, with
//! kubeconfig handling like kubectl's (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`; on a
//! tinykube node without those, the node's admin kubeconfig).
//!
//! This first slice has the tutorial's verbs: `version`, `ip`, `get` (the server's Tables),
//! `run`, `expose`, `label`, `scale`, `delete`, `logs`, `exec`, `port-forward`.

mod commands;
mod resources;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tkctl", version, about = "tkctl controls the tinykube node")]
pub struct Cli {
    /// Path to the kubeconfig file to use.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace of this request.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the client and server version information.
    Version,
    /// Print the node's IP address (like `minikube ip`).
    Ip,
    /// Display one or many resources.
    Get(commands::GetArgs),
    /// Run an image: a Deployment (pods labelled run=NAME), or a Pod with --restart=Never.
    Run(commands::RunArgs),
    /// Expose a deployment, replica set, pod or service as a new Service.
    Expose(commands::ExposeArgs),
    /// Update the labels on a resource.
    Label(commands::LabelArgs),
    /// Set a new size for a deployment or replica set.
    Scale(commands::ScaleArgs),
    /// Delete resources by names or label selector.
    Delete(commands::DeleteArgs),
    /// Print the logs for a container in a pod.
    Logs(commands::LogsArgs),
    /// Execute a command in a container.
    Exec(commands::ExecArgs),
    /// Forward local ports to a pod.
    PortForward(commands::PortForwardArgs),
}

fn main() -> ExitCode {
    // Like kubectl (Go): output into a closed pipe (`tkctl get pods | head -1`) ends the
    // program quietly instead of failing on every print.
    // SAFETY: restoring a signal's default disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

//! tkctl: the small kubectl of tinykube. Talks only to the apiserver, through kube-rs, with
//! kubeconfig handling like kubectl's (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`; on a
//! tinykube node without those, the node's admin kubeconfig).
//!
//! Each verb prints what kubectl prints: the server's Tables for `get`, kubectl's describe
//! layout, its messages and exit codes.

mod apply;
mod cluster;
mod commands;
mod config;
mod describe;
mod get;
mod jsonpath;
mod manifest;
mod merge;
mod printers;
mod resources;
mod rollout;
mod table;
mod verbose;

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
    /// Log level: 6 shows each request, 7 its headers, 8 the response headers too.
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        default_value_t = 0,
        value_name = "LEVEL"
    )]
    pub verbosity: u8,
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
    Get(get::GetArgs),
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
    /// Show details of a specific resource or group of resources.
    Describe(describe::DescribeArgs),
    /// Create resources from files or stdin.
    Create(apply::CreateArgs),
    /// Apply a configuration to resources from files or stdin (client-side apply).
    Apply(apply::ApplyArgs),
    /// Manage the rollout of a deployment.
    Rollout(rollout::RolloutArgs),
    /// Set specific features on objects (`set image`).
    Set(rollout::SetArgs),
    /// Update the annotations on a resource.
    Annotate(commands::LabelArgs),
    /// Display addresses of the control plane.
    ClusterInfo,
    /// Print the supported API resources on the server.
    ApiResources(cluster::ApiResourcesArgs),
    /// Load images into the node or list them (like `minikube image`).
    Image(cluster::ImageArgs),
    /// Modify kubeconfig files.
    Config(config::ConfigArgs),
    /// Output shell completion code for bash or zsh.
    Completion(config::CompletionArgs),
}

fn main() -> ExitCode {
    // Like kubectl (Go): output into a closed pipe (`tkctl get pods | head -1`) ends the
    // program quietly instead of failing on every print.
    // SAFETY: restoring a signal's default disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        // These read or write the kubeconfig only: no server needed.
        Command::Config(a) => config::config(cli.kubeconfig.as_deref(), a),
        Command::Completion(a) => config::completion(a),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(commands::run(cli)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

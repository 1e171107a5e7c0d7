//! tkctl: the small kubectl of tinykube. Talks only to the apiserver, through kube-rs, with
//! kubeconfig handling like kubectl's (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`; on a
//! tinykube node without those, the node's admin kubeconfig).
//!
//! Each verb prints what kubectl prints: the server's Tables for `get`, kubectl's describe
//! layout, its messages and exit codes.
//!
//! The layout (docs/tkctl.md): `cmd/` holds the verbs, one a file; `client` the connection
//! and the errors; the rest are what verbs share (resources, builder, manifest, merge,
//! printers, table, tabwriter, jsonpath, describe's describers). Nothing but this file knows
//! every verb, and no module imports a verb (`tests/structure.rs` checks it).

mod builder;
mod client;
mod cmd;
mod describe;
mod flags;
mod jsonpath;
mod manifest;
mod merge;
mod printers;
mod resources;
mod table;
mod tabwriter;
mod verbose;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use cmd::*;

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
    Run(run::RunArgs),
    /// Expose a deployment, replica set, pod or service as a new Service.
    Expose(expose::ExposeArgs),
    /// Update the labels on a resource.
    Label(label::LabelArgs),
    /// Set a new size for a deployment or replica set.
    Scale(scale::ScaleArgs),
    /// Delete resources by names or label selector.
    Delete(delete::DeleteArgs),
    /// Print the logs for a container in a pod.
    Logs(logs::LogsArgs),
    /// Execute a command in a container.
    Exec(exec::ExecArgs),
    /// Forward local ports to a pod.
    PortForward(port_forward::PortForwardArgs),
    /// Show details of a specific resource or group of resources.
    Describe(cmd::describe::DescribeArgs),
    /// Create resources from files or stdin.
    Create(apply::CreateArgs),
    /// Apply a configuration to resources from files or stdin (client-side apply).
    Apply(apply::ApplyArgs),
    /// Manage the rollout of a deployment.
    Rollout(rollout::RolloutArgs),
    /// Set specific features on objects (`set image`).
    Set(set::SetArgs),
    /// Update the annotations on a resource.
    Annotate(label::LabelArgs),
    /// Display addresses of the control plane.
    ClusterInfo,
    /// Print the supported API resources on the server.
    ApiResources(api_resources::ApiResourcesArgs),
    /// Load images into the node or list them (like `minikube image`).
    Image(image::ImageArgs),
    /// Modify kubeconfig files.
    Config(config::ConfigArgs),
    /// Output shell completion code for bash or zsh.
    Completion(completion::CompletionArgs),
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
        Command::Completion(a) => completion::completion(a, Cli::command()),
        Command::Image(a) => image::image(a),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(run(cli)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Connects, then runs the verb.
async fn run(cli: Cli) -> client::Res<u8> {
    let ctx = client::connect(&client::Options {
        kubeconfig: cli.kubeconfig.as_deref(),
        namespace: cli.namespace.as_deref(),
        verbosity: cli.verbosity,
    })
    .await?;
    match cli.command {
        Command::Version => version::version(&ctx).await,
        Command::Ip => ip::ip(&ctx).await,
        Command::Get(a) => get::get(&ctx, a).await,
        Command::Run(a) => run::run_image(&ctx, a).await,
        Command::Expose(a) => expose::expose(&ctx, a).await,
        Command::Label(a) => label::label(&ctx, a).await,
        Command::Scale(a) => scale::scale(&ctx, a).await,
        Command::Delete(a) => delete::delete(&ctx, a).await,
        Command::Logs(a) => logs::logs(&ctx, a).await,
        Command::Exec(a) => exec::exec(&ctx, a).await,
        Command::PortForward(a) => port_forward::port_forward(&ctx, a).await,
        Command::Describe(a) => cmd::describe::describe(&ctx, a).await,
        Command::Create(a) => apply::create(&ctx, a).await,
        Command::Apply(a) => apply::apply(&ctx, a).await,
        Command::Rollout(a) => rollout::rollout(&ctx, a).await,
        Command::Set(a) => set::set(&ctx, a).await,
        Command::Annotate(a) => label::annotate(&ctx, a).await,
        Command::ClusterInfo => cluster_info::cluster_info(&ctx).await,
        Command::ApiResources(a) => api_resources::api_resources(&ctx, a).await,
        Command::Config(_) | Command::Completion(_) | Command::Image(_) => {
            unreachable!("handled before connecting")
        }
    }
}

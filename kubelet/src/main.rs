//! tinykube-kubelet: the node agent (run without a subcommand), `cleanup`, the image
//! service's commands on the node's image store (`images pull|ls|load|rm|prune`), and the
//! hidden per-container `shim`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tinykube_kubelet::image::{self, ImageName, ImageService, RegistryConfig, Store};

#[derive(Parser)]
#[command(
    name = "tinykube-kubelet",
    version,
    about = "The tinykube node agent",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    daemon: tinykube_kubelet::daemon::Flags,
}

#[derive(Subcommand)]
enum Command {
    /// Work with the node's image store.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Stop every container and remove everything the kubelet made on this machine.
    Cleanup {
        #[command(flatten)]
        flags: Box<tinykube_kubelet::daemon::Flags>,
        /// Delete the data dir (images included) too.
        #[arg(long)]
        purge: bool,
    },
    /// Run one container (started by the kubelet, not by hand).
    #[command(hide = true)]
    Shim(tinykube_kubelet::runtime::shim::ShimArgs),
    /// Run one command in a running container (started by the kubelet's exec, not by hand).
    #[command(hide = true)]
    ExecHelper(tinykube_kubelet::runtime::exec::ExecArgs),
    /// Hold a pod's shared process namespace (started by the kubelet, not by hand).
    #[command(hide = true)]
    Pause,
}

#[derive(Args, Clone)]
struct StoreFlags {
    /// The kubelet's data directory (images live in <data-dir>/images).
    #[arg(
        long,
        env = "TINYKUBE_KUBELET_DATA_DIR",
        default_value = "/var/lib/tinykube/kubelet"
    )]
    data_dir: PathBuf,
}

#[derive(Args, Clone)]
struct RegistryFlags {
    /// A registry mirror, HOST=URL[,URL...] (e.g. gcr.io=http://127.0.0.1:5000); repeatable.
    #[arg(long = "registry-mirror", value_name = "HOST=URL")]
    mirrors: Vec<String>,
    /// A registry reached over plain HTTP although it is not on loopback; repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure: Vec<String>,
}

impl RegistryFlags {
    fn config(&self) -> Result<RegistryConfig, String> {
        let mut c = RegistryConfig::default();
        for m in &self.mirrors {
            c.add_mirror_flag(m)?;
        }
        c.insecure = self.insecure.clone();
        Ok(c)
    }
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Pull an image (as the kubelet would for a pod).
    Pull {
        image: String,
        #[command(flatten)]
        store: StoreFlags,
        #[command(flatten)]
        registry: RegistryFlags,
        /// A file with a .dockerconfigjson to take credentials from.
        #[arg(long)]
        docker_config: Option<PathBuf>,
    },
    /// List the node's images.
    Ls {
        #[command(flatten)]
        store: StoreFlags,
        /// Print full image IDs and digests.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Import an OCI image layout archive or a `docker save` tarball.
    Load {
        file: PathBuf,
        /// The name to give images that carry none (OCI archives tagged only with a tag).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Remove images (by name or ID) that no container uses.
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Remove every image no container uses (`--dangling`: only untagged ones).
    Prune {
        #[arg(long)]
        dangling: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
}

fn open(flags: &StoreFlags) -> Result<Arc<Store>, String> {
    Store::open(&flags.data_dir.join("images"))
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The shim must stay single-threaded and silent: it runs before anything else.
    if let Some(Command::Shim(args)) = cli.command {
        return ExitCode::from(tinykube_kubelet::runtime::shim::run(args) as u8);
    }
    if let Some(Command::Pause) = cli.command {
        return ExitCode::from(tinykube_kubelet::runtime::pause::run() as u8);
    }
    if let Some(Command::ExecHelper(args)) = cli.command {
        return ExitCode::from(tinykube_kubelet::runtime::exec::run(args) as u8);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TINYKUBE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a terminal: not in log files nor the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let Some(command) = cli.command else {
        let rt = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match rt.block_on(tinykube_kubelet::daemon::run(cli.daemon)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    };
    let r = match command {
        Command::Images(c) => images(c),
        Command::Cleanup { flags, purge } => tinykube_kubelet::daemon::cleanup(&flags, purge),
        Command::Shim(_) | Command::ExecHelper(_) | Command::Pause => {
            unreachable!("handled above")
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn images(c: ImagesCommand) -> Result<(), String> {
    match c {
        ImagesCommand::Pull {
            image,
            store,
            registry,
            docker_config,
        } => {
            let name = ImageName::parse(&image).map_err(|e| e.to_string())?;
            let configs = match docker_config {
                Some(p) => vec![std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?],
                None => vec![],
            };
            let service = ImageService::new(open(&store)?, registry.config()?);
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            let pulled = rt
                .block_on(service.pull(&name, &configs))
                .map_err(|e| e.to_string())?;
            println!(
                "Pulled {} ({}) in {}, {} bytes",
                name.canonical(),
                pulled.image.id,
                image::policy::go_duration(pulled.took),
                pulled.image.size
            );
            Ok(())
        }
        ImagesCommand::Ls { store, no_trunc } => {
            let store = open(&store)?;
            let mut rows = vec![[
                "IMAGE".to_string(),
                "TAG".into(),
                "IMAGE ID".into(),
                "SIZE".into(),
            ]];
            let mut images = store.list().map_err(|e| e.to_string())?;
            images.sort_by(|a, b| a.names.cmp(&b.names));
            for i in images {
                let id = i.id.trim_start_matches("sha256:");
                let id = if no_trunc {
                    i.id.clone()
                } else {
                    id[..13].to_string()
                };
                let names = if i.names.is_empty() {
                    vec!["<none>:<none>".to_string()]
                } else {
                    i.names.clone()
                };
                for n in names {
                    let (repo, tag) = n.rsplit_once(':').unwrap_or((&n, "<none>"));
                    rows.push([repo.into(), tag.into(), id.clone(), human_size(i.size)]);
                }
            }
            print_table(&rows);
            Ok(())
        }
        ImagesCommand::Load { file, name, store } => {
            let store = open(&store)?;
            for i in
                image::archive::load(&store, &file, name.as_deref()).map_err(|e| e.to_string())?
            {
                let shown = i.names.first().cloned().unwrap_or_else(|| i.id.clone());
                println!("Loaded image: {shown}");
            }
            Ok(())
        }
        ImagesCommand::Rm { images, store } => {
            let store = open(&store)?;
            let mut ids = HashSet::new();
            for n in &images {
                let key = ImageName::parse(n)
                    .map(|p| p.canonical())
                    .unwrap_or_else(|_| n.clone());
                let found = store
                    .get(&key)
                    .map_err(|e| e.to_string())?
                    .or(store.get(n).map_err(|e| e.to_string())?);
                match found {
                    Some(i) => {
                        ids.insert(i.id);
                    }
                    None => return Err(format!("no such image: {n}")),
                }
            }
            let removed = store.remove_images(&ids).map_err(|e| e.to_string())?;
            for i in &removed {
                println!("Deleted: {}", i.id);
            }
            if removed.len() < ids.len() {
                return Err("some images are in use by containers and were kept".into());
            }
            Ok(())
        }
        ImagesCommand::Prune { dangling, store } => {
            let store = open(&store)?;
            let ids = store
                .list()
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|i| !dangling || i.names.is_empty())
                .map(|i| i.id)
                .collect();
            for i in store.remove_images(&ids).map_err(|e| e.to_string())? {
                println!("Deleted: {}", i.id);
            }
            Ok(())
        }
    }
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.3}GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.3}MB", n as f64 / 1e6),
        n if n >= 1000 => format!("{:.3}kB", n as f64 / 1e3),
        n => format!("{n}B"),
    }
}

fn print_table(rows: &[[String; 4]]) {
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

//! `tkctl image load|ls`: the node's image store, through the kubelet binary beside tkctl
//! (as `minikube image` works on the node).

use std::path::PathBuf;

use crate::client::Res;

#[derive(clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    cmd: ImageCmd,
}

#[derive(clap::Subcommand)]
enum ImageCmd {
    /// Load an OCI image layout archive or a `docker save` tarball into the node.
    Load {
        file: PathBuf,
        /// The name for images that carry none.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the node's images.
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        no_trunc: bool,
    },
}

/// The kubelet binary: beside tkctl (a release build or an install), else on PATH.
fn kubelet_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("tinykube-kubelet")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("tinykube-kubelet"))
}

/// The node's image store lives on this machine (a single-node cluster): `image` runs the
/// kubelet's own `images` command on it (its data dir from TINYKUBE_KUBELET_DATA_DIR or the
/// default), so what it loads is what the kubelet starts pods from.
pub fn image(a: ImageArgs) -> Res<u8> {
    let mut cmd = std::process::Command::new(kubelet_binary());
    cmd.arg("images");
    match a.cmd {
        ImageCmd::Load { file, name } => {
            cmd.arg("load").arg(file);
            if let Some(n) = name {
                cmd.arg("--name").arg(n);
            }
        }
        ImageCmd::Ls { no_trunc } => {
            cmd.arg("ls");
            if no_trunc {
                cmd.arg("--no-trunc");
            }
        }
    }
    let status = cmd.status().map_err(|e| {
        format!(
            "error: running {}: {e} (is tinykube installed on this machine?)",
            kubelet_binary().display()
        )
    })?;
    Ok(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

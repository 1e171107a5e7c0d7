//! `tinykube-images`: builds tinykube's sample images (`library/busybox:latest`,
//! `google-samples/kubernetes-bootcamp:v1` and `:v2`) reproducibly, and pushes them to a
//! registry, writes them as an OCI layout or archive, or prints their digests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tinykube_images::{
    sample_images, write_docker_save, write_oci_archive, Image, OciLayout, Registry,
};

#[derive(Parser)]
#[command(
    version,
    about = "Builds tinykube's sample images and pushes them to a registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Push the sample images to a registry over plain HTTP.
    Push {
        /// The registry, host:port.
        #[arg(long, default_value = "127.0.0.1:5000", env = "TINYKUBE_REGISTRY_ADDR")]
        registry: String,
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Write the sample images as an OCI image layout (ref names `REPO:TAG`).
    Layout {
        /// The layout directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Write the sample images as one archive, for `image load` (names `REPO:TAG`).
    Save {
        /// The archive to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "oci")]
        format: SaveFormat,
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Print the sample images' digests without pushing.
    Digests {
        #[command(flatten)]
        inputs: Inputs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SaveFormat {
    /// A tar of an OCI image layout (`oci-archive`).
    Oci,
    /// `docker save`'s format.
    Docker,
}

#[derive(Args)]
struct Inputs {
    /// A static busybox (Debian's busybox-static).
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// The static bootcamp binary [default: $CARGO_TARGET_DIR or <workspace>/target, then
    /// /x86_64-unknown-linux-gnu/release/bootcamp]
    #[arg(long)]
    bootcamp: Option<PathBuf>,
}

impl Inputs {
    fn images(&self) -> Result<Vec<(String, String, Image)>> {
        let bootcamp = self.bootcamp.clone().unwrap_or_else(default_bootcamp);
        sample_images(&self.busybox, &bootcamp).with_context(|| {
            format!(
                "building the sample images from {} and {} (hack/sample-images.sh builds the static bootcamp)",
                self.busybox.display(),
                bootcamp.display()
            )
        })
    }
}

fn default_bootcamp() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("x86_64-unknown-linux-gnu/release/bootcamp")
}

fn named(images: &[(String, String, Image)]) -> Vec<(String, &Image)> {
    images
        .iter()
        .map(|(repo, tag, image)| (format!("{repo}:{tag}"), image))
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The context chain on one line, without a backtrace even under RUST_BACKTRACE.
            eprintln!("tinykube-images: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Push { registry, inputs } => {
            let images = inputs.images()?;
            let registry = Registry::new(&registry);
            for (repo, tag, image) in &images {
                let digest = registry.push_image(repo, tag, image).await?;
                println!("pushed {repo}:{tag} {digest}");
            }
        }
        Command::Layout { out, inputs } => {
            let images = inputs.images()?;
            let mut layout = OciLayout::new();
            for (name, image) in named(&images) {
                layout.add_image(&name, image);
            }
            layout.write_dir(&out)?;
            for (name, image) in named(&images) {
                println!("{name} {}", image.digest());
            }
        }
        Command::Save {
            out,
            format,
            inputs,
        } => {
            let images = inputs.images()?;
            let named = named(&images);
            let refs: Vec<(&str, &Image)> = named.iter().map(|(n, i)| (n.as_str(), *i)).collect();
            match format {
                SaveFormat::Oci => write_oci_archive(&out, &refs)?,
                SaveFormat::Docker => write_docker_save(&out, &refs)?,
            }
            println!("wrote {}", out.display());
        }
        Command::Digests { inputs } => {
            for (repo, tag, image) in &inputs.images()? {
                println!("{repo}:{tag} {}", image.digest());
                println!("  config {}", image.config_digest());
                for layer in &image.layers {
                    println!("  layer  {} ({} bytes)", layer.digest(), layer.size());
                }
            }
        }
    }
    Ok(())
}

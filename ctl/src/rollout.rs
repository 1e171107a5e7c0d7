//! `rollout status|history|undo|restart` and `set image`.

use clap::Subcommand;

use crate::commands::{Ctx, Res};

#[derive(clap::Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    cmd: RolloutCmd,
}

#[derive(Subcommand)]
enum RolloutCmd {
    /// Show the status of the rollout.
    Status { args: Vec<String> },
}

#[derive(clap::Args)]
pub struct SetArgs {
    #[command(subcommand)]
    cmd: SetCmd,
}

#[derive(Subcommand)]
enum SetCmd {
    /// Update the image of a pod template.
    Image { args: Vec<String> },
}

pub async fn rollout(_ctx: &Ctx, a: RolloutArgs) -> Res<u8> {
    match a.cmd {
        RolloutCmd::Status { .. } => Err("error: rollout is not implemented yet".into()),
    }
}

pub async fn set(_ctx: &Ctx, a: SetArgs) -> Res<u8> {
    match a.cmd {
        SetCmd::Image { .. } => Err("error: set image is not implemented yet".into()),
    }
}

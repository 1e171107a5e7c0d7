//! `create -f`, `apply -f` (client-side apply: the last-applied annotation and a three-way
//! merge) and the manifests `delete -f` reads.

use crate::commands::{Ctx, Res};

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Files, directories or `-` (stdin) holding the objects.
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Files, directories or `-` (stdin) holding the objects.
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
}

pub async fn create(_ctx: &Ctx, _a: CreateArgs) -> Res<u8> {
    Err("error: create is not implemented yet".into())
}

pub async fn apply(_ctx: &Ctx, _a: ApplyArgs) -> Res<u8> {
    Err("error: apply is not implemented yet".into())
}

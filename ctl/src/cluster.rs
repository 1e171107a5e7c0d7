//! `annotate`, `cluster-info`, `api-resources`, `image load|ls`.

use crate::commands::{Ctx, Res};

#[derive(clap::Args)]
pub struct AnnotateArgs {
    args: Vec<String>,
}

#[derive(clap::Args)]
pub struct ApiResourcesArgs {}

#[derive(clap::Args)]
pub struct ImageArgs {}

pub async fn annotate(_ctx: &Ctx, _a: AnnotateArgs) -> Res<u8> {
    Err("error: annotate is not implemented yet".into())
}

pub async fn cluster_info(_ctx: &Ctx) -> Res<u8> {
    Err("error: cluster-info is not implemented yet".into())
}

pub async fn api_resources(_ctx: &Ctx, _a: ApiResourcesArgs) -> Res<u8> {
    Err("error: api-resources is not implemented yet".into())
}

pub fn image(_a: ImageArgs) -> Res<u8> {
    Err("error: image is not implemented yet".into())
}

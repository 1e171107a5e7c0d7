//! `config view|get-contexts|use-context|current-context` and `completion`: they work on the
//! kubeconfig (or clap's definition) without talking to the server.

use crate::commands::Res;

#[derive(clap::Args)]
pub struct ConfigArgs {}

#[derive(clap::Args)]
pub struct CompletionArgs {}

pub fn config(_kubeconfig: Option<&std::path::Path>, _a: ConfigArgs) -> Res<u8> {
    Err("error: config is not implemented yet".into())
}

pub fn completion(_a: CompletionArgs) -> Res<u8> {
    Err("error: completion is not implemented yet".into())
}

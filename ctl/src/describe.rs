//! `describe`: objects in kubectl's describe layout, with their events at the bottom.

use crate::commands::{Ctx, Res};

#[derive(clap::Args)]
pub struct DescribeArgs {
    /// TYPE [NAME_PREFIX...] | TYPE/NAME...
    args: Vec<String>,
}

pub async fn describe(_ctx: &Ctx, _a: DescribeArgs) -> Res<u8> {
    Err("error: describe is not implemented yet".into())
}

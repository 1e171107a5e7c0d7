//! `tkctl delete`: by names, label selector or manifests, waiting until they are gone.

use serde_json::{json, Value};

use crate::builder::names_by_selector;
use crate::client::{self, request, Ctx, Error, Res};
use crate::manifest;
use crate::resources::{self, Kind};

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// TYPE NAME... or TYPE/NAME...
    args: Vec<String>,
    #[arg(short = 'l', long)]
    selector: Option<String>,
    #[arg(long)]
    all: bool,
    /// Seconds the pods get to stop (-1: their own).
    #[arg(long, default_value_t = -1)]
    grace_period: i64,
    /// Delete at once (grace period 1).
    #[arg(long)]
    now: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    wait: bool,
    /// Files, directories or `-` (stdin) naming the objects to delete.
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    /// Read the directories given with -f recursively.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Treat objects that are not there as deleted.
    #[arg(long)]
    ignore_not_found: bool,
}

pub async fn delete(ctx: &Ctx, a: DeleteArgs) -> Res<u8> {
    let mut body = json!({"propagationPolicy": "Background"});
    if a.now {
        body["gracePeriodSeconds"] = json!(1);
    } else if a.grace_period >= 0 {
        body["gracePeriodSeconds"] = json!(a.grace_period);
    }
    if !a.files.is_empty() {
        if !a.args.is_empty() {
            return Err("error: when paths, URLs, or stdin is provided as input, you may not specify resource arguments as well".into());
        }
        return delete_files(ctx, &a, body).await;
    }
    let mut work: Vec<(&'static Kind, Vec<String>)> = resources::targets(&a.args)?;
    if a.selector.is_some() || a.all {
        for (k, names) in work.iter_mut() {
            *names = names_by_selector(ctx, k, a.selector.as_deref()).await?;
        }
        if work.iter().all(|(_, n)| n.is_empty()) {
            eprintln!("No resources found");
            return Ok(0);
        }
    } else if work.iter().all(|(_, n)| n.is_empty()) {
        return Err("error: resource(s) were provided, but no name was specified".into());
    }
    let mut failed = false;
    let mut deleted = Vec::new();
    for (kind, names) in &work {
        for n in names {
            let uri = ctx.object_uri(kind, n);
            match delete_one(ctx, &uri, &body).await {
                Ok(_) => {
                    println!("{} \"{n}\" deleted", resources::prefix(kind));
                    deleted.push(uri);
                }
                Err(e) if a.ignore_not_found && e.is_not_found() => {}
                Err(e) => {
                    eprintln!("{}", e.about(kind, n));
                    failed = true;
                }
            }
        }
    }
    if a.wait {
        client::wait_gone(ctx, &deleted).await;
    }
    Ok(u8::from(failed))
}

async fn delete_one(ctx: &Ctx, uri: &str, body: &Value) -> Res<Value> {
    request(
        ctx,
        "DELETE",
        uri,
        "application/json",
        Some((body.clone(), "application/json")),
    )
    .await
}

/// `delete -f`: deletes the objects the manifests name, then (with `--wait`) waits until they
/// are gone. As kubectl, a failure does not stop the others; the errors come at the end.
async fn delete_files(ctx: &Ctx, a: &DeleteArgs, body: Value) -> Res<u8> {
    let mut errors = Vec::new();
    let mut deleted = Vec::new();
    for o in manifest::objects(ctx, &a.files, a.recursive, "delete").await? {
        let (doc, t) = match o {
            Ok(o) => o,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match delete_one(ctx, &t.uri(), &body).await {
            Ok(_) => {
                println!("{} \"{}\" deleted", resources::prefix(&t.kind), t.name);
                deleted.push(t.uri());
            }
            Err(e) if e.is_not_found() => {
                if !a.ignore_not_found {
                    errors.push(Error::not_found(&t.kind, &t.name).when("deleting", &doc.source));
                }
            }
            Err(e) => errors.push(e.when("deleting", &doc.source)),
        }
    }
    if a.wait {
        client::wait_gone(ctx, &deleted).await;
    }
    Ok(client::print_all(&errors))
}

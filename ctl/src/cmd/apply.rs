//! `create -f` and `apply -f` (client-side apply: the last-applied annotation and a
//! three-way merge).
//!
//! As kubectl, each object is handled in turn and a failure does not stop the others: the
//! results are printed as they come, the errors together at the end (exit status 1).

use serde_json::Value;

use crate::client::{print_all, request, Ctx, Res};
use crate::manifest::{self, Doc, Target};
use crate::merge::{self, LAST_APPLIED};
use crate::resources::prefix;

/// What create and apply read, and how strictly the server checks it.
#[derive(clap::Args)]
pub struct Manifests {
    /// Files, directories or `-` (stdin) holding the objects.
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    /// Read the directories given with -f recursively.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// strict (or true), warn, ignore (or false): how the server treats unknown fields.
    #[arg(long, default_value = "strict", num_args = 0..=1, default_missing_value = "strict")]
    validate: String,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    m: Manifests,
    /// Record the object in the last-applied annotation, for later `apply`.
    #[arg(long)]
    save_config: bool,
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    m: Manifests,
}

fn field_validation(v: &str) -> Res<&'static str> {
    match v.to_ascii_lowercase().as_str() {
        "strict" | "true" => Ok("Strict"),
        "warn" => Ok("Warn"),
        "ignore" | "false" => Ok("Ignore"),
        _ => Err(format!(
            "error: invalid - validate option \"{v}\"; must be one of: strict (or true), warn, ignore (or false)"
        ).into()),
    }
}

pub async fn create(ctx: &Ctx, a: CreateArgs) -> Res<u8> {
    let validation = field_validation(&a.m.validate)?;
    let mut errors = Vec::new();
    for o in manifest::objects(ctx, &a.m.files, a.m.recursive, "create").await? {
        let (doc, target) = match o {
            Ok(o) => o,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let body = if a.save_config {
            merge::with_last_applied(&doc.obj)
        } else {
            doc.obj.clone()
        };
        let uri = format!(
            "{}?fieldManager=kubectl-create&fieldValidation={validation}",
            target.collection()
        );
        match request(
            ctx,
            "POST",
            &uri,
            "application/json",
            Some((body, "application/json")),
        )
        .await
        {
            Ok(created) => println!(
                "{}/{} created",
                prefix(&target.kind),
                created["metadata"]["name"].as_str().unwrap_or(&target.name)
            ),
            Err(e) => errors.push(e.when("creating", &doc.source)),
        }
    }
    Ok(print_all(&errors))
}

pub async fn apply(ctx: &Ctx, a: ApplyArgs) -> Res<u8> {
    let validation = field_validation(&a.m.validate)?;
    let mut errors = Vec::new();
    for o in manifest::objects(ctx, &a.m.files, a.m.recursive, "apply").await? {
        match o {
            Ok((doc, target)) => {
                if let Err(e) = apply_one(ctx, &doc, &target, validation).await {
                    errors.push(e);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    Ok(print_all(&errors))
}

/// kubectl's description of the object's type in apply's errors.
fn resource_line(t: &Target) -> String {
    let gv = if t.kind.group.is_empty() {
        format!("/{}", t.kind.version)
    } else {
        format!("{}/{}", t.kind.group, t.kind.version)
    };
    format!(
        "Resource: \"{gv}, Resource={}\", GroupVersionKind: \"{gv}, Kind={}\"\nName: \"{}\", Namespace: \"{}\"",
        t.kind.plural,
        t.kind.kind,
        t.name,
        t.ns.as_deref().unwrap_or("")
    )
}

async fn apply_one(ctx: &Ctx, doc: &Doc, t: &Target, validation: &str) -> Res<()> {
    let what = format!("{}/{}", prefix(&t.kind), t.name);
    if t.name.is_empty() {
        return Err(format!(
            "error: error when retrieving current configuration of:\n{}\nfrom server for: \"{}\": resource name may not be empty",
            resource_line(t),
            doc.source
        ).into());
    }
    let modified = merge::with_last_applied(&doc.obj);
    let query = format!("fieldManager=kubectl-client-side-apply&fieldValidation={validation}");
    let live = match request(ctx, "GET", &t.uri(), "application/json", None).await {
        Ok(live) => live,
        Err(e) if e.is_not_found() => {
            request(
                ctx,
                "POST",
                &format!("{}?{query}", t.collection()),
                "application/json",
                Some((modified, "application/json")),
            )
            .await
            .map_err(|e| e.when("creating", &doc.source))?;
            println!("{what} created");
            return Ok(());
        }
        Err(e) => {
            return Err(e.context(&format!(
                "error when retrieving current configuration of:\n{}\nfrom server for: \"{}\": ",
                resource_line(t),
                doc.source
            )))
        }
    };
    let last: Option<Value> = match live["metadata"]["annotations"][LAST_APPLIED].as_str() {
        Some(s) => serde_json::from_str(s).ok(),
        None => {
            eprintln!(
                "Warning: resource {}/{} is missing the {LAST_APPLIED} annotation which is required by kubectl apply. kubectl apply should only be used on resources created declaratively by either kubectl create --save-config or kubectl apply. The missing annotation will be patched automatically.",
                t.kind.plural, t.name
            );
            None
        }
    };
    let result = merge::three_way(&live, last.as_ref(), &modified);
    let patch = merge::merge_patch(&live, &result);
    if patch.as_object().is_some_and(|m| m.is_empty()) {
        println!("{what} unchanged");
        return Ok(());
    }
    request(
        ctx,
        "PATCH",
        &format!("{}?{query}", t.uri()),
        "application/json",
        Some((patch.clone(), "application/merge-patch+json")),
    )
    .await
    .map_err(|e| {
        let src = &doc.source;
        e.context(&format!(
            "error when applying patch:\n{}\nto:\n{}\nfor: \"{src}\": error when patching \"{src}\": ",
            merge::go_json(&patch),
            resource_line(t)
        ))
    })?;
    println!("{what} configured");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_values() {
        assert_eq!(field_validation("false").unwrap(), "Ignore");
        assert_eq!(field_validation("true").unwrap(), "Strict");
        assert_eq!(field_validation("Warn").unwrap(), "Warn");
        assert!(field_validation("maybe").is_err());
    }
}

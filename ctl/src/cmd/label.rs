//! `tkctl label` and `tkctl annotate`: one verb on two maps of `metadata`.

use serde_json::{json, Value};

use crate::builder::names_by_selector;
use crate::client::{get_json, merge_patch, Ctx, Res};
use crate::resources;

#[derive(clap::Args)]
pub struct LabelArgs {
    /// TYPE NAME... KEY=VAL... KEY-...
    args: Vec<String>,
    #[arg(long)]
    overwrite: bool,
    #[arg(short = 'l', long)]
    selector: Option<String>,
    #[arg(long)]
    all: bool,
}

pub async fn label(ctx: &Ctx, a: LabelArgs) -> Res<u8> {
    update_metadata(ctx, a, Meta::Labels).await
}

pub async fn annotate(ctx: &Ctx, a: LabelArgs) -> Res<u8> {
    update_metadata(ctx, a, Meta::Annotations).await
}

/// Which map of `metadata` `label` and `annotate` change.
#[derive(Clone, Copy, PartialEq)]
enum Meta {
    Labels,
    Annotations,
}

/// `label` and `annotate`: KEY=VAL sets, KEY- removes, on named objects, `-l` or `--all`.
async fn update_metadata(ctx: &Ctx, a: LabelArgs, which: Meta) -> Res<u8> {
    let (field, noun) = match which {
        Meta::Labels => ("labels", "label"),
        Meta::Annotations => ("annotations", "annotation"),
    };
    let (targets, changes): (Vec<String>, Vec<String>) = a
        .args
        .iter()
        .cloned()
        .partition(|x| !(x.contains('=') || x.ends_with('-')));
    let (kind, mut names) = match targets.as_slice() {
        [tn] if tn.contains('/') => {
            let (k, n) = resources::one(std::slice::from_ref(tn))?;
            (k, vec![n])
        }
        [t, rest @ ..] => (
            resources::known(t)?,
            rest.to_vec(),
        ),
        [] => return Err("error: one or more resources must be specified as <resource> <name> or <resource>/<name>".into()),
    };
    if a.selector.is_some() || a.all {
        names = names_by_selector(ctx, kind, a.selector.as_deref()).await?;
    }
    if changes.is_empty() {
        return Err(format!("error: at least one {noun} update is required").into());
    }
    let mut set = serde_json::Map::new();
    for c in &changes {
        match c.split_once('=') {
            Some((k, v)) => {
                set.insert(k.to_string(), json!(v));
            }
            None => {
                set.insert(c.trim_end_matches('-').to_string(), Value::Null);
            }
        }
    }
    let prefix = resources::prefix(kind);
    for n in names {
        let uri = ctx.object_uri(kind, &n);
        let obj = get_json(ctx, &uri).await.map_err(|e| e.about(kind, &n))?;
        let current = &obj["metadata"][field];
        let mut patch = serde_json::Map::new();
        let mut after = current.as_object().cloned().unwrap_or_default();
        for (k, v) in &set {
            match (current.get(k), v) {
                (Some(old), Value::String(new)) if old != new && !a.overwrite => {
                    let old = old.as_str().unwrap_or("");
                    return Err(match which {
                        Meta::Labels => format!(
                            "error: '{k}' already has a value ({old}), and --overwrite is false"
                        ).into(),
                        Meta::Annotations => format!("error: --overwrite is false but found the following declared annotation(s): '{k}' already has a value ({old})").into(),
                    });
                }
                (None, Value::Null) => {
                    if which == Meta::Labels {
                        println!("label \"{k}\" not found.");
                    }
                }
                (_, Value::Null) => {
                    after.remove(k);
                    patch.insert(k.clone(), Value::Null);
                }
                (_, new) => {
                    after.insert(k.clone(), new.clone());
                    patch.insert(k.clone(), new.clone());
                }
            }
        }
        let before = current.as_object().cloned().unwrap_or_default();
        let changed = after != before;
        // kubectl's wording: a change that shrinks the map without --overwrite "unlabeled".
        let shrunk = !a.overwrite
            && Value::Object(after).to_string().len() < Value::Object(before).to_string().len();
        let verb = match which {
            // annotate says so even when nothing changed, as kubectl does.
            Meta::Annotations => "annotated",
            Meta::Labels if !changed => "not labeled",
            Meta::Labels if shrunk => "unlabeled",
            Meta::Labels => "labeled",
        };
        if changed {
            let patch = json!({"metadata": {field: patch}});
            merge_patch(ctx, &format!("{uri}?fieldManager=kubectl-{noun}"), patch).await?;
        }
        println!("{prefix}/{n} {verb}");
    }
    Ok(0)
}

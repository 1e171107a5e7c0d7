//! kubectl's resource builder, the little of it the verbs share: the objects that resource
//! arguments and a label selector name, fetched from the server.

use serde_json::Value;

use crate::client::{get_json, query, Ctx, Res};
use crate::resources::{self, Kind};

/// An object's name.
pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// The names of the objects of `kind` in the namespace that `selector` matches (all without).
pub async fn names_by_selector(ctx: &Ctx, kind: &Kind, selector: Option<&str>) -> Res<Vec<String>> {
    let sel = selector.map(str::to_string);
    let list = get_json(
        ctx,
        &format!("{}{}", kind.path(Some(&ctx.ns)), query(&sel, &None)),
    )
    .await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}

/// The objects the arguments name (`TYPE/NAME...`, `TYPE NAME...`, `TYPE` for all of the type,
/// or `TYPE -l SELECTOR`), fetched as kubectl's resource builder does first.
pub async fn objects(
    ctx: &Ctx,
    args: &[String],
    selector: Option<&str>,
) -> Res<Vec<(&'static Kind, Value)>> {
    if args.is_empty() {
        return Err("error: required resource not specified".into());
    }
    let mut out = Vec::new();
    for (kind, names) in resources::targets(args)? {
        if names.is_empty() {
            let sel = selector.map(str::to_string);
            let list = get_json(
                ctx,
                &format!("{}{}", kind.path(Some(&ctx.ns)), query(&sel, &None)),
            )
            .await?;
            for item in list["items"].as_array().into_iter().flatten() {
                out.push((kind, item.clone()));
            }
            continue;
        }
        for n in names {
            let obj = get_json(ctx, &ctx.object_uri(kind, &n))
                .await
                .map_err(|e| e.about(kind, &n))?;
            out.push((kind, obj));
        }
    }
    Ok(out)
}

//! `tkctl set image`, as kubectl 1.32's cmd/set/set_image.go does it: a JSON patch per object
//! that tests each container's name before replacing its image.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::builder::{name_of, objects};
use crate::client::{aggregate, request, Ctx, Error, Res};
use crate::resources;

#[derive(clap::Args)]
pub struct SetArgs {
    #[command(subcommand)]
    cmd: SetCmd,
}

#[derive(Subcommand)]
enum SetCmd {
    /// Update the image of a pod template.
    Image {
        /// (TYPE NAME | TYPE/NAME)... CONTAINER_NAME_1=CONTAINER_IMAGE_1 ...
        args: Vec<String>,
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Select all resources of the type(s) given.
        #[arg(long)]
        all: bool,
    },
}

/// `CONTAINER=IMAGE` pairs, in the order given.
type ImagePairs = Vec<(String, String)>;

/// `set image` arguments: the resources first, then `CONTAINER=IMAGE` pairs.
fn resources_and_images(args: &[String]) -> Res<(Vec<String>, ImagePairs)> {
    let mut resources = Vec::new();
    let mut pairs = Vec::new();
    let mut invalid = Vec::new();
    for s in args {
        let pair = (s.contains('=') && !s.starts_with('=')) || (s.ends_with('-') && s != "-");
        if !pair {
            if !pairs.is_empty() || !invalid.is_empty() {
                return Err(format!(
                    "error: all resources must be specified before image changes: {s}"
                )
                .into());
            }
            resources.push(s.clone());
        } else if let Some((k, v)) = s.split_once('=').filter(|_| !s.starts_with('=')) {
            match pairs
                .iter_mut()
                .find(|(pk, _): &&mut (String, String)| pk == k)
            {
                Some(p) => p.1 = v.to_string(),
                None => pairs.push((k.to_string(), v.to_string())),
            }
        } else {
            invalid.push(s.clone());
        }
    }
    if !invalid.is_empty() {
        return Err(format!("error: invalid image format: {}", invalid.join(", ")).into());
    }
    Ok((resources, pairs))
}

/// The JSON patch setting the images in `obj`'s pod spec (at `base`), and the containers
/// named but not found.
fn image_patch(obj: &Value, base: &str, images: &[(String, String)]) -> (Vec<Value>, Vec<String>) {
    let spec = obj.pointer(base).cloned().unwrap_or(Value::Null);
    let mut ops = Vec::new();
    let mut missing = Vec::new();
    for (name, image) in images {
        let mut found = false;
        for list in ["initContainers", "containers"] {
            for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
                if name == "*" || c["name"].as_str() == Some(name) {
                    found = true;
                    if c["image"].as_str() != Some(image) {
                        let path = format!("{base}/{list}/{i}");
                        ops.retain(|o: &Value| o["path"] != json!(format!("{path}/image")));
                        ops.push(json!({"op": "test", "path": format!("{path}/name"), "value": c["name"]}));
                        ops.push(json!({"op": "replace", "path": format!("{path}/image"), "value": image}));
                    }
                }
            }
        }
        if !found {
            missing.push(format!("error: unable to find container named \"{name}\""));
        }
    }
    (ops, missing)
}

pub async fn set(ctx: &Ctx, a: SetArgs) -> Res<u8> {
    match a.cmd {
        SetCmd::Image {
            args,
            selector,
            all,
        } => {
            let (resources, images) = resources_and_images(&args)?;
            let mut problems = Vec::new();
            if all && selector.is_some() {
                problems.push("cannot set --all and --selector at the same time".to_string());
            }
            if resources.is_empty() {
                problems.push("one or more resources must be specified as <resource> <name> or <resource>/<name>".to_string());
            }
            if images.is_empty() {
                problems.push("at least one image update is required".to_string());
            } else if images.len() > 1 && images.iter().any(|(k, _)| k == "*") {
                problems.push("all containers are already specified by *, but saw more than one container_name=container_image pairs".to_string());
            }
            if !problems.is_empty() {
                return aggregate(problems.into_iter().map(Error::from).collect());
            }
            let objs = objects(ctx, &resources, selector.as_deref()).await?;
            let mut errors = Vec::new();
            let mut patches = Vec::new();
            for (kind, obj) in &objs {
                let base = match kind.kind {
                    "Pod" => "/spec",
                    "Deployment" | "ReplicaSet" => "/spec/template/spec",
                    _ => {
                        errors.push(format!(
                            "error: {}/{} the object is not a pod or does not have a pod template: *v1.{}",
                            kind.qualified(),
                            name_of(obj),
                            kind.kind
                        ));
                        continue;
                    }
                };
                let (ops, missing) = image_patch(obj, base, &images);
                errors.extend(missing);
                if !ops.is_empty() {
                    patches.push((*kind, name_of(obj).to_string(), ops));
                }
            }
            for (kind, name, ops) in patches {
                let uri = format!("{}?fieldManager=kubectl-set", ctx.object_uri(kind, &name));
                match request(
                    ctx,
                    "PATCH",
                    &uri,
                    "application/json",
                    Some((Value::Array(ops), "application/json-patch+json")),
                )
                .await
                {
                    Ok(_) => println!("{}/{name} image updated", resources::prefix(kind)),
                    Err(e) => errors.push(format!(
                        "failed to patch image update to pod template: {}",
                        e.bare()
                    )),
                }
            }
            aggregate(errors.into_iter().map(Error::from).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_image_arguments_and_patch() {
        let args: Vec<String> = ["deployment/web", "web=a:v2", "side=b:1"]
            .map(String::from)
            .to_vec();
        let (res, pairs) = resources_and_images(&args).unwrap();
        assert_eq!(res, ["deployment/web"]);
        assert_eq!(pairs.len(), 2);
        let bad: Vec<String> = ["web=a:v2", "deployment/web"].map(String::from).to_vec();
        assert_eq!(
            resources_and_images(&bad).unwrap_err().to_string(),
            "error: all resources must be specified before image changes: deployment/web"
        );
        let d = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "a:v1"}]}}}});
        let (ops, missing) = image_patch(&d, "/spec/template/spec", &pairs);
        assert_eq!(missing, ["error: unable to find container named \"side\""]);
        assert_eq!(
            ops,
            [
                json!({"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "web"}),
                json!({"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "a:v2"}),
            ]
        );
        let (ops, _) = image_patch(&d, "/spec/template/spec", &[("*".into(), "a:v1".into())]);
        assert!(ops.is_empty(), "no change, no patch");
    }
}

//! `get`: the server's Tables printed as kubectl prints them, or the objects as JSON, names or a
//! Go template.

use serde_json::{json, Value};

use crate::commands::{kind_prefix, query, request, targets, Ctx, Res, TABLE_ACCEPT};
use crate::table::{self, TableOptions};

#[derive(clap::Args)]
pub struct GetArgs {
    /// TYPE[.GROUP] [NAME...] | TYPE/NAME...
    args: Vec<String>,
    /// Label selector (e.g. -l key1=value1,key2=value2).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    #[arg(long)]
    field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format: wide, name, json, go-template=TEMPLATE, go-template-file=FILE.
    #[arg(short = 'o', long)]
    output: Option<String>,
    #[arg(long)]
    show_labels: bool,
    /// Labels shown as columns.
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    label_columns: Vec<String>,
    #[arg(long)]
    no_headers: bool,
}

pub async fn get(ctx: &Ctx, a: GetArgs) -> Res<u8> {
    let targets = targets(&a.args)?;
    let ns = (!a.all_namespaces).then_some(ctx.ns.as_str());
    let requested = a.output.as_deref().unwrap_or("");
    let template = match requested.split_once('=') {
        Some(("go-template", t)) => Some(t.to_string()),
        Some(("go-template-file", f)) => Some(
            std::fs::read_to_string(f).map_err(|e| format!("error: reading template {f}: {e}"))?,
        ),
        _ => None,
    };
    // A template is applied to the JSON, as -o json would print it.
    let output = if template.is_some() {
        "json"
    } else {
        requested
    };
    if !matches!(output, "" | "wide" | "name" | "json") {
        return Err(format!("error: unable to match a printer suitable for the output format \"{output}\", allowed formats are: go-template,go-template-file,json,name,wide"));
    }
    let several = targets.len() > 1;
    let mut printed_any = false;
    let mut json_items = Vec::new();
    let mut failed = false;
    for (kind, names) in &targets {
        let accept = if output.is_empty() || output == "wide" {
            TABLE_ACCEPT
        } else {
            "application/json"
        };
        let mut tables = Vec::new();
        if names.is_empty() {
            let uri = format!("{}{}", kind.path(ns), query(&a.selector, &a.field_selector));
            tables.push(request(ctx, "GET", &uri, accept, None).await?);
        } else {
            for n in names {
                let uri = format!("{}/{n}", kind.path(Some(&ctx.ns)));
                match request(ctx, "GET", &uri, accept, None).await {
                    Ok(v) => tables.push(v),
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
        }
        for t in tables {
            match output {
                "json" => {
                    if t["items"].is_array() {
                        json_items.extend(t["items"].as_array().cloned().unwrap_or_default());
                    } else {
                        json_items.push(t);
                    }
                }
                "name" => {
                    let items = match t["items"].as_array() {
                        Some(i) => i.clone(),
                        None => vec![t.clone()],
                    };
                    for i in items {
                        let prefix = kind_prefix(kind);
                        println!("{prefix}/{}", i["metadata"]["name"].as_str().unwrap_or(""));
                        printed_any = true;
                    }
                }
                _ => {
                    if t["rows"].as_array().is_none_or(|r| r.is_empty()) {
                        continue;
                    }
                    if printed_any {
                        println!();
                    }
                    let opts = TableOptions {
                        wide: output == "wide",
                        all_namespaces: a.all_namespaces && kind.namespaced,
                        show_labels: a.show_labels,
                        label_columns: a.label_columns.clone(),
                        kind_prefix: several.then(|| kind_prefix(kind)),
                        no_headers: a.no_headers,
                    };
                    print!("{}", table::align(&table::rows(&t, &opts)));
                    printed_any = true;
                }
            }
        }
    }
    if output == "json" {
        let out = if json_items.len() == 1 && targets.iter().all(|(_, n)| n.len() == 1) {
            json_items.remove(0)
        } else {
            json!({"apiVersion": "v1", "items": json_items, "kind": "List", "metadata": {"resourceVersion": ""}})
        };
        match &template {
            Some(t) => {
                let text = gtmpl::template(t, go_value(&out))
                    .map_err(|e| format!("error: error executing template {t:?}: {e}"))?;
                print!("{text}");
            }
            None => println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default()),
        }
    } else if !printed_any && !failed {
        if a.all_namespaces {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {} namespace.", ctx.ns);
        }
    }
    Ok(u8::from(failed))
}

/// JSON as Go templates see it (kubectl runs them on the decoded JSON object).
pub(crate) fn go_value(v: &Value) -> gtmpl_value::Value {
    use gtmpl_value::Value as G;
    match v {
        Value::Null => G::Nil,
        Value::Bool(b) => G::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => G::from(i),
            None => G::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => G::String(s.clone()),
        Value::Array(a) => G::Array(a.iter().map(go_value).collect()),
        Value::Object(o) => G::Object(o.iter().map(|(k, v)| (k.clone(), go_value(v))).collect()),
    }
}

//! Printing the server's Tables as kubectl does: columns of priority 0 (all with `-o wide`),
//! upper-case headers, cells as sent, padded by three spaces (Go's tabwriter with padding 3),
//! `NAMESPACE` first with `-A`, `LABELS` last with `--show-labels`, `-L` columns.

use serde_json::Value;

use crate::tabwriter::TabWriter;

#[derive(Clone, Debug, Default)]
pub struct TableOptions {
    pub wide: bool,
    pub all_namespaces: bool,
    pub show_labels: bool,
    pub label_columns: Vec<String>,
    /// `pod/` before names (several kinds in one listing, as `get all`).
    pub kind_prefix: Option<String>,
    pub no_headers: bool,
}

fn labels_of(row: &Value) -> Vec<(String, String)> {
    row["object"]["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".into(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The rows of `table` as text lines (header first unless `no_headers`).
pub fn rows(table: &Value, o: &TableOptions) -> Vec<Vec<String>> {
    let defs = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown: Vec<usize> = defs
        .iter()
        .enumerate()
        .filter(|(_, d)| o.wide || d["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    if !o.no_headers {
        let mut h = Vec::new();
        if o.all_namespaces {
            h.push("NAMESPACE".to_string());
        }
        for &i in &shown {
            h.push(defs[i]["name"].as_str().unwrap_or("").to_uppercase());
        }
        for l in &o.label_columns {
            h.push(l.rsplit('/').next().unwrap_or(l).to_uppercase());
        }
        if o.show_labels {
            h.push("LABELS".into());
        }
        out.push(h);
    }
    for row in table["rows"].as_array().into_iter().flatten() {
        let cells = row["cells"].as_array().cloned().unwrap_or_default();
        let mut r = Vec::new();
        if o.all_namespaces {
            r.push(
                row["object"]["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
        for &i in &shown {
            let mut c = cells.get(i).map(cell).unwrap_or_default();
            if defs[i]["format"] == "name" {
                if let Some(p) = &o.kind_prefix {
                    c = format!("{p}/{c}");
                }
            }
            r.push(c);
        }
        let labels = labels_of(row);
        for l in &o.label_columns {
            r.push(
                labels
                    .iter()
                    .find(|(k, _)| k == l)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            );
        }
        if o.show_labels {
            let mut ls: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            ls.sort();
            r.push(if ls.is_empty() {
                "<none>".into()
            } else {
                ls.join(",")
            });
        }
        out.push(r);
    }
    out
}

/// Aligns rows as kubectl's printers do (its tabwriter: minwidth 6, padding 3).
pub fn align(rows: &[Vec<String>]) -> String {
    Aligner::default().align(rows)
}

/// kubectl's printer tabwriter kept across batches (RememberWidths, as `get -w` uses it):
/// columns keep the widest width seen in earlier batches, so later rows line up under the
/// first table.
#[derive(Clone, Debug)]
pub struct Aligner(TabWriter);

impl Default for Aligner {
    fn default() -> Self {
        Aligner(TabWriter::printer())
    }
}

impl Aligner {
    pub fn align(&mut self, rows: &[Vec<String>]) -> String {
        let text: String = rows.iter().map(|r| r.join("\t") + "\n").collect();
        self.0.format(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Value {
        json!({
            "columnDefinitions": [
                {"name": "Name", "format": "name", "priority": 0},
                {"name": "Ready", "priority": 0},
                {"name": "IP", "priority": 1},
            ],
            "rows": [
                {"cells": ["web", "1/1", "10.244.0.5"],
                 "object": {"metadata": {"name": "web", "namespace": "default", "labels": {"run": "web", "app": "v1"}}}},
                {"cells": ["a-much-longer-name", "0/1", "<none>"],
                 "object": {"metadata": {"name": "a-much-longer-name", "namespace": "kube-system"}}},
            ]
        })
    }

    #[test]
    fn as_kubectl_prints() {
        let t = align(&rows(&table(), &TableOptions::default()));
        assert_eq!(
            t,
            "NAME                 READY\nweb                  1/1\na-much-longer-name   0/1\n"
        );
        let wide = align(&rows(
            &table(),
            &TableOptions {
                wide: true,
                all_namespaces: true,
                show_labels: true,
                ..Default::default()
            },
        ));
        assert_eq!(
            wide.lines().next().unwrap(),
            "NAMESPACE     NAME                 READY   IP           LABELS"
        );
        assert!(wide.contains("app=v1,run=web"));
        assert!(wide.lines().nth(2).unwrap().ends_with("<none>"));
        let prefixed = align(&rows(
            &table(),
            &TableOptions {
                kind_prefix: Some("pod".into()),
                no_headers: true,
                label_columns: vec!["run".into()],
                ..Default::default()
            },
        ));
        assert_eq!(
            prefixed.lines().next().unwrap(),
            "pod/web                  1/1   web"
        );
    }
}

//! `get`: the server's Tables printed as kubectl prints them, or the objects as JSON, YAML,
//! names, a Go template, a JSONPath template or custom columns; `--sort-by` orders them and
//! `-w` follows the changes.

use futures::AsyncBufReadExt;
use serde_json::{json, Value};

use crate::client::{query, request, Ctx, Error, Res, TABLE_ACCEPT};
use crate::jsonpath::{self, JsonPath};
use crate::printers::{self, Column, SortError};
use crate::resources::Kind;
use crate::resources::{prefix as kind_prefix, targets};
use crate::table::{self, Aligner, TableOptions};

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
    /// Output format: wide, name, json, yaml, go-template=, go-template-file=, jsonpath=,
    /// jsonpath-file=, jsonpath-as-json=, custom-columns=, custom-columns-file=.
    #[arg(short = 'o', long)]
    output: Option<String>,
    #[arg(long)]
    show_labels: bool,
    /// Labels shown as columns.
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    label_columns: Vec<String>,
    #[arg(long)]
    no_headers: bool,
    /// Sort by a JSONPath expression (e.g. '{.metadata.name}').
    #[arg(long)]
    sort_by: Option<String>,
    /// After listing the objects, watch for changes.
    #[arg(short = 'w', long)]
    watch: bool,
    /// Watch for changes without listing first.
    #[arg(long)]
    watch_only: bool,
    /// With --watch, print the event type (ADDED, MODIFIED, DELETED) of each change.
    #[arg(long)]
    output_watch_events: bool,
    /// Ignore template errors for missing fields (jsonpath, go-template).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    allow_missing_template_keys: bool,
    /// Keep metadata.managedFields in json and yaml output (kubectl hides them there).
    #[arg(long)]
    show_managed_fields: bool,
}

enum Printer {
    Table {
        wide: bool,
    },
    Name,
    Json,
    Yaml,
    GoTemplate(String),
    JsonPath {
        template: String,
        path: JsonPath,
        as_json: bool,
    },
    Columns(Vec<Column>),
}

impl Printer {
    fn is_table(&self) -> bool {
        matches!(self, Printer::Table { .. })
    }
}

fn read(f: &str, what: &str) -> Res<String> {
    std::fs::read_to_string(f).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            _ => e.to_string(),
        };
        format!("error: error reading {what} {f}, open {f}: {why}").into()
    })
}

fn printer(output: &str, allow_missing: bool) -> Res<Printer> {
    let no_template = || "error: template format specified but no template given".to_string();
    let jsonpath = |t: String, as_json: bool| -> Res<Printer> {
        let mut path =
            JsonPath::parse(&t).map_err(|e| format!("error: error parsing jsonpath {t}, {e}"))?;
        path.allow_missing_keys = allow_missing;
        Ok(Printer::JsonPath {
            template: t,
            path,
            as_json,
        })
    };
    let (format, arg) = match output.split_once('=') {
        Some((f, a)) => (f, Some(a)),
        None => (output, None),
    };
    match (format, arg) {
        ("", None) => Ok(Printer::Table { wide: false }),
        ("wide", None) => Ok(Printer::Table { wide: true }),
        ("name", None) => Ok(Printer::Name),
        ("json", None) => Ok(Printer::Json),
        ("yaml", None) => Ok(Printer::Yaml),
        ("go-template" | "template", Some(t)) if !t.is_empty() => {
            Ok(Printer::GoTemplate(t.to_string()))
        }
        ("go-template-file" | "templatefile", Some(f)) if !f.is_empty() => {
            Ok(Printer::GoTemplate(read(f, "--template")?))
        }
        ("jsonpath", Some(t)) if !t.is_empty() => jsonpath(t.to_string(), false),
        ("jsonpath-as-json", Some(t)) if !t.is_empty() => jsonpath(t.to_string(), true),
        ("jsonpath-file", Some(f)) if !f.is_empty() => {
            jsonpath(read(f, "--template")?, false)
        }
        (
            "go-template" | "template" | "go-template-file" | "templatefile" | "jsonpath"
            | "jsonpath-as-json" | "jsonpath-file",
            _,
        ) => Err(no_template().into()),
        ("custom-columns", spec) => Ok(Printer::Columns(printers::parse_columns(
            spec.unwrap_or(""),
        )?)),
        ("custom-columns-file", Some(f)) if !f.is_empty() => Ok(Printer::Columns(
            printers::parse_columns_file(&read(f, "template")?)?,
        )),
        ("custom-columns-file", _) => {
            Err("error: custom-columns format specified but no custom columns given".into())
        }
        _ => Err(format!("error: unable to match a printer suitable for the output format \"{output}\", allowed formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml").into()),
    }
}

fn with_param(uri: &str, param: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{param}")
}

fn sort_path(sort_by: &Option<String>) -> Res<Option<(String, JsonPath)>> {
    let Some(s) = sort_by else { return Ok(None) };
    let expr = jsonpath::relaxed(s).map_err(|e| format!("error: {e}"))?;
    let mut p =
        JsonPath::parse(&expr).map_err(|e| format!("error: error parsing jsonpath {expr}, {e}"))?;
    p.allow_missing_keys = true;
    Ok(Some((expr, p)))
}

/// klog's prefix of a fatal line: `F1125 12:17:08.982993   21210 `.
fn klog_fatal_prefix() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!(
        "F{month:02}{day:02} {:02}:{:02}:{:02}.{:06} {:>7} ",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_micros(),
        std::process::id()
    )
}

/// kubectl's words when --sort-by cannot order the objects (`table`: rows of a Table).
fn sort_failure(e: SortError, expr: &str, table: bool) -> String {
    match e {
        SortError::Missing => format!(
            "error: couldn't find any field with path {} in the list of objects",
            jsonpath::go_quote(expr)
        ),
        SortError::Unsortable(why) => {
            let (line, what) = if table {
                (375, "[][][]reflect.Value")
            } else {
                (329, "*unstructured.Unstructured")
            };
            format!(
                "{}sorter.go:{line}] Field {expr} in {what} is an unsortable type: interface, err: {why}",
                klog_fatal_prefix()
            )
        }
        SortError::Path(e) => format!("error: {e}"),
    }
}

fn items_of(v: Value) -> Vec<Value> {
    match v {
        Value::Object(mut o) if o.get("items").is_some_and(Value::is_array) => {
            match o.remove("items") {
                Some(Value::Array(a)) => a,
                _ => vec![],
            }
        }
        other => vec![other],
    }
}

fn list_of(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

pub async fn get(ctx: &Ctx, a: GetArgs) -> Res<u8> {
    let targets = targets(&a.args)?;
    let ns = (!a.all_namespaces).then_some(ctx.ns.as_str());
    let printer = printer(
        a.output.as_deref().unwrap_or(""),
        a.allow_missing_template_keys,
    )?;
    let sort = sort_path(&a.sort_by)?;
    if a.watch || a.watch_only {
        return watch(ctx, &a, &printer, &targets, sort.as_ref()).await;
    }
    let tables: usize = targets.iter().map(|(_, n)| n.len().max(1)).sum();
    if let Some((expr, _)) = &sort {
        // kubectl orders several Tables among themselves, by a field Tables do not have.
        if printer.is_table() && tables > 1 {
            return Err(sort_failure(SortError::Missing, expr, true).into());
        }
    }
    let several = targets.len() > 1;
    let accept = if printer.is_table() {
        TABLE_ACCEPT
    } else {
        "application/json"
    };
    // kubectl asks for whole objects in the rows to sort them.
    let include = |uri: String| {
        if printer.is_table() && sort.is_some() {
            with_param(&uri, "includeObject=Object")
        } else {
            uri
        }
    };
    let mut printed_any = false;
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (kind, names) in &targets {
        let mut answers = Vec::new();
        if names.is_empty() {
            let uri = format!("{}{}", kind.path(ns), query(&a.selector, &a.field_selector));
            answers.push(request(ctx, "GET", &include(uri), accept, None).await?);
        } else {
            for n in names {
                let uri = ctx.object_uri(kind, n);
                match request(ctx, "GET", &include(uri), accept, None).await {
                    Ok(v) => answers.push(v),
                    // kubectl reports what it could not get after what it got.
                    Err(e) => errors.push(e),
                }
            }
        }
        if !printer.is_table() {
            objects.extend(answers.into_iter().flat_map(items_of));
            continue;
        }
        // One table per kind, even when the rows came one name at a time.
        let Some(mut t) = answers.first().cloned() else {
            continue;
        };
        t["rows"] = Value::Array(
            answers
                .iter()
                .flat_map(|x| x["rows"].as_array().cloned().unwrap_or_default())
                .collect(),
        );
        if let Some((expr, p)) = &sort {
            if let Some(rows) = t["rows"].as_array_mut() {
                match printers::sort_by(rows, p, |r| &r["object"]) {
                    // kubectl then prints no rows at all.
                    Err(SortError::Missing) => rows.clear(),
                    Err(e) => return Err(sort_failure(e, expr, true).into()),
                    Ok(()) => {}
                }
            }
        }
        if t["rows"].as_array().is_none_or(|r| r.is_empty()) {
            continue;
        }
        if printed_any {
            println!();
        }
        let opts = TableOptions {
            wide: matches!(printer, Printer::Table { wide: true }),
            all_namespaces: a.all_namespaces && kind.namespaced,
            show_labels: a.show_labels,
            label_columns: a.label_columns.clone(),
            kind_prefix: several.then(|| kind_prefix(kind)),
            no_headers: a.no_headers,
        };
        print!("{}", table::align(&table::rows(&t, &opts)));
        printed_any = true;
    }
    let failed = !errors.is_empty();
    let report = |code: u8| {
        for e in &errors {
            eprintln!("{e}");
        }
        u8::from(failed).max(code)
    };
    if printer.is_table() {
        if !printed_any && !failed {
            if a.all_namespaces {
                eprintln!("No resources found");
            } else {
                eprintln!("No resources found in {} namespace.", ctx.ns);
            }
        }
        return Ok(report(0));
    }
    if objects.is_empty() && failed {
        return Ok(report(0));
    }
    if let Some((expr, p)) = &sort {
        printers::sort_by(&mut objects, p, |o| o).map_err(|e| sort_failure(e, expr, false))?;
    }
    let single = objects.len() == 1 && targets.iter().all(|(_, n)| n.len() == 1);
    let code = match &printer {
        Printer::Columns(cols) => print_columns(cols, &objects, a.no_headers)?,
        Printer::Name => {
            for o in &objects {
                println!("{}", name_of(&targets, o));
            }
            0
        }
        _ => {
            let out = if single {
                objects.remove(0)
            } else {
                list_of(objects)
            };
            print_object(&printer, &out, a.show_managed_fields, &mut 0)?
        }
    };
    Ok(report(code))
}

/// The object (or every item of a List, or a watch event's object) without
/// metadata.managedFields, as kubectl prints json and yaml unless --show-managed-fields.
fn without_managed_fields(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    for inner in ["items", "object"] {
        match v.get_mut(inner) {
            Some(Value::Array(items)) => items.iter_mut().for_each(without_managed_fields),
            Some(o @ Value::Object(_)) => without_managed_fields(o),
            _ => {}
        }
    }
}

/// `pod/web`, `deployment.apps/web`: the kind from the object itself.
fn name_of(targets: &[(&'static Kind, Vec<String>)], o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or("");
    let k = targets
        .iter()
        .map(|(k, _)| *k)
        .find(|k| k.kind == kind)
        .or(targets.first().map(|(k, _)| *k));
    let prefix = k.map(kind_prefix).unwrap_or_default();
    format!("{prefix}/{}", o["metadata"]["name"].as_str().unwrap_or(""))
}

fn print_columns(cols: &[Column], objects: &[Value], no_headers: bool) -> Res<u8> {
    let mut rows = Vec::new();
    if !no_headers {
        rows.push(cols.iter().map(|c| c.header.clone()).collect());
    }
    for o in objects {
        match printers::column_cells(cols, o) {
            Ok(r) => rows.push(r),
            Err(e) => {
                // kubectl has written the lines before the failing one.
                print!("{}", table::align(&rows));
                return Err(e.into());
            }
        }
    }
    print!("{}", table::align(&rows));
    Ok(0)
}

/// One object (or List) with an object printer; `count` numbers YAML documents.
fn print_object(printer: &Printer, out: &Value, show_managed: bool, count: &mut usize) -> Res<u8> {
    let mut trimmed;
    // kubectl hides them from json and yaml only; templates see the whole object.
    let out = if show_managed || !matches!(printer, Printer::Json | Printer::Yaml) {
        out
    } else {
        trimmed = out.clone();
        without_managed_fields(&mut trimmed);
        &trimmed
    };
    match printer {
        Printer::Json => println!("{}", jsonpath::go_json_indent(out)),
        Printer::Yaml => {
            *count += 1;
            if *count > 1 {
                println!("---");
            }
            print!("{}", printers::yaml(out));
        }
        Printer::GoTemplate(t) => {
            let text = gtmpl::template(t, go_value(out))
                .map_err(|e| format!("error: error executing template {t:?}: {e}"))?;
            print!("{text}");
        }
        Printer::JsonPath {
            template,
            path,
            as_json,
        } => {
            let found = match path.find(out) {
                Ok(f) => f,
                Err(e) => {
                    eprint!("{}", jsonpath::execution_error(template, &e, out));
                    return Ok(1);
                }
            };
            if *as_json {
                let all: Vec<Value> = found.into_iter().flatten().collect();
                println!("{}", jsonpath::go_json_indent(&Value::Array(all)));
            } else {
                let text: String = found.iter().map(|r| jsonpath::print_results(r)).collect();
                print!("{text}");
            }
        }
        Printer::Name => println!("{}", out["metadata"]["name"].as_str().unwrap_or("")),
        Printer::Table { .. } | Printer::Columns(_) => {}
    }
    Ok(0)
}

/// What `-w` prints as it goes: tables keep their widths and print their header once.
struct WatchPrinter<'a> {
    a: &'a GetArgs,
    printer: &'a Printer,
    kind: &'static Kind,
    aligner: Aligner,
    columns: Value,
    printed_headers: bool,
    count: usize,
    targets: &'a [(&'static Kind, Vec<String>)],
}

impl WatchPrinter<'_> {
    fn table(&mut self, t: &Value, event: Option<&str>) -> Res<()> {
        let mut t = t.clone();
        let defs = t["columnDefinitions"].clone();
        let mut no_headers = self.a.no_headers;
        if self.printed_headers
            && (defs.as_array().is_none_or(|d| d.is_empty()) || defs == self.columns)
        {
            no_headers = true;
        }
        if defs.as_array().is_none_or(|d| d.is_empty()) {
            t["columnDefinitions"] = self.columns.clone();
        } else if defs != self.columns {
            self.columns = defs;
            self.printed_headers = false;
        }
        let rows_n = t["rows"].as_array().map_or(0, Vec::len);
        if rows_n == 0 {
            return Ok(());
        }
        if !no_headers {
            self.printed_headers = true;
        }
        let opts = TableOptions {
            wide: matches!(self.printer, Printer::Table { wide: true }),
            all_namespaces: self.a.all_namespaces && self.kind.namespaced,
            show_labels: self.a.show_labels,
            label_columns: self.a.label_columns.clone(),
            kind_prefix: None,
            no_headers,
        };
        let mut rows = table::rows(&t, &opts);
        if let Some(ev) = event {
            for (i, r) in rows.iter_mut().enumerate() {
                // kubectl pads the event types to one width (formatEventType).
                let cell = match (i == 0 && !no_headers, ev) {
                    (true, _) => "EVENT",
                    (_, "ADDED") => "ADDED   ",
                    (_, "DELETED") => "DELETED ",
                    (_, "ERROR") => "ERROR   ",
                    (_, other) => other,
                };
                r.insert(0, cell.to_string());
            }
        }
        print!("{}", self.aligner.align(&rows));
        Ok(())
    }

    fn object(&mut self, o: &Value, event: Option<&str>) -> Res<()> {
        match self.printer {
            Printer::Columns(cols) => {
                let mut rows = Vec::new();
                if !self.a.no_headers && !self.printed_headers {
                    let mut h: Vec<String> = cols.iter().map(|c| c.header.clone()).collect();
                    if event.is_some() {
                        h.insert(0, "EVENT".into());
                    }
                    rows.push(h);
                    self.printed_headers = true;
                }
                let mut r = printers::column_cells(cols, o)?;
                if let Some(ev) = event {
                    r.insert(0, ev.to_string());
                }
                rows.push(r);
                print!("{}", self.aligner.align(&rows));
            }
            Printer::Name => println!("{}", name_of(self.targets, o)),
            p => {
                let shown = match event {
                    Some(ev) => json!({"type": ev, "object": o}),
                    None => o.clone(),
                };
                if print_object(p, &shown, self.a.show_managed_fields, &mut self.count)? != 0 {
                    return Err(String::new().into());
                }
            }
        }
        Ok(())
    }

    fn print(&mut self, v: &Value, event: Option<&str>) -> Res<()> {
        if self.printer.is_table() {
            self.table(v, event)
        } else {
            self.object(v, event)
        }
    }
}

async fn watch(
    ctx: &Ctx,
    a: &GetArgs,
    printer: &Printer,
    targets: &[(&'static Kind, Vec<String>)],
    sort: Option<&(String, JsonPath)>,
) -> Res<u8> {
    if targets.len() > 1 {
        return Err("error: you may only specify a single resource type".into());
    }
    let objects: usize = targets.iter().map(|(_, n)| n.len().max(1)).sum();
    if objects != 1 {
        return Err(format!("error: watch is only supported on individual resources and resource collections, but {objects} resources were found").into());
    }
    let (kind, names) = &targets[0];
    let ns = (!a.all_namespaces).then_some(ctx.ns.as_str());
    let accept = if printer.is_table() {
        TABLE_ACCEPT
    } else {
        "application/json"
    };
    let mut wp = WatchPrinter {
        a,
        printer,
        kind,
        aligner: Aligner::default(),
        columns: Value::Null,
        printed_headers: false,
        count: 0,
        targets,
    };
    let event = |t: &str| a.output_watch_events.then(|| t.to_string());
    let (watch_uri, skip_first) = match names.first() {
        None => {
            let base = format!("{}{}", kind.path(ns), query(&a.selector, &a.field_selector));
            let uri = if printer.is_table() && sort.is_some() {
                with_param(&base, "includeObject=Object")
            } else {
                base.clone()
            };
            let mut list = request(ctx, "GET", &uri, accept, None).await?;
            let rv = list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .to_string();
            if !a.watch_only {
                if printer.is_table() {
                    if let (Some((expr, p)), Some(rows)) = (sort, list["rows"].as_array_mut()) {
                        match printers::sort_by(rows, p, |r| &r["object"]) {
                            Err(SortError::Missing) => rows.clear(),
                            Err(e) => return Err(sort_failure(e, expr, true).into()),
                            Ok(()) => {}
                        }
                    }
                    wp.table(&list, event("ADDED").as_deref())?;
                } else {
                    let mut items = items_of(list);
                    if let Some((expr, p)) = sort {
                        printers::sort_by(&mut items, p, |o| o)
                            .map_err(|e| sort_failure(e, expr, false))?;
                    }
                    for o in &items {
                        wp.object(o, event("ADDED").as_deref())?;
                    }
                }
            }
            let w = with_param(&base, &format!("resourceVersion={rv}&watch=true"));
            // Watches started from a list send no events for what the list had.
            (w, false)
        }
        Some(name) => {
            let uri = ctx.object_uri(kind, name);
            let obj = request(ctx, "GET", &uri, accept, None).await?;
            if !a.watch_only {
                wp.print(&obj, event("ADDED").as_deref())?;
            }
            let sel = query(&None, &Some(format!("metadata.name={name}")));
            let w = format!(
                "{}{sel}&resourceVersion=0&watch=true",
                kind.path(Some(&ctx.ns))
            );
            // From version 0 the server first sends the object itself: already printed.
            (w, true)
        }
    };
    let req = http::Request::builder()
        .method("GET")
        .uri(&watch_uri)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let stream = ctx
        .client
        .request_stream(req)
        .await
        .map_err(|e| ctx.error(e))?;
    let mut lines = stream.lines();
    let mut first = skip_first;
    let follow = async {
        use futures::StreamExt;
        while let Some(line) = lines.next().await {
            let line = line.map_err(|e| Error::from(format!("error: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let ev: Value = serde_json::from_str(&line)
                .map_err(|e| Error::from(format!("error: decoding a watch event: {e}")))?;
            let typ = ev["type"].as_str().unwrap_or("");
            match typ {
                "BOOKMARK" => continue,
                "ERROR" => {
                    let msg = ev["object"]["message"].as_str().unwrap_or("watch error");
                    return Err(format!("error: {msg}").into());
                }
                _ => {}
            }
            if std::mem::take(&mut first) {
                continue;
            }
            wp.print(&ev["object"], event(typ).as_deref())?;
        }
        Ok::<u8, Error>(0)
    };
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    // Ctrl-C or a TERM ends kubectl's watch with exit code 1; the server ending it, with 0.
    tokio::select! {
        r = follow => r,
        _ = tokio::signal::ctrl_c() => Ok(1),
        _ = term.recv() => Ok(1),
    }
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

//! Config maps, secrets and service accounts.

use serde_json::Value;

use super::*;

pub fn config_map(cm: &Value, ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let m = &cm["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    // kubectl walks a Go map here (random order); sorted is one of its orders.
    w.w(0, "\nData\n====\n");
    for (k, v) in string_map(&cm["data"]) {
        w!(w, 0, "{k}:\n----\n");
        w!(w, 0, "{v}\n");
        w.w(0, "\n");
    }
    w.w(0, "\nBinaryData\n====\n");
    for (k, v) in string_map(&cm["binaryData"]) {
        w!(w, 0, "{k}: {}\n", byte_count(&v));
    }
    w.w(0, "\n");
    maybe_events(&mut w, ev);
    w.finish()
}

pub fn secret(s: &Value) -> String {
    let mut w = W::default();
    let m = &s["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    w!(w, 0, "\nType:\t{}\n", st(&s["type"]));
    w.w(0, "\nData\n====\n");
    for (k, v) in string_map(&s["data"]) {
        match base64_decode(&v) {
            Ok(token)
                if k == "token" && st(&s["type"]) == "kubernetes.io/service-account-token" =>
            {
                w!(w, 0, "{k}:\t{}\n", String::from_utf8_lossy(&token));
            }
            _ => w!(w, 0, "{k}:\t{}\n", byte_count(&v)),
        }
    }
    w.finish()
}

/// A service account; `secrets` is the namespace's secrets (None when they could not be listed).
pub fn service_account(sa: &Value, secrets: Option<&[Value]>, ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let m = &sa["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    let names = |k: &str| -> Vec<String> {
        arr(&sa[k])
            .iter()
            .map(|s| st(&s["name"]).to_string())
            .collect()
    };
    let mut tokens = Vec::new();
    let mut missing = Vec::new();
    if let Some(secrets) = secrets {
        for s in secrets {
            let a = &s["metadata"]["annotations"];
            if st(&s["type"]) == "kubernetes.io/service-account-token"
                && st(&a["kubernetes.io/service-account.name"]) == st(&m["name"])
                && st(&a["kubernetes.io/service-account.uid"]) == st(&m["uid"])
            {
                tokens.push(st(&s["metadata"]["name"]).to_string());
            }
        }
        let existing: Vec<&str> = secrets.iter().map(|s| st(&s["metadata"]["name"])).collect();
        for n in names("secrets")
            .into_iter()
            .chain(names("imagePullSecrets"))
        {
            if !existing.contains(&n.as_str()) {
                missing.push(n);
            }
        }
    }
    for (header, list) in [
        ("Image pull secrets:", names("imagePullSecrets")),
        ("Mountable secrets: ", names("secrets")),
        ("Tokens:            ", tokens),
    ] {
        if list.is_empty() {
            w!(w, 0, "{header}\t<none>\n");
            continue;
        }
        let mut prefix = header;
        for n in list {
            if missing.contains(&n) {
                w!(w, 0, "{prefix}\t{n} (not found)\n");
            } else {
                w!(w, 0, "{prefix}\t{n}\n");
            }
            prefix = "                   ";
        }
    }
    maybe_events(&mut w, ev);
    w.finish()
}

/// Standard base64 (secrets' and config maps' binary data).
pub(super) fn base64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s)
}

/// `N bytes`, or why the value is no base64 (the apiserver refuses such data, so only a
/// broken object shows it).
pub(super) fn byte_count(v: &str) -> String {
    match base64_decode(v) {
        Ok(b) => format!("{} bytes", b.len()),
        Err(e) => format!("<invalid base64: {e}>"),
    }
}

//! Warnings to the client about its request, as kube-apiserver sends them: one `Warning:
//! 299 - "text"` header each (RFC 7234's warn-code 299, "miscellaneous persistent warning",
//! agent `-`), duplicates dropped, at most what fits kube-apiserver's limits. kubectl prints
//! each as `Warning: text` on stderr; client-go and the Python client hand them to the caller.
//!
//! Whatever serves a request adds warnings with [`add`] wherever it finds them (decoding,
//! validation); the HTTP handler runs the request inside [`collect`] and writes the headers.
//! Work outside a request (the controllers) has no one to warn: [`add`] does nothing there.

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static WARNINGS: RefCell<Vec<String>>;
}

/// kube-apiserver's limits: 4 KiB per warning text, 50 warnings per response.
const MAX_TEXT: usize = 4 * 1024;
const MAX_COUNT: usize = 50;

/// Adds a warning to the request being served, if any.
pub fn add(text: impl Into<String>) {
    let text = text.into();
    let _ = WARNINGS.try_with(|w| {
        let mut w = w.borrow_mut();
        if w.len() < MAX_COUNT && !w.contains(&text) {
            w.push(text);
        }
    });
}

/// Runs `f` collecting its warnings; returns its output and the warnings.
pub async fn collect<F: Future>(f: F) -> (F::Output, Vec<String>) {
    WARNINGS
        .scope(RefCell::new(Vec::new()), async {
            let out = f.await;
            let warnings = WARNINGS.with(|w| w.take());
            (out, warnings)
        })
        .await
}

/// The value of a `Warning` header for `text`: `299 - "text"` with `"` and `\` escaped and
/// the text cut at [`MAX_TEXT`] bytes (on a character boundary).
pub fn header_value(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut quoted = String::with_capacity(end + 10);
    for c in text[..end].chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            // Header values carry no control characters.
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    format!("299 - \"{quoted}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn collected_per_request_without_duplicates() {
        let ((), w) = collect(async {
            add("unknown field \"spec.bogus\"");
            add("unknown field \"spec.bogus\"");
            add("second");
        })
        .await;
        assert_eq!(w, ["unknown field \"spec.bogus\"", "second"]);
        // Outside a request nobody is warned, and nothing fails.
        add("lost");
        let ((), w) = collect(async {}).await;
        assert!(w.is_empty());
    }

    #[test]
    fn header_values_are_quoted_strings() {
        assert_eq!(
            header_value("unknown field \"spec.x\""),
            r#"299 - "unknown field \"spec.x\"""#
        );
        assert_eq!(header_value("a\\b\nc"), r#"299 - "a\\b c""#);
        let long = "é".repeat(3000);
        assert!(header_value(&long).len() <= MAX_TEXT + 20);
    }
}

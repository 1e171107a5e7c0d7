//! A stand-in for `gcr.io/google-samples/kubernetes-bootcamp`, built as a fully static binary so
//! it runs in a busybox rootfs. Standard library only. Multi-call, by the basename of argv[0]:
//!
//! - anything but `curl` (normally `/bootcamp`): an HTTP/1.1 server on `0.0.0.0:$PORT` (8080 by
//!   default) that answers every method and path with
//!   `Hello Kubernetes bootcamp! | Running on: <hostname> | v=<BOOTCAMP_VERSION>` and logs each
//!   request as the real bootcamp app does; it exits 0 on SIGTERM and SIGINT, even as PID 1.
//! - `curl`: a small curl for plain HTTP (`curl [-sSifLIv] [-o FILE] [-m SECS] [-H HDR] [-X M] URL`)
//!   with curl's exit codes (6 unresolvable host, 7 connection failed, 22 HTTP error with -f,
//!   28 timeout, 52 empty reply, 56 receive failure).

mod curl;
mod server;
mod sys;

fn main() {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let code = if name == "curl" {
        curl::main(std::env::args().skip(1).collect())
    } else {
        server::main()
    };
    std::process::exit(code);
}

//! The official Python `kubernetes` client, unchanged, against the apiserver
//! (hack/test.sh provides it in a virtualenv and names its interpreter in TINYKUBE_PYTHON).

use crate::harness::Server;

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_works_unchanged() {
    let s = Server::start().await;
    let python = std::env::var("TINYKUBE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(s.kubeconfig("admin"))
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("running {python}: {e} (hack/test.sh sets up the Python client)")
        });
    assert!(
        out.status.success(),
        "python client failed (is `kubernetes` installed for {python}? hack/test.sh sets it up):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

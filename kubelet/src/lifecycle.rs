//! Container lifecycle hooks: postStart and preStop, each an exec, an httpGet or a sleep, run
//! as Kubernetes' kubelet runs them (pkg/kubelet/lifecycle): exec through the exec helper, the
//! GET from the kubelet to the pod's IP with `User-Agent: kube-lifecycle/1.32` (any answer
//! is success; only no answer fails), the sleep in the kubelet. A failure is Kubernetes'
//! message, for the FailedPostStartHook / FailedPreStopHook event.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use crate::prober::{self, ExecEnv, HttpGet};

/// The User-Agent of Kubernetes' lifecycle hooks.
const USER_AGENT: &str = "kube-lifecycle/1.32";

/// How long one HTTP hook may take to answer (Kubernetes' hook HTTP client has no timeout of
/// its own; the grace period or the pod's deletion bounds it, and so does this).
const HTTP_TIMEOUT: Duration = Duration::from_secs(300);

/// What one hook does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    Exec(Vec<String>),
    Http(HttpGet),
    Sleep(Duration),
    /// A handler the kubelet cannot run (tcpSocket, kept in the API only for compatibility).
    Invalid,
}

impl Hook {
    /// The hook of handler `h` of container `c`, in a pod at `pod_ip`.
    pub fn of(h: &LifecycleHandler, c: &Container, pod_ip: &str) -> Result<Hook, String> {
        if let Some(e) = &h.exec {
            return Ok(Hook::Exec(e.command.clone().unwrap_or_default()));
        }
        if let Some(g) = &h.http_get {
            return Ok(Hook::Http(HttpGet::of(g, c, pod_ip)?));
        }
        if let Some(s) = &h.sleep {
            return Ok(Hook::Sleep(Duration::from_secs(s.seconds.max(0) as u64)));
        }
        Ok(Hook::Invalid)
    }
}

/// `name_namespace(uid)`, as Kubernetes' messages name a pod.
pub fn pod_desc(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// Go's `%q` of a string, near enough for messages: quotes, backslashes and control
/// characters escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs `hook` of container `c` (instance `id`) of `pod`: Ok, or Kubernetes' message of the
/// failure. The caller bounds it in time.
pub async fn run(
    hook: &Hook,
    exec: &ExecEnv,
    id: &str,
    pod: &Pod,
    c: &Container,
) -> Result<(), String> {
    match hook {
        Hook::Exec(command) => match prober::exec_output(exec, id, command).await {
            Ok((0, _)) => Ok(()),
            Ok((code, output)) => Err(format!(
                "Exec lifecycle hook ([{}]) for Container {} in Pod {} failed - error: command '{}' exited with {code}: , message: {}",
                command.join(" "),
                go_quote(&c.name),
                go_quote(&pod_desc(pod)),
                command.join(" "),
                go_quote(&String::from_utf8_lossy(&output)),
            )),
            Err(e) => Err(format!(
                "Exec lifecycle hook ([{}]) for Container {} in Pod {} failed - error: {e}, message: \"\"",
                command.join(" "),
                go_quote(&c.name),
                go_quote(&pod_desc(pod)),
            )),
        },
        Hook::Http(get) => match prober::http_get(get, HTTP_TIMEOUT, USER_AGENT).await {
            // Any answer will do: the hook was delivered.
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "HTTP lifecycle hook ({}) for Container {} in Pod {} failed - error: {e}",
                get.path,
                go_quote(&c.name),
                go_quote(&pod_desc(pod)),
            )),
        },
        Hook::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Ok(())
        }
        Hook::Invalid => Err("Cannot run handler: invalid handler".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container() -> Container {
        serde_json::from_value(
            json!({"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}),
        )
        .unwrap()
    }

    fn handler(v: serde_json::Value) -> LifecycleHandler {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hooks_resolve_as_kubernetes_reads_them() {
        let c = container();
        assert_eq!(
            Hook::of(
                &handler(json!({"exec": {"command": ["sh", "-c", "true"]}})),
                &c,
                "10.0.0.1"
            ),
            Ok(Hook::Exec(vec!["sh".into(), "-c".into(), "true".into()]))
        );
        assert_eq!(
            Hook::of(
                &handler(json!({"httpGet": {"path": "hook", "port": "web"}})),
                &c,
                "10.0.0.1"
            ),
            Ok(Hook::Http(HttpGet {
                https: false,
                host: "10.0.0.1".into(),
                port: 8080,
                path: "/hook".into(),
                headers: vec![],
            }))
        );
        assert_eq!(
            Hook::of(&handler(json!({"sleep": {"seconds": 3}})), &c, "10.0.0.1"),
            Ok(Hook::Sleep(Duration::from_secs(3)))
        );
        assert_eq!(
            Hook::of(&handler(json!({"tcpSocket": {"port": 80}})), &c, "10.0.0.1"),
            Ok(Hook::Invalid)
        );
        assert!(Hook::of(
            &handler(json!({"httpGet": {"port": "nope"}})),
            &c,
            "10.0.0.1"
        )
        .is_err());
    }

    #[test]
    fn messages_quote_as_go_does() {
        assert_eq!(go_quote("a\"b\n\u{1}"), "\"a\\\"b\\n\\x01\"");
    }

    #[tokio::test]
    async fn an_http_hook_fails_only_without_an_answer() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}}),
        )
        .unwrap();
        let c = container();
        let exec = ExecEnv {
            exe: "/nonexistent".into(),
            state_root: "/nonexistent".into(),
        };
        // A server answering 500: the hook was delivered.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let hook_to = |port| {
            Hook::Http(HttpGet {
                https: false,
                host: "127.0.0.1".into(),
                port,
                path: "/hook".into(),
                headers: vec![],
            })
        };
        let hook = hook_to(port);
        assert_eq!(run(&hook, &exec, "id", &pod, &c).await, Ok(()));
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /hook HTTP/1.1"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("user-agent: kube-lifecycle/1.32"),
            "{request}"
        );
        // Nobody listening: Kubernetes' words.
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = dead.local_addr().unwrap().port();
        drop(dead);
        let hook = hook_to(port);
        let err = run(&hook, &exec, "id", &pod, &c).await.unwrap_err();
        assert_eq!(
            err,
            format!("HTTP lifecycle hook (/hook) for Container \"c\" in Pod \"p_ns(u)\" failed - error: Get \"http://127.0.0.1:{port}/hook\": dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
    }
}

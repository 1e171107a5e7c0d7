//! Starts the real tinykube-apiserver binary on a free port with a temporary data dir, and
//! hands out kube-rs clients for it. Dropping the server kills the process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub const BIN: &str = env!("CARGO_BIN_EXE_tinykube-apiserver");

pub struct Server {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    extra: Vec<String>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    pub async fn start_with(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = Server {
            dir,
            child: None,
            port: 0,
            extra: args.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn(0).await;
        s
    }

    async fn spawn(&mut self, port: u16) {
        let port_file = self.dir.path().join("port");
        let _ = std::fs::remove_file(&port_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("apiserver.log"))
            .expect("log file");
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--secure-port")
            .arg(port.to_string())
            .args(&self.extra)
            .env("TINYKUBE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tinykube-apiserver");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                if let Ok(p) = p.trim().parse() {
                    self.port = p;
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("apiserver exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "apiserver did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    /// `kill -9`, then start again on the same port and data dir.
    pub async fn crash_and_restart(&mut self) {
        self.kill9();
        let port = self.port;
        self.spawn(port).await;
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kubeconfig(&self, who: &str) -> PathBuf {
        self.dir.path().join(format!("{who}.kubeconfig"))
    }

    pub async fn config(&self, who: &str) -> Config {
        let kc = Kubeconfig::read_from(self.kubeconfig(who)).expect("kubeconfig");
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("config")
    }

    pub async fn client_as(&self, who: &str) -> Client {
        Client::try_from(self.config(who).await).expect("client")
    }

    pub async fn client(&self) -> Client {
        self.client_as("admin").await
    }

    /// A client that trusts the server but presents no credentials.
    pub async fn anonymous(&self) -> Client {
        let mut cfg = self.config("admin").await;
        cfg.auth_info = Default::default();
        Client::try_from(cfg).expect("client")
    }

    /// A client that authenticates with a bearer token.
    pub async fn with_token(&self, token: &str) -> Client {
        let mut cfg = self.config("admin").await;
        cfg.auth_info = kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        };
        Client::try_from(cfg).expect("client")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sends a raw request and returns (status, body as JSON or text).
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

/// The Status of a failed API call.
pub fn status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

//! Shared harness for tests and benchmarks that run the built binaries: an apiserver on its
//! own, or a whole node in its own network namespace ([`node`]).

pub mod cli;
pub mod node;
pub mod sweep;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A `tinykube-apiserver` on a free port with a temporary data dir; killed on drop.
pub struct Apiserver {
    child: std::sync::Mutex<Option<Child>>,
    bin: PathBuf,
    args: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Apiserver {
    /// Starts `bin` with `args` (beyond port and data dir) and waits until it serves.
    pub fn start(bin: &Path, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let api = Self {
            child: Default::default(),
            bin: bin.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            dir,
        };
        api.spawn("0");
        api
    }

    /// Spawns the apiserver on `port` ("0": any free port) and waits until it writes
    /// `<data-dir>/port` (its last step before serving).
    fn spawn(&self, port: &str) {
        let child = Command::new(&self.bin)
            .args(["--secure-port", port, "--data-dir"])
            .arg(self.dir.path())
            .args(&self.args)
            .env("TINYKUBE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        let mut slot = self.child.lock().unwrap();
        *slot = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.dir.path().join("port").exists() {
            assert!(Instant::now() < deadline, "apiserver did not start");
            if let Ok(Some(status)) = slot.as_mut().map_or(Ok(None), Child::try_wait) {
                panic!("the apiserver exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The apiserver's process id (for fault tests: `kill -9` of a process we started).
    pub fn pid(&self) -> i32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .map(|c| c.id() as i32)
            .expect("the apiserver runs")
    }

    /// The port it serves on (as it wrote it to `<data-dir>/port`).
    pub fn port(&self) -> u16 {
        std::fs::read_to_string(self.dir.path().join("port"))
            .expect("the apiserver's port file")
            .trim()
            .parse()
            .expect("a port number")
    }

    /// `kill -9` of the apiserver (and reaping it); its data dir stays.
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the apiserver if it runs and starts it again with the same flags, data dir and
    /// port, so the kubeconfigs it wrote stay valid; returns once it serves. Call it from the
    /// network namespace it should live in.
    pub fn restart(&self) {
        let port = self.port();
        self.kill();
        std::fs::remove_file(self.dir.path().join("port")).expect("removing the port file");
        self.spawn(&port.to_string());
    }

    /// The kubeconfig the apiserver wrote for `who` (admin, kubelet, proxy).
    pub fn kubeconfig(&self, who: &str) -> PathBuf {
        self.dir.path().join(format!("{who}.kubeconfig"))
    }

    /// A client with `who`'s credentials.
    pub async fn client(&self, who: &str) -> Client {
        client(&self.kubeconfig(who)).await
    }
}

impl Drop for Apiserver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A kube-rs client (a connection of its own) from a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("client config");
    Client::try_from(cfg).expect("client")
}

/// A binary of the workspace built beside the running test or benchmark
/// (`target/release/deps/x` → `target/release/<name>`).
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: `cargo build --release --workspace` first (hack/test.sh does)",
        bin.display()
    );
    bin
}

/// The polling helper of async tests: polls `check` every 50 ms until it returns Some (its
/// value is returned), or fails the test after `secs` seconds with `what`. Blocking tests have
/// [`cli::eventually`].
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /` over plain HTTP/1.0: the whole answer (headers and body).
pub async fn http_get(addr: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await??;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// The app's answer on `addr`, retried for a while: a container without a readiness probe is
/// ready once it runs, which can be a moment before its app listens (as in Kubernetes).
pub async fn answer(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http_get(addr).await {
            Ok(a) if !a.is_empty() => return a,
            Err(e) if Instant::now() > deadline => panic!("{addr} does not answer: {e}"),
            Ok(_) if Instant::now() > deadline => panic!("{addr} answers nothing"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A child process killed and reaped when dropped, so a failed test or bench leaves nothing
/// running.
pub struct Killed(pub std::process::Child);

impl Killed {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

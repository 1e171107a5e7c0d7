//! A throwaway registry for tests: Debian's docker-registry on a free loopback port, with its
//! config and storage in a temporary directory, killed and removed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Where Debian's `docker-registry` package puts the binary.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// A registry process of this test run (see the module docs).
///
/// ```no_run
/// # async fn f() -> anyhow::Result<()> {
/// let reg = tinykube_images::TestRegistry::start()?;
/// let image = tinykube_images::many_layer_image(3, 1 << 20, 1);
/// tinykube_images::push(reg.addr(), "bench/many", "v1", &image).await?;
/// # Ok(()) }
/// ```
pub struct TestRegistry {
    child: Child,
    addr: String,
    dir: PathBuf,
    /// Storage handed on by [`TestRegistry::into_storage`] is not removed on drop.
    keep_data: bool,
}

/// How to start a [`TestRegistry`].
#[derive(Debug, Default, Clone)]
pub struct RegistryOptions {
    /// Require HTTP basic auth with this user and password (an htpasswd file with bcrypt).
    pub auth: Option<(String, String)>,
    /// Log every request (see [`TestRegistry::gets`]).
    pub access_log: bool,
    /// Serve this storage (from [`TestRegistry::into_storage`]) instead of an empty one.
    pub storage: Option<PathBuf>,
}

impl TestRegistry {
    /// Starts `/usr/bin/docker-registry` (package `docker-registry`) and waits until `GET /v2/`
    /// answers.
    pub fn start() -> Result<TestRegistry> {
        TestRegistry::start_with(Path::new(REGISTRY_BINARY), &RegistryOptions::default())
    }

    /// Starts `/usr/bin/docker-registry` with `opts`.
    pub fn start_opts(opts: &RegistryOptions) -> Result<TestRegistry> {
        TestRegistry::start_with(Path::new(REGISTRY_BINARY), opts)
    }

    /// Starts the registry binary at `binary`.
    pub fn start_with(binary: &Path, opts: &RegistryOptions) -> Result<TestRegistry> {
        if !binary.exists() {
            bail!(
                "{} is missing (apt-get install docker-registry)",
                binary.display()
            );
        }
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tinykube-registry-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        match &opts.storage {
            Some(old) => std::fs::rename(old.join("data"), dir.join("data"))
                .with_context(|| format!("taking over {}", old.display()))?,
            None => std::fs::create_dir(dir.join("data"))
                .with_context(|| format!("creating {}", dir.display()))?,
        }
        if let Some(old) = &opts.storage {
            let _ = std::fs::remove_dir_all(old);
        }
        // Ask the kernel for a free port; the registry binds it right after (a small race).
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: {}\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            !opts.access_log,
            dir.join("data").display()
        );
        if let Some((user, password)) = &opts.auth {
            let hash = bcrypt::hash(password, 4).context("hashing the test password")?;
            let file = dir.join("htpasswd");
            std::fs::write(&file, format!("{user}:{hash}\n"))?;
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tinykube-test\n    path: {}\n",
                file.display()
            ));
        }
        std::fs::write(&config, yaml)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut reg = TestRegistry {
            child,
            addr,
            dir,
            keep_data: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reg.ready() {
            if let Some(status) = reg.child.try_wait()? {
                let log = std::fs::read_to_string(reg.dir.join("registry.log")).unwrap_or_default();
                bail!("the registry exited ({status}): {log}");
            }
            if Instant::now() > deadline {
                bail!("the registry did not answer on {} within 10 s", reg.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(reg)
    }

    fn ready(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(&self.addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut head = [0u8; 12];
        s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_ok()
            && s.read_exact(&mut head).is_ok()
            && (head.ends_with(b" 200") || head.ends_with(b" 401"))
    }

    /// Stops the registry and hands over its storage, for [`RegistryOptions::storage`].
    pub fn into_storage(mut self) -> PathBuf {
        self.keep_data = true;
        self.dir.clone()
    }

    /// Everything the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// How many GETs of a path containing `needle` the registry served (needs
    /// [`RegistryOptions::access_log`]).
    pub fn gets(&self, needle: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET ") && l.contains(needle))
            .count()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The registry's storage root (to corrupt or delete blobs behind its back).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The file holding a blob's bytes in the storage (distribution's filesystem layout).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.data_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.keep_data {
            // Only the storage is handed on.
            let _ = std::fs::remove_file(self.dir.join("config.yml"));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

//! Test helpers: a real registry (Debian's `docker-registry`, from tinykube-images), a node's
//! image store in a temp dir, and the sample images' ingredients.

use std::net::TcpListener;

use std::process::Child;
use std::sync::Arc;

use tinykube_images::{RegistryOptions, TestRegistry};

use tinykube_kubelet::image::{ImageService, RegistryConfig, Store};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A registry that logs every request (to count fetches).
pub fn registry() -> TestRegistry {
    TestRegistry::start_opts(&RegistryOptions {
        access_log: true,
        ..Default::default()
    })
    .unwrap()
}

pub fn client(reg: &TestRegistry) -> tinykube_images::Registry {
    tinykube_images::Registry::new(reg.addr())
}

/// A store in a temp dir and an image service with `mirrors`.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub service: Arc<ImageService>,
}

impl Node {
    pub fn new(mirrors: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = RegistryConfig::default();
        for m in mirrors {
            config.add_mirror_flag(m).unwrap();
        }
        let store = Arc::new(Store::open(&dir.path().join("images")).unwrap());
        Self {
            service: ImageService::new(store, config),
            dir,
        }
    }

    pub fn store(&self) -> &Store {
        self.service.store()
    }

    /// Entries under the store's `sub` directory.
    pub fn count(&self, sub: &str) -> usize {
        std::fs::read_dir(self.dir.path().join("images").join(sub))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

#[allow(unused_imports)]
pub use tinykube_e2e::node::{bootcamp, busybox};

/// Kills the child when dropped (by its PID, which we started).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

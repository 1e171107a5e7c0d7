//! A Debian 12 guest under qemu for the tests of what users' VMs are: systemd as PID 1 and the
//! unified cgroup v2 hierarchy only. The image comes from `hack/vm/image.sh` (built once, cached
//! outside the clone); each VM boots it through a qcow2 overlay of its own, with the repository
//! and the built binaries on a second disk (`/root/tinykube`, as a user's checkout), and is
//! driven through qemu-guest-agent (a virtio-serial channel: no network, no keys) and QMP.
//! The guest's network is qemu's user mode with `restrict=on`: it reaches nothing outside, and
//! the host reaches the guest only through the ports forwarded with [`Vm::forward`].
//!
//! Software emulation (TCG) by default: KVM guests hang in nested setups such as this one;
//! `TINYKUBE_VM_ACCEL=kvm` uses KVM where it works.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::built_binary;

/// What a command run in the guest gave.
#[derive(Debug)]
pub struct Output {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// A running guest; powered off and its files removed on drop.
pub struct Vm {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is missing: install Debian's {package} (hack/test.sh does)"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo")
        .to_path_buf()
}

/// The guest image's directory (`root.img`, `vmlinuz`, `initrd.img`), built if not cached.
pub fn image() -> PathBuf {
    need("mmdebstrap", "mmdebstrap");
    need("mkfs.ext4", "e2fsprogs");
    let out = run(Command::new(repo().join("hack/vm/image.sh")).stderr(Stdio::inherit()));
    // Its last line (anything else it prints goes to stderr).
    PathBuf::from(out.lines().last().unwrap_or("").trim())
}

/// An ext4 image of the checkout as a user has it after building: the files git knows (as
/// they are in the working tree) and the release binaries local-up runs (debug info
/// stripped), under `target/`.
fn payload(dir: &Path) -> PathBuf {
    let stage = dir.join("payload");
    let files = run(Command::new("git").arg("-C").arg(repo()).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    for f in files.split('\0').filter(|f| !f.is_empty()) {
        let (from, to) = (repo().join(f), stage.join(f));
        if !from.is_file() {
            continue;
        }
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copying {f}: {e}"));
    }
    let release = stage.join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    for bin in [
        "tinykube-apiserver",
        "tinykube-kubelet",
        "tinykube-proxy",
        "tkctl",
        "tinykube-images",
    ] {
        run(Command::new("objcopy")
            .arg("--strip-debug")
            .arg(built_binary(bin))
            .arg(release.join(bin)));
    }
    let boot = stage.join("target/x86_64-unknown-linux-gnu/release");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::copy(crate::node::bootcamp(), boot.join("bootcamp")).unwrap();
    let img = dir.join("payload.img");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "tinykube", "-d"])
        .arg(&stage)
        .arg(&img)
        .arg("1G"));
    std::fs::remove_dir_all(&stage).unwrap();
    img
}

impl Vm {
    /// Boots the guest (image built if needed) and waits for its agent.
    pub fn boot() -> Vm {
        need("qemu-system-x86_64", "qemu-system-x86");
        need("qemu-img", "qemu-utils");
        need("objcopy", "binutils");
        let image = image();
        let dir = tempfile::Builder::new()
            .prefix("tinykube-vm-")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let disk = dir.path().join("disk.qcow2");
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(image.join("root.img"))
            .arg(&disk));
        let payload = payload(dir.path());
        let accel = std::env::var("TINYKUBE_VM_ACCEL").unwrap_or_else(|_| "tcg".into());
        let p = |name: &str| dir.path().join(name).display().to_string();
        let child = Command::new("qemu-system-x86_64")
            .args(["-machine", "q35", "-accel", &accel, "-cpu", "max"])
            .args(["-smp", "2", "-m", "3072", "-nodefaults", "-display", "none"])
            .arg("-kernel")
            .arg(image.join("vmlinuz"))
            .arg("-initrd")
            .arg(image.join("initrd.img"))
            .args(["-append", "root=/dev/vda rw console=ttyS0 quiet"])
            .args([
                "-drive",
                &format!("file={},if=virtio,format=qcow2", disk.display()),
            ])
            .args([
                "-drive",
                &format!("file={},if=virtio,format=raw", payload.display()),
            ])
            .args(["-netdev", "user,id=n0,restrict=on"])
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .args([
                "-chardev",
                &format!("socket,id=qga0,path={},server=on,wait=off", p("qga.sock")),
            ])
            .args(["-device", "virtio-serial"])
            .args([
                "-device",
                "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            ])
            .args(["-serial", &format!("file:{}", p("console.log"))])
            .args([
                "-qmp",
                &format!("unix:{},server=on,wait=off", p("qmp.sock")),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("qemu.log")).unwrap())
            .spawn()
            .expect("starting qemu-system-x86_64");
        let mut vm = Vm {
            child: Some(child),
            dir,
        };
        vm.wait_agent(Duration::from_secs(300), None);
        vm
    }

    /// The guest's serial console so far (the kernel's and systemd's messages).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }

    fn check_alive(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!(
                    "qemu exited ({status}): {}\nconsole:\n{}",
                    std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default(),
                    tail(&self.console(), 40)
                );
            }
        }
    }

    /// Waits until the agent answers (and, with `not_boot`, from a boot other than that one).
    fn wait_agent(&mut self, timeout: Duration, not_boot: Option<&str>) {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive();
            let pinged = Agent::connect(&self.dir.path().join("qga.sock")).is_ok_and(|mut a| {
                a.call(json!({"execute": "guest-ping"}), Duration::from_secs(3))
                    .is_ok()
            });
            // (The agent serves one connection at a time: that one is closed by now.)
            {
                if pinged {
                    match not_boot {
                        None => return,
                        Some(old) => {
                            let id = self.try_sh("cat /proc/sys/kernel/random/boot_id");
                            if id.as_ref().is_ok_and(|o| o.ok() && o.stdout.trim() != old) {
                                return;
                            }
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the guest's agent did not answer within {timeout:?}; console:\n{}",
                tail(&self.console(), 40)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs `script` with `sh -c` in the guest as root (HOME=/root, in /root), with a bound.
    pub fn try_sh(&self, script: &str) -> Result<Output, String> {
        self.try_sh_for(script, Duration::from_secs(600))
    }

    pub fn try_sh_for(&self, script: &str, timeout: Duration) -> Result<Output, String> {
        let mut a = Agent::connect(&self.dir.path().join("qga.sock"))?;
        let r = a.call(
            json!({"execute": "guest-exec", "arguments": {
                "path": "/bin/sh",
                "arg": ["-c", format!("cd /root && {script}")],
                "env": ["HOME=/root", "USER=root", "LANG=C.UTF-8",
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "capture-output": true,
            }}),
            Duration::from_secs(30),
        )?;
        let pid = r["pid"].as_i64().ok_or("guest-exec gave no pid")?;
        let deadline = Instant::now() + timeout;
        loop {
            let st = a.call(
                json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}),
                Duration::from_secs(30),
            )?;
            if st["exited"].as_bool() == Some(true) {
                let text = |k: &str| {
                    let b = st[k].as_str().unwrap_or("");
                    String::from_utf8_lossy(
                        &base64::engine::general_purpose::STANDARD
                            .decode(b)
                            .unwrap_or_default(),
                    )
                    .into_owned()
                };
                return Ok(Output {
                    code: st["exitcode"]
                        .as_i64()
                        .unwrap_or_else(|| 128 + st["signal"].as_i64().unwrap_or(0)),
                    stdout: text("out-data"),
                    stderr: text("err-data"),
                });
            }
            if Instant::now() > deadline {
                return Err(format!("{script:?} did not finish within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `script` in the guest; its output, asserting it succeeded.
    pub fn sh(&self, script: &str) -> String {
        let out = self
            .try_sh(script)
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        assert!(
            out.ok(),
            "{script}: exit {}\n{}{}",
            out.code,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Waits until `script` succeeds in the guest (polling every half second); its output.
    pub fn eventually(&self, what: &str, timeout: Duration, script: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.try_sh_for(script, timeout);
            match out {
                Ok(o) if o.ok() => return o.stdout,
                _ if Instant::now() > deadline => panic!("never: {what} ({script}): {out:?}"),
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Reboots the guest (as `systemctl reboot` would) and waits until it is back.
    pub fn reboot(&mut self) {
        let boot = self.sh("cat /proc/sys/kernel/random/boot_id");
        if let Ok(mut a) = Agent::connect(&self.dir.path().join("qga.sock")) {
            // The agent does not answer a shutdown it carries out.
            let _ = a.send(json!({"execute": "guest-shutdown", "arguments": {"mode": "reboot"}}));
        }
        self.wait_agent(Duration::from_secs(300), Some(boot.trim()));
    }

    /// Forwards the host's `127.0.0.1:<returned port>` to the guest's TCP `guest_port`.
    pub fn forward(&self, guest_port: u16) -> u16 {
        let host_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = self.qmp(json!({"execute": "human-monitor-command", "arguments": {
            "command-line": format!("hostfwd_add n0 tcp:127.0.0.1:{host_port}-:{guest_port}")
        }}));
        assert_eq!(r["return"], json!(""), "hostfwd_add: {r}");
        host_port
    }

    fn qmp(&self, cmd: Value) -> Value {
        let s = UnixStream::connect(self.dir.path().join("qmp.sock")).expect("QMP socket");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut line = String::new();
        r.read_line(&mut line).expect("QMP greeting");
        let mut ask = |v: Value| -> Value {
            writeln!(w, "{v}").unwrap();
            loop {
                line.clear();
                r.read_line(&mut line).expect("QMP answer");
                let v: Value = serde_json::from_str(&line).expect("QMP JSON");
                // Events may come before the answer.
                if v.get("event").is_none() {
                    return v;
                }
            }
        };
        ask(json!({"execute": "qmp_capabilities"}));
        ask(cmd)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // TINYKUBE_VM_KEEP=1: a failed test leaves its guest running, to look into it (its
        // agent's socket is printed; the caller stops it).
        if std::thread::panicking() && std::env::var_os("TINYKUBE_VM_KEEP").is_some() {
            if let Some(c) = self.child.take() {
                let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
                eprintln!(
                    "kept the guest: qemu pid {}, agent {}/qga.sock, QMP {}/qmp.sock",
                    c.id(),
                    dir.display(),
                    dir.display()
                );
                std::mem::forget(c);
            }
            return;
        }
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                if let Ok(s) = UnixStream::connect(self.dir.path().join("qmp.sock")) {
                    let mut w = s;
                    let _ = writeln!(w, "{}", json!({"execute": "qmp_capabilities"}));
                    let _ = writeln!(w, "{}", json!({"execute": "quit"}));
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
                // By the pid we started, if it is still there.
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A connection to qemu-guest-agent (one JSON request and answer a line).
struct Agent {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Agent {
    fn connect(path: &Path) -> Result<Agent, String> {
        let s = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut a = Agent {
            reader: BufReader::new(s.try_clone().map_err(|e| e.to_string())?),
            writer: s,
        };
        // guest-sync-delimited: anything a previous client left unread is skipped up to the
        // 0xff the agent sends before its answer.
        static SEQ: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
        let id = std::process::id() as i64 * 1_000_000
            + SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        a.writer.write_all(&[0xff]).map_err(|e| e.to_string())?;
        a.send(json!({"execute": "guest-sync-delimited", "arguments": {"id": id}}))?;
        a.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut junk = Vec::new();
        a.reader
            .read_until(0xff, &mut junk)
            .map_err(|e| format!("agent sync: {e}"))?;
        let v = a.read()?;
        if v["return"].as_i64() != Some(id) {
            return Err(format!("agent sync: {v}"));
        }
        Ok(a)
    }

    fn send(&mut self, v: Value) -> Result<(), String> {
        writeln!(self.writer, "{v}").map_err(|e| e.to_string())
    }

    fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| format!("agent: {e}"))?;
        serde_json::from_str(&line).map_err(|e| format!("agent: {e}: {line:?}"))
    }

    fn call(&mut self, v: Value, timeout: Duration) -> Result<Value, String> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        self.send(v)?;
        let r = self.read()?;
        if let Some(e) = r.get("error") {
            return Err(format!("agent: {e}"));
        }
        Ok(r["return"].clone())
    }
}

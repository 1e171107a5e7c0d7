//! The kubelet daemon: registers the Node and keeps its status and Lease fresh, watches the
//! pods bound to it, and runs one level-triggered worker per pod UID that plans from spec +
//! runtime state ([`crate::runtime::plan`]), acts through [`PodRuntime`], and writes the pod's
//! status ([`crate::status`]) — its only writer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::image::ImageManager;
use crate::node::{self, HostFacts, NodeConfig};
use crate::runtime::plan::{self, Action};
use crate::runtime::pods::{parse_signal, PodRuntime, PodState};
use crate::status::{self, Waiting};

/// How often each worker re-reads its pod's runtime state without being woken (the relist
/// that catches whatever the exit watchers missed).
const RESYNC: Duration = Duration::from_secs(5);
/// How soon a failed action is tried again (image pulls have their own back-off).
const RETRY: Duration = Duration::from_secs(2);
/// How often the written volumes (configMap, secret, downwardAPI, projected) are compared with
/// what they should hold when nothing told of a change: for service account tokens coming up
/// for renewal. Changes of the ConfigMaps and Secrets they hold come from their watches
/// (objects.rs) and are written at once; Kubernetes' kubelet writes them at its next pod sync
/// (its sync period, 1 min).
const VOLUME_RESYNC: Duration = Duration::from_secs(60);
/// How often the node's status and Lease are renewed.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Returns the heap glibc keeps after big, short-lived allocations (image pulls and unpacking
/// buffers, pod lists) to the system, so an idle node's RSS is what it uses.
fn give_back_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The kubelet.
pub struct Kubelet {
    client: Client,
    node: NodeConfig,
    facts: HostFacts,
    rt: Arc<PodRuntime>,
    images: Arc<ImageManager>,
    /// A worker per pod UID: the latest pod and whether it is gone from the API.
    workers: Mutex<HashMap<String, watch::Sender<(Pod, bool)>>>,
    /// Wake-ups per pod UID (a container exited), made before the worker if need be.
    wakes: Mutex<HashMap<String, Arc<Notify>>>,
    /// How exec probes reach containers (the kubelet binary as the exec helper).
    exec: crate::prober::ExecEnv,
    /// Events recorded so far (key → name, count), to count repeats.
    events: Mutex<crate::events::Correlator>,
    /// The event writer's queue.
    recorder: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Recorded>>,
    /// Every Service (for the containers' service variables), fed by a watch from `run`.
    services: kube::runtime::reflector::Store<Service>,
    services_writer: Mutex<Option<kube::runtime::reflector::store::Writer<Service>>>,
    /// True once the Services have been listed. (kube's `Store::wait_until_ready` wakes only
    /// the last of several concurrent waiters, so the workers wait on this instead.)
    services_ready: tokio::sync::watch::Sender<bool>,
    /// The ConfigMaps and Secrets the pods' volumes hold, each followed by a watch.
    objects: crate::objects::Objects,
}

impl Kubelet {
    pub fn new(
        client: Client,
        node: NodeConfig,
        facts: HostFacts,
        rt: Arc<PodRuntime>,
        images: Arc<ImageManager>,
    ) -> Arc<Self> {
        let (services, services_writer) = kube::runtime::reflector::store();
        let exec = crate::prober::ExecEnv {
            exe: std::env::current_exe().unwrap_or_default(),
            state_root: rt.state_root(),
        };
        Arc::new(Self {
            objects: crate::objects::Objects::new(client.clone()),
            client,
            node,
            facts,
            rt,
            images,
            workers: Mutex::new(HashMap::new()),
            wakes: Mutex::new(HashMap::new()),
            exec,
            events: Mutex::new(Default::default()),
            recorder: std::sync::OnceLock::new(),
            services,
            services_writer: Mutex::new(Some(services_writer)),
            services_ready: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Runs until the pod watch ends (it does not, short of a panic).
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        // Register, retrying while the apiserver is not up yet.
        let mut delay = Duration::from_millis(200);
        loop {
            match node::register(&self.client, &self.node, &self.facts).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "registering the node; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        tracing::info!(node = %self.node.name, "node registered");
        tokio::spawn(self.clone().heartbeat());
        if let Some(writer) = self.services_writer.lock().unwrap().take() {
            let ready = self.services_ready.clone();
            tokio::spawn(watch_services(self.client.clone(), writer, ready));
        }
        self.adopt();
        self.watch_pods().await
    }

    async fn heartbeat(self: Arc<Self>) {
        loop {
            if let Err(e) = node::post_status(
                &self.client,
                &self.node,
                &self.facts,
                true,
                "kubelet is posting ready status",
            )
            .await
            {
                tracing::warn!(error = %e, "posting node status");
            }
            if let Err(e) = node::renew_lease(&self.client, &self.node.name).await {
                tracing::warn!(error = %e, "renewing the node lease");
            }
            give_back_freed_memory();
            tokio::time::sleep(HEARTBEAT).await;
        }
    }

    /// The pod `ns/name` bound to this node, as last seen from the API (the newest, should a
    /// deleted one of the same name still be terminating).
    pub fn find_pod(&self, ns: &str, name: &str) -> Option<Pod> {
        let workers = self.workers.lock().expect("workers");
        workers
            .values()
            .map(|tx| tx.borrow().clone())
            .filter(|(p, gone)| {
                !gone
                    && p.metadata.namespace.as_deref() == Some(ns)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .map(|(p, _)| p)
            .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
    }

    fn wake(&self, uid: &str) -> Arc<Notify> {
        self.wakes
            .lock()
            .expect("wakes")
            .entry(uid.to_string())
            .or_default()
            .clone()
    }

    /// After a restart: watch the exits of the containers that still run (their shims are
    /// no longer our children).
    fn adopt(&self) {
        for uid in self.rt.pod_uids() {
            let state = self.rt.observe(&uid);
            for i in state.running() {
                if let Some(pid) = i.record.shim_pid {
                    let wake = self.wake(&uid);
                    watch_pid(pid, wake);
                }
            }
        }
    }

    async fn watch_pods(self: &Arc<Self>) -> anyhow::Result<()> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", self.node.name));
        let mut stream = watcher::watcher(pods, cfg).boxed();
        let mut listed: HashSet<String> = HashSet::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(pod)) => {
                    if let Some(uid) = pod.metadata.uid.clone() {
                        listed.insert(uid);
                    }
                    self.dispatch(pod, false);
                }
                Ok(watcher::Event::InitDone) => self.orphans(&listed),
                Ok(watcher::Event::Apply(pod)) => self.dispatch(pod, false),
                Ok(watcher::Event::Delete(pod)) => self.dispatch(pod, true),
                Err(e) => {
                    tracing::warn!(error = %e, "watching pods");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        Ok(())
    }

    /// Pods with state on the node but not in the API any more: torn down (they were
    /// deleted while the kubelet was away).
    fn orphans(self: &Arc<Self>, listed: &HashSet<String>) {
        let active: HashSet<String> = self
            .workers
            .lock()
            .expect("workers")
            .keys()
            .cloned()
            .collect();
        for uid in self.rt.pod_uids() {
            if listed.contains(&uid) || active.contains(&uid) {
                continue;
            }
            let mut pod = self.rt.recorded_pod(&uid).unwrap_or_else(|| {
                serde_json::from_value(json!({"metadata": {"uid": uid}})).expect("pod")
            });
            pod.metadata.uid = Some(uid.clone());
            tracing::info!(%uid, "tearing down a pod the API no longer has");
            self.dispatch(pod, true);
        }
    }

    /// Hands the latest pod to its worker, starting one if needed.
    fn dispatch(self: &Arc<Self>, mut pod: Pod, gone: bool) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if gone && pod.metadata.deletion_timestamp.is_none() {
            pod.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
            );
        }
        let mut workers = self.workers.lock().expect("workers");
        if let Some(tx) = workers.get(&uid) {
            tx.send_replace((pod, gone));
            return;
        }
        if gone && !self.rt.pod_dir(&uid).exists() {
            return;
        }
        let (tx, rx) = watch::channel((pod, gone));
        workers.insert(uid.clone(), tx);
        let me = self.clone();
        tokio::spawn(async move {
            let wake = me.wake(&uid);
            Worker {
                k: me.clone(),
                uid: uid.clone(),
                rx,
                sub: crate::objects::Subscriber {
                    stale: Default::default(),
                    wake: wake.clone(),
                },
                wake,
                waiting: BTreeMap::new(),
                written: None,
                announced: HashSet::new(),
                tokens: Default::default(),
                volumes_synced: None,
                volumes_meta: None,
                mount_failure: None,
                sandbox_failures: 0,
                last_sandbox_failure: None,
                probes: Default::default(),
                deadline_announced: false,
                deleting_since: None,
            }
            .run()
            .await;
            me.workers.lock().expect("workers").remove(&uid);
            me.wakes.lock().expect("wakes").remove(&uid);
            me.objects.release(&uid);
            me.images.forget_pod(&uid);
        });
    }

    /// Records an event about `pod` (in the background: events never slow a pod down), or
    /// counts it again if it was recorded before.
    fn event(
        &self,
        pod: &Pod,
        container: Option<&str>,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let m = &pod.metadata;
        let (Some(ns), Some(name)) = (m.namespace.clone(), m.name.clone()) else {
            return;
        };
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut involved = json!({"kind": "Pod", "namespace": ns, "name": name, "uid": m.uid, "apiVersion": "v1", "resourceVersion": m.resource_version});
        if let Some(c) = container {
            let spec = pod.spec.as_ref();
            let init = spec
                .into_iter()
                .flat_map(|s| s.init_containers.iter().flatten())
                .any(|i| i.name == c);
            let ephemeral = spec
                .into_iter()
                .flat_map(|s| s.ephemeral_containers.iter().flatten())
                .any(|i| i.name == c);
            let field = if init {
                "initContainers"
            } else if ephemeral {
                "ephemeralContainers"
            } else {
                "containers"
            };
            involved["fieldPath"] = json!(format!("spec.{field}{{{c}}}"));
        }
        let body = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{name}.{:x}", now.as_nanosecond()), "namespace": ns},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": type_,
            "source": {"component": "kubelet", "host": self.node.name},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": self.node.name,
        });
        // Counted up, or combined with similar ones, as client-go's correlator does.
        let object = format!("{ns}\0{}", m.uid.as_deref().unwrap_or_default());
        let fresh = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let seen = crate::events::Event {
            object: &object,
            field: container.unwrap_or_default(),
            type_,
            reason,
            message: &message,
        };
        let decision = self
            .events
            .lock()
            .unwrap()
            .observe(seen, fresh, std::time::Instant::now());
        let mut body = body;
        let record = match decision {
            crate::events::Decision::New { name, message } => {
                body["metadata"]["name"] = json!(name);
                body["message"] = json!(message);
                Recorded::New { ns, body }
            }
            crate::events::Decision::Again {
                name,
                count,
                message,
            } => {
                body["message"] = json!(message);
                Recorded::Again {
                    ns,
                    name,
                    count,
                    stamp,
                    body,
                }
            }
        };
        let tx = self.recorder.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(record_events(self.client.clone(), rx));
            tx
        });
        let _ = tx.send(record);
    }
}

/// An event to write: a new one, or a repeat of one written before.
enum Recorded {
    New {
        ns: String,
        body: Value,
    },
    Again {
        ns: String,
        name: String,
        count: u32,
        stamp: String,
        body: Value,
    },
}

/// Writes events in order, in the background (events never slow a pod down).
async fn record_events(client: Client, mut rx: tokio::sync::mpsc::UnboundedReceiver<Recorded>) {
    use k8s_openapi::api::core::v1::Event;
    while let Some(r) = rx.recv().await {
        let result = match r {
            Recorded::New { ns, body } => {
                let events: Api<Event> = Api::namespaced(client.clone(), &ns);
                match serde_json::from_value::<Event>(body) {
                    Ok(ev) => events.create(&PostParams::default(), &ev).await.map(|_| ()),
                    Err(_) => Ok(()),
                }
            }
            Recorded::Again {
                ns,
                name,
                count,
                stamp,
                mut body,
            } => {
                let events: Api<Event> = Api::namespaced(client.clone(), &ns);
                // The message too: a combined event shows the latest one.
                let patch =
                    json!({"count": count, "lastTimestamp": stamp, "message": body["message"]});
                match events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    // Gone (expired or deleted): a new one carries the count on.
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        body["metadata"]["name"] = json!(name);
                        body["count"] = json!(count);
                        match serde_json::from_value::<Event>(body) {
                            Ok(ev) => events.create(&PostParams::default(), &ev).await.map(|_| ()),
                            Err(_) => Ok(()),
                        }
                    }
                    r => r.map(|_| ()),
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "recording an event");
        }
    }
}

/// Keeps the Services' store current (the kubelet's service lister); `ready` turns true
/// once the first list is in.
async fn watch_services(
    client: Client,
    writer: kube::runtime::reflector::store::Writer<Service>,
    ready: tokio::sync::watch::Sender<bool>,
) {
    let api: Api<Service> = Api::all(client);
    let stream =
        kube::runtime::reflector(writer, watcher::watcher(api, watcher::Config::default()));
    let mut stream = stream.boxed();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::InitDone) => {
                ready.send_replace(true);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "watching services");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Wakes `wake` when process `pid` (not our child) exits.
fn watch_pid(pid: i32, wake: Arc<Notify>) {
    let Some(fd) = crate::runtime::shim::pidfd_open(pid) else {
        wake.notify_one();
        return;
    };
    let _ = std::thread::Builder::new()
        .name("exit-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            use std::os::fd::AsFd;
            let mut fds = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            while let Err(nix::errno::Errno::EINTR) =
                nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE)
            {}
            wake.notify_one();
        });
}

fn has_written_volumes(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(crate::volumes::is_written)
}

/// Reaps shim `child` and wakes `wake` when it exits.
fn watch_child(mut child: std::process::Child, wake: Arc<Notify>) {
    let _ = std::thread::Builder::new()
        .name("shim-reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = child.wait();
            wake.notify_one();
        });
}

/// What of a pod (besides its spec) its downward API volumes write.
struct VolumeMeta {
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

impl VolumeMeta {
    fn of(pod: &Pod) -> Self {
        VolumeMeta {
            labels: pod.metadata.labels.clone(),
            annotations: pod.metadata.annotations.clone(),
        }
    }

    fn is_of(&self, pod: &Pod) -> bool {
        self.labels == pod.metadata.labels && self.annotations == pod.metadata.annotations
    }
}

struct Worker {
    k: Arc<Kubelet>,
    uid: String,
    rx: watch::Receiver<(Pod, bool)>,
    wake: Arc<Notify>,
    /// Why containers wait, by name.
    waiting: BTreeMap<String, Waiting>,
    /// The status last written (to skip writes that change nothing).
    written: Option<Value>,
    /// Back-offs already announced with an event: (container, attempt).
    announced: HashSet<(String, u32)>,
    /// Service account tokens held for the pod's projected volumes.
    tokens: crate::volumes::Tokens,
    /// Told when a ConfigMap or Secret the pod's volumes hold changes.
    sub: crate::objects::Subscriber,
    /// When the written volumes were last brought up to date (or tried to be).
    volumes_synced: Option<Instant>,
    /// The pod's labels and annotations when they were (the downward API writes them).
    volumes_meta: Option<VolumeMeta>,
    /// The last FailedMount message announced (so a failure repeats no event).
    mount_failure: Option<String>,
    /// Failed sandbox creations in a row, and when the last one failed.
    sandbox_failures: u32,
    last_sandbox_failure: Option<Instant>,
    /// The running containers' probes.
    probes: crate::prober::Probes,
    /// The DeadlineExceeded event was recorded.
    deadline_announced: bool,
    /// When this worker first saw the pod being deleted.
    deleting_since: Option<Instant>,
}

enum Step {
    /// Something changed: plan again at once.
    Again,
    /// Nothing to do before this long (or a change).
    Wait(Duration),
    /// The pod is gone from the node.
    Done,
}

impl Worker {
    async fn run(mut self) {
        loop {
            let (pod, gone) = self.rx.borrow_and_update().clone();
            let step = self.sync(&pod, gone).await;
            let wait = match step {
                Step::Done => return,
                Step::Again => continue,
                Step::Wait(d) => d,
            };
            tokio::select! {
                _ = self.rx.changed() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn rt(&self) -> &PodRuntime {
        &self.k.rt
    }

    async fn observe(&self) -> PodState {
        let rt = self.k.rt.clone();
        let uid = self.uid.clone();
        tokio::task::spawn_blocking(move || rt.observe(&uid))
            .await
            .unwrap_or_default()
    }

    async fn sync(&mut self, pod: &Pod, gone: bool) -> Step {
        let terminal = plan::completed(pod);
        let state = self.observe().await;
        // Admission: a pod the node refuses fails before anything of it is made.
        let fresh = state.containers.is_empty() && !state.sandbox_ready;
        if fresh && !terminal && !gone && pod.metadata.deletion_timestamp.is_none() {
            if let Some(message) = crate::runtime::spec::forbidden_sysctl(pod) {
                self.reject(pod, "SysctlForbidden", message).await;
                return Step::Wait(RETRY);
            }
        }
        let deadline_left = plan::deadline_left(pod, k8s_openapi::jiff::Timestamp::now());
        let deadline_exceeded = !terminal && deadline_left == Some(Duration::ZERO);
        if deadline_exceeded && !self.deadline_announced {
            self.deadline_announced = true;
            self.k.event(
                pod,
                None,
                "Normal",
                "DeadlineExceeded",
                status::DEADLINE_MESSAGE.to_string(),
            );
        }
        let past = plan::History {
            sandbox_failures: self.sandbox_failures,
            since_sandbox_failure: self
                .last_sandbox_failure
                .map_or(Duration::MAX, |at| at.elapsed()),
            deadline_exceeded,
            // Counted from when this worker saw the deletion, as Kubernetes' pod workers
            // count the grace period.
            deletion_left: pod.metadata.deletion_timestamp.as_ref().map(|_| {
                let since = *self.deleting_since.get_or_insert_with(Instant::now);
                plan::deletion_grace(pod).saturating_sub(since.elapsed())
            }),
        };
        // Probes run while the pod does (not once it is being deleted).
        let probing =
            !gone && !terminal && pod.metadata.deletion_timestamp.is_none() && state.sandbox_ready;
        if probing {
            self.probes.sync(pod, &state, &self.k.exec, &self.wake);
        } else {
            self.probes.stop();
        }
        let unhealthy: Vec<_> = std::mem::take(&mut *self.probes.unhealthy.lock().unwrap());
        for n in unhealthy {
            self.k
                .event(pod, Some(&n.container), "Warning", n.reason, n.message);
        }
        let health = self.health(pod, &state);
        let mut observed = state.observed(jiff::Timestamp::now());
        for (name, h) in &health {
            let Some(i) = observed.instances.get_mut(name) else {
                continue;
            };
            i.started = h.started;
            i.failed_probe = h.failed.map(|kind| match kind {
                crate::prober::Kind::Startup => "startup",
                _ => "liveness",
            });
        }
        let actions = plan::plan(pod, &observed, &past);
        let mut again = false;
        // Wake up when the active deadline comes.
        let mut wait = match deadline_left {
            Some(left) if !left.is_zero() => RESYNC.min(left + Duration::from_millis(10)),
            _ => RESYNC,
        };
        let mut stops = Vec::new();
        for action in actions {
            match action {
                Action::CreateSandbox => {
                    let Some(volumes) = self.volumes(pod, crate::objects::SYNC_TIMEOUT).await
                    else {
                        wait = wait.min(RETRY);
                        continue;
                    };
                    let rt = self.k.rt.clone();
                    let p = pod.clone();
                    // The pod's resolv.conf needs the cluster DNS's address: not before the
                    // Services are known.
                    let dns = match self.kube_dns().await {
                        Ok(dns) => dns,
                        Err(e) => {
                            tracing::info!(pod = %names(pod).0, reason = %e, "sandbox postponed");
                            wait = wait.min(RETRY);
                            continue;
                        }
                    };
                    let made =
                        tokio::task::spawn_blocking(move || rt.create_sandbox(&p, &volumes, dns))
                            .await
                            .unwrap_or_else(|e| Err(format!("creating the sandbox panicked: {e}")));
                    match made {
                        Ok(_) => {
                            self.sandbox_failures = 0;
                            self.last_sandbox_failure = None;
                            again = true;
                        }
                        Err(e) => {
                            self.k.event(
                                pod,
                                None,
                                "Warning",
                                "FailedCreatePodSandBox",
                                format!("Failed to create pod sandbox: {e}"),
                            );
                            self.sandbox_failures += 1;
                            self.last_sandbox_failure = Some(Instant::now());
                            wait = wait.min(plan::sandbox_back_off(self.sandbox_failures));
                        }
                    }
                }
                Action::SandboxBackOff { remaining } => wait = wait.min(remaining),
                Action::Start { name, attempt } => {
                    if self.start(pod, &name, attempt).await {
                        again = true;
                    } else {
                        wait = wait.min(RETRY);
                    }
                }
                Action::Stop { name, grace } => {
                    let message = format!("Stopping container {name}");
                    stops.push((name, grace, message))
                }
                Action::Kill {
                    name,
                    grace,
                    message,
                } => stops.push((name, grace, message)),
                Action::BackOff {
                    name,
                    attempt,
                    remaining,
                    waiting,
                    event,
                } => {
                    self.waiting.insert(name.clone(), waiting);
                    if self.announced.insert((name.clone(), attempt)) {
                        self.k.event(pod, Some(&name), "Warning", "BackOff", event);
                    }
                    wait = wait.min(remaining + Duration::from_millis(10));
                }
                Action::ReleaseNetwork => {
                    // The containers' final states (a completed pod's sidecars stopped after
                    // its phase was written) are recorded before the network goes.
                    if !gone {
                        self.write_status(pod, &state, &health, deadline_exceeded)
                            .await;
                    }
                    let rt = self.k.rt.clone();
                    let uid = self.uid.clone();
                    let _ = tokio::task::spawn_blocking(move || rt.release_network(&uid)).await;
                    return Step::Wait(RESYNC);
                }
                Action::RemoveSandbox => {
                    if !self.teardown().await {
                        return Step::Wait(RETRY);
                    }
                }
                Action::Finalize => {
                    // A sandbox that was never finished is not "ready", yet has left state.
                    if self.rt().pod_dir(&self.uid).exists() && !self.teardown().await {
                        return Step::Wait(RETRY);
                    }
                    if !gone && !self.finalize(pod).await {
                        return Step::Wait(RETRY);
                    }
                    return Step::Done;
                }
            }
        }
        if !stops.is_empty() {
            let pod_ip = state.pod_ip.clone().unwrap_or_default();
            let futures = stops.into_iter().filter_map(|(name, grace, message)| {
                let r = state.latest(&name)?.record.clone();
                self.k.event(pod, Some(&name), "Normal", "Killing", message);
                Some(stop(self.k.clone(), pod, &pod_ip, r, grace))
            });
            futures::future::join_all(futures).await;
            again = true;
        }
        // The written volumes follow their ConfigMaps, Secrets and tokens while the pod runs.
        if !gone && !terminal && !again && state.sandbox_ready && has_written_volumes(pod) {
            wait = wait.min(self.refresh_volumes(pod).await);
        }
        // Nothing was made or stopped: the state read above is still what runs.
        if !gone && !terminal && !again {
            self.write_status(pod, &state, &health, deadline_exceeded)
                .await;
        }
        if again {
            Step::Again
        } else {
            Step::Wait(wait)
        }
    }

    /// What the pod's written volumes should hold; None after announcing why they cannot be
    /// made (Kubernetes' FailedMount), retried on the next sync. A first read of a ConfigMap
    /// or Secret waits up to `wait` for its watch's list: long before a sandbox is made,
    /// briefly for a running pod (whose worker has more to do than wait for an unreachable
    /// API, e.g. after a kubelet restart while the apiserver is down).
    async fn volumes(&mut self, pod: &Pod, wait: Duration) -> Option<crate::volumes::Desired> {
        let alloc = crate::volumes::Allocatable::of(&self.k.facts);
        let reads = crate::volumes::Reads {
            client: &self.k.client,
            objects: &self.k.objects,
            uid: &self.uid,
            sub: &self.sub,
            wait,
        };
        self.volumes_synced = Some(Instant::now());
        match crate::volumes::desired(&reads, pod, &mut self.tokens, &alloc).await {
            Ok(v) => {
                self.mount_failure = None;
                Some(v)
            }
            Err(message) => {
                if self.mount_failure.as_deref() != Some(message.as_str()) {
                    self.k
                        .event(pod, None, "Warning", "FailedMount", message.clone());
                    self.mount_failure = Some(message);
                }
                None
            }
        }
    }

    /// Brings the written volumes up to date when what they hold may have changed: a watched
    /// ConfigMap or Secret did, or the pod's labels or annotations (the downward API's), or
    /// the last attempt failed ([`RETRY`] ago), or [`VOLUME_RESYNC`] passed (token renewal).
    /// Returns how soon the next periodic check is due.
    async fn refresh_volumes(&mut self, pod: &Pod) -> Duration {
        let period = if self.mount_failure.is_some() {
            RETRY
        } else {
            VOLUME_RESYNC
        };
        let since = self.volumes_synced.map_or(Duration::MAX, |at| at.elapsed());
        // Cleared before reading, so a change during the read is written next time.
        let stale = self
            .sub
            .stale
            .swap(false, std::sync::atomic::Ordering::AcqRel);
        if !stale && since < period && self.volumes_meta.as_ref().is_some_and(|m| m.is_of(pod)) {
            return period - since;
        }
        self.volumes_meta = Some(VolumeMeta::of(pod));
        let Some(volumes) = self.volumes(pod, Duration::from_secs(1)).await else {
            return RETRY;
        };
        let rt = self.k.rt.clone();
        let uid = self.uid.clone();
        match tokio::task::spawn_blocking(move || rt.update_volumes(&uid, &volumes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(uid = %self.uid, error = %e, "updating volumes"),
            Err(e) => tracing::error!(uid = %self.uid, error = %e, "updating volumes panicked"),
        }
        VOLUME_RESYNC
    }

    /// Removes everything of the pod from the node (its containers have stopped); false if
    /// that failed (tried again later).
    async fn teardown(&self) -> bool {
        let rt = self.k.rt.clone();
        let uid = self.uid.clone();
        match tokio::task::spawn_blocking(move || rt.remove_sandbox(&uid)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(uid = %self.uid, error = %e, "tearing down a pod");
                false
            }
            Err(e) => {
                tracing::error!(uid = %self.uid, error = %e, "tearing down a pod panicked");
                false
            }
        }
    }

    /// Starts instance `attempt` of container `name`; false if it could not (the reason is
    /// in `waiting`).
    async fn start(&mut self, pod: &Pod, name: &str, attempt: u32) -> bool {
        let Some(c) = plan::find_container(pod, name) else {
            return false;
        };
        let image = c.image.clone().unwrap_or_default();
        let secrets = self.pull_secrets(pod).await;
        let ensured = self
            .k
            .images
            .ensure(
                &self.uid,
                &image,
                c.image_pull_policy.as_deref().unwrap_or(""),
                &secrets,
            )
            .await;
        for e in ensured.events {
            self.k.event(pod, Some(name), e.type_, e.reason, e.message);
        }
        let record = match ensured.result {
            Ok(r) => r,
            Err(w) => {
                self.waiting.insert(
                    name.into(),
                    Waiting {
                        reason: w.reason.into(),
                        message: w.message,
                    },
                );
                return false;
            }
        };
        let config = match self.resolve_env(pod, &c).await {
            Ok(env) => self.service_env(pod).await.map(|services| (env, services)),
            Err(e) => Err(e),
        };
        let (env, services) = match config {
            Ok(config) => config,
            Err(message) => {
                self.k.event(
                    pod,
                    Some(name),
                    "Warning",
                    "Failed",
                    format!("Error: {message}"),
                );
                self.waiting.insert(
                    name.into(),
                    Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message,
                    },
                );
                return false;
            }
        };
        let rt = self.k.rt.clone();
        let p = pod.clone();
        let spec = c.clone();
        let started = tokio::task::spawn_blocking(move || {
            rt.start_container(&p, &spec, attempt, &record, env, services)
        })
        .await;
        match started {
            Ok(Ok((record, child))) => {
                watch_child(child, self.wake.clone());
                self.waiting.remove(name);
                self.k.event(
                    pod,
                    Some(name),
                    "Normal",
                    "Created",
                    format!("Created container {name}"),
                );
                self.k.event(
                    pod,
                    Some(name),
                    "Normal",
                    "Started",
                    format!("Started container {name}"),
                );
                let state = self.observe().await;
                self.rt().prune_instances(pod, &state);
                let pod_ip = state.pod_ip.clone().unwrap_or_default();
                self.post_start(pod, &c, record, &pod_ip).await;
                true
            }
            Ok(Err(e)) => {
                self.k.event(
                    pod,
                    Some(name),
                    "Warning",
                    "Failed",
                    format!("Error: {}", e.message),
                );
                self.waiting.insert(
                    name.into(),
                    Waiting {
                        reason: e.reason.into(),
                        message: e.message,
                    },
                );
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "starting a container panicked");
                false
            }
        }
    }

    /// Runs container `c`'s postStart hook, if it has one, as Kubernetes does: the worker
    /// waits for it (the container shows as creating meanwhile); a failure is a
    /// FailedPostStartHook event and the container is killed (and restarted as its policy
    /// says), waiting with PostStartHookError. The pod's deletion cuts the hook short.
    async fn post_start(
        &mut self,
        pod: &Pod,
        c: &Container,
        record: crate::runtime::pods::ContainerRecord,
        pod_ip: &str,
    ) {
        let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return;
        };
        let ran = match crate::lifecycle::Hook::of(handler, c, pod_ip) {
            Ok(hook) => {
                let mut rx = self.rx.clone();
                let deleted =
                    rx.wait_for(|(p, gone)| *gone || p.metadata.deletion_timestamp.is_some());
                tokio::select! {
                    r = crate::lifecycle::run(&hook, &self.k.exec, &record.id, pod, c) => r,
                    _ = deleted => return,
                }
            }
            Err(e) => Err(e),
        };
        let Err(message) = ran else { return };
        let name = c.name.as_str();
        self.k.event(
            pod,
            Some(name),
            "Warning",
            "FailedPostStartHook",
            message.clone(),
        );
        self.k.event(
            pod,
            Some(name),
            "Normal",
            "Killing",
            "FailedPostStartHook".into(),
        );
        stop(
            self.k.clone(),
            pod,
            pod_ip,
            record,
            plan::pod_grace(pod, None),
        )
        .await;
        self.waiting.insert(
            name.into(),
            Waiting {
                reason: "PostStartHookError".into(),
                message,
            },
        );
    }

    async fn pull_secrets(&self, pod: &Pod) -> Vec<Vec<u8>> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.k.client.clone(), &ns);
        let mut out = Vec::new();
        for r in pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
        {
            if let Ok(Some(s)) = api.get_opt(&r.name).await {
                if let Some(b) = s.data.and_then(|d| d.get(".dockerconfigjson").cloned()) {
                    out.push(b.0);
                }
            }
        }
        out
    }

    /// Values of env vars from configMapKeyRef, secretKeyRef and resourceFieldRef.
    async fn resolve_env(
        &self,
        pod: &Pod,
        c: &Container,
    ) -> Result<BTreeMap<String, String>, String> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut out = BTreeMap::new();
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.resource_field_ref {
                // An empty containerName is the container itself.
                let named = r.container_name.as_deref().filter(|n| !n.is_empty());
                let target = match named {
                    Some(n) if n != c.name => crate::runtime::plan::find_container(pod, n)
                        .ok_or_else(|| format!("container {n} not found"))?,
                    _ => c.clone(),
                };
                let alloc = crate::volumes::Allocatable::of(&self.k.facts);
                let value = crate::volumes::resource_field(&target, r, &alloc)?;
                out.insert(e.name.clone(), value);
                continue;
            }
            let (kind, name, key, optional, value) = if let Some(r) = &from.config_map_key_ref {
                let api: Api<ConfigMap> = Api::namespaced(self.k.client.clone(), &ns);
                let cm = api.get_opt(&r.name).await.map_err(|e| e.to_string())?;
                let value = cm.and_then(|cm| cm.data?.get(&r.key).cloned());
                ("ConfigMap", &r.name, &r.key, r.optional, value)
            } else if let Some(r) = &from.secret_key_ref {
                let api: Api<Secret> = Api::namespaced(self.k.client.clone(), &ns);
                let secret = api.get_opt(&r.name).await.map_err(|e| e.to_string())?;
                let value = secret
                    .and_then(|s| s.data?.get(&r.key).cloned())
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned());
                ("Secret", &r.name, &r.key, r.optional, value)
            } else {
                continue;
            };
            match value {
                Some(v) => {
                    out.insert(e.name.clone(), v);
                }
                None if optional == Some(true) => {}
                None => return Err(format!("couldn't find key {key} in {kind} {ns}/{name}")),
            }
        }
        Ok(out)
    }

    /// Whether the Services have been listed, waiting up to 5 s for it.
    async fn services_read(&self) -> bool {
        let mut ready = self.k.services_ready.subscribe();
        tokio::time::timeout(Duration::from_secs(5), ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The cluster DNS's address as the `kube-dns` Service (kube-system) has it (None: the
    /// cluster has no DNS service); Err until the kubelet has read the Services.
    async fn kube_dns(&self) -> Result<Option<String>, String> {
        if !self.services_read().await {
            return Err("services have not yet been read at least once".into());
        }
        let key = kube::runtime::reflector::ObjectRef::new("kube-dns").within("kube-system");
        Ok(self.k.services.get(&key).and_then(|s| {
            s.spec
                .as_ref()?
                .cluster_ip
                .clone()
                .filter(|ip| !ip.is_empty() && ip != "None")
        }))
    }

    /// The Services' variables for a container of `pod`, once the kubelet has read the
    /// Services (Kubernetes' kubelet refuses to guess them before).
    async fn service_env(&self, pod: &Pod) -> Result<Vec<(String, String)>, String> {
        let store = &self.k.services;
        if !self.services_read().await {
            return Err(
                "services have not yet been read at least once, cannot construct envvars".into(),
            );
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let services: Vec<Service> = store
            .state()
            .iter()
            .filter(|s| {
                let m = &s.metadata;
                m.namespace.as_deref() == Some(ns)
                    || (m.namespace.as_deref() == Some("default")
                        && m.name.as_deref() == Some("kubernetes"))
            })
            .map(|s| (**s).clone())
            .collect();
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        Ok(crate::runtime::spec::service_env(&services, ns, links))
    }

    /// The probes' standing of each running container.
    fn health(&self, pod: &Pod, state: &PodState) -> BTreeMap<String, crate::prober::Health> {
        let status = pod.status.as_ref();
        crate::prober::probed(pod)
            .filter_map(|c| {
                let i = state.latest(&c.name).filter(|i| i.exit.is_none())?;
                let id = format!("libcontainer://{}", i.record.id);
                let reported = status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .chain(status.and_then(|s| s.init_container_statuses.as_ref()))
                    .flatten()
                    .find(|s| s.name == c.name)
                    .filter(|s| s.container_id.as_deref() == Some(id.as_str()))
                    .map(|s| (s.started == Some(true), s.ready));
                Some((
                    c.name.clone(),
                    self.probes.health(c, &i.record.id, reported),
                ))
            })
            .collect()
    }

    async fn write_status(
        &mut self,
        pod: &Pod,
        state: &PodState,
        health: &BTreeMap<String, crate::prober::Health>,
        deadline_exceeded: bool,
    ) {
        // A container that runs waits for nothing.
        self.waiting
            .retain(|name, _| state.latest(name).is_none_or(|i| i.exit.is_some()));
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let host_ip = self.k.node.node_ip.to_string();
        let status = status::pod_status(
            pod,
            &status::Inputs {
                state,
                waiting: &self.waiting,
                health,
                deadline_exceeded,
                host_ip: &host_ip,
                now: &now,
            },
        );
        if self.written.as_ref() == Some(&status) {
            return;
        }
        let (name, ns, _) = names(pod);
        let api: Api<Pod> = Api::namespaced(self.k.client.clone(), &ns);
        let body = json!({"status": status});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => self.written = Some(status),
            Err(e) => tracing::warn!(pod = %name, error = %e, "writing pod status"),
        }
    }

    /// Fails a pod the node does not admit, as Kubernetes' kubelet rejects one: an event
    /// with the reason, and the status Failed with `Pod was rejected: <message>`.
    async fn reject(&mut self, pod: &Pod, reason: &str, message: String) {
        let status = json!({
            "phase": "Failed",
            "reason": reason,
            "message": format!("Pod was rejected: {message}"),
            "qosClass": status::qos_class(pod),
        });
        if self.written.as_ref() == Some(&status) {
            return;
        }
        self.k.event(pod, None, "Warning", reason, message);
        let (name, ns, _) = names(pod);
        let api: Api<Pod> = Api::namespaced(self.k.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => self.written = Some(status),
            Err(e) => tracing::warn!(pod = %name, error = %e, "rejecting a pod"),
        }
    }

    /// Lets the API delete the pod now that nothing of it runs (false: try again).
    async fn finalize(&self, pod: &Pod) -> bool {
        let (name, ns, uid) = names(pod);
        let api: Api<Pod> = Api::namespaced(self.k.client.clone(), &ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => true,
            Err(e) => {
                tracing::warn!(pod = %name, error = %e, "completing the pod's deletion");
                false
            }
        }
    }
}

fn names(pod: &Pod) -> (String, String, String) {
    let m = &pod.metadata;
    (
        m.name.clone().unwrap_or_default(),
        m.namespace.clone().unwrap_or_default(),
        m.uid.clone().unwrap_or_default(),
    )
}

/// The least a container is given to stop after its preStop hook (Kubernetes'
/// minimumGracePeriodInSeconds).
const MIN_GRACE_AFTER_HOOK: Duration = Duration::from_secs(2);

/// Stops one container of `pod`: its preStop hook within `grace` (if it has one and the
/// grace is not zero; a failure is a FailedPreStopHook event), then its stop signal, then
/// SIGKILL once the rest of the grace period (at least 2 s after a hook) has passed.
async fn stop(
    k: Arc<Kubelet>,
    pod: &Pod,
    pod_ip: &str,
    r: crate::runtime::pods::ContainerRecord,
    grace: Duration,
) {
    let rt = k.rt.clone();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut grace = grace;
    let c = plan::find_container(pod, &r.name);
    let pre_stop = c
        .as_ref()
        .and_then(|c| Some((c, c.lifecycle.as_ref()?.pre_stop.as_ref()?)));
    if let (Some((c, handler)), false) = (pre_stop, grace.is_zero()) {
        let began = tokio::time::Instant::now();
        let hook = crate::lifecycle::Hook::of(handler, c, pod_ip);
        let ran = match &hook {
            Ok(h) => {
                match tokio::time::timeout(grace, crate::lifecycle::run(h, &k.exec, &r.id, pod, c))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::info!(container = %r.name, "preStop hook not completed in grace period");
                        Ok(())
                    }
                }
            }
            Err(e) => Err(e.clone()),
        };
        if let Err(message) = ran {
            k.event(pod, Some(&r.name), "Warning", "FailedPreStopHook", message);
        }
        // Whole seconds, as Kubernetes counts what the hook took.
        let took = Duration::from_secs(began.elapsed().as_secs());
        grace = grace.saturating_sub(took).max(MIN_GRACE_AFTER_HOOK);
    }
    let signal = if r.stop_signal.is_empty() {
        nix::sys::signal::SIGTERM
    } else {
        parse_signal(&r.stop_signal)
    };
    rt.signal(&r, signal);
    let deadline = tokio::time::Instant::now() + grace;
    let mut killed = false;
    let hard_deadline = deadline + Duration::from_secs(10);
    while !rt.has_exited(&uid, &r) {
        let now = tokio::time::Instant::now();
        if !killed && now >= deadline {
            rt.signal(&r, nix::sys::signal::SIGKILL);
            killed = true;
        }
        if now >= hard_deadline {
            tracing::warn!(container = %r.id, "container did not exit after SIGKILL");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! What the kubelet does before starting a container: make sure its image is there, by the
//! container's imagePullPolicy, with Kubernetes' events, waiting reasons and pull back-off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pull::{ImageService, PullError};
use super::reference::ImageName;
use super::store::ImageRecord;

/// An event for the pod, as the kubelet records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEvent {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// Why a container cannot start yet: its `state.waiting.reason` and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageWait {
    /// ErrImagePull, ImagePullBackOff, ErrImageNeverPull or InvalidImageName.
    pub reason: &'static str,
    pub message: String,
}

/// The result of [`ImageManager::ensure`], with the events to record either way.
#[derive(Debug)]
pub struct Ensured {
    pub result: Result<ImageRecord, ImageWait>,
    pub events: Vec<ImageEvent>,
}

/// Kubernetes' pull back-off: 10 s doubling to 5 min, per pod and image.
#[derive(Clone, Copy, Debug)]
pub struct BackOffPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackOffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

struct BackOffEntry {
    delay: Duration,
    last: Instant,
    error: String,
}

pub struct ImageManager {
    service: Arc<ImageService>,
    policy: BackOffPolicy,
    backoff: Mutex<HashMap<String, BackOffEntry>>,
}

impl ImageManager {
    pub fn new(service: Arc<ImageService>, policy: BackOffPolicy) -> Self {
        Self {
            service,
            policy,
            backoff: Mutex::new(HashMap::new()),
        }
    }

    pub fn service(&self) -> &Arc<ImageService> {
        &self.service
    }

    /// Ensures `image` is on the node for a container of pod `pod_uid` under `pull_policy`
    /// (`Always`, `IfNotPresent`, `Never`; empty means Kubernetes' default for the tag).
    pub async fn ensure(
        &self,
        pod_uid: &str,
        image: &str,
        pull_policy: &str,
        docker_configs: &[Vec<u8>],
    ) -> Ensured {
        let mut events = Vec::new();
        let name = match ImageName::parse(image) {
            Ok(n) => n,
            Err(e) => {
                let message = format!("Failed to apply default image tag {image:?}: {e}");
                events.push(warning("InspectFailed", message.clone()));
                return Ensured {
                    result: Err(ImageWait {
                        reason: "InvalidImageName",
                        message,
                    }),
                    events,
                };
            }
        };
        let present = self
            .service
            .store()
            .get(&name.canonical())
            .ok()
            .flatten()
            .filter(|i| {
                i.layers
                    .iter()
                    .all(|l| self.service.store().has_layer(&l.chain_id))
            });
        let policy = match pull_policy {
            "" if name.tag() == Some("latest")
                || (name.tag().is_none() && name.digest().is_none()) =>
            {
                "Always"
            }
            "" => "IfNotPresent",
            p => p,
        };
        let should_pull = match policy {
            "Always" => true,
            "Never" => false,
            _ => present.is_none(),
        };
        if !should_pull {
            return match present {
                Some(rec) => {
                    events.push(normal(
                        "Pulled",
                        format!("Container image {image:?} already present on machine"),
                    ));
                    Ensured {
                        result: Ok(rec),
                        events,
                    }
                }
                None => {
                    let message = format!(
                        "Container image {image:?} is not present with pull policy of Never"
                    );
                    events.push(warning("ErrImageNeverPull", message.clone()));
                    Ensured {
                        result: Err(ImageWait {
                            reason: "ErrImageNeverPull",
                            message,
                        }),
                        events,
                    }
                }
            };
        }

        let key = format!("{pod_uid}_{image}");
        if let Some(last_error) = self.in_backoff(&key) {
            events.push(normal(
                "BackOff",
                format!("Back-off pulling image {image:?}"),
            ));
            events.push(warning("Failed", "Error: ImagePullBackOff".into()));
            return Ensured {
                result: Err(ImageWait {
                    reason: "ImagePullBackOff",
                    message: format!(
                        "Back-off pulling image {image:?}: ErrImagePull: {last_error}"
                    ),
                }),
                events,
            };
        }

        events.push(normal("Pulling", format!("Pulling image {image:?}")));
        let started = Instant::now();
        match self.service.pull(&name, docker_configs).await {
            Ok(pulled) => {
                self.backoff.lock().unwrap().remove(&key);
                events.push(normal(
                    "Pulled",
                    format!(
                        "Successfully pulled image {image:?} in {} ({} including waiting). Image size: {} bytes.",
                        go_duration(pulled.took),
                        go_duration(started.elapsed()),
                        pulled.image.size
                    ),
                ));
                Ensured {
                    result: Ok(pulled.image),
                    events,
                }
            }
            Err(e) => {
                let message = pull_error_message(&e);
                self.note_failure(&key, &message);
                events.push(warning(
                    "Failed",
                    format!("Failed to pull image {image:?}: {message}"),
                ));
                events.push(warning("Failed", "Error: ErrImagePull".into()));
                Ensured {
                    result: Err(ImageWait {
                        reason: "ErrImagePull",
                        message,
                    }),
                    events,
                }
            }
        }
    }

    /// The last error, if `key` is still inside its back-off window.
    fn in_backoff(&self, key: &str) -> Option<String> {
        let b = self.backoff.lock().unwrap();
        let e = b.get(key)?;
        (e.last.elapsed() < e.delay).then(|| e.error.clone())
    }

    fn note_failure(&self, key: &str, error: &str) {
        let mut b = self.backoff.lock().unwrap();
        let now = Instant::now();
        let e = b.entry(key.to_string()).or_insert(BackOffEntry {
            delay: Duration::ZERO,
            last: now,
            error: String::new(),
        });
        e.delay = if e.delay.is_zero() {
            self.policy.initial
        } else {
            (e.delay * 2).min(self.policy.max)
        };
        e.last = now;
        e.error = error.to_string();
    }

    /// Forgets the back-off of a pod that is gone.
    pub fn forget_pod(&self, pod_uid: &str) {
        let prefix = format!("{pod_uid}_");
        self.backoff
            .lock()
            .unwrap()
            .retain(|k, _| !k.starts_with(&prefix));
    }
}

fn pull_error_message(e: &PullError) -> String {
    match e {
        PullError::NotFound(m) => format!("not found: {m}"),
        PullError::Unauthorized(m) => format!("unauthorized: {m}"),
        other => other.to_string(),
    }
}

fn normal(reason: &'static str, message: String) -> ImageEvent {
    ImageEvent {
        type_: "Normal",
        reason,
        message,
    }
}

fn warning(reason: &'static str, message: String) -> ImageEvent {
    ImageEvent {
        type_: "Warning",
        reason,
        message,
    }
}

/// A duration truncated to milliseconds in Go's `time.Duration` notation (`43ms`, `1.5s`,
/// `2m3.004s`), as the kubelet prints pull times.
pub fn go_duration(d: Duration) -> String {
    tinykube_machinery::duration::format(Duration::from_millis(d.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(Duration::from_micros(43_900)), "43ms");
        assert_eq!(go_duration(ms(123_004)), "2m3.004s");
        assert_eq!(go_duration(Duration::from_micros(900)), "0s");
    }
}

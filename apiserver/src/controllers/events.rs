//! Recording events as Kubernetes' event recorder does: one Event per (object, type, reason,
//! message), whose count and lastTimestamp grow when it happens again. Writing is off the
//! controller's path (a background task), so a slow write never slows a sync.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::Metadata;
use tokio::sync::mpsc;

use crate::registry::generic::Registry;
use crate::registry::kinds::event::EventKind;
use crate::registry::{now, Part, WriteOptions};

pub fn reference<T>(obj: &T) -> ObjectReference
where
    T: k8s_openapi::Resource + Metadata<Ty = ObjectMeta>,
{
    let m = obj.metadata();
    ObjectReference {
        api_version: Some(T::API_VERSION.to_string()),
        kind: Some(T::KIND.to_string()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        ..Default::default()
    }
}

struct Record {
    component: &'static str,
    reference: ObjectReference,
    type_: &'static str,
    reason: &'static str,
    message: String,
}

/// Hands events to the background writer.
#[derive(Clone)]
pub struct Recorder {
    component: &'static str,
    tx: mpsc::UnboundedSender<Record>,
}

impl Recorder {
    pub fn for_component(&self, component: &'static str) -> Recorder {
        Recorder {
            component,
            tx: self.tx.clone(),
        }
    }

    pub fn normal(&self, reference: ObjectReference, reason: &'static str, message: String) {
        self.send(reference, "Normal", reason, message);
    }

    pub fn warning(&self, reference: ObjectReference, reason: &'static str, message: String) {
        self.send(reference, "Warning", reason, message);
    }

    fn send(
        &self,
        reference: ObjectReference,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        let _ = self.tx.send(Record {
            component: self.component,
            reference,
            type_,
            reason,
            message,
        });
    }
}

/// Starts the writer; returns the recorder controllers clone.
pub fn start(events: Arc<Registry<EventKind>>) -> Recorder {
    let (tx, mut rx) = mpsc::unbounded_channel::<Record>();
    tokio::spawn(async move {
        // (object uid, type, reason, message, component) -> event name
        let mut seen: HashMap<(String, &'static str, &'static str, String, &'static str), String> =
            HashMap::new();
        let mut counter: u64 = 0;
        while let Some(r) = rx.recv().await {
            let ns = r
                .reference
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into());
            let key = (
                r.reference.uid.clone().unwrap_or_default(),
                r.type_,
                r.reason,
                r.message.clone(),
                r.component,
            );
            let existing = seen.get(&key).cloned();
            if let Some(name) = existing {
                let updated = events
                    .modify(
                        Some(&ns),
                        &name,
                        Part::Main,
                        &WriteOptions::default(),
                        |old| {
                            let mut e = old.clone();
                            e.count = Some(e.count.unwrap_or(1) + 1);
                            e.last_timestamp = Some(now());
                            Ok(e)
                        },
                    )
                    .await;
                if updated.is_ok() {
                    continue;
                }
            }
            counter += 1;
            let t = now();
            let name = format!(
                "{}.{:x}{:04x}",
                r.reference.name.clone().unwrap_or_default(),
                k8s_openapi::jiff::Timestamp::now().as_nanosecond(),
                counter & 0xffff
            );
            let event = Event {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                },
                involved_object: r.reference,
                reason: Some(r.reason.to_string()),
                message: Some(r.message),
                type_: Some(r.type_.to_string()),
                source: Some(EventSource {
                    component: Some(r.component.to_string()),
                    host: None,
                }),
                first_timestamp: Some(t.clone()),
                last_timestamp: Some(t.clone()),
                event_time: None::<MicroTime>,
                count: Some(1),
                reporting_component: Some(r.component.to_string()),
                reporting_instance: Some(format!("{}-tinykube", r.component)),
                ..Default::default()
            };
            match events
                .create(Some(&ns), event, &WriteOptions::default())
                .await
            {
                Ok(_) => {
                    // Keep the aggregation map bounded; events expire anyway.
                    if seen.len() > 4096 {
                        seen.clear();
                    }
                    seen.insert(key, name);
                }
                Err(e) => tracing::debug!(error = %e, "recording an event"),
            }
        }
    });
    Recorder {
        component: "tinykube",
        tx,
    }
}

//! core/v1 Events: what happened to an object; `kubectl describe` lists them by involvedObject.

use k8s_openapi::api::core::v1::Event;
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::error::{FieldError, FieldErrors};
use crate::registry::table::{age, human_duration, Column};
use crate::registry::validation::NameRule;
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(&kinds::EVENT, &[], NameRule::Subdomain);

pub struct EventKind;

impl Kind for EventKind {
    type Obj = Event;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, e: &Event) -> FieldErrors {
        let mut errs = Vec::new();
        let ns = e.metadata.namespace.as_deref().unwrap_or_default();
        match e
            .involved_object
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
        {
            None if !ns.is_empty() && ns != "default" => errs.push(FieldError::invalid(
                "involvedObject.namespace",
                "",
                "does not match event.namespace",
            )),
            Some(n) if n != ns => errs.push(FieldError::invalid(
                "involvedObject.namespace",
                n,
                "does not match event.namespace",
            )),
            _ => {}
        }
        if let Some(t) = e.type_.as_deref().filter(|t| !t.is_empty()) {
            if t != "Normal" && t != "Warning" {
                errs.push(FieldError::not_supported("type", t, &["Normal", "Warning"]));
            }
        }
        if e.reason.as_deref().is_some_and(|r| r.len() > 128) {
            errs.push(FieldError::too_long("reason", 128));
        }
        errs
    }

    fn field(&self, e: &Event, field: &str) -> Option<String> {
        let o = &e.involved_object;
        let s = |v: &Option<String>| Some(v.clone().unwrap_or_default());
        match field {
            "involvedObject.kind" => s(&o.kind),
            "involvedObject.namespace" => s(&o.namespace),
            "involvedObject.name" => s(&o.name),
            "involvedObject.uid" => s(&o.uid),
            "involvedObject.apiVersion" => s(&o.api_version),
            "involvedObject.resourceVersion" => s(&o.resource_version),
            "involvedObject.fieldPath" => s(&o.field_path),
            "reason" => s(&e.reason),
            "reportingComponent" => s(&e.reporting_component),
            "source" => s(&e.source.as_ref().and_then(|x| x.component.clone())),
            "type" => s(&e.type_),
            _ => None,
        }
    }

    fn supports_field(&self, field: &str) -> bool {
        field.starts_with("involvedObject.")
            || matches!(
                field,
                "metadata.name"
                    | "metadata.namespace"
                    | "reason"
                    | "reportingComponent"
                    | "source"
                    | "type"
            )
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
            Column::new("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future."),
            Column::new("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            Column::new("Object", "string", "The object that this event is about."),
            Column::new("Subobject", "string", "The field of the object that this event is about.").wide(),
            Column::new("Source", "string", "The component reporting this event.").wide(),
            Column::new("Message", "string", "A human-readable description of the status of this operation."),
            Column::new("First Seen", "string", "The time at which the event was first recorded.").wide(),
            Column::new("Count", "string", "The number of times this event has occurred.").wide(),
            Column { format: "name", ..Column::new("Name", "string", "Name of the event.").wide() },
        ]
    }

    fn row(&self, e: &Event, now: i64) -> Vec<Value> {
        let first = match &e.first_timestamp {
            Some(t) => age(Some(t), now),
            None => match &e.event_time {
                Some(t) => json!(human_duration(now - t.0.as_second())),
                None => age(e.metadata.creation_timestamp.as_ref(), now),
            },
        };
        let mut last = match &e.last_timestamp {
            Some(t) => age(Some(t), now),
            None => first.clone(),
        };
        let mut count = e.count.unwrap_or(0);
        if let Some(series) = &e.series {
            if let Some(t) = &series.last_observed_time {
                last = json!(human_duration(now - t.0.as_second()));
            }
            count = series.count.unwrap_or(count);
        } else if count == 0 {
            count = 1;
        }
        let o = &e.involved_object;
        let kind = o.kind.clone().unwrap_or_default().to_lowercase();
        let target = match o.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => format!("{kind}/{n}"),
            None => kind,
        };
        let component = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        let host = e
            .source
            .as_ref()
            .and_then(|s| s.host.clone())
            .filter(|h| !h.is_empty())
            .or_else(|| e.reporting_instance.clone())
            .unwrap_or_default();
        let source = match (component.is_empty(), host.is_empty()) {
            (true, _) => "<unknown>".to_string(),
            (false, true) => component,
            (false, false) => format!("{component}, {host}"),
        };
        vec![
            last,
            json!(e.type_.clone().unwrap_or_default()),
            json!(e.reason.clone().unwrap_or_default()),
            json!(target),
            json!(o.field_path.clone().unwrap_or_default()),
            json!(source),
            json!(e.message.clone().unwrap_or_default().trim()),
            first,
            json!(count),
            json!(e.metadata.name.clone().unwrap_or_default()),
        ]
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}

//! Pods: defaults (SetDefaults_Pod plus the defaulting admission plugins), validation, the
//! immutability of the spec, graceful deletion, binding, and the STATUS column kubectl shows.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{
    Binding, Container, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::error::{ApiError, ApiResult, FieldError, FieldErrors};
use crate::registry::quantity::parse_milli;
use crate::registry::table::{age, Column};
use crate::registry::validation::{self, push_all, NameRule};
use crate::registry::{now, time_secs, Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(
    &kinds::POD,
    &[
        "status",
        "binding",
        "log",
        "exec",
        "attach",
        "portforward",
        "ephemeralcontainers",
    ],
    NameRule::Subdomain,
);

/// The tag or digest decides the pull policy: `:latest` or no tag means Always.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy = Some(default_pull_policy(c.image.as_deref().unwrap_or("")).into());
    }
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
    let resources = c.resources.get_or_insert_with(Default::default);
    // Limits without requests mean requests equal to the limits.
    if let Some(limits) = resources.limits.clone() {
        let requests = resources.requests.get_or_insert_with(BTreeMap::new);
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            f.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(p);
    }
}

/// SetDefaults_Probe and SetDefaults_HTTPGetAction: what kubectl describe then shows as
/// `timeout=1s period=10s #success=1 #failure=3`.
fn default_probe(p: &mut k8s_openapi::api::core::v1::Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(h) = p.http_get.as_mut() {
        h.path.get_or_insert_with(|| "/".into());
        h.scheme.get_or_insert_with(|| "HTTP".into());
    }
}

/// An ephemeral container read as a container (their common fields are the same).
pub fn as_container(ec: &k8s_openapi::api::core::v1::EphemeralContainer) -> Container {
    let mut v = serde_json::to_value(ec).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("targetContainerName");
    }
    serde_json::from_value(v).unwrap_or_default()
}

/// SetDefaults_PodSpec: what every pod spec, including templates, gets.
pub fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.security_context.get_or_insert_with(Default::default);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
            c.image_pull_policy =
                Some(default_pull_policy(c.image.as_deref().unwrap_or("")).into());
        }
        c.termination_message_path
            .get_or_insert_with(|| "/dev/termination-log".into());
        c.termination_message_policy
            .get_or_insert_with(|| "File".into());
    }
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(s) = v.secret.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(s) = v.config_map.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(s) = v.projected.as_mut() {
            s.default_mode.get_or_insert(0o644);
        }
        if let Some(h) = v.host_path.as_mut() {
            h.type_.get_or_insert_with(String::new);
        }
    }
}

pub fn default_template(t: &mut PodTemplateSpec) {
    if let Some(spec) = t.spec.as_mut() {
        default_pod_spec(spec);
    }
}

fn toleration(key: &str, seconds: i64) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(seconds),
        ..Default::default()
    }
}

/// Which list a container is in: ValidatePodSpec's rules differ for each.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ContainerList {
    Init,
    App,
}

/// A lifecycle handler: exactly one action; a sleep within the grace period.
fn lifecycle_handler(
    h: &k8s_openapi::api::core::v1::LifecycleHandler,
    path: &str,
    grace: Option<i64>,
    errs: &mut FieldErrors,
) {
    let count = [
        h.exec.is_some(),
        h.http_get.is_some(),
        h.tcp_socket.is_some(),
        h.sleep.is_some(),
    ]
    .into_iter()
    .filter(|b| *b)
    .count();
    match count {
        0 => errs.push(FieldError::required(path, "must specify a handler type")),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 handler type",
        )),
    }
    if let (Some(s), Some(g)) = (&h.sleep, grace) {
        if s.seconds <= 0 || s.seconds > g {
            errs.push(FieldError::invalid(
                format!("{path}.sleep"),
                s.seconds,
                format!("must be greater than 0 and less than terminationGracePeriodSeconds ({g}). Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep."),
            ));
        }
    }
    if let Some(e) = &h.exec {
        if e.command.as_ref().is_none_or(|c| c.is_empty()) {
            errs.push(FieldError::required(format!("{path}.exec.command"), ""));
        }
    }
}

/// Restart policy, lifecycle and probes: what only sidecars (init containers with
/// `restartPolicy: Always`) and app containers may have.
fn container_kind_errors(
    c: &Container,
    path: &str,
    list: ContainerList,
    grace: Option<i64>,
    errs: &mut FieldErrors,
) {
    let sidecar = list == ContainerList::Init && c.restart_policy.is_some();
    match (list, c.restart_policy.as_deref()) {
        (ContainerList::App, Some(_)) => errs.push(FieldError::forbidden(
            format!("{path}.restartPolicy"),
            "may not be set for non-init containers",
        )),
        (ContainerList::Init, Some(p)) if p != "Always" => errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            p,
            &["Always"],
        )),
        _ => {}
    }
    if list == ContainerList::Init && !sidecar {
        let set = [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ];
        for (field, _) in set.iter().filter(|(_, on)| *on) {
            errs.push(FieldError::forbidden(
                format!("{path}.{field}"),
                "may not be set for init containers without restartPolicy=Always",
            ));
        }
        return;
    }
    if let Some(l) = &c.lifecycle {
        if let Some(h) = &l.post_start {
            lifecycle_handler(h, &format!("{path}.lifecycle.postStart"), grace, errs);
        }
        if let Some(h) = &l.pre_stop {
            lifecycle_handler(h, &format!("{path}.lifecycle.preStop"), grace, errs);
        }
    }
}

fn container_errors(
    c: &Container,
    path: &str,
    names: &mut BTreeSet<String>,
    volumes: &BTreeSet<String>,
    errs: &mut FieldErrors,
) {
    validation::unique_label(errs, &format!("{path}.name"), &c.name, names);
    match c.image.as_deref() {
        None | Some("") => errs.push(FieldError::required(format!("{path}.image"), "")),
        Some(i) if i.trim() != i => errs.push(FieldError::invalid(
            format!("{path}.image"),
            i,
            "must not have leading or trailing whitespace",
        )),
        _ => {}
    }
    if let Some(p) = c.image_pull_policy.as_deref() {
        if !["Always", "IfNotPresent", "Never"].contains(&p) {
            errs.push(FieldError::not_supported(
                format!("{path}.imagePullPolicy"),
                p,
                &["Always", "IfNotPresent", "Never"],
            ));
        }
    }
    if let Some(p) = c.termination_message_policy.as_deref() {
        if !["File", "FallbackToLogsOnError"].contains(&p) {
            errs.push(FieldError::not_supported(
                format!("{path}.terminationMessagePolicy"),
                p,
                &["File", "FallbackToLogsOnError"],
            ));
        }
    }
    let mut port_names = BTreeSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            push_all(errs, &format!("{pp}.name"), n, validation::port_name(n));
            if !port_names.insert(n.to_string()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), n));
            }
        }
        if p.container_port == 0 {
            errs.push(FieldError::required(format!("{pp}.containerPort"), ""));
        } else {
            validation::port_number(&format!("{pp}.containerPort"), p.container_port, errs);
        }
        if let Some(h) = p.host_port.filter(|h| *h != 0) {
            validation::port_number(&format!("{pp}.hostPort"), h, errs);
        }
        if let Some(proto) = p.protocol.as_deref() {
            if !["TCP", "UDP", "SCTP"].contains(&proto) {
                errs.push(FieldError::not_supported(
                    format!("{pp}.protocol"),
                    proto,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        let ep = format!("{path}.env[{i}]");
        if e.name.is_empty() {
            errs.push(FieldError::required(format!("{ep}.name"), ""));
        } else {
            push_all(
                errs,
                &format!("{ep}.name"),
                &e.name,
                validation::env_var_name(&e.name),
            );
        }
        if let Some(r) = e
            .value_from
            .as_ref()
            .and_then(|f| f.resource_field_ref.as_ref())
        {
            resource_field_selector(r, &format!("{ep}.valueFrom.resourceFieldRef"), false, errs);
        }
        if e.value.as_deref().is_some_and(|v| !v.is_empty()) && e.value_from.is_some() {
            errs.push(FieldError::invalid(
                format!("{ep}.valueFrom"),
                "",
                "may not be specified when `value` is not empty",
            ));
        }
    }
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(format!("{mp}.name"), m.name.clone()));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        }
    }
    if let Some(r) = &c.resources {
        let rp = format!("{path}.resources");
        let parse = |field: String, q: &Quantity, errs: &mut FieldErrors| -> Option<i128> {
            match parse_milli(&q.0) {
                Ok(v) if v < 0 => {
                    errs.push(FieldError::invalid(
                        field,
                        q.0.clone(),
                        "must be greater than or equal to 0",
                    ));
                    None
                }
                Ok(v) => Some(v),
                Err(e) => {
                    errs.push(FieldError::invalid(field, q.0.clone(), e));
                    None
                }
            }
        };
        let mut limits = BTreeMap::new();
        for (k, q) in r.limits.iter().flatten() {
            if let Some(v) = parse(format!("{rp}.limits[{k}]"), q, errs) {
                limits.insert(k.clone(), v);
            }
        }
        for (k, q) in r.requests.iter().flatten() {
            if let Some(v) = parse(format!("{rp}.requests[{k}]"), q, errs) {
                if limits.get(k).is_some_and(|l| v > *l) {
                    errs.push(FieldError::invalid(
                        format!("{rp}.requests"),
                        q.0.clone(),
                        format!(
                            "must be less than or equal to {k} limit of {}",
                            r.limits
                                .as_ref()
                                .and_then(|l| l.get(k))
                                .map(|q| q.0.as_str())
                                .unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    }
}

/// kube-apiserver's warnings about a pod spec that is valid but surely not what was meant
/// (pkg/api/pod/warnings.go), so far the one the kubelet would otherwise round silently:
/// memory and ephemeral storage in fractional bytes (`500m` of memory is half a byte).
pub fn warn_pod_spec(spec: &PodSpec, path: &str) {
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("{path}.initContainers[{i}]"), c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("{path}.containers[{i}]"), c)),
        );
    for (p, c) in containers {
        let Some(r) = &c.resources else { continue };
        for (which, list) in [("limits", &r.limits), ("requests", &r.requests)] {
            for res in ["memory", "ephemeral-storage"] {
                let Some(q) = list.as_ref().and_then(|l| l.get(res)) else {
                    continue;
                };
                let Ok(q) = tinykube_machinery::Quantity::parse(&q.0) else {
                    continue; // validation says why
                };
                if q.milli_value() % 1000 != 0 {
                    crate::warnings::add(format!(
                        "{p}.resources.{which}[{res}]: fractional byte value \"{q}\" is invalid, must be an integer"
                    ));
                }
            }
        }
    }
}

/// A `resourceFieldRef` of an env var (`in_volume` false) or a downwardAPI file, as
/// Kubernetes' validateContainerResourceFieldSelector checks it.
fn resource_field_selector(
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
    path: &str,
    in_volume: bool,
    errs: &mut FieldErrors,
) {
    const RESOURCES: &[&str] = &[
        "limits.cpu",
        "limits.ephemeral-storage",
        "limits.memory",
        "requests.cpu",
        "requests.ephemeral-storage",
        "requests.memory",
    ];
    if in_volume && r.container_name.as_deref().is_none_or(str::is_empty) {
        errs.push(FieldError::required(format!("{path}.containerName"), ""));
    }
    let hugepages = r.resource.starts_with("limits.hugepages-")
        || r.resource.starts_with("requests.hugepages-");
    if r.resource.is_empty() {
        errs.push(FieldError::required(format!("{path}.resource"), ""));
        return;
    } else if !RESOURCES.contains(&r.resource.as_str()) && !hugepages {
        errs.push(FieldError::not_supported(
            format!("{path}.resource"),
            r.resource.clone(),
            RESOURCES,
        ));
        return;
    }
    let Some(divisor) = &r.divisor else { return };
    let Ok(milli) = parse_milli(&divisor.0) else {
        return;
    };
    let one = |unit: &str| parse_milli(unit).ok() == Some(milli);
    if r.resource.ends_with(".cpu") {
        if !["1m", "1"].iter().any(|u| one(u)) {
            errs.push(FieldError::invalid(
                format!("{path}.divisor"),
                divisor.0.clone(),
                "only divisor's values 1m and 1 are supported with the cpu resource",
            ));
        }
    } else {
        const UNITS: &[&str] = &[
            "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
        ];
        if !UNITS.iter().any(|u| one(u)) {
            let what = r.resource.split_once('.').map_or("", |(_, w)| w);
            errs.push(FieldError::invalid(
                format!("{path}.divisor"),
                divisor.0.clone(),
                format!("only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the {what} resource"),
            ));
        }
    }
}

/// The file modes of a configMap, secret, downwardAPI or projected volume: 0 to 0777, as
/// Kubernetes allows (no setuid, setgid or sticky bits).
fn file_modes(v: &k8s_openapi::api::core::v1::Volume, vp: &str, errs: &mut FieldErrors) {
    let mut check = |field: String, mode: Option<i32>| {
        if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
            errs.push(FieldError::invalid(
                field,
                m,
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
    };
    let items = |check: &mut dyn FnMut(String, Option<i32>),
                 at: &str,
                 items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>| {
        for (j, i) in items.into_iter().flatten().enumerate() {
            check(format!("{at}.items[{j}].mode"), i.mode);
        }
    };
    if let Some(s) = &v.config_map {
        check(format!("{vp}.configMap.defaultMode"), s.default_mode);
        items(&mut check, &format!("{vp}.configMap"), s.items.as_ref());
    }
    if let Some(s) = &v.secret {
        check(format!("{vp}.secret.defaultMode"), s.default_mode);
        items(&mut check, &format!("{vp}.secret"), s.items.as_ref());
    }
    if let Some(d) = &v.downward_api {
        check(format!("{vp}.downwardAPI.defaultMode"), d.default_mode);
        for (j, i) in d.items.iter().flatten().enumerate() {
            check(format!("{vp}.downwardAPI.items[{j}].mode"), i.mode);
        }
    }
    if let Some(p) = &v.projected {
        check(format!("{vp}.projected.defaultMode"), p.default_mode);
        for (k, s) in p.sources.iter().flatten().enumerate() {
            let at = format!("{vp}.projected.sources[{k}]");
            if let Some(c) = &s.config_map {
                items(&mut check, &format!("{at}.configMap"), c.items.as_ref());
            }
            if let Some(c) = &s.secret {
                items(&mut check, &format!("{at}.secret"), c.items.as_ref());
            }
            if let Some(d) = &s.downward_api {
                for (j, i) in d.items.iter().flatten().enumerate() {
                    check(format!("{at}.downwardAPI.items[{j}].mode"), i.mode);
                }
            }
        }
    }
}

/// ValidatePodSpec, for pods and pod templates. `restart_policies` are the allowed ones.
pub fn validate_pod_spec(
    spec: &PodSpec,
    path: &str,
    restart_policies: &[&str],
    errs: &mut FieldErrors,
) {
    warn_pod_spec(spec, path);
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        validation::unique_label(errs, &format!("{vp}.name"), &v.name, &mut volumes);
        let sources = serde_json::to_value(v)
            .ok()
            .and_then(|v| {
                v.as_object()
                    .map(|m| m.keys().filter(|k| *k != "name").count())
            })
            .unwrap_or(0);
        file_modes(v, &vp, errs);
        let downward = v
            .downward_api
            .iter()
            .map(|d| (format!("{vp}.downwardAPI"), d.items.as_ref()));
        let projected = v.projected.iter().flat_map(|p| {
            p.sources.iter().flatten().enumerate().filter_map(|(k, s)| {
                let at = format!("{vp}.projected.sources[{k}].downwardAPI");
                s.downward_api.as_ref().map(|d| (at, d.items.as_ref()))
            })
        });
        for (at, items) in downward.chain(projected) {
            for (j, i) in items.into_iter().flatten().enumerate() {
                if let Some(r) = &i.resource_field_ref {
                    let at = format!("{at}.items[{j}].resourceFieldRef");
                    resource_field_selector(r, &at, true, errs);
                }
            }
        }
        if sources == 0 {
            errs.push(FieldError::required(vp, "must specify a volume type"));
        } else if sources > 1 {
            errs.push(FieldError::forbidden(
                vp,
                "may not specify more than 1 volume type",
            ));
        }
    }
    let mut names = BTreeSet::new();
    if spec.containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let grace = spec.termination_grace_period_seconds;
    for (i, c) in spec.containers.iter().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        container_errors(c, &cp, &mut names, &volumes, errs);
        container_kind_errors(c, &cp, ContainerList::App, grace, errs);
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let cp = format!("{path}.initContainers[{i}]");
        container_errors(c, &cp, &mut names, &volumes, errs);
        container_kind_errors(c, &cp, ContainerList::Init, grace, errs);
    }
    for (i, ec) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let ep = format!("{path}.ephemeralContainers[{i}]");
        let c = as_container(ec);
        container_errors(&c, &ep, &mut names, &volumes, errs);
        let has_resources = c.resources.as_ref().is_some_and(|r| {
            r.limits.as_ref().is_some_and(|l| !l.is_empty())
                || r.requests.as_ref().is_some_and(|l| !l.is_empty())
        });
        let forbidden = [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
            ("ports", c.ports.as_ref().is_some_and(|p| !p.is_empty())),
            ("resources", has_resources),
            ("restartPolicy", c.restart_policy.is_some()),
        ];
        for (field, _) in forbidden.iter().filter(|(_, set)| *set) {
            errs.push(FieldError::forbidden(
                format!("{ep}.{field}"),
                "cannot be set for an Ephemeral Container",
            ));
        }
        if let Some(t) = ec
            .target_container_name
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            let known = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .any(|c| c.name == t);
            if !known {
                errs.push(FieldError::not_found(
                    format!("{ep}.targetContainerName"),
                    t,
                ));
            }
        }
    }
    if let Some(p) = spec.restart_policy.as_deref() {
        if !restart_policies.contains(&p) {
            errs.push(FieldError::not_supported(
                format!("{path}.restartPolicy"),
                p,
                restart_policies,
            ));
        }
    }
    if let Some(p) = spec.dns_policy.as_deref() {
        let valid = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
        if !valid.contains(&p) {
            errs.push(FieldError::not_supported(
                format!("{path}.dnsPolicy"),
                p,
                &valid,
            ));
        }
    }
    if let Some(g) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
        errs.push(FieldError::invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(a) = spec.active_deadline_seconds.filter(|a| *a <= 0) {
        errs.push(FieldError::invalid(
            format!("{path}.activeDeadlineSeconds"),
            a,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    validation::labels(
        &format!("{path}.nodeSelector"),
        spec.node_selector.as_ref(),
        errs,
    );
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let tp = format!("{path}.tolerations[{i}]");
        let op = t.operator.as_deref().unwrap_or("Equal");
        if !["Equal", "Exists"].contains(&op) {
            errs.push(FieldError::not_supported(
                format!("{tp}.operator"),
                op,
                &["Equal", "Exists"],
            ));
        }
        if op == "Exists" && t.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.push(FieldError::invalid(
                format!("{tp}.operator"),
                op,
                "value must be empty when `operator` is 'Exists'",
            ));
        }
        if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty()) {
            push_all(errs, &format!("{tp}.key"), k, validation::qualified_name(k));
        } else if op != "Exists" {
            errs.push(FieldError::invalid(
                format!("{tp}.operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
            let valid = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
            if !valid.contains(&e) {
                errs.push(FieldError::not_supported(format!("{tp}.effect"), e, &valid));
            }
        }
    }
    for (field, v) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            push_all(
                errs,
                &format!("{path}.{field}"),
                v,
                validation::dns1123_label(v),
            );
        }
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        push_all(
            errs,
            &format!("{path}.serviceAccountName"),
            sa,
            validation::dns1123_subdomain(sa),
        );
    }
    if let Some(n) = spec.node_name.as_deref().filter(|s| !s.is_empty()) {
        push_all(
            errs,
            &format!("{path}.nodeName"),
            n,
            validation::dns1123_subdomain(n),
        );
    }
}

/// Pod templates of workloads: metadata labels plus a spec whose pods restart `Always`.
pub fn validate_template(t: &PodTemplateSpec, path: &str, errs: &mut FieldErrors) {
    validate_template_with(t, path, &["Always"], errs)
}

/// A pod template whose pods may restart only as `restart_policies` allow (Jobs: OnFailure,
/// Never).
pub fn validate_template_with(
    t: &PodTemplateSpec,
    path: &str,
    restart_policies: &[&str],
    errs: &mut FieldErrors,
) {
    if let Some(meta) = &t.metadata {
        validation::labels(
            &format!("{path}.metadata.labels"),
            meta.labels.as_ref(),
            errs,
        );
        validation::annotations(
            &format!("{path}.metadata.annotations"),
            meta.annotations.as_ref(),
            errs,
        );
    }
    match &t.spec {
        Some(spec) => validate_pod_spec(spec, &format!("{path}.spec"), restart_policies, errs),
        None => errs.push(FieldError::required(format!("{path}.spec"), "")),
    }
}

/// Guaranteed when every container limits cpu and memory at its requests; BestEffort when no
/// container asks for anything.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let r = c.resources.clone().unwrap_or_default();
        let requests = r.requests.unwrap_or_default();
        let limits = r.limits.unwrap_or_default();
        let relevant = |m: &BTreeMap<String, Quantity>| {
            m.iter()
                .filter(|(k, q)| {
                    (*k == "cpu" || *k == "memory") && parse_milli(&q.0).is_ok_and(|v| v != 0)
                })
                .count()
        };
        if relevant(&requests) > 0 || relevant(&limits) > 0 {
            any = true;
        }
        for res in ["cpu", "memory"] {
            match (requests.get(res), limits.get(res)) {
                (_, None) => guaranteed = false,
                (Some(rq), Some(l)) if parse_milli(&rq.0).ok() != parse_milli(&l.0).ok() => {
                    guaranteed = false
                }
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

const MUTABLE_SPEC: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub struct PodKind {
    /// tolerationSeconds for the not-ready and unreachable NoExecute taints when a pod sets none
    /// (Kubernetes' DefaultTolerationSeconds admission plugin).
    pub not_ready_toleration_seconds: i64,
    pub unreachable_toleration_seconds: i64,
    /// `namespace/name` of the service accounts with `automountServiceAccountToken: false`,
    /// kept by an informer (controllers/mod.rs) for the ServiceAccount admission.
    pub no_automount: Arc<RwLock<HashSet<String>>>,
}

impl Default for PodKind {
    fn default() -> Self {
        PodKind {
            not_ready_toleration_seconds: 300,
            unreachable_toleration_seconds: 300,
            no_automount: Default::default(),
        }
    }
}

impl Kind for PodKind {
    type Obj = Pod;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn prepare_for_create(&self, pod: &mut Pod) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let spec = pod.spec.get_or_insert_with(Default::default);
        let sa = spec
            .service_account_name
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| spec.service_account.clone().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "default".into());
        let opts_out = self
            .no_automount
            .read()
            .unwrap()
            .contains(&format!("{ns}/{sa}"));
        crate::auth::serviceaccount::inject_api_access(spec, opts_out);
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    /// The ServiceAccount admission plugin: a pod's service account must exist (the
    /// `default` one is waited for a little, as its controller makes it with the namespace).
    fn must_exist(&self, pod: &Pod) -> Option<crate::registry::MustExist> {
        let mirror = pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
        if mirror {
            return None;
        }
        let ns = pod.metadata.namespace.clone()?;
        let sa = pod.spec.as_ref()?.service_account_name.clone()?;
        Some(crate::registry::MustExist {
            info: &super::serviceaccount::INFO,
            attempts: if sa == "default" { 10 } else { 1 },
            why: format!(
                "error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
            ),
            namespace: ns,
            name: sa,
        })
    }

    fn apply_defaults(&self, pod: &mut Pod) {
        let spec = pod.spec.get_or_insert_with(Default::default);
        default_pod_spec(spec);
        spec.enable_service_links.get_or_insert(true);
        if spec
            .service_account_name
            .as_deref()
            .is_none_or(str::is_empty)
        {
            spec.service_account_name = Some(
                spec.service_account
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "default".into()),
            );
        }
        spec.service_account = spec.service_account_name.clone();
        spec.priority.get_or_insert(0);
        spec.preemption_policy
            .get_or_insert_with(|| "PreemptLowerPriority".into());
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        for (key, seconds) in [
            (
                "node.kubernetes.io/not-ready",
                self.not_ready_toleration_seconds,
            ),
            (
                "node.kubernetes.io/unreachable",
                self.unreachable_toleration_seconds,
            ),
        ] {
            if !tolerations.iter().any(|t| {
                t.key.as_deref() == Some(key)
                    && t.effect
                        .as_deref()
                        .is_none_or(|e| e == "NoExecute" || e.is_empty())
            }) {
                tolerations.push(toleration(key, seconds));
            }
        }
        let qos = qos_class(spec);
        let status = pod.status.get_or_insert_with(Default::default);
        if status.qos_class.is_none() {
            status.qos_class = Some(qos.into());
        }
    }

    fn validate(&self, pod: &Pod) -> FieldErrors {
        let mut errs = Vec::new();
        match &pod.spec {
            Some(spec) => {
                validate_pod_spec(spec, "spec", &["Always", "OnFailure", "Never"], &mut errs)
            }
            None => errs.push(FieldError::required("spec", "")),
        }
        errs
    }

    fn prepare_for_update(&self, new: &mut Pod, old: &Pod) {
        new.status = old.status.clone();
    }

    fn validate_update(&self, new: &Pod, old: &Pod) -> FieldErrors {
        let mut errs = self.validate(new);
        let (Some(ns), Some(os)) = (&new.spec, &old.spec) else {
            return errs;
        };
        // Everything but the mutable fields must be as it was.
        let mut probe = ns.clone();
        for (c, o) in probe.containers.iter_mut().zip(&os.containers) {
            c.image = o.image.clone();
        }
        for (c, o) in probe
            .init_containers
            .iter_mut()
            .flatten()
            .zip(os.init_containers.iter().flatten())
        {
            c.image = o.image.clone();
        }
        probe.active_deadline_seconds = os.active_deadline_seconds;
        let old_tolerations = os.tolerations.clone().unwrap_or_default();
        let kept = old_tolerations
            .iter()
            .all(|t| ns.tolerations.iter().flatten().any(|n| n == t));
        if kept {
            probe.tolerations = os.tolerations.clone();
        }
        if os.termination_grace_period_seconds.is_some_and(|g| g < 0) {
            probe.termination_grace_period_seconds = os.termination_grace_period_seconds;
        }
        if probe != *os {
            errs.push(FieldError::forbidden("spec", MUTABLE_SPEC));
        }
        errs
    }

    fn prepare_for_status_update(&self, new: &mut Pod, old: &Pod) {
        new.spec = old.spec.clone();
    }

    /// dropNonEphemeralContainerUpdates: the old pod with the new ephemeral containers.
    fn prepare_for_ephemeral_update(&self, new: &mut Pod, old: &Pod) {
        let ephemeral = new
            .spec
            .as_mut()
            .and_then(|s| s.ephemeral_containers.take());
        let meta = new.metadata.clone();
        *new = old.clone();
        new.metadata = meta;
        if let Some(s) = new.spec.as_mut() {
            s.ephemeral_containers = ephemeral;
        }
    }

    /// ValidatePodEphemeralContainersUpdate: the pod as a whole, and ephemeral containers
    /// are only ever added.
    fn validate_ephemeral_update(&self, new: &Pod, old: &Pod) -> FieldErrors {
        let mut errs = self.validate(new);
        let list = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.ephemeral_containers.clone())
                .unwrap_or_default()
        };
        let (now, before) = (list(new), list(old));
        for o in &before {
            match now.iter().find(|n| n.name == o.name) {
                None => errs.push(FieldError::forbidden(
                    "spec.ephemeralContainers",
                    format!(
                        "existing ephemeral containers {:?} may not be removed\n",
                        o.name
                    ),
                )),
                Some(n) if n != o => errs.push(FieldError::forbidden(
                    "spec.ephemeralContainers",
                    format!(
                        "existing ephemeral containers {:?} may not be changed\n",
                        o.name
                    ),
                )),
                Some(_) => {}
            }
        }
        errs
    }

    fn validate_status_update(&self, new: &Pod, _old: &Pod) -> FieldErrors {
        let mut errs = Vec::new();
        if let Some(phase) = new.status.as_ref().and_then(|s| s.phase.as_deref()) {
            let valid = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
            if !valid.contains(&phase) {
                errs.push(FieldError::not_supported("status.phase", phase, &valid));
            }
        }
        for (i, ip) in new
            .status
            .iter()
            .flat_map(|s| s.pod_ips.iter().flatten())
            .enumerate()
        {
            push_all(
                &mut errs,
                &format!("status.podIPs[{i}].ip"),
                &ip.ip,
                validation::ip_address(&ip.ip),
            );
        }
        errs
    }

    fn field(&self, pod: &Pod, field: &str) -> Option<String> {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let s = |v: Option<&String>| Some(v.cloned().unwrap_or_default());
        match field {
            "spec.nodeName" => s(spec.and_then(|s| s.node_name.as_ref())),
            "spec.restartPolicy" => s(spec.and_then(|s| s.restart_policy.as_ref())),
            "spec.schedulerName" => s(spec.and_then(|s| s.scheduler_name.as_ref())),
            "spec.serviceAccountName" => s(spec.and_then(|s| s.service_account_name.as_ref())),
            "spec.hostNetwork" => Some(
                spec.and_then(|s| s.host_network)
                    .unwrap_or(false)
                    .to_string(),
            ),
            "status.phase" => s(status.and_then(|s| s.phase.as_ref())),
            "status.podIP" => s(status.and_then(|s| s.pod_ip.as_ref())),
            "status.nominatedNodeName" => s(status.and_then(|s| s.nominated_node_name.as_ref())),
            _ => None,
        }
    }

    fn supports_field(&self, field: &str) -> bool {
        matches!(
            field,
            "metadata.name"
                | "metadata.namespace"
                | "spec.nodeName"
                | "spec.restartPolicy"
                | "spec.schedulerName"
                | "spec.serviceAccountName"
                | "spec.hostNetwork"
                | "status.phase"
                | "status.podIP"
                | "status.nominatedNodeName"
        )
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
            Column::new("Status", "string", "The aggregate status of the containers in this pod."),
            Column::new("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            Column::age(),
            Column::new("IP", "string", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.").wide(),
            Column::new("Node", "string", "NodeName is a request to schedule this pod onto a specific node. If it is non-empty, the scheduler simply schedules this pod onto that node, assuming that it fits resource requirements.").wide(),
            Column::new("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.").wide(),
            Column::new("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.").wide(),
        ]
    }

    fn row(&self, pod: &Pod, now: i64) -> Vec<Value> {
        pod_row(pod, now)
    }

    fn grace_period(&self, pod: &Pod, requested: Option<i64>) -> Option<i64> {
        let spec = pod.spec.as_ref();
        // Pods that never reached a node, or already finished, have nothing to stop.
        if spec
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty)
        {
            return None;
        }
        if matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            return None;
        }
        requested
            .or(pod.metadata.deletion_grace_period_seconds)
            .or(spec.and_then(|s| s.termination_grace_period_seconds))
            .or(Some(30))
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }

    fn apply_subresource(&self, sub: &str, pod: &mut Pod, body: &[u8]) -> ApiResult<()> {
        if sub != "binding" {
            return Err(ApiError::no_route());
        }
        let binding: Binding = crate::registry::resource::decode_body(
            &INFO,
            "Binding",
            "v1",
            body,
            crate::registry::FieldValidation::Ignore,
        )?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let target = INFO.target(&name);
        let node = binding.target.name.clone().unwrap_or_default();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                &target,
                &[FieldError::required("target.name", "")],
            ));
        }
        if binding
            .target
            .kind
            .as_deref()
            .is_some_and(|k| !k.is_empty() && k != "Node")
        {
            return Err(ApiError::invalid(
                "Binding",
                &target,
                &[FieldError::not_supported(
                    "target.kind",
                    binding.target.kind.clone().unwrap_or_default(),
                    &["Node", "<empty>"],
                )],
            ));
        }
        for (k, v) in binding.metadata.annotations.into_iter().flatten() {
            pod.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(k, v);
        }
        bind(pod, &node)
    }
}

/// Assigns a pod to a node (the binding subresource, and the scheduler): once, never while it is
/// being deleted, with the PodScheduled condition.
pub fn bind(pod: &mut Pod, node: &str) -> ApiResult<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let target = INFO.target(&name);
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(ApiError::conflict(
            &target,
            &format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    if let Some(current) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Err(ApiError::conflict(
            &target,
            &format!("pod {name} is already assigned to node {current:?}"),
        ));
    }
    spec.node_name = Some(node.to_string());
    let status = pod.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "PodScheduled");
    conditions.push(PodCondition {
        type_: "PodScheduled".into(),
        status: "True".into(),
        last_transition_time: Some(now()),
        ..Default::default()
    });
    Ok(())
}

/// When the container's previous run ended (what "restarted 5m ago" counts from).
fn last_finished(c: &k8s_openapi::api::core::v1::ContainerStatus) -> Option<i64> {
    c.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
        .map(time_secs)
}

/// The READY, STATUS and RESTARTS columns, following kubectl's printPod.
pub fn pod_row(pod: &Pod, now: i64) -> Vec<Value> {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| phase.clone());
    let conditions = status.conditions.clone().unwrap_or_default();
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".into();
    }
    let init_specs: BTreeMap<&str, &Container> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let restartable = |name: &str| {
        init_specs
            .get(name)
            .is_some_and(|c| c.restart_policy.as_deref() == Some("Always"))
    };
    let total = spec.containers.len()
        + init_specs
            .values()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .count();
    let mut ready = 0;
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut last_restart: Option<i64> = None;
    let mut sidecar_last_restart: Option<i64> = None;
    let mut initializing = false;
    let init_total = spec.init_containers.as_ref().map_or(0, Vec::len);
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += c.restart_count as i64;
        let finished = last_finished(c);
        last_restart = last_restart.max(finished);
        if restartable(&c.name) {
            sidecar_restarts += c.restart_count as i64;
            sidecar_last_restart = sidecar_last_restart.max(finished);
        }
        let state = c.state.clone().unwrap_or_default();
        match (&state.terminated, &state.waiting) {
            (Some(t), _) if t.exit_code == 0 => continue,
            _ if restartable(&c.name) && c.started == Some(true) => {
                if c.ready {
                    ready += 1;
                }
                continue;
            }
            (Some(t), _) => {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => format!("Init:{r}"),
                    None if t.signal.unwrap_or(0) != 0 => {
                        format!("Init:Signal:{}", t.signal.unwrap_or(0))
                    }
                    None => format!("Init:ExitCode:{}", t.exit_code),
                };
            }
            (None, Some(w))
                if w.reason
                    .as_deref()
                    .is_some_and(|r| !r.is_empty() && r != "PodInitializing") =>
            {
                reason = format!("Init:{}", w.reason.clone().unwrap_or_default());
            }
            _ => reason = format!("Init:{i}/{init_total}"),
        }
        initializing = true;
        break;
    }
    let initialized = conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            restarts += c.restart_count as i64;
            last_restart = last_restart.max(last_finished(c));
            let state = c.state.clone().unwrap_or_default();
            if let Some(r) = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
            {
                reason = r;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_string(),
                    None if t.signal.unwrap_or(0) != 0 => {
                        format!("Signal:{}", t.signal.unwrap_or(0))
                    }
                    None => format!("ExitCode:{}", t.exit_code),
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if !matches!(phase.as_str(), "Succeeded" | "Failed") {
            reason = "Terminating".into();
        }
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            crate::registry::table::human_duration(now - t)
        ),
        _ => restarts.to_string(),
    };
    let none = |v: Option<String>| {
        v.filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<none>".into())
    };
    let ip = status
        .pod_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|i| i.ip.clone());
    let gates = match spec.readiness_gates.as_deref() {
        None | Some([]) => "<none>".to_string(),
        Some(gates) => {
            let ok = gates
                .iter()
                .filter(|g| {
                    conditions
                        .iter()
                        .find(|c| c.type_ == g.condition_type)
                        .is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{ok}/{}", gates.len())
        }
    };
    vec![
        json!(pod.metadata.name.clone().unwrap_or_default()),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(pod.metadata.creation_timestamp.as_ref(), now),
        json!(none(ip)),
        json!(none(spec.node_name.clone())),
        json!(none(status.nominated_node_name.clone())),
        json!(gates),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus,
        ResourceRequirements,
    };

    fn pod(containers: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: containers
                    .iter()
                    .map(|(n, i)| Container {
                        name: n.to_string(),
                        image: Some(i.to_string()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("gcr.io/x/bootcamp:v1"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn defaults_like_kubernetes() {
        let mut p = pod(&[("c", "busybox")]);
        PodKind::default().prepare_for_create(&mut p);
        PodKind::default().apply_defaults(&mut p);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.service_account_name.as_deref(), Some("default"));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
        assert_eq!(spec.tolerations.as_ref().unwrap().len(), 2);
        let mut probed = pod(&[("c", "busybox")]);
        probed.spec.as_mut().unwrap().containers[0].readiness_probe =
            Some(k8s_openapi::api::core::v1::Probe {
                http_get: Some(k8s_openapi::api::core::v1::HTTPGetAction {
                    port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080),
                    ..Default::default()
                }),
                period_seconds: Some(5),
                ..Default::default()
            });
        PodKind::default().apply_defaults(&mut probed);
        let probe = probed.spec.unwrap().containers[0]
            .readiness_probe
            .clone()
            .unwrap();
        assert_eq!(
            (
                probe.timeout_seconds,
                probe.period_seconds,
                probe.success_threshold,
                probe.failure_threshold
            ),
            (Some(1), Some(5), Some(1), Some(3))
        );
        let get = probe.http_get.unwrap();
        assert_eq!(
            (get.path.as_deref(), get.scheme.as_deref()),
            (Some("/"), Some("HTTP"))
        );
        let status = p.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn validation_reports_each_field() {
        let mut p = pod(&[("c", ""), ("c", "x"), ("Bad_Name", "y")]);
        p.spec.as_mut().unwrap().restart_policy = Some("Sometimes".into());
        let errs = PodKind::default().validate(&p);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"spec.containers[0].image"), "{fields:?}");
        assert!(fields.contains(&"spec.containers[1].name"), "{fields:?}");
        assert!(fields.contains(&"spec.containers[2].name"), "{fields:?}");
        assert!(fields.contains(&"spec.restartPolicy"), "{fields:?}");
    }

    #[test]
    fn resource_field_refs_name_a_resource_and_a_divisor_kubernetes_knows() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox", "env": [
                    {"name": "OK", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                    {"name": "GPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}},
                    {"name": "DIV", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "2"}}}
                ]}],
                "volumes": [{"name": "v", "downwardAPI": {"items": [
                    {"path": "mem", "resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}
                ]}}]
            }
        }))
        .unwrap();
        let errs = PodKind::default().validate(&p);
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: Required value"), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("spec.containers[0].env[1].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\"")), "{lines:?}");
        assert!(lines.iter().any(|l| l == "spec.containers[0].env[2].valueFrom.resourceFieldRef.divisor: Invalid value: \"2\": only divisor's values 1m and 1 are supported with the cpu resource"), "{lines:?}");
    }

    #[test]
    fn only_sidecars_and_app_containers_have_lifecycles_and_probes() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 10,
                "initContainers": [
                    {"name": "side", "image": "i", "restartPolicy": "Always",
                     "readinessProbe": {"exec": {"command": ["true"]}},
                     "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}},
                    {"name": "setup", "image": "i", "livenessProbe": {"exec": {"command": ["true"]}},
                     "lifecycle": {"postStart": {"exec": {"command": ["true"]}}}},
                    {"name": "odd", "image": "i", "restartPolicy": "Never"}
                ],
                "containers": [
                    {"name": "app", "image": "i", "restartPolicy": "Always",
                     "lifecycle": {"postStart": {}, "preStop": {"sleep": {"seconds": 11}}}}
                ]
            }
        }))
        .unwrap();
        let errs = PodKind::default().validate(&p);
        let got: Vec<(String, String)> = errs
            .iter()
            .map(|e| (e.field.clone(), e.detail.clone()))
            .collect();
        let want = [
            ("spec.containers[0].restartPolicy", "may not be set for non-init containers"),
            ("spec.containers[0].lifecycle.postStart", "must specify a handler type"),
            ("spec.containers[0].lifecycle.preStop.sleep", "must be greater than 0 and less than terminationGracePeriodSeconds (10). Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep."),
            ("spec.initContainers[1].lifecycle", "may not be set for init containers without restartPolicy=Always"),
            ("spec.initContainers[1].livenessProbe", "may not be set for init containers without restartPolicy=Always"),
        ];
        for (field, detail) in want {
            assert!(
                got.contains(&(field.to_string(), detail.to_string())),
                "{field}: {detail} in {got:?}"
            );
        }
        assert!(
            got.iter()
                .any(|(f, _)| f == "spec.initContainers[2].restartPolicy"),
            "{got:?}"
        );
        // The sidecar's probe and hook are fine.
        assert!(
            !got.iter()
                .any(|(f, _)| f.starts_with("spec.initContainers[0]")),
            "{got:?}"
        );
        assert_eq!(got.len(), 6, "{got:?}");
    }

    #[test]
    fn ephemeral_containers_are_only_added_and_limited() {
        let pod = |eph: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "namespace": "default"},
                "spec": {"containers": [{"name": "app", "image": "i"}], "ephemeralContainers": eph}
            }))
            .unwrap()
        };
        let old = pod(serde_json::json!([{"name": "dbg", "image": "busybox"}]));
        let kind = PodKind::default();
        // Another one may be added; the old one may not change or go.
        let mut added = pod(serde_json::json!([
            {"name": "dbg", "image": "busybox"},
            {"name": "dbg2", "image": "busybox", "targetContainerName": "app"}
        ]));
        added.spec.as_mut().unwrap().containers[0].image = Some("other".into());
        kind.prepare_for_ephemeral_update(&mut added, &old);
        assert_eq!(
            added.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("i")
        );
        assert!(kind.validate_ephemeral_update(&added, &old).is_empty());
        let removed = pod(serde_json::json!([]));
        let errs = kind.validate_ephemeral_update(&removed, &old);
        assert_eq!(
            errs[0].detail,
            "existing ephemeral containers \"dbg\" may not be removed\n"
        );
        let changed = pod(serde_json::json!([{"name": "dbg", "image": "alpine"}]));
        let errs = kind.validate_ephemeral_update(&changed, &old);
        assert_eq!(
            errs[0].detail,
            "existing ephemeral containers \"dbg\" may not be changed\n"
        );
        let bad = pod(serde_json::json!([
            {"name": "app", "image": "busybox", "ports": [{"containerPort": 80}], "targetContainerName": "nope"}
        ]));
        let fields: Vec<String> = kind
            .validate(&bad)
            .iter()
            .map(|e| e.field.clone())
            .collect();
        for f in [
            "spec.ephemeralContainers[0].name",
            "spec.ephemeralContainers[0].ports",
            "spec.ephemeralContainers[0].targetContainerName",
        ] {
            assert!(fields.contains(&f.to_string()), "{f} in {fields:?}");
        }
    }

    #[test]
    fn the_api_is_mounted_unless_the_pod_or_its_account_says_no_and_modes_stay_plain() {
        let api_access = |p: &Pod| {
            p.spec.as_ref().unwrap().containers[0]
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == crate::auth::serviceaccount::MOUNT_PATH)
        };
        let kind = PodKind::default();
        let mut p = pod(&[("c", "busybox")]);
        kind.prepare_for_create(&mut p);
        assert!(api_access(&p));
        let v = &p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        assert!(v.name.starts_with("kube-api-access-") && v.projected.is_some());
        kind.no_automount
            .write()
            .unwrap()
            .insert("default/default".into());
        let mut quiet = pod(&[("c", "busybox")]);
        kind.prepare_for_create(&mut quiet);
        assert!(!api_access(&quiet), "the service account opts out");
        let mut insists = pod(&[("c", "busybox")]);
        insists
            .spec
            .as_mut()
            .unwrap()
            .automount_service_account_token = Some(true);
        kind.prepare_for_create(&mut insists);
        assert!(api_access(&insists), "the pod's own word wins");

        let mut setuid = pod(&[("c", "busybox")]);
        setuid.spec.as_mut().unwrap().volumes = Some(vec![serde_json::from_value(
            json!({"name": "v", "configMap": {"name": "cm", "defaultMode": 0o4755,
                   "items": [{"key": "k", "path": "p", "mode": -1}]}}),
        )
        .unwrap()]);
        let errs = kind.validate(&setuid);
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(msgs.contains(&"spec.volumes[0].configMap.defaultMode: Invalid value: 2541: must be a number between 0 and 0777 (octal), both inclusive".to_string()), "{msgs:?}");
        assert!(
            msgs.iter().any(
                |m| m.starts_with("spec.volumes[0].configMap.items[0].mode: Invalid value: -1")
            ),
            "{msgs:?}"
        );
    }

    #[test]
    fn only_images_may_change() {
        let old = pod(&[("c", "a:1")]);
        let mut new = old.clone();
        new.spec.as_mut().unwrap().containers[0].image = Some("a:2".into());
        assert!(PodKind::default().validate_update(&new, &old).is_empty());
        new.spec.as_mut().unwrap().containers[0].command = Some(vec!["sh".into()]);
        let errs = PodKind::default().validate_update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
    }

    #[test]
    fn qos_classes() {
        let mut p = pod(&[("c", "x")]);
        assert_eq!(qos_class(p.spec.as_ref().unwrap()), "BestEffort");
        let q = |s: &str| Quantity(s.into());
        p.spec.as_mut().unwrap().containers[0].resources = Some(ResourceRequirements {
            limits: Some([("cpu".into(), q("1")), ("memory".into(), q("1Gi"))].into()),
            requests: Some([("cpu".into(), q("1000m")), ("memory".into(), q("1Gi"))].into()),
            ..Default::default()
        });
        assert_eq!(qos_class(p.spec.as_ref().unwrap()), "Guaranteed");
        p.spec.as_mut().unwrap().containers[0].resources = Some(ResourceRequirements {
            requests: Some([("cpu".into(), q("100m"))].into()),
            ..Default::default()
        });
        assert_eq!(qos_class(p.spec.as_ref().unwrap()), "Burstable");
    }

    #[test]
    fn status_column() {
        let now = 1_000_000;
        let mut p = pod(&[("a", "x"), ("b", "y")]);
        assert_eq!(pod_row(&p, now)[1], "0/2");
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            container_statuses: Some(vec![
                ContainerStatus {
                    name: "a".into(),
                    ready: true,
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning::default()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ContainerStatus {
                    name: "b".into(),
                    ready: false,
                    restart_count: 3,
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some("CrashLoopBackOff".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        let row = pod_row(&p, now);
        assert_eq!(row[1], "1/2");
        assert_eq!(row[2], "CrashLoopBackOff");
        assert_eq!(row[3], "3");
        p.metadata.deletion_timestamp = Some(now_time());
        assert_eq!(pod_row(&p, now)[2], "Terminating");
    }

    fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        crate::registry::now()
    }
}

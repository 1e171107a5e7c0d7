//! The kubelet as a CNI runtime (spec 1.0): it executes the plugins of a network
//! configuration list in order for ADD — each one given the previous one's result as
//! `prevResult` — and in reverse order for DEL, with the ADD's result and the exact
//! configuration it used, which are cached on disk so DEL works after a kubelet restart.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A network configuration list (`.conflist`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetworkConfigList {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub name: String,
    pub plugins: Vec<Value>,
}

/// One hostPort mapping (the `portMappings` capability).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// What the kubelet knows about the attachment it asks for.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub port_mappings: Vec<PortMapping>,
}

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI plugin {plugin} {command} failed: {message}")]
    Plugin {
        plugin: String,
        command: &'static str,
        message: String,
    },
    #[error("CNI: {0}")]
    Other(String),
}

/// The cached outcome of an ADD, for DEL.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    config: NetworkConfigList,
    result: Value,
    port_mappings: Vec<PortMapping>,
    pod_namespace: String,
    pod_name: String,
}

pub struct Cni {
    /// Directories holding plugin binaries (CNI_PATH).
    pub plugin_dirs: Vec<PathBuf>,
    /// Where ADD results are cached.
    pub cache_dir: PathBuf,
}

impl NetworkConfigList {
    /// The kubelet's default network: a bridge with host-local IPAM on `pod_cidr`, the node
    /// routing for the pods (masquerade is installed once for the CIDR, not per pod), and
    /// portmap for hostPorts (only run for pods that have some).
    pub fn default_bridge(pod_cidr: &str, bridge: &str, ipam_dir: &Path) -> Self {
        Self {
            cni_version: "1.0.0".into(),
            name: "tinykube".into(),
            plugins: vec![
                json!({
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": ipam_dir,
                    }
                }),
                json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}),
            ],
        }
    }

    /// The first `.conflist` (or single-plugin `.conf`/`.json`) in `dir`, by file name order, as
    /// the kubelet's CRI runtimes pick it.
    pub fn load_dir(dir: &Path) -> Result<Option<Self>, CniError> {
        let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
            Ok(d) => d.flatten().map(|e| e.path()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CniError::Other(format!("reading {}: {e}", dir.display()))),
        };
        files.sort();
        for f in files {
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "conflist" | "conf" | "json") {
                continue;
            }
            let bytes = fs::read(&f)
                .map_err(|e| CniError::Other(format!("reading {}: {e}", f.display())))?;
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| CniError::Other(format!("{}: invalid JSON: {e}", f.display())))?;
            return Ok(Some(if v.get("plugins").is_some() {
                serde_json::from_value(v)
                    .map_err(|e| CniError::Other(format!("{}: {e}", f.display())))?
            } else {
                // A single plugin's config: a list of one.
                Self {
                    cni_version: v["cniVersion"].as_str().unwrap_or("1.0.0").into(),
                    name: v["name"].as_str().unwrap_or("").into(),
                    plugins: vec![v],
                }
            }));
        }
        Ok(None)
    }
}

impl Cni {
    fn cache_file(&self, net: &str, att: &Attachment) -> PathBuf {
        self.cache_dir
            .join(format!("{net}-{}-{}.json", att.container_id, att.ifname))
    }

    fn find_plugin(&self, kind: &str) -> Result<PathBuf, CniError> {
        if kind.is_empty() || kind.contains('/') {
            return Err(CniError::Other(format!("invalid plugin type {kind:?}")));
        }
        self.plugin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                CniError::Other(format!(
                    "failed to find plugin {kind:?} in path {:?}",
                    self.plugin_dirs
                ))
            })
    }

    /// Whether a plugin runs for this attachment: capability-only plugins (portmap) run only
    /// when there is something for them to do.
    fn wanted(plugin: &Value, att: &Attachment) -> bool {
        let caps = &plugin["capabilities"];
        let only_ports = caps.as_object().is_some_and(|c| {
            c.len() == 1 && c.get("portMappings").and_then(Value::as_bool) == Some(true)
        });
        !(only_ports && plugin["type"] == "portmap" && att.port_mappings.is_empty())
    }

    /// The stdin of one plugin invocation.
    fn plugin_config(
        list: &NetworkConfigList,
        plugin: &Value,
        prev: Option<&Value>,
        port_mappings: &[PortMapping],
    ) -> Value {
        let mut conf = plugin.clone();
        let obj = conf.as_object_mut().expect("plugin config is an object");
        obj.insert("name".into(), list.name.clone().into());
        obj.insert("cniVersion".into(), list.cni_version.clone().into());
        if let Some(p) = prev {
            obj.insert("prevResult".into(), p.clone());
        }
        if plugin["capabilities"]["portMappings"] == true && !port_mappings.is_empty() {
            obj.insert(
                "runtimeConfig".into(),
                json!({ "portMappings": port_mappings }),
            );
        }
        conf
    }

    fn exec(
        &self,
        command: &'static str,
        plugin: &Value,
        stdin: &Value,
        att: &Attachment,
    ) -> Result<Value, CniError> {
        let kind = plugin["type"].as_str().unwrap_or("");
        let bin = self.find_plugin(kind)?;
        let cni_path =
            std::env::join_paths(&self.plugin_dirs).map_err(|e| CniError::Other(e.to_string()))?;
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
            att.pod_namespace, att.pod_name, att.container_id
        );
        let mut child = Command::new(&bin)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &att.container_id)
            .env("CNI_NETNS", &att.netns)
            .env("CNI_IFNAME", &att.ifname)
            .env("CNI_PATH", cni_path)
            .env("CNI_ARGS", args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CniError::Other(format!("running {}: {e}", bin.display())))?;
        let input = serde_json::to_vec(stdin).expect("config serialises");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(&input)
            .map_err(|e| CniError::Other(format!("writing to {kind}: {e}")))?;
        let out = child
            .wait_with_output()
            .map_err(|e| CniError::Other(format!("waiting for {kind}: {e}")))?;
        if !out.status.success() {
            // Plugins report errors as {"code", "msg", "details"} on stdout.
            let err: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let message = match (err["msg"].as_str(), err["details"].as_str()) {
                (Some(m), Some(d)) if !d.is_empty() => format!("{m}: {d}"),
                (Some(m), _) => m.to_string(),
                _ => format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            };
            return Err(CniError::Plugin {
                plugin: kind.into(),
                command,
                message,
            });
        }
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| CniError::Other(format!("{kind} {command}: invalid result: {e}")))
    }

    /// Attaches the namespace to the network: runs every plugin's ADD in order and returns
    /// the final result (interfaces, ips, routes, dns). On failure, what was added is
    /// deleted again.
    pub fn add(&self, list: &NetworkConfigList, att: &Attachment) -> Result<Value, CniError> {
        let mut prev: Option<Value> = None;
        for (i, plugin) in list.plugins.iter().enumerate() {
            if !Self::wanted(plugin, att) {
                continue;
            }
            let conf = Self::plugin_config(list, plugin, prev.as_ref(), &att.port_mappings);
            match self.exec("ADD", plugin, &conf, att) {
                Ok(r) => prev = Some(r),
                Err(e) => {
                    // Undo the plugins that succeeded, newest first.
                    let done = NetworkConfigList {
                        plugins: list.plugins[..i].to_vec(),
                        ..list.clone()
                    };
                    let _ = self.del_with(&done, att, prev.as_ref(), &att.port_mappings);
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or(Value::Null);
        fs::create_dir_all(&self.cache_dir)
            .map_err(|e| CniError::Other(format!("creating {}: {e}", self.cache_dir.display())))?;
        let cached = Cached {
            config: list.clone(),
            result: result.clone(),
            port_mappings: att.port_mappings.clone(),
            pod_namespace: att.pod_namespace.clone(),
            pod_name: att.pod_name.clone(),
        };
        let file = self.cache_file(&list.name, att);
        fs::write(&file, serde_json::to_vec(&cached).expect("serialises"))
            .map_err(|e| CniError::Other(format!("writing {}: {e}", file.display())))?;
        Ok(result)
    }

    /// Detaches: DEL for every plugin in reverse order with the cached ADD result and the
    /// configuration ADD used (so portmap finds its rules). Missing cache → DEL with the
    /// given config and no prevResult (plugins must tolerate it). Idempotent.
    pub fn del(&self, list: &NetworkConfigList, att: &Attachment) -> Result<(), CniError> {
        let file = self.cache_file(&list.name, att);
        let cached: Option<Cached> = fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match &cached {
            Some(c) => {
                let att = Attachment {
                    pod_namespace: c.pod_namespace.clone(),
                    pod_name: c.pod_name.clone(),
                    port_mappings: c.port_mappings.clone(),
                    ..att.clone()
                };
                self.del_with(&c.config, &att, Some(&c.result), &c.port_mappings)?
            }
            None => self.del_with(list, att, None, &att.port_mappings)?,
        }
        let _ = fs::remove_file(&file);
        Ok(())
    }

    fn del_with(
        &self,
        list: &NetworkConfigList,
        att: &Attachment,
        prev: Option<&Value>,
        ports: &[PortMapping],
    ) -> Result<(), CniError> {
        let mut first_err = None;
        for plugin in list.plugins.iter().rev() {
            if !Self::wanted(plugin, att) {
                continue;
            }
            let conf = Self::plugin_config(list, plugin, prev.filter(|p| !p.is_null()), ports);
            if let Err(e) = self.exec("DEL", plugin, &conf, att) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The pod's IPv4 address from a CNI result (the first address on the container interface).
pub fn pod_ip(result: &Value) -> Option<String> {
    let ifaces = result["interfaces"].as_array();
    result["ips"].as_array()?.iter().find_map(|ip| {
        let on_container = match (ip["interface"].as_u64(), ifaces) {
            (Some(i), Some(ifs)) => ifs
                .get(i as usize)
                .is_some_and(|f| f["sandbox"].as_str().is_some_and(|s| !s.is_empty())),
            _ => true,
        };
        let addr = ip["address"].as_str()?;
        on_container.then(|| addr.split('/').next().unwrap_or(addr).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(ports: Vec<PortMapping>) -> Attachment {
        Attachment {
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: "web".into(),
            port_mappings: ports,
        }
    }

    #[test]
    fn portmap_runs_only_for_pods_with_host_ports() {
        let list = NetworkConfigList::default_bridge("10.244.0.0/24", "tinykube0", Path::new("/x"));
        let pm = &list.plugins[1];
        assert!(!Cni::wanted(pm, &att(vec![])));
        let ports = vec![PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }];
        assert!(Cni::wanted(pm, &att(ports.clone())));
        assert!(Cni::wanted(&list.plugins[0], &att(vec![])));
        let conf = Cni::plugin_config(&list, pm, Some(&json!({"cniVersion": "1.0.0"})), &ports);
        assert_eq!(conf["name"], "tinykube");
        assert_eq!(conf["prevResult"]["cniVersion"], "1.0.0");
        assert_eq!(conf["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        let bridge = Cni::plugin_config(&list, &list.plugins[0], None, &ports);
        assert!(bridge.get("runtimeConfig").is_none() && bridge.get("prevResult").is_none());
    }

    #[test]
    fn pod_ip_comes_from_the_container_interface() {
        let r = json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "tinykube0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"interface": 2, "address": "10.244.0.5/24", "gateway": "10.244.0.1"}]});
        assert_eq!(pod_ip(&r).as_deref(), Some("10.244.0.5"));
        assert_eq!(pod_ip(&json!({})), None);
    }
}

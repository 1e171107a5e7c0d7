//! The node on the VM its users run: a Debian 12 guest with systemd as PID 1 and cgroup v2
//! only (see `tinykube_e2e::vm`). In it, as a user: the README's first command, unchanged; the
//! tutorial (run, expose, curl the NodePort from inside and from the host, label, exec,
//! scale); a memory hog that ends `OOMKilled`; `kill -9` of the kubelet with the pods kept; a
//! reboot after which the node comes back by itself; and `down --purge` leaving nothing (units,
//! cgroups, mounts, chains, files, processes). Needs root, qemu and the Debian mirror the first
//! time (the image is cached).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tinykube_e2e::vm::{tail, Vm};

const MIN: Duration = Duration::from_secs(60);

fn step(what: &str, t0: Instant) {
    eprintln!("[vm {:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

/// `GET /` from the host through a forwarded port; the answer's body.
fn host_get(port: u16) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: vm\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

fn host_answers(port: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        match host_get(port) {
            Ok(body) if body.starts_with("Hello Kubernetes bootcamp!") => return body,
            r if Instant::now() > deadline => panic!("the host never got the app's answer: {r:?}"),
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The pods' `name uid container-id restarts` lines of the tutorial's deployment, sorted.
const PODS: &str = "tkctl get pods -l run=kubernetes-first-app -o jsonpath='{range .items[*]}{.metadata.name} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}' | sort";

#[test]
fn the_node_on_a_systemd_cgroup_v2_vm() {
    let t0 = Instant::now();
    let mut vm = Vm::boot();
    step("booted", t0);
    let facts =
        vm.sh("cat /proc/1/comm; stat -fc %T /sys/fs/cgroup; command -v cargo || echo no-cargo");
    assert_eq!(
        facts, "systemd\ncgroup2fs\nno-cargo\n",
        "the guest is not a user's VM"
    );

    // The README's first command, as the user types it.
    let up = vm
        .try_sh_for("cd tinykube && hack/local-up.sh", 15 * MIN)
        .expect("local-up");
    assert!(
        up.ok(),
        "hack/local-up.sh: exit {}\n{}{}\njournal:\n{}",
        up.code,
        up.stdout,
        up.stderr,
        vm.sh("journalctl -u 'tinykube-*' -n 60 --no-pager -o short-monotonic || true")
    );
    step("local-up", t0);
    for what in [
        "is Ready",
        "unit tinykube-kubelet.service",
        "tinykube is up",
    ] {
        assert!(up.stdout.contains(what), "{what:?} missing:\n{}", up.stdout);
    }
    // Units for the daemons, enabled for the next boot; Debian's own registry service (which
    // the package's installation started) is off.
    assert_eq!(
        vm.sh("systemctl is-enabled tinykube-registry tinykube-apiserver tinykube-kubelet tinykube-proxy"),
        "enabled\nenabled\nenabled\nenabled\n"
    );
    let debian = vm.try_sh("systemctl is-active docker-registry").unwrap();
    assert_eq!(
        debian.stdout.trim(),
        "inactive",
        "Debian's registry service"
    );
    assert!(
        vm.sh("journalctl -u tinykube-kubelet -o cat --no-pager")
            .contains("driver=\"systemd\""),
        "the kubelet did not choose the systemd cgroup driver"
    );

    // The tutorial.
    assert_eq!(
        vm.sh("tkctl run kubernetes-first-app --image=gcr.io/google-samples/kubernetes-bootcamp:v1 --port=8080"),
        "deployment.apps/kubernetes-first-app created\n"
    );
    vm.eventually(
        "the app's pod runs",
        5 * MIN,
        "tkctl get pods | grep -q '1/1 *Running'",
    );
    assert_eq!(
        vm.sh("tkctl expose deployment/kubernetes-first-app --type=NodePort --port 8080"),
        "service/kubernetes-first-app exposed\n"
    );
    let node_port: u16 = vm
        .sh("tkctl get services/kubernetes-first-app -o go-template='{{(index .spec.ports 0).nodePort}}'")
        .trim()
        .parse()
        .expect("a NodePort");
    let inside = vm.eventually(
        "the app answers through its NodePort inside the guest",
        2 * MIN,
        &format!("curl -fsS $(tkctl ip):{node_port} && curl -fsS 127.0.0.1:{node_port}"),
    );
    assert!(
        inside.starts_with("Hello Kubernetes bootcamp! | Running on: kubernetes-first-app-"),
        "{inside}"
    );
    let host_port = vm.forward(node_port);
    let outside = host_answers(host_port, 2 * MIN);
    assert!(outside.contains("| v=1"), "{outside}");
    step(
        "tutorial: the NodePort answers inside and from the host",
        t0,
    );
    // The container is a transient scope in the pod's slice, under tinykube.slice.
    let pod = vm.sh("tkctl get pods -o jsonpath='{.items[0].metadata.name}'");
    let uid = vm.sh(&format!(
        "tkctl get pod {pod} -o jsonpath='{{.metadata.uid}}'"
    ));
    let cid = vm.sh(&format!(
        "tkctl get pod {pod} -o jsonpath='{{.status.containerStatuses[0].containerID}}'"
    ));
    let cid = cid.trim().rsplit("://").next().unwrap().to_string();
    let scope = format!(
        "/sys/fs/cgroup/tinykube.slice/tinykube-pod{}.slice/tinykube-{cid}.scope",
        uid.trim().replace('-', "_")
    );
    vm.sh(&format!("[ -n \"$(cat {scope}/cgroup.procs)\" ]"));
    assert_eq!(
        vm.sh(&format!(
            "systemctl show -p Delegate --value tinykube-{cid}.scope"
        )),
        "yes\n"
    );
    assert_eq!(
        vm.sh(&format!("tkctl label pod {pod} app=v1")),
        format!("pod/{pod} labeled\n")
    );
    assert!(vm.sh("tkctl get pods -l app=v1").contains(&pod));
    let exec = vm.sh(&format!("tkctl exec {pod} -- curl -s localhost:8080"));
    assert!(exec.contains(&format!("Running on: {pod}")), "{exec}");
    assert_eq!(
        vm.sh("tkctl scale deployment/kubernetes-first-app --replicas=3"),
        "deployment.apps/kubernetes-first-app scaled\n"
    );
    vm.eventually(
        "three pods run",
        5 * MIN,
        "[ \"$(tkctl get pods -l run=kubernetes-first-app | grep -c '1/1 *Running')\" = 3 ]",
    );
    step("tutorial: label, exec, scale", t0);

    // A memory hog: killed by the kernel at its 32 MiB limit, reported OOMKilled.
    let hog = r#"apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox
    command: [sh, -c, 'x=0123456789abcdef; while true; do x=$x$x; done']
    resources:
      limits:
        memory: 32Mi
"#;
    vm.sh(&format!(
        "cat >/root/hog.yaml <<'EOF'\n{hog}EOF\ntkctl create -f /root/hog.yaml"
    ));
    let reason = vm.eventually(
        "the hog is OOMKilled",
        5 * MIN,
        "r=$(tkctl get pod hog -o jsonpath='{.status.containerStatuses[0].state.terminated.reason}'); [ -n \"$r\" ] && echo \"$r\"",
    );
    assert_eq!(reason, "OOMKilled\n");
    let status = vm.sh("tkctl get pod hog --no-headers");
    assert!(status.contains("OOMKilled"), "{status}");
    step("the hog was OOMKilled", t0);

    // kill -9 of the kubelet: systemd restarts it; the pods are kept (same containers, no
    // restarts) and the app answers.
    let before = vm.sh(PODS);
    let kubelet = vm.sh("systemctl show -p MainPID --value tinykube-kubelet");
    vm.sh(&format!("kill -9 {}", kubelet.trim()));
    vm.eventually(
        "systemd restarted the kubelet",
        2 * MIN,
        &format!(
            "p=$(systemctl show -p MainPID --value tinykube-kubelet); [ \"$p\" != 0 ] && [ \"$p\" != {} ]",
            kubelet.trim()
        ),
    );
    vm.eventually(
        "the node is Ready again",
        3 * MIN,
        "tkctl get nodes --no-headers | grep -q ' Ready '",
    );
    assert_eq!(
        vm.sh(PODS),
        before,
        "the pods changed when the kubelet was killed"
    );
    host_answers(host_port, MIN);
    step("kill -9 of the kubelet: pods kept", t0);

    // A reboot: the node comes back by itself, the app answers through the same NodePort.
    vm.reboot();
    step("rebooted", t0);
    vm.eventually(
        "the node is Ready after the reboot",
        5 * MIN,
        "tkctl get nodes --no-headers | grep -q ' Ready '",
    );
    vm.eventually(
        "three pods run after the reboot",
        8 * MIN,
        "[ \"$(tkctl get pods -l run=kubernetes-first-app | grep -c '1/1 *Running')\" = 3 ]",
    );
    let after = host_answers(host_port, 3 * MIN);
    assert!(after.starts_with("Hello Kubernetes bootcamp!"), "{after}");
    step(
        "after the reboot: Ready, three pods, the NodePort answers",
        t0,
    );

    // down --purge leaves nothing of the node.
    let down = vm
        .try_sh_for("cd tinykube && hack/local-up.sh down --purge", 10 * MIN)
        .unwrap();
    assert!(down.ok(), "down --purge: {}{}", down.stdout, down.stderr);
    let left = vm.sh(
        "systemctl list-unit-files --no-legend 'tinykube*'; \
         systemctl list-units --all --no-legend 'tinykube*'; \
         ls /etc/systemd/system | grep tinykube; \
         find /sys/fs/cgroup -name 'tinykube*'; \
         grep -E ' /var/lib/tinykube| /run/netns| /var/log/pods|overlay' /proc/self/mountinfo; \
         iptables-save | grep -E 'KUBE-|TINYKUBE|CNI-'; \
         ip netns list; ip -o link | grep -E 'tinykube0|veth'; \
         ls -d /var/lib/tinykube /run/tinykube /var/log/pods/* /usr/local/bin/tkctl /root/.kube 2>/dev/null; \
         ps -eo pid,args | grep -E 'tinykube|docker-registry|bootcamp' | grep -v grep; \
         true",
    );
    assert_eq!(left, "", "down --purge left these behind");
    step("down --purge left nothing", t0);
    eprintln!("{}", tail(&vm.console(), 3));
}

"""The official Python `kubernetes` client against tinykube-apiserver, unchanged.

Usage: client.py KUBECONFIG. Exits non-zero (with the failed assertion) when anything differs
from what the client expects of a Kubernetes API server.
"""

import sys
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def main(kubeconfig: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    apps = client.AppsV1Api()

    version = client.VersionApi().get_code()
    assert version.major == "1" and version.minor == "32", version

    names = [n.metadata.name for n in core.list_namespace().items]
    assert {"default", "kube-system", "kube-public"} <= set(names), names

    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-web", labels={"app": "py"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="busybox:1.36")]),
    )
    created = core.create_namespaced_pod("default", pod)
    assert created.spec.restart_policy == "Always"
    assert created.status.phase == "Pending"

    listed = core.list_namespaced_pod("default", label_selector="app=py")
    assert [p.metadata.name for p in listed.items] == ["py-web"]
    rv = listed.metadata.resource_version

    # A watch from the list's revision sees a label change made afterwards.
    seen = []

    def watch_pods() -> None:
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=10):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "MODIFIED":
                w.stop()

    t = threading.Thread(target=watch_pods)
    t.start()
    # A dict is sent as a strategic merge patch, the client's default.
    core.patch_namespaced_pod("py-web", "default", {"metadata": {"labels": {"tier": "front"}}})
    t.join(15)
    assert ("MODIFIED", "py-web") in seen, seen

    try:
        core.create_namespaced_pod("default", pod)
        raise AssertionError("creating twice must fail")
    except ApiException as e:
        assert e.status == 409, e

    try:
        core.create_namespaced_pod(
            "default",
            client.V1Pod(metadata=client.V1ObjectMeta(name="Bad"), spec=client.V1PodSpec(containers=[client.V1Container(name="c")])),
        )
        raise AssertionError("an invalid pod must fail")
    except ApiException as e:
        assert e.status == 422, e

    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py-deploy"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "py-deploy"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "py-deploy"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")]),
            ),
        ),
    )
    apps.create_namespaced_deployment("default", dep)
    apps.patch_namespaced_deployment_scale("py-deploy", "default", {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("py-deploy", "default").spec.replicas == 4
    # Strategic: the container is merged by name, so the other one and the image stay.
    apps.patch_namespaced_deployment(
        "py-deploy", "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "busybox"}]}}}},
    )
    apps.patch_namespaced_deployment(
        "py-deploy", "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "A", "value": "1"}]}]}}}},
    )
    containers = apps.read_namespaced_deployment("py-deploy", "default").spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("web", "nginx"), ("log", "busybox")], containers
    assert containers[0].env[0].value == "1", containers
    # Server-side apply, as the client's dynamic layer sends it.
    from kubernetes import dynamic
    cms = dynamic.DynamicClient(client.ApiClient()).resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-applied"}, "data": {"k": "v"}}
    cms.server_side_apply(body=body, namespace="default", field_manager="py")
    assert core.read_namespaced_config_map("py-applied", "default").data == {"k": "v"}
    core.delete_namespaced_config_map("py-applied", "default")

    core.delete_namespaced_pod("py-web", "default")
    apps.delete_namespaced_deployment("py-deploy", "default")
    assert core.list_namespaced_pod("default", label_selector="app=py").items == []
    print("python kubernetes client: ok")


if __name__ == "__main__":
    main(sys.argv[1])

"""A keep-alive HTTPS connection to the apiserver of a kubeconfig (its current context and
client certificate), for the benchmarks that time raw requests."""
import base64, http.client, json, os, ssl, tempfile, urllib.parse


def connect(kubeconfig_json):
    """The connection and a temporary directory holding the key material (remove it after)."""
    cfg = json.load(open(kubeconfig_json))
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    tmp = tempfile.mkdtemp()

    def data(d, key):
        p = os.path.join(tmp, key)
        with open(p, "wb") as f:
            f.write(base64.b64decode(d[key + "-data"]))
        return p

    tls = ssl.create_default_context(cafile=data(cluster, "certificate-authority"))
    tls.load_cert_chain(data(user, "client-certificate"), data(user, "client-key"))
    url = urllib.parse.urlparse(cluster["server"])
    return http.client.HTTPSConnection(url.hostname, url.port, context=tls), tmp

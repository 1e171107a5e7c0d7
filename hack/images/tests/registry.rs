//! Pushes images and indexes of both formats to a real registry (Debian's docker-registry, run
//! by `TestRegistry`) and reads them back byte for byte. Fails if the registry is not installed.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tinykube_images::{
    many_layer_image, media_types, Entry, Image, Index, Layer, Registry, TestRegistry,
    REGISTRY_BINARY,
};

/// The test registry; fails the test if Debian's docker-registry is not installed (CI installs
/// it: a missing tool is a failure, not a silent pass).
fn registry() -> TestRegistry {
    assert!(
        std::path::Path::new(REGISTRY_BINARY).exists(),
        "{REGISTRY_BINARY} is missing: this test needs Debian's docker-registry \
         (apt-get install docker-registry)"
    );
    TestRegistry::start().expect("the test registry starts")
}

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
}

const ACCEPT: &[&str] = &[
    media_types::OCI_MANIFEST,
    media_types::OCI_INDEX,
    media_types::DOCKER_MANIFEST,
    media_types::DOCKER_MANIFEST_LIST,
];

/// Pulls `repo:tag` raw and checks the bytes and digest are the ones pushed.
async fn check_manifest(addr: &str, repo: &str, tag: &str, want: &[u8], want_digest: &str) {
    let r = Reference::with_tag(addr.into(), repo.into(), tag.into());
    let (bytes, digest) = client()
        .pull_manifest_raw(&r, &RegistryAuth::Anonymous, ACCEPT)
        .await
        .unwrap();
    assert_eq!(&bytes[..], want, "{repo}:{tag}");
    assert_eq!(digest, want_digest, "{repo}:{tag}");
}

fn small_image() -> Image {
    let mut image = Image::new(vec![Layer::new([
        Entry::dir("tmp/", 0o1777),
        Entry::file("hello", 0o755, "hello\n"),
    ])]);
    image.config.cmd = Some(vec!["/hello".into()]);
    image
}

#[tokio::test]
async fn pushes_images_and_indexes_unchanged() {
    let reg = registry();
    let registry = Registry::new(reg.addr());

    for (tag, image) in [("oci", small_image()), ("docker", small_image().docker())] {
        let digest = registry.push_image("t/small", tag, &image).await.unwrap();
        assert_eq!(digest, image.digest());
        check_manifest(reg.addr(), "t/small", tag, &image.manifest_json(), &digest).await;
        // Pushing again is fine (blobs already there).
        registry.push_image("t/small", tag, &image).await.unwrap();
    }

    for (tag, index) in [
        ("multi-oci", Index::multi_arch(small_image())),
        ("multi-docker", Index::multi_arch(small_image().docker())),
    ] {
        let digest = registry.push_index("t/small", tag, &index).await.unwrap();
        assert_eq!(digest, index.digest());
        check_manifest(reg.addr(), "t/small", tag, &index.json(), &digest).await;
        // The platform images are there by digest.
        for image in &index.images {
            let digest = image.digest();
            check_manifest(
                reg.addr(),
                "t/small",
                &digest,
                &image.manifest_json(),
                &digest,
            )
            .await;
        }
    }

    // Blobs come back as pushed, and sit where blob_path says.
    let image = many_layer_image(4, 256 * 1024, 42);
    tinykube_images::push(reg.addr(), "bench/many", "v1", &image)
        .await
        .unwrap();
    let layer = &image.layers[3];
    let r = Reference::with_tag(reg.addr().into(), "bench/many".into(), "v1".into());
    let mut pulled = Vec::new();
    client()
        .pull_blob(&r, layer.digest(), &mut pulled)
        .await
        .unwrap();
    assert_eq!(pulled, layer.blob());
    assert_eq!(
        std::fs::read(reg.blob_path(layer.digest())).unwrap(),
        layer.blob()
    );
}

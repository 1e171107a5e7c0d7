//! tinykube-apiserver: the Kubernetes API (k8s-openapi types) over HTTPS, on an embedded SQLite
//! store, with watch and the built-in control loops. See docs/apiserver.md for the design.

pub mod auth;
pub mod config;
pub mod controllers;
pub mod error;
pub mod http;
pub mod protobuf;
pub mod registry;
pub mod store;
pub mod warnings;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use auth::pki::{ClientIdentity, Pki};
use config::Flags;
use registry::catalog::Catalog;
use registry::kinds::pod::PodKind;
use store::sqlite::SqliteStore;

/// Names and addresses the serving certificate must cover.
fn serving_names(
    flags: &Flags,
    advertise: Option<IpAddr>,
    service_ip: Ipv4Addr,
) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec![
        "localhost".to_string(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        config::hostname(),
    ];
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V4(service_ip),
    ];
    if !flags.bind_address.is_unspecified() {
        ips.push(flags.bind_address);
    }
    ips.extend(advertise);
    ips.extend(config::default_route_address());
    for san in &flags.tls_sans {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(san.clone()),
        }
    }
    dns.sort();
    dns.dedup();
    ips.sort();
    ips.dedup();
    (dns, ips)
}

/// The URL clients on this host use.
fn client_url(flags: &Flags, port: u16) -> String {
    let host = if flags.bind_address.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        flags.bind_address
    };
    format!("https://{}", SocketAddr::new(host, port))
}

/// Runs the apiserver until the process is told to stop.
pub async fn run(flags: Flags) -> Result<()> {
    flags.validate()?;
    std::fs::create_dir_all(&flags.data_dir)
        .with_context(|| format!("creating the data dir {}", flags.data_dir.display()))?;
    let store: Arc<dyn store::Store> = Arc::new(
        SqliteStore::open(&flags.data_dir.join("state.db"), flags.sqlite_synchronous)
            .context("opening the store")?,
    );
    let catalog = Arc::new(
        Catalog::new(
            store,
            &flags.service_cluster_ip_range,
            &flags.service_node_port_range,
            PodKind {
                not_ready_toleration_seconds: flags.default_not_ready_toleration_seconds,
                unreachable_toleration_seconds: flags.default_unreachable_toleration_seconds,
                no_automount: Default::default(),
            },
        )
        .await?,
    );
    let advertise = flags.advertise();
    let pki = Pki::load_or_create(&flags.data_dir)?;
    let (dns, ips) = serving_names(&flags, advertise, catalog.ips.nth(1));
    let (cert, key) = pki.serving_cert(&dns, &ips)?;
    let tls = http::tls_config(&pki.ca_pem, &cert, &key)?;

    let listener = TcpListener::bind(SocketAddr::new(flags.bind_address, flags.secure_port))
        .await
        .with_context(|| format!("listening on {}:{}", flags.bind_address, flags.secure_port))?;
    let port = listener.local_addr()?.port();
    // Pods reach the API through the `kubernetes` Service, whose endpoint is the advertised
    // address: bound to loopback, the apiserver listens there too (same TLS, same checks).
    let pods_listener = match advertise {
        Some(ip) if flags.bind_address.is_loopback() && ip != flags.bind_address => {
            match TcpListener::bind(SocketAddr::new(ip, port)).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(address = %ip, port, error = %e, "cannot listen on the advertised address: pods will not reach the API through the kubernetes service");
                    None
                }
            }
        }
        _ => None,
    };
    let url = client_url(&flags, port);
    let node = flags.node();
    for (file, user, groups) in [
        (
            "admin",
            "tinykube-admin".to_string(),
            vec!["system:masters".to_string()],
        ),
        (
            "kubelet",
            format!("system:node:{node}"),
            vec!["system:nodes".to_string()],
        ),
        (
            "proxy",
            "system:kube-proxy".to_string(),
            vec!["system:node-proxier".to_string()],
        ),
    ] {
        let id = ClientIdentity {
            file,
            user: user.clone(),
            groups,
        };
        let cert = pki.client_cert(&id)?;
        pki.write_kubeconfig(file, &url, &user, &cert)?;
    }
    // The identity the apiserver presents to kubelets (kubeadm's apiserver-kubelet-client).
    let (kc_cert, kc_key) = pki.client_cert(&ClientIdentity {
        file: "apiserver-kubelet-client",
        user: "kube-apiserver-kubelet-client".into(),
        groups: vec!["system:masters".into()],
    })?;
    let kubelet_tls = http::streaming::kubelet_client_tls(&kc_cert, &kc_key)?;
    controllers::bootstrap::run(&catalog, advertise, port).await?;
    auth::policy::reconcile(&catalog).await?;
    auth::rbac::start(&catalog);
    tokio::spawn(controllers::namespace::run(
        catalog.clone(),
        pki.ca_pem.clone(),
    ));
    tokio::spawn(controllers::start(
        catalog.clone(),
        controllers::nodelifecycle::Config {
            grace: flags.node_monitor_grace_period,
            period: flags.node_monitor_period,
        },
    ));
    tokio::spawn(controllers::compaction(
        catalog.clone(),
        flags.compaction_interval,
    ));
    tokio::spawn(controllers::event_expiry(catalog.clone(), flags.event_ttl));

    let tokens = match &flags.token_auth_file {
        Some(p) => auth::authn::Tokens::load(p)?,
        None => Default::default(),
    };
    let server_address =
        SocketAddr::new(advertise.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), port).to_string();
    let catalog_rbac = catalog.rbac.clone();
    let service_accounts = auth::serviceaccount::TokenIssuer::load_or_create(
        &flags.data_dir,
        &flags.service_account_issuer,
    )?;
    let state = Arc::new(http::AppState {
        catalog,
        tokens,
        service_accounts,
        server_address,
        kubelet_tls,
    });
    // Nobody but the admins could be authorized before RBAC has its roles.
    catalog_rbac.wait_synced().await;
    // Written last: its presence means the server is ready for clients.
    std::fs::write(flags.data_dir.join("port"), port.to_string())?;
    tracing::info!(%url, kubeconfig = %flags.data_dir.join("admin.kubeconfig").display(), "serving");
    if let Some(l) = pods_listener {
        tracing::info!(address = %l.local_addr()?, "serving pods at the advertised address");
        let (tls, state) = (tls.clone(), state.clone());
        tokio::spawn(async move {
            if let Err(e) = http::serve(l, tls, state).await {
                tracing::error!(error = %e, "serving at the advertised address");
            }
        });
    }
    http::serve(listener, tls, state).await
}

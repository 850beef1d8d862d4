//! `sextant controller`: runs Katib Experiments applied to the Kubernetes cluster it runs in (or
//! the one the kubeconfig names), and serves the same API as `sextant serve` so the trials'
//! collector sidecars can push their metrics. It takes a Lease first ([`crate::controller::leader`]): a second
//! replica waits, without opening the store or serving, until the first one is gone.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::{CliError, open_store};
use crate::api::{self, AccessConfig, AppState};
use crate::controller::kube_controller::{self, ControllerSettings};
use crate::controller::leader::{LeaderElector, LeaseSettings};
use crate::controller::supervisor::Supervisor;
use crate::runtime::gpu::GpuPool;
use crate::runtime::kubernetes::ClusterSettings;

/// Arguments of `sextant controller`.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Address the API listens on (trial sidecars push metrics to it).
    #[arg(long, default_value = "0.0.0.0:6789", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Watch only this namespace [default: every namespace].
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The admin token of the API [default: generated; the API's writes are not needed here].
    #[arg(
        long,
        env = "SEXTANT_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// Sextant's API as trial pods reach it (SEXTANT_ENDPOINT in the trials).
    #[arg(long, default_value = crate::runtime::kubernetes::DEFAULT_ENDPOINT, value_name = "URL")]
    pub endpoint: String,
    /// Namespace of the leader-election Lease (the controller's own).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "sextant-system",
        value_name = "NS"
    )]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "sextant-controller", value_name = "NAME")]
    pub lease_name: String,
    /// This replica's identity in the Lease [default: the host name and a random suffix].
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    pub identity: Option<String>,
    /// Run without taking the Lease (one replica only, e.g. outside the cluster for debugging).
    #[arg(long)]
    pub no_leader_election: bool,
}

/// This replica's name in the Lease when none is given.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "sextant".to_string());
    let suffix: String = crate::auth::new_token().chars().take(8).collect();
    format!("{host}-{suffix}")
}

/// Runs `sextant controller` until SIGINT or SIGTERM.
pub async fn run(args: ControllerArgs, data_dir: &Path) -> Result<u8, CliError> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| CliError::failed(format!("cannot reach Kubernetes: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::failed(format!("cannot handle Ctrl-C: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::failed(format!("cannot handle SIGTERM: {e}")))?;
    // The Lease before the store: a standby replica must not hold (or wait on) sled's lock, nor
    // serve the API.
    let leadership = if args.no_leader_election {
        None
    } else {
        let identity = args.identity.clone().unwrap_or_else(default_identity);
        let elector = LeaderElector::new(
            client.clone(),
            LeaseSettings::new(&args.lease_namespace, &args.lease_name, &identity),
        );
        eprintln!(
            "waiting for the lease {}/{} as {identity}",
            args.lease_namespace, args.lease_name
        );
        tokio::select! {
            leading = elector.acquire() => Some(leading),
            _ = interrupt.recv() => return Ok(130),
            _ = terminate.recv() => return Ok(0),
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::input(format!("--listen {}: cannot listen: {e}", args.listen)))?;
    let store = open_store(data_dir)?;
    let supervisor = Supervisor::new(
        store.clone(),
        data_dir.to_path_buf(),
        args.endpoint.clone(),
        GpuPool::new(Vec::new()),
    );
    let admin_token = args
        .admin_token
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(crate::auth::new_token);
    let state = AppState::new(
        store.clone(),
        supervisor.clone(),
        AccessConfig {
            admin_token,
            auth_reads: true,
        },
    );
    let router = api::router(state.clone(), api::DEFAULT_REQUEST_TIMEOUT);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, router, async move {
        let _ = server_stopped.await;
    }));
    state.set_ready();
    let settings = ControllerSettings {
        namespace: args.namespace.clone(),
        cluster: ClusterSettings {
            endpoint: args.endpoint.clone(),
            ..ClusterSettings::default()
        },
        work_dir: data_dir.join("work"),
        requeue: Duration::from_secs(2),
    };
    let (stop_controller, controller_stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(kube_controller::run(
        client,
        store.clone(),
        supervisor,
        settings,
        async move {
            let _ = controller_stopped.await;
        },
    ));
    let lost = async {
        match &leadership {
            Some(leading) => leading.lost().await,
            None => std::future::pending().await,
        }
    };
    let mut lost_lease = false;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        _ = lost => lost_lease = true,
        result = server => {
            return match result {
                Ok(Ok(())) => Ok(0),
                Ok(Err(e)) => Err(CliError::failed(format!("server: {e}"))),
                Err(e) => Err(CliError::failed(format!("server task: {e}"))),
            };
        }
    }
    let _ = stop_controller.send(());
    let _ = controller.await;
    let _ = stop_server.send(());
    store.flush()?;
    if lost_lease {
        return Err(CliError::failed(
            "lost the leader-election lease; stopped so that only one controller acts",
        ));
    }
    if let Some(leading) = leadership
        && let Err(e) = leading.release().await
    {
        eprintln!("could not release the lease: {e}");
    }
    Ok(0)
}

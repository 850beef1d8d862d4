//! `sextant controller`: runs Katib Experiments applied to the Kubernetes cluster it runs in (or
//! the one the kubeconfig names), and serves the same API as `sextant serve` so the trials'
//! collector sidecars can push their metrics. No leader election: run one replica.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::{CliError, open_store};
use crate::api::{self, AccessConfig, AppState};
use crate::controller::kube_controller::{self, ControllerSettings};
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
}

/// Runs `sextant controller` until SIGINT or SIGTERM.
pub async fn run(args: ControllerArgs, data_dir: &Path) -> Result<u8, CliError> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::input(format!("--listen {}: cannot listen: {e}", args.listen)))?;
    let store = open_store(data_dir)?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| CliError::failed(format!("cannot reach Kubernetes: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::failed(format!("cannot handle Ctrl-C: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::failed(format!("cannot handle SIGTERM: {e}")))?;
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
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
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
    Ok(0)
}

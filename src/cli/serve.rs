//! `sextant serve --listen ADDR`: the HTTP server. Today it serves the suggestion API and a health
//! check; the experiments/trials/metrics API grows here in a later issue.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::signal::unix::{SignalKind, signal};

use super::CliError;

/// Where the server listens unless told otherwise: loopback only, so nothing is exposed by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6789";

/// Arguments of `sextant serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (`0.0.0.0:6789` for every interface; port 0 picks a free port).
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,
}

/// The server's routes.
pub fn router() -> Router {
    sextant_suggestion::api::router().route("/healthz", get(|| async { "ok\n" }))
}

/// Runs `sextant serve` until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<u8, CliError> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::input(format!("--listen {}: cannot listen: {e}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::failed(format!("cannot read the listening address: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::failed(format!("cannot handle Ctrl-C: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::failed(format!("cannot handle SIGTERM: {e}")))?;
    eprintln!("sextant: serving the suggestion API on http://{address} (POST /v1/suggestions)");
    // Small JSON replies: don't let Nagle's algorithm hold them back.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router())
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
        .await
        .map_err(|e| CliError::failed(format!("server: {e}")))?;
    Ok(0)
}

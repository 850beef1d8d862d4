//! `sextant serve`: one long-lived process that holds the store, runs submitted experiments with the
//! local runtime, and serves the HTTP API (experiments, trials, metrics, suggestions, health,
//! Prometheus metrics). Experiments it left unfinished resume when it starts again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::{CliError, open_store};
use crate::api::{self, AccessConfig, AppState};
use crate::controller::supervisor::Supervisor;
use crate::runtime::gpu::{GpuPool, parse_gpu_list};

/// Where the server listens unless told otherwise: loopback only, so nothing is exposed by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6789";

/// The file in the data directory that holds a generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Arguments of `sextant serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (`0.0.0.0:6789` for every interface; port 0 picks a free port).
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The admin token (create, stop and delete experiments).
    #[arg(
        long,
        env = "SEXTANT_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// Read the admin token from this file [default: SEXTANT_ADMIN_TOKEN, else DATA_DIR/admin-token,
    /// generated on first start].
    #[arg(long, value_name = "FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// Require the admin token for reads too [default: only when listening beyond loopback].
    #[arg(long, conflicts_with = "open_reads")]
    pub auth_reads: bool,
    /// Leave reads open even when listening beyond loopback.
    #[arg(long)]
    pub open_reads: bool,
    /// Longest a request may take before it is cancelled with 408.
    #[arg(long, default_value = "60", value_name = "SECONDS")]
    pub request_timeout: u64,
    /// GPUs trials may use, e.g. `0,1` [default: the GPUs `nvidia-smi -L` lists; none if absent].
    #[arg(long, value_name = "IDS")]
    pub gpus: Option<String>,
}

/// Runs `sextant serve` until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs, data_dir: &Path) -> Result<u8, CliError> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::input(format!("--listen {}: cannot listen: {e}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::failed(format!("cannot read the listening address: {e}")))?;
    let gpus = match &args.gpus {
        Some(list) => {
            GpuPool::new(parse_gpu_list(list).map_err(|e| CliError::input(format!("--gpus: {e}")))?)
        }
        None => GpuPool::detect(),
    };
    let store = open_store(data_dir)?;
    let (admin_token, token_note) = admin_token(&args, data_dir)?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::failed(format!("cannot handle Ctrl-C: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::failed(format!("cannot handle SIGTERM: {e}")))?;

    let supervisor = Supervisor::new(
        store.clone(),
        data_dir.to_path_buf(),
        trial_endpoint(address),
        gpus,
    );
    let state = AppState::new(
        store.clone(),
        supervisor.clone(),
        AccessConfig {
            admin_token,
            auth_reads: reads_need_token(&args, address),
        },
    );
    let router = api::router(
        state.clone(),
        Duration::from_secs(args.request_timeout.max(1)),
    );
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, router, async move {
        let _ = server_stopped.await;
    }));
    let resumed = supervisor
        .resume_all()
        .map_err(|e| CliError::failed(e.to_string()))?;
    state.set_ready();
    say(&format!(
        "serving on http://{address} (data in {})",
        data_dir.display()
    ));
    say(&token_note);
    if reads_need_token(&args, address) {
        say("reads need the admin token too (--open-reads leaves them open)");
    }
    if resumed > 0 {
        say(&format!("resumed {resumed} unfinished experiment(s)"));
    }

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
    say("stopping; running trials are stopped and their experiments resume at the next start");
    supervisor.shutdown().await;
    let _ = stop_server.send(());
    store.flush()?;
    Ok(0)
}

/// A line for the operator on stderr. A server outlives terminals and log pipes: a closed stderr
/// must not end it (`eprintln!` would panic), so write errors are ignored.
fn say(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "sextant: {message}");
}

/// Reads are open on loopback (only this machine's users reach them) and need the admin token
/// anywhere else, unless the flags say otherwise.
fn reads_need_token(args: &ServeArgs, address: SocketAddr) -> bool {
    args.auth_reads || (!args.open_reads && !address.ip().is_loopback())
}

/// The address trials push to: a wildcard listen address is reached through loopback.
fn trial_endpoint(address: SocketAddr) -> String {
    let ip = if address.ip().is_unspecified() {
        match address {
            SocketAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
            SocketAddr::V6(_) => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        address.ip()
    };
    format!("http://{}", SocketAddr::new(ip, address.port()))
}

/// The admin token and a line saying where it came from.
fn admin_token(args: &ServeArgs, data_dir: &Path) -> Result<(String, String), CliError> {
    if let Some(token) = args
        .admin_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Ok((
            token.to_string(),
            "admin token from SEXTANT_ADMIN_TOKEN".into(),
        ));
    }
    if let Some(file) = &args.admin_token_file {
        let token = read_token(file)?.ok_or_else(|| {
            CliError::input(format!(
                "--admin-token-file {}: the file is empty",
                file.display()
            ))
        })?;
        return Ok((token, format!("admin token from {}", file.display())));
    }
    let file = data_dir.join(ADMIN_TOKEN_FILE);
    if let Some(token) = read_token(&file)? {
        return Ok((token, format!("admin token in {}", file.display())));
    }
    let token = crate::auth::new_token();
    write_private(&file, &token)?;
    Ok((
        token,
        format!(
            "generated an admin token in {} (the CLI reads it from there, or set SEXTANT_ADMIN_TOKEN)",
            file.display()
        ),
    ))
}

fn read_token(file: &Path) -> Result<Option<String>, CliError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::input(format!(
            "cannot read {}: {e}",
            file.display()
        ))),
    }
}

/// Writes a secret readable by its owner only.
fn write_private(file: &Path, text: &str) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", file.display())))?;
    out.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_open_on_loopback_only_unless_the_flags_say_otherwise() {
        use clap::Parser;
        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let args = |flags: &[&str]| {
            let mut argv = vec!["serve"];
            argv.extend(flags);
            Command::parse_from(argv).serve
        };
        let loopback: SocketAddr = "127.0.0.1:6789".parse().unwrap();
        let everywhere: SocketAddr = "0.0.0.0:6789".parse().unwrap();
        assert!(!reads_need_token(&args(&[]), loopback));
        assert!(reads_need_token(&args(&[]), everywhere));
        assert!(reads_need_token(&args(&["--auth-reads"]), loopback));
        assert!(!reads_need_token(&args(&["--open-reads"]), everywhere));
    }

    #[test]
    fn wildcard_addresses_are_reached_through_loopback() {
        assert_eq!(
            trial_endpoint("0.0.0.0:6789".parse().unwrap()),
            "http://127.0.0.1:6789"
        );
        assert_eq!(
            trial_endpoint("[::]:80".parse().unwrap()),
            "http://[::1]:80"
        );
        assert_eq!(
            trial_endpoint("10.1.2.3:5".parse().unwrap()),
            "http://10.1.2.3:5"
        );
    }
}

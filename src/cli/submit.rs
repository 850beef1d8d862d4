//! `sextant submit FILE`: hand an experiment to a `sextant serve` server.
//!
//! The file is checked here first with the same rules as `sextant validate`, so a mistake names
//! its field without a round trip; the server gets the file's text unchanged, and the file's
//! directory as the directory its trials run in.

use std::path::{Path, PathBuf};

use super::client::{ClientError, DEFAULT_SERVER, ExperimentDetail, ServerClient, off_thread};
use super::{CliError, watch};
use crate::spec;

/// Arguments of `sextant submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The Experiment file (Katib YAML or JSON).
    pub file: PathBuf,
    /// Follow the experiment until it ends, as `sextant watch` does.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: print only the final summary.
    #[arg(long, short, requires = "watch")]
    pub quiet: bool,
}

/// Runs `sextant submit`.
pub async fn run(args: SubmitArgs, client: ServerClient) -> Result<u8, CliError> {
    let detail = {
        let (file, client) = (args.file.clone(), client.clone());
        off_thread(move || submit(&file, &client)).await??
    };
    let name = detail.experiment.name;
    println!("experiment {name} submitted to {}", client.base());
    if args.watch {
        return watch::follow(
            client,
            &name,
            args.quiet,
            watch::POLL_INTERVAL,
            watch::interrupted()?,
        )
        .await;
    }
    let server = if client.base() == DEFAULT_SERVER {
        String::new()
    } else {
        format!(" --server {}", client.base())
    };
    eprintln!("follow it with `sextant watch {name}{server}`");
    Ok(0)
}

/// Checks `file` and posts it; the server's answer.
pub fn submit(file: &Path, client: &ServerClient) -> Result<ExperimentDetail, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::input(format!("cannot read {}: {e}", file.display())))?;
    spec::check(&text).map_err(|e| CliError::input(format!("{}: {e}", file.display())))?;
    let canonical = std::fs::canonicalize(file)
        .map_err(|e| CliError::input(format!("cannot resolve {}: {e}", file.display())))?;
    let work_dir = canonical.parent().unwrap_or(Path::new("/"));
    client.submit(&text, work_dir).map_err(|e| match e {
        // The server's own verdict on the file (invalid field, name taken): say which file.
        ClientError::Api { server, error } if (400..500).contains(&error.status) => {
            CliError::input(format!(
                "{}: the server at {server} refused it ({}): {error}",
                file.display(),
                if error.code.is_empty() {
                    error.status.to_string()
                } else {
                    error.code.clone()
                }
            ))
        }
        other => other.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::AdminToken;
    use crate::cli::error::EXIT_BAD_INPUT;
    use crate::cli::mock_server::{DIGITS_YAML, MockServer, TOKEN};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_sends_the_file_with_the_token_and_its_directory() {
        let mock = MockServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("random.yaml");
        std::fs::write(&file, DIGITS_YAML).unwrap();

        let detail = submit(&file, &mock.client()).unwrap();
        assert_eq!(detail.experiment.name, "digits-random");
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        // The mock stored the workDir it was given (decoded from the query).
        assert_eq!(
            mock.store
                .experiment("digits-random")
                .unwrap()
                .unwrap()
                .work_dir,
            canonical
        );
        let requests = mock.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert!(requests[0].uri.starts_with("/v1/experiments?workDir=%2F"));
        assert_eq!(
            requests[0].authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(requests[0].body, DIGITS_YAML);

        // The name is taken now: the server's error names its field and the file.
        let e = submit(&file, &mock.client()).unwrap_err();
        assert_eq!(e.code, EXIT_BAD_INPUT);
        assert!(
            e.message.starts_with(&file.display().to_string())
                && e.message.contains("already_exists")
                && e.message
                    .contains("metadata.name: experiment \"digits-random\" already exists"),
            "{}",
            e.message
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_checks_locally_and_says_which_token_is_missing() {
        let mock = MockServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(
            &bad,
            DIGITS_YAML.replace("maxTrialCount: 12", "maxTrialCount: -1"),
        )
        .unwrap();
        let e = submit(&bad, &mock.client()).unwrap_err();
        assert_eq!(e.code, EXIT_BAD_INPUT);
        assert!(e.message.contains("spec.maxTrialCount"), "{}", e.message);
        assert!(mock.requests().is_empty(), "invalid files are not sent");

        let good = dir.path().join("random.yaml");
        std::fs::write(&good, DIGITS_YAML).unwrap();
        let token_file = dir.path().join("admin-token");
        let anonymous =
            ServerClient::new(&mock.url, AdminToken::Missing(token_file.clone())).unwrap();
        let e = submit(&good, &anonymous).unwrap_err();
        assert_eq!(e.code, EXIT_BAD_INPUT);
        assert!(
            e.message.contains("SEXTANT_ADMIN_TOKEN")
                && e.message.contains(&token_file.display().to_string()),
            "{}",
            e.message
        );
    }
}

//! `sextant best EXPERIMENT`: the best trial and its parameters, from the local store or a server.

use super::get::ExperimentView;
use super::output::{OutputFormat, number, structured_text, write_stdout};
use super::source::RecordSource;
use super::{CliError, OutputArgs};

/// Arguments of `sextant best`.
#[derive(Debug, clap::Args)]
pub struct BestArgs {
    /// The experiment.
    pub experiment: String,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `sextant best`.
pub fn run(args: BestArgs, source: &RecordSource) -> Result<u8, CliError> {
    let (_, view) = source.experiment(&args.experiment)?;
    write_stdout(&render(&view, args.output.format)?)?;
    Ok(0)
}

/// `best` output; an error while no trial has the objective metric.
pub fn render(view: &ExperimentView, format: OutputFormat) -> Result<String, CliError> {
    let Some(best) = &view.current_optimal_trial else {
        return Err(CliError::failed(format!(
            "experiment {} has no trial with the objective metric yet",
            view.name
        )));
    };
    if format != OutputFormat::Table {
        return structured_text(format, best);
    }
    let mut text = format!(
        "{} {}={}\n",
        best.best_trial_name,
        view.objective_metric_name,
        number(best.objective)
    );
    for a in &best.parameter_assignments {
        text.push_str(&format!("  {} = {}\n", a.name, a.value));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::mock_server::{MockServer, seed_digits};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_best_renders_like_the_local_store() {
        let mock = MockServer::start().await;
        seed_digits(&mock.store, Path::new("/experiments"));
        let local = RecordSource::Local(mock.store.clone());
        let remote = RecordSource::Server(mock.client());
        for format in [OutputFormat::Table, OutputFormat::Json, OutputFormat::Yaml] {
            let expected = render(&local.experiment("digits-random").unwrap().1, format).unwrap();
            assert!(expected.contains("digits-random-0002"), "{expected}");
            let got = render(&remote.experiment("digits-random").unwrap().1, format).unwrap();
            assert_eq!(got, expected, "best -o {format:?}");
        }
    }
}

//! `sextant-collector`: runs next to (or around) a trial and pushes its metrics to a Sextant
//! server. See `--help` (in `args.rs`) for the two modes.
//!
//! Exit codes: in output mode and in file mode with a command, the command's own (128+N when a
//! signal N killed it), so the collector is transparent to whoever runs the trial; metrics that
//! could not be delivered are reported on stderr, not in the exit code. Without a command of its
//! own (`--pid`, `--until-container`, `--kube-log`), 0 when every point was delivered and 1
//! otherwise, whether the run ended with the writer or with SIGTERM; the trial container's own
//! exit code is not repeated, since Kubernetes reports it for that container. 2 for bad usage or
//! environment (including a Kubernetes API that refuses the service account), 126/127 when the
//! command cannot be started (as a shell does). A native sidecar that exits while the main
//! container runs is restarted by the kubelet and reads the log again from the beginning, which
//! the server's idempotent writes absorb.
mod args;
mod follow;
mod kube;
mod kubelog;
mod reader;
mod signals;
mod wrap;

use std::io::Write;
use std::process::{ExitCode, ExitStatus};

use sextant_collector::push::PushTarget;
use sextant_collector::shipper::Notice;
use sextant_collector::{FlushReport, PushClient, Shipper, ShipperConfig};

use crate::args::{FileFormat, Invocation, Options, Source, Writer};
use crate::reader::MetricReader;

/// Why the collector could not do its job.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error("{0}\nRun 'sextant-collector --help' for usage.")]
    Usage(String),
    #[error("{0}")]
    Setup(String),
    #[error("cannot run {program:?}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("{0}")]
    Io(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) | Self::Setup(_) => ExitCode::from(2),
            // As a shell reports them.
            Self::Spawn { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
                ExitCode::from(127)
            }
            Self::Spawn { .. } => ExitCode::from(126),
            Self::Io(_) => ExitCode::FAILURE,
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            warn(format_args!("{error}"));
            error.exit_code()
        }
    }
}

fn run() -> Result<ExitCode, CliError> {
    let options = match args::parse(std::env::args_os().skip(1), |name| std::env::var(name).ok())
        .map_err(|error| CliError::Usage(error.0))?
    {
        Invocation::Help => {
            // `--help | head` closes stdout early: not an error.
            let _ = std::io::stdout().write_all(args::HELP.as_bytes());
            return Ok(ExitCode::SUCCESS);
        }
        Invocation::Version => {
            let version = concat!("sextant-collector ", env!("CARGO_PKG_VERSION"), "\n");
            let _ = std::io::stdout().write_all(version.as_bytes());
            return Ok(ExitCode::SUCCESS);
        }
        Invocation::Collect(options) => options,
    };
    let target = PushTarget::from_env().map_err(|error| CliError::Setup(error.to_string()))?;
    let format = match &options.source {
        Source::Output { .. } | Source::KubeLog { .. } => FileFormat::Text,
        Source::File { format, .. } => *format,
    };
    let mut reader = MetricReader::new(format, &options.metrics, &options.filters)
        .map_err(|error| CliError::Usage(error.to_string()))?;
    let uses_kube = matches!(
        &options.source,
        Source::KubeLog { .. }
            | Source::File {
                writer: Writer::Container(_),
                ..
            }
    );
    let kube = if uses_kube {
        let config = kube::KubeConfig::resolve(&options.kube, |name| std::env::var(name).ok())
            .map_err(|error| CliError::Setup(error.0))?;
        Some(kube::KubeClient::new(config).map_err(|error| CliError::Setup(error.0))?)
    } else {
        None
    };
    // Before anything starts: a SIGTERM from now on ends the run with a final flush.
    let termination = signals::Termination::install().unwrap_or_else(|error| {
        warn(format_args!(
            "cannot listen for SIGTERM ({error}); a signal will end the collector at once"
        ));
        signals::Termination::default()
    });
    let shipper = start_shipper(&options, &target);
    let status = match &options.source {
        Source::Output { command } => {
            Some(wrap::run(command, &mut reader, &shipper, &termination)?)
        }
        Source::File { path, writer, .. } => {
            follow::run(path, writer, kube, &mut reader, &shipper, &termination)?
        }
        Source::KubeLog { container } => {
            let client = kube.ok_or_else(|| CliError::Setup("no Kubernetes client".into()))?;
            match kubelog::run(client, container, &mut reader, &shipper, &termination)? {
                kubelog::LogEnd::Terminated { .. } => {}
                kubelog::LogEnd::Stopped => warn(format_args!(
                    "stopped by a signal before container {container} ended; delivering what \
                     was read"
                )),
            }
            None
        }
    };
    if let Some(summary) = reader.summary() {
        warn(format_args!("{summary}"));
    }
    let report = shipper.finish(options.flush_timeout);
    report_undelivered(&target.trial, &report, options.flush_timeout);
    Ok(match status {
        Some(status) => exit_code_of(status),
        None if report.pending == 0 => ExitCode::SUCCESS,
        None => ExitCode::FAILURE,
    })
}

/// Writes one message to stderr. A closed stderr is no reason to die: the trial's exit code and
/// metrics matter more than our messages (`eprintln!` would panic).
pub(crate) fn warn(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "sextant-collector: {message}");
}

fn start_shipper(options: &Options, target: &PushTarget) -> Shipper {
    let spool_dir = options.spool_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "sextant-collector-{}",
            file_name_safe(&target.trial)
        ))
    });
    let config = ShipperConfig {
        memory_points: options.memory_points,
        batch_points: options.batch_points,
        flush_interval: options.flush_interval,
        spool_dir,
        seed: jitter_seed(),
    };
    let trial = target.trial.clone();
    Shipper::start(PushClient::new(target), config, move |notice| {
        print_notice(&trial, notice);
    })
}

fn print_notice(trial: &str, notice: &Notice) {
    match notice {
        Notice::Retrying {
            error,
            failures,
            delay,
        } => warn(format_args!(
            "trial {trial}: metrics not delivered yet ({error}); retrying in \
             {delay:.1?} (failure {failures})"
        )),
        Notice::Recovered { failures } => warn(format_args!(
            "trial {trial}: metrics delivered again after {failures} failed \
             attempt(s)"
        )),
        Notice::Stopped {
            error,
            pending,
            spool,
        } => {
            let kept = match spool {
                Some(path) => format!(
                    "its {pending} undelivered point(s) are kept in {}",
                    path.display()
                ),
                None => format!("its {pending} undelivered point(s) could not be written to disk"),
            };
            warn(format_args!(
                "trial {trial}: stopped sending metrics: {error}. The trial \
                 keeps running; {kept}"
            ));
        }
        Notice::SpoolUnwritable { dir, error } => warn(format_args!(
            "trial {trial}: cannot write the spool file in {} ({error}); \
             keeping points in memory instead",
            dir.display()
        )),
    }
}

/// The last word on stderr when points were left undelivered.
fn report_undelivered(trial: &str, report: &FlushReport, timeout: std::time::Duration) {
    if report.pending == 0 {
        return;
    }
    let why = match &report.rejected {
        Some(error) => format!("the server refused them ({error})"),
        None => format!("the server could not be reached within the flush timeout ({timeout:?})"),
    };
    let pending = report.pending;
    match (&report.spool, &report.spool_error) {
        (Some(path), _) => warn(format_args!(
            "trial {trial}: {pending} metric point(s) were not delivered: \
             {why}. They are in {} (JSON lines, one observation each).",
            path.display()
        )),
        (None, error) => warn(format_args!(
            "trial {trial}: {pending} metric point(s) were not delivered: \
             {why}, and could not be written to disk ({}); they are lost.",
            error.as_deref().unwrap_or("unknown error")
        )),
    }
}

/// The exit code that reports `status` the way a shell does.
fn exit_code_of(status: ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        // Exit statuses are 0..=255 on Unix; anything else is reported as a failure.
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return ExitCode::from(u8::try_from(128 + signal).unwrap_or(255));
        }
    }
    ExitCode::FAILURE
}

/// `name` with anything but `[A-Za-z0-9._-]` replaced, for a directory name.
fn file_name_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A different jitter seed per process, so the collectors of one experiment spread out.
fn jitter_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    (u64::from(std::process::id()) << 32) ^ u64::from(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_names_become_safe_directory_names() {
        assert_eq!(file_name_safe("mnist-0001"), "mnist-0001");
        assert_eq!(file_name_safe("../a b"), ".._a_b");
    }

    #[cfg(unix)]
    #[test]
    fn exit_codes_follow_the_shell() {
        use std::os::unix::process::ExitStatusExt;
        // Raw wait statuses: exit code in the high byte, signal in the low bits.
        assert_eq!(
            exit_code_of(ExitStatus::from_raw(3 << 8)),
            ExitCode::from(3)
        );
        assert_eq!(exit_code_of(ExitStatus::from_raw(0)), ExitCode::SUCCESS);
        assert_eq!(exit_code_of(ExitStatus::from_raw(9)), ExitCode::from(137));
        assert_eq!(exit_code_of(ExitStatus::from_raw(15)), ExitCode::from(143));
    }
}

//! The command line, parsed by hand: the binary ships into trial pods, and a dozen flags do not
//! justify an argument-parsing dependency. Everything is checked here, once, into [`Options`].
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use sextant_collector::shipper::{
    DEFAULT_BATCH_POINTS, DEFAULT_FLUSH_INTERVAL, DEFAULT_FLUSH_TIMEOUT, DEFAULT_MEMORY_POINTS,
    MAX_BATCH_POINTS,
};

/// Environment variable with the metric names to collect, comma-separated (objective first).
pub(crate) const ENV_METRICS: &str = "SEXTANT_METRICS";

pub(crate) const HELP: &str = "\
sextant-collector: ship a trial's metrics to a Sextant server while it trains.

USAGE:
    sextant-collector [OPTIONS] -- COMMAND [ARGS...]
        Run COMMAND, pass its stdout and stderr through unchanged, read metrics from both
        (Katib's StdOut collector), and exit with its exit code (128+N if killed by signal N).
    sextant-collector [OPTIONS] --file PATH [--format text|json]
                      (--pid PID | --until-container NAME | -- COMMAND...)
        Follow the metrics file PATH (Katib's File collector) while COMMAND runs, while
        process PID lives, or until container NAME of this pod has terminated (Kubernetes
        sidecar); then read the rest of the file.
    sextant-collector [OPTIONS] --kube-log --container NAME
        Kubernetes sidecar: read the log of container NAME of this pod through the Kubernetes
        API, from its beginning until the container has terminated (Katib's StdOut collector).

OPTIONS:
    --metric NAME          A metric to collect; repeat for several. Default: $SEXTANT_METRICS.
    --metrics A,B          Metrics to collect, comma-separated.
    --filter REGEX         A Katib metricsFormat filter (group 1 = name, group 2 = value);
                           repeat for several. TEXT only. Default: Katib's `name=value` filter.
    --file PATH            Follow this file instead of reading COMMAND's output.
    --format text|json     The file's format (default text): text lines, or JSON lines.
    --pid PID              With --file: stop when process PID is gone (needs /proc).
    --until-container NAME With --file: stop when container NAME of this pod has terminated.
    --kube-log             Read the log of --container NAME of this pod (Kubernetes API).
    --container NAME       The container whose log --kube-log reads.
    --kube-api URL         The Kubernetes API (default: https://$KUBERNETES_SERVICE_HOST:
                           $KUBERNETES_SERVICE_PORT); http:// is accepted, for tests.
    --kube-sa-dir DIR      The service account's token, ca.crt and namespace (default
                           /var/run/secrets/kubernetes.io/serviceaccount).
    --spool-dir DIR        Where points go when memory is full or delivery stopped
                           (default: $TMPDIR/sextant-collector-<trial>).
    --memory-points N      Points kept in memory before spilling to disk (default 100000).
    --batch-points N       Most points per request, 1 to 10000 (default 1000).
    --flush-interval SECS  Longest a point waits to be sent (default 1).
    --flush-timeout SECS   How long to keep trying to deliver after COMMAND ended
                           or SIGTERM came (default 120); what is left stays in the
                           spool directory.
    -h, --help             Print this help.
    -V, --version          Print the version.

ENVIRONMENT (set by Sextant for the trials it starts):
    SEXTANT_ENDPOINT    The server's base URL, e.g. http://127.0.0.1:6789 (https is
                        checked against the Mozilla root certificates)
    SEXTANT_TRIAL       The trial's name, {experiment}-{NNNN}
    SEXTANT_EXPERIMENT  The experiment's name (default: derived from SEXTANT_TRIAL)
    SEXTANT_TOKEN       The trial's bearer token
    SEXTANT_METRICS     Metric names, comma-separated, when no --metric/--metrics is given
    POD_NAME            With --kube-log or --until-container: this pod's name
    POD_NAMESPACE       This pod's namespace (default: the service account's namespace file)
    KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT   The in-cluster API address

NOTES:
    COMMAND gets PYTHONUNBUFFERED=1 unless it is set, so Python prints metrics as they come.
    SIGTERM and SIGINT are forwarded to COMMAND; without a COMMAND they end the collection:
    what was read is delivered (for up to --flush-timeout) and the collector exits. Points are
    removed only once the server accepted them; a refused batch (bad token, unknown trial)
    stops delivery and the points stay in the spool file.
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Invocation {
    Help,
    Version,
    Collect(Box<Options>),
}

/// A checked command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub(crate) source: Source,
    /// Metric names, deduplicated later by the parsers.
    pub(crate) metrics: Vec<String>,
    pub(crate) filters: Vec<String>,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) memory_points: usize,
    pub(crate) batch_points: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) flush_timeout: Duration,
    /// How to reach the Kubernetes API, for `--kube-log` and `--until-container`.
    pub(crate) kube: KubeFlags,
}

/// `--kube-api` and `--kube-sa-dir`; the environment fills in the rest (see `kube.rs`).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct KubeFlags {
    pub(crate) api: Option<String>,
    pub(crate) sa_dir: Option<PathBuf>,
}

/// Where the metrics come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// The output of a command this collector runs.
    Output { command: Vec<OsString> },
    /// A file, written by a command this collector runs or by another process.
    File {
        path: PathBuf,
        format: FileFormat,
        writer: Writer,
    },
    /// The log of a container of this pod, read through the Kubernetes API.
    KubeLog { container: String },
}

/// The format of a metrics file (Katib's `fileSystemPath.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    Text,
    Json,
}

/// Who writes the metrics file; following ends when it is done.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Writer {
    Command(Vec<OsString>),
    Pid(u32),
    /// A container of this pod; the file is complete once it has terminated.
    Container(String),
}

/// A command line that cannot be used, with what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Parses the arguments after the program name; `env` looks up environment variables.
pub(crate) fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, UsageError> {
    let mut args = args.into_iter();
    let mut metrics = Vec::new();
    let mut filters = Vec::new();
    let mut file = None;
    let mut format = None;
    let mut pid = None;
    let mut kube_log = false;
    let mut container = None;
    let mut until_container = None;
    let mut kube = KubeFlags::default();
    let mut spool_dir = None;
    let mut memory_points = DEFAULT_MEMORY_POINTS;
    let mut batch_points = DEFAULT_BATCH_POINTS;
    let mut flush_interval = DEFAULT_FLUSH_INTERVAL;
    let mut flush_timeout = DEFAULT_FLUSH_TIMEOUT;
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            return Err(usage(format!(
                "unexpected argument {arg:?}; put the command to run after --"
            )));
        };
        if text == "--" {
            command = args.by_ref().collect();
            break;
        }
        let (flag, inline_value) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(OsString::from(value))),
            _ => (text, None),
        };
        let flag = flag.to_owned();
        let mut value = || -> Result<OsString, UsageError> {
            match &inline_value {
                Some(value) => Ok(value.clone()),
                None => args
                    .next()
                    .ok_or_else(|| usage(format!("{flag} needs a value"))),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "--metric" => metrics.push(utf8(&flag, value()?)?),
            "--metrics" => metrics.extend(split_names(&utf8(&flag, value()?)?)),
            "--filter" => filters.push(utf8(&flag, value()?)?),
            "--file" => file = Some(PathBuf::from(value()?)),
            "--format" => format = Some(parse_format(&utf8(&flag, value()?)?)?),
            "--pid" => pid = Some(parse_pid(&utf8(&flag, value()?)?)?),
            "--kube-log" => {
                if inline_value.is_some() {
                    return Err(usage(
                        "--kube-log takes no value; name the container with --container NAME",
                    ));
                }
                kube_log = true;
            }
            "--container" => container = Some(parse_container(&flag, &utf8(&flag, value()?)?)?),
            "--until-container" => {
                until_container = Some(parse_container(&flag, &utf8(&flag, value()?)?)?);
            }
            "--kube-api" => kube.api = Some(utf8(&flag, value()?)?),
            "--kube-sa-dir" => kube.sa_dir = Some(PathBuf::from(value()?)),
            "--spool-dir" => spool_dir = Some(PathBuf::from(value()?)),
            "--memory-points" => memory_points = parse_count(&flag, &utf8(&flag, value()?)?)?,
            "--batch-points" => {
                batch_points = parse_count(&flag, &utf8(&flag, value()?)?)?;
                if !(1..=MAX_BATCH_POINTS).contains(&batch_points) {
                    return Err(usage(format!(
                        "--batch-points {batch_points} is out of range; the server takes 1 to \
                         {MAX_BATCH_POINTS} points per request"
                    )));
                }
            }
            "--flush-interval" => flush_interval = parse_seconds(&flag, &utf8(&flag, value()?)?)?,
            "--flush-timeout" => flush_timeout = parse_seconds(&flag, &utf8(&flag, value()?)?)?,
            other if other.starts_with('-') => {
                return Err(usage(format!("unknown option {other}")));
            }
            other => {
                return Err(usage(format!(
                    "unexpected argument {other:?}; put the command to run after --, e.g. \
                     sextant-collector -- python train.py"
                )));
            }
        }
    }
    if metrics.is_empty()
        && let Some(names) = env(ENV_METRICS)
    {
        metrics = split_names(&names);
    }
    if metrics.is_empty() {
        return Err(usage(format!(
            "no metrics to collect: pass --metric NAME (repeatable) or --metrics a,b, or set \
             {ENV_METRICS}=a,b (Sextant sets it for the trials it starts)"
        )));
    }
    if container.is_some() && !kube_log {
        return Err(usage(
            "--container goes with --kube-log (with --file, use --until-container NAME)",
        ));
    }
    let uses_kube = kube_log || until_container.is_some();
    if !uses_kube && (kube.api.is_some() || kube.sa_dir.is_some()) {
        return Err(usage(
            "--kube-api and --kube-sa-dir go with --kube-log or --until-container",
        ));
    }
    let source = match file {
        None if kube_log => {
            if format.is_some() || pid.is_some() || until_container.is_some() {
                return Err(usage(
                    "--format, --pid and --until-container go with --file PATH, not --kube-log",
                ));
            }
            if !command.is_empty() {
                return Err(usage(
                    "--kube-log reads another container's log; it runs no command (remove the \
                     part after --)",
                ));
            }
            let container = container.ok_or_else(|| {
                usage("--kube-log needs the container whose log to read: --container NAME")
            })?;
            Source::KubeLog { container }
        }
        Some(_) if kube_log => {
            return Err(usage(
                "give either --kube-log (read a container's log) or --file PATH, not both",
            ));
        }
        None => {
            if format.is_some() || pid.is_some() || until_container.is_some() {
                return Err(usage(
                    "--format, --pid and --until-container go with --file PATH",
                ));
            }
            if command.is_empty() {
                return Err(usage(
                    "no command to run: put it after --, e.g. sextant-collector -- python \
                     train.py (or follow a file with --file PATH)",
                ));
            }
            Source::Output { command }
        }
        Some(path) => {
            let format = format.unwrap_or(FileFormat::Text);
            if format == FileFormat::Json && !filters.is_empty() {
                return Err(usage(
                    "--filter applies to text only; JSON lines are read by key",
                ));
            }
            let given = usize::from(pid.is_some())
                + usize::from(until_container.is_some())
                + usize::from(!command.is_empty());
            if given > 1 {
                return Err(usage(
                    "give one of --pid PID, --until-container NAME or -- COMMAND with --file, \
                     not several",
                ));
            }
            let writer = match (pid, until_container) {
                (Some(pid), _) => Writer::Pid(pid),
                (None, Some(container)) => Writer::Container(container),
                (None, None) if !command.is_empty() => Writer::Command(command),
                (None, None) => {
                    return Err(usage(
                        "--file needs to know when the file is complete: add --pid PID (the \
                         writing process), --until-container NAME (a container of this pod) or \
                         -- COMMAND (run it here)",
                    ));
                }
            };
            Source::File {
                path,
                format,
                writer,
            }
        }
    };
    Ok(Invocation::Collect(Box::new(Options {
        source,
        metrics,
        filters,
        spool_dir,
        memory_points,
        batch_points,
        flush_interval,
        flush_timeout,
        kube,
    })))
}

/// A container name: a DNS label (RFC 1123), as Kubernetes requires.
fn parse_container(flag: &str, value: &str) -> Result<String, UsageError> {
    let label = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if label {
        Ok(value.to_owned())
    } else {
        Err(usage(format!(
            "{flag} {value:?} is not a container name; Kubernetes names containers with lower-case \
             letters, digits and '-' (at most 63, starting and ending with a letter or digit)"
        )))
    }
}

fn utf8(flag: &str, value: OsString) -> Result<String, UsageError> {
    value
        .into_string()
        .map_err(|value| usage(format!("{flag} {value:?} is not valid UTF-8")))
}

/// `a, b,,c` → `[a, b, c]`.
fn split_names(names: &str) -> Vec<String> {
    names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_format(value: &str) -> Result<FileFormat, UsageError> {
    // Katib writes TEXT and JSON; both spellings are accepted.
    match value.to_ascii_lowercase().as_str() {
        "text" => Ok(FileFormat::Text),
        "json" => Ok(FileFormat::Json),
        _ => Err(usage(format!(
            "--format {value:?} is not a format; accepted: text, json"
        ))),
    }
}

fn parse_pid(value: &str) -> Result<u32, UsageError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| {
            usage(format!(
                "--pid {value:?} is not a process id (a positive integer)"
            ))
        })
}

fn parse_count(flag: &str, value: &str) -> Result<usize, UsageError> {
    value.parse::<usize>().map_err(|_| {
        usage(format!(
            "{flag} {value:?} is not a count (a non-negative integer)"
        ))
    })
}

fn parse_seconds(flag: &str, value: &str) -> Result<Duration, UsageError> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| {
            usage(format!(
                "{flag} {value:?} is not a duration; give seconds, e.g. 1 or 0.5"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Vec<OsString> {
        line.iter().map(OsString::from).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn options(line: &[&str]) -> Options {
        match parse(args(line), no_env).unwrap() {
            Invocation::Collect(options) => *options,
            other => panic!("{other:?}"),
        }
    }

    fn error(line: &[&str]) -> String {
        parse(args(line), no_env).unwrap_err().0
    }

    #[test]
    fn wrap_mode_with_defaults() {
        let got = options(&[
            "--metric", "loss", "--", "python", "train.py", "--lr", "0.1",
        ]);
        assert_eq!(
            got,
            Options {
                source: Source::Output {
                    command: args(&["python", "train.py", "--lr", "0.1"])
                },
                metrics: vec!["loss".into()],
                filters: vec![],
                spool_dir: None,
                memory_points: DEFAULT_MEMORY_POINTS,
                batch_points: DEFAULT_BATCH_POINTS,
                flush_interval: DEFAULT_FLUSH_INTERVAL,
                flush_timeout: DEFAULT_FLUSH_TIMEOUT,
                kube: KubeFlags::default(),
            }
        );
    }

    #[test]
    fn every_flag_and_the_equals_form() {
        let got = options(&[
            "--metrics=loss, acc",
            "--metric",
            "f1",
            "--filter",
            r"(\w+)=(\S+)",
            "--filter=(\\w+): (\\d+)",
            "--spool-dir",
            "/var/spool/x",
            "--memory-points=0",
            "--batch-points",
            "10000",
            "--flush-interval",
            "0.25",
            "--flush-timeout=3",
            "--",
            "sh",
            "-c",
            "echo --metric",
        ]);
        assert_eq!(got.metrics, ["loss", "acc", "f1"]);
        assert_eq!(got.filters, [r"(\w+)=(\S+)", r"(\w+): (\d+)"]);
        assert_eq!(got.spool_dir, Some(PathBuf::from("/var/spool/x")));
        assert_eq!(got.memory_points, 0);
        assert_eq!(got.batch_points, 10_000);
        assert_eq!(got.flush_interval, Duration::from_millis(250));
        assert_eq!(got.flush_timeout, Duration::from_secs(3));
        // Everything after -- belongs to the command, flags included.
        assert_eq!(
            got.source,
            Source::Output {
                command: args(&["sh", "-c", "echo --metric"])
            }
        );
    }

    #[test]
    fn metrics_default_to_the_environment() {
        let env = |name: &str| (name == ENV_METRICS).then(|| "accuracy,loss".to_owned());
        let Invocation::Collect(got) = parse(args(&["--", "true"]), env).unwrap() else {
            panic!()
        };
        assert_eq!(got.metrics, ["accuracy", "loss"]);
        // Flags win over the environment.
        let Invocation::Collect(got) = parse(args(&["--metric", "f1", "--", "true"]), env).unwrap()
        else {
            panic!()
        };
        assert_eq!(got.metrics, ["f1"]);
        let message = error(&["--", "true"]);
        assert!(message.contains("--metric NAME"), "{message}");
        assert!(message.contains("SEXTANT_METRICS"), "{message}");
        assert!(error(&["--metrics", " , ", "--", "true"]).contains("no metrics"));
    }

    #[test]
    fn file_mode() {
        let got = options(&[
            "--metric", "loss", "--file", "/m.json", "--format", "JSON", "--pid", "42",
        ]);
        assert_eq!(
            got.source,
            Source::File {
                path: "/m.json".into(),
                format: FileFormat::Json,
                writer: Writer::Pid(42)
            }
        );
        let got = options(&[
            "--metric", "loss", "--file", "m.log", "--", "python", "t.py",
        ]);
        assert_eq!(
            got.source,
            Source::File {
                path: "m.log".into(),
                format: FileFormat::Text,
                writer: Writer::Command(args(&["python", "t.py"]))
            }
        );
    }

    #[test]
    fn kubernetes_sidecar_modes() {
        let got = options(&[
            "--kube-log",
            "--container",
            "training",
            "--metrics",
            "loss,acc",
            "--kube-api",
            "http://127.0.0.1:9",
            "--kube-sa-dir",
            "/sa",
        ]);
        assert_eq!(
            got.source,
            Source::KubeLog {
                container: "training".into()
            }
        );
        assert_eq!(got.kube.api.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(got.kube.sa_dir, Some(PathBuf::from("/sa")));
        let got = options(&[
            "--file",
            "/m/metrics.log",
            "--format",
            "text",
            "--until-container",
            "main",
            "--metric",
            "loss",
        ]);
        assert_eq!(
            got.source,
            Source::File {
                path: "/m/metrics.log".into(),
                format: FileFormat::Text,
                writer: Writer::Container("main".into())
            }
        );
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(args(&["--help"]), no_env), Ok(Invocation::Help));
        assert_eq!(
            parse(args(&["-h", "--bogus"]), no_env),
            Ok(Invocation::Help)
        );
        assert_eq!(parse(args(&["-V"]), no_env), Ok(Invocation::Version));
        // After --, --help is the command's.
        assert!(matches!(
            parse(args(&["--metric", "x", "--", "prog", "--help"]), no_env),
            Ok(Invocation::Collect(_))
        ));
    }

    #[test]
    fn usage_errors_say_what_is_accepted() {
        let cases: &[(&[&str], &str)] = &[
            (&["--metric", "x"], "no command to run: put it after --"),
            (
                &["--metric", "x", "python", "t.py"],
                "put the command to run after --",
            ),
            (
                &["--metric", "x", "--bogus", "--", "t"],
                "unknown option --bogus",
            ),
            (&["--metric"], "--metric needs a value"),
            (
                &["--metric", "x", "--batch-points", "0", "--", "t"],
                "1 to 10000",
            ),
            (
                &["--metric", "x", "--batch-points", "10001", "--", "t"],
                "1 to 10000",
            ),
            (
                &["--metric", "x", "--memory-points", "-1", "--", "t"],
                "non-negative integer",
            ),
            (
                &["--metric", "x", "--flush-timeout", "soon", "--", "t"],
                "give seconds",
            ),
            (
                &["--metric", "x", "--flush-timeout", "-1", "--", "t"],
                "give seconds",
            ),
            (
                &["--metric", "x", "--flush-interval", "inf", "--", "t"],
                "give seconds",
            ),
            (
                &[
                    "--metric", "x", "--file", "f", "--format", "xml", "--pid", "1",
                ],
                "accepted: text, json",
            ),
            (
                &["--metric", "x", "--file", "f", "--pid", "0"],
                "positive integer",
            ),
            (&["--metric", "x", "--file", "f"], "add --pid PID"),
            (
                &["--metric", "x", "--file", "f", "--pid", "1", "--", "t"],
                "not several",
            ),
            (
                &[
                    "--metric",
                    "x",
                    "--file",
                    "f",
                    "--until-container",
                    "main",
                    "--pid",
                    "1",
                ],
                "not several",
            ),
            (&["--metric", "x", "--kube-log"], "--container NAME"),
            (
                &["--metric", "x", "--kube-log", "--container", "Main_1"],
                "not a container name",
            ),
            (
                &["--metric", "x", "--kube-log", "--container", "m", "--", "t"],
                "runs no command",
            ),
            (
                &[
                    "--metric",
                    "x",
                    "--kube-log",
                    "--container",
                    "m",
                    "--file",
                    "f",
                ],
                "not both",
            ),
            (
                &["--metric", "x", "--container", "m", "--", "t"],
                "goes with --kube-log",
            ),
            (
                &["--metric", "x", "--kube-api", "http://h", "--", "t"],
                "go with --kube-log",
            ),
            (
                &["--metric", "x", "--until-container", "m", "--", "t"],
                "go with --file PATH",
            ),
            (
                &["--metric", "x", "--pid", "1", "--", "t"],
                "go with --file",
            ),
            (
                &[
                    "--metric", "x", "--file", "f", "--format", "json", "--filter", "(a)(b)",
                    "--pid", "1",
                ],
                "text only",
            ),
        ];
        for (line, expected) in cases {
            let message = error(line);
            assert!(message.contains(expected), "{line:?}: {message}");
        }
    }
}

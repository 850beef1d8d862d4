//! Trials as local child processes.
//!
//! The primary container's `command` + `args` (placeholders already substituted) run directly, not
//! through a shell, in the experiment file's directory, with the container's `env`. Each trial gets
//! its own process group so that stopping it stops whatever it spawned, and so that Ctrl-C in the
//! terminal reaches `sextant` alone, which then stops trials in order. stdout and stderr go, line by
//! line, to the trial's log file and through the metrics parser.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sextant_collector::LineParser;
use sextant_collector::json::parse_json_lines;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc::UnboundedSender;

use super::gpu::GpuPool;
use super::{ExitOutcome, RuntimeEvent, StartError, StartedTrial, TrialRuntime};
use crate::spec::template::{PrimaryContainer, primary_container};
use crate::spec::{CheckedExperiment, Collector, FileFormat};
use crate::store::TrialRecord;

/// Time a trial gets between SIGTERM and SIGKILL. Kubernetes' default termination grace period is
/// 30 s; a local trial being stopped is usually a person waiting at a terminal, so less.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Environment variable naming the trial, also used to recognise a trial's orphaned process after
/// a crash.
pub const TRIAL_ENV: &str = "SEXTANT_TRIAL";

/// How the local runtime is set up for one experiment.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where trials run (the experiment file's directory).
    pub work_dir: PathBuf,
    /// Where trial logs go.
    pub log_dir: PathBuf,
    /// The primary container's name.
    pub primary_container: String,
    /// Metrics to collect.
    pub metric_names: Vec<String>,
    /// How.
    pub collector: Collector,
    /// The experiment's name (in the trial's environment).
    pub experiment: String,
    /// Where trials push metrics (`http://127.0.0.1:6789`), when a server takes pushes.
    pub endpoint: Option<String>,
}

/// Checks that an experiment can run here as local processes with these GPUs; returns its
/// template's primary container (what each trial needs). `gpus_from_flag` only shapes the message.
pub fn admit(
    checked: &CheckedExperiment,
    gpus: &GpuPool,
    gpus_from_flag: bool,
) -> Result<PrimaryContainer, String> {
    let primary_name = checked
        .template
        .primary_container_name
        .clone()
        .unwrap_or_default();
    let container = checked
        .template
        .trial_spec
        .as_ref()
        .map(|spec| primary_container(spec, &primary_name))
        .transpose()
        .map_err(|e| format!("spec.trialTemplate: {e}"))?
        .unwrap_or_default();
    if container.gpus as usize > gpus.total() {
        return Err(format!(
            "the trial template asks for {} GPU(s) (resources.limits[\"nvidia.com/gpu\"] of container {:?}) but this machine has {} \
             ({}); lower the limit, or pass --gpus with the devices to use",
            container.gpus,
            primary_name,
            gpus.total(),
            if gpus_from_flag {
                "from --gpus"
            } else {
                "from `nvidia-smi -L`"
            }
        ));
    }
    if let Collector::File { path, .. } = &checked.collector
        && checked.parallel_trial_count > 1
    {
        return Err(format!(
            "spec.metricsCollectorSpec: the File collector reads {path:?}, which parallel local trials would \
             all write; set spec.parallelTrialCount to 1, or collect from StdOut"
        ));
    }
    Ok(container)
}

/// The local runtime.
pub struct LocalRuntime {
    config: LocalConfig,
    gpus: GpuPool,
    gpus_per_trial: u32,
    events: UnboundedSender<RuntimeEvent>,
    running: HashMap<String, u32>,
}

impl LocalRuntime {
    /// A runtime for one experiment; `gpus_per_trial` comes from the template's primary container.
    pub fn new(
        config: LocalConfig,
        gpus: GpuPool,
        gpus_per_trial: u32,
        events: UnboundedSender<RuntimeEvent>,
    ) -> LocalRuntime {
        LocalRuntime {
            config,
            gpus,
            gpus_per_trial,
            events,
            running: HashMap::new(),
        }
    }

    fn spawn(
        &mut self,
        trial: &TrialRecord,
        container: &PrimaryContainer,
        gpus: &[String],
        token: &str,
    ) -> Result<u32, StartError> {
        let Some(program) = container.command.first().or(container.args.first()) else {
            return Err(StartError(format!(
                "container {:?} has no command: set `command` (and `args`) in the trial template; the image's entrypoint is not available locally",
                container.name
            )));
        };
        let rest: Vec<&String> = container
            .command
            .iter()
            .chain(container.args.iter())
            .skip(1)
            .collect();
        let work_dir = match &container.working_dir {
            Some(dir) => self.config.work_dir.join(dir),
            None => self.config.work_dir.clone(),
        };
        // A relative program path with a slash is resolved against the trial's directory, as a
        // shell started there would; bare names go through PATH.
        let program_path = if program.contains('/') && Path::new(program).is_relative() {
            work_dir.join(program)
        } else {
            PathBuf::from(program)
        };
        let file_source = match &self.config.collector {
            Collector::File {
                path,
                format,
                filters,
            } => Some((self.config.work_dir.join(path), *format, filters.clone())),
            _ => None,
        };
        if let Some((path, _, _)) = &file_source {
            // Katib gives every pod a fresh file; locally the path is shared by consecutive
            // trials, so a file left by the previous trial is removed before this one starts.
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StartError(format!(
                        "cannot remove the previous trial's metrics file {}: {e}",
                        path.display()
                    )));
                }
                _ => {}
            }
        }
        let log_file = std::fs::File::create(&trial.log_path).map_err(|e| {
            StartError(format!(
                "cannot create the log file {}: {e}",
                trial.log_path.display()
            ))
        })?;
        let mut command = tokio::process::Command::new(&program_path);
        command
            .args(rest)
            .current_dir(&work_dir)
            .envs(container.env.iter().map(|(k, v)| (k, v)))
            .env("SEXTANT_EXPERIMENT", &self.config.experiment)
            .env(TRIAL_ENV, &trial.name)
            .env("SEXTANT_METRICS", self.config.metric_names.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if self.gpus.total() > 0 {
            command.env("CUDA_VISIBLE_DEVICES", gpus.join(","));
        }
        if let Some(endpoint) = &self.config.endpoint {
            // What a Push collector (examples/push, `sextant-collector`) needs to send metrics.
            command
                .env("SEXTANT_ENDPOINT", endpoint)
                .env("SEXTANT_TOKEN", token);
        }
        let mut child = command.spawn().map_err(|e| {
            StartError(format!(
                "cannot start {:?} in {}: {e}",
                program,
                work_dir.display()
            ))
        })?;
        let pid = child.id().unwrap_or_default();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let events = self.events.clone();
        let trial_name = trial.name.clone();
        let parser = match &self.config.collector {
            Collector::StdOut { filters } => Some(
                LineParser::new(&self.config.metric_names, filters)
                    .map_err(|e| StartError(format!("metrics collector: {e}")))?,
            ),
            _ => None,
        };
        let metric_names = self.config.metric_names.clone();
        let pool = self.gpus.clone();
        let taken = gpus.to_vec();
        tokio::spawn(async move {
            let mut log = BufWriter::new(tokio::fs::File::from_std(log_file));
            let mut parser = parser;
            let mut out = OutputStream::new(stdout);
            let mut err = OutputStream::new(stderr);
            let mut io_error = None;
            loop {
                let line = tokio::select! {
                    line = out.next_line(), if !out.done => line,
                    line = err.next_line(), if !err.done => line,
                    else => break,
                };
                match line {
                    Ok(Some(line)) => {
                        if let Err(e) = write_line(&mut log, &line).await {
                            io_error.get_or_insert(format!("writing the trial log: {e}"));
                        }
                        if let Some(parser) = parser.as_mut() {
                            // Trainers may print anything; a stray non-UTF-8 byte must not stop
                            // the reading (the trial would block on a full pipe).
                            let text = String::from_utf8_lossy(&line);
                            let points = parser.parse_line(&text, jiff::Timestamp::now());
                            if !points.is_empty() {
                                let _ = events.send(RuntimeEvent::Observations {
                                    trial: trial_name.clone(),
                                    points,
                                });
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        io_error.get_or_insert(format!("reading the trial's output: {e}"));
                    }
                }
            }
            let _ = log.flush().await;
            let status = child.wait().await;
            pool.give_back(taken);
            if let Some((path, format, filters)) = file_source {
                let points = read_metrics_file(&path, format, &filters, &metric_names).await;
                if !points.is_empty() {
                    let _ = events.send(RuntimeEvent::Observations {
                        trial: trial_name.clone(),
                        points,
                    });
                }
            }
            let outcome = match status {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (status.code(), status.signal()) {
                        (Some(code), _) => ExitOutcome::Code(code),
                        (None, Some(signal)) => ExitOutcome::Signal(signal),
                        _ => ExitOutcome::Error("the process ended without an exit code".into()),
                    }
                }
                Err(e) => ExitOutcome::Error(format!("waiting for the process failed: {e}")),
            };
            let outcome = match (outcome, io_error) {
                (ExitOutcome::Code(0), Some(e)) => ExitOutcome::Error(e),
                (outcome, _) => outcome,
            };
            let _ = events.send(RuntimeEvent::Exited {
                trial: trial_name,
                outcome,
            });
        });
        Ok(pid)
    }
}

/// One of a trial's output streams, read as lines of raw bytes.
struct OutputStream<R> {
    reader: Option<BufReader<R>>,
    /// The line being read. It survives a cancelled read (the other stream won a `select!`), so
    /// no byte is lost.
    line: Vec<u8>,
    done: bool,
}

impl<R: tokio::io::AsyncRead + Unpin> OutputStream<R> {
    fn new(stream: Option<R>) -> Self {
        OutputStream {
            done: stream.is_none(),
            reader: stream.map(BufReader::new),
            line: Vec::new(),
        }
    }

    /// The next line without its line ending; `None` at the end of the stream.
    async fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let Some(reader) = self.reader.as_mut() else {
            self.done = true;
            return Ok(None);
        };
        match reader.read_until(b'\n', &mut self.line).await {
            Ok(0) => {
                self.done = true;
                Ok((!self.line.is_empty()).then(|| std::mem::take(&mut self.line)))
            }
            Ok(_) => {
                if self.line.last() != Some(&b'\n') {
                    // The stream ended without a final newline; the next read returns 0.
                    return Ok(Some(std::mem::take(&mut self.line)));
                }
                let mut line = std::mem::take(&mut self.line);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(Some(line))
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }
}

async fn write_line<W: tokio::io::AsyncWrite + Unpin>(
    log: &mut W,
    line: &[u8],
) -> std::io::Result<()> {
    log.write_all(line).await?;
    log.write_all(b"\n").await
}

async fn read_metrics_file(
    path: &Path,
    format: FileFormat,
    filters: &[String],
    metric_names: &[String],
) -> Vec<sextant_collector::Observation> {
    let Ok(contents) = tokio::fs::read_to_string(path).await else {
        return Vec::new();
    };
    let now = jiff::Timestamp::now();
    match format {
        FileFormat::Json => parse_json_lines(&contents, metric_names, now),
        FileFormat::Text => match LineParser::new(metric_names, filters) {
            Ok(mut parser) => contents
                .lines()
                .flat_map(|line| parser.parse_line(line, now))
                .collect(),
            Err(_) => Vec::new(),
        },
    }
}

impl TrialRuntime for LocalRuntime {
    fn free_slots(&self) -> Option<u32> {
        if self.gpus_per_trial == 0 {
            return None;
        }
        Some(u32::try_from(self.gpus.free()).unwrap_or(u32::MAX) / self.gpus_per_trial)
    }

    fn start(
        &mut self,
        trial: &TrialRecord,
        workload: &serde_json::Value,
        token: &str,
    ) -> Result<StartedTrial, StartError> {
        let container = primary_container(workload, &self.config.primary_container)
            .map_err(|e| StartError(e.to_string()))?;
        let gpus = self.gpus.take(container.gpus as usize).ok_or_else(|| {
            StartError(format!(
                "needs {} GPU(s) but only {} of {} are free",
                container.gpus,
                self.gpus.free(),
                self.gpus.total()
            ))
        })?;
        match self.spawn(trial, &container, &gpus, token) {
            Ok(pid) => {
                self.running.insert(trial.name.clone(), pid);
                Ok(StartedTrial {
                    pid: Some(pid),
                    gpus,
                })
            }
            Err(e) => {
                self.gpus.give_back(gpus);
                Err(e)
            }
        }
    }

    fn recover(&mut self, trial: &TrialRecord) {
        if let Some(pid) = trial.pid {
            kill_orphan(pid, &trial.name);
        }
    }

    fn forget(&mut self, trial: &str) {
        self.running.remove(trial);
    }

    fn stop(&mut self, trial: &str) {
        let Some(pid) = self.running.remove(trial) else {
            return;
        };
        let Ok(raw) = i32::try_from(pid) else { return };
        let group = Pid::from_raw(raw);
        let _ = killpg(group, Signal::SIGTERM);
        tokio::spawn(async move {
            tokio::time::sleep(STOP_GRACE).await;
            // The group is gone once every process in it exited; ESRCH then is expected.
            let _ = killpg(group, Signal::SIGKILL);
        });
    }
}

/// After a crash, a trial's process may still run. Kill its group if (and only if) the process with
/// the recorded pid is still that trial: its environment names the trial, which guards against a
/// recycled pid. Linux only; elsewhere nothing is done.
pub fn kill_orphan(pid: u32, trial: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let marker = format!("{TRIAL_ENV}={trial}");
    let is_ours = environ
        .split(|b| *b == 0)
        .any(|entry| entry == marker.as_bytes());
    if !is_ours {
        return false;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    killpg(Pid::from_raw(raw), Signal::SIGKILL).is_ok()
}

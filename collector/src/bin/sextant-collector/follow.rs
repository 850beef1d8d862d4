//! File mode: follow a metrics file until its writer is done, then read the rest.
//!
//! The writer is either a command run here (its output goes straight to ours; metrics come from
//! the file only), another process named by `--pid`, watched through `/proc`, or a container of
//! this pod named by `--until-container` (the Kubernetes sidecar), whose state is polled from the
//! API every [`CONTAINER_POLL_INTERVAL`]. Whether the writer is done is checked *before* each
//! read, so the read after it ended sees everything it wrote.
//!
//! SIGTERM or SIGINT goes to the command when there is one (which then ends the run); otherwise
//! it counts as the writer being done: the rest of the file is read and the points delivered.
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sextant_collector::Shipper;
use sextant_collector::tail::FileTail;

use crate::CliError;
use crate::args::Writer;
use crate::kube::{ContainerState, KubeClient};
use crate::reader::MetricReader;
use crate::signals::Termination;

/// How often the file is read: metrics show up within a fraction of the 1 s flush interval, and
/// an idle poll costs two `stat` calls.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often the pod's status is fetched with `--until-container`: a container's end is noticed
/// within a second, at one small GET per second per trial pod.
const CONTAINER_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The process writing the file.
enum Running {
    Child(Child),
    Pid(u32),
    Container {
        client: KubeClient,
        name: String,
        checked_at: Option<Instant>,
        warned: bool,
    },
}

impl Running {
    /// `Some` once the writer is gone: its exit status when it is our child.
    fn finished(
        &mut self,
        termination: &Termination,
    ) -> Result<Option<Option<ExitStatus>>, CliError> {
        match self {
            Self::Child(child) => match child.try_wait() {
                Ok(status) => {
                    if status.is_some() {
                        termination.stop_forwarding();
                    }
                    Ok(status.map(Some))
                }
                Err(error) => Err(CliError::Io(format!(
                    "waiting for the command failed: {error}"
                ))),
            },
            _ if termination.requested() => Ok(Some(None)),
            Self::Pid(pid) => Ok((!process_alive(Path::new("/proc"), *pid)).then_some(None)),
            Self::Container {
                client,
                name,
                checked_at,
                warned,
            } => {
                if checked_at.is_some_and(|at| at.elapsed() < CONTAINER_POLL_INTERVAL) {
                    return Ok(None);
                }
                *checked_at = Some(Instant::now());
                match client.container_state(name) {
                    Ok(ContainerState::Terminated { .. }) => Ok(Some(None)),
                    Ok(ContainerState::NotTerminated) => Ok(None),
                    Err(error) if error.is_retryable() => {
                        // SIGTERM from the kubelet still ends the run if the API stays away.
                        if !*warned {
                            *warned = true;
                            crate::warn(format_args!(
                                "{error}; will keep trying (and stop on SIGTERM)"
                            ));
                        }
                        Ok(None)
                    }
                    Err(error) => Err(CliError::Setup(error.to_string())),
                }
            }
        }
    }
}

/// Follows `path` until `writer` is done; returns the command's exit status when it ran one.
pub(crate) fn run(
    path: &Path,
    writer: &Writer,
    kube: Option<KubeClient>,
    reader: &mut MetricReader,
    shipper: &Shipper,
    termination: &Termination,
) -> Result<Option<ExitStatus>, CliError> {
    let mut running = match writer {
        Writer::Command(command) => {
            let child = crate::wrap::spawn(command, Stdio::inherit)?;
            termination.forward_to(child.id());
            Running::Child(child)
        }
        Writer::Container(name) => Running::Container {
            client: kube.ok_or_else(|| {
                CliError::Setup("--until-container needs the Kubernetes API".into())
            })?,
            name: name.clone(),
            checked_at: None,
            warned: false,
        },
        Writer::Pid(pid) => {
            if !Path::new("/proc/self").exists() {
                return Err(CliError::Setup(
                    "--pid needs /proc to watch the process, and this system has none; run the \
                     command with -- COMMAND instead"
                        .into(),
                ));
            }
            Running::Pid(*pid)
        }
    };
    let mut tail = FileTail::new(path);
    let mut warned = false;
    let mut points = Vec::new();
    let status = loop {
        let finished = running.finished(termination)?;
        let now = jiff::Timestamp::now();
        let mut on_line = |line: &str| reader.read_line(line, now, &mut points);
        if let Err(error) = tail.poll(&mut on_line) {
            // A permission problem may be fixed while the trial runs; say it once, keep trying.
            if !warned {
                warned = true;
                crate::warn(format_args!(
                    "cannot read {}: {error}; will keep trying",
                    tail.path().display()
                ));
            }
        }
        if let Some(status) = finished {
            tail.finish(&mut on_line);
            shipper.send(std::mem::take(&mut points));
            break status;
        }
        shipper.send(std::mem::take(&mut points));
        std::thread::sleep(POLL_INTERVAL);
    };
    if !tail.path().exists() {
        crate::warn(format_args!(
            "the metrics file {} was never written",
            tail.path().display()
        ));
    }
    Ok(status)
}

/// Whether process `pid` is alive according to `proc` (a procfs mount). A zombie (exited, not yet
/// reaped by its parent) is not alive: it writes nothing more.
fn process_alive(proc: &Path, pid: u32) -> bool {
    let stat_path: PathBuf = proc.join(pid.to_string()).join("stat");
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return false;
    };
    // `pid (comm) S ...`: the command name may hold spaces and parentheses, the state follows the
    // last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_states_from_proc() {
        let proc = tempfile::tempdir().unwrap();
        let write = |pid: u32, stat: &str| {
            let dir = proc.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("stat"), stat).unwrap();
        };
        write(10, "10 (python) S 1 10 10 0 -1");
        write(11, "11 (weird) name)) R 1 11");
        write(12, "12 (python) Z 1 12");
        write(13, "13 (gone) X 1 13");
        write(14, "garbage");
        assert!(process_alive(proc.path(), 10));
        assert!(process_alive(proc.path(), 11));
        assert!(!process_alive(proc.path(), 12), "zombie");
        assert!(!process_alive(proc.path(), 13), "dead");
        assert!(!process_alive(proc.path(), 14), "unreadable");
        assert!(!process_alive(proc.path(), 99), "missing");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_alive_in_the_real_proc() {
        assert!(process_alive(Path::new("/proc"), std::process::id()));
    }
}

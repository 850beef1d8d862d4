//! Output mode: run the training command, pass its output through, read metrics from it.
//!
//! Katib's StdOut collector reads stdout and stderr together (Python's `logging` writes to
//! stderr), so both are read here. Each stream has a pump thread that copies every chunk to our
//! own stream at once (so the trial's log looks exactly as without the collector, progress bars
//! included) and hands complete lines to the main thread, which parses them and queues the
//! points. The line channel is bounded: if parsing ever fell behind, the trial would block on its
//! pipe rather than the collector's memory growing.
//!
//! The run ends when the command has exited and both pipes are closed. A background process the
//! command started may keep a pipe open after the command exited; its output is read for
//! [`DRAIN_GRACE`] more and then the collector stops waiting for it.
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use sextant_collector::Shipper;
use sextant_collector::lines::LineSplitter;

use crate::CliError;
use crate::reader::MetricReader;
use crate::signals::Termination;

/// How long output is still read after the command exited while a pipe stays open (held by a
/// process the command left behind). Long enough for buffered output already in the pipe.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Lines buffered between the pumps and the parser.
const LINE_CHANNEL_CAPACITY: usize = 4096;
/// Bytes read from a pipe at once (the kernel's default pipe buffer is 64 KiB).
const CHUNK_BYTES: usize = 64 * 1024;

enum Event {
    Line(String),
    Closed,
    Exited(io::Result<ExitStatus>),
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Runs `command`, shipping the metrics it prints; returns its exit status.
pub(crate) fn run(
    command: &[OsString],
    reader: &mut MetricReader,
    shipper: &Shipper,
    termination: &Termination,
) -> Result<ExitStatus, CliError> {
    let mut child = spawn(command, Stdio::piped)?;
    // SIGTERM and SIGINT go to the command; the run ends when it does.
    termination.forward_to(child.id());
    let forwarding = termination.clone();
    let (events, received) = mpsc::sync_channel(LINE_CHANNEL_CAPACITY);
    let mut open_streams = 0;
    if let Some(stdout) = child.stdout.take() {
        start_pump(stdout, Stream::Stdout, events.clone());
        open_streams += 1;
    }
    if let Some(stderr) = child.stderr.take() {
        start_pump(stderr, Stream::Stderr, events.clone());
        open_streams += 1;
    }
    std::thread::spawn(move || {
        let status = child.wait();
        // Reaped: its process id may be reused from now on.
        forwarding.stop_forwarding();
        let _ = events.send(Event::Exited(status));
    });

    let mut exited: Option<io::Result<ExitStatus>> = None;
    let mut give_up_at: Option<Instant> = None;
    let mut points = Vec::new();
    while exited.is_none() || open_streams > 0 {
        let event = match give_up_at {
            None => received.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => received.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        let Ok(event) = event else { break };
        match event {
            Event::Line(line) => {
                reader.read_line(&line, jiff::Timestamp::now(), &mut points);
                if !points.is_empty() {
                    shipper.send(std::mem::take(&mut points));
                }
            }
            Event::Closed => open_streams -= 1,
            Event::Exited(status) => {
                exited = Some(status);
                give_up_at = Some(Instant::now() + DRAIN_GRACE);
            }
        }
    }
    match exited {
        Some(Ok(status)) => Ok(status),
        Some(Err(error)) => Err(CliError::Io(format!(
            "waiting for the command failed: {error}"
        ))),
        None => Err(CliError::Io("lost track of the command".into())),
    }
}

/// Starts `command` with stdin inherited and stdout/stderr as `output` says.
pub(crate) fn spawn(
    command: &[OsString],
    output: impl Fn() -> Stdio,
) -> Result<std::process::Child, CliError> {
    let Some((program, args)) = command.split_first() else {
        return Err(CliError::Usage("no command to run".into()));
    };
    let mut builder = Command::new(program);
    builder
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(output())
        .stderr(output());
    // Python block-buffers a piped stdout, so metrics would arrive at exit only.
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        builder.env("PYTHONUNBUFFERED", "1");
    }
    builder.spawn().map_err(|error| CliError::Spawn {
        program: program.to_string_lossy().into_owned(),
        error,
    })
}

fn start_pump(from: impl Read + Send + 'static, to: Stream, events: SyncSender<Event>) {
    std::thread::spawn(move || pump(from, to, &events));
}

/// Copies `from` to our `to` stream chunk by chunk and sends its lines.
fn pump(mut from: impl Read, to: Stream, events: &SyncSender<Event>) {
    let mut buffer = vec![0; CHUNK_BYTES];
    let mut splitter = LineSplitter::new();
    let mut passing_through = true;
    let mut send_line = |line: &str| {
        let _ = events.send(Event::Line(line.to_owned()));
    };
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buffer[..read];
        // Our stdout may be a pipe whose reader is gone (EPIPE): the trial must go on, and its
        // metrics still count, so passing through just stops.
        if passing_through && write_through(to, chunk).is_err() {
            passing_through = false;
        }
        splitter.feed(chunk, &mut send_line);
    }
    splitter.finish(&mut send_line);
    let _ = events.send(Event::Closed);
}

fn write_through(to: Stream, chunk: &[u8]) -> io::Result<()> {
    match to {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(chunk)?;
            out.flush()
        }
        Stream::Stderr => io::stderr().lock().write_all(chunk),
    }
}

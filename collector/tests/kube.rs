//! The Kubernetes sidecar modes against a fake API server: `--kube-log` reads a container's log,
//! `--until-container` follows a file until a container has terminated, and SIGTERM ends either
//! with a final flush.
//!
//! The fake serves one pod with one container, `main`, over plain http: its log (chunked, with
//! `follow`, `timestamps` and `sinceTime` as the kubelet implements them) and its status.
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

use crate::fixture::{FakeServer, assert_output, collector, text, wait_for};

const NAMESPACE: &str = "team-a";
const POD: &str = "exp-0001-abcde";
const CONTAINER: &str = "main";
const SA_TOKEN: &str = "sa-token";

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Terminated(i32),
}

struct Entry {
    at: Timestamp,
    text: String,
    /// Whether the line ends with a newline (a last line may not).
    newline: bool,
}

#[derive(Default)]
struct Pod {
    log: Vec<Entry>,
    state: Option<State>,
    /// Log requests to answer 400 "is waiting to start" before serving the log.
    waiting_answers: usize,
    /// Drop the next log connection in the middle of its N-th new line.
    drop_in_line: Option<usize>,
    /// Paths (with queries) of the requests seen, and their Authorization headers.
    requests: Vec<(String, Option<String>)>,
}

#[derive(Clone)]
struct FakeKube {
    port: u16,
    pod: Arc<Mutex<Pod>>,
}

impl FakeKube {
    fn start(state: State) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pod = Arc::new(Mutex::new(Pod {
            state: Some(state),
            ..Pod::default()
        }));
        let shared = Arc::clone(&pod);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let pod = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &pod));
            }
        });
        Self { port, pod }
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Appends a line written `seconds` after 2030-01-01T00:00:00Z.
    fn write(&self, seconds: f64, line: &str) {
        self.write_entry(seconds, line, true);
    }

    fn write_entry(&self, seconds: f64, line: &str, newline: bool) {
        let at = at(seconds);
        self.pod.lock().unwrap().log.push(Entry {
            at,
            text: line.to_owned(),
            newline,
        });
    }

    fn set_state(&self, state: State) {
        self.pod.lock().unwrap().state = Some(state);
    }

    fn with<R>(&self, change: impl FnOnce(&mut Pod) -> R) -> R {
        change(&mut self.pod.lock().unwrap())
    }

    fn log_requests(&self) -> Vec<String> {
        self.with(|pod| {
            pod.requests
                .iter()
                .map(|(path, _)| path.clone())
                .filter(|path| path.contains("/log?"))
                .collect()
        })
    }

    fn status_requests(&self) -> usize {
        self.with(|pod| {
            pod.requests
                .iter()
                .filter(|(path, _)| !path.contains("/log"))
                .count()
        })
    }
}

fn at(seconds: f64) -> Timestamp {
    let base: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    base + jiff::SignedDuration::from_secs_f64(seconds)
}

fn query<'q>(path: &'q str, key: &str) -> Option<&'q str> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == key)
        .map(|(_, value)| value)
}

fn serve(stream: TcpStream, pod: &Mutex<Pod>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    pod.lock()
        .unwrap()
        .requests
        .push((path.clone(), authorization.clone()));
    let pod_path = format!("/api/v1/namespaces/{NAMESPACE}/pods/{POD}");
    let respond = |writer: &mut TcpStream, status: u16, body: &str| {
        let _ = write!(
            writer,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
    };
    if authorization.as_deref() != Some(&format!("Bearer {SA_TOKEN}")) {
        return respond(
            &mut writer,
            401,
            r#"{"kind":"Status","message":"Unauthorized"}"#,
        );
    }
    if path == pod_path {
        let state = pod.lock().unwrap().state.unwrap();
        let state = match state {
            State::Waiting => serde_json::json!({"waiting": {"reason": "ContainerCreating"}}),
            State::Running => serde_json::json!({"running": {"startedAt": "2030-01-01T00:00:00Z"}}),
            State::Terminated(code) => {
                serde_json::json!({"terminated": {"exitCode": code, "reason": "Completed"}})
            }
        };
        let body = serde_json::json!({"kind": "Pod", "status": {"containerStatuses": [
            {"name": CONTAINER, "state": state}
        ]}});
        return respond(&mut writer, 200, &body.to_string());
    }
    if path.starts_with(&format!("{pod_path}/log?")) {
        assert_eq!(query(&path, "container"), Some(CONTAINER), "{path}");
        {
            let mut pod = pod.lock().unwrap();
            if pod.waiting_answers > 0 || pod.state == Some(State::Waiting) {
                pod.waiting_answers = pod.waiting_answers.saturating_sub(1);
                let body = serde_json::json!({"kind": "Status", "code": 400, "message": format!(
                    "container \"{CONTAINER}\" in pod \"{POD}\" is waiting to start: ContainerCreating"
                )});
                drop(pod);
                return respond(&mut writer, 400, &body.to_string());
            }
        }
        return stream_log(&mut writer, &path, pod);
    }
    respond(
        &mut writer,
        404,
        r#"{"kind":"Status","message":"not found"}"#,
    );
}

/// The kubelet's follow: every line at or after `sinceTime`, in order, until the container has
/// terminated and the log is read; each line in two chunks, so lines arrive split.
fn stream_log(writer: &mut TcpStream, path: &str, pod: &Mutex<Pod>) {
    let since: Option<Timestamp> = query(path, "sinceTime").map(|since| since.parse().unwrap());
    assert_eq!(query(path, "follow"), Some("true"));
    assert_eq!(query(path, "timestamps"), Some("true"));
    let drop_in_line = pod.lock().unwrap().drop_in_line.take();
    if write!(
        writer,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    )
    .is_err()
    {
        return;
    }
    let chunk = |writer: &mut TcpStream, bytes: &[u8]| {
        write!(writer, "{:x}\r\n", bytes.len())
            .and_then(|()| writer.write_all(bytes))
            .and_then(|()| writer.write_all(b"\r\n"))
            .and_then(|()| writer.flush())
            .is_ok()
    };
    let mut next = 0;
    let mut sent = 0;
    loop {
        let (lines, done) = {
            let pod = pod.lock().unwrap();
            let lines: Vec<String> = pod.log[next..]
                .iter()
                .filter(|entry| since.is_none_or(|since| entry.at >= since))
                .map(|entry| {
                    let end = if entry.newline { "\n" } else { "" };
                    format!("{} {}{end}", entry.at, entry.text)
                })
                .collect();
            next = pod.log.len();
            (lines, matches!(pod.state, Some(State::Terminated(_))))
        };
        for line in lines {
            sent += 1;
            let (head, tail) = line.as_bytes().split_at(line.len() / 2);
            if drop_in_line == Some(sent) {
                // The connection drops half-way through this line.
                chunk(writer, head);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            if !(chunk(writer, head) && chunk(writer, tail)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if done {
            let _ = writer.write_all(b"0\r\n\r\n");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A service-account directory with the token (no CA: the fake speaks plain http).
fn service_account() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{SA_TOKEN}\n")).unwrap();
    dir
}

/// `sextant-collector` as the sidecar: this pod's environment and the fake API.
fn sidecar(server: &FakeServer, kube: &FakeKube, sa_dir: &Path) -> Command {
    let mut command = collector(&server.endpoint());
    command
        .env("POD_NAME", POD)
        .env("POD_NAMESPACE", NAMESPACE)
        .args(["--kube-api", &kube.api(), "--kube-sa-dir"])
        .arg(sa_dir);
    command
}

fn kube_log(server: &FakeServer, kube: &FakeKube, sa_dir: &Path) -> Command {
    let mut command = sidecar(server, kube, sa_dir);
    command.args([
        "--kube-log",
        "--container",
        CONTAINER,
        "--metrics",
        "loss,acc",
    ]);
    command
}

/// Waits for `child` with a limit, killing it if it hangs.
fn finish(child: Child, limit: Duration) -> Output {
    let id = child.id();
    let done = Arc::new(Mutex::new(false));
    let watched = Arc::clone(&done);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        if !*watched.lock().unwrap() {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
        }
    });
    let output = child.wait_with_output().unwrap();
    *done.lock().unwrap() = true;
    output
}

fn spawn(mut command: Command) -> Child {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_streamed_log_is_shipped_until_the_container_terminates() {
    let server = FakeServer::start();
    let kube = FakeKube::start(State::Running);
    let sa = service_account();
    kube.write(0.5, "starting");
    kube.write(1.0, "epoch=1 loss=0.9 acc=0.5");
    let child = spawn(kube_log(&server, &kube, sa.path()));
    std::thread::sleep(Duration::from_millis(400));
    kube.write(2.0, "epoch=2 loss=0.5 acc=0.7");
    std::thread::sleep(Duration::from_millis(200));
    // The last line has no newline, and the container ends right after it.
    kube.write_entry(3.0, "epoch=3 loss=0.25", false);
    kube.set_state(State::Terminated(0));
    let output = finish(child, Duration::from_secs(20));
    assert_output(&output, output.status.success(), "exit 0");
    assert_eq!(
        server.delivered_triples(),
        [
            ("loss".into(), 0.9, 1),
            ("acc".into(), 0.5, 1),
            ("loss".into(), 0.5, 2),
            ("acc".into(), 0.7, 2),
            ("loss".into(), 0.25, 3),
        ]
    );
    // Points carry the time the line was logged, not the time it was read.
    assert_eq!(
        server.delivered()[0]["timestamp"].as_str(),
        Some("2030-01-01T00:00:01Z")
    );
    let requests = kube.with(|pod| pod.requests.clone());
    assert!(
        requests
            .iter()
            .all(|(_, auth)| auth.as_deref() == Some("Bearer sa-token"))
    );
    assert!(kube.status_requests() >= 1, "the state was checked");
}

#[test]
fn a_log_written_before_the_sidecar_started_is_read_from_the_beginning() {
    let server = FakeServer::start();
    let kube = FakeKube::start(State::Terminated(1));
    let sa = service_account();
    kube.write(1.0, "loss=0.8");
    kube.write(2.0, "loss=0.6");
    let output = finish(
        spawn(kube_log(&server, &kube, sa.path())),
        Duration::from_secs(20),
    );
    // The trial's own failure is its container's business: the sidecar delivered everything.
    assert_output(&output, output.status.success(), "exit 0");
    assert_eq!(
        server.delivered_triples(),
        [("loss".into(), 0.8, 1), ("loss".into(), 0.6, 2)]
    );
    assert!(!kube.log_requests()[0].contains("sinceTime"));
}

#[test]
fn a_container_waiting_to_start_is_retried() {
    let server = FakeServer::start();
    let kube = FakeKube::start(State::Running);
    let sa = service_account();
    kube.with(|pod| pod.waiting_answers = 2);
    kube.write(1.0, "loss=0.7");
    let child = spawn(kube_log(&server, &kube, sa.path()));
    assert!(wait_for(Duration::from_secs(10), || kube
        .log_requests()
        .len()
        >= 3));
    kube.set_state(State::Terminated(0));
    let output = finish(child, Duration::from_secs(20));
    assert_output(&output, output.status.success(), "exit 0");
    assert_eq!(server.delivered_triples(), [("loss".into(), 0.7, 1)]);
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr.matches("is waiting to start").count(),
        1,
        "said once: {stderr}"
    );
}

#[test]
fn a_dropped_stream_is_resumed_without_losing_or_repeating_lines() {
    let server = FakeServer::start();
    let kube = FakeKube::start(State::Running);
    let sa = service_account();
    // Several lines within one second, and one out of order (stderr behind stdout).
    kube.write(1.1, "epoch=1 loss=0.9");
    kube.write(1.5, "epoch=2 loss=0.8");
    kube.write(1.4, "epoch=3 loss=0.7");
    kube.write(1.9, "epoch=4 loss=0.6");
    kube.write(2.2, "epoch=5 loss=0.5");
    kube.with(|pod| pod.drop_in_line = Some(4));
    let child = spawn(kube_log(&server, &kube, sa.path()));
    assert!(wait_for(Duration::from_secs(10), || kube
        .log_requests()
        .len()
        >= 2));
    kube.write(3.0, "epoch=6 loss=0.4");
    std::thread::sleep(Duration::from_millis(300));
    kube.set_state(State::Terminated(0));
    let output = finish(child, Duration::from_secs(20));
    assert_output(&output, output.status.success(), "exit 0");
    let losses: Vec<(f64, i64)> = server
        .delivered_triples()
        .into_iter()
        .map(|(_, value, step)| (value, step))
        .collect();
    assert_eq!(
        losses,
        [(0.9, 1), (0.8, 2), (0.7, 3), (0.6, 4), (0.5, 5), (0.4, 6)]
    );
    let requests = kube.log_requests();
    assert!(
        requests[1].contains("sinceTime=2030-01-01T00:00:00Z"),
        "resumed a second before the newest line read: {requests:?}"
    );
}

#[test]
fn sigterm_delivers_what_was_read_before_exiting() {
    let server = FakeServer::start();
    let kube = FakeKube::start(State::Running);
    let sa = service_account();
    kube.write(1.0, "loss=0.3");
    kube.write(2.0, "loss=0.2");
    // A long flush interval: the points are sent only by the final flush.
    let mut command = kube_log(&server, &kube, sa.path());
    command.args(["--flush-interval", "600"]);
    let child = spawn(command);
    assert!(wait_for(Duration::from_secs(10), || !kube
        .log_requests()
        .is_empty()));
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.requests().is_empty(), "nothing sent yet");
    terminate(&child);
    let output = finish(child, Duration::from_secs(10));
    assert_output(&output, output.status.success(), "exit 0 after SIGTERM");
    assert_eq!(
        server.delivered_triples(),
        [("loss".into(), 0.3, 1), ("loss".into(), 0.2, 2)]
    );
}

#[test]
fn a_file_is_followed_until_the_container_terminates() {
    let server = FakeServer::start();
    let kube = FakeKube::start(State::Running);
    let sa = service_account();
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.log");
    let mut command = sidecar(&server, &kube, sa.path());
    command
        .args(["--metric", "loss", "--until-container", CONTAINER, "--file"])
        .arg(&metrics);
    let mut child = spawn(command);
    std::fs::write(&metrics, "loss=0.9\n").unwrap();
    assert!(wait_for(Duration::from_secs(10), || kube.status_requests() >= 2));
    assert!(child.try_wait().unwrap().is_none(), "still following");
    // Written just before the container ends: read after the end is seen.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics)
        .unwrap();
    write!(file, "loss=0.1").unwrap();
    drop(file);
    kube.set_state(State::Terminated(0));
    let output = finish(child, Duration::from_secs(20));
    assert_output(&output, output.status.success(), "exit 0");
    assert_eq!(
        server.delivered_triples(),
        [("loss".into(), 0.9, 1), ("loss".into(), 0.1, 2)]
    );
}

#[test]
fn sigterm_ends_a_file_sidecar_with_a_final_flush() {
    let server = FakeServer::start();
    let kube = FakeKube::start(State::Running);
    let sa = service_account();
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.log");
    std::fs::write(&metrics, "loss=0.5\n").unwrap();
    let mut command = sidecar(&server, &kube, sa.path());
    command
        .args(["--metric", "loss", "--flush-interval", "600"])
        .args(["--until-container", CONTAINER, "--file"])
        .arg(&metrics);
    let child = spawn(command);
    assert!(wait_for(Duration::from_secs(10), || kube.status_requests() >= 1));
    std::thread::sleep(Duration::from_millis(300));
    terminate(&child);
    let output = finish(child, Duration::from_secs(10));
    assert_output(&output, output.status.success(), "exit 0 after SIGTERM");
    assert_eq!(server.delivered_triples(), [("loss".into(), 0.5, 1)]);
}

#[test]
fn sigterm_is_forwarded_to_the_wrapped_command() {
    let server = FakeServer::start();
    let mut command = collector(&server.endpoint());
    command
        .args(["--metric", "loss", "--", "sh", "-c"])
        .arg("trap 'echo loss=0.1; exit 7' TERM; echo loss=0.2; while true; do sleep 0.05; done");
    let child = spawn(command);
    std::thread::sleep(Duration::from_millis(500));
    terminate(&child);
    let output = finish(child, Duration::from_secs(10));
    assert_output(
        &output,
        output.status.code() == Some(7),
        "the command's exit 7",
    );
    assert_eq!(
        server.delivered_triples(),
        [("loss".into(), 0.2, 1), ("loss".into(), 0.1, 2)]
    );
}

#[test]
fn a_refusing_api_is_a_setup_error() {
    let server = FakeServer::start();
    let kube = FakeKube::start(State::Running);
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("token"), "wrong").unwrap();
    let output = finish(
        spawn(kube_log(&server, &kube, sa.path())),
        Duration::from_secs(10),
    );
    assert_output(&output, output.status.code() == Some(2), "exit 2");
    assert!(
        text(&output.stderr).contains("401"),
        "{}",
        text(&output.stderr)
    );
    // No service account at all.
    let empty = tempfile::tempdir().unwrap();
    let output = finish(
        spawn(kube_log(&server, &kube, empty.path())),
        Duration::from_secs(10),
    );
    assert_output(&output, output.status.code() == Some(2), "exit 2");
    assert!(
        text(&output.stderr).contains("service account token"),
        "{}",
        text(&output.stderr)
    );
}

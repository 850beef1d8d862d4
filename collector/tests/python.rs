//! The Python helper `examples/push/sextant_report.py` against the fake server, and its printed
//! fallback read back by this crate's own parser.
use std::path::PathBuf;
use std::process::{Command, Output};

use sextant_collector::{LineParser, parse_text};

use crate::fixture::{EXPERIMENT, FakeServer, Reply, TOKEN, TRIAL, assert_output, text};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/push")
}

/// Whether python3 runs here; says so when it does not.
fn has_python() -> bool {
    let found = Command::new("python3").arg("--version").output().is_ok();
    if !found {
        eprintln!("note: python3 is not installed; skipping the Python helper test");
    }
    found
}

/// `python3 -c CODE` with the helper importable and the trial's environment for `endpoint`
/// (none when `None`); `None` when python3 is not installed.
fn python(code: &str, endpoint: Option<&str>) -> Option<Output> {
    if !has_python() {
        return None;
    }
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(code)
        .env("PYTHONPATH", examples_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("SEXTANT_EXPERIMENT")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY");
    match endpoint {
        Some(endpoint) => command
            .env("SEXTANT_ENDPOINT", endpoint)
            .env("SEXTANT_TRIAL", TRIAL)
            .env("SEXTANT_TOKEN", TOKEN),
        None => command.env_remove("SEXTANT_ENDPOINT"),
    };
    Some(command.output().expect("run python3"))
}

#[test]
fn python_helper_pushes_steps_and_sequence_numbers() {
    let server = FakeServer::start();
    let code = "from sextant_report import report\n\
                report(step=3, accuracy=0.93, loss=0.2)\n\
                report(loss=0.1)\n\
                report(loss=0.05)\n";
    let Some(output) = python(code, Some(&server.endpoint())) else {
        return;
    };
    assert_output(&output, output.status.success(), "python succeeds");
    assert!(output.stdout.is_empty(), "nothing printed when pushing");
    assert_eq!(
        server.delivered_triples(),
        [
            ("accuracy".into(), 0.93, 3),
            ("loss".into(), 0.2, 3),
            ("loss".into(), 0.1, 2),
            ("loss".into(), 0.05, 3),
        ]
    );
    let request = &server.requests()[0];
    assert_eq!(
        request.path,
        format!("/v1/experiments/{EXPERIMENT}/trials/{TRIAL}/metrics")
    );
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let timestamp = server.delivered()[0]["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(timestamp.parse::<jiff::Timestamp>().is_ok(), "{timestamp}");
}

#[test]
fn python_helper_retries_5xx_then_delivers() {
    let unavailable = Reply::error(503, "unavailable", "restarting");
    let server = FakeServer::scripted(0, vec![unavailable; 2], Reply::ok());
    let Some(output) = python(
        "from sextant_report import report\nreport(step=1, loss=0.5)\n",
        Some(&server.endpoint()),
    ) else {
        return;
    };
    assert_output(&output, output.status.success(), "python succeeds");
    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.delivered_triples(), [("loss".into(), 0.5, 1)]);
}

#[test]
fn python_helper_raises_the_servers_message_on_4xx() {
    let refused = Reply::error(
        401,
        "unauthenticated",
        "token does not belong to trial exp-0001",
    );
    let server = FakeServer::scripted(0, Vec::new(), refused);
    let Some(output) = python(
        "from sextant_report import report\nreport(step=1, loss=0.5)\n",
        Some(&server.endpoint()),
    ) else {
        return;
    };
    assert_output(&output, !output.status.success(), "python fails");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("SextantReportError"), "{stderr}");
    assert!(
        stderr.contains("(HTTP 401): token does not belong to trial exp-0001"),
        "{stderr}"
    );
    assert_eq!(server.requests().len(), 1, "no retry after a 4xx");
}

#[test]
fn python_helper_refuses_non_finite_values_before_sending() {
    let server = FakeServer::start();
    let code = "from sextant_report import report\n\
                for bad in (float('nan'), float('inf'), float('-inf')):\n\
                \x20   try:\n\
                \x20       report(loss=bad)\n\
                \x20   except ValueError as error:\n\
                \x20       print('refused:', error)\n\
                try:\n\
                \x20   report(loss='0.5')\n\
                except TypeError:\n\
                \x20   print('refused a string')\n";
    let Some(output) = python(code, Some(&server.endpoint())) else {
        return;
    };
    assert_output(&output, output.status.success(), "python succeeds");
    let stdout = text(&output.stdout);
    assert_eq!(stdout.matches("only finite numbers").count(), 3, "{stdout}");
    assert!(stdout.contains("refused a string"), "{stdout}");
    assert!(server.requests().is_empty());
}

#[test]
fn without_an_endpoint_the_example_prints_what_the_stdout_collector_reads() {
    if !has_python() {
        return;
    }
    let output = Command::new("python3")
        .arg(examples_dir().join("train_push.py"))
        .args(["--epochs", "4"])
        .env_remove("SEXTANT_ENDPOINT")
        .output()
        .unwrap();
    assert_output(&output, output.status.success(), "the example succeeds");
    let printed = text(&output.stdout);
    let mut parser = LineParser::new(&["loss".into(), "accuracy".into()], &[]).unwrap();
    let now = jiff::Timestamp::now();
    let parsed = parse_text(&printed, &mut parser, now);
    let steps: Vec<(String, i64)> = parsed
        .iter()
        .map(|o| (o.metric_name.clone(), o.step))
        .collect();
    assert_eq!(steps.len(), 8, "{printed}");
    assert_eq!(steps[0], ("loss".into(), 1));
    assert_eq!(steps[7], ("accuracy".into(), 4));

    // The same run pushed gives the same values at the same steps.
    let server = FakeServer::start();
    let output = Command::new("python3")
        .arg(examples_dir().join("train_push.py"))
        .args(["--epochs", "4"])
        .env("SEXTANT_ENDPOINT", server.endpoint())
        .env("SEXTANT_TRIAL", TRIAL)
        .env("SEXTANT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_output(&output, output.status.success(), "the example succeeds");
    let from_stdout: Vec<(String, f64, i64)> = parsed
        .iter()
        .map(|o| (o.metric_name.clone(), o.value, o.step))
        .collect();
    assert_eq!(server.delivered_triples(), from_stdout);
}

#[test]
fn python_helper_names_a_missing_variable_and_runs_as_a_script() {
    let server = FakeServer::start();
    let Some(output) = python(
        "import os\nos.environ.pop('SEXTANT_TOKEN')\n\
         from sextant_report import report\nreport(loss=0.5)\n",
        Some(&server.endpoint()),
    ) else {
        return;
    };
    assert_output(&output, !output.status.success(), "python fails");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("SEXTANT_TOKEN is not set"), "{stderr}");
    assert!(server.requests().is_empty());

    // `python sextant_report.py loss=0.2 step=3`, for shell-script trials.
    let output = Command::new("python3")
        .arg(examples_dir().join("sextant_report.py"))
        .args(["loss=0.2", "step=3"])
        .env("SEXTANT_ENDPOINT", server.endpoint())
        .env("SEXTANT_TRIAL", TRIAL)
        .env("SEXTANT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_output(&output, output.status.success(), "the script succeeds");
    assert_eq!(server.delivered_triples(), [("loss".into(), 0.2, 3)]);
}

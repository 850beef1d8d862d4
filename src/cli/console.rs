//! What `run` (trials on this machine) and `watch` (an experiment on a server) print while an
//! experiment runs and when it ends: a line per trial that starts or finishes, a status line, and
//! the final table. Shared so the two read the same.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use super::output::{Table, duration, number};
use crate::controller::driver::{Progress, Reporter};
use crate::controller::policy::{self, TrialCounts};
use crate::spec::{CheckedExperiment, Direction, MetricStrategyKind};
use crate::store::{TrialRecord, TrialState};

/// The final table of trials (the best marked `*`) and a line naming the best one.
pub(crate) fn summary_text(checked: &CheckedExperiment, trials: &[TrialRecord]) -> String {
    let best = policy::best_trial(checked.objective.direction, trials);
    let metric = &checked.objective.metric;
    let params: Vec<String> = checked
        .space
        .params()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let mut header = vec![
        "TRIAL".to_string(),
        "STATUS".to_string(),
        metric.to_uppercase(),
    ];
    header.extend(params.iter().map(|p| p.to_uppercase()));
    let mut table = Table::new(header);
    for trial in trials {
        let marker = if best.is_some_and(|b| b.name == trial.name) {
            " *"
        } else {
            ""
        };
        let mut row = vec![
            format!("{}{marker}", trial.name),
            trial.state.to_string(),
            trial.objective.map(number).unwrap_or_else(|| "-".into()),
        ];
        row.extend(params.iter().map(|p| {
            trial
                .assignments
                .iter()
                .find(|a| &a.name == p)
                .map(|a| a.value.clone())
                .unwrap_or_default()
        }));
        table.row(row);
    }
    let mut text = table.render();
    match best {
        Some(best) => text.push_str(&format!(
            "\nbest: {} with {metric}={} ({}): {}\n",
            best.name,
            best.objective.map(number).unwrap_or_default(),
            match checked.objective.direction {
                Direction::Maximize => "maximize",
                Direction::Minimize => "minimize",
            },
            best.assignments
                .iter()
                .map(|a| format!("{}={}", a.name, a.value))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        None => text.push_str("\nno trial reported the objective metric yet\n"),
    }
    text
}

/// Progress on stderr: a line per finished trial, and a status line kept up to date on a terminal.
pub(crate) struct ConsoleReporter {
    /// Each metric's strategy, so a finished trial shows the value that counts (`max` accuracy),
    /// not merely the last one.
    strategies: BTreeMap<String, MetricStrategyKind>,
    quiet: bool,
    terminal: bool,
    status_shown: bool,
}

impl ConsoleReporter {
    pub(crate) fn new(quiet: bool, strategies: BTreeMap<String, MetricStrategyKind>) -> Self {
        ConsoleReporter {
            strategies,
            quiet,
            terminal: std::io::stderr().is_terminal(),
            status_shown: false,
        }
    }

    pub(crate) fn clear_status(&mut self) {
        if self.status_shown {
            eprint!("\r\x1b[2K");
            self.status_shown = false;
        }
    }

    fn line(&mut self, text: &str) {
        if self.quiet {
            return;
        }
        self.clear_status();
        eprintln!("{text}");
    }

    fn status(&mut self, progress: &Progress<'_>) {
        if self.quiet || !self.terminal {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", status_text(progress));
        let _ = err.flush();
        self.status_shown = true;
    }
}

fn status_text(progress: &Progress<'_>) -> String {
    let c: TrialCounts = progress.counts;
    let done = c.finished();
    let total = progress
        .max_trials
        .map_or(String::new(), |m| format!("/{m}"));
    let best = progress
        .best
        .and_then(|b| {
            b.objective
                .map(|v| format!("best {} ({})", number(v), b.name))
        })
        .unwrap_or_else(|| "no result yet".into());
    format!(
        "[{done}{total} done, {} running, {} failed] {best} · {}",
        c.running,
        c.failed_for_budget(),
        duration(progress.elapsed)
    )
}

impl Reporter for ConsoleReporter {
    fn note(&mut self, message: &str) {
        self.line(message);
    }

    fn trial_started(&mut self, trial: &TrialRecord, progress: &Progress<'_>) {
        let params = trial
            .assignments
            .iter()
            .map(|a| format!("{}={}", a.name, a.value))
            .collect::<Vec<_>>()
            .join(" ");
        if trial.state == TrialState::Failed {
            self.line(&format!(
                "✗ {} could not start: {}",
                trial.name, trial.message
            ));
        } else {
            self.line(&format!("▸ {} started: {params}", trial.name));
        }
        self.status(progress);
    }

    fn trial_finished(&mut self, trial: &TrialRecord, progress: &Progress<'_>) {
        let metrics = trial
            .metrics
            .iter()
            .map(|m| {
                let (value, how) = match self.strategies.get(&m.name) {
                    Some(MetricStrategyKind::Min) => (m.min, "min"),
                    Some(MetricStrategyKind::Max) => (m.max, "max"),
                    _ => (m.latest, "latest"),
                };
                format!("{}={} ({how})", m.name, number(value))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let symbol = match trial.state {
            TrialState::Succeeded => "✓",
            TrialState::Killed | TrialState::EarlyStopped => "■",
            _ => "✗",
        };
        let detail = match trial.state {
            TrialState::Succeeded => metrics,
            _ => format!("{} {}", metrics, trial.message).trim().to_string(),
        };
        let text = format!("{symbol} {} {}: {detail}", trial.name, trial.state);
        self.line(&text);
        if !self.terminal && !self.quiet {
            eprintln!("  {}", status_text(progress));
        }
        self.status(progress);
    }

    fn tick(&mut self, progress: &Progress<'_>) {
        self.status(progress);
    }
}

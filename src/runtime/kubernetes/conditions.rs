//! Whether a trial's workload succeeded or failed: Katib's `successCondition` and
//! `failureCondition`.
//!
//! Katib evaluates each condition with GJSON (`github.com/tidwall/gjson`) against the workload
//! object and counts it as met when the result is an object or a non-empty array; the failure
//! condition is checked first, and the first matched element's `reason` and `message` become the
//! trial's (`GetDeployedJobStatus`, pkg/controller.v1beta1/trial/util/job_util.go). Sextant does the
//! same with the part of GJSON that Katib's defaults and examples use:
//!
//! - `status.conditions`: keys separated by `.` (a number indexes a list);
//! - `#(type=="Complete")#`: every element of a list whose field compares true (`==` or `!=`
//!   against a quoted string, a number, `true`, `false` or `null`; the field may be a dotted path);
//!   `#(...)` without the trailing `#`: the first such element;
//! - `|`: applies what follows to the whole result (after `#(...)#`, a `.key` applies to each
//!   element, as in GJSON);
//! - `[@this]`: the current value wrapped in a list (Katib's Argo Workflow example,
//!   `status.[@this].#(phase=="Succeeded")#`).
//!
//! Anything else (wildcards, modifiers, other operators, escapes) is refused by [`check`], which the
//! spec validator calls, with a message listing what is supported.

use serde_json::Value;

use crate::runtime::ExitOutcome;
use crate::spec::FieldError;
use crate::spec::TrialTemplate;
use crate::spec::defaults::{
    JOB_FAILURE_CONDITION, JOB_KIND, JOB_SUCCESS_CONDITION, KUBEFLOW_JOB_FAILURE_CONDITION,
    KUBEFLOW_JOB_KINDS, KUBEFLOW_JOB_SUCCESS_CONDITION, TRAIN_JOB_FAILURE_CONDITION,
    TRAIN_JOB_KIND, TRAIN_JOB_SUCCESS_CONDITION,
};

/// What a condition may use, for messages.
pub const SUPPORTED_SYNTAX: &str = "supported: keys separated by `.` (e.g. status.conditions), \
    `#(field==\"value\")#` (every matching list element) and `#(field==\"value\")` (the first), \
    with == or != against a quoted string, a number, true, false or null, `|` to apply the rest to \
    the whole result, and `[@this]`";

/// Where a workload stands, by its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadPhase {
    /// Neither condition is met.
    Running,
    /// The success condition is met (and the failure condition is not).
    Succeeded,
    /// The failure condition is met.
    Failed,
}

/// A workload's phase with the reason and message of the condition that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadStatus {
    /// The phase.
    pub phase: WorkloadPhase,
    /// `reason` of the matched condition, if it has one.
    pub reason: Option<String>,
    /// `message` of the matched condition, if it has one.
    pub message: Option<String>,
}

/// How a workload ended, in the terms the driver takes a trial's exit in, so that the Kubernetes
/// runtime reports a finished workload exactly as the local one reports a process exit and the
/// driver decides the trial's state (Succeeded or MetricsUnavailable by its metrics, Failed ...):
/// Succeeded is exit code 0, Failed an error that carries the workload's reason and message,
/// Running is not an end (`None`).
pub fn workload_outcome(status: &WorkloadStatus) -> Option<ExitOutcome> {
    match status.phase {
        WorkloadPhase::Running => None,
        WorkloadPhase::Succeeded => Some(ExitOutcome::Code(0)),
        WorkloadPhase::Failed => {
            let reason = status.reason.as_deref().filter(|r| !r.is_empty());
            let message = status.message.as_deref().filter(|m| !m.is_empty());
            Some(ExitOutcome::Error(match (reason, message) {
                (Some(reason), Some(message)) => {
                    format!("the workload failed ({reason}): {message}")
                }
                (Some(text), None) | (None, Some(text)) => format!("the workload failed: {text}"),
                (None, None) => {
                    "the workload failed: its failureCondition matched, with no reason or message"
                        .to_string()
                }
            }))
        }
    }
}

/// Katib's default (success, failure) conditions for a workload kind, `None` for kinds Katib has
/// no defaults for.
pub fn default_conditions(kind: &str) -> Option<(&'static str, &'static str)> {
    if kind == JOB_KIND {
        Some((JOB_SUCCESS_CONDITION, JOB_FAILURE_CONDITION))
    } else if KUBEFLOW_JOB_KINDS.contains(&kind) {
        Some((
            KUBEFLOW_JOB_SUCCESS_CONDITION,
            KUBEFLOW_JOB_FAILURE_CONDITION,
        ))
    } else if kind == TRAIN_JOB_KIND {
        Some((TRAIN_JOB_SUCCESS_CONDITION, TRAIN_JOB_FAILURE_CONDITION))
    } else {
        None
    }
}

/// Checks that a condition uses only what Sextant evaluates; the error says what is wrong and
/// lists what is supported.
pub fn check(expression: &str) -> Result<(), String> {
    Condition::parse(expression).map(|_| ())
}

/// A trial template's success and failure conditions, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    success: Condition,
    failure: Condition,
}

impl Conditions {
    /// The template's conditions, or Katib's defaults for its kind where it sets none. Errors name
    /// `spec.trialTemplate.successCondition` or `failureCondition`.
    pub fn for_template(template: &TrialTemplate) -> Result<Conditions, FieldError> {
        let kind = template
            .trial_spec
            .as_ref()
            .and_then(|spec| spec.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let defaults = default_conditions(kind);
        let pick = |field: &str, set: &Option<String>, default: Option<&'static str>| {
            let path = format!("spec.trialTemplate.{field}");
            let text = set
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .or(default)
                .ok_or_else(|| {
                    FieldError::new(
                        &path,
                        "",
                        format!(
                            "required for kind {kind:?}: Katib has default conditions only for Job, {}, {TRAIN_JOB_KIND}",
                            KUBEFLOW_JOB_KINDS.join(", ")
                        ),
                    )
                })?;
            Condition::parse(text).map_err(|message| FieldError::new(&path, text, message))
        };
        Ok(Conditions {
            success: pick(
                "successCondition",
                &template.success_condition,
                defaults.map(|d| d.0),
            )?,
            failure: pick(
                "failureCondition",
                &template.failure_condition,
                defaults.map(|d| d.1),
            )?,
        })
    }

    /// Where the workload stands: Failed when the failure condition is met, else Succeeded when
    /// the success condition is, else Running (Katib's order).
    pub fn status(&self, workload: &Value) -> WorkloadStatus {
        for (condition, phase) in [
            (&self.failure, WorkloadPhase::Failed),
            (&self.success, WorkloadPhase::Succeeded),
        ] {
            if let Some(matched) = condition.matched(workload) {
                let text = |key: &str| matched.get(key).and_then(Value::as_str).map(str::to_string);
                return WorkloadStatus {
                    phase,
                    reason: text("reason"),
                    message: text("message"),
                };
            }
        }
        WorkloadStatus {
            phase: WorkloadPhase::Running,
            reason: None,
            message: None,
        }
    }
}

/// One parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
struct Step {
    /// Joined to the previous step with `|` (whole result) rather than `.`.
    piped: bool,
    component: Component,
}

#[derive(Debug, Clone, PartialEq)]
enum Component {
    Key(String),
    This,
    Query {
        path: Vec<String>,
        equal: bool,
        literal: Value,
        all: bool,
    },
}

impl Condition {
    /// Parses a condition; the error says what is wrong and lists what is supported.
    pub fn parse(expression: &str) -> Result<Condition, String> {
        let refuse = |what: String| Err(format!("{what}; {SUPPORTED_SYNTAX}"));
        if expression.trim().is_empty() {
            return refuse("empty condition".into());
        }
        let mut steps = Vec::new();
        let mut rest = expression;
        let mut piped = false;
        loop {
            let (component, after) = match parse_component(rest) {
                Ok(parsed) => parsed,
                Err(what) => return refuse(what),
            };
            steps.push(Step { piped, component });
            let mut chars = after.chars();
            match chars.next() {
                None => break,
                Some('.') => piped = false,
                Some('|') => piped = true,
                Some(other) => return refuse(format!("unexpected {other:?} in {after:?}")),
            }
            rest = chars.as_str();
            if rest.is_empty() {
                return refuse(format!("{expression:?} ends with a separator"));
            }
        }
        Ok(Condition { steps })
    }

    /// The value the condition selects in `object`, when it is met (an object or a non-empty
    /// list, as Katib counts it): the object, or the list's first element.
    pub fn matched(&self, object: &Value) -> Option<Value> {
        let mut current = Some(object.clone());
        // After `#(...)#`, a `.` step applies to each element of the result (GJSON).
        let mut per_element = false;
        for step in &self.steps {
            let value = current?;
            if step.piped {
                per_element = false;
            }
            current = if per_element {
                let items = value.as_array()?;
                Some(Value::Array(
                    items
                        .iter()
                        .filter_map(|item| step.component.apply(item))
                        .collect(),
                ))
            } else {
                step.component.apply(&value)
            };
            if let Component::Query { all: true, .. } = step.component {
                per_element = true;
            }
        }
        match current? {
            Value::Object(map) => Some(Value::Object(map)),
            Value::Array(mut items) if !items.is_empty() => Some(items.swap_remove(0)),
            _ => None,
        }
    }
}

impl Component {
    fn apply(&self, value: &Value) -> Option<Value> {
        match self {
            Component::Key(key) => match value {
                Value::Object(map) => map.get(key).cloned(),
                Value::Array(items) => key
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i).cloned()),
                _ => None,
            },
            Component::This => Some(Value::Array(vec![value.clone()])),
            Component::Query {
                path,
                equal,
                literal,
                all,
            } => {
                let items = value.as_array()?;
                let mut matches = items.iter().filter(|item| {
                    let field = path.iter().try_fold(*item, |v, key| v.get(key));
                    let same = field.is_some_and(|f| same_value(f, literal));
                    // GJSON: `!=` needs the field to exist.
                    if *equal {
                        same
                    } else {
                        field.is_some() && !same
                    }
                });
                if *all {
                    Some(Value::Array(matches.cloned().collect()))
                } else {
                    matches.next().cloned()
                }
            }
        }
    }
}

fn same_value(field: &Value, literal: &Value) -> bool {
    match (field, literal) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// Characters that mean GJSON syntax Sextant does not evaluate when they appear in a key.
const UNSUPPORTED_IN_KEY: &[char] = &[
    '#', '@', '*', '?', '[', ']', '{', '}', '(', ')', '!', '=', '<', '>', '%', '\\', '"', ' ',
];

/// One component and what follows it (starting at its separator).
fn parse_component(text: &str) -> Result<(Component, &str), String> {
    if let Some(after) = text.strip_prefix("[@this]") {
        return Ok((Component::This, after));
    }
    if let Some(inner_and_rest) = text.strip_prefix("#(") {
        let close = closing_paren(inner_and_rest)
            .ok_or_else(|| format!("{text:?}: `#(` without its closing `)`"))?;
        let inner = &inner_and_rest[..close];
        let mut after = &inner_and_rest[close + 1..];
        let all = after.starts_with('#');
        if all {
            after = &after[1..];
        }
        let (path, equal, literal) = parse_query(inner)?;
        return Ok((
            Component::Query {
                path,
                equal,
                literal,
                all,
            },
            after,
        ));
    }
    let end = text.find(['.', '|']).unwrap_or(text.len());
    let key = &text[..end];
    if key.is_empty() {
        return Err(format!("an empty key before {:?}", &text[end..]));
    }
    if let Some(bad) = key.chars().find(|c| UNSUPPORTED_IN_KEY.contains(c)) {
        return Err(format!(
            "{key:?}: {bad:?} is GJSON syntax Sextant does not evaluate"
        ));
    }
    Ok((Component::Key(key.to_string()), &text[end..]))
}

/// The index of the `)` that closes a query, skipping quoted strings.
fn closing_paren(text: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ')' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// `field==literal` or `field!=literal`.
fn parse_query(inner: &str) -> Result<(Vec<String>, bool, Value), String> {
    let (field, equal, literal) = if let Some((field, literal)) = inner.split_once("==") {
        (field, true, literal)
    } else if let Some((field, literal)) = inner.split_once("!=") {
        (field, false, literal)
    } else {
        return Err(format!(
            "query #({inner}): expected field==value or field!=value"
        ));
    };
    let field = field.trim();
    let path: Vec<String> = field.split('.').map(str::to_string).collect();
    if path
        .iter()
        .any(|k| k.is_empty() || k.contains(UNSUPPORTED_IN_KEY))
    {
        return Err(format!("query #({inner}): {field:?} is not a field path"));
    }
    let literal = literal.trim();
    let value = if let Some(quoted) = literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        if quoted.contains(['"', '\\']) {
            return Err(format!(
                "query #({inner}): quotes and escapes inside a string are not supported"
            ));
        }
        Value::String(quoted.to_string())
    } else {
        match literal {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            number => match serde_json::from_str::<serde_json::Number>(number) {
                Ok(n) => Value::Number(n),
                Err(_) => {
                    return Err(format!(
                        "query #({inner}): {literal:?} is not a quoted string, number, true, false or null"
                    ));
                }
            },
        }
    };
    Ok((path, equal, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(kind: &str) -> TrialTemplate {
        TrialTemplate {
            trial_spec: Some(json!({"kind": kind})),
            ..TrialTemplate::default()
        }
    }

    fn with_conditions(conditions: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": conditions}})
    }

    #[test]
    fn job_complete_failed_and_running() {
        let conditions = Conditions::for_template(&template("Job")).unwrap();
        let complete = with_conditions(json!([
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"},
        ]));
        assert_eq!(
            conditions.status(&complete),
            WorkloadStatus {
                phase: WorkloadPhase::Succeeded,
                reason: Some("CompletionsReached".into()),
                message: Some("Reached expected number of succeeded pods".into()),
            }
        );
        let failed = with_conditions(json!([
            {"type": "FailureTarget", "status": "True"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"},
        ]));
        let status = conditions.status(&failed);
        assert_eq!(status.phase, WorkloadPhase::Failed);
        assert_eq!(status.reason.as_deref(), Some("BackoffLimitExceeded"));
        for running in [
            json!({"kind": "Job", "status": {"active": 1}}),
            json!({"kind": "Job"}),
            with_conditions(json!([])),
            with_conditions(json!([{"type": "Complete", "status": "False"}])),
            with_conditions(json!([{"type": "Suspended", "status": "True"}])),
        ] {
            assert_eq!(
                conditions.status(&running).phase,
                WorkloadPhase::Running,
                "{running}"
            );
        }
    }

    #[test]
    fn failure_is_checked_before_success() {
        let conditions = Conditions::for_template(&template("Job")).unwrap();
        let both = with_conditions(json!([
            {"type": "Complete", "status": "True"},
            {"type": "Failed", "status": "True"},
        ]));
        assert_eq!(conditions.status(&both).phase, WorkloadPhase::Failed);
    }

    #[test]
    fn pytorchjob_uses_succeeded_and_failed() {
        let conditions = Conditions::for_template(&template("PyTorchJob")).unwrap();
        let job = |conditions: Value| {
            json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "status": {
                "conditions": conditions,
                "replicaStatuses": {"Master": {"succeeded": 1}, "Worker": {"succeeded": 1}}
            }})
        };
        let created = json!({"type": "Created", "status": "True"});
        let running = json!({"type": "Running", "status": "False"});
        let succeeded =
            json!({"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded"});
        assert_eq!(
            conditions
                .status(&job(
                    json!([created, {"type": "Running", "status": "True"}])
                ))
                .phase,
            WorkloadPhase::Running
        );
        let status = conditions.status(&job(json!([created, running, succeeded])));
        assert_eq!(status.phase, WorkloadPhase::Succeeded);
        assert_eq!(status.reason.as_deref(), Some("PyTorchJobSucceeded"));
        assert_eq!(
            conditions
                .status(&job(json!([created, {"type": "Failed", "status": "True"}])))
                .phase,
            WorkloadPhase::Failed
        );
        // A Job's "Complete" means nothing to a PyTorchJob.
        assert_eq!(
            conditions
                .status(&job(json!([{"type": "Complete", "status": "True"}])))
                .phase,
            WorkloadPhase::Running
        );
    }

    #[test]
    fn the_templates_own_conditions_win() {
        // Katib's Tekton example: failure is Succeeded=False.
        let mut t = template("PipelineRun");
        t.success_condition =
            Some(r#"status.conditions.#(type=="Succeeded")#|#(status=="True")#"#.into());
        t.failure_condition =
            Some(r#"status.conditions.#(type=="Succeeded")#|#(status=="False")#"#.into());
        let conditions = Conditions::for_template(&t).unwrap();
        let run = |status: &str| json!({"status": {"conditions": [{"type": "Succeeded", "status": status}]}});
        assert_eq!(
            conditions.status(&run("True")).phase,
            WorkloadPhase::Succeeded
        );
        assert_eq!(
            conditions.status(&run("False")).phase,
            WorkloadPhase::Failed
        );
        assert_eq!(
            conditions.status(&run("Unknown")).phase,
            WorkloadPhase::Running
        );
    }

    #[test]
    fn argo_example_wraps_status_with_this() {
        let mut t = template("Workflow");
        t.success_condition = Some(r#"status.[@this].#(phase=="Succeeded")#"#.into());
        t.failure_condition = Some(r#"status.[@this].#(phase=="Failed")#"#.into());
        let conditions = Conditions::for_template(&t).unwrap();
        let workflow = |phase: &str| json!({"status": {"phase": phase}});
        assert_eq!(
            conditions.status(&workflow("Succeeded")).phase,
            WorkloadPhase::Succeeded
        );
        assert_eq!(
            conditions.status(&workflow("Failed")).phase,
            WorkloadPhase::Failed
        );
        assert_eq!(
            conditions.status(&workflow("Running")).phase,
            WorkloadPhase::Running
        );
        assert_eq!(conditions.status(&json!({})).phase, WorkloadPhase::Running);
    }

    #[test]
    fn first_match_queries_keys_indexes_and_literals() {
        let object = json!({"status": {
            "conditions": [{"type": "A", "n": 1, "ok": true}, {"type": "B", "n": 2.0, "ok": false, "meta": {"x": "y"}}],
            "inner": {"state": {"phase": "Done"}},
        }});
        let met = |expression: &str| Condition::parse(expression).unwrap().matched(&object);
        assert_eq!(
            met(r#"status.conditions.#(type=="B")"#).unwrap()["type"],
            "B"
        );
        assert_eq!(met("status.conditions.#(n==2)").unwrap()["type"], "B");
        assert_eq!(met("status.conditions.#(ok==true)#").unwrap()["type"], "A");
        assert_eq!(
            met(r#"status.conditions.#(meta.x=="y")"#).unwrap()["type"],
            "B"
        );
        assert_eq!(
            met(r#"status.conditions.#(type!="A")#"#).unwrap()["type"],
            "B"
        );
        assert_eq!(met("status.conditions.1").unwrap()["type"], "B");
        assert_eq!(met("status.inner.state").unwrap()["phase"], "Done");
        // A string, a missing key, an empty match: not met.
        assert_eq!(met("status.inner.state.phase"), None);
        assert_eq!(met("status.nothing"), None);
        assert_eq!(met(r#"status.conditions.#(type=="C")#"#), None);
        assert_eq!(met(r#"status.conditions.#(type=="C")"#), None);
        // `!=` needs the field: no element lacks `meta` and matches.
        assert_eq!(
            met(r#"status.conditions.#(meta.x!="z")#"#).unwrap()["type"],
            "B"
        );
        // After `#(...)#`, `.key` maps over the elements; `|` applies to the whole list.
        assert_eq!(
            met("status.conditions.#(ok==false)#.meta").unwrap(),
            json!({"x": "y"})
        );
        assert_eq!(
            met("status.conditions.#(ok==false)#|0").unwrap()["type"],
            "B"
        );
    }

    #[test]
    fn defaults_by_kind_are_katibs() {
        assert_eq!(
            default_conditions("Job"),
            Some((JOB_SUCCESS_CONDITION, JOB_FAILURE_CONDITION))
        );
        for kind in ["TFJob", "PyTorchJob", "XGBoostJob", "MPIJob"] {
            assert_eq!(
                default_conditions(kind),
                Some((
                    KUBEFLOW_JOB_SUCCESS_CONDITION,
                    KUBEFLOW_JOB_FAILURE_CONDITION
                ))
            );
        }
        assert_eq!(
            default_conditions("TrainJob").unwrap().0,
            TRAIN_JOB_SUCCESS_CONDITION
        );
        assert_eq!(default_conditions("Workflow"), None);
        for (success, failure) in [
            default_conditions("Job").unwrap(),
            default_conditions("TFJob").unwrap(),
            default_conditions("TrainJob").unwrap(),
        ] {
            check(success).unwrap();
            check(failure).unwrap();
        }
    }

    #[test]
    fn unsupported_syntax_is_refused_listing_what_is_supported() {
        for bad in [
            "",
            "status.conditions.#",
            "status.conditions.#.type",
            "status.*.type",
            "status.conditions.#(type%\"Com*\")#",
            "status.conditions.#(type>1)#",
            "status.conditions.#(type==Complete)#",
            "status.conditions.#(type==\"a\\\"b\")#",
            "status.conditions.#(type==\"Complete\"",
            "status..conditions",
            "status.conditions.",
            "status|@reverse",
            "status.{a,b}",
            "status.conditions.#(type==\"x\")#x",
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(SUPPORTED_SYNTAX), "{bad:?}: {err}");
        }
    }

    #[test]
    fn template_errors_name_the_condition_field() {
        let mut t = template("Job");
        t.failure_condition = Some("status.*".into());
        let err = Conditions::for_template(&t).unwrap_err();
        assert_eq!(err.path, "spec.trialTemplate.failureCondition");
        assert_eq!(err.value, "status.*");
        let err = Conditions::for_template(&template("Workflow")).unwrap_err();
        assert_eq!(err.path, "spec.trialTemplate.successCondition");
        assert!(
            err.message.contains("required for kind \"Workflow\""),
            "{err}"
        );
    }

    #[test]
    fn finished_workloads_become_exits_the_driver_understands() {
        let status = |phase, reason: Option<&str>, message: Option<&str>| WorkloadStatus {
            phase,
            reason: reason.map(str::to_string),
            message: message.map(str::to_string),
        };
        assert_eq!(
            workload_outcome(&status(WorkloadPhase::Running, None, None)),
            None
        );
        assert_eq!(
            workload_outcome(&status(
                WorkloadPhase::Succeeded,
                Some("CompletionsReached"),
                Some("Reached expected number of succeeded pods")
            )),
            Some(ExitOutcome::Code(0))
        );
        assert_eq!(
            workload_outcome(&status(
                WorkloadPhase::Failed,
                Some("BackoffLimitExceeded"),
                Some("Job has reached the specified backoff limit")
            )),
            Some(ExitOutcome::Error(
                "the workload failed (BackoffLimitExceeded): Job has reached the specified backoff limit"
                    .into()
            ))
        );
        assert_eq!(
            workload_outcome(&status(
                WorkloadPhase::Failed,
                Some("DeadlineExceeded"),
                Some("")
            )),
            Some(ExitOutcome::Error(
                "the workload failed: DeadlineExceeded".into()
            ))
        );
        let Some(ExitOutcome::Error(bare)) =
            workload_outcome(&status(WorkloadPhase::Failed, None, None))
        else {
            panic!("a failed workload is an error exit");
        };
        assert!(bare.contains("failureCondition matched"), "{bare}");
    }
}

//! One test per rule, both sides: a valid base spec passes; one field changed breaks exactly the
//! rule under test, at the expected path, with a message that says what is accepted.

use serde_json::{Value, json};

use super::*;
use crate::spec::FieldError;
use crate::spec::defaults::apply_defaults;
use crate::spec::parse::parse_experiment;
use crate::spec::types::{
    AlgorithmSetting, CollectorSpec, ConfigMapSource, EarlyStoppingSpec, FeasibleSpace,
    FileSystemPath, FilterSpec, MetricStrategy, MetricsCollectorSpec, NasConfig, SourceSpec,
    TrialParameterSpec, TrialTemplate,
};
use sextant_algorithms::{Distribution, Domain};

const BASE: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: mnist-random
  namespace: kubeflow
spec:
  objective:
    type: maximize
    goal: 0.99
    objectiveMetricName: accuracy
    additionalMetricNames: [loss]
  algorithm:
    algorithmName: random
    algorithmSettings:
      - name: random_state
        value: "42"
  parallelTrialCount: 3
  maxTrialCount: 12
  maxFailedTrialCount: 3
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.001", max: "0.1", distribution: logUniform}
    - name: layers
      parameterType: int
      feasibleSpace: {min: "1", max: "5"}
    - name: batch
      parameterType: discrete
      feasibleSpace: {list: ["16", "32.0", "64"]}
    - name: optimizer
      parameterType: categorical
      feasibleSpace: {list: [sgd, adam]}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: learningRate
        reference: lr
      - name: numLayers
        reference: layers
      - name: batchSize
        reference: batch
      - name: optimizer
        reference: optimizer
      - name: trialName
        reference: ${trialSpec.Name}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      metadata:
        labels: {team: vision}
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: docker.io/example/mnist:latest
                command:
                  - python3
                  - /opt/mnist.py
                  - --lr=${trialParameters.learningRate}
                  - --layers=${trialParameters.numLayers}
                  - --batch-size=${trialParameters.batchSize}
                  - --optimizer=${trialParameters.optimizer}
                env:
                  - name: TRIAL_NAME
                    value: ${trialParameters.trialName}
                resources:
                  limits:
                    nvidia.com/gpu: 1
            restartPolicy: Never
"#;

fn outcome(edit: impl FnOnce(&mut Experiment)) -> Result<CheckedExperiment, Vec<FieldError>> {
    let mut experiment = parse_experiment(BASE).expect("the base spec parses");
    edit(&mut experiment);
    apply_defaults(&mut experiment);
    match validate(experiment) {
        Ok(checked) => Ok(checked),
        Err(SpecError::Invalid(errors)) => Err(errors),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// Asserts the edited spec is refused with an error at `path` whose message contains `accepted`.
#[track_caller]
fn refused(edit: impl FnOnce(&mut Experiment), path: &str, accepted: &str) -> FieldError {
    let errors = match outcome(edit) {
        Ok(_) => panic!("expected an error at {path}, but the spec passed"),
        Err(errors) => errors,
    };
    let Some(error) = errors.iter().find(|e| e.path == path) else {
        panic!("no error at {path}; errors: {errors:#?}");
    };
    assert!(
        error.message.contains(accepted),
        "message at {path} does not say {accepted:?}: {error}"
    );
    error.clone()
}

/// Asserts the edited spec passes every rule.
#[track_caller]
fn accepted(edit: impl FnOnce(&mut Experiment)) -> CheckedExperiment {
    match outcome(edit) {
        Ok(checked) => checked,
        Err(errors) => panic!("expected the spec to pass; errors: {errors:#?}"),
    }
}

fn space(e: &mut Experiment, i: usize) -> &mut FeasibleSpace {
    &mut e.spec.parameters[i].feasible_space
}

fn template(e: &mut Experiment) -> &mut TrialTemplate {
    e.spec.trial_template.as_mut().unwrap()
}

fn trial_spec(e: &mut Experiment) -> &mut Value {
    template(e).trial_spec.as_mut().unwrap()
}

fn container(e: &mut Experiment) -> &mut Value {
    &mut trial_spec(e)["spec"]["template"]["spec"]["containers"][0]
}

fn objective(e: &mut Experiment) -> &mut crate::spec::types::ObjectiveSpec {
    e.spec.objective.as_mut().unwrap()
}

fn collector(e: &mut Experiment, kind: &str, source: Option<SourceSpec>) {
    e.spec.metrics_collector_spec = Some(MetricsCollectorSpec {
        source,
        collector: Some(CollectorSpec {
            kind: kind.into(),
            custom_collector: None,
        }),
    });
}

fn file_source(path: &str, kind: Option<&str>, format: Option<&str>) -> SourceSpec {
    SourceSpec {
        file_system_path: Some(FileSystemPath {
            path: path.into(),
            kind: kind.map(str::to_string),
            format: format.map(str::to_string),
        }),
        ..SourceSpec::default()
    }
}

fn filter_source(filters: &[&str]) -> SourceSpec {
    SourceSpec {
        filter: Some(FilterSpec {
            metrics_format: filters.iter().map(|f| f.to_string()).collect(),
        }),
        ..SourceSpec::default()
    }
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

// ---------------------------------------------------------------------------------------------
// The base and the typed result

#[test]
fn the_base_spec_passes_and_becomes_typed() {
    let checked = accepted(|_| {});
    assert_eq!(checked.name, "mnist-random");
    assert_eq!(checked.parallel_trial_count, 3);
    assert_eq!(checked.max_trial_count, Some(12));
    assert_eq!(checked.max_failed_trial_count, Some(3));
    assert_eq!(checked.collector, Collector::StdOut { filters: vec![] });
    assert_eq!(
        checked.algorithm,
        Algorithm {
            name: "random".into(),
            settings: vec![("random_state".into(), "42".into())],
            seed: Some(42),
        }
    );
    assert_eq!(checked.objective.direction, Direction::Maximize);
    assert_eq!(checked.objective.goal, Some(0.99));
    assert_eq!(checked.objective.metric_names(), vec!["accuracy", "loss"]);
    assert_eq!(
        checked.objective.strategies,
        BTreeMap::from([
            ("accuracy".to_string(), MetricStrategyKind::Max),
            ("loss".to_string(), MetricStrategyKind::Max),
        ])
    );
    let domains: Vec<&Domain> = checked.space.params().iter().map(|p| &p.domain).collect();
    assert_eq!(
        domains,
        vec![
            &Domain::Double {
                min: 0.001,
                max: 0.1,
                step: None,
                distribution: Distribution::LogUniform
            },
            &Domain::Int {
                min: 1,
                max: 5,
                step: None,
                distribution: Distribution::Uniform
            },
            &Domain::Discrete {
                values: vec![16.0, 32.0, 64.0],
                labels: vec!["16".into(), "32.0".into(), "64".into()]
            },
            &Domain::Categorical {
                choices: vec!["sgd".into(), "adam".into()]
            },
        ]
    );
    let template = &checked.template;
    assert_eq!(
        template.success_condition.as_deref(),
        Some(crate::spec::defaults::JOB_SUCCESS_CONDITION)
    );
    assert_eq!(
        checked.experiment.spec.resume_policy.as_deref(),
        Some("Never")
    );
}

#[test]
fn check_reads_defaults_and_validates_yaml_text() {
    let checked = crate::spec::check(BASE).unwrap();
    assert_eq!(checked.name, "mnist-random");
    let err = crate::spec::check(&BASE.replace("type: maximize", "type: up")).unwrap_err();
    assert!(err.to_string().contains("spec.objective.type"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let errors = outcome(|e| {
        e.metadata.name = "Bad_Name".into();
        e.spec.max_trial_count = Some(0);
        objective(e).objective_type = "up".into();
        space(e, 1).max = s("zero");
        collector(e, "TensorFlowEvent", None);
    })
    .unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for path in [
        "metadata.name",
        "spec.maxTrialCount",
        "spec.objective.type",
        "spec.parameters[1].feasibleSpace.max",
        "spec.metricsCollectorSpec.collector.kind",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// metadata.name

#[test]
fn name_is_required() {
    refused(
        |e| e.metadata.name.clear(),
        "metadata.name",
        "required: lower-case",
    );
}

#[test]
fn name_must_be_a_lowercase_dns_label() {
    for bad in ["Mnist", "my_exp", "-exp", "exp-", "1exp", "ex p"] {
        let err = refused(
            |e| e.metadata.name = bad.into(),
            "metadata.name",
            "lower-case letters, digits and '-'",
        );
        assert_eq!(err.value, bad);
    }
    for good in ["a", "exp-1", "x9-y"] {
        accepted(|e| e.metadata.name = good.into());
    }
}

#[test]
fn name_is_at_most_40_characters() {
    refused(
        |e| e.metadata.name = "a".repeat(41),
        "metadata.name",
        "at most 40",
    );
    accepted(|e| e.metadata.name = "a".repeat(40));
}

// ---------------------------------------------------------------------------------------------
// Counts

#[test]
fn max_trial_count_must_be_positive() {
    refused(
        |e| e.spec.max_trial_count = Some(0),
        "spec.maxTrialCount",
        "greater than 0",
    );
    let checked = accepted(|e| {
        e.spec.max_trial_count = None;
        e.spec.max_failed_trial_count = None;
    });
    assert_eq!(checked.max_trial_count, None);
}

#[test]
fn parallel_trial_count_must_be_positive() {
    refused(
        |e| e.spec.parallel_trial_count = Some(0),
        "spec.parallelTrialCount",
        "greater than 0",
    );
    accepted(|e| e.spec.parallel_trial_count = Some(1));
}

#[test]
fn parallel_trial_count_is_at_most_max_trial_count() {
    refused(
        |e| e.spec.parallel_trial_count = Some(13),
        "spec.parallelTrialCount",
        "at most spec.maxTrialCount (12)",
    );
    accepted(|e| e.spec.parallel_trial_count = Some(12));
}

#[test]
fn max_failed_trial_count_is_not_negative() {
    refused(
        |e| e.spec.max_failed_trial_count = Some(-1),
        "spec.maxFailedTrialCount",
        "0 or more",
    );
    accepted(|e| e.spec.max_failed_trial_count = Some(0));
}

#[test]
fn max_failed_trial_count_is_at_most_max_trial_count() {
    refused(
        |e| e.spec.max_failed_trial_count = Some(13),
        "spec.maxFailedTrialCount",
        "at most spec.maxTrialCount (12)",
    );
    accepted(|e| e.spec.max_failed_trial_count = Some(12));
}

#[test]
fn counts_fit_katibs_int32() {
    refused(
        |e| {
            e.spec.max_trial_count = Some(i64::from(i32::MAX) + 1);
        },
        "spec.maxTrialCount",
        "at most 2147483647",
    );
    accepted(|e| e.spec.max_trial_count = Some(i64::from(i32::MAX)));
}

// ---------------------------------------------------------------------------------------------
// resumePolicy

#[test]
fn resume_policy_is_one_of_katibs() {
    refused(
        |e| e.spec.resume_policy = s("Always"),
        "spec.resumePolicy",
        "accepted: Never, LongRunning, FromVolume",
    );
    for good in ["Never", "LongRunning", "FromVolume"] {
        accepted(|e| e.spec.resume_policy = s(good));
    }
}

// ---------------------------------------------------------------------------------------------
// Objective

#[test]
fn objective_is_required() {
    refused(
        |e| e.spec.objective = None,
        "spec.objective",
        "minimize or maximize",
    );
}

#[test]
fn objective_type_is_minimize_or_maximize() {
    refused(
        |e| objective(e).objective_type = "max".into(),
        "spec.objective.type",
        "accepted: minimize, maximize",
    );
    let checked = accepted(|e| objective(e).objective_type = "minimize".into());
    assert_eq!(checked.objective.direction, Direction::Minimize);
    assert_eq!(
        checked.objective.strategies["loss"],
        MetricStrategyKind::Min
    );
}

#[test]
fn objective_metric_name_is_required() {
    refused(
        |e| objective(e).objective_metric_name.clear(),
        "spec.objective.objectiveMetricName",
        "required",
    );
}

#[test]
fn goal_must_be_finite() {
    refused(
        |e| objective(e).goal = Some(f64::NAN),
        "spec.objective.goal",
        "finite number",
    );
    let checked = accepted(|e| objective(e).goal = None);
    assert_eq!(checked.objective.goal, None);
}

#[test]
fn additional_metrics_must_not_repeat_the_objective() {
    refused(
        |e| objective(e).additional_metric_names.push("accuracy".into()),
        "spec.objective.additionalMetricNames[1]",
        "must not repeat spec.objective.objectiveMetricName",
    );
    accepted(|e| objective(e).additional_metric_names.push("f1".into()));
}

#[test]
fn additional_metrics_are_named_once_and_not_empty() {
    refused(
        |e| objective(e).additional_metric_names.push("loss".into()),
        "spec.objective.additionalMetricNames[1]",
        "list each metric once",
    );
    refused(
        |e| objective(e).additional_metric_names.push(String::new()),
        "spec.objective.additionalMetricNames[1]",
        "metric name",
    );
}

#[test]
fn metric_strategy_names_a_metric_of_the_objective() {
    refused(
        |e| {
            objective(e).metric_strategies.push(MetricStrategy {
                name: "f1".into(),
                value: "max".into(),
            })
        },
        "spec.objective.metricStrategies[0].name",
        "accepted: accuracy, loss",
    );
    let checked = accepted(|e| {
        objective(e).metric_strategies.push(MetricStrategy {
            name: "loss".into(),
            value: "latest".into(),
        })
    });
    assert_eq!(
        checked.objective.strategies["loss"],
        MetricStrategyKind::Latest
    );
    assert_eq!(
        checked.objective.strategies["accuracy"],
        MetricStrategyKind::Max
    );
}

#[test]
fn metric_strategy_value_is_min_max_or_latest() {
    refused(
        |e| {
            objective(e).metric_strategies.push(MetricStrategy {
                name: "loss".into(),
                value: "mean".into(),
            })
        },
        "spec.objective.metricStrategies[0].value",
        "accepted: min, max, latest",
    );
    accepted(|e| {
        objective(e).metric_strategies.push(MetricStrategy {
            name: "accuracy".into(),
            value: "min".into(),
        })
    });
}

#[test]
fn metric_strategy_is_given_once_per_metric() {
    refused(
        |e| {
            let strategy = MetricStrategy {
                name: "loss".into(),
                value: "min".into(),
            };
            objective(e).metric_strategies = vec![strategy.clone(), strategy];
        },
        "spec.objective.metricStrategies[1].name",
        "already given a strategy by metricStrategies[0]",
    );
}

// ---------------------------------------------------------------------------------------------
// Algorithm

#[test]
fn algorithm_is_required() {
    refused(
        |e| e.spec.algorithm = None,
        "spec.algorithm",
        "random, grid, sobol",
    );
}

#[test]
fn algorithm_name_is_required() {
    refused(
        |e| e.spec.algorithm.as_mut().unwrap().algorithm_name.clear(),
        "spec.algorithm.algorithmName",
        "accepted: random, grid, sobol",
    );
}

#[test]
fn algorithm_name_is_checked_by_the_registry() {
    refused(
        |e| e.spec.algorithm.as_mut().unwrap().algorithm_name = "annealing".into(),
        "spec.algorithm.algorithmName",
        "random, grid, sobol",
    );
    refused(
        |e| e.spec.algorithm.as_mut().unwrap().algorithm_name = "pbt".into(),
        "spec.algorithm.algorithmName",
        "does not provide yet",
    );
    let checked = accepted(|e| e.spec.algorithm.as_mut().unwrap().algorithm_name = "sobol".into());
    assert_eq!(checked.algorithm.name, "sobol");
}

#[test]
fn unknown_algorithm_setting_is_refused_at_its_name() {
    let err = refused(
        |e| {
            let algorithm = e.spec.algorithm.as_mut().unwrap();
            algorithm.algorithm_settings.push(AlgorithmSetting {
                name: "n_initial_points".into(),
                value: "5".into(),
            });
        },
        "spec.algorithm.algorithmSettings[1].name",
        "accepted: random_state",
    );
    assert_eq!(err.value, "n_initial_points");
}

#[test]
fn bad_algorithm_setting_value_is_refused_at_its_value() {
    let err = refused(
        |e| e.spec.algorithm.as_mut().unwrap().algorithm_settings[0].value = "-1".into(),
        "spec.algorithm.algorithmSettings[0].value",
        "non-negative integer",
    );
    assert_eq!(err.value, "-1");
    let checked = accepted(|e| {
        e.spec
            .algorithm
            .as_mut()
            .unwrap()
            .algorithm_settings
            .clear()
    });
    assert_eq!(checked.algorithm.seed, None);
}

#[test]
fn algorithm_settings_are_named_once() {
    refused(
        |e| {
            let algorithm = e.spec.algorithm.as_mut().unwrap();
            let again = algorithm.algorithm_settings[0].clone();
            algorithm.algorithm_settings.push(again);
        },
        "spec.algorithm.algorithmSettings[1].name",
        "set each setting once",
    );
    refused(
        |e| {
            e.spec.algorithm.as_mut().unwrap().algorithm_settings[0]
                .name
                .clear()
        },
        "spec.algorithm.algorithmSettings[0].name",
        "required",
    );
}

#[test]
fn engine_refuses_a_space_it_cannot_search() {
    // Grid needs a step on every double; the engine says so before any trial runs.
    let errors = outcome(|e| e.spec.algorithm.as_mut().unwrap().algorithm_name = "grid".into());
    let grid_checks_space = match &errors {
        Err(errors) => errors
            .iter()
            .any(|e| e.path == "spec.algorithm.algorithmName"),
        Ok(_) => false,
    };
    if grid_checks_space {
        refused(
            |e| {
                let algorithm = e.spec.algorithm.as_mut().unwrap();
                algorithm.algorithm_name = "grid".into();
                algorithm.algorithm_settings.clear();
            },
            "spec.algorithm.algorithmName",
            "cannot search these spec.parameters",
        );
    }
    accepted(|e| {
        let algorithm = e.spec.algorithm.as_mut().unwrap();
        algorithm.algorithm_name = "grid".into();
        algorithm.algorithm_settings.clear();
        space(e, 0).step = s("0.001");
    });
}

// ---------------------------------------------------------------------------------------------
// Early stopping and NAS

#[test]
fn early_stopping_rules_are_checked_by_name_and_settings() {
    let rule = |name: &'static str, settings: Vec<AlgorithmSetting>| {
        move |e: &mut Experiment| {
            e.spec.early_stopping = Some(EarlyStoppingSpec {
                algorithm_name: name.into(),
                algorithm_settings: settings,
            })
        }
    };
    let checked = accepted(rule("medianstop", vec![]));
    assert!(matches!(
        checked.early_stopping,
        Some(sextant_algorithms::early_stopping::Rule::Median(_))
    ));
    accepted(|e| e.spec.early_stopping = None);
    refused(
        rule("earlystop", vec![]),
        "spec.earlyStopping.algorithmName",
        "medianstop, percentile, asha",
    );
    refused(
        rule("", vec![]),
        "spec.earlyStopping.algorithmName",
        "required",
    );
    let bad = vec![AlgorithmSetting {
        name: "min_trials_required".into(),
        value: "-1".into(),
    }];
    refused(
        rule("medianstop", bad),
        "spec.earlyStopping.algorithmSettings[0].value",
        "non-negative",
    );
    let unknown = vec![AlgorithmSetting {
        name: "patience".into(),
        value: "3".into(),
    }];
    refused(
        rule("medianstop", unknown),
        "spec.earlyStopping.algorithmSettings[0].name",
        "min_trials_required, start_step",
    );
}

#[test]
fn nas_config_is_refused_as_not_built_yet() {
    refused(
        |e| {
            e.spec.parameters.clear();
            e.spec.nas_config = Some(NasConfig::default());
        },
        "spec.nasConfig",
        "NAS (enas/darts) is not built yet",
    );
}

#[test]
fn parameters_are_required() {
    refused(
        |e| e.spec.parameters.clear(),
        "spec.parameters",
        "at least one parameter",
    );
}

// ---------------------------------------------------------------------------------------------
// Parameters

#[test]
fn parameter_type_is_one_of_katibs() {
    for bad in ["float", ""] {
        refused(
            |e| e.spec.parameters[0].parameter_type = bad.into(),
            "spec.parameters[0].parameterType",
            "accepted: double, int, discrete, categorical",
        );
    }
}

#[test]
fn parameter_names_are_required_and_unique() {
    refused(
        |e| e.spec.parameters[1].name.clear(),
        "spec.parameters[1].name",
        "required",
    );
    refused(
        |e| e.spec.parameters[1].name = "lr".into(),
        "spec.parameters[1].name",
        "names must be unique",
    );
}

#[test]
fn double_min_and_max_are_required() {
    refused(
        |e| space(e, 0).min = None,
        "spec.parameters[0].feasibleSpace.min",
        "required for a double parameter",
    );
    refused(
        |e| space(e, 0).max = s(""),
        "spec.parameters[0].feasibleSpace.max",
        "required for a double parameter",
    );
}

#[test]
fn double_bounds_must_be_finite_numbers() {
    for bad in ["ten", "inf", "NaN", "0.1.2"] {
        let err = refused(
            |e| space(e, 0).max = s(bad),
            "spec.parameters[0].feasibleSpace.max",
            "expected a finite number",
        );
        assert_eq!(err.value, bad);
    }
    accepted(|e| space(e, 0).max = s("1e-1"));
}

#[test]
fn min_must_not_exceed_max() {
    refused(
        |e| {
            space(e, 0).min = s("0.2");
        },
        "spec.parameters[0].feasibleSpace.max",
        "greater than or equal to min (0.2)",
    );
    refused(
        |e| space(e, 1).min = s("6"),
        "spec.parameters[1].feasibleSpace.max",
        "greater than or equal to min (6)",
    );
    accepted(|e| space(e, 1).min = s("5"));
}

#[test]
fn int_bounds_must_be_integers() {
    refused(
        |e| space(e, 1).max = s("5.5"),
        "spec.parameters[1].feasibleSpace.max",
        "expected an integer",
    );
    refused(
        |e| space(e, 1).min = None,
        "spec.parameters[1].feasibleSpace.min",
        "required for a int parameter",
    );
}

#[test]
fn list_is_refused_for_int_and_double() {
    refused(
        |e| space(e, 1).list = vec!["1".into(), "2".into()],
        "spec.parameters[1].feasibleSpace.list",
        "takes min and max",
    );
}

#[test]
fn step_must_be_a_positive_number() {
    refused(
        |e| space(e, 0).step = s("0"),
        "spec.parameters[0].feasibleSpace.step",
        "greater than 0",
    );
    refused(
        |e| space(e, 0).step = s("fine"),
        "spec.parameters[0].feasibleSpace.step",
        "finite number",
    );
    refused(
        |e| space(e, 1).step = s("-1"),
        "spec.parameters[1].feasibleSpace.step",
        "1 or more",
    );
    refused(
        |e| space(e, 1).step = s("0.5"),
        "spec.parameters[1].feasibleSpace.step",
        "expected an integer",
    );
    let checked = accepted(|e| space(e, 1).step = s("2"));
    assert!(matches!(
        checked.space.params()[1].domain,
        Domain::Int { step: Some(2), .. }
    ));
}

#[test]
fn step_wider_than_the_range_is_refused_by_the_space() {
    refused(
        |e| space(e, 0).step = s("1"),
        "spec.parameters[0].feasibleSpace",
        "larger than max - min",
    );
}

#[test]
fn distribution_is_one_of_katibs() {
    refused(
        |e| space(e, 1).distribution = s("gaussian"),
        "spec.parameters[1].feasibleSpace.distribution",
        "accepted: uniform, logUniform, normal, logNormal",
    );
    for good in ["uniform", "logUniform", "normal", "logNormal"] {
        accepted(|e| space(e, 1).distribution = s(good));
    }
}

#[test]
fn log_distributions_need_a_positive_min() {
    for distribution in ["logUniform", "logNormal"] {
        refused(
            |e| {
                space(e, 0).min = s("0");
                space(e, 0).distribution = s(distribution);
            },
            "spec.parameters[0].feasibleSpace.min",
            "min must be greater than 0",
        );
    }
    refused(
        |e| {
            space(e, 1).min = s("-1");
            space(e, 1).distribution = s("logUniform");
        },
        "spec.parameters[1].feasibleSpace.min",
        "a positive min, or distribution uniform or normal",
    );
    accepted(|e| {
        space(e, 0).min = s("0");
        space(e, 0).distribution = s("normal");
    });
}

#[test]
fn discrete_and_categorical_need_a_list() {
    refused(
        |e| space(e, 2).list.clear(),
        "spec.parameters[2].feasibleSpace.list",
        "required for a discrete parameter",
    );
    refused(
        |e| space(e, 3).list.clear(),
        "spec.parameters[3].feasibleSpace.list",
        "required for a categorical parameter",
    );
}

#[test]
fn discrete_list_holds_distinct_numbers() {
    let err = refused(
        |e| space(e, 2).list.push("large".into()),
        "spec.parameters[2].feasibleSpace.list[3]",
        "use parameterType categorical for strings",
    );
    assert_eq!(err.value, "large");
    refused(
        |e| space(e, 2).list.push("32".into()),
        "spec.parameters[2].feasibleSpace.list[3]",
        "same value as list[1]",
    );
    accepted(|e| space(e, 2).list.push("128".into()));
}

#[test]
fn categorical_list_holds_distinct_choices() {
    refused(
        |e| space(e, 3).list.push("sgd".into()),
        "spec.parameters[3].feasibleSpace.list[2]",
        "same choice as list[0]",
    );
    accepted(|e| space(e, 3).list.push("rmsprop".into()));
}

#[test]
fn min_max_and_step_are_refused_for_lists() {
    for (field, edit) in [
        (
            "min",
            (|f: &mut FeasibleSpace| f.min = s("1")) as fn(&mut FeasibleSpace),
        ),
        ("max", |f| f.max = s("9")),
        ("step", |f| f.step = s("1")),
    ] {
        refused(
            |e| edit(space(e, 2)),
            &format!("spec.parameters[2].feasibleSpace.{field}"),
            "takes only list",
        );
    }
}

#[test]
fn lists_take_no_distribution_but_uniform() {
    refused(
        |e| space(e, 3).distribution = s("logUniform"),
        "spec.parameters[3].feasibleSpace.distribution",
        "accepts uniform",
    );
    accepted(|e| space(e, 3).distribution = s("uniform"));
}

// ---------------------------------------------------------------------------------------------
// Metrics collector

#[test]
fn collector_kinds_not_built_yet_are_refused() {
    for kind in ["TensorFlowEvent", "PrometheusMetric", "Custom"] {
        let err = refused(
            |e| collector(e, kind, None),
            "spec.metricsCollectorSpec.collector.kind",
            "not built yet in Sextant; available now: StdOut, File, None, Push",
        );
        assert_eq!(err.value, kind);
    }
}

#[test]
fn unknown_collector_kind_lists_the_accepted_ones() {
    refused(
        |e| collector(e, "Stdout", None),
        "spec.metricsCollectorSpec.collector.kind",
        "accepted: StdOut, File, None, Push",
    );
    let checked = accepted(|e| collector(e, "None", None));
    assert_eq!(checked.collector, Collector::None);
}

#[test]
fn push_collector_is_accepted_and_refuses_a_filter() {
    let checked = accepted(|e| collector(e, "Push", None));
    assert_eq!(checked.collector, Collector::Push);
    refused(
        |e| collector(e, "Push", Some(filter_source(&[r"(\w+)=(\d+)"]))),
        "spec.metricsCollectorSpec.source.filter",
        "the trial sends its metrics itself",
    );
}

#[test]
fn file_collector_gets_katibs_defaults() {
    let checked = accepted(|e| collector(e, "File", None));
    assert_eq!(
        checked.collector,
        Collector::File {
            path: "/var/log/katib/metrics.log".into(),
            format: FileFormat::Text,
            filters: vec![],
        }
    );
}

#[test]
fn file_collector_path_must_be_absolute() {
    refused(
        |e| collector(e, "File", Some(file_source("out/metrics.log", None, None))),
        "spec.metricsCollectorSpec.source.fileSystemPath.path",
        "absolute path",
    );
    accepted(|e| collector(e, "File", Some(file_source("/out/metrics.log", None, None))));
}

#[test]
fn file_collector_kind_must_be_file() {
    refused(
        |e| {
            collector(
                e,
                "File",
                Some(file_source("/out/m.log", Some("Directory"), None)),
            )
        },
        "spec.metricsCollectorSpec.source.fileSystemPath.kind",
        "accepted: File",
    );
}

#[test]
fn file_collector_format_is_text_or_json() {
    refused(
        |e| {
            collector(
                e,
                "File",
                Some(file_source("/out/m.xml", None, Some("XML"))),
            )
        },
        "spec.metricsCollectorSpec.source.fileSystemPath.format",
        "accepted: TEXT, JSON",
    );
    let checked = accepted(|e| {
        collector(
            e,
            "File",
            Some(file_source("/out/m.json", None, Some("JSON"))),
        )
    });
    assert!(matches!(
        checked.collector,
        Collector::File {
            format: FileFormat::Json,
            ..
        }
    ));
}

#[test]
fn json_metrics_file_takes_no_filter() {
    refused(
        |e| {
            let mut source = file_source("/out/m.json", None, Some("JSON"));
            source.filter = filter_source(&[r"(\w+)=(\d+)"]).filter;
            collector(e, "File", Some(source));
        },
        "spec.metricsCollectorSpec.source.filter",
        "filters apply to TEXT",
    );
}

#[test]
fn file_system_path_is_refused_for_stdout_and_none() {
    for kind in ["StdOut", "None"] {
        refused(
            |e| collector(e, kind, Some(file_source("/out/m.log", None, None))),
            "spec.metricsCollectorSpec.source.fileSystemPath",
            "only read by collector kind File",
        );
    }
}

#[test]
fn none_collector_takes_no_filter() {
    refused(
        |e| collector(e, "None", Some(filter_source(&[r"(\w+)=(\d+)"]))),
        "spec.metricsCollectorSpec.source.filter",
        "collects nothing",
    );
}

#[test]
fn http_get_and_custom_collector_are_refused_for_other_kinds() {
    refused(
        |e| {
            collector(
                e,
                "StdOut",
                Some(SourceSpec {
                    http_get: Some(json!({"port": 8080})),
                    ..SourceSpec::default()
                }),
            )
        },
        "spec.metricsCollectorSpec.source.httpGet",
        "only read by collector kind PrometheusMetric",
    );
    refused(
        |e| {
            e.spec.metrics_collector_spec = Some(MetricsCollectorSpec {
                source: None,
                collector: Some(CollectorSpec {
                    kind: "StdOut".into(),
                    custom_collector: Some(json!({"name": "c"})),
                }),
            })
        },
        "spec.metricsCollectorSpec.collector.customCollector",
        "only read by collector kind Custom",
    );
}

#[test]
fn metrics_format_must_compile() {
    let err = refused(
        |e| collector(e, "StdOut", Some(filter_source(&[r"(\w+=(\d+"]))),
        "spec.metricsCollectorSpec.source.filter.metricsFormat[0]",
        "not a valid regular expression",
    );
    assert_eq!(err.value, r"(\w+=(\d+");
}

#[test]
fn metrics_format_needs_name_and_value_groups() {
    for bad in [r"accuracy=(\d+)", r"(?:\w+)=(\d+)", ""] {
        refused(
            |e| collector(e, "StdOut", Some(filter_source(&[bad]))),
            "spec.metricsCollectorSpec.source.filter.metricsFormat[0]",
            "needs two capture groups",
        );
    }
    let checked = accepted(|e| {
        collector(
            e,
            "StdOut",
            Some(filter_source(&[r#""([\w|-]+)"\s*:\s*([+-]?\d*(\.\d+)?)"#])),
        )
    });
    assert!(matches!(&checked.collector, Collector::StdOut { filters } if filters.len() == 1));
}

// ---------------------------------------------------------------------------------------------
// Trial template

#[test]
fn trial_template_is_required() {
    refused(
        |e| e.spec.trial_template = None,
        "spec.trialTemplate",
        "required: the workload",
    );
}

#[test]
fn config_map_template_is_refused_as_needing_kubernetes() {
    let config_map = ConfigMapSource {
        config_map_name: "templates".into(),
        config_map_namespace: "kubeflow".into(),
        template_path: "job.yaml".into(),
    };
    let err = refused(
        |e| {
            let t = template(e);
            t.trial_spec = None;
            t.config_map = Some(config_map.clone());
        },
        "spec.trialTemplate.configMap",
        "ConfigMap templates need Kubernetes, which is not built yet",
    );
    assert_eq!(err.value, "templates");
    refused(
        |e| template(e).config_map = Some(config_map.clone()),
        "spec.trialTemplate.configMap",
        "only one of trialSpec and configMap",
    );
}

#[test]
fn trial_spec_is_required() {
    refused(
        |e| template(e).trial_spec = None,
        "spec.trialTemplate.trialSpec",
        "required",
    );
    refused(
        |e| template(e).trial_spec = Some(json!("a job")),
        "spec.trialTemplate.trialSpec",
        "Kubernetes object",
    );
}

#[test]
fn trial_spec_needs_api_version_and_kind() {
    refused(
        |e| {
            trial_spec(e).as_object_mut().unwrap().remove("apiVersion");
        },
        "spec.trialTemplate.trialSpec.apiVersion",
        "batch/v1",
    );
    refused(
        |e| trial_spec(e)["kind"] = json!(""),
        "spec.trialTemplate.trialSpec.kind",
        "non-empty string",
    );
}

#[test]
fn trial_spec_name_and_namespace_must_be_left_out() {
    for field in ["name", "namespace"] {
        refused(
            |e| trial_spec(e)["metadata"][field] = json!("fixed"),
            &format!("spec.trialTemplate.trialSpec.metadata.{field}"),
            "must be left out",
        );
    }
}

#[test]
fn primary_container_name_is_required() {
    refused(
        |e| template(e).primary_container_name = None,
        "spec.trialTemplate.primaryContainerName",
        "containers in trialSpec: training-container",
    );
}

#[test]
fn primary_container_must_exist_in_the_template() {
    let err = refused(
        |e| template(e).primary_container_name = s("trainer"),
        "spec.trialTemplate.primaryContainerName",
        "containers in trialSpec: training-container",
    );
    assert_eq!(err.value, "trainer");
}

#[test]
fn primary_container_fields_are_checked_up_front() {
    refused(
        |e| container(e)["resources"]["limits"]["nvidia.com/gpu"] = json!("one"),
        "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].resources.limits[\"nvidia.com/gpu\"]",
        "whole number of GPUs",
    );
    // A value that holds a placeholder is only known per trial, so it is not judged here.
    accepted(|e| {
        template(e).trial_parameters.push(TrialParameterSpec {
            name: "gpus".into(),
            description: String::new(),
            reference: "${trialSpec.Labels[team]}".into(),
        });
        container(e)["resources"]["limits"]["nvidia.com/gpu"] = json!("${trialParameters.gpus}");
    });
}

#[test]
fn conditions_are_required_for_kinds_katib_does_not_default() {
    for field in ["successCondition", "failureCondition"] {
        refused(
            |e| {
                trial_spec(e)["kind"] = json!("Workflow");
                trial_spec(e)["apiVersion"] = json!("argoproj.io/v1alpha1");
                trial_spec(e)["spec"] = json!({"containers": [{"name": "training-container", "command": [
                        "${trialParameters.learningRate}", "${trialParameters.numLayers}",
                        "${trialParameters.batchSize}", "${trialParameters.optimizer}",
                        "${trialParameters.trialName}"]}]});
            },
            &format!("spec.trialTemplate.{field}"),
            "filled in for Job, TFJob, PyTorchJob, XGBoostJob, MPIJob and TrainJob",
        );
    }
    // Katib's Argo Workflow example.
    accepted(|e| {
        trial_spec(e)["kind"] = json!("Workflow");
        template(e).success_condition = s(r#"status.[@this].#(phase=="Succeeded")#"#);
        template(e).failure_condition = s(r#"status.[@this].#(phase=="Failed")#"#);
    });
}

#[test]
fn conditions_the_controller_cannot_evaluate_are_refused_up_front() {
    let err = refused(
        |e| template(e).success_condition = s("status.phase == Succeeded"),
        "spec.trialTemplate.successCondition",
        "supported",
    );
    assert_eq!(err.value, "status.phase == Succeeded");
}

#[test]
fn trial_parameters_are_required() {
    refused(
        |e| template(e).trial_parameters.clear(),
        "spec.trialTemplate.trialParameters",
        "one {name, reference} per ${trialParameters.NAME}",
    );
}

#[test]
fn trial_parameter_name_is_required_without_braces() {
    refused(
        |e| template(e).trial_parameters[0].name.clear(),
        "spec.trialTemplate.trialParameters[0].name",
        "required",
    );
    refused(
        |e| template(e).trial_parameters[0].name = "${learningRate}".into(),
        "spec.trialTemplate.trialParameters[0].name",
        "must not contain '{' or '}'",
    );
}

#[test]
fn trial_parameter_names_are_unique() {
    refused(
        |e| template(e).trial_parameters[1].name = "learningRate".into(),
        "spec.trialTemplate.trialParameters[1].name",
        "names must be unique",
    );
}

#[test]
fn trial_parameter_references_are_required_and_unique() {
    refused(
        |e| template(e).trial_parameters[0].reference.clear(),
        "spec.trialTemplate.trialParameters[0].reference",
        "required: a spec.parameters name (lr, layers, batch, optimizer)",
    );
    refused(
        |e| template(e).trial_parameters[1].reference = "lr".into(),
        "spec.trialTemplate.trialParameters[1].reference",
        "references must be unique",
    );
}

#[test]
fn trial_parameter_reference_is_a_parameter_or_trial_metadata() {
    let err = refused(
        |e| template(e).trial_parameters[0].reference = "learning_rate".into(),
        "spec.trialTemplate.trialParameters[0].reference",
        "accepted: lr, layers, batch, optimizer or one of ${trialSpec.Name}",
    );
    assert_eq!(err.value, "learning_rate");
    refused(
        |e| template(e).trial_parameters[4].reference = "${trialSpec.Uid}".into(),
        "spec.trialTemplate.trialParameters[4].reference",
        "${trialSpec.Annotations[KEY]}",
    );
    for good in [
        "${trialSpec.Namespace}",
        "${trialSpec.Kind}",
        "${trialSpec.APIVersion}",
        "${trialSpec.Labels[team]}",
    ] {
        accepted(|e| template(e).trial_parameters[4].reference = good.into());
    }
}

#[test]
fn label_and_annotation_references_must_exist_in_the_template() {
    refused(
        |e| template(e).trial_parameters[4].reference = "${trialSpec.Labels[owner]}".into(),
        "spec.trialTemplate.trialParameters[4].reference",
        "keys there: team",
    );
    refused(
        |e| template(e).trial_parameters[4].reference = "${trialSpec.Annotations[owner]}".into(),
        "spec.trialTemplate.trialParameters[4].reference",
        "keys there: none",
    );
}

#[test]
fn every_trial_parameter_is_used_in_the_template() {
    refused(
        |e| {
            template(e).trial_parameters.push(TrialParameterSpec {
                name: "namespace".into(),
                description: String::new(),
                reference: "${trialSpec.Namespace}".into(),
            })
        },
        "spec.trialTemplate.trialParameters[5].name",
        "trialSpec has no ${trialParameters.namespace}",
    );
}

#[test]
fn every_placeholder_is_defined() {
    let err = refused(
        |e| container(e)["args"] = json!(["--seed=${trialParameters.seed}"]),
        "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].args[0]",
        "defined: batchSize, learningRate, numLayers, optimizer, trialName",
    );
    assert_eq!(err.value, "${trialParameters.seed}");
}

#[test]
fn every_search_parameter_is_passed_to_trials() {
    refused(
        |e| {
            template(e).trial_parameters.remove(3);
            container(e)["command"][5] = json!("--optimizer=adam");
        },
        "spec.parameters[3].name",
        "not referenced by any spec.trialTemplate.trialParameters entry",
    );
}

// ---------------------------------------------------------------------------------------------
// Robustness

#[test]
fn validating_the_undefaulted_base_does_not_panic() {
    let experiment = parse_experiment(BASE).unwrap();
    // Without defaults the conditions are missing; everything else is checked as usual.
    let errors = match validate(experiment) {
        Err(SpecError::Invalid(errors)) => errors,
        other => panic!("{other:?}"),
    };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "spec.trialTemplate.successCondition",
            "spec.trialTemplate.failureCondition"
        ]
    );
}

#[test]
fn an_empty_experiment_is_refused_without_panicking() {
    let text = "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {}\nspec: {}\n";
    let err = crate::spec::check(text).unwrap_err();
    let SpecError::Invalid(errors) = err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for path in [
        "metadata.name",
        "spec.objective",
        "spec.algorithm",
        "spec.parameters",
        "spec.trialTemplate",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
}

/// Katib's own `tpe.yaml` and `multivariate-tpe.yaml` examples, unchanged: they parse and
/// validate, their algorithm is configured, and the engine suggests in-space, distinct points in
/// batches of `parallelTrialCount` up to `maxTrialCount`, as the controller would ask.
#[test]
fn katibs_tpe_examples_are_accepted_and_suggest_in_space() {
    use sextant_algorithms::{CompletedTrial, SuggestRequest};
    for (text, algorithm) in [
        (include_str!("../../../tests/data/katib-tpe.yaml"), "tpe"),
        (
            include_str!("../../../tests/data/katib-multivariate-tpe.yaml"),
            "multivariate-tpe",
        ),
    ] {
        let checked = crate::spec::check(text).unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        assert_eq!(checked.algorithm.name, algorithm);
        assert_eq!(checked.space.dims(), 3);
        let configured =
            sextant_suggestion::configure(&checked.algorithm.name, &checked.algorithm.settings)
                .unwrap();
        assert_eq!(configured.engine.name(), algorithm);
        let batch = checked.parallel_trial_count as usize;
        let total = checked.max_trial_count.unwrap() as usize;
        let mut history: Vec<CompletedTrial> = Vec::new();
        let mut state = None;
        while history.len() < total {
            let answer = configured
                .engine
                .suggest(&SuggestRequest {
                    space: &checked.space,
                    history: &history,
                    pending: &[],
                    count: batch,
                    seed: configured.seed.unwrap_or(1),
                    state: state.as_ref(),
                })
                .unwrap();
            assert_eq!(answer.points.len(), batch, "{algorithm}");
            for point in answer.points {
                assert!(checked.space.contains(&point), "{algorithm}: {point:?}");
                // Rendered as Katib strings, every value reads back.
                let rendered = checked.space.render(&point);
                assert_eq!(checked.space.parse(&rendered).unwrap(), point);
                let loss = checked.space.to_unit(&point).iter().sum::<f64>();
                history.push(CompletedTrial {
                    point,
                    loss: Some(loss),
                });
            }
            state = Some(answer.state);
        }
        let keys: std::collections::HashSet<_> = history
            .iter()
            .map(|t| checked.space.point_key(&t.point))
            .collect();
        assert_eq!(keys.len(), total, "{algorithm}: repeated points");
    }
}

//! From a Katib algorithm name and its settings to a configured engine.

use sextant_algorithms::Engine;
use sextant_algorithms::bo::{Acquisition, AcquisitionOptimizer, BayesOptEngine, BayesOptSettings};
use sextant_algorithms::cmaes::{CmaEsEngine, CmaEsSettings, DEFAULT_SIGMA, RestartStrategy};
use sextant_algorithms::grid::GridEngine;
use sextant_algorithms::hyperband::{DEFAULT_ETA, HyperbandEngine, HyperbandSettings};
use sextant_algorithms::random::RandomEngine;
use sextant_algorithms::sobol::SobolEngine;
use sextant_algorithms::tpe::{GammaRule, TpeEngine, TpeSettings};

/// Algorithms Sextant serves today, in the order shown to users.
pub const AVAILABLE_ALGORITHMS: &[&str] = &[
    "random",
    "grid",
    "sobol",
    "bayesianoptimization",
    "hyperband",
    "tpe",
    "multivariate-tpe",
    "cmaes",
];

/// Katib algorithm names that Sextant does not serve yet. A spec naming one is refused with a
/// message that says so, rather than falling back to another engine.
const KATIB_ALGORITHMS_NOT_YET_BUILT: &[&str] = &["enas", "darts", "pbt"];

/// An engine ready to use, with the seed its settings asked for.
pub struct ConfiguredEngine {
    /// The engine.
    pub engine: Box<dyn Engine>,
    /// `random_state`, when the settings gave one; otherwise the caller derives a seed.
    pub seed: Option<u64>,
}

impl std::fmt::Debug for ConfiguredEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfiguredEngine")
            .field("engine", &self.engine.name())
            .field("seed", &self.seed)
            .finish()
    }
}

/// Why an algorithm name or setting was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingError {
    /// The name is not an algorithm at all.
    #[error("unknown algorithm {name:?}; accepted: {}", AVAILABLE_ALGORITHMS.join(", "))]
    UnknownAlgorithm {
        /// What the user wrote.
        name: String,
    },
    /// A Katib algorithm that Sextant has not built yet.
    #[error(
        "algorithm {name:?} is a Katib algorithm that Sextant does not provide yet; available now: {}",
        AVAILABLE_ALGORITHMS.join(", ")
    )]
    NotYetBuilt {
        /// What the user wrote.
        name: String,
    },
    /// A setting this algorithm does not have.
    #[error("algorithm {algorithm:?} has no setting {name:?}; accepted: {accepted}")]
    UnknownSetting {
        /// The algorithm.
        algorithm: String,
        /// The setting as written.
        name: String,
        /// The accepted setting names, or "none".
        accepted: String,
    },
    /// A setting with a value out of range or of the wrong type.
    #[error("setting {name:?}={value:?} of algorithm {algorithm:?}: {message}")]
    BadValue {
        /// The algorithm.
        algorithm: String,
        /// The setting.
        name: String,
        /// The value as written.
        value: String,
        /// What is accepted.
        message: String,
    },
}

impl SettingError {
    /// The name of the offending setting, when the error is about one.
    pub fn setting_name(&self) -> Option<&str> {
        match self {
            SettingError::UnknownSetting { name, .. } | SettingError::BadValue { name, .. } => {
                Some(name)
            }
            _ => None,
        }
    }
}

/// Builds the engine for `algorithm` with Katib-style `settings` (name, value).
pub fn configure(
    algorithm: &str,
    settings: &[(String, String)],
) -> Result<ConfiguredEngine, SettingError> {
    match algorithm {
        "random" | "sobol" => {
            let mut seed = None;
            for (name, value) in settings {
                match name.as_str() {
                    "random_state" => seed = Some(parse_seed(algorithm, name, value)?),
                    _ => {
                        return Err(SettingError::UnknownSetting {
                            algorithm: algorithm.to_string(),
                            name: name.clone(),
                            accepted: "random_state".to_string(),
                        });
                    }
                }
            }
            let engine: Box<dyn Engine> = if algorithm == "random" {
                Box::new(RandomEngine)
            } else {
                Box::new(SobolEngine)
            };
            Ok(ConfiguredEngine { engine, seed })
        }
        "bayesianoptimization" => {
            let (settings, seed) = bayesopt_settings(settings)?;
            Ok(ConfiguredEngine {
                engine: Box::new(BayesOptEngine::new(settings)),
                seed,
            })
        }
        "hyperband" => {
            let settings = hyperband_settings(settings)?;
            let engine = HyperbandEngine::new(settings).map_err(|e| SettingError::BadValue {
                algorithm: algorithm.to_string(),
                name: e.setting.to_string(),
                value: e.value.clone(),
                message: format!("accepted: {}", e.accepted),
            })?;
            Ok(ConfiguredEngine {
                engine: Box::new(engine),
                seed: None,
            })
        }
        "cmaes" => {
            let (settings, seed) = cmaes_settings(settings)?;
            Ok(ConfiguredEngine {
                engine: Box::new(CmaEsEngine::new(settings)),
                seed,
            })
        }
        "tpe" | "multivariate-tpe" => {
            let (parsed, seed) = tpe_settings(algorithm, settings)?;
            let engine = if algorithm == "tpe" {
                TpeEngine::new(parsed)
            } else {
                TpeEngine::multivariate(parsed)
            };
            Ok(ConfiguredEngine {
                engine: Box::new(engine),
                seed,
            })
        }
        "grid" => {
            if let Some((name, _)) = settings.first() {
                return Err(SettingError::UnknownSetting {
                    algorithm: algorithm.to_string(),
                    name: name.clone(),
                    accepted: "none (grid takes no settings)".to_string(),
                });
            }
            Ok(ConfiguredEngine {
                engine: Box::new(GridEngine),
                seed: None,
            })
        }
        other if KATIB_ALGORITHMS_NOT_YET_BUILT.contains(&other) => {
            Err(SettingError::NotYetBuilt {
                name: other.to_string(),
            })
        }
        other => Err(SettingError::UnknownAlgorithm {
            name: other.to_string(),
        }),
    }
}

/// Katib's (scikit-optimize's) `bayesianoptimization` settings, with their meaning:
/// `base_estimator` (only `GP`), `n_initial_points`, `acq_func`, `acq_optimizer`, `random_state`.
pub fn bayesopt_settings(
    settings: &[(String, String)],
) -> Result<(BayesOptSettings, Option<u64>), SettingError> {
    const ALGORITHM: &str = "bayesianoptimization";
    let bad = |name: &str, value: &str, message: &str| SettingError::BadValue {
        algorithm: ALGORITHM.to_string(),
        name: name.to_string(),
        value: value.to_string(),
        message: message.to_string(),
    };
    let mut parsed = BayesOptSettings::default();
    let mut seed = None;
    for (name, value) in settings {
        let trimmed = value.trim();
        match name.as_str() {
            "base_estimator" => {
                if trimmed != "GP" {
                    return Err(bad(
                        name,
                        value,
                        "only \"GP\" (a Gaussian process) is supported; scikit-optimize's RF, ET and \
                         GBRT estimators are not",
                    ));
                }
            }
            "n_initial_points" => {
                parsed.n_initial_points = trimmed
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_INITIAL_POINTS).contains(n))
                    .ok_or_else(|| {
                        bad(
                            name,
                            value,
                            &format!(
                                "expected an integer from 1 to {MAX_INITIAL_POINTS} (default 10)"
                            ),
                        )
                    })?;
            }
            "acq_func" => {
                parsed.acquisition = match trimmed {
                    "gp_hedge" => Acquisition::GpHedge,
                    "EI" => Acquisition::Ei,
                    "PI" => Acquisition::Pi,
                    "LCB" => Acquisition::Lcb,
                    "LogEI" => Acquisition::LogEi,
                    _ => return Err(bad(name, value, "accepted: gp_hedge, EI, PI, LCB, LogEI")),
                };
            }
            "acq_optimizer" => {
                parsed.optimizer = match trimmed {
                    "auto" => AcquisitionOptimizer::Auto,
                    "sampling" => AcquisitionOptimizer::Sampling,
                    "lbfgs" => AcquisitionOptimizer::Lbfgs,
                    _ => return Err(bad(name, value, "accepted: auto, sampling, lbfgs")),
                };
            }
            "random_state" => seed = Some(parse_seed(ALGORITHM, name, value)?),
            _ => {
                return Err(SettingError::UnknownSetting {
                    algorithm: ALGORITHM.to_string(),
                    name: name.clone(),
                    accepted:
                        "base_estimator, n_initial_points, acq_func, acq_optimizer, random_state"
                            .to_string(),
                });
            }
        }
    }
    Ok((parsed, seed))
}

/// Katib's (goptuna's) `cmaes` settings: `restart_strategy` (`none`, the default, `ipop` or
/// `bipop`), `sigma` (the initial step size, in Sextant a fraction of each parameter's range, in
/// `(0, 1]`; default [`sextant_algorithms::cmaes::DEFAULT_SIGMA`]), `random_state`.
pub fn cmaes_settings(
    settings: &[(String, String)],
) -> Result<(CmaEsSettings, Option<u64>), SettingError> {
    const ALGORITHM: &str = "cmaes";
    let bad = |name: &str, value: &str, message: &str| SettingError::BadValue {
        algorithm: ALGORITHM.to_string(),
        name: name.to_string(),
        value: value.to_string(),
        message: message.to_string(),
    };
    let mut parsed = CmaEsSettings::default();
    let mut seed = None;
    for (name, value) in settings {
        let trimmed = value.trim();
        match name.as_str() {
            "restart_strategy" => {
                parsed.restart_strategy = match trimmed {
                    "none" => RestartStrategy::None,
                    "ipop" => RestartStrategy::Ipop,
                    "bipop" => RestartStrategy::Bipop,
                    _ => return Err(bad(name, value, "accepted: none, ipop, bipop")),
                };
            }
            "sigma" => {
                parsed.sigma = trimmed
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 1.0)
                    .ok_or_else(|| {
                        bad(
                            name,
                            value,
                            &format!(
                                "expected a number in (0, 1]: the initial step size as a fraction \
                                 of each parameter's range, not in the parameters' own units as \
                                 in Katib (default {DEFAULT_SIGMA:.3})"
                            ),
                        )
                    })?;
            }
            "random_state" => seed = Some(parse_seed(ALGORITHM, name, value)?),
            _ => {
                return Err(SettingError::UnknownSetting {
                    algorithm: ALGORITHM.to_string(),
                    name: name.clone(),
                    accepted: "restart_strategy, sigma, random_state".to_string(),
                });
            }
        }
    }
    Ok((parsed, seed))
}

/// Settings of `tpe` in both spellings Katib users write, and of `multivariate-tpe` (Optuna's only).
///
/// * hyperopt's (Katib's `tpe` runs hyperopt): `gamma` (a number in (0, 1); given, the good group
///   is hyperopt's `min(ceil(gamma·√n), 25)` of `n` trials), `prior_weight` (> 0, default 1.0),
///   `n_EI_candidates` (1 to 1,000), `n_startup_jobs` (0 to 100,000), `random_state`.
/// * Optuna's (Katib's `multivariate-tpe` runs Optuna): `n_startup_trials` (0 to 100,000),
///   `n_ei_candidates` (1 to 1,000), `random_state`, and `constant_liar` (`true`/`false`).
///
/// Unset settings take Sextant's defaults ([`TpeSettings::defaults_for`]: 5 start-up trials for
/// `tpe` and 10 for `multivariate-tpe`, 24 candidates, a good share of `min(ceil(0.25·n), 25)`,
/// the constant liar on), whichever
/// spelling the others use. The two spellings may be mixed, each name keeping its meaning, but one
/// quantity may be set only once: `n_EI_candidates` with `n_ei_candidates`, or `n_startup_jobs`
/// with `n_startup_trials`, is refused as ambiguous.
pub fn tpe_settings(
    algorithm: &str,
    settings: &[(String, String)],
) -> Result<(TpeSettings, Option<u64>), SettingError> {
    let multivariate = algorithm == "multivariate-tpe";
    let accepted = if multivariate {
        "n_startup_trials, n_ei_candidates, random_state, constant_liar"
    } else {
        "gamma, prior_weight, n_EI_candidates, n_startup_jobs, random_state (hyperopt's names); \
         n_startup_trials, n_ei_candidates, constant_liar (Optuna's names)"
    };
    let bad = |name: &str, value: &str, message: &str| SettingError::BadValue {
        algorithm: algorithm.to_string(),
        name: name.to_string(),
        value: value.to_string(),
        message: message.to_string(),
    };
    let mut parsed = TpeSettings::defaults_for(multivariate);
    let mut seed = None;
    let mut candidates_by: Option<&str> = None;
    let mut startup_by: Option<&str> = None;
    for (name, value) in settings {
        let trimmed = value.trim();
        let hyperopt_only = matches!(
            name.as_str(),
            "gamma" | "prior_weight" | "n_EI_candidates" | "n_startup_jobs"
        );
        if multivariate && hyperopt_only {
            return Err(SettingError::UnknownSetting {
                algorithm: algorithm.to_string(),
                name: name.clone(),
                accepted: format!("{accepted} (multivariate-tpe takes Optuna's names)"),
            });
        }
        let once = |slot: &mut Option<&'static str>, this: &'static str| match slot {
            Some(other) if *other != this => Err(bad(
                name,
                value,
                &format!(
                    "the same setting as {other:?} in the other spelling; give one of the two"
                ),
            )),
            _ => {
                *slot = Some(this);
                Ok(())
            }
        };
        match name.as_str() {
            "gamma" => {
                let gamma = trimmed
                    .parse::<f64>()
                    .ok()
                    .filter(|g| *g > 0.0 && *g < 1.0)
                    .ok_or_else(|| {
                        bad(
                            name,
                            value,
                            "expected a number in (0, 1), e.g. 0.25 (hyperopt's default)",
                        )
                    })?;
                parsed.gamma = GammaRule::HyperoptSqrt { gamma };
            }
            "prior_weight" => {
                parsed.prior_weight = trimmed
                    .parse::<f64>()
                    .ok()
                    .filter(|w| w.is_finite() && *w > 0.0)
                    .ok_or_else(|| bad(name, value, "expected a number > 0 (default 1.0)"))?;
            }
            "n_EI_candidates" | "n_ei_candidates" => {
                let this = if name == "n_EI_candidates" {
                    "n_EI_candidates"
                } else {
                    "n_ei_candidates"
                };
                once(&mut candidates_by, this)?;
                parsed.n_ei_candidates = trimmed
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_EI_CANDIDATES).contains(n))
                    .ok_or_else(|| {
                        bad(
                            name,
                            value,
                            &format!(
                                "expected an integer from 1 to {MAX_EI_CANDIDATES} (default {})",
                                sextant_algorithms::tpe::DEFAULT_EI_CANDIDATES
                            ),
                        )
                    })?;
            }
            "n_startup_jobs" | "n_startup_trials" => {
                let this = if name == "n_startup_jobs" {
                    "n_startup_jobs"
                } else {
                    "n_startup_trials"
                };
                once(&mut startup_by, this)?;
                parsed.n_startup_trials = trimmed
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= MAX_INITIAL_POINTS)
                    .ok_or_else(|| {
                        bad(
                            name,
                            value,
                            &format!(
                                "expected an integer from 0 to {MAX_INITIAL_POINTS} (default {})",
                                TpeSettings::defaults_for(multivariate).n_startup_trials
                            ),
                        )
                    })?;
            }
            "constant_liar" => {
                parsed.constant_liar = match trimmed.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(name, value, "expected true or false (default true)")),
                };
            }
            "random_state" => seed = Some(parse_seed(algorithm, name, value)?),
            _ => {
                return Err(SettingError::UnknownSetting {
                    algorithm: algorithm.to_string(),
                    name: name.clone(),
                    accepted: accepted.to_string(),
                });
            }
        }
    }
    Ok((parsed, seed))
}

/// Upper bound on `n_EI_candidates` / `n_ei_candidates` (hyperopt and Optuna default to 24): a
/// call scores every candidate against every trial for every point it returns, and with 10,000
/// candidates 10 points over 1,000 trials took 11.6 s, so a request for 1,000 points could run for
/// many minutes.
const MAX_EI_CANDIDATES: usize = 1_000;

/// Katib's `hyperband` settings: `r_l` (required: the most resource one configuration gets),
/// `eta` (default 3; Katib reads it as `int(float(eta))`), `resource_name` (required: the
/// parameter that carries the resource, e.g. epochs).
pub fn hyperband_settings(
    settings: &[(String, String)],
) -> Result<HyperbandSettings, SettingError> {
    const ALGORITHM: &str = "hyperband";
    let bad = |name: &str, value: &str, message: &str| SettingError::BadValue {
        algorithm: ALGORITHM.to_string(),
        name: name.to_string(),
        value: value.to_string(),
        message: message.to_string(),
    };
    let mut r_l = None;
    let mut eta = DEFAULT_ETA;
    let mut resource = None;
    for (name, value) in settings {
        let trimmed = value.trim();
        match name.as_str() {
            "r_l" => {
                r_l = Some(
                    trimmed
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v >= 1.0)
                        .ok_or_else(|| bad(name, value, "expected a number >= 1: the most resource (e.g. epochs) one configuration gets"))?,
                );
            }
            "eta" => {
                eta = trimmed
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 2.0 && *v <= f64::from(u32::MAX))
                    .map(|v| v.trunc() as u32)
                    .ok_or_else(|| bad(name, value, "expected an integer >= 2 (default 3)"))?;
            }
            "resource_name" => {
                if trimmed.is_empty() {
                    return Err(bad(
                        name,
                        value,
                        "expected the name of the parameter that carries the resource, e.g. epochs",
                    ));
                }
                resource = Some(trimmed.to_string());
            }
            _ => {
                return Err(SettingError::UnknownSetting {
                    algorithm: ALGORITHM.to_string(),
                    name: name.clone(),
                    accepted: "r_l, eta, resource_name".to_string(),
                });
            }
        }
    }
    let missing = |name: &str, what: &str| SettingError::BadValue {
        algorithm: ALGORITHM.to_string(),
        name: name.to_string(),
        value: String::new(),
        message: format!("required: {what}"),
    };
    let r_l = r_l.ok_or_else(|| {
        missing(
            "r_l",
            "the most resource (e.g. epochs) one configuration gets",
        )
    })?;
    let resource = resource.ok_or_else(|| {
        missing(
            "resource_name",
            "the parameter that carries the resource, e.g. epochs",
        )
    })?;
    Ok(HyperbandSettings {
        r_l,
        eta,
        resource_parameter: resource,
    })
}

/// Upper bound on `n_initial_points`: beyond this the model would never be used in a realistic
/// budget, which is almost certainly a typo.
const MAX_INITIAL_POINTS: usize = 100_000;

/// A stable seed from the experiment's name (FNV-1a), so an experiment without `random_state`
/// still suggests the same points when it is resumed.
pub fn seed_from_name(name: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

fn parse_seed(algorithm: &str, name: &str, value: &str) -> Result<u64, SettingError> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| SettingError::BadValue {
            algorithm: algorithm.to_string(),
            name: name.to_string(),
            value: value.to_string(),
            message: "expected a non-negative integer seed, e.g. \"42\"".to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn seed_is_stable_and_depends_on_the_name() {
        assert_eq!(seed_from_name("digits"), seed_from_name("digits"));
        assert_ne!(seed_from_name("digits"), seed_from_name("digits2"));
    }

    #[test]
    fn random_takes_random_state() {
        let configured = configure("random", &settings(&[("random_state", "7")])).unwrap();
        assert_eq!(configured.engine.name(), "random");
        assert_eq!(configured.seed, Some(7));
    }

    #[test]
    fn bad_seed_names_the_setting_and_the_accepted_form() {
        let err = configure("sobol", &settings(&[("random_state", "-3")])).unwrap_err();
        assert_eq!(err.setting_name(), Some("random_state"));
        assert!(err.to_string().contains("non-negative integer"), "{err}");
    }

    #[test]
    fn unknown_setting_lists_the_accepted_ones() {
        let err = configure("random", &settings(&[("n_initial_points", "5")])).unwrap_err();
        assert!(err.to_string().contains("accepted: random_state"), "{err}");
        let err = configure("grid", &settings(&[("random_state", "5")])).unwrap_err();
        assert!(err.to_string().contains("grid takes no settings"), "{err}");
    }

    #[test]
    fn bayesopt_settings_take_katib_names_and_meanings() {
        let (parsed, seed) = bayesopt_settings(&settings(&[
            ("base_estimator", "GP"),
            ("n_initial_points", "5"),
            ("acq_func", "EI"),
            ("acq_optimizer", "sampling"),
            ("random_state", "3"),
        ]))
        .unwrap();
        assert_eq!(parsed.n_initial_points, 5);
        assert_eq!(parsed.acquisition, Acquisition::Ei);
        assert_eq!(parsed.optimizer, AcquisitionOptimizer::Sampling);
        assert_eq!(seed, Some(3));
        let (defaults, seed) = bayesopt_settings(&[]).unwrap();
        assert_eq!(defaults, BayesOptSettings::default());
        assert_eq!(seed, None);
    }

    #[test]
    fn bayesopt_settings_refuse_what_is_not_supported_and_say_what_is() {
        let err = bayesopt_settings(&settings(&[("base_estimator", "RF")])).unwrap_err();
        assert!(err.to_string().contains("only \"GP\""), "{err}");
        let err = bayesopt_settings(&settings(&[("acq_func", "EIps")])).unwrap_err();
        assert!(
            err.to_string().contains("gp_hedge, EI, PI, LCB, LogEI"),
            "{err}"
        );
        let err = bayesopt_settings(&settings(&[("acq_optimizer", "adam")])).unwrap_err();
        assert!(err.to_string().contains("auto, sampling, lbfgs"), "{err}");
        let err = bayesopt_settings(&settings(&[("n_initial_points", "0")])).unwrap_err();
        assert!(err.to_string().contains("from 1 to"), "{err}");
        let err = bayesopt_settings(&settings(&[("kappa", "2")])).unwrap_err();
        assert_eq!(err.setting_name(), Some("kappa"));
    }

    #[test]
    fn hyperband_takes_katibs_settings() {
        let parsed = hyperband_settings(&settings(&[
            ("resource_name", "epochs"),
            ("eta", "2.0"),
            ("r_l", "9"),
        ]))
        .unwrap();
        assert_eq!(
            (parsed.r_l, parsed.eta, parsed.resource_parameter.as_str()),
            (9.0, 2, "epochs")
        );
        let err = hyperband_settings(&settings(&[("resource_name", "epochs")])).unwrap_err();
        assert_eq!(err.setting_name(), Some("r_l"));
        assert!(err.to_string().contains("required"), "{err}");
        let err = hyperband_settings(&settings(&[
            ("r_l", "9"),
            ("resource_name", "e"),
            ("eta", "1"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("integer >= 2"), "{err}");
        let err =
            hyperband_settings(&settings(&[("r_l", "0.5"), ("resource_name", "e")])).unwrap_err();
        assert!(err.to_string().contains(">= 1"), "{err}");
        assert!(
            configure(
                "hyperband",
                &settings(&[("r_l", "9"), ("resource_name", "epochs")])
            )
            .is_ok()
        );
    }

    #[test]
    fn cmaes_takes_katibs_settings() {
        let (parsed, seed) = cmaes_settings(&settings(&[
            ("restart_strategy", "bipop"),
            ("sigma", "0.25"),
            ("random_state", "11"),
        ]))
        .unwrap();
        assert_eq!(parsed.restart_strategy, RestartStrategy::Bipop);
        assert_eq!(parsed.sigma, 0.25);
        assert_eq!(seed, Some(11));
        let (defaults, seed) = cmaes_settings(&[]).unwrap();
        assert_eq!((defaults, seed), (CmaEsSettings::default(), None));
        for strategy in ["none", "ipop"] {
            assert!(cmaes_settings(&settings(&[("restart_strategy", strategy)])).is_ok());
        }
        let configured = configure("cmaes", &settings(&[("random_state", "3")])).unwrap();
        assert_eq!(
            (configured.engine.name(), configured.seed),
            ("cmaes", Some(3))
        );
    }

    #[test]
    fn cmaes_settings_refuse_bad_values_and_list_the_accepted_ones() {
        let err = cmaes_settings(&settings(&[("restart_strategy", "lrpop")])).unwrap_err();
        assert_eq!(err.setting_name(), Some("restart_strategy"));
        assert!(err.to_string().contains("none, ipop, bipop"), "{err}");
        for sigma in ["0", "-0.1", "1.5", "NaN", "inf", "wide"] {
            let err = cmaes_settings(&settings(&[("sigma", sigma)])).unwrap_err();
            assert_eq!(err.setting_name(), Some("sigma"));
            assert!(err.to_string().contains("(0, 1]"), "{err}");
            assert!(err.to_string().contains("default 0.167"), "{err}");
        }
        assert!(cmaes_settings(&settings(&[("sigma", "1")])).is_ok());
        let err = cmaes_settings(&settings(&[("random_state", "x")])).unwrap_err();
        assert!(err.to_string().contains("non-negative integer"), "{err}");
        let err = configure("cmaes", &settings(&[("popsize", "10")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("accepted: restart_strategy, sigma, random_state"),
            "{err}"
        );
    }

    /// Katib's own `examples/v1beta1/hp-tuning/cma-es.yaml`, unchanged: its parameters and
    /// algorithm pass the checks the Experiment spec and the suggestion API share, and the
    /// configured engine suggests `parallelTrialCount` points of the space, then more as they
    /// finish.
    #[test]
    fn katibs_cma_es_example_is_accepted_unchanged() {
        use crate::checks::{Problems, check_algorithm, search_space};
        use crate::katib::{AlgorithmSpec, ParameterSpec};
        use sextant_algorithms::{CompletedTrial, SuggestRequest};

        let text = include_str!("../../tests/data/katib-cma-es.yaml");
        let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).unwrap();
        let spec = &documents
            .iter()
            .find(|d| d["kind"] == "Experiment")
            .expect("an Experiment")["spec"];
        let parameters: Vec<ParameterSpec> =
            serde_json::from_value(spec["parameters"].clone()).unwrap();
        let algorithm: AlgorithmSpec = serde_json::from_value(spec["algorithm"].clone()).unwrap();
        let mut problems = Problems::default();
        let checked = check_algorithm(Some(&algorithm), "spec.algorithm", &mut problems);
        let settings = checked
            .as_ref()
            .map(|c| (c.name.as_str(), c.settings.as_slice()));
        let space = search_space(&parameters, "spec.parameters", settings, &mut problems);
        let messages: Vec<String> = problems.0.iter().map(|e| e.to_string()).collect();
        assert!(messages.is_empty(), "{messages:?}");
        let (checked, space) = (checked.unwrap(), space.unwrap());
        assert_eq!(checked.engine.engine.name(), "cmaes");
        let engine = &checked.engine.engine;
        engine.check_space(&space).unwrap();

        let parallel = spec["parallelTrialCount"].as_u64().unwrap() as usize;
        let max_trials = spec["maxTrialCount"].as_u64().unwrap() as usize;
        let mut history: Vec<CompletedTrial> = Vec::new();
        let mut state = None;
        let mut seen = std::collections::HashSet::new();
        while history.len() < max_trials {
            let answer = engine
                .suggest(&SuggestRequest {
                    space: &space,
                    history: &history,
                    pending: &[],
                    count: parallel,
                    seed: seed_from_name("cmaes"),
                    state: state.as_ref(),
                })
                .unwrap();
            assert!(!answer.points.is_empty());
            for point in answer.points {
                assert!(space.contains(&point), "{point:?}");
                let rendered = space.render(&point);
                assert_eq!(space.parse(&rendered).unwrap(), point);
                assert!(seen.insert(space.point_key(&point)));
                // Validation-accuracy is maximised: the loss is its negation.
                let lr: f64 = rendered[0].1.parse().unwrap();
                history.push(CompletedTrial {
                    point,
                    loss: Some(-(1.0 - (lr - 0.02).abs())),
                });
            }
            state = Some(answer.state);
        }
    }

    #[test]
    fn katib_algorithms_not_built_yet_are_refused_by_name() {
        let err = configure("enas", &[]).unwrap_err();
        assert_eq!(
            err,
            SettingError::NotYetBuilt {
                name: "enas".into()
            }
        );
        assert!(err.to_string().contains("does not provide yet"), "{err}");
    }

    #[test]
    fn tpe_takes_hyperopts_spelling() {
        let (parsed, seed) = tpe_settings(
            "tpe",
            &settings(&[
                ("gamma", "0.25"),
                ("prior_weight", "2"),
                ("n_EI_candidates", "30"),
                ("n_startup_jobs", "20"),
                ("random_state", "4"),
            ]),
        )
        .unwrap();
        assert_eq!(parsed.gamma, GammaRule::HyperoptSqrt { gamma: 0.25 });
        assert_eq!(parsed.prior_weight, 2.0);
        assert_eq!(parsed.n_ei_candidates, 30);
        assert_eq!(parsed.n_startup_trials, 20);
        assert_eq!(seed, Some(4));
        // hyperopt's split: ceil(0.25·√100) = 3 of 100 trials, at most 25.
        assert_eq!(parsed.gamma.n_below(100), 3);
        assert_eq!(parsed.gamma.n_below(1_000_000), 25);
    }

    #[test]
    fn tpe_takes_optunas_spelling_and_defaults() {
        for algorithm in ["tpe", "multivariate-tpe"] {
            let (parsed, seed) = tpe_settings(
                algorithm,
                &settings(&[
                    ("n_startup_trials", "0"),
                    ("n_ei_candidates", "24"),
                    ("random_state", "9"),
                    ("constant_liar", "False"),
                ]),
            )
            .unwrap();
            assert_eq!(parsed.n_startup_trials, 0);
            assert_eq!(parsed.n_ei_candidates, 24);
            assert!(!parsed.constant_liar);
            assert_eq!(seed, Some(9));
            let (defaults, seed) = tpe_settings(algorithm, &[]).unwrap();
            assert_eq!(
                defaults,
                TpeSettings::defaults_for(algorithm == "multivariate-tpe")
            );
            assert_eq!(seed, None);
            // Sextant's default split: min(ceil(0.25·n), 25).
            assert_eq!(defaults.gamma.n_below(40), 10);
            assert_eq!(defaults.gamma.n_below(1000), 25);
            assert_eq!(defaults.gamma.n_below(3), 1);
            let configured = configure(algorithm, &settings(&[("random_state", "1")])).unwrap();
            assert_eq!(configured.engine.name(), algorithm);
            assert_eq!(configured.seed, Some(1));
        }
    }

    #[test]
    fn tpe_settings_refuse_out_of_range_values_and_say_what_is_accepted() {
        let err = |algorithm: &str, pairs: &[(&str, &str)]| {
            tpe_settings(algorithm, &settings(pairs)).unwrap_err()
        };
        for (name, value, expected) in [
            ("gamma", "1", "(0, 1)"),
            ("gamma", "0", "(0, 1)"),
            ("gamma", "x", "(0, 1)"),
            ("prior_weight", "0", "> 0"),
            ("prior_weight", "inf", "> 0"),
            ("n_EI_candidates", "0", "from 1 to 1000"),
            ("n_ei_candidates", "1001", "from 1 to 1000"),
            ("n_startup_trials", "-1", "from 0 to"),
            ("n_startup_jobs", "2.5", "from 0 to"),
            ("constant_liar", "yes", "true or false"),
            ("random_state", "-1", "non-negative integer"),
        ] {
            let e = err("tpe", &[(name, value)]);
            assert_eq!(e.setting_name(), Some(name));
            assert!(e.to_string().contains(expected), "{name}={value}: {e}");
        }
        let e = err("tpe", &[("n_candidates", "5")]);
        assert!(
            e.to_string()
                .contains("gamma, prior_weight, n_EI_candidates")
                && e.to_string().contains("n_startup_trials, n_ei_candidates"),
            "{e}"
        );
        // multivariate-tpe takes Optuna's names only.
        let e = err("multivariate-tpe", &[("gamma", "0.2")]);
        assert_eq!(e.setting_name(), Some("gamma"));
        assert!(
            e.to_string()
                .contains("n_startup_trials, n_ei_candidates, random_state, constant_liar"),
            "{e}"
        );
    }

    #[test]
    fn tpe_spellings_mix_but_one_quantity_is_set_once() {
        // Mixed spellings: each name keeps its meaning.
        let (parsed, _) = tpe_settings(
            "tpe",
            &settings(&[("gamma", "0.5"), ("n_startup_trials", "5")]),
        )
        .unwrap();
        assert_eq!(parsed.gamma, GammaRule::HyperoptSqrt { gamma: 0.5 });
        assert_eq!(parsed.n_startup_trials, 5);
        // The same quantity in both spellings is ambiguous.
        for pairs in [
            [("n_EI_candidates", "24"), ("n_ei_candidates", "48")],
            [("n_startup_jobs", "20"), ("n_startup_trials", "10")],
        ] {
            let e = tpe_settings("tpe", &settings(&pairs)).unwrap_err();
            assert_eq!(e.setting_name(), Some(pairs[1].0));
            assert!(e.to_string().contains("other spelling"), "{e}");
        }
    }

    #[test]
    fn unknown_algorithm_lists_the_available_ones() {
        let err = configure("annealing", &[]).unwrap_err();
        assert!(err.to_string().contains("random, grid, sobol"), "{err}");
    }
}

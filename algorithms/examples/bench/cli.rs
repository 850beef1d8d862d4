//! The command line, parsed once into typed options (hand-parsed: this crate has no clap).

use std::fmt;

use crate::engines::EngineChoice;
use sextant_algorithms::test_functions::TestFunction;

/// The budgets of the reference figures.
const DEFAULT_BUDGETS: [usize; 2] = [50, 100];

/// Seeds per (function, engine): enough for a median and quartiles in seconds for the sampling
/// engines.
const DEFAULT_SEEDS: u64 = 10;

/// Worker threads of the quality benchmark: the development machine's 2 shared cores.
const DEFAULT_THREADS: usize = 2;

/// History sizes of the latency benchmark: from a fresh experiment to a long one.
const DEFAULT_HISTORY_SIZES: [usize; 6] = [10, 50, 100, 200, 400, 1000];

/// Dimensions of the latency benchmark: small, the Hartmann6 size, and a wide space.
const DEFAULT_DIMENSIONS: [usize; 3] = [2, 6, 12];

/// Timed calls per latency cell.
const DEFAULT_REPEATS: usize = 5;

/// Seconds one latency cell may take before the rest of it (and the larger histories of the same
/// dimension) are skipped: keeps a slow engine from holding the whole run for hours.
const DEFAULT_MAX_SECONDS: f64 = 60.0;

/// The usage text.
pub const USAGE: &str = "\
usage: bench <quality|latency> [options]

quality: simple regret of each engine on the test functions (markdown tables on stdout)
  --budgets 50,100        trial budgets to report (one run of the largest; the others are read off it)
  --seeds 10              seeds 0..N-1 per (function, engine)
  --engines random,sobol,bayesianoptimization,tpe,multivariate-tpe,cmaes
  --functions branin,hartmann6,rosenbrock4,ackley5
  --threads 2             runs in parallel (results do not depend on it)

latency: time to the next suggestion, in-process and single-threaded
  --n 10,50,100,200,400,1000   history sizes
  --d 2,6,12                   dimensions (at least 2)
  --repeats 5                  timed calls per cell
  --engines random,sobol,bayesianoptimization,tpe,multivariate-tpe,cmaes
  --cold                       time calls without saved state (default: the state after n-1 points)
  --max-seconds 60             per cell; a cell over it, and larger n of the same d, print \"skipped\"

Progress goes to stderr. Exit status: 0 when the tables were printed (engine errors are cells),
2 on bad usage.";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print the usage.
    Help,
    /// The quality benchmark.
    Quality(QualityOptions),
    /// The latency benchmark.
    Latency(LatencyOptions),
}

/// Options of `quality`.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityOptions {
    /// Budgets to report, ascending, distinct, at least 1.
    pub budgets: Vec<usize>,
    /// Number of seeds; seeds `0..seeds` are run.
    pub seeds: u64,
    /// Engines, in table order.
    pub engines: Vec<EngineChoice>,
    /// Functions, in table order.
    pub functions: Vec<TestFunction>,
    /// Worker threads, at least 1.
    pub threads: usize,
}

/// Options of `latency`.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyOptions {
    /// History sizes, ascending, distinct, at least 1.
    pub history_sizes: Vec<usize>,
    /// Dimensions, ascending, distinct, at least 2.
    pub dimensions: Vec<usize>,
    /// Timed calls per cell, at least 1.
    pub repeats: usize,
    /// Engines, in table order.
    pub engines: Vec<EngineChoice>,
    /// Time calls without saved state instead of with the state after `n − 1` points.
    pub cold: bool,
    /// Seconds a cell may take.
    pub max_seconds: f64,
}

/// Bad usage: what was wrong and what would be accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(UsageError(
            "no subcommand given; expected `quality` or `latency`".into(),
        ));
    };
    match subcommand.as_str() {
        "help" | "--help" | "-h" => Ok(Command::Help),
        "quality" => parse_quality(rest),
        "latency" => parse_latency(rest),
        other => Err(UsageError(format!(
            "unknown subcommand {other:?}; expected `quality` or `latency`"
        ))),
    }
}

fn parse_quality(args: &[String]) -> Result<Command, UsageError> {
    let mut options = QualityOptions {
        budgets: DEFAULT_BUDGETS.to_vec(),
        seeds: DEFAULT_SEEDS,
        engines: EngineChoice::ALL.to_vec(),
        functions: TestFunction::ALL.to_vec(),
        threads: DEFAULT_THREADS,
    };
    for flag in read_flags(args, &[])? {
        match flag.name.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--budgets" => options.budgets = sorted_counts(&flag, 1)?,
            "--seeds" => options.seeds = count(&flag, 1)? as u64,
            "--engines" => options.engines = engines(&flag)?,
            "--functions" => options.functions = functions(&flag)?,
            "--threads" => options.threads = count(&flag, 1)?,
            _ => return Err(unknown_flag(&flag, "quality")),
        }
    }
    Ok(Command::Quality(options))
}

fn parse_latency(args: &[String]) -> Result<Command, UsageError> {
    let mut options = LatencyOptions {
        history_sizes: DEFAULT_HISTORY_SIZES.to_vec(),
        dimensions: DEFAULT_DIMENSIONS.to_vec(),
        repeats: DEFAULT_REPEATS,
        engines: EngineChoice::ALL.to_vec(),
        cold: false,
        max_seconds: DEFAULT_MAX_SECONDS,
    };
    for flag in read_flags(args, &["--cold"])? {
        match flag.name.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--n" => options.history_sizes = sorted_counts(&flag, 1)?,
            "--d" => options.dimensions = sorted_counts(&flag, 2)?,
            "--repeats" => options.repeats = count(&flag, 1)?,
            "--engines" => options.engines = engines(&flag)?,
            "--cold" => options.cold = true,
            "--max-seconds" => options.max_seconds = seconds(&flag)?,
            _ => return Err(unknown_flag(&flag, "latency")),
        }
    }
    Ok(Command::Latency(options))
}

/// One `--name value`, `--name=value` or bare boolean `--name`.
#[derive(Debug, Clone, PartialEq)]
struct Flag {
    name: String,
    value: String,
}

/// Splits arguments into flags; `booleans` take no value, every other flag takes one.
fn read_flags(args: &[String], booleans: &[&str]) -> Result<Vec<Flag>, UsageError> {
    let mut flags = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if !arg.starts_with('-') {
            return Err(UsageError(format!(
                "unexpected argument {arg:?}; options are written `--name value`"
            )));
        }
        let flag = match arg.split_once('=') {
            Some((name, value)) => Flag {
                name: name.to_owned(),
                value: value.to_owned(),
            },
            None if booleans.contains(&arg.as_str()) || arg == "--help" || arg == "-h" => Flag {
                name: arg.clone(),
                value: String::new(),
            },
            None => {
                let value = args
                    .next()
                    .ok_or_else(|| UsageError(format!("{arg} needs a value")))?;
                Flag {
                    name: arg.clone(),
                    value: value.clone(),
                }
            }
        };
        flags.push(flag);
    }
    Ok(flags)
}

fn unknown_flag(flag: &Flag, subcommand: &str) -> UsageError {
    UsageError(format!(
        "unknown option {} for `{subcommand}`; see `bench --help`",
        flag.name
    ))
}

fn count(flag: &Flag, at_least: usize) -> Result<usize, UsageError> {
    parse_count(&flag.name, &flag.value, at_least)
}

fn parse_count(name: &str, text: &str, at_least: usize) -> Result<usize, UsageError> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= at_least => Ok(n),
        _ => Err(UsageError(format!(
            "{name} {text:?}: expected a whole number >= {at_least}"
        ))),
    }
}

/// A comma-separated list of counts, sorted and without repeats.
fn sorted_counts(flag: &Flag, at_least: usize) -> Result<Vec<usize>, UsageError> {
    let mut values = flag
        .value
        .split(',')
        .map(|item| parse_count(&flag.name, item, at_least))
        .collect::<Result<Vec<_>, _>>()?;
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

fn seconds(flag: &Flag) -> Result<f64, UsageError> {
    match flag.value.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(UsageError(format!(
            "{} {:?}: expected a number of seconds > 0",
            flag.name, flag.value
        ))),
    }
}

fn engines(flag: &Flag) -> Result<Vec<EngineChoice>, UsageError> {
    let known: Vec<&str> = EngineChoice::ALL.iter().map(|e| e.name()).collect();
    names(flag, &known, EngineChoice::from_name)
}

fn functions(flag: &Flag) -> Result<Vec<TestFunction>, UsageError> {
    let known: Vec<&str> = TestFunction::ALL.iter().map(|f| f.name()).collect();
    names(flag, &known, TestFunction::from_name)
}

/// A comma-separated list of names, each looked up with `lookup`, without repeats.
fn names<T: PartialEq>(
    flag: &Flag,
    known: &[&str],
    lookup: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, UsageError> {
    let mut values = Vec::new();
    for item in flag.value.split(',').map(str::trim) {
        let value = lookup(item).ok_or_else(|| {
            UsageError(format!(
                "{} {item:?}: expected one of {}",
                flag.name,
                known.join(", ")
            ))
        })?;
        if !values.contains(&value) {
            values.push(value);
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn quality_defaults_and_overrides() {
        let Command::Quality(defaults) = parse(&args("quality")).unwrap() else {
            panic!("expected quality");
        };
        assert_eq!(defaults.budgets, vec![50, 100]);
        assert_eq!(defaults.seeds, 10);
        assert_eq!(defaults.engines, EngineChoice::ALL.to_vec());
        let Command::Quality(options) = parse(&args(
            "quality --budgets 100,50,50 --seeds=3 --engines sobol --functions ackley5,branin",
        ))
        .unwrap() else {
            panic!("expected quality");
        };
        assert_eq!(options.budgets, vec![50, 100]);
        assert_eq!(options.seeds, 3);
        assert_eq!(options.engines, vec![EngineChoice::Sobol]);
        assert_eq!(
            options.functions,
            vec![TestFunction::Ackley5, TestFunction::Branin]
        );
    }

    #[test]
    fn latency_flags() {
        let Command::Latency(options) =
            parse(&args("latency --n 200,10 --d 6 --cold --max-seconds 2.5")).unwrap()
        else {
            panic!("expected latency");
        };
        assert_eq!(options.history_sizes, vec![10, 200]);
        assert_eq!(options.dimensions, vec![6]);
        assert!(options.cold);
        assert_eq!(options.max_seconds, 2.5);
        assert_eq!(options.repeats, 5);
    }

    #[test]
    fn bad_usage_names_the_flag_and_what_is_accepted() {
        let error = |line: &str| parse(&args(line)).unwrap_err().0;
        assert!(error("").contains("no subcommand"));
        assert!(error("tune").contains("\"tune\""));
        assert!(error("quality --seeds 0").contains(">= 1"));
        assert!(error("quality --budgets 50,x").contains("\"x\""));
        assert!(error("quality --engines grid").contains("random, sobol"));
        assert!(error("quality --functions sphere").contains("branin"));
        assert!(error("quality --cold").contains("--cold"));
        assert!(error("latency --d 1").contains(">= 2"));
        assert!(error("latency --max-seconds -1").contains("> 0"));
        assert!(error("latency --repeats").contains("needs a value"));
        assert!(error("latency extra").contains("\"extra\""));
        assert_eq!(parse(&args("latency --help")), Ok(Command::Help));
    }
}

//! Benchmarks of the search engines: how good their suggestions are (`quality`) and how long one
//! takes (`latency`). Both print markdown tables on stdout, ready for `docs/benchmarks.md`, and
//! progress on stderr.
//!
//! The program only uses the [`Engine`](sextant_algorithms::Engine) trait, so an engine that
//! fails (an error, or even a panic) shows `error: ...` in its cells and the others are still
//! measured; an engine implemented later needs no change here.
//!
//! # Running
//!
//! ```sh
//! cargo run --release -p sextant-algorithms --example bench -- --help
//! cargo test -p sextant-algorithms --examples   # the test functions' and tables' unit tests
//! ```
//!
//! # `quality`
//!
//! For each test function, engine and seed (`0..N`) one sequential experiment of the largest
//! budget runs, one suggestion at a time, called exactly as the controller calls an engine (all
//! finished trials with their loss, nothing pending, the seed, the state of the previous call).
//! The functions and their boxes: Branin (`x1 ∈ [-5, 10]`, `x2 ∈ [0, 15]`), Hartmann6 (`[0, 1]^6`),
//! Rosenbrock-4 (`[-5, 10]^4`) and Ackley-5 on the asymmetric box `[-10, 30]^5`.
//!
//! * **Simple regret table**: rows function × budget, columns engines; a cell is the median and
//!   interquartile range over seeds of the simple regret, best loss found − known minimum.
//!   Smaller budgets are read off the runs of the largest one, which gives exactly the figures of
//!   separate shorter runs (engines are deterministic and sequential, and never told the budget;
//!   see `bench/quality.rs`).
//! * **Reference table**: each row's best median regret among the issue's reference tools
//!   (Optuna GPSampler, scikit-optimize, Optuna TPE, random search; quoted, not measured), each
//!   engine's median and its ratio to it, and whether the issue's target holds: the GP
//!   (`bayesianoptimization`) median at most the reference best on at least 3 of the 4 functions
//!   at each budget, and never more than 2× it. The same rule is shown for engines without a
//!   target of their own, for comparison.
//! * **Issue 7's references** (Optuna TPE, hyperopt TPE, Optuna CMA-ES, random; quoted) beside
//!   each engine's median, and the per-engine targets, keyed by algorithm name in
//!   `bench/quality.rs`: `tpe` (and, shown, `multivariate-tpe`) at most Optuna TPE's median on 3
//!   of 4 functions at 50 and at 100 trials; `cmaes` at most Optuna CMA-ES's on 3 of 4 at 100.
//!
//! Runs are spread over `--threads` workers (default 2); every figure is independent of it.
//!
//! # `latency`
//!
//! The time to the next suggestion, in-process and single-threaded: for each dimension `d` and
//! history size `n`, the engine first sees `n − 1` points (uniform in `[0, 1]^d`, seeded, with a
//! Rosenbrock loss) and its state is kept; then `--repeats` calls with `n` points and that state
//! are timed (`--cold`: without state). See `bench/latency.rs`.
//!
//! * **Latency tables**, one per engine: rows `d`, columns `n`, cells `p50 / p99` in ms.
//!   `skipped`: the cell passed `--max-seconds` (and then the larger `n` of that `d` are skipped
//!   too).
//! * **Optuna comparison**: Optuna GPSampler's times quoted in the issue (d = 6: n = 50, 100, 200,
//!   400; d = 12: n = 400) next to each engine's p50 and the speed-up, and the issue's targets for
//!   the GP: p50 ≤ 20 ms at n = 200, d = 6; p50 ≤ 1 s at n = 1000, d = 12; at least 10× faster
//!   than Optuna GPSampler at every quoted point. And Optuna TPE's times quoted in issue 7
//!   (d = 6: n = 50, 400) with `tpe`'s target: at least 10× faster at n = 400, d = 6
//!   (p50 ≤ 0.88 ms).
//!
//! Timings on a shared 2-core machine are noisy: compare medians, within one run.
//!
//! # Reproducing `docs/benchmarks.md`
//!
//! The engine-quality and engine-latency figures there come from these two commands, run from the
//! repository root on an otherwise idle machine:
//!
//! ```sh
//! cargo run --release -p sextant-algorithms --example bench -- \
//!     quality --budgets 50,100 --seeds 10 \
//!     --engines random,sobol,bayesianoptimization \
//!     --functions branin,hartmann6,rosenbrock4,ackley5
//! cargo run --release -p sextant-algorithms --example bench -- \
//!     latency --n 10,50,100,200,400,1000 --d 2,6,12 --repeats 5 \
//!     --engines random,sobol,bayesianoptimization --max-seconds 60
//! ```
//!
//! (`bench quality` and `bench latency` alone run every engine, the TPE engines included; the
//! TPE figures come from `--engines tpe,multivariate-tpe`, the CMA-ES ones from `--engines cmaes`;
//! see `docs/benchmarks.md`.)

// A crate root looks for its modules beside it; this program keeps them in `bench/`.
#[path = "bench/cli.rs"]
mod cli;
#[path = "bench/engines.rs"]
mod engines;
#[path = "bench/latency.rs"]
mod latency;
#[path = "bench/quality.rs"]
mod quality;
#[path = "bench/stats.rs"]
mod stats;
#[path = "bench/table.rs"]
mod table;

use std::io::{self, Write};
use std::process::ExitCode;

use cli::Command;

/// Exit status for bad usage, as the `sextant` command uses it.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("bench: {error}\n\n{}", cli::USAGE);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let report = run(&command);
    match io::stdout().lock().write_all(report.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`bench ... | head`) is the reader's choice, not a failure.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: cannot write the report: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The report of `command` (markdown), or the usage text.
fn run(command: &Command) -> String {
    match command {
        Command::Help => format!("{}\n", cli::USAGE),
        Command::Quality(options) => quality::run(options),
        Command::Latency(options) => latency::run(options),
    }
}

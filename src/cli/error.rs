//! Errors at the command line's edge, each with its exit code (0 ok, 1 the experiment failed or
//! something broke, 2 bad input or usage).

use crate::controller::driver::DriverError;
use crate::controller::resume::PrepareError;
use crate::spec::SpecError;
use crate::store::StoreError;

/// Exit code: the experiment failed, or Sextant itself hit an error.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad input or usage.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: interrupted by Ctrl-C (128 + SIGINT, the shell convention).
pub const EXIT_INTERRUPTED: u8 = 130;

/// An error to print, with its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl CliError {
    /// Bad input or usage (exit 2).
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_BAD_INPUT,
            message: message.into(),
        }
    }

    /// Something failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Locked(_) => CliError::input(e.to_string()),
            other => CliError::failed(other.to_string()),
        }
    }
}

impl From<SpecError> for CliError {
    fn from(e: SpecError) -> Self {
        CliError::input(e.to_string())
    }
}

impl From<PrepareError> for CliError {
    fn from(e: PrepareError) -> Self {
        match e {
            PrepareError::Store(store) => store.into(),
            other => CliError::input(other.to_string()),
        }
    }
}

impl From<DriverError> for CliError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Store(store) => store.into(),
            DriverError::Start { .. } => CliError::input(e.to_string()),
            other => CliError::failed(other.to_string()),
        }
    }
}

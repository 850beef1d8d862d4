//! Sextant's engine registry: Katib algorithm names and `algorithmSettings` mapped to engines.
//!
//! Users write the algorithm names and setting names they already use with Katib. This crate turns
//! them into a configured engine, or into an error that lists what is accepted. The HTTP suggestion
//! API (a later issue) is mounted on the same registry.
#![warn(missing_docs)]

pub mod api;
pub mod checks;
pub mod early_stopping;
pub mod field_error;
pub mod katib;
pub mod registry;

pub use field_error::FieldError;
pub use registry::{
    AVAILABLE_ALGORITHMS, ConfiguredEngine, SettingError, configure, seed_from_name,
};

//! Sextant: a hyperparameter tuning service that reads Katib Experiments unchanged.
//!
//! The pieces, each with one job (see `ARCHITECTURE.md`): [`spec`] turns user input into a typed,
//! validated experiment; [`store`] keeps everything in sled; [`controller`] decides what happens next;
//! [`runtime`] carries the decisions out; [`cli`] is how people drive it.

pub mod api;
pub mod auth;
pub mod cli;
pub mod controller;
pub mod runtime;
pub mod spec;
pub mod store;
pub mod view;

//! The backend-agnostic controller: pure policy ([`policy`], [`metrics`]) and the loop that applies
//! it ([`driver`]).

pub mod driver;
pub mod metrics;
pub mod policy;
pub mod resume;
pub mod supervisor;

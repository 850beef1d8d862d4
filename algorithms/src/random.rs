//! The `random` engine. TODO(helper): implementation pending.
use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};

/// Seeded random search.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomEngine;

impl Engine for RandomEngine {
    fn name(&self) -> &'static str {
        "random"
    }
    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        todo!("{request:?}")
    }
}

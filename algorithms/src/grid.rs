//! The `grid` engine. TODO(helper): implementation pending.
use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};

/// Katib's grid search.
#[derive(Debug, Clone, Copy, Default)]
pub struct GridEngine;

impl Engine for GridEngine {
    fn name(&self) -> &'static str {
        "grid"
    }
    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        todo!("{request:?}")
    }
}

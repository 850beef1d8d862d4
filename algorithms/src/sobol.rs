//! The `sobol` engine. TODO(helper): implementation pending.
use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};

/// Scrambled, seeded Sobol sequence.
#[derive(Debug, Clone, Copy, Default)]
pub struct SobolEngine;

impl Engine for SobolEngine {
    fn name(&self) -> &'static str {
        "sobol"
    }
    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        todo!("{request:?}")
    }
}

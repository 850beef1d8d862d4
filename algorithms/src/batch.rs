//! The points one call of a model-based engine (`bayesianoptimization`, `tpe`) is choosing: what
//! is taken so far, what it has chosen, and where its space-filling start-up design stands.

use crate::engine::{EngineError, SuggestRequest};
use crate::sobol;
use crate::space::Point;
use crate::taken::TakenPoints;

/// One call in progress.
pub(crate) struct Batch<'r, 'a> {
    /// The request being answered.
    pub(crate) request: &'r SuggestRequest<'a>,
    /// History, pending and the points chosen so far.
    pub(crate) taken: TakenPoints<'a>,
    /// The points chosen so far, in order.
    pub(crate) points: Vec<Point>,
    /// The next index of the start-up design (saved in the engine's state).
    pub(crate) sobol_index: u64,
}

impl<'r, 'a> Batch<'r, 'a> {
    /// A call answering `request`, its start-up design at `sobol_index`.
    pub(crate) fn new(request: &'r SuggestRequest<'a>, sobol_index: u64) -> Self {
        Batch {
            request,
            taken: TakenPoints::of_request(request),
            points: Vec::new(),
            sobol_index,
        }
    }

    /// Adds up to `count` points of the Sobol sequence (random search for spaces too wide for
    /// it), skipping taken ones.
    pub(crate) fn space_filling(&mut self, count: usize) -> Result<(), EngineError> {
        let points =
            sobol::space_filling_points(self.request, &self.points, &mut self.sobol_index, count)?;
        for point in points {
            self.taken.take(&point);
            self.points.push(point);
        }
        Ok(())
    }
}

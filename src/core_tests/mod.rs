//! The core's manifest validation and planner, tested with the kinds keyrite ships: the
//! core has none of its own, so these live with the crate that registers them.

mod manifest;
mod plan;

//! What a run shows people while it trains: TensorBoard event files (`tfevents`, and what a run
//! writes to them, `board`) and plots of its curves (`plot`).
pub mod board;
pub mod plot;
pub mod tfevents;

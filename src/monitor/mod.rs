//! What a run shows people while it trains: TensorBoard event files (`tfevents`) and what a run
//! writes to them (`board`).
pub mod board;
pub mod tfevents;

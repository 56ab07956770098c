//! Judging and using a trained generator: the FID detector, FID/KID (`metrics`), the features and
//! the [`evaluator::Evaluator`] behind them, the metric report, and sampling (`generate`).
pub mod detector;
pub mod evaluator;
pub mod export;
pub mod generate;
pub mod metrics;
pub mod report;

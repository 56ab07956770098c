//! Layer trace for `fpgan info`: while [`trace`] runs a forward pass, every convolution records
//! its name, output shape and multiply-accumulates. Outside a trace recording costs one check.
use std::cell::RefCell;
use tch::{nn, Tensor};

#[derive(Clone, Debug)]
pub struct Record {
    pub name: String,
    pub shape: Vec<i64>,
    pub macs: i64,
}

thread_local! {
    static TRACE: RefCell<Option<Vec<Record>>> = const { RefCell::new(None) };
}

/// Dotted variable-store path of `p`, e.g. `synthesis.feat_8.1`.
pub fn path_name(p: &nn::Path) -> String {
    p.components().collect::<Vec<_>>().join(".")
}

/// Record a layer output when a trace is active.
pub fn record(name: &str, y: &Tensor, macs: i64) {
    TRACE.with(|t| {
        if let Some(v) = t.borrow_mut().as_mut() {
            v.push(Record {
                name: name.to_string(),
                shape: y.size(),
                macs,
            });
        }
    });
}

/// Run `f` with tracing on and return its result with the records, in call order.
pub fn trace<T>(f: impl FnOnce() -> T) -> (T, Vec<Record>) {
    TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
    let out = f();
    let records = TRACE.with(|t| t.borrow_mut().take()).unwrap_or_default();
    (out, records)
}

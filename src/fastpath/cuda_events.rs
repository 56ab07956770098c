//! Phase timing on CUDA as the reference's (`Timing/Gboth`, `Timing/Dmain`: CUDA events around
//! each phase of the last iteration of a tick), without waiting for the GPU in the step;
//! csrc/cuda_events.cpp.
use std::ffi::c_void;

extern "C" {
    fn fpgan_cuda_event_new() -> *mut c_void;
    fn fpgan_cuda_event_record(event: *mut c_void, device: i32) -> i32;
    fn fpgan_cuda_event_elapsed_ms(start: *mut c_void, end: *mut c_void) -> f64;
    fn fpgan_cuda_event_free(event: *mut c_void);
}

/// A timing-enabled CUDA event (freed on drop).
struct Event(*mut c_void);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: made by fpgan_cuda_event_new and freed once, here.
        unsafe { fpgan_cuda_event_free(self.0) }
    }
}

/// Start and end events of each named phase on one CUDA device.
pub struct PhaseEvents {
    device: i32,
    phases: Vec<(&'static str, Event, Event)>,
    /// Whether every phase was recorded since the events were made.
    recorded: bool,
}

impl PhaseEvents {
    /// Events for `names` on CUDA device `device`; None if they cannot be made (no CUDA).
    pub fn new(device: usize, names: &[&'static str]) -> Option<Self> {
        let mut phases = Vec::new();
        for &n in names {
            // SAFETY: plain constructors; a null pointer means failure.
            let (a, b) = unsafe { (fpgan_cuda_event_new(), fpgan_cuda_event_new()) };
            let (a, b) = (Event(a), Event(b));
            if a.0.is_null() || b.0.is_null() {
                return None;
            }
            phases.push((n, a, b));
        }
        Some(PhaseEvents {
            device: device as i32,
            phases,
            recorded: false,
        })
    }

    /// Record the start (`end == false`) or the end of phase `i` on the current stream.
    pub fn record(&mut self, i: usize, end: bool) {
        let (_, a, b) = &self.phases[i];
        let e = if end { b } else { a };
        // SAFETY: a live event; failures are reported by the return code and ignored (timing
        // only).
        let ok = unsafe { fpgan_cuda_event_record(e.0, self.device) } == 0;
        self.recorded = ok && (self.recorded || (end && i + 1 == self.phases.len()));
    }

    /// Milliseconds of each phase as last recorded (waits for the last end event), or nothing
    /// if the phases were never all recorded.
    pub fn elapsed_ms(&self) -> Vec<(&'static str, f64)> {
        if !self.recorded {
            return Vec::new();
        }
        self.phases
            .iter()
            // SAFETY: live events, both recorded.
            .map(|(n, a, b)| (*n, unsafe { fpgan_cuda_event_elapsed_ms(a.0, b.0) }))
            .filter(|(_, ms)| *ms >= 0.0)
            .collect()
    }
}

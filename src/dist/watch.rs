//! The launchers of a run on several machines tell each other of a failure through the run's
//! TCPStore: a machine whose worker fails (or that is stopped at once) sets a key, and the
//! others, polling it, stop their workers, which could otherwise wait in a collective for a peer
//! that is gone until the group's timeout (NCCL does not always notice a dead peer). The store
//! is read by a thread of its own, so that a store that stops answering never holds up the
//! launcher.
use super::store::StoreClient;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The store's key for what failed, and where.
pub const FAILED_KEY: &str = "fpgan/failed";

/// How often the key is read.
const POLL: Duration = Duration::from_secs(1);

/// How long the store may not answer while this machine's workers still run (rank 0's
/// process serves it, so a normal end takes it away too, moments before the others end).
pub const STORE_GRACE: Duration = Duration::from_secs(60);

/// How long telling a failure waits for the store's answer.
const TELL_WAIT: Duration = Duration::from_secs(10);

/// A failure to tell, and where to answer with one told earlier by another machine.
type Tell = (String, Sender<Option<String>>);

/// One launcher's watch on the run's store.
pub struct Watch {
    node: usize,
    place: String,
    tells: Sender<Tell>,
    stops: Receiver<String>,
    /// When the store last answered (None until connected): read here, so that a request that
    /// hangs cannot hide a lost store.
    answered: Arc<Mutex<Option<Instant>>>,
}

impl Watch {
    /// Watch the store at `host:port` as machine `node`, connecting (the store comes up with
    /// rank 0's worker) for up to `timeout`.
    pub fn start(node: usize, host: &str, port: u16, timeout: Duration) -> Self {
        let (tells, tell_rx) = mpsc::channel();
        let (stop_tx, stops) = mpsc::channel();
        let answered = Arc::new(Mutex::new(None));
        let place = format!("{host}:{port}");
        let (host, seen) = (host.to_string(), answered.clone());
        std::thread::spawn(move || {
            // a failed connection ends the watch: the workers then fail to join on their own
            if let Ok(store) = StoreClient::connect(&host, port, timeout) {
                serve(&store, &tell_rx, &stop_tx, &seen);
            }
        });
        Watch {
            node,
            place,
            tells,
            stops,
            answered,
        }
    }

    /// Tell the other machines that `what` happened here, unless one of them told of a failure
    /// first: then return what it told (this one may only follow from it). Best effort: the
    /// others also learn of it in their collectives wherever the backend notices. Waits up to
    /// [`TELL_WAIT`] (for a connection still being made too).
    pub fn report(&self, what: &str) -> Option<String> {
        let (tx, rx) = mpsc::channel();
        let told = format!("node {}: {what}", self.node);
        self.tells.send((told, tx)).ok()?;
        rx.recv_timeout(TELL_WAIT).ok().flatten()
    }

    /// Why this machine's workers must stop, once known: what another machine told, or the
    /// store unanswering for [`STORE_GRACE`].
    pub fn poll(&self) -> Option<String> {
        if let Ok(told) = self.stops.try_recv() {
            return Some(told);
        }
        if self.last_answer()?.elapsed() < STORE_GRACE {
            return None;
        }
        let (place, secs) = (&self.place, STORE_GRACE.as_secs());
        Some(format!(
            "the rendezvous at {place} (served by rank 0 on machine 0) has not answered for {secs} s"
        ))
    }

    /// Whether the store has answered (it comes up with rank 0's worker).
    pub fn connected(&self) -> bool {
        self.last_answer().is_some()
    }

    /// When the store last answered; None before it did.
    fn last_answer(&self) -> Option<Instant> {
        *self.answered.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watch's thread: answer `tells`, and read the key every [`POLL`] (noting in `answered`
/// when the store answers) until it is set, then say so on `stops`.
fn serve(
    store: &StoreClient,
    tells: &Receiver<Tell>,
    stops: &Sender<String>,
    answered: &Mutex<Option<Instant>>,
) {
    let note = || *answered.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    note();
    loop {
        loop {
            let (what, answer) = match tells.try_recv() {
                Ok(tell) => tell,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return, // the launcher is done
            };
            let earlier = store.value(FAILED_KEY).ok().flatten();
            if earlier.is_none() {
                let _ = store.set(FAILED_KEY, &what);
            }
            let _ = answer.send(earlier);
        }
        match store.value(FAILED_KEY) {
            Ok(Some(told)) => {
                let _ = stops.send(told);
                return;
            }
            Ok(None) => note(),
            Err(_) => {}
        }
        std::thread::sleep(POLL);
    }
}
